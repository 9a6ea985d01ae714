/*
 * test_ses.c - the Amazon SES v2 provider: the exact JSON request body in
 * Simple and Raw form, tags from metadata, the size and recipient caps,
 * the config keys and credentials, and the table of responses and their
 * classification. Requests sent through libcurl to a server on 127.0.0.1
 * have their SigV4 signature computed again by the test.
 *
 * Messages are built by hand from static strings, so that each test
 * controls every field, and none of them is freed with
 * outbox_message_free.
 */
#include <strings.h>
#include <stdlib.h>

#include <cjson/cJSON.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "capture_server.h"
#include "check.h"
#include "internal.h"
#include "mime.h"
#include "provider_fixtures.h"
#include "provider_ses.h"

/* 2025-03-05 10:10:00 UTC */
#define NOW 1741169400

static const outbox_ses_body_options no_options = {NULL, 0, NOW};

static void init_minimal(outbox_message *message)
{
    init_minimal_message(message, "ses");
    message->message_id = "42.abc@ex.com";
}

/* Builds the body of message, expecting success; NULL on failure. */
static char *build_body(const outbox_message *message,
                        const outbox_ses_body_options *options,
                        const outbox_logger *logger)
{
    outbox_error err = {{0}, {0}};
    char *json = NULL;
    size_t size = 0;
    outbox_err rc = outbox__ses_body(&json, &size, &err, message, options,
                                     logger);

    CHECK_INT(rc, OUTBOX_EOK);
    if (rc != OUTBOX_EOK)
        CHECK_FAIL("body failed: %s: %s", err.kind, err.text);
    CHECK_INT(size, json != NULL ? strlen(json) : 0);
    return json;
}

static void test_minimal_body(void)
{
    outbox_message message;
    char *json;

    CHECK_CASE("minimal body");
    init_minimal(&message);
    json = build_body(&message, &no_options, NULL);
    CHECK_STR(json,
              "{\"FromEmailAddress\":\"no-reply@ex.com\","
              "\"Destination\":{\"ToAddresses\":[\"a@x.io\"]},"
              "\"Content\":{\"Simple\":{"
              "\"Subject\":{\"Data\":\"Hi\",\"Charset\":\"UTF-8\"},"
              "\"Body\":{\"Text\":{\"Data\":\"Hello\","
              "\"Charset\":\"UTF-8\"}}}},"
              "\"EmailTags\":[{\"Name\":\"outbox_id\",\"Value\":\"42\"}]}");
    cJSON_free(json);
}

static outbox_field utf8_headers[] = {
    {"List-Unsubscribe", "<https://ex.com/u/1>"},
    {"X-Kostenstelle", "K\xc3\xbc" "che 4"},
};
static outbox_field full_metadata[] = {
    {"belegnr", "4711"},
    {"kunde", "M\xc3\xbcller & S\xc3\xb6hne"},
    {"bad key", "x"},
};

static void init_full(outbox_message *message)
{
    init_full_message(message, "ses");
    message->headers = utf8_headers;
    message->header_count = 2;
    message->metadata = full_metadata;
    message->metadata_count = 3;
}

static void test_full_body(void)
{
    log_capture capture = {0, {0}};
    outbox_logger logger = {capture_log, &capture, 0};
    outbox_ses_body_options options = {"prod", 41943040, NOW};
    outbox_message message;
    char *json;

    CHECK_CASE("full body");
    init_full(&message);
    json = build_body(&message, &options, &logger);

    /* Names with a comma are quoted, non-ASCII names and header values
     * are encoded words, the subject keeps its UTF-8 with a Charset, and
     * the metadata value with "&" and umlauts goes as base64url. */
    CHECK_STR(json,
              "{\"FromEmailAddress\":"
              "\"\\\"Beispiel GmbH, Buchhaltung\\\" <billing@ex.com>\","
              "\"Destination\":{"
              "\"ToAddresses\":[\"\\\"Meier, Anna\\\" <a.meier@example.org>\","
              "\"=?UTF-8?B?SsO8cmdlbiBHcm/Dnw==?= <j.gross@example.de>\"],"
              "\"CcAddresses\":[\"cc@example.org\"],"
              "\"BccAddresses\":[\"Archiv <archive@ex.com>\"]},"
              "\"ReplyToAddresses\":[\"Support <help@ex.com>\","
              "\"billing@ex.com\"],"
              "\"Content\":{\"Simple\":{"
              "\"Subject\":{\"Data\":\"Rechnung 4711 \xe2\x80\x93 "
              "M\xc3\xa4rz\",\"Charset\":\"UTF-8\"},"
              "\"Body\":{\"Text\":{\"Data\":\"Guten Tag,\\n\\\"Anhang\\\" "
              "siehe unten.\",\"Charset\":\"UTF-8\"},"
              "\"Html\":{\"Data\":\"<p>Guten Tag</p><img "
              "src=\\\"cid:logo\\\">\",\"Charset\":\"UTF-8\"}},"
              "\"Headers\":["
              "{\"Name\":\"List-Unsubscribe\","
              "\"Value\":\"<https://ex.com/u/1>\"},"
              "{\"Name\":\"X-Kostenstelle\","
              "\"Value\":\"=?UTF-8?B?S8O8Y2hlIDQ=?=\"}],"
              "\"Attachments\":["
              "{\"FileName\":\"rechnung.pdf\",\"RawContent\":\"JVBERi0x\","
              "\"ContentType\":\"application/pdf\","
              "\"ContentDisposition\":\"ATTACHMENT\"},"
              "{\"FileName\":\"logo.png\",\"RawContent\":\"iVBORw==\","
              "\"ContentType\":\"image/png\","
              "\"ContentDisposition\":\"INLINE\",\"ContentId\":\"logo\"}]}},"
              "\"EmailTags\":[{\"Name\":\"outbox_id\",\"Value\":\"1101\"},"
              "{\"Name\":\"belegnr\",\"Value\":\"4711\"},"
              "{\"Name\":\"kunde_b64\","
              "\"Value\":\"TcO8bGxlciAmIFPDtmhuZQ\"}],"
              "\"ConfigurationSetName\":\"prod\"}");

    /* The key with a space cannot be a tag name. */
    CHECK_INT(capture.warnings, 1);
    CHECK_CONTAINS(capture.text, "id=1101 metadata key \"bad key\" is not "
                                 "sent as an SES tag");
    cJSON_free(json);
}

