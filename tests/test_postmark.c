/*
 * test_postmark.c - the Postmark provider: the exact JSON request body,
 * the recipient and size caps, the config keys, and the table of
 * responses and their classification. One request goes through libcurl
 * to a server on 127.0.0.1 to check the URL and the headers on the wire.
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
#include "provider_postmark.h"

/* 2025-03-05 10:10:00 UTC */
#define NOW 1741169400

static void init_minimal(outbox_message *message)
{
    init_minimal_message(message, "postmark");
}

static void test_minimal_body(void)
{
    outbox_message message;
    outbox_error err = {{0}, {0}};
    char *json = NULL;
    size_t size = 0;

    CHECK_CASE("minimal body");
    init_minimal(&message);
    CHECK_INT(outbox__postmark_body(&json, &size, &err, &message, "outbound",
                                    NULL, 0),
              OUTBOX_EOK);
    CHECK_STR(json, "{\"From\":\"no-reply@ex.com\",\"To\":\"a@x.io\","
                    "\"Subject\":\"Hi\",\"TextBody\":\"Hello\","
                    "\"Metadata\":{\"outbox_id\":\"42\"},"
                    "\"MessageStream\":\"outbound\"}");
    CHECK_INT(size, json ? strlen(json) : 0);
    cJSON_free(json);
}

static outbox_field full_metadata[] = {
    {"belegnr", "4711"},
    {"outbox_id", "7"},
};

static void init_full(outbox_message *message)
{
    init_full_message(message, "postmark");
    message->metadata = full_metadata;
    message->metadata_count = 2;
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
    CHECK_INT(outbox__postmark_body(&json, &size, &err, &message,
                                    "broadcast", &logger, 10000000),
              OUTBOX_EOK);

    /* Names with a comma are quoted. UTF-8 names and the subject stay
     * UTF-8, and the inline image's ContentID gets the cid: prefix. */
    CHECK_STR(json,
              "{\"From\":\"\\\"Beispiel GmbH, Buchhaltung\\\" "
              "<billing@ex.com>\","
              "\"To\":\"\\\"Meier, Anna\\\" <a.meier@example.org>, "
              "J\xc3\xbcrgen Gro\xc3\x9f <j.gross@example.de>\","
              "\"Cc\":\"cc@example.org\","
              "\"Bcc\":\"Archiv <archive@ex.com>\","
              "\"ReplyTo\":\"Support <help@ex.com>, billing@ex.com\","
              "\"Subject\":\"Rechnung 4711 \xe2\x80\x93 M\xc3\xa4rz\","
              "\"TextBody\":\"Guten Tag,\\n\\\"Anhang\\\" siehe unten.\","
              "\"HtmlBody\":\"<p>Guten Tag</p><img src=\\\"cid:logo\\\">\","
              "\"Headers\":["
              "{\"Name\":\"List-Unsubscribe\","
              "\"Value\":\"<https://ex.com/u/1>\"},"
              "{\"Name\":\"X-Campaign\",\"Value\":\"q1\"},"
              "{\"Name\":\"Message-ID\",\"Value\":\"<1101.k3j2@ex.com>\"}],"
              "\"Metadata\":{\"outbox_id\":\"1101\",\"belegnr\":\"4711\","
              "\"erp_outbox_id\":\"7\"},"
              "\"Attachments\":["
              "{\"Name\":\"rechnung.pdf\",\"Content\":\"JVBERi0x\","
              "\"ContentType\":\"application/pdf\"},"
              "{\"Name\":\"logo.png\",\"Content\":\"iVBORw==\","
              "\"ContentType\":\"image/png\",\"ContentID\":\"cid:logo\"}],"
              "\"MessageStream\":\"broadcast\"}");
    CHECK_INT(size, json ? strlen(json) : 0);

    /* The renamed metadata key is named in a warning. */
    CHECK_INT(capture.warnings, 1);
    CHECK_CONTAINS(capture.text, "id=1101 metadata key \"outbox_id\"");
    CHECK_CONTAINS(capture.text, "\"erp_outbox_id\"");
    cJSON_free(json);
}

/* A template by alias: TemplateAlias and TemplateModel replace Subject,
 * TextBody and HtmlBody, and the rest of the message is sent as usual. */
static void test_template_alias_body(void)
{
    outbox_message message;
    outbox_error err = {{0}, {0}};
    char *json = NULL;
    size_t size = 0;

    CHECK_CASE("template alias body");
    init_full(&message);
    message.subject = "";
    message.body_text = NULL;
    message.body_html = NULL;
    message.metadata_count = 1;
    message.template_name = "invoice-reminder";
    message.template_data = "{\"invoice\": \"RE-4711\", \"total\": 12.5}";
    CHECK_INT(outbox__postmark_body(&json, &size, &err, &message,
                                    "outbound", NULL, 0),
              OUTBOX_EOK);
    CHECK_STR(json,
              "{\"From\":\"\\\"Beispiel GmbH, Buchhaltung\\\" "
              "<billing@ex.com>\","
              "\"To\":\"\\\"Meier, Anna\\\" <a.meier@example.org>, "
              "J\xc3\xbcrgen Gro\xc3\x9f <j.gross@example.de>\","
              "\"Cc\":\"cc@example.org\","
              "\"Bcc\":\"Archiv <archive@ex.com>\","
              "\"ReplyTo\":\"Support <help@ex.com>, billing@ex.com\","
              "\"TemplateAlias\":\"invoice-reminder\","
              "\"TemplateModel\":{\"invoice\":\"RE-4711\",\"total\":12.5},"
              "\"Headers\":["
              "{\"Name\":\"List-Unsubscribe\","
              "\"Value\":\"<https://ex.com/u/1>\"},"
              "{\"Name\":\"X-Campaign\",\"Value\":\"q1\"},"
              "{\"Name\":\"Message-ID\",\"Value\":\"<1101.k3j2@ex.com>\"}],"
              "\"Metadata\":{\"outbox_id\":\"1101\",\"belegnr\":\"4711\"},"
              "\"Attachments\":["
              "{\"Name\":\"rechnung.pdf\",\"Content\":\"JVBERi0x\","
              "\"ContentType\":\"application/pdf\"},"
              "{\"Name\":\"logo.png\",\"Content\":\"iVBORw==\","
              "\"ContentType\":\"image/png\",\"ContentID\":\"cid:logo\"}],"
              "\"MessageStream\":\"outbound\"}");
    CHECK_INT(size, json ? strlen(json) : 0);
    cJSON_free(json);
}

