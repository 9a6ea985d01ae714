/*
 * test_sendgrid.c - the SendGrid provider: the exact JSON request body,
 * the size cap, the table of responses and their classification, and one
 * request sent through libcurl to a server on 127.0.0.1 to check the URL
 * and the headers on the wire.
 *
 * Most messages are built by hand from static strings, so that each test
 * controls every field, and none of them is freed with
 * outbox_message_free. One test builds its message from a row, as the
 * store does.
 */
#include <stdlib.h>

#include <cjson/cJSON.h>

#include "capture_server.h"
#include "check.h"
#include "internal.h"
#include "provider_fixtures.h"
#include "provider_sendgrid.h"

/* 2025-03-05 10:10:00 UTC */
#define NOW 1741169400

static void init_minimal(outbox_message *message)
{
    init_minimal_message(message, "sendgrid");
}

static void test_minimal_body(void)
{
    outbox_message message;
    outbox_error err = {{0}, {0}};
    char *json = NULL;
    size_t size = 0;

    CHECK_CASE("minimal body");
    init_minimal(&message);
    CHECK_INT(outbox__sendgrid_body(&json, &size, &err, &message, NULL, 0),
              OUTBOX_EOK);
    CHECK_STR(json,
              "{\"personalizations\":[{\"to\":[{\"email\":\"a@x.io\"}],"
              "\"custom_args\":{\"outbox_id\":\"42\"}}],"
              "\"from\":{\"email\":\"no-reply@ex.com\"},"
              "\"subject\":\"Hi\","
              "\"content\":[{\"type\":\"text/plain\",\"value\":\"Hello\"}]}");
    CHECK_INT(size, json ? strlen(json) : 0);
    cJSON_free(json);
}

/* A dynamic template: template_id, the data in the personalization, no
 * content, and no subject when the row has none. */
static void test_template_body(void)
{
    outbox_message message;
    outbox_error err = {{0}, {0}};
    char *json = NULL;
    size_t size = 0;

    CHECK_CASE("dynamic template body");
    init_minimal(&message);
    message.subject = "";
    message.body_text = NULL;
    message.template_name = "d-13b8f94f";
    message.template_data = "{\"invoice\": \"RE-4711\", \"total\": 12.5}";
    CHECK_INT(outbox__sendgrid_body(&json, &size, &err, &message, NULL, 0),
              OUTBOX_EOK);
    CHECK_STR(json,
              "{\"personalizations\":[{\"to\":[{\"email\":\"a@x.io\"}],"
              "\"custom_args\":{\"outbox_id\":\"42\"},"
              "\"dynamic_template_data\":{\"invoice\":\"RE-4711\","
              "\"total\":12.5}}],"
              "\"from\":{\"email\":\"no-reply@ex.com\"},"
              "\"template_id\":\"d-13b8f94f\"}");
    cJSON_free(json);
}

static outbox_field full_metadata[] = {
    {"belegnr", "4711"},
    {"event", "mahnung"},
    {"email", "intern@example.com"},
};

static void init_full(outbox_message *message)
{
    init_full_message(message, "sendgrid");
    message->metadata = full_metadata;
    message->metadata_count = 3;
}