/* Template content: the template's name and data, then the headers and
 * attachments as Simple content has them. The row's subject and bodies
 * are left to the template. */
static void test_template_body(void)
{
    outbox_ses_body_options options = {"prod", 41943040, NOW};
    outbox_message message;
    char *json;

    CHECK_CASE("template body");
    init_full(&message);
    message.body_text = NULL;
    message.body_html = NULL;
    message.metadata_count = 1;
    message.template_name = "invoice-v2";
    message.template_data = "{\"invoice\": \"RE-4711\", \"total\": 12.5}";
    json = build_body(&message, &options, NULL);
    CHECK_STR(json,
              "{\"FromEmailAddress\":"
              "\"\\\"Beispiel GmbH, Buchhaltung\\\" <billing@ex.com>\","
              "\"Destination\":{"
              "\"ToAddresses\":[\"\\\"Meier, Anna\\\" <a.meier@example.org>\","
              "\"=?UTF-8?B?SsO8cmdlbiBHcm/Dnw==?= <j.gross@example.de>\"],"
              "\"CcAddresses\":[\"cc@example.org\"],"
              "\"BccAddresses\":[\"Archiv <archive@ex.com>\"]},"
              "\"ReplyToAddresses\":[\"Support <help@ex.com>\","
              "\"billing@ex.com\"],"
              "\"Content\":{\"Template\":{"
              "\"TemplateName\":\"invoice-v2\","
              "\"TemplateData\":\"{\\\"invoice\\\": \\\"RE-4711\\\", "
              "\\\"total\\\": 12.5}\","
              "\"Headers\":["
              "{\"Name\":\"List-Unsubscribe\","
              "\"Value\":\"<https://ex.com/u/1>\"},"
              "{\"Name\":\"X-Kostenstelle\","
              "\"Value\":\"=?UTF-8?B?S8O8Y2hlIDQ=?=\"}],"
              "\"Attachments\":["
              "{\"FileName\":\"rechnung.pdf\",\"RawContent\":\"JVBERi0x\","
              "\"ContentType\":\"application/pdf\","
              "\"ContentDisposition\":\"ATTACHMENT\"},"
              "{\"FileName\":\"logo.png\",\"RawContent\":\"iVBORw==\","
              "\"ContentType\":\"image/png\","
              "\"ContentDisposition\":\"INLINE\",\"ContentId\":\"logo\"}]}},"
              "\"EmailTags\":[{\"Name\":\"outbox_id\",\"Value\":\"1101\"},"
              "{\"Name\":\"belegnr\",\"Value\":\"4711\"}],"
              "\"ConfigurationSetName\":\"prod\"}");
    cJSON_free(json);

    /* Without template_data, TemplateData is an empty object, and an
     * empty subject does not switch to Raw content. */
    CHECK_CASE("template without data");
    init_minimal(&message);
    message.subject = "";
    message.body_text = NULL;
    message.template_name = "welcome";
    json = build_body(&message, &no_options, NULL);
    CHECK_STR(json,
              "{\"FromEmailAddress\":\"no-reply@ex.com\","
              "\"Destination\":{\"ToAddresses\":[\"a@x.io\"]},"
              "\"Content\":{\"Template\":{\"TemplateName\":\"welcome\","
              "\"TemplateData\":\"{}\"}},"
              "\"EmailTags\":[{\"Name\":\"outbox_id\",\"Value\":\"42\"}]}");
    cJSON_free(json);
}

/* What Template content cannot carry fails the message, because Raw
 * content, the fallback of Simple content, cannot name a template. */
static void test_template_limits(void)
{
    static char names[16][16];
    static char big_data[OUTBOX_SES_MAX_TEMPLATE_DATA + 2];
    static char long_name[300];
    outbox_attachment attachment = {long_name, "application/pdf", NULL,
                                    pdf_bytes, 6};
    outbox_field headers[16];
    outbox_message message;
    outbox_error err = {{0}, {0}};
    char *json = NULL;
    size_t size = 0;

    CHECK_CASE("template with 16 headers");
    for (int i = 0; i < 16; i++) {
        snprintf(names[i], sizeof(names[i]), "X-Extra-%d", i);
        headers[i] = (outbox_field){names[i], "v"};
    }
    init_minimal(&message);
    message.template_name = "invoice-v2";
    message.headers = headers;
    message.header_count = 16;
    CHECK_INT(outbox__ses_body(&json, &size, &err, &message, &no_options,
                               NULL),
              OUTBOX_EINVAL);
    CHECK_STR(err.kind, "invalid_template");
    CHECK_STR(err.text, "template \"invoice-v2\": SES Template content "
                        "cannot carry more than 15 extra headers; send the "
                        "row with body_text or body_html instead");
    CHECK(json == NULL);

    CHECK_CASE("template with a long attachment name");
    memset(long_name, 'n', 256);
    init_minimal(&message);
    message.template_name = "invoice-v2";
    message.attachments = &attachment;
    message.attachment_count = 1;
    err = (outbox_error){{0}, {0}};
    CHECK_INT(outbox__ses_body(&json, &size, &err, &message, &no_options,
                               NULL),
              OUTBOX_EINVAL);
    CHECK_STR(err.kind, "invalid_template");
    CHECK_CONTAINS(err.text, "cannot carry an attachment name empty or over "
                             "255 bytes");
    CHECK(json == NULL);

    /* {"k":"vvv...v"}: 8 bytes of frame around the value. */
    CHECK_CASE("template data over the cap");
    memset(big_data, 'v', sizeof(big_data) - 1);
    memcpy(big_data, "{\"k\":\"", 6);
    memcpy(big_data + sizeof(big_data) - 3, "\"}", 2);
    init_minimal(&message);
    message.template_name = "invoice-v2";
    message.template_data = big_data;
    err = (outbox_error){{0}, {0}};
    CHECK_INT(outbox__ses_body(&json, &size, &err, &message, &no_options,
                               NULL),
              OUTBOX_ELIMIT);
    CHECK_STR(err.kind, "limit_exceeded");
    CHECK_STR(err.text, "template_data has 262145 bytes, over the SES cap "
                        "of 262144 bytes for TemplateData");
    CHECK(json == NULL);

    CHECK_CASE("template data at the cap");
    big_data[sizeof(big_data) - 3] = 'v';
    memcpy(big_data + sizeof(big_data) - 4, "\"}", 3);
    json = build_body(&message, &no_options, NULL);
    CHECK_CONTAINS(json, "\"TemplateData\":\"{\\\"k\\\":\\\"vvv");
    cJSON_free(json);
}