typedef struct template_case {
    char *name;            /* the template column */
    char *data;            /* the template_data column */
    const char *template;  /* the body's template keys, as printed */
} template_case;

/* Digits name a template by its numeric TemplateId, written without
 * rounding. Anything else, a leading zero included, is an alias. */
static const template_case template_cases[] = {
    {"8675309", NULL, "\"TemplateId\":8675309,\"TemplateModel\":{}"},
    {"12345678901234567890", "{}",
     "\"TemplateId\":12345678901234567890,\"TemplateModel\":{}"},
    {"0815", "{\"a\":[1,{\"b\":null}]}",
     "\"TemplateAlias\":\"0815\",\"TemplateModel\":{\"a\":[1,{\"b\":null}]}"},
    {"welcome-2", NULL,
     "\"TemplateAlias\":\"welcome-2\",\"TemplateModel\":{}"},
};

static void test_template_id_or_alias(void)
{
    size_t count = sizeof(template_cases) / sizeof(template_cases[0]);

    for (size_t i = 0; i < count; i++) {
        outbox_message message;
        outbox_error err = {{0}, {0}};
        char *json = NULL;
        size_t size = 0;
        char want[256];

        CHECK_CASE(template_cases[i].name);
        init_minimal(&message);
        message.subject = "";
        message.body_text = NULL;
        message.template_name = template_cases[i].name;
        message.template_data = template_cases[i].data;
        snprintf(want, sizeof(want),
                 "{\"From\":\"no-reply@ex.com\",\"To\":\"a@x.io\",%s,"
                 "\"Metadata\":{\"outbox_id\":\"42\"},"
                 "\"MessageStream\":\"outbound\"}",
                 template_cases[i].template);
        CHECK_INT(outbox__postmark_body(&json, &size, &err, &message,
                                        "outbound", NULL, 0),
                  OUTBOX_EOK);
        CHECK_STR(json, want);
        cJSON_free(json);
    }
}

/* The template data counts against max_message_bytes like a body. */
static void test_template_too_large(void)
{
    outbox_message message;
    outbox_error err = {{0}, {0}};
    char *json = NULL;
    size_t size = 0;

    CHECK_CASE("template data too large");
    init_minimal(&message);
    message.subject = "";
    message.body_text = NULL;
    message.template_name = "invoice";
    message.template_data = "{\"n\": \"0123456789\"}";
    CHECK_INT(outbox__postmark_body(&json, &size, &err, &message,
                                    "outbound", NULL, 18),
              OUTBOX_ELIMIT);
    CHECK_STR(err.kind, "message_too_large");
    CHECK_CONTAINS(err.text, "message is 19 bytes encoded");
    CHECK(json == NULL);
}

static void test_name_quoting(void)
{
    outbox_address to[] = {
        {"Sales \"East\" \\ West", "s@ex.com"},
        {"O'Brien & Sons", "o@ex.com"},
        {"   ", "blank@ex.com"},
    };
    outbox_message message;
    outbox_error err = {{0}, {0}};
    char *json = NULL;
    size_t size = 0;

    CHECK_CASE("name quoting escapes");
    init_minimal(&message);
    message.to.items = to;
    message.to.count = 3;
    CHECK_INT(outbox__postmark_body(&json, &size, &err, &message, "outbound",
                                    NULL, 0),
              OUTBOX_EOK);

    /* The name is quoted as "Sales \"East\" \\ West", then JSON-escaped.
     * Atext such as ' and & needs no quotes, and a blank name is left
     * out. */
    CHECK_CONTAINS(json, "\"To\":\"\\\"Sales \\\\\\\"East\\\\\\\" "
                         "\\\\\\\\ West\\\" <s@ex.com>, "
                         "O'Brien & Sons <o@ex.com>, blank@ex.com\"");
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
    CHECK_INT(outbox__postmark_body(&json, &size, &err, &message, "outbound",
                                    &logger, 0),
              OUTBOX_EOK);
    CHECK_STR(json, "{\"From\":\"no-reply@ex.com\",\"To\":\"a@x.io\","
                    "\"Subject\":\"Hi\",\"HtmlBody\":\"<b>Hi</b>\","
                    "\"Headers\":[{\"Name\":\"Message-ID\","
                    "\"Value\":\"<42.x@ex.com>\"}],"
                    "\"Metadata\":{\"outbox_id\":\"42\"},"
                    "\"MessageStream\":\"outbound\"}");
    CHECK_INT(capture.warnings, 1);
    CHECK_CONTAINS(capture.text, "id=42 header Message-ID from the row");
    cJSON_free(json);
}

/* A row as the ERP writes it: the number in the metadata becomes a
 * string, because Postmark rejects metadata values that are not strings,
 * and the attachment's content ID comes from its column. */