static void test_full_body(void)
{
    log_capture capture = {0, {0}};
    outbox_logger logger = {capture_log, &capture, 0};
    outbox_message message;
    outbox_error err = {{0}, {0}};
    char *json = NULL;
    size_t size = 0;

    CHECK_CASE("full body");
    init_full(&message);
    CHECK_INT(outbox__sendgrid_body(&json, &size, &err, &message, &logger,
                                    30000000),
              OUTBOX_EOK);

    /* Recipient names with a comma are quoted, but the sender's is not. */
    CHECK_STR(json,
              "{\"personalizations\":[{"
              "\"to\":[{\"email\":\"a.meier@example.org\","
              "\"name\":\"\\\"Meier, Anna\\\"\"},"
              "{\"email\":\"j.gross@example.de\","
              "\"name\":\"J\xc3\xbcrgen Gro\xc3\x9f\"}],"
              "\"cc\":[{\"email\":\"cc@example.org\"}],"
              "\"bcc\":[{\"email\":\"archive@ex.com\",\"name\":\"Archiv\"}],"
              "\"custom_args\":{\"outbox_id\":\"1101\",\"belegnr\":\"4711\","
              "\"erp_event\":\"mahnung\","
              "\"erp_email\":\"intern@example.com\"}}],"
              "\"from\":{\"email\":\"billing@ex.com\","
              "\"name\":\"Beispiel GmbH, Buchhaltung\"},"
              "\"reply_to_list\":[{\"email\":\"help@ex.com\","
              "\"name\":\"Support\"},{\"email\":\"billing@ex.com\"}],"
              "\"subject\":\"Rechnung 4711 \xe2\x80\x93 M\xc3\xa4rz\","
              "\"content\":["
              "{\"type\":\"text/plain\","
              "\"value\":\"Guten Tag,\\n\\\"Anhang\\\" siehe unten.\"},"
              "{\"type\":\"text/html\","
              "\"value\":\"<p>Guten Tag</p><img src=\\\"cid:logo\\\">\"}],"
              "\"attachments\":["
              "{\"content\":\"JVBERi0x\",\"filename\":\"rechnung.pdf\","
              "\"type\":\"application/pdf\",\"disposition\":\"attachment\"},"
              "{\"content\":\"iVBORw==\",\"filename\":\"logo.png\","
              "\"type\":\"image/png\",\"disposition\":\"inline\","
              "\"content_id\":\"logo\"}],"
              "\"headers\":{\"List-Unsubscribe\":\"<https://ex.com/u/1>\","
              "\"X-Campaign\":\"q1\","
              "\"Message-ID\":\"<1101.k3j2@ex.com>\"}}");

    /* One warning per renamed key, each naming the key. */
    CHECK_INT(capture.warnings, 2);
    CHECK_CONTAINS(capture.text, "id=1101 metadata key \"event\"");
    CHECK_CONTAINS(capture.text, "\"erp_event\"");
    CHECK_CONTAINS(capture.text, "metadata key \"email\"");
    cJSON_free(json);
}

static void test_single_reply_to(void)
{
    outbox_message message;
    outbox_error err = {{0}, {0}};
    char *json = NULL;
    size_t size = 0;

    CHECK_CASE("single reply-to");
    init_full(&message);
    message.reply_to.count = 1;
    CHECK_INT(outbox__sendgrid_body(&json, &size, &err, &message, NULL, 0),
              OUTBOX_EOK);
    CHECK_CONTAINS(json,
                   "\"reply_to\":{\"email\":\"help@ex.com\","
                   "\"name\":\"Support\"},\"subject\"");
    CHECK(json != NULL);
    CHECK(json == NULL || strstr(json, "reply_to_list") == NULL);
    cJSON_free(json);
}

static void test_name_quoting(void)
{
    outbox_address to[] = {{"Sales; \"East\" \\ West", "s@ex.com"}};
    outbox_message message;
    outbox_error err = {{0}, {0}};
    char *json = NULL;
    size_t size = 0;

    CHECK_CASE("name quoting escapes");
    init_minimal(&message);
    message.to.items = to;
    CHECK_INT(outbox__sendgrid_body(&json, &size, &err, &message, NULL, 0),
              OUTBOX_EOK);

    /* The name is "Sales; \"East\" \\ West" once quoted, then JSON-escaped. */
    CHECK_CONTAINS(json, "\"name\":\"\\\"Sales; \\\\\\\"East\\\\\\\" "
                         "\\\\\\\\ West\\\"\"");
    cJSON_free(json);
}