static void test_metadata_tags(void)
{
    static char long_value[400];
    outbox_field metadata[] = {
        {"line\nbreak", "x"},
        {"note", long_value},
        {"empty", ""},
        {"ref", "R-1"},
        {"ref", "R-2"},
        {"dash-and_under", "A-z_09"},
    };
    log_capture capture = {0, {0}};
    outbox_logger logger = {capture_log, &capture, 0};
    outbox_message message;
    char *json;

    CHECK_CASE("metadata tags that do not fit");
    memset(long_value, 'x', sizeof(long_value) - 1);
    long_value[200] = ' ';
    init_minimal(&message);
    message.metadata = metadata;
    message.metadata_count = 6;
    json = build_body(&message, &no_options, &logger);

    /* 399 bytes make 532 characters of base64url, over 256. */
    CHECK_CONTAINS(json, "\"EmailTags\":["
                         "{\"Name\":\"outbox_id\",\"Value\":\"42\"},"
                         "{\"Name\":\"ref\",\"Value\":\"R-1\"},"
                         "{\"Name\":\"dash-and_under\",\"Value\":\"A-z_09\"}]");
    CHECK_INT(capture.warnings, 4);
    CHECK_CONTAINS(capture.text, "metadata key \"line?break\" is not sent");
    CHECK_CONTAINS(capture.text, "metadata key \"note\" is not sent as an "
                                 "SES tag: its value is empty or longer");
    CHECK_CONTAINS(capture.text, "metadata key \"empty\" is not sent");
    CHECK_CONTAINS(capture.text, "metadata key \"ref\" gives the SES tag "
                                 "\"ref\" a second time");
    cJSON_free(json);
}

/* Decodes standard base64 into a malloc'd NUL-terminated buffer. */
static char *decode_base64(const char *text, size_t *size)
{
    size_t length = strlen(text);
    unsigned char *out = malloc(length / 4 * 3 + 1);
    int n;

    if (out == NULL)
        return NULL;
    n = EVP_DecodeBlock(out, (const unsigned char *)text, (int)length);
    if (n < 0) {
        free(out);
        return NULL;
    }
    while (length > 0 && text[length - 1] == '=') {
        n--;
        length--;
    }
    out[n] = '\0';
    *size = (size_t)n;
    return (char *)out;
}

static const char *json_string(const cJSON *object, const char *key)
{
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(object, key);

    return cJSON_IsString(item) ? item->valuestring : NULL;
}

/* Checks that the Raw content is exactly what mime.c writes. */
static void check_raw_content(const cJSON *root,
                              const outbox_message *message)
{
    const cJSON *content = cJSON_GetObjectItemCaseSensitive(root, "Content");
    const cJSON *raw = cJSON_GetObjectItemCaseSensitive(content, "Raw");
    const char *data = json_string(raw, "Data");
    outbox_error err = {{0}, {0}};
    char *expected = NULL;
    char *decoded = NULL;
    size_t expected_size = 0;
    size_t decoded_size = 0;

    CHECK(cJSON_GetObjectItemCaseSensitive(content, "Simple") == NULL);
    CHECK(data != NULL);
    if (data != NULL)
        decoded = decode_base64(data, &decoded_size);
    CHECK_INT(outbox__mime_write(&expected, &expected_size, &err, message,
                                 NOW, "42-1"),
              OUTBOX_EOK);
    CHECK_INT(decoded_size, expected_size);
    CHECK_STR(decoded, expected);
    CHECK(decoded == NULL || strstr(decoded, "archive@ex.com") == NULL);
    free(decoded);
    free(expected);
}

static void test_raw_for_many_headers(void)
{
    static char names[16][16];
    outbox_field headers[16];
    outbox_message message;
    cJSON *root;
    char *json;

    CHECK_CASE("raw for 16 headers");
    for (int i = 0; i < 16; i++) {
        snprintf(names[i], sizeof(names[i]), "X-Extra-%d", i);
        headers[i] = (outbox_field){names[i], "v"};
    }
    init_full(&message);
    message.id = 42;
    message.headers = headers;
    message.header_count = 16;
    message.metadata_count = 1;
    json = build_body(&message, &no_options, NULL);
    root = cJSON_Parse(json);

    /* Destination keeps the Bcc address, which the MIME text leaves out;
     * Reply-To travels in the MIME header section only. */
    CHECK_CONTAINS(json, "{\"FromEmailAddress\":"
                         "\"\\\"Beispiel GmbH, Buchhaltung\\\" "
                         "<billing@ex.com>\",\"Destination\":{");
    CHECK_CONTAINS(json, "\"BccAddresses\":[\"Archiv <archive@ex.com>\"]},"
                         "\"Content\":{\"Raw\":{\"Data\":\"");
    CHECK_CONTAINS(json, "\"EmailTags\":[{\"Name\":\"outbox_id\","
                         "\"Value\":\"42\"},{\"Name\":\"belegnr\","
                         "\"Value\":\"4711\"}]}");
    CHECK(json == NULL || strstr(json, "ReplyToAddresses") == NULL);
    check_raw_content(root, &message);
    cJSON_Delete(root);
    cJSON_free(json);
}