static void test_body_from_row(void)
{
    static const unsigned char pdf[] = "%PDF-1.4\n%\xe2\xe3\xcf\xd3\n";
    outbox_attachment attachment = {"Rechnung M\xc3\xa4rz.pdf",
                                    "application/pdf", NULL,
                                    (unsigned char *)pdf, sizeof(pdf) - 1};
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
    row.cc = "einkauf@example.org; A.Meier@example.org";
    row.subject = "Rechnung f\xc3\xbcr M\xc3\xa4rz";
    row.body_text = "Hallo";
    row.body_text_size = 5;
    row.metadata = "{\"belegnr\": 4711, \"storno\": false}";
    row.provider = "postmark";
    row.message_id = "1101.x@ex.com";
    row.attachments = &attachment;
    row.attachment_count = 1;
    if (outbox_message_build(&message, &err, &row, NULL) != OUTBOX_EOK) {
        CHECK_FAIL("build failed: %s: %s", err.kind, err.text);
        return;
    }
    CHECK_INT(outbox__postmark_body(&json, &size, &err, message, "outbound",
                                    NULL, 10000000),
              OUTBOX_EOK);

    /* The repeated address stays in To only. */
    CHECK_STR(json,
              "{\"From\":\"Beispiel GmbH <billing@ex.com>\","
              "\"To\":\"\\\"Meier, Anna\\\" <a.meier@example.org>\","
              "\"Cc\":\"einkauf@example.org\","
              "\"Subject\":\"Rechnung f\xc3\xbcr M\xc3\xa4rz\","
              "\"TextBody\":\"Hallo\","
              "\"Headers\":[{\"Name\":\"Message-ID\","
              "\"Value\":\"<1101.x@ex.com>\"}],"
              "\"Metadata\":{\"outbox_id\":\"1101\",\"belegnr\":\"4711\","
              "\"storno\":\"false\"},"
              "\"Attachments\":[{\"Name\":\"Rechnung M\xc3\xa4rz.pdf\","
              "\"Content\":\"JVBERi0xLjQKJeLjz9MK\","
              "\"ContentType\":\"application/pdf\"}],"
              "\"MessageStream\":\"outbound\"}");
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
    CHECK_INT(outbox__postmark_body(&json, &size, &err, &message, "outbound",
                                    NULL, 0),
              OUTBOX_EINVAL);
    CHECK_STR(err.kind, "invalid_recipients");
    CHECK(json == NULL);
}

/* Postmark requires a body even next to attachments. A message built from
 * a row always has one, so this guards hand-built messages. */
static void test_attachment_without_body(void)
{
    outbox_message message;
    outbox_error err = {{0}, {0}};
    char *json = NULL;
    size_t size = 0;

    CHECK_CASE("attachment without body");
    init_minimal(&message);
    message.body_text = "";
    message.attachments = full_attachments;
    message.attachment_count = 1;
    CHECK_INT(outbox__postmark_body(&json, &size, &err, &message, "outbound",
                                    NULL, 0),
              OUTBOX_EINVAL);
    CHECK_STR(err.kind, "missing_body");
    CHECK_CONTAINS(err.text, "even when the message has attachments");
    CHECK(json == NULL);
}

static void test_recipient_limit(void)
{
    static char emails[51][24];
    static outbox_address addresses[51];
    outbox_message message;
    outbox_error err = {{0}, {0}};
    char *json = NULL;
    size_t size = 0;

    for (int i = 0; i < 51; i++) {
        snprintf(emails[i], sizeof(emails[i]), "r%d@example.org", i);
        addresses[i].name = NULL;
        addresses[i].email = emails[i];
    }

    /* 30 To, 10 Cc and 10 Bcc: exactly the limit. */
    CHECK_CASE("50 recipients pass");
    init_minimal(&message);
    message.to.items = addresses;
    message.to.count = 30;
    message.cc.items = addresses + 30;
    message.cc.count = 10;
    message.bcc.items = addresses + 40;
    message.bcc.count = 10;
    CHECK_INT(outbox__postmark_body(&json, &size, &err, &message, "outbound",
                                    NULL, 0),
              OUTBOX_EOK);
    CHECK_CONTAINS(json, "\"Bcc\":\"r40@example.org, r41@example.org, ");
    cJSON_free(json);
    json = NULL;

    CHECK_CASE("51 recipients fail");
    message.bcc.count = 11;
    CHECK_INT(outbox__postmark_body(&json, &size, &err, &message, "outbound",
                                    NULL, 0),
              OUTBOX_ELIMIT);
    CHECK_STR(err.kind, "limit_exceeded");
    CHECK_STR(err.text, "message has 51 recipients (to, cc and bcc), over "
                        "the Postmark limit of 50 per message");
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
    CHECK_INT(outbox__postmark_body(&json, &size, &err, &message, "outbound",
                                    NULL, 350),
              OUTBOX_ELIMIT);
    CHECK_STR(err.kind, "message_too_large");
    CHECK_STR(err.text, "message is 407 bytes encoded (bodies, subject, "
                        "headers and base64 attachments), over the "
                        "Postmark limit of 350 bytes (max_message_bytes)");
    CHECK(json == NULL);
    CHECK_INT(size, 0);

    CHECK_CASE("size equal to the cap");
    CHECK_INT(outbox__postmark_body(&json, &size, &err, &message, "outbound",
                                    NULL, 407),
              OUTBOX_EOK);
    CHECK(json != NULL);
    cJSON_free(json);
}

/* A scan of 8 MiB is 11,184,812 bytes after base64: over Postmark's
 * 10 MB, though the file itself is under it. */
static void test_scan_over_default_cap(void)
{
    size_t scan_size = 8 * 1024 * 1024;
    unsigned char *scan = calloc(1, scan_size);
    outbox_attachment attachment = {"scan_8MiB.pdf", "application/pdf",
                                    NULL, scan, scan_size};
    outbox_message message;
    outbox_error err = {{0}, {0}};
    char *json = NULL;
    size_t size = 0;

    CHECK_CASE("8 MiB scan over 10 MB");
    if (scan == NULL) {
        CHECK_FAIL("out of memory");
        return;
    }
    init_minimal(&message);
    message.attachments = &attachment;
    message.attachment_count = 1;
    CHECK_INT(outbox__postmark_body(&json, &size, &err, &message, "outbound",
                                    NULL, 10000000),
              OUTBOX_ELIMIT);
    CHECK_STR(err.kind, "message_too_large");
    CHECK_CONTAINS(err.text, "message is 11184819 bytes encoded");
    CHECK_CONTAINS(err.text, "limit of 10000000 bytes");
    CHECK(json == NULL);
    free(scan);
}

/* ------------------------------------------------------------------ */
/* Classification                                                      */
/* ------------------------------------------------------------------ */

