/*
 * test_provider.c - the provider registry and the helpers that HTTP
 * providers share: Retry-After, config errors and secrets, response
 * headers, body excerpts and the common classification.
 */
#include <stdlib.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "check.h"
#include "internal.h"
#include "provider.h"

/* 2025-03-05 10:10:00 UTC, a Wednesday */
#define NOW 1741169400

typedef struct retry_after_case {
    const char *value;
    int64_t want;
} retry_after_case;

static const retry_after_case retry_after_cases[] = {
    {"120", 120},
    {"0", 0},
    {" 120 ", 120},
    {"864000", 864000},
    {"Wed, 05 Mar 2025 10:15:00 GMT", 300},
    {"Wednesday, 05-Mar-25 10:15:00 GMT", 300},
    {"Wed Mar  5 10:15:00 2025", 300},
    {"Wed, 05 Mar 2025 10:00:00 GMT", 0},
    {"Sunday, 06-Nov-94 08:49:37 GMT", 0},
    {"Sat, 01 Mar 2025 23:59:60 GMT", 0},
    {"soon", -1},
    {"-5", -1},
    {"+5", -1},
    {"", -1},
    {"12a", -1},
    {"1.5", -1},
    {"99999999999999999999", -1},
    {"wed, 05 Mar 2025 10:15:00 GMT", -1},
    {"Wed, 05 Mar 2025 10:15:00 UTC", -1},
    {"Wed, 5 Mar 2025 10:15:00 GMT", -1},
    {"Wed, 30 Feb 2025 10:15:00 GMT", -1},
    {"Wed, 29 Feb 2025 10:15:00 GMT", -1},
    {"Wed, 05 Mar 2025 24:15:00 GMT", -1},
    {"Wed, 05 Mar 2025 10:15:00 GMT x", -1},
    {"Wed, 05 Mrz 2025 10:15:00 GMT", -1},
};

static void test_retry_after(void)
{
    size_t count = sizeof(retry_after_cases) / sizeof(retry_after_cases[0]);

    for (size_t i = 0; i < count; i++) {
        CHECK_CASE(retry_after_cases[i].value);
        CHECK_INT(outbox_parse_retry_after(retry_after_cases[i].value, NOW),
                  retry_after_cases[i].want);
    }
    CHECK_CASE("NULL");
    CHECK_INT(outbox_parse_retry_after(NULL, NOW), -1);

    /* A leap day exists in 2024, and the RFC 850 year 30 is 2030. */
    CHECK_CASE("leap day and two-digit year");
    CHECK_INT(outbox_parse_retry_after("Thu, 29 Feb 2024 00:00:00 GMT", 0),
              1709164800);
    CHECK_INT(outbox_parse_retry_after("Tuesday, 01-Jan-30 00:00:00 GMT",
                                       NOW),
              1893456000 - NOW);
}

/* Creates a provider from JSON text; returns the error code. */
static outbox_err create_from_text(outbox_provider **provider,
                                   outbox_error *err, const char *text)
{
    cJSON *config = cJSON_Parse(text);
    outbox_err rc;

    memset(err, 0, sizeof(*err));
    if (config == NULL) {
        CHECK_FAIL("test config is not JSON: %s", text);
        return OUTBOX_EINVAL;
    }
    rc = outbox_provider_create(provider, err, config, NULL);
    cJSON_Delete(config);
    return rc;
}

typedef struct create_error_case {
    const char *name;
    const char *config;
    const char *text;   /* expected part of err.text */
} create_error_case;