static void test_raw_content_triggers(void)
{
    outbox_message message;
    cJSON *root;
    char *json;

    CHECK_CASE("raw for an empty subject");
    init_minimal(&message);
    message.subject = "";
    json = build_body(&message, &no_options, NULL);
    root = cJSON_Parse(json);
    check_raw_content(root, &message);
    cJSON_Delete(root);
    cJSON_free(json);

    CHECK_CASE("raw for a subject with =?");
    init_minimal(&message);
    message.subject = "=?UTF-8?Q?Hallo=0D=0ABcc:_x@example.net?=";
    json = build_body(&message, &no_options, NULL);
    root = cJSON_Parse(json);
    check_raw_content(root, &message);
    cJSON_Delete(root);
    cJSON_free(json);

    CHECK_CASE("header value of 870 and 871");
    {
        static char value[872];
        outbox_field header = {"X-Long", value};

        memset(value, 'v', 870);
        init_minimal(&message);
        message.headers = &header;
        message.header_count = 1;
        json = build_body(&message, &no_options, NULL);
        CHECK_CONTAINS(json, "\"Headers\":[{\"Name\":\"X-Long\","
                             "\"Value\":\"vvv");
        cJSON_free(json);

        value[870] = 'v';
        json = build_body(&message, &no_options, NULL);
        root = cJSON_Parse(json);
        check_raw_content(root, &message);
        cJSON_Delete(root);
        cJSON_free(json);
    }

    CHECK_CASE("raw for a long attachment name");
    {
        static char long_name[300];
        outbox_attachment attachment = {long_name, "application/pdf", NULL,
                                        pdf_bytes, 6};

        memset(long_name, 'n', 256);
        init_minimal(&message);
        message.attachments = &attachment;
        message.attachment_count = 1;
        json = build_body(&message, &no_options, NULL);
        root = cJSON_Parse(json);
        check_raw_content(root, &message);
        cJSON_Delete(root);
        cJSON_free(json);
    }
}

static void test_too_large(void)
{
    static unsigned char bytes[300];
    outbox_attachment attachment = {"scan.pdf", "application/pdf", NULL,
                                    bytes, sizeof(bytes)};
    outbox_ses_body_options options = {NULL, 400, NOW};
    outbox_message message;
    outbox_error err = {{0}, {0}};
    char *json = NULL;
    size_t size = 0;

    CHECK_CASE("too large after base64");
    init_minimal(&message);
    message.attachments = &attachment;
    message.attachment_count = 1;

    /* 2 (subject) + 5 (text) + 400 (base64 of 300 bytes) + 12 (six line
     * ends) = 419: the raw attachment fits under 400, the encoded one
     * does not. */
    CHECK_INT(outbox__ses_body(&json, &size, &err, &message, &options, NULL),
              OUTBOX_ELIMIT);
    CHECK_STR(err.kind, "message_too_large");
    CHECK_CONTAINS(err.text, "message is 419 bytes encoded");
    CHECK_CONTAINS(err.text, "over the SES cap of 400 bytes");
    CHECK(json == NULL);

    CHECK_CASE("size equal to the cap");
    options.max_message_bytes = 419;
    json = build_body(&message, &options, NULL);
    CHECK(json != NULL);
    cJSON_free(json);

    CHECK_CASE("raw MIME over the cap");
    err = (outbox_error){{0}, {0}};
    message.subject = "";
    CHECK_INT(outbox__ses_body(&json, &size, &err, &message, &options, NULL),
              OUTBOX_ELIMIT);
    CHECK_STR(err.kind, "message_too_large");
    CHECK_CONTAINS(err.text, "bytes as MIME, over the SES cap of 419 bytes");
}

static void test_too_many_recipients(void)
{
    static outbox_address many[51];
    static char emails[51][24];
    outbox_message message;
    outbox_error err = {{0}, {0}};
    char *json = NULL;
    size_t size = 0;

    CHECK_CASE("51 recipients");
    for (int i = 0; i < 51; i++) {
        snprintf(emails[i], sizeof(emails[i]), "r%d@example.org", i);
        many[i] = (outbox_address){NULL, emails[i]};
    }
    init_minimal(&message);
    message.to.items = many;
    message.to.count = 40;
    message.bcc.items = many + 40;
    message.bcc.count = 11;
    CHECK_INT(outbox__ses_body(&json, &size, &err, &message, &no_options,
                               NULL),
              OUTBOX_ELIMIT);
    CHECK_STR(err.kind, "limit_exceeded");
    CHECK_CONTAINS(err.text, "51 recipients in to, cc and bcc, over the SES "
                             "cap of 50");

    CHECK_CASE("50 recipients");
    init_minimal(&message);
    message.to.items = many;
    message.to.count = 40;
    message.bcc.items = many + 40;
    message.bcc.count = 10;
    json = build_body(&message, &no_options, NULL);
    CHECK(json != NULL);
    cJSON_free(json);
}

/* ------------------------------------------------------------------ */
/* Classification                                                      */
/* ------------------------------------------------------------------ */

#define QUOTA_DELAY 600

typedef struct classify_case {
    const char *name;
    CURLcode curl_code;
    const char *curl_error;
    long status;
    const char *error_type;    /* X-Amzn-ErrorType, or NULL */
    const char *retry_after;   /* Retry-After, or NULL */
    const char *body;
    outbox_result_kind kind;
    const char *error_kind;
    int64_t retry_after_seconds;
    bool counts_as_failure;
    const char *provider_id;
    const char *text;          /* expected part of error.text */
} classify_case;

#define SES_ID "0102018e-0000-4000-8000-000000000001-000000"