typedef struct classify_case {
    const char *name;
    CURLcode curl_code;
    const char *curl_error;
    long status;
    const char *retry_after;   /* Retry-After, or NULL */
    const char *body;
    outbox_result_kind kind;
    const char *error_kind;
    int64_t retry_after_seconds;
    bool counts_as_failure;
    const char *provider_id;
    const char *text;          /* the whole error.text */
} classify_case;

#define NGINX_413                                                        \
    "<html>\r\n<head><title>413 Request Entity Too Large</title></head>" \
    "\r\n<body>\r\n<center><h1>413 Request Entity Too Large</h1>"        \
    "</center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"

#define EDGE_403                                                         \
    "<!DOCTYPE html>\n<html><head><title>Attention Required!</title>"    \
    "</head><body>Sorry, you have been blocked</body></html>\n"

#define EDGE_HINT                                                        \
    "; a 403 without a Postmark ErrorCode comes from the network edge "  \
    "in front of the API, which blocked the request"

#define PM_UUID "b7bc2f4a-e38e-4336-af7d-e6c392c2f817"

static const classify_case classify_cases[] = {
    /* 2xx: sent, with Postmark's MessageID. */
    {"200 OK", CURLE_OK, "", 200, NULL,
     "{\"To\":\"einkauf@example.org\",\"SubmittedAt\":"
     "\"2025-03-05T10:00:00Z\",\"MessageID\":"
     "\"0a129aee-e1cd-480d-b08d-4f48548ff48d\",\"ErrorCode\":0,"
     "\"Message\":\"OK\"}",
     OUTBOX_RESULT_SENT, "", -1, true,
     "0a129aee-e1cd-480d-b08d-4f48548ff48d", ""},
    {"200 inactive recipients skipped", CURLE_OK, "", 200, NULL,
     "{\"To\":\"ok@example.org, inactive@example.org\",\"SubmittedAt\":"
     "\"2025-03-05T10:00:00Z\",\"MessageID\":\"" PM_UUID "\","
     "\"ErrorCode\":0,\"Message\":\"Message accepted; inactive recipients "
     "skipped: inactive@example.org\"}",
     OUTBOX_RESULT_SENT, "inactive_recipients_skipped", -1, true, PM_UUID,
     "HTTP 200: ErrorCode 0: Message accepted; inactive recipients "
     "skipped: inactive@example.org"},
    {"200 without body", CURLE_OK, "", 200, NULL, "", OUTBOX_RESULT_SENT,
     "", -1, true, "",
     "HTTP 200 without a usable MessageID in the body, so webhook events "
     "can be matched to this message only by the outbox_id metadata"},
    {"200 with unusable MessageID", CURLE_OK, "", 200, NULL,
     "{\"MessageID\":\"a b\",\"ErrorCode\":0,\"Message\":\"OK\"}",
     OUTBOX_RESULT_SENT, "", -1, true, "",
     "HTTP 200 without a usable MessageID in the body, so webhook events "
     "can be matched to this message only by the outbox_id metadata"},
    {"200 then transfer error", CURLE_RECV_ERROR, "Connection reset", 200,
     NULL, "{\"MessageID\":\"" PM_UUID "\",\"ErrorCode\":0,\"Message\":\"OK\"}",
     OUTBOX_RESULT_SENT, "", -1, true, PM_UUID,
     "HTTP 200, then the transfer failed (curl error 56): Failure when "
     "receiving data from the peer"},

    /* No response, 429 and 5xx: retry. */
    {"curl timeout", CURLE_OPERATION_TIMEDOUT,
     "Operation timed out after 30001 milliseconds with 0 bytes received",
     0, NULL, "", OUTBOX_RESULT_RETRY, "timeout", -1, true, "",
     "request timed out (curl error 28): Operation timed out after 30001 "
     "milliseconds with 0 bytes received"},
    {"curl could not connect", CURLE_COULDNT_CONNECT,
     "Failed to connect to 127.0.0.1 port 9: Connection refused", 0, NULL,
     "", OUTBOX_RESULT_RETRY, "network", -1, true, "",
     "request failed (curl error 7): Failed to connect to 127.0.0.1 port "
     "9: Connection refused"},
    {"429 without Retry-After", CURLE_OK, "", 429, NULL,
     "{\"ErrorCode\":429,\"Message\":\"Rate limit exceeded.\"}",
     OUTBOX_RESULT_RETRY, "rate_limited", -1, false, "",
     "HTTP 429: ErrorCode 429: Rate limit exceeded."},
    {"429 Retry-After HTTP date", CURLE_OK, "", 429,
     "Wed, 05 Mar 2025 10:15:00 GMT", "", OUTBOX_RESULT_RETRY,
     "rate_limited", 300, false, "", "HTTP 429: (empty body)"},
    {"429 Retry-After soon", CURLE_OK, "", 429, "soon", "",
     OUTBOX_RESULT_RETRY, "rate_limited", -1, false, "",
     "HTTP 429: (empty body)"},
    {"429 Retry-After ten days", CURLE_OK, "", 429, "864000", "",
     OUTBOX_RESULT_RETRY, "rate_limited", 864000, false, "",
     "HTTP 429: (empty body)"},
    {"500", CURLE_OK, "", 500, NULL,
     "{\"ErrorCode\":0,\"Message\":\"Internal server error\"}",
     OUTBOX_RESULT_RETRY, "provider_unavailable", -1, true, "",
     "HTTP 500: ErrorCode 0: Internal server error"},
    {"503 HTML maintenance", CURLE_OK, "", 503, NULL,
     "<html>maintenance</html>", OUTBOX_RESULT_RETRY,
     "provider_unavailable", -1, true, "",
     "HTTP 503: <html>maintenance</html>"},
    {"503 ErrorCode 100 with Retry-After", CURLE_OK, "", 503, "60",
     "{\"ErrorCode\":100,\"Message\":\"Maintenance\"}", OUTBOX_RESULT_RETRY,
     "provider_unavailable", 60, true, "",
     "HTTP 503: ErrorCode 100: Maintenance"},
    {"422 ErrorCode 100", CURLE_OK, "", 422, NULL,
     "{\"ErrorCode\":100,\"Message\":\"Maintenance\"}", OUTBOX_RESULT_RETRY,
     "provider_unavailable", -1, true, "",
     "HTTP 422: ErrorCode 100: Maintenance"},
    {"422 ErrorCode 429", CURLE_OK, "", 422, "30",
     "{\"ErrorCode\":429,\"Message\":\"Rate limit exceeded.\"}",
     OUTBOX_RESULT_RETRY, "rate_limited", 30, false, "",
     "HTTP 422: ErrorCode 429: Rate limit exceeded."},

    /* ErrorCodes of a message that cannot go out: failed. */
    {"422 ErrorCode 406 inactive", CURLE_OK, "", 422, NULL,
     "{\"ErrorCode\":406,\"Message\":\"Recipient marked inactive: "
     "bounced-before@example.org.\"}",
     OUTBOX_RESULT_FAILED, "inactive_recipient", -1, true, "",
     "HTTP 422: ErrorCode 406: Recipient marked inactive: "
     "bounced-before@example.org."},
    {"422 ErrorCode 406 other wording", CURLE_OK, "", 422, NULL,
     "{\"ErrorCode\":406,\"Message\":\"You tried to send to recipient(s) "
     "that have been marked as inactive.\"}",
     OUTBOX_RESULT_FAILED, "inactive_recipient", -1, true, "",
     "HTTP 422: ErrorCode 406: You tried to send to recipient(s) that have "
     "been marked as inactive."},
    {"422 ErrorCode 300 bad To", CURLE_OK, "", 422, NULL,
     "{\"ErrorCode\":300,\"Message\":\"Invalid 'To' address: "
     "'kunde@@example.org'.\"}",
     OUTBOX_RESULT_FAILED, "provider_validation", -1, true, "",
     "HTTP 422: ErrorCode 300: Invalid 'To' address: "
     "'kunde@@example.org'."},
    {"422 ErrorCode 300 metadata", CURLE_OK, "", 422, NULL,
     "{\"ErrorCode\":300,\"Message\":\"Metadata key "
     "'erp_document_reference_nr' is longer than allowed.\"}",
     OUTBOX_RESULT_FAILED, "provider_validation", -1, true, "",
     "HTTP 422: ErrorCode 300: Metadata key 'erp_document_reference_nr' is "
     "longer than allowed."},
    {"422 ErrorCode 402", CURLE_OK, "", 422, NULL,
     "{\"ErrorCode\":402,\"Message\":\"Invalid JSON\"}",
     OUTBOX_RESULT_FAILED, "provider_validation", -1, true, "",
     "HTTP 422: ErrorCode 402: Invalid JSON"},
    {"422 ErrorCode 403", CURLE_OK, "", 422, NULL,
     "{\"ErrorCode\":403,\"Message\":\"Invalid request field(s) - To\"}",
     OUTBOX_RESULT_FAILED, "provider_validation", -1, true, "",
     "HTTP 422: ErrorCode 403: Invalid request field(s) - To"},
    {"422 ErrorCode 409", CURLE_OK, "", 422, NULL,
     "{\"ErrorCode\":409,\"Message\":\"JSON required\"}",
     OUTBOX_RESULT_FAILED, "provider_validation", -1, true, "",
     "HTTP 422: ErrorCode 409: JSON required"},
    {"422 ErrorCode 411", CURLE_OK, "", 422, NULL,
     "{\"ErrorCode\":411,\"Message\":\"Forbidden attachment type: "
     "'tool.exe'\"}",
     OUTBOX_RESULT_FAILED, "forbidden_attachment", -1, true, "",
     "HTTP 422: ErrorCode 411: Forbidden attachment type: 'tool.exe'"},
    {"422 unknown ErrorCode", CURLE_OK, "", 422, NULL,
     "{\"ErrorCode\":999,\"Message\":\"Something new.\"}",
     OUTBOX_RESULT_FAILED, "provider_rejected", -1, true, "",
     "HTTP 422: ErrorCode 999: Something new."},
    {"422 without JSON", CURLE_OK, "", 422, NULL, "Unprocessable",
     OUTBOX_RESULT_FAILED, "provider_rejected", -1, true, "",
     "HTTP 422: Unprocessable"},
    {"422 ErrorCode without Message", CURLE_OK, "", 422, NULL,
     "{\"ErrorCode\":300}", OUTBOX_RESULT_FAILED, "provider_validation", -1,
     true, "", "HTTP 422: ErrorCode 300: (no message)"},

    /* ErrorCodes of the account or the server token: misconfigured. */
    {"401 ErrorCode 10", CURLE_OK, "", 401, NULL,
     "{\"ErrorCode\":10,\"Message\":\"Missing or invalid server token.\"}",
     OUTBOX_RESULT_MISCONFIGURED, "provider_auth", -1, false, "",
     "HTTP 401: ErrorCode 10: Missing or invalid server token.; check the "
     "server token"},
    {"422 ErrorCode 400", CURLE_OK, "", 422, NULL,
     "{\"ErrorCode\":400,\"Message\":\"Sender signature not found\"}",
     OUTBOX_RESULT_MISCONFIGURED, "provider_forbidden", -1, false, "",
     "HTTP 422: ErrorCode 400: Sender signature not found; add a sender "
     "signature for the From address on the Postmark server"},
    {"422 ErrorCode 401", CURLE_OK, "", 422, NULL,
     "{\"ErrorCode\":401,\"Message\":\"Sender signature not confirmed\"}",
     OUTBOX_RESULT_MISCONFIGURED, "provider_forbidden", -1, false, "",
     "HTTP 422: ErrorCode 401: Sender signature not confirmed; confirm "
     "the sender signature of the From address"},
    {"422 ErrorCode 405", CURLE_OK, "", 422, NULL,
     "{\"ErrorCode\":405,\"Message\":\"Not allowed to send\"}",
     OUTBOX_RESULT_MISCONFIGURED, "provider_forbidden", -1, false, "",
     "HTTP 422: ErrorCode 405: Not allowed to send; the Postmark account "
     "may not send: check its credits"},
    {"422 ErrorCode 412", CURLE_OK, "", 422, NULL,
     "{\"ErrorCode\":412,\"Message\":\"Account pending\"}",
     OUTBOX_RESULT_MISCONFIGURED, "provider_forbidden", -1, false, "",
     "HTTP 422: ErrorCode 412: Account pending; the Postmark account is "
     "pending approval"},
    {"422 ErrorCode 413", CURLE_OK, "", 422, NULL,
     "{\"ErrorCode\":413,\"Message\":\"Account may not send\"}",
     OUTBOX_RESULT_MISCONFIGURED, "provider_forbidden", -1, false, "",
     "HTTP 422: ErrorCode 413: Account may not send; the Postmark account "
     "may not send"},

    /* Statuses without a Postmark ErrorCode. */
    {"401 without JSON", CURLE_OK, "", 401, NULL, "Unauthorized",
     OUTBOX_RESULT_MISCONFIGURED, "provider_auth", -1, false, "",
     "HTTP 401: Unauthorized; check the server token"},
    {"403 edge HTML", CURLE_OK, "", 403, NULL, EDGE_403,
     OUTBOX_RESULT_RETRY, "edge_blocked", -1, true, "",
     "HTTP 403: <!DOCTYPE html> <html><head><title>Attention Required!"
     "</title></head><body>Sorry, you have been blocked</body></html>"
     EDGE_HINT},
    {"403 edge with Retry-After", CURLE_OK, "", 403, "120", "",
     OUTBOX_RESULT_RETRY, "edge_blocked", 120, true, "",
     "HTTP 403: (empty body)" EDGE_HINT},
    {"403 unknown ErrorCode", CURLE_OK, "", 403, NULL,
     "{\"ErrorCode\":999,\"Message\":\"Forbidden\"}", OUTBOX_RESULT_FAILED,
     "provider_rejected", -1, true, "",
     "HTTP 403: ErrorCode 999: Forbidden"},
    {"404", CURLE_OK, "", 404, NULL, "Not Found",
     OUTBOX_RESULT_MISCONFIGURED, "provider_not_found", -1, false, "",
     "HTTP 404: Not Found; check base_url"},
    {"413 nginx HTML", CURLE_OK, "", 413, NULL, NGINX_413,
     OUTBOX_RESULT_FAILED, "message_too_large", -1, true, "",
     "HTTP 413: <html> <head><title>413 Request Entity Too Large</title>"
     "</head> <body> <center><h1>413 Request Entity Too Large</h1>"
     "</center> <hr><center>nginx</center> </body> </html>"},
    {"415", CURLE_OK, "", 415, NULL, "", OUTBOX_RESULT_FAILED,
     "provider_rejected", -1, true, "", "HTTP 415: (empty body)"},
    {"301 redirect", CURLE_OK, "", 301, NULL, "",
     OUTBOX_RESULT_MISCONFIGURED, "provider_redirect", -1, false, "",
     "HTTP 301: (empty body); check base_url"},
    {"102 unexpected", CURLE_OK, "", 102, NULL, "", OUTBOX_RESULT_UNKNOWN,
     "provider_unexpected", -1, true, "", "HTTP 102: (empty body)"},
    {"302 with ErrorCode 100", CURLE_OK, "", 302, NULL,
     "{\"ErrorCode\":100,\"Message\":\"Maintenance\"}",
     OUTBOX_RESULT_MISCONFIGURED, "provider_redirect", -1, false, "",
     "HTTP 302: ErrorCode 100: Maintenance; check base_url"},
};