static void test_reserved_outbox_id(void)
{
    outbox_field metadata[] = {{"outbox_id", "7"}, {"erp_outbox_id", "8"}};
    log_capture capture = {0, {0}};
    outbox_logger logger = {capture_log, &capture, 0};
    outbox_message message;
    outbox_error err = {{0}, {0}};
    char *json = NULL;
    size_t size = 0;

    CHECK_CASE("metadata outbox_id renamed");
    init_minimal(&message);
    message.metadata = metadata;
    message.metadata_count = 2;
    CHECK_INT(outbox__sendgrid_body(&json, &size, &err, &message, &logger,
                                    0),
              OUTBOX_EOK);

    /* The renamed key takes erp_outbox_id, so the real one is dropped
     * rather than sent twice under one name. */
    CHECK_CONTAINS(json, "\"custom_args\":{\"outbox_id\":\"42\","
                         "\"erp_outbox_id\":\"7\"}");
    CHECK_INT(capture.warnings, 2);
    CHECK_CONTAINS(capture.text, "given twice");
    cJSON_free(json);
}

static void test_html_only_and_message_id(void)
{
    outbox_field headers[] = {{"message-id", "<row@erp.example>"}};
    log_capture capture = {0, {0}};
    outbox_logger logger = {capture_log, &capture, 0};
    outbox_message message;
    outbox_error err = {{0}, {0}};
    char *json = NULL;
    size_t size = 0;

    CHECK_CASE("html only, row Message-ID");
    init_minimal(&message);
    message.body_text = NULL;
    message.body_html = "<b>Hi</b>";
    message.headers = headers;
    message.header_count = 1;
    message.message_id = "42.x@ex.com";
    CHECK_INT(outbox__sendgrid_body(&json, &size, &err, &message, &logger,
                                    0),
              OUTBOX_EOK);
    CHECK_CONTAINS(json, "\"content\":[{\"type\":\"text/html\","
                         "\"value\":\"<b>Hi</b>\"}],"
                         "\"headers\":{\"Message-ID\":\"<42.x@ex.com>\"}}");
    CHECK_INT(capture.warnings, 1);
    cJSON_free(json);
}

/* A row as the ERP writes it: the number in the metadata becomes a
 * string, because SendGrid rejects custom args that are not strings. */
static void test_body_from_row(void)
{
    outbox_row row;
    outbox_message *message = NULL;
    outbox_error err = {{0}, {0}};
    char *json = NULL;
    size_t size = 0;

    CHECK_CASE("body from built row");
    memset(&row, 0, sizeof(row));
    row.id = 1101;
    row.attempt = 1;
    row.sender = "Beispiel GmbH <billing@ex.com>";
    row.recipients = "\"Meier, Anna\" <a.meier@example.org>";
    row.subject = "Mahnung";
    row.body_text = "Hallo";
    row.body_text_size = 5;
    row.metadata = "{\"belegnr\": 4711, \"event\": \"mahnung\", "
                   "\"email\": \"intern@example.com\"}";
    row.provider = "sendgrid";
    row.message_id = "1101.x@ex.com";
    if (outbox_message_build(&message, &err, &row, NULL) != OUTBOX_EOK) {
        CHECK_FAIL("build failed: %s: %s", err.kind, err.text);
        return;
    }
    CHECK_INT(outbox__sendgrid_body(&json, &size, &err, message, NULL, 0),
              OUTBOX_EOK);
    CHECK_CONTAINS(json, "\"to\":[{\"email\":\"a.meier@example.org\","
                         "\"name\":\"\\\"Meier, Anna\\\"\"}]");
    CHECK_CONTAINS(json, "\"custom_args\":{\"outbox_id\":\"1101\","
                         "\"belegnr\":\"4711\",\"erp_event\":\"mahnung\","
                         "\"erp_email\":\"intern@example.com\"}");
    CHECK_CONTAINS(json, "\"from\":{\"email\":\"billing@ex.com\","
                         "\"name\":\"Beispiel GmbH\"}");
    CHECK_CONTAINS(json, "\"Message-ID\":\"<1101.x@ex.com>\"");
    cJSON_free(json);
    outbox_message_free(message);
}