static const create_error_case create_error_cases[] = {
    {"misspelled base_url",
     "{\"name\":\"sg\",\"type\":\"sendgrid\",\"api_key\":\"k\","
     "\"baseurl\":\"http://127.0.0.1:9\"}",
     "provider \"sg\": unknown key \"baseurl\" for type sendgrid"},
    {"unknown file key", "{\"name\":\"f\",\"type\":\"file\","
     "\"folder\":\"/tmp/x\",\"path\":\"/tmp/y\"}",
     "provider \"f\": unknown key \"path\" for type file"},
    {"unknown type", "{\"name\":\"x\",\"type\":\"sparkpost\"}",
     "provider \"x\": unknown type \"sparkpost\" "
     "(known: sendgrid, mailgun, postmark, ses, smtp, file)"},
    {"missing type", "{\"name\":\"x\"}",
     "provider \"x\": missing \"type\" "
     "(known: sendgrid, mailgun, postmark, ses, smtp, file)"},
    {"missing name", "{\"type\":\"sendgrid\",\"api_key\":\"k\"}",
     "missing \"name\""},
    {"empty name", "{\"name\":\"\",\"type\":\"sendgrid\"}", "missing \"name\""},
    {"name not a string", "{\"name\":7,\"type\":\"sendgrid\"}",
     "missing \"name\""},
    {"bad name chars", "{\"name\":\"my provider\",\"type\":\"sendgrid\"}",
     "provider \"my provider\": invalid \"name\""},
    {"name too long",
     "{\"name\":\"a123456789b123456789c123456789d123456789e123456789f123456789"
     "ghij\",\"type\":\"sendgrid\"}",
     "invalid \"name\": use 1 to 63"},
    {"not an object", "[1]", "expected a JSON object"},
    {"missing api key", "{\"name\":\"x\",\"type\":\"sendgrid\"}",
     "provider \"x\": missing \"api_key\" or \"api_key_env\""},
    {"api_key_env unset",
     "{\"name\":\"x\",\"type\":\"sendgrid\","
     "\"api_key_env\":\"OUTBOX_TEST_UNSET_KEY\"}",
     "environment variable OUTBOX_TEST_UNSET_KEY"},
    {"api_key_env empty",
     "{\"name\":\"x\",\"type\":\"sendgrid\","
     "\"api_key_env\":\"OUTBOX_TEST_EMPTY_KEY\"}",
     "OUTBOX_TEST_EMPTY_KEY (from \"api_key_env\") is not set or is empty"},
    {"api_key_env not a string",
     "{\"name\":\"x\",\"type\":\"sendgrid\",\"api_key_env\":5}",
     "\"api_key_env\" must name an environment variable"},
    {"api_key empty", "{\"name\":\"x\",\"type\":\"sendgrid\",\"api_key\":\"\"}",
     "\"api_key\" must be a non-empty string"},
    {"base_url ftp",
     "{\"name\":\"x\",\"type\":\"sendgrid\",\"api_key\":\"k\","
     "\"base_url\":\"ftp://api.sendgrid.com\"}",
     "provider \"x\": invalid \"base_url\""},
    {"base_url without host",
     "{\"name\":\"x\",\"type\":\"sendgrid\",\"api_key\":\"k\","
     "\"base_url\":\"https://\"}",
     "invalid \"base_url\""},
    {"base_url with query",
     "{\"name\":\"x\",\"type\":\"sendgrid\",\"api_key\":\"k\","
     "\"base_url\":\"https://h.example/?a=1\"}",
     "invalid \"base_url\""},
    {"timeout zero",
     "{\"name\":\"x\",\"type\":\"sendgrid\",\"api_key\":\"k\","
     "\"timeout_seconds\":0}",
     "invalid \"timeout_seconds\": expected a whole number from 1 to 86400"},
    {"timeout fraction",
     "{\"name\":\"x\",\"type\":\"sendgrid\",\"api_key\":\"k\","
     "\"connect_timeout_seconds\":1.5}",
     "invalid \"connect_timeout_seconds\""},
    {"timeout as text",
     "{\"name\":\"x\",\"type\":\"sendgrid\",\"api_key\":\"k\","
     "\"timeout_seconds\":\"30\"}",
     "invalid \"timeout_seconds\""},
    {"max_message_bytes negative",
     "{\"name\":\"x\",\"type\":\"sendgrid\",\"api_key\":\"k\","
     "\"max_message_bytes\":-1}",
     "invalid \"max_message_bytes\""},
    {"file without folder", "{\"name\":\"f\",\"type\":\"file\"}",
     "provider \"f\": missing \"folder\""},
};