static void run_classify_case(const classify_case *c)
{
    outbox_field headers[1];
    outbox_response response;
    outbox_result result;
    size_t count = 0;

    if (c->retry_after != NULL)
        headers[count++] = (outbox_field){"Retry-After",
                                          (char *)c->retry_after};
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
    outbox__postmark_classify(&result, &response);
    CHECK_STR(outbox_result_kind_name(result.kind),
              outbox_result_kind_name(c->kind));
    CHECK_STR(result.error.kind, c->error_kind);
    CHECK_INT(result.retry_after, c->retry_after_seconds);
    CHECK_INT(result.counts_as_failure, c->counts_as_failure);
    CHECK_INT(result.status, c->status);
    CHECK_STR(result.provider_message_id, c->provider_id);
    CHECK_STR(result.error.text, c->text);
}

static void test_classify_table(void)
{
    size_t count = sizeof(classify_cases) / sizeof(classify_cases[0]);

    for (size_t i = 0; i < count; i++)
        run_classify_case(&classify_cases[i]);
}

static void test_classify_long_message(void)
{
    char body[8192];
    size_t used = 0;
    outbox_response response;
    outbox_result result;

    CHECK_CASE("422 long Message is cut");
    used += (size_t)snprintf(body, sizeof(body),
                             "{\"ErrorCode\":300,\"Message\":\"");
    for (int i = 0; i < 300; i++)
        used += (size_t)snprintf(body + used, sizeof(body) - used,
                                 "ung\xc3\xbcltig ");
    snprintf(body + used, sizeof(body) - used, "\"}");
    memset(&response, 0, sizeof(response));
    response.status = 422;
    response.body = body;
    response.body_size = strlen(body);
    outbox__postmark_classify(&result, &response);
    CHECK_STR(result.error.kind, "provider_validation");
    CHECK_CONTAINS(result.error.text, "HTTP 422: ErrorCode 300: ung");
    CHECK_CONTAINS(result.error.text, "...");
    CHECK(strlen(result.error.text) < OUTBOX_ERROR_TEXT_MAX);
    CHECK(outbox__utf8_valid(result.error.text, strlen(result.error.text)));
}