static const classify_case classify_cases[] = {
    {"200 with MessageId", CURLE_OK, "", 200, NULL, NULL,
     "{\"MessageId\":\"" SES_ID "\"}", OUTBOX_RESULT_SENT, "", -1, true,
     SES_ID, ""},
    {"200 without MessageId", CURLE_OK, "", 200, NULL, NULL, "",
     OUTBOX_RESULT_SENT, "", -1, true, "", "without a usable MessageId"},
    {"200 then transfer error", CURLE_RECV_ERROR, "Connection reset", 200,
     NULL, NULL, "{\"MessageId\":\"" SES_ID "\"}", OUTBOX_RESULT_SENT, "",
     -1, true, SES_ID, "then the transfer failed"},
    {"429 maximum sending rate", CURLE_OK, "", 429,
     "TooManyRequestsException", NULL,
     "{\"message\":\"Maximum sending rate exceeded.\"}",
     OUTBOX_RESULT_RETRY, "rate_limited", 1, false, "",
     "HTTP 429 TooManyRequestsException: Maximum sending rate exceeded."},
    {"429 with Retry-After", CURLE_OK, "", 429, "TooManyRequestsException",
     "3", "{\"message\":\"Too many requests.\"}", OUTBOX_RESULT_RETRY,
     "rate_limited", 3, false, "", "Too many requests."},
    {"400 daily quota", CURLE_OK, "", 400, "ThrottlingException", NULL,
     "{\"message\":\"Daily message quota exceeded.\"}", OUTBOX_RESULT_RETRY,
     "quota_exceeded", QUOTA_DELAY, false, "",
     "HTTP 400 ThrottlingException: Daily message quota exceeded."},
    {"400 throttling rate", CURLE_OK, "", 400, "Throttling", NULL,
     "{\"message\":\"Maximum sending rate exceeded.\"}", OUTBOX_RESULT_RETRY,
     "rate_limited", 1, false, "", "Maximum sending rate exceeded."},
    {"400 limit exceeded", CURLE_OK, "", 400, "LimitExceededException", NULL,
     "{\"message\":\"Limit exceeded.\"}", OUTBOX_RESULT_RETRY,
     "provider_limit", QUOTA_DELAY, true, "",
     "HTTP 400 LimitExceededException: Limit exceeded."},
    {"500 concurrent modification", CURLE_OK, "", 500,
     "ConcurrentModificationException", NULL,
     "{\"message\":\"The resource is being modified by another "
     "operation.\"}",
     OUTBOX_RESULT_RETRY, "provider_unavailable", -1, true, "",
     "HTTP 500 ConcurrentModificationException: The resource is being "
     "modified"},
    {"503 HTML with Retry-After", CURLE_OK, "", 503, NULL, "30",
     "<html>maintenance</html>", OUTBOX_RESULT_RETRY,
     "provider_unavailable", 30, true, "",
     "HTTP 503: <html>maintenance</html>"},
    {"timeout", CURLE_OPERATION_TIMEDOUT,
     "Operation timed out after 30001 milliseconds with 0 bytes received", 0,
     NULL, NULL, "", OUTBOX_RESULT_RETRY, "timeout", -1, true, "",
     "Operation timed out after 30001 milliseconds"},
    {"could not connect", CURLE_COULDNT_CONNECT,
     "Failed to connect to email.eu-central-1.amazonaws.com port 443", 0,
     NULL, NULL, "", OUTBOX_RESULT_RETRY, "network", -1, true, "",
     "Failed to connect"},
    {"message rejected", CURLE_OK, "", 400,
     "MessageRejected:http://internal.amazon.com/coral/com.amazonaws.sesv2/",
     NULL,
     "{\"message\":\"Email address is not verified. The following "
     "identities failed the check in region EU-CENTRAL-1: "
     "billing@ex.com\"}",
     OUTBOX_RESULT_FAILED, "provider_rejected", -1, true, "",
     "HTTP 400 MessageRejected: Email address is not verified."},
    {"bad request", CURLE_OK, "", 400, "BadRequestException", NULL,
     "{\"message\":\"Missing required key 'Destination'\"}",
     OUTBOX_RESULT_FAILED, "provider_validation", -1, true, "",
     "HTTP 400 BadRequestException: Missing required key 'Destination'"},
    {"message length over 40 MiB", CURLE_OK, "", 400, "BadRequestException",
     NULL,
     "{\"message\":\"Message length is more than 41943040 bytes long: "
     "'43046806'.\"}",
     OUTBOX_RESULT_FAILED, "message_too_large", -1, true, "",
     "Message length is more than 41943040 bytes long: '43046806'."},
    {"413", CURLE_OK, "", 413, NULL, NULL, "Request Entity Too Large",
     OUTBOX_RESULT_FAILED, "message_too_large", -1, true, "",
     "HTTP 413: Request Entity Too Large"},
    {"MAIL FROM not verified", CURLE_OK, "", 400,
     "MailFromDomainNotVerifiedException", NULL,
     "{\"message\":\"MAIL FROM domain is not verified.\"}",
     OUTBOX_RESULT_MISCONFIGURED, "sender_not_verified", -1, false, "",
     "verify the MAIL FROM domain"},
    {"not found", CURLE_OK, "", 404, "NotFoundException", NULL,
     "{\"message\":\"Configuration set <prod> does not exist.\"}",
     OUTBOX_RESULT_MISCONFIGURED, "provider_not_found", -1, false, "",
     "Configuration set <prod> does not exist.; check configuration_set"},
    {"not found in the body", CURLE_OK, "", 404, NULL, NULL,
     "{\"type\":\"NotFoundException\",\"message\":\"The resource you "
     "attempted to access doesn't exist.\"}",
     OUTBOX_RESULT_MISCONFIGURED, "provider_not_found", -1, false, "",
     "HTTP 404 NotFoundException: The resource you attempted"},
    {"sending paused", CURLE_OK, "", 400, "SendingPausedException", NULL,
     "{\"message\":\"Sending is paused for this account.\"}",
     OUTBOX_RESULT_MISCONFIGURED, "sending_paused", -1, false, "",
     "HTTP 400 SendingPausedException: Sending is paused for this "
     "account."},
    {"account suspended", CURLE_OK, "", 400, "AccountSuspendedException",
     NULL, "{\"message\":\"Account is suspended.\"}",
     OUTBOX_RESULT_MISCONFIGURED, "account_suspended", -1, false, "",
     "HTTP 400 AccountSuspendedException: Account is suspended."},
    {"403 bad signature", CURLE_OK, "", 403, "SignatureDoesNotMatch", NULL,
     "{\"message\":\"The request signature we calculated does not match "
     "the signature you provided.\"}",
     OUTBOX_RESULT_MISCONFIGURED, "provider_auth", -1, false, "",
     "HTTP 403 SignatureDoesNotMatch: The request signature"},
    {"403 type in __type", CURLE_OK, "", 403, NULL, NULL,
     "{\"__type\":\"com.amazon.coral.service#UnrecognizedClientException\","
     "\"Message\":\"The security token included in the request is "
     "invalid.\"}",
     OUTBOX_RESULT_MISCONFIGURED, "provider_auth", -1, false, "",
     "HTTP 403 UnrecognizedClientException: The security token"},
    {"403 without a body", CURLE_OK, "", 403, NULL, NULL, "",
     OUTBOX_RESULT_MISCONFIGURED, "provider_auth", -1, false, "",
     "HTTP 403: (empty body); check the access key"},
    {"other 4xx", CURLE_OK, "", 409, NULL, NULL, "Conflict",
     OUTBOX_RESULT_FAILED, "provider_rejected", -1, true, "",
     "HTTP 409: Conflict"},
    {"301 redirect", CURLE_OK, "", 301, NULL, NULL, "",
     OUTBOX_RESULT_MISCONFIGURED, "provider_redirect", -1, false, "",
     "check base_url"},
    {"unexpected 1xx", CURLE_OK, "", 102, NULL, NULL, "",
     OUTBOX_RESULT_UNKNOWN, "provider_unexpected", -1, true, "", "HTTP 102"},
};