static void test_no_to_recipient(void)
{
    outbox_message message;
    outbox_error err = {{0}, {0}};
    char *json = NULL;
    size_t size = 0;

    CHECK_CASE("no to recipient");
    init_minimal(&message);
    message.bcc = message.to;
    message.to.count = 0;
    CHECK_INT(outbox__sendgrid_body(&json, &size, &err, &message, NULL, 0),
              OUTBOX_EINVAL);
    CHECK_STR(err.kind, "invalid_recipients");
    CHECK(json == NULL);
}

static void test_too_large(void)
{
    static unsigned char bytes[300];
    outbox_attachment attachment = {"scan.pdf", "application/pdf", NULL,
                                    bytes, sizeof(bytes)};
    outbox_message message;
    outbox_error err = {{0}, {0}};
    char *json = NULL;
    size_t size = 0;

    CHECK_CASE("too large after base64");
    init_minimal(&message);
    message.attachments = &attachment;
    message.attachment_count = 1;

    /* 2 (subject) + 5 (text) + 400 (base64 of 300 bytes) = 407: the raw
     * attachment fits under 350, the encoded one does not. */
    CHECK_INT(outbox__sendgrid_body(&json, &size, &err, &message, NULL, 350),
              OUTBOX_ELIMIT);
    CHECK_STR(err.kind, "message_too_large");
    CHECK_CONTAINS(err.text, "407 bytes");
    CHECK_CONTAINS(err.text, "350 bytes");
    CHECK(json == NULL);
    CHECK_INT(size, 0);

    CHECK_CASE("size equal to the cap");
    CHECK_INT(outbox__sendgrid_body(&json, &size, &err, &message, NULL, 407),
              OUTBOX_EOK);
    CHECK(json != NULL);
    cJSON_free(json);
}

/* ------------------------------------------------------------------ */
/* Classification                                                      */
/* ------------------------------------------------------------------ */

typedef struct classify_case {
    const char *name;
    CURLcode curl_code;
    const char *curl_error;
    long status;
    const char *message_id;    /* X-Message-Id, or NULL */
    const char *retry_after;   /* Retry-After, or NULL */
    const char *reset;         /* X-RateLimit-Reset, or NULL */
    const char *body;
    outbox_result_kind kind;
    const char *error_kind;
    int64_t retry_after_seconds;
    bool counts_as_failure;
    const char *provider_id;
    const char *text;          /* expected part of error.text */
} classify_case;

#define NGINX_413                                                        \
    "<html>\r\n<head><title>413 Request Entity Too Large</title></head>" \
    "\r\n<body>\r\n<center><h1>413 Request Entity Too Large</h1>"        \
    "</center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"