static void test_create_errors(void)
{
    size_t count = sizeof(create_error_cases) / sizeof(create_error_cases[0]);

    unsetenv("OUTBOX_TEST_UNSET_KEY");
    setenv("OUTBOX_TEST_EMPTY_KEY", "", 1);
    for (size_t i = 0; i < count; i++) {
        outbox_provider *provider = (outbox_provider *)&count;
        outbox_error err;

        CHECK_CASE(create_error_cases[i].name);
        CHECK_INT(create_from_text(&provider, &err,
                                   create_error_cases[i].config),
                  OUTBOX_ECONFIG);
        CHECK(provider == NULL);
        CHECK_STR(err.kind, "config");
        CHECK_CONTAINS(err.text, create_error_cases[i].text);
    }
}

/* A key that would break the Authorization header is rejected, and the
 * error never quotes it. */
static void test_create_bad_key_hidden(void)
{
    outbox_provider *provider = NULL;
    outbox_error err;

    CHECK_CASE("key with line break");
    setenv("OUTBOX_TEST_BAD_KEY", "SG.abc\r\nX-Evil: 1", 1);
    CHECK_INT(create_from_text(&provider, &err,
                               "{\"name\":\"x\",\"type\":\"sendgrid\","
                               "\"api_key_env\":\"OUTBOX_TEST_BAD_KEY\"}"),
              OUTBOX_ECONFIG);
    CHECK(provider == NULL);
    CHECK_CONTAINS(err.text, "the API key contains");
    CHECK(strstr(err.text, "SG.abc") == NULL);
    CHECK(strstr(err.text, "Evil") == NULL);
}

static void test_create_success(void)
{
    outbox_provider *provider = NULL;
    outbox_error err;

    CHECK_CASE("create from env");
    setenv("OUTBOX_TEST_SENDGRID_KEY", "SG.secret-value", 1);
    CHECK_INT(create_from_text(&provider, &err,
                               "{\"name\":\"sg-main_1\",\"type\":\"sendgrid\","
                               "\"api_key_env\":\"OUTBOX_TEST_SENDGRID_KEY\","
                               "\"base_url\":\"https://api.eu.sendgrid.com/\","
                               "\"timeout_seconds\":20,"
                               "\"connect_timeout_seconds\":5,"
                               "\"max_message_bytes\":0}"),
              OUTBOX_EOK);
    CHECK(provider != NULL);
    if (provider != NULL) {
        CHECK_STR(outbox_provider_name(provider), "sg-main_1");
        CHECK_STR(outbox_provider_type(provider), "sendgrid");
        CHECK(outbox_provider_uses_curl(provider));
    }
    outbox_provider_free(provider);

    CHECK_CASE("create with api_key and 63-char name");
    provider = NULL;
    CHECK_INT(create_from_text(&provider, &err,
                               "{\"name\":\"a123456789b123456789c123456789"
                               "d123456789e123456789f123456789ghi\","
                               "\"type\":\"sendgrid\",\"api_key\":\"SG.k\"}"),
              OUTBOX_EOK);
    outbox_provider_free(provider);
    outbox_provider_free(NULL);
}

static void test_create_file(void)
{
    char folder[] = "/tmp/outbox-provider-test-XXXXXX";
    outbox_provider *provider = NULL;
    outbox_error err = {{0}, {0}};
    outbox_result result;

    CHECK_CASE("create file provider");
    if (mkdtemp(folder) == NULL) {
        CHECK_FAIL("mkdtemp failed");
        return;
    }
    CHECK_INT(outbox_provider_create_file(&provider, &err, "files", folder),
              OUTBOX_EOK);
    if (provider != NULL) {
        CHECK_STR(outbox_provider_name(provider), "files");
        CHECK_STR(outbox_provider_type(provider), "file");
        CHECK(!outbox_provider_uses_curl(provider));

        /* A local provider classifies no HTTP response. */
        memset(&result, 0, sizeof(result));
        outbox_provider_classify(provider, &result,
                                 &(outbox_response){.status = 200});
        CHECK_STR(outbox_result_kind_name(result.kind), "misconfigured");
    }
    outbox_provider_free(provider);
    rmdir(folder);

    CHECK_CASE("create file provider without name");
    provider = NULL;
    CHECK_INT(outbox_provider_create_file(&provider, &err, NULL, folder),
              OUTBOX_ECONFIG);
    CHECK_CONTAINS(err.text, "missing \"name\"");
    CHECK(provider == NULL);
}