static void run_classify_case(const classify_case *c)
{
    outbox_field headers[2];
    outbox_response response;
    outbox_result result;
    size_t count = 0;

    if (c->error_type != NULL)
        headers[count++] = (outbox_field){"x-amzn-ErrorType",
                                          (char *)c->error_type};
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
    outbox__ses_classify(&result, &response, QUOTA_DELAY);
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

/* ------------------------------------------------------------------ */
/* Config                                                              */
/* ------------------------------------------------------------------ */

static void clear_aws_environment(void)
{
    unsetenv("AWS_ACCESS_KEY_ID");
    unsetenv("AWS_SECRET_ACCESS_KEY");
    unsetenv("AWS_SESSION_TOKEN");
}

/* Creates a provider from config text; NULL (with err filled) if that
 * fails. */
static outbox_provider *create_from(const char *text, outbox_error *err)
{
    cJSON *config = cJSON_Parse(text);
    outbox_provider *provider = NULL;

    if (config == NULL) {
        CHECK_FAIL("config is not JSON: %s", text);
        return NULL;
    }
    if (outbox_provider_create(&provider, err, config, NULL) != OUTBOX_EOK)
        provider = NULL;
    cJSON_Delete(config);
    return provider;
}

typedef struct config_case {
    const char *name;
    const char *config;
    const char *error;   /* expected part of the error; NULL for success */
} config_case;

#define KEYS "\"access_key_id\":\"AKID\",\"secret_access_key\":\"s\""

static const config_case config_cases[] = {
    {"complete", "{\"name\":\"ses\",\"type\":\"ses\",\"region\":"
     "\"eu-central-1\"," KEYS ",\"configuration_set\":\"prod\","
     "\"base_url\":\"http://127.0.0.1:1/\",\"quota_retry_seconds\":900}",
     NULL},
    {"missing region", "{\"name\":\"ses\",\"type\":\"ses\"," KEYS "}",
     "provider \"ses\": missing or invalid \"region\""},
    {"region with capitals", "{\"name\":\"ses\",\"type\":\"ses\","
     "\"region\":\"EU-CENTRAL-1\"," KEYS "}", "invalid \"region\""},
    {"misspelled key", "{\"name\":\"ses\",\"type\":\"ses\",\"region\":"
     "\"eu-west-1\"," KEYS ",\"baseurl\":\"http://127.0.0.1:1\"}",
     "unknown key \"baseurl\" for type ses"},
    {"base_url with a query", "{\"name\":\"ses\",\"type\":\"ses\","
     "\"region\":\"eu-west-1\"," KEYS ",\"base_url\":\"http://h/?x=1\"}",
     "invalid \"base_url\": expected http:// or https:// and a host, such "
     "as https://email.eu-west-1.amazonaws.com"},
    {"no credentials", "{\"name\":\"ses\",\"type\":\"ses\",\"region\":"
     "\"eu-west-1\"}",
     "missing \"access_key_id\" or \"access_key_id_env\", and the "
     "environment variable AWS_ACCESS_KEY_ID is not set"},
    {"no secret", "{\"name\":\"ses\",\"type\":\"ses\",\"region\":"
     "\"eu-west-1\",\"access_key_id\":\"AKID\"}",
     "missing \"secret_access_key\" or \"secret_access_key_env\""},
    {"secret variable unset", "{\"name\":\"ses\",\"type\":\"ses\","
     "\"region\":\"eu-west-1\",\"access_key_id\":\"AKID\","
     "\"secret_access_key_env\":\"OUTBOX_TEST_UNSET_SECRET\"}",
     "environment variable OUTBOX_TEST_UNSET_SECRET (from "
     "\"secret_access_key_env\") is not set"},
    {"key id with a colon", "{\"name\":\"ses\",\"type\":\"ses\",\"region\":"
     "\"eu-west-1\",\"access_key_id\":\"AK:ID\","
     "\"secret_access_key\":\"s\"}",
     "the access key id contains"},
    {"token with a line break", "{\"name\":\"ses\",\"type\":\"ses\","
     "\"region\":\"eu-west-1\"," KEYS ",\"session_token\":\"a\\nb\"}",
     "the session token contains"},
    {"configuration set with a dot", "{\"name\":\"ses\",\"type\":\"ses\","
     "\"region\":\"eu-west-1\"," KEYS ",\"configuration_set\":\"a.b\"}",
     "invalid \"configuration_set\""},
    {"negative size cap", "{\"name\":\"ses\",\"type\":\"ses\",\"region\":"
     "\"eu-west-1\"," KEYS ",\"max_message_bytes\":-1}",
     "invalid \"max_message_bytes\": expected a whole number from 0"},
    {"quota wait of 0", "{\"name\":\"ses\",\"type\":\"ses\",\"region\":"
     "\"eu-west-1\"," KEYS ",\"quota_retry_seconds\":0}",
     "invalid \"quota_retry_seconds\": expected a whole number from 1 to "
     "86400"},
};

static void test_config_table(void)
{
    clear_aws_environment();
    for (size_t i = 0; i < sizeof(config_cases) / sizeof(*config_cases);
         i++) {
        const config_case *c = &config_cases[i];
        outbox_error err = {{0}, {0}};
        outbox_provider *provider;

        CHECK_CASE(c->name);
        provider = create_from(c->config, &err);
        if (c->error == NULL) {
            CHECK(provider != NULL);
            CHECK_STR(err.text, "");
        } else {
            CHECK(provider == NULL);
            CHECK_STR(err.kind, "config");
            CHECK_CONTAINS(err.text, c->error);
        }
        outbox_provider_free(provider);
    }
}

/* ------------------------------------------------------------------ */
/* One request on the wire                                             */
/* ------------------------------------------------------------------ */

/* What the capture server responds with. */
static const char capture_response[] =
    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
    "Content-Length: 59\r\n\r\n{\"MessageId\":\"" SES_ID "\"}";

/* Copies the value of header name (any case) from a request head.
 * Returns false, leaving out empty, if the head has no such header. */
static bool header_value(char *out, size_t size, const char *request,
                         const char *name)
{
    const char *line = strstr(request, "\r\n");
    size_t length = strlen(name);

    out[0] = '\0';
    while (line != NULL && strncmp(line, "\r\n\r\n", 4) != 0) {
        const char *end;

        line += 2;
        end = strstr(line, "\r\n");
        if (end == NULL)
            return false;
        if ((size_t)(end - line) > length && line[length] == ':'
            && strncasecmp(line, name, length) == 0) {
            const char *value = line + length + 1;

            while (*value == ' ')
                value++;
            snprintf(out, size, "%.*s", (int)(end - value), value);
            return true;
        }
        line = end;
    }
    return false;
}

static void hex(char *out, const unsigned char *bytes, size_t n)
{
    for (size_t i = 0; i < n; i++)
        sprintf(out + 2 * i, "%02x", bytes[i]);
}

static void sha256_hex(char out[65], const char *data, size_t n)
{
    unsigned char digest[32];

    EVP_Digest(data, n, digest, NULL, EVP_sha256(), NULL);
    hex(out, digest, 32);
}

static void hmac(unsigned char out[32], const void *key, size_t key_size,
                 const char *data)
{
    unsigned int size = 32;

    HMAC(EVP_sha256(), key, (int)key_size, (const unsigned char *)data,
         strlen(data), out, &size);
}

/*
 * Computes the SigV4 signature of the captured request as AWS documents
 * it: canonical request, string to sign, and the key derived from the
 * secret, date, region and service. signed_headers is the list that the
 * Authorization header names.
 */
static void compute_signature(char out[65], const char *request,
                              const char *signed_headers, const char *date,
                              const char *secret)
{
    const char *body = strstr(request, "\r\n\r\n") + 4;
    char canonical[4096];
    char names[512];
    char digest[65];
    char to_sign[512];
    char key[128];
    unsigned char k1[32];
    unsigned char k2[32];
    size_t used;

    used = (size_t)snprintf(canonical, sizeof(canonical),
                            "POST\n/v2/email/outbound-emails\n\n");
    snprintf(names, sizeof(names), "%s", signed_headers);
    for (char *name = strtok(names, ";"); name != NULL;
         name = strtok(NULL, ";")) {
        char value[2048];

        /* Every signed header must arrive, or AWS rejects the request. */
        if (!header_value(value, sizeof(value), request, name))
            CHECK_FAIL("signed header \"%s\" is not in the request", name);
        used += (size_t)snprintf(canonical + used, sizeof(canonical) - used,
                                 "%s:%s\n", name, value);
    }
    sha256_hex(digest, body, strlen(body));
    snprintf(canonical + used, sizeof(canonical) - used, "\n%s\n%s",
             signed_headers, digest);

    sha256_hex(digest, canonical, strlen(canonical));
    snprintf(to_sign, sizeof(to_sign),
             "AWS4-HMAC-SHA256\n%s\n%.8s/eu-central-1/ses/aws4_request\n%s",
             date, date, digest);
    snprintf(key, sizeof(key), "AWS4%s", secret);
    snprintf(names, sizeof(names), "%.8s", date);
    hmac(k1, key, strlen(key), names);
    hmac(k2, k1, 32, "eu-central-1");
    hmac(k1, k2, 32, "ses");
    hmac(k2, k1, 32, "aws4_request");
    hmac(k1, k2, 32, to_sign);
    hex(out, k1, 32);
}

static void check_signature(const char *request, const char *key_id,
                            const char *secret)
{
    char authorization[1024];
    char date[32];
    char credential[256];
    char signature[65];
    const char *signed_headers;
    const char *received;

    header_value(authorization, sizeof(authorization), request,
                 "Authorization");
    header_value(date, sizeof(date), request, "X-Amz-Date");
    snprintf(credential, sizeof(credential),
             "AWS4-HMAC-SHA256 Credential=%s/%.8s/eu-central-1/ses/"
             "aws4_request, SignedHeaders=",
             key_id, date);
    CHECK_INT(strlen(date), 16);
    CHECK_CONTAINS(authorization, credential);
    signed_headers = strstr(authorization, "SignedHeaders=");
    received = strstr(authorization, ", Signature=");
    if (signed_headers == NULL || received == NULL) {
        CHECK_FAIL("Authorization is not SigV4: %s", authorization);
        return;
    }
    signed_headers += 14;
    authorization[received - authorization] = '\0';
    compute_signature(signature, request, signed_headers, date, secret);
    CHECK_STR(received + 12, signature);
}

/* Sends message through a provider in region eu-central-1 whose other
 * config keys are extra_keys, and captures the request in server. */
static void send_to_server(capture_server *server, const char *extra_keys,
                           const outbox_message *message)
{
    outbox_error err = {{0}, {0}};
    outbox_provider *provider = NULL;
    void *request = NULL;
    char config[1024];
    CURL *easy = curl_easy_init();
    long status = 0;

    capture_server_free(server);
    if (!capture_server_start(server, capture_response, 4 << 20)) {
        CHECK_FAIL("cannot listen on 127.0.0.1");
        curl_easy_cleanup(easy);
        return;
    }
    snprintf(config, sizeof(config),
             "{\"name\":\"ses\",\"type\":\"ses\","
             "\"region\":\"eu-central-1\","
             "\"base_url\":\"http://127.0.0.1:%d/\"%s}",
             server->port, extra_keys);
    provider = create_from(config, &err);
    CHECK_STR(err.text, "");
    if (provider != NULL && easy != NULL) {
        CHECK_INT(outbox_provider_prepare(provider, &request, &err, easy,
                                          message),
                  OUTBOX_EOK);
        curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, discard_body);
        CHECK_INT(curl_easy_perform(easy), CURLE_OK);
        curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &status);
        CHECK_INT(status, 200);
    }
    capture_server_stop(server);
    outbox_provider_release(provider, request);
    curl_easy_cleanup(easy);
    outbox_provider_free(provider);
}