static const classify_case classify_cases[] = {
    {"202 with id", CURLE_OK, "", 202, "Wq7xN2hQRkO9exampleAA", NULL,
     "1741169460", "", OUTBOX_RESULT_SENT, "", -1, true,
     "Wq7xN2hQRkO9exampleAA", ""},
    {"202 without id", CURLE_OK, "", 202, NULL, NULL, NULL, "",
     OUTBOX_RESULT_SENT, "", -1, true, "", "X-Message-Id"},
    {"202 then transfer error", CURLE_RECV_ERROR, "Connection reset", 202,
     "Wq7xN2hQRkO9exampleAC", NULL, NULL, "", OUTBOX_RESULT_SENT, "", -1,
     true, "Wq7xN2hQRkO9exampleAC", "then the transfer failed"},
    {"400 with field", CURLE_OK, "", 400, NULL, NULL, NULL,
     "{\"errors\":[{\"message\":\"The from email does not contain a valid "
     "address.\",\"field\":\"from\",\"help\":\"http://sendgrid.com/docs\"}]}",
     OUTBOX_RESULT_FAILED, "provider_validation", -1, true, "",
     "HTTP 400: from: The from email does not contain a valid address."},
    {"400 with two errors", CURLE_OK, "", 400, NULL, NULL, NULL,
     "{\"errors\":[{\"message\":\"Bad Request\",\"field\":null},"
     "{\"message\":\"Does not contain a valid address.\","
     "\"field\":\"personalizations.0.to.0.email\"}]}",
     OUTBOX_RESULT_FAILED, "provider_validation", -1, true, "",
     "HTTP 400: Bad Request; personalizations.0.to.0.email: Does not "
     "contain a valid address."},
    {"400 without JSON", CURLE_OK, "", 400, NULL, NULL, NULL,
     "Bad Request\n", OUTBOX_RESULT_FAILED, "provider_validation", -1, true,
     "", "HTTP 400: Bad Request"},
    {"401", CURLE_OK, "", 401, NULL, NULL, NULL,
     "{\"errors\":[{\"field\":null,\"message\":\"The provided authorization "
     "grant is invalid, expired, or revoked\"}]}",
     OUTBOX_RESULT_MISCONFIGURED, "provider_auth", -1, false, "",
     "HTTP 401: The provided authorization grant is invalid"},
    {"403 unverified sender", CURLE_OK, "", 403, NULL, NULL, NULL,
     "{\"errors\":[{\"message\":\"The from address does not match a "
     "verified Sender Identity.\",\"field\":\"from\",\"help\":null}]}",
     OUTBOX_RESULT_MISCONFIGURED, "provider_forbidden", -1, false, "",
     "HTTP 403: from: The from address does not match a verified Sender "
     "Identity."},
    {"413 nginx HTML", CURLE_OK, "", 413, NULL, NULL, NULL, NGINX_413,
     OUTBOX_RESULT_FAILED, "message_too_large", -1, true, "",
     "HTTP 413: <html> <head><title>413 Request Entity Too Large</title>"},
    {"429 Retry-After 120", CURLE_OK, "", 429, NULL, "120", NULL,
     "{\"errors\":[{\"field\":null,\"message\":\"too many requests\"}]}",
     OUTBOX_RESULT_RETRY, "rate_limited", 120, false, "",
     "too many requests"},
    {"429 X-RateLimit-Reset now+90", CURLE_OK, "", 429, NULL, NULL,
     "1741169490", "", OUTBOX_RESULT_RETRY, "rate_limited", 90, false, "",
     "HTTP 429"},
    {"429 reset preferred", CURLE_OK, "", 429, NULL, "120", "1741169490",
     "", OUTBOX_RESULT_RETRY, "rate_limited", 90, false, "", "HTTP 429"},
    {"429 reset in the past", CURLE_OK, "", 429, NULL, NULL, "1741169000",
     "", OUTBOX_RESULT_RETRY, "rate_limited", 1, false, "", "HTTP 429"},
    {"429 without headers", CURLE_OK, "", 429, NULL, NULL, NULL, "",
     OUTBOX_RESULT_RETRY, "rate_limited", -1, false, "", "HTTP 429"},
    {"500", CURLE_OK, "", 500, NULL, NULL, "1741169490",
     "{\"errors\":[{\"field\":null,\"message\":\"internal error\"}]}",
     OUTBOX_RESULT_RETRY, "provider_unavailable", -1, true, "",
     "HTTP 500: {\"errors\""},
    {"503 HTML with Retry-After", CURLE_OK, "", 503, NULL, "30", NULL,
     "<html><body><h1>503 Service Unavailable</h1></body></html>",
     OUTBOX_RESULT_RETRY, "provider_unavailable", 30, true, "",
     "HTTP 503: <html><body><h1>503 Service Unavailable</h1>"},
    {"curl timeout", CURLE_OPERATION_TIMEDOUT,
     "Operation timed out after 30001 milliseconds with 0 bytes received",
     0, NULL, NULL, NULL, "", OUTBOX_RESULT_RETRY, "timeout", -1, true, "",
     "Operation timed out after 30001 milliseconds"},
    {"curl could not connect", CURLE_COULDNT_CONNECT,
     "Failed to connect to api.sendgrid.com port 443: Connection refused", 0,
     NULL, NULL, NULL, "", OUTBOX_RESULT_RETRY, "network", -1, true, "",
     "Connection refused"},
    {"404", CURLE_OK, "", 404, NULL, NULL, NULL, "Not Found",
     OUTBOX_RESULT_FAILED, "provider_rejected", -1, true, "",
     "HTTP 404: Not Found"},
    {"451 data residency", CURLE_OK, "", 451, NULL, NULL, NULL, "",
     OUTBOX_RESULT_FAILED, "provider_rejected", -1, true, "",
     "HTTP 451: (empty body)"},
    {"301 redirect", CURLE_OK, "", 301, NULL, NULL, NULL, "",
     OUTBOX_RESULT_MISCONFIGURED, "provider_redirect", -1, false, "",
     "check base_url"},
};