/* ------------------------------------------------------------------ */
/* Config                                                              */
/* ------------------------------------------------------------------ */

static outbox_provider *create_postmark(const char *base_url,
                                        const char *stream, double max_bytes,
                                        const outbox_logger *logger)
{
    cJSON *config = cJSON_CreateObject();
    outbox_provider *provider = NULL;
    outbox_error err = {{0}, {0}};

    cJSON_AddStringToObject(config, "name", "pm-test");
    cJSON_AddStringToObject(config, "type", "postmark");
    cJSON_AddStringToObject(config, "api_key", "pm-token-1234");
    cJSON_AddStringToObject(config, "base_url", base_url);
    if (stream != NULL)
        cJSON_AddStringToObject(config, "message_stream", stream);
    cJSON_AddNumberToObject(config, "max_message_bytes", max_bytes);
    cJSON_AddNumberToObject(config, "timeout_seconds", 10);
    if (outbox_provider_create(&provider, &err, config, logger)
        != OUTBOX_EOK)
        CHECK_FAIL("create failed: %s: %s", err.kind, err.text);
    cJSON_Delete(config);
    return provider;
}

typedef struct config_case {
    const char *name;
    const char *config;
    const char *text;   /* the whole err.text */
} config_case;

static const config_case config_cases[] = {
    {"misspelled stream key",
     "{\"name\":\"pm\",\"type\":\"postmark\",\"api_key\":\"k\","
     "\"base_url\":\"http://127.0.0.1:9\",\"stream\":\"outbound\"}",
     "provider \"pm\": unknown key \"stream\" for type postmark"},
    {"missing token",
     "{\"name\":\"pm\",\"type\":\"postmark\","
     "\"base_url\":\"http://127.0.0.1:9\"}",
     "provider \"pm\": missing \"api_key\" or \"api_key_env\""},
    {"token with a space",
     "{\"name\":\"pm\",\"type\":\"postmark\",\"api_key\":\"a b\","
     "\"base_url\":\"http://127.0.0.1:9\"}",
     "provider \"pm\": the server token contains a space, a control "
     "character or a non-ASCII character; check \"api_key\" or the "
     "variable named by \"api_key_env\""},
    {"empty stream",
     "{\"name\":\"pm\",\"type\":\"postmark\",\"api_key\":\"k\","
     "\"base_url\":\"http://127.0.0.1:9\",\"message_stream\":\"\"}",
     "provider \"pm\": invalid \"message_stream\": expected the ID of a "
     "Postmark message stream (1 to 100 printable ASCII characters without "
     "spaces), such as \"outbound\""},
    {"stream with a space",
     "{\"name\":\"pm\",\"type\":\"postmark\",\"api_key\":\"k\","
     "\"base_url\":\"http://127.0.0.1:9\",\"message_stream\":\"my stream\"}",
     "provider \"pm\": invalid \"message_stream\": expected the ID of a "
     "Postmark message stream (1 to 100 printable ASCII characters without "
     "spaces), such as \"outbound\""},
    {"stream not a string",
     "{\"name\":\"pm\",\"type\":\"postmark\",\"api_key\":\"k\","
     "\"base_url\":\"http://127.0.0.1:9\",\"message_stream\":1}",
     "provider \"pm\": invalid \"message_stream\": expected the ID of a "
     "Postmark message stream (1 to 100 printable ASCII characters without "
     "spaces), such as \"outbound\""},
    {"base_url with query",
     "{\"name\":\"pm\",\"type\":\"postmark\",\"api_key\":\"k\","
     "\"base_url\":\"http://127.0.0.1:9/?x=1\"}",
     "provider \"pm\": invalid \"base_url\": expected http:// or https:// "
     "and a host, such as https://api.postmarkapp.com"},
    {"base_url ftp",
     "{\"name\":\"pm\",\"type\":\"postmark\",\"api_key\":\"k\","
     "\"base_url\":\"ftp://127.0.0.1\"}",
     "provider \"pm\": invalid \"base_url\": expected http:// or https:// "
     "and a host, such as https://api.postmarkapp.com"},
    {"negative max_message_bytes",
     "{\"name\":\"pm\",\"type\":\"postmark\",\"api_key\":\"k\","
     "\"base_url\":\"http://127.0.0.1:9\",\"max_message_bytes\":-1}",
     "provider \"pm\": invalid \"max_message_bytes\": expected a whole "
     "number from 0 to 9007199254740992"},
    {"timeout zero",
     "{\"name\":\"pm\",\"type\":\"postmark\",\"api_key\":\"k\","
     "\"base_url\":\"http://127.0.0.1:9\",\"timeout_seconds\":0}",
     "provider \"pm\": invalid \"timeout_seconds\": expected a whole number "
     "from 1 to 86400"},
};