#define SECRET "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
#define TOKEN "FwoGZXIvYXdzEXAMPLE/session+token="

static capture_server server;

static void test_request_on_wire(void)
{
    outbox_ses_body_options options = {"prod", 41943040, NOW};
    outbox_message message;
    char token[256];
    char *json;
    const char *body;

    CHECK_CASE("request on the wire");
    clear_aws_environment();
    init_full(&message);
    send_to_server(&server,
                   ",\"access_key_id\":\"AKIDEXAMPLE\","
                   "\"secret_access_key\":\"" SECRET "\","
                   "\"session_token\":\"" TOKEN "\","
                   "\"configuration_set\":\"prod\"",
                   &message);

    CHECK_CONTAINS(server.request,
                   "POST /v2/email/outbound-emails HTTP/1.1\r\n");
    CHECK_CONTAINS(server.request, "\r\nContent-Type: application/json\r\n");
    header_value(token, sizeof(token), server.request,
                 "X-Amz-Security-Token");
    CHECK_STR(token, TOKEN);
    CHECK_CONTAINS(server.request, ";x-amz-security-token, Signature=");
    CHECK(strstr(server.request, SECRET) == NULL);
    check_signature(server.request, "AKIDEXAMPLE", SECRET);

    json = build_body(&message, &options, NULL);
    body = strstr(server.request, "\r\n\r\n");
    CHECK_STR(body != NULL ? body + 4 : NULL, json);
    cJSON_free(json);
}