static void run_classify_case(const classify_case *c)
{
    outbox_field headers[3];
    outbox_response response;
    outbox_result result;
    size_t count = 0;

    if (c->message_id != NULL)
        headers[count++] = (outbox_field){"x-message-id",
                                          (char *)c->message_id};
    if (c->retry_after != NULL)
        headers[count++] = (outbox_field){"Retry-After",
                                          (char *)c->retry_after};
    if (c->reset != NULL)
        headers[count++] = (outbox_field){"X-RateLimit-Reset",
                                          (char *)c->reset};
    memset(&response, 0, sizeof(response));
    response.curl_code = c->curl_code;
    response.curl_error = c->curl_error;
    response.status = c->status;
    response.headers = headers;
    response.header_count = count;
    response.body = c->body;
    response.body_size = strlen(c->body);
    response.now = NOW;

    CHECK_CASE(c->name);
    memset(&result, 0x5A, sizeof(result));
    outbox__sendgrid_classify(&result, &response);
    CHECK_STR(outbox_result_kind_name(result.kind),
              outbox_result_kind_name(c->kind));
    CHECK_STR(result.error.kind, c->error_kind);
    CHECK_INT(result.retry_after, c->retry_after_seconds);
    CHECK_INT(result.counts_as_failure, c->counts_as_failure);
    CHECK_INT(result.status, c->status);
    CHECK_STR(result.provider_message_id, c->provider_id);
    CHECK_CONTAINS(result.error.text, c->text);
}

static void test_classify_table(void)
{
    size_t count = sizeof(classify_cases) / sizeof(classify_cases[0]);

    for (size_t i = 0; i < count; i++)
        run_classify_case(&classify_cases[i]);
}

static void test_classify_long_error_list(void)
{
    char body[8192];
    size_t used = 0;
    outbox_response response;
    outbox_result result;

    CHECK_CASE("400 long error list is cut");
    used += (size_t)snprintf(body, sizeof(body), "{\"errors\":[");
    for (int i = 0; i < 60; i++)
        used += (size_t)snprintf(body + used, sizeof(body) - used,
                                 "%s{\"field\":\"f%d\",\"message\":\"Das "
                                 "Feld ist ung\xc3\xbcltig.\"}",
                                 i ? "," : "", i);
    snprintf(body + used, sizeof(body) - used, "]}");
    memset(&response, 0, sizeof(response));
    response.status = 400;
    response.body = body;
    response.body_size = strlen(body);
    outbox__sendgrid_classify(&result, &response);
    CHECK_STR(result.error.kind, "provider_validation");
    CHECK_CONTAINS(result.error.text, "HTTP 400: f0: Das Feld ist ung");
    CHECK_CONTAINS(result.error.text, "...");
    CHECK(outbox__utf8_valid(result.error.text, strlen(result.error.text)));
}

/* ------------------------------------------------------------------ */
/* One request on the wire                                             */
/* ------------------------------------------------------------------ */

/* What the capture server responds with. */
static const char capture_response[] =
    "HTTP/1.1 202 Accepted\r\n"
    "X-Message-Id: Wq7xN2hQRkO9exampleAB\r\n"
    "Content-Length: 0\r\n\r\n";