static void test_secret(void)
{
    cJSON *config =
        cJSON_Parse("{\"api_key\":\"direct\","
                    "\"api_key_env\":\"OUTBOX_TEST_SENDGRID_KEY\"}");
    outbox_error err = {{0}, {0}};
    char *secret = NULL;

    CHECK_CASE("secret prefers the direct key");
    CHECK_INT(outbox__provider_secret(&secret, &err, "x", config, "api_key",
                                      "api_key_env"),
              OUTBOX_EOK);
    CHECK_STR(secret, "direct");
    free(secret);
    cJSON_Delete(config);
}

static void test_result_helpers(void)
{
    outbox_field headers[] = {{"content-type", "text/plain"},
                              {"RETRY-AFTER", "7"},
                              {"Retry-After", "8"}};
    outbox_response response;
    outbox_result result;

    CHECK_CASE("result init");
    memset(&result, 0x5A, sizeof(result));
    outbox_result_init(&result, OUTBOX_RESULT_FAILED);
    CHECK_INT(result.kind, OUTBOX_RESULT_FAILED);
    CHECK_INT(result.status, 0);
    CHECK_INT(result.retry_after, -1);
    CHECK(result.counts_as_failure);
    CHECK_STR(result.provider_message_id, "");
    CHECK_STR(result.error.kind, "");
    CHECK_STR(result.error.text, "");

    CHECK_CASE("result kind names");
    CHECK_STR(outbox_result_kind_name(OUTBOX_RESULT_SENT), "sent");
    CHECK_STR(outbox_result_kind_name(OUTBOX_RESULT_RETRY), "retry");
    CHECK_STR(outbox_result_kind_name(OUTBOX_RESULT_FAILED), "failed");
    CHECK_STR(outbox_result_kind_name(OUTBOX_RESULT_MISCONFIGURED),
              "misconfigured");
    CHECK_STR(outbox_result_kind_name(OUTBOX_RESULT_UNKNOWN), "unknown");

    CHECK_CASE("response header any case, first wins");
    memset(&response, 0, sizeof(response));
    response.headers = headers;
    response.header_count = 3;
    CHECK_STR(outbox_response_header(&response, "retry-after"), "7");
    CHECK_STR(outbox_response_header(&response, "Content-Type"),
              "text/plain");
    CHECK(outbox_response_header(&response, "X-Message-Id") == NULL);
}

static void excerpt_of(char *text, size_t size, const char *body,
                       size_t body_size, bool truncated)
{
    outbox_response response;

    memset(&response, 0, sizeof(response));
    response.body = body;
    response.body_size = body_size;
    response.body_truncated = truncated;
    outbox__body_excerpt(text, size, &response);
}