/* Without credential keys in config, the standard AWS variables apply,
 * the session token included. */
static void test_credentials_from_environment(void)
{
    outbox_message message;
    char token[256];

    CHECK_CASE("credentials from AWS variables");
    setenv("AWS_ACCESS_KEY_ID", "AKIDFROMENV", 1);
    setenv("AWS_SECRET_ACCESS_KEY", SECRET, 1);
    setenv("AWS_SESSION_TOKEN", TOKEN, 1);
    init_minimal(&message);
    send_to_server(&server, "", &message);
    header_value(token, sizeof(token), server.request,
                 "X-Amz-Security-Token");
    CHECK_STR(token, TOKEN);
    check_signature(server.request, "AKIDFROMENV", SECRET);

    /* A key from config is never paired with the variable's token. */
    CHECK_CASE("config key ignores AWS_SESSION_TOKEN");
    send_to_server(&server,
                   ",\"access_key_id\":\"AKIDCONFIG\","
                   "\"secret_access_key_env\":\"AWS_SECRET_ACCESS_KEY\"",
                   &message);
    header_value(token, sizeof(token), server.request,
                 "X-Amz-Security-Token");
    CHECK_STR(token, "");
    check_signature(server.request, "AKIDCONFIG", SECRET);
    clear_aws_environment();
}

/* A body over 1 MiB makes libcurl add "Expect: 100-continue", which must
 * stay out of the signed headers. */
static void test_large_request_signed(void)
{
    static unsigned char scan[2 << 20];
    outbox_attachment attachment = {"scan.pdf", "application/pdf", NULL,
                                    scan, sizeof(scan)};
    outbox_message message;
    char expect[64];

    CHECK_CASE("large request signed");
    clear_aws_environment();
    memset(scan, 'p', sizeof(scan));
    init_minimal(&message);
    message.attachments = &attachment;
    message.attachment_count = 1;
    send_to_server(&server,
                   ",\"access_key_id\":\"AKIDEXAMPLE\","
                   "\"secret_access_key\":\"" SECRET "\"",
                   &message);
    header_value(expect, sizeof(expect), server.request, "Expect");
    CHECK_STR(expect, "100-continue");
    CHECK(server.size > sizeof(scan));
    check_signature(server.request, "AKIDEXAMPLE", SECRET);
}

static void test_prepare_too_large(void)
{
    outbox_error err = {{0}, {0}};
    outbox_provider *provider = create_from(
        "{\"name\":\"ses\",\"type\":\"ses\",\"region\":\"eu-west-1\","
        "\"base_url\":\"http://127.0.0.1:9\"," KEYS
        ",\"max_message_bytes\":5}",
        &err);
    outbox_message message;
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
        CHECK_CONTAINS(err.text, "SES cap of 5 bytes (max_message_bytes)");
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
    test_full_body();
    test_template_body();
    test_template_limits();
    test_metadata_tags();
    test_raw_for_many_headers();
    test_raw_content_triggers();
    test_too_large();
    test_too_many_recipients();
    test_classify_table();
    test_config_table();
    test_request_on_wire();
    test_credentials_from_environment();
    test_large_request_signed();
    test_prepare_too_large();
    capture_server_free(&server);
    curl_global_cleanup();
    CHECK_DONE();
}