static void test_config_errors(void)
{
    size_t count = sizeof(config_cases) / sizeof(config_cases[0]);

    for (size_t i = 0; i < count; i++) {
        cJSON *config = cJSON_Parse(config_cases[i].config);
        outbox_provider *provider = NULL;
        outbox_error err = {{0}, {0}};

        CHECK_CASE(config_cases[i].name);
        CHECK_INT(outbox_provider_create(&provider, &err, config, NULL),
                  OUTBOX_ECONFIG);
        CHECK(provider == NULL);
        CHECK_STR(err.kind, "config");
        CHECK_STR(err.text, config_cases[i].text);
        cJSON_Delete(config);
    }
}

/* The token comes from the variable that api_key_env names, and neither
 * it nor the variable's value appears in an error. */
static void test_token_from_env(void)
{
    cJSON *config = cJSON_Parse("{\"name\":\"pm\",\"type\":\"postmark\","
                                "\"api_key_env\":\"OUTBOX_TEST_PM_TOKEN\","
                                "\"base_url\":\"http://127.0.0.1:9\"}");
    outbox_provider *provider = NULL;
    outbox_error err = {{0}, {0}};

    CHECK_CASE("token from environment");
    setenv("OUTBOX_TEST_PM_TOKEN", "pm-env-token", 1);
    CHECK_INT(outbox_provider_create(&provider, &err, config, NULL),
              OUTBOX_EOK);
    CHECK_STR(outbox_provider_type(provider), "postmark");
    CHECK(outbox_provider_uses_curl(provider));
    outbox_provider_free(provider);
    provider = NULL;

    CHECK_CASE("token variable unset");
    unsetenv("OUTBOX_TEST_PM_TOKEN");
    CHECK_INT(outbox_provider_create(&provider, &err, config, NULL),
              OUTBOX_ECONFIG);
    CHECK_CONTAINS(err.text, "environment variable OUTBOX_TEST_PM_TOKEN");
    cJSON_Delete(config);
}