static void test_body_excerpt(void)
{
    static const char binary[] = "\x89PNG\r\n\x1a\n\0\0\xff\xfe ok";
    char text[2048];
    char small[8];
    char *long_body = malloc(3000);

    CHECK_CASE("excerpt collapses control characters");
    excerpt_of(text, sizeof(text), "\r\n <h1>Bad\tGateway</h1>\r\n\r\n", 27,
               false);
    CHECK_STR(text, "<h1>Bad Gateway</h1>");

    CHECK_CASE("excerpt of binary");
    excerpt_of(text, sizeof(text), binary, sizeof(binary) - 1, false);
    CHECK_STR(text, "?PNG ?? ok");

    CHECK_CASE("excerpt of nothing");
    excerpt_of(text, sizeof(text), NULL, 0, false);
    CHECK_STR(text, "");

    CHECK_CASE("excerpt of a truncated body");
    excerpt_of(text, sizeof(text), "partial", 7, true);
    CHECK_STR(text, "partial...");

    CHECK_CASE("excerpt keeps UTF-8 whole");
    excerpt_of(small, sizeof(small), "ab\xc3\xa4\xc3\xa4\xc3\xa4", 8, false);
    CHECK_STR(small, "ab\xc3\xa4...");

    CHECK_CASE("excerpt is at most 1 KB");
    if (long_body == NULL)
        return;
    memset(long_body, 'x', 3000);
    excerpt_of(text, sizeof(text), long_body, 3000, false);
    CHECK_INT(strlen(text), 1024);
    CHECK_STR(text + 1021, "...");
    free(long_body);
}

static void common_response(outbox_response *response, long status,
                            outbox_field *headers, size_t header_count)
{
    memset(response, 0, sizeof(*response));
    response->status = status;
    response->headers = headers;
    response->header_count = header_count;
    response->body = "";
    response->curl_error = "";
    response->now = NOW;
}

static void test_classify_common(void)
{
    outbox_field date[] = {{"Retry-After", "Wed, 05 Mar 2025 10:15:00 GMT"}};
    outbox_field bad[] = {{"Retry-After", "soon"},
                          {"X-RateLimit-Reset", "1741169460"}};
    outbox_response response;
    outbox_result result;

    CHECK_CASE("common 429 with an HTTP date");
    common_response(&response, 429, date, 1);
    CHECK(outbox__classify_common(&result, &response));
    CHECK_INT(result.kind, OUTBOX_RESULT_RETRY);
    CHECK_STR(result.error.kind, "rate_limited");
    CHECK_INT(result.retry_after, 300);
    CHECK(!result.counts_as_failure);
    CHECK_STR(result.error.text, "HTTP 429: (empty body)");

    CHECK_CASE("common 429 bad Retry-After falls back to reset");
    common_response(&response, 429, bad, 2);
    CHECK(outbox__classify_common(&result, &response));
    CHECK_INT(result.retry_after, 60);

    CHECK_CASE("common 502 ignores the reset header");
    common_response(&response, 502, bad + 1, 1);
    CHECK(outbox__classify_common(&result, &response));
    CHECK_STR(result.error.kind, "provider_unavailable");
    CHECK_INT(result.retry_after, -1);
    CHECK(result.counts_as_failure);
    CHECK_INT(result.status, 502);

    CHECK_CASE("common leaves 4xx and 2xx alone");
    common_response(&response, 404, NULL, 0);
    CHECK(!outbox__classify_common(&result, &response));
    common_response(&response, 202, NULL, 0);
    CHECK(!outbox__classify_common(&result, &response));

    CHECK_CASE("common curl error without text");
    common_response(&response, 0, NULL, 0);
    response.curl_code = CURLE_COULDNT_RESOLVE_HOST;
    CHECK(outbox__classify_common(&result, &response));
    CHECK_STR(result.error.kind, "network");
    CHECK_CONTAINS(result.error.text, "curl error 6");
    CHECK_CONTAINS(result.error.text,
                   curl_easy_strerror(CURLE_COULDNT_RESOLVE_HOST));

    /* A transfer cut off after the status line still retries. */
    CHECK_CASE("common curl error after a status");
    common_response(&response, 200, NULL, 0);
    response.curl_code = CURLE_RECV_ERROR;
    CHECK(outbox__classify_common(&result, &response));
    CHECK_INT(result.kind, OUTBOX_RESULT_RETRY);
    CHECK_INT(result.status, 200);
}

int main(void)
{
    test_retry_after();
    test_create_errors();
    test_create_bad_key_hidden();
    test_create_success();
    test_create_file();
    test_secret();
    test_result_helpers();
    test_body_excerpt();
    test_classify_common();
    CHECK_DONE();
}