static outbox_provider *create_sendgrid(const char *base_url,
                                        double max_bytes)
{
    cJSON *config = cJSON_CreateObject();
    outbox_provider *provider = NULL;
    outbox_error err = {{0}, {0}};

    cJSON_AddStringToObject(config, "name", "sg-test");
    cJSON_AddStringToObject(config, "type", "sendgrid");
    cJSON_AddStringToObject(config, "api_key", "SG.test-key.abc");
    cJSON_AddStringToObject(config, "base_url", base_url);
    cJSON_AddNumberToObject(config, "max_message_bytes", max_bytes);
    cJSON_AddNumberToObject(config, "timeout_seconds", 10);
    if (outbox_provider_create(&provider, &err, config, NULL) != OUTBOX_EOK)
        CHECK_FAIL("create failed: %s: %s", err.kind, err.text);
    cJSON_Delete(config);
    return provider;
}

static void check_request_on_wire(const capture_server *server,
                                  const outbox_message *message)
{
    char *json = NULL;
    size_t size = 0;
    outbox_error err = {{0}, {0}};
    const char *body = strstr(server->request, "\r\n\r\n");

    CHECK_CONTAINS(server->request, "POST /v3/mail/send HTTP/1.1\r\n");
    CHECK_CONTAINS(server->request,
                   "\r\nAuthorization: Bearer SG.test-key.abc\r\n");
    CHECK_CONTAINS(server->request, "\r\nContent-Type: application/json\r\n");
    CHECK_CONTAINS(server->request, "\r\nAccept: application/json\r\n");
    CHECK(strstr(server->request, "Expect:") == NULL);
    CHECK_INT(outbox__sendgrid_body(&json, &size, &err, message, NULL, 0),
              OUTBOX_EOK);
    CHECK_STR(body != NULL ? body + 4 : NULL, json);
    cJSON_free(json);
}

static void test_request_on_wire(void)
{
    capture_server server;
    outbox_provider *provider;
    outbox_message message;
    outbox_error err = {{0}, {0}};
    void *request = NULL;
    char base_url[64];
    CURL *easy;
    long status = 0;

    CHECK_CASE("request on the wire");
    if (!capture_server_start(&server, capture_response, 16384)) {
        CHECK_FAIL("cannot listen on 127.0.0.1");
        return;
    }
    snprintf(base_url, sizeof(base_url), "http://127.0.0.1:%d/",
             server.port);
    provider = create_sendgrid(base_url, 30000000);
    easy = curl_easy_init();
    init_full(&message);
    if (provider == NULL || easy == NULL)
        goto cleanup;
    CHECK_INT(outbox_provider_prepare(provider, &request, &err, easy,
                                      &message),
              OUTBOX_EOK);
    CHECK_INT(curl_easy_perform(easy), CURLE_OK);
    curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &status);
    CHECK_INT(status, 202);

cleanup:
    capture_server_stop(&server);
    check_request_on_wire(&server, &message);
    outbox_provider_release(provider, request);
    curl_easy_cleanup(easy);
    outbox_provider_free(provider);
    capture_server_free(&server);
}

static void test_prepare_too_large(void)
{
    outbox_provider *provider = create_sendgrid("https://api.sendgrid.com",
                                                5);
    outbox_message message;
    outbox_error err = {{0}, {0}};
    void *request = (void *)&message;
    CURL *easy = curl_easy_init();

    CHECK_CASE("prepare too large");
    init_minimal(&message);
    if (provider != NULL && easy != NULL) {
        CHECK_INT(outbox_provider_prepare(provider, &request, &err, easy,
                                          &message),
                  OUTBOX_ELIMIT);
        CHECK(request == NULL);
        CHECK_STR(err.kind, "message_too_large");
        CHECK_CONTAINS(err.text, "7 bytes encoded");
        CHECK(outbox_provider_uses_curl(provider));
    }
    curl_easy_cleanup(easy);
    outbox_provider_free(provider);
}

int main(void)
{
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
        return 1;
    test_minimal_body();
    test_template_body();
    test_full_body();
    test_single_reply_to();
    test_name_quoting();
    test_reserved_outbox_id();
    test_html_only_and_message_id();
    test_body_from_row();
    test_no_to_recipient();
    test_too_large();
    test_classify_table();
    test_classify_long_error_list();
    test_request_on_wire();
    test_prepare_too_large();
    curl_global_cleanup();
    CHECK_DONE();
}