/* ------------------------------------------------------------------ */
/* One request on the wire                                             */
/* ------------------------------------------------------------------ */

/* What the capture server responds with. */
static const char capture_response[] =
    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
    "Content-Length: 145\r\n\r\n"
    "{\"To\":\"a.meier@example.org\",\"SubmittedAt\":"
    "\"2025-03-05T10:00:00Z\",\"MessageID\":\"" PM_UUID "\","
    "\"ErrorCode\":0,\"Message\":\"OK\"}";

static void check_request_on_wire(const capture_server *server,
                                  const outbox_message *message,
                                  const char *request_line)
{
    char *json = NULL;
    size_t size = 0;
    outbox_error err = {{0}, {0}};
    const char *body = strstr(server->request, "\r\n\r\n");

    CHECK_CONTAINS(server->request, request_line);
    CHECK_CONTAINS(server->request,
                   "\r\nX-Postmark-Server-Token: pm-token-1234\r\n");
    CHECK_CONTAINS(server->request, "\r\nContent-Type: application/json\r\n");
    CHECK_CONTAINS(server->request, "\r\nAccept: application/json\r\n");
    CHECK(strstr(server->request, "Expect:") == NULL);

    /* No message_stream in the config: the default stream. */
    CHECK_INT(outbox__postmark_body(&json, &size, &err, message, "outbound",
                                    NULL, 0),
              OUTBOX_EOK);
    CHECK_STR(body != NULL ? body + 4 : NULL, json);
    cJSON_free(json);
}

/* Sends message through a provider whose base_url is a server on
 * 127.0.0.1, and checks the request line, the headers and the body. */
static void send_on_wire(const outbox_message *message,
                         const char *request_line)
{
    capture_server server;
    outbox_provider *provider;
    outbox_error err = {{0}, {0}};
    void *request = NULL;
    char base_url[64];
    CURL *easy;
    long status = 0;

    if (!capture_server_start(&server, capture_response, 16384)) {
        CHECK_FAIL("cannot listen on 127.0.0.1");
        return;
    }
    snprintf(base_url, sizeof(base_url), "http://127.0.0.1:%d/",
             server.port);
    provider = create_postmark(base_url, NULL, 10000000, NULL);
    easy = curl_easy_init();
    if (provider == NULL || easy == NULL)
        goto cleanup;
    CHECK_INT(outbox_provider_prepare(provider, &request, &err, easy,
                                      message),
              OUTBOX_EOK);
    curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, discard_body);
    CHECK_INT(curl_easy_perform(easy), CURLE_OK);
    curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &status);
    CHECK_INT(status, 200);

cleanup:
    capture_server_stop(&server);
    check_request_on_wire(&server, message, request_line);
    outbox_provider_release(provider, request);
    curl_easy_cleanup(easy);
    outbox_provider_free(provider);
    capture_server_free(&server);
}

static void test_request_on_wire(void)
{
    outbox_message message;

    CHECK_CASE("request on the wire");
    init_full(&message);
    message.metadata_count = 1;
    send_on_wire(&message, "POST /email HTTP/1.1\r\n");

    /* A template goes to its own endpoint, which the registry lets
     * through because the provider renders templates. */
    CHECK_CASE("template request on the wire");
    init_minimal(&message);
    message.subject = "";
    message.body_text = NULL;
    message.template_name = "4711";
    send_on_wire(&message, "POST /email/withTemplate HTTP/1.1\r\n");
}

static void test_prepare_limits(void)
{
    outbox_provider *provider = create_postmark("http://127.0.0.1:9",
                                                "broadcast", 5, NULL);
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
        CHECK_CONTAINS(err.text, "message is 7 bytes encoded");
    }
    curl_easy_cleanup(easy);
    outbox_provider_free(provider);
}

/* The provider's classify warns about a Retry-After it cannot read,
 * because the retry then uses the backoff schedule. */
static void test_classify_warns_on_bad_retry_after(void)
{
    log_capture capture = {0, {0}};
    outbox_logger logger = {capture_log, &capture, 0};
    outbox_provider *provider = create_postmark("http://127.0.0.1:9", NULL,
                                                0, &logger);
    outbox_field header = {"Retry-After", "soon"};
    outbox_response response;
    outbox_result result;

    CHECK_CASE("warning for Retry-After soon");
    if (provider == NULL)
        return;
    memset(&response, 0, sizeof(response));
    response.status = 429;
    response.headers = &header;
    response.header_count = 1;
    response.body = "";
    response.now = NOW;
    outbox_provider_classify(provider, &result, &response);
    CHECK_STR(result.error.kind, "rate_limited");
    CHECK_INT(result.retry_after, -1);
    CHECK_INT(capture.warnings, 1);
    CHECK_CONTAINS(capture.text,
                   "provider=pm-test status=429 Retry-After \"soon\" is not "
                   "a number of seconds or an HTTP date; using the backoff "
                   "schedule");
    CHECK(strstr(capture.text, "pm-token-1234") == NULL);
    outbox_provider_free(provider);
}

int main(void)
{
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
        return 1;
    test_minimal_body();
    test_full_body();
    test_template_alias_body();
    test_template_id_or_alias();
    test_template_too_large();
    test_name_quoting();
    test_html_only_and_message_id();
    test_body_from_row();
    test_no_to_recipient();
    test_attachment_without_body();
    test_recipient_limit();
    test_too_large();
    test_scan_over_default_cap();
    test_classify_table();
    test_classify_long_message();
    test_config_errors();
    test_token_from_env();
    test_request_on_wire();
    test_prepare_limits();
    test_classify_warns_on_bad_retry_after();
    curl_global_cleanup();
    CHECK_DONE();
}
