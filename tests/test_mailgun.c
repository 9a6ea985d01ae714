/*
 * test_mailgun.c - the Mailgun provider: the exact form fields of a send
 * request, its caps, the config keys and the URL they give, the table of
 * responses and their classification, and the count of 404 responses.
 * One request goes through libcurl to a server on 127.0.0.1, and its
 * multipart body must match the fields byte for byte.
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
#include "provider_mailgun.h"

/* 2025-03-05 10:10:00 UTC */
#define NOW 1741169400

#define API_KEY "key-test-1234"
/* base64 of "api:key-test-1234" */
#define BASIC_CREDENTIALS "YXBpOmtleS10ZXN0LTEyMzQ="

/* One expected form field. filename and type are NULL for plain fields. */
typedef struct expected_part {
    const char *name;
    const char *value;
    size_t size;          /* 0: strlen(value) */
    const char *filename;
    const char *type;
} expected_part;

static void check_parts(const outbox_mailgun_form *form,
                        const expected_part *want, size_t count)
{
    CHECK_INT(form->count, count);
    for (size_t i = 0; i < count && i < form->count; i++) {
        const outbox_mailgun_part *got = &form->parts[i];
        size_t size = want[i].size ? want[i].size : strlen(want[i].value);

        CHECK_STR(got->name, want[i].name);
        CHECK_INT(got->size, size);
        if (got->size == size && memcmp(got->data, want[i].value, size) != 0)
            CHECK_FAIL("field %zu (%s): got \"%.*s\", want \"%s\"", i,
                       want[i].name, (int)got->size, got->data,
                       want[i].value);
        CHECK_STR(got->filename, want[i].filename);
        CHECK_STR(got->type, want[i].type);
    }
}

/* ------------------------------------------------------------------ */
/* Form fields                                                         */
/* ------------------------------------------------------------------ */

static void init_minimal(outbox_message *message)
{
    init_minimal_message(message, "mailgun");
}

static void test_minimal_form(void)
{
    static const expected_part want[] = {
        {"from", "no-reply@ex.com", 0, NULL, NULL},
        {"to", "a@x.io", 0, NULL, NULL},
        {"subject", "Hi", 0, NULL, NULL},
        {"text", "Hello", 0, NULL, NULL},
        {"v:outbox_id", "42", 0, NULL, NULL},
    };
    outbox_message message;
    outbox_mailgun_form form;
    outbox_error err = {{0}, {0}};

    CHECK_CASE("minimal form");
    init_minimal(&message);
    CHECK_INT(outbox__mailgun_form_build(&form, &err, &message, 0),
              OUTBOX_EOK);
    check_parts(&form, want, sizeof(want) / sizeof(want[0]));

    /* Names and values: 4+15, 2+6, 7+2, 4+5, 11+2. */
    CHECK_INT(form.message_bytes, 58);
    CHECK_INT(form.option_bytes, 13);
    outbox__mailgun_form_free(&form);
}

static outbox_field full_metadata[] = {
    {"belegnr", "4711"},
    {"event", "mahnung"},
};

/* The PDF ends in a NUL and a byte that is not UTF-8, because Mailgun
 * takes attachments raw and the form must copy every byte. */
static unsigned char binary_pdf_bytes[] = {'%', 'P', 'D', 'F', '-', '1',
                                           0x00, 0xE2};
static outbox_attachment binary_attachments[] = {
    {"rechnung.pdf", "application/pdf", NULL, binary_pdf_bytes, 8},
    {"logo.png", "image/png", "logo", png_bytes, 4},
};

static void init_full(outbox_message *message)
{
    init_full_message(message, "mailgun");
    message->metadata = full_metadata;
    message->metadata_count = 2;
    message->attachments = binary_attachments;
    message->attachment_count = 2;
}

static const expected_part full_parts[] = {
    {"from", "\"Beispiel GmbH, Buchhaltung\" <billing@ex.com>", 0, NULL,
     NULL},
    {"to", "\"Meier, Anna\" <a.meier@example.org>", 0, NULL, NULL},
    {"to", "J\xc3\xbcrgen Gro\xc3\x9f <j.gross@example.de>", 0, NULL, NULL},
    {"cc", "cc@example.org", 0, NULL, NULL},
    {"bcc", "Archiv <archive@ex.com>", 0, NULL, NULL},
    {"subject", "Rechnung 4711 \xe2\x80\x93 M\xc3\xa4rz", 0, NULL, NULL},
    {"text", "Guten Tag,\n\"Anhang\" siehe unten.", 0, NULL, NULL},
    {"html", "<p>Guten Tag</p><img src=\"cid:logo\">", 0, NULL, NULL},
    {"h:Reply-To", "Support <help@ex.com>, billing@ex.com", 0, NULL, NULL},
    {"h:List-Unsubscribe", "<https://ex.com/u/1>", 0, NULL, NULL},
    {"h:X-Campaign", "q1", 0, NULL, NULL},
    {"h:Message-Id", "<1101.k3j2@ex.com>", 0, NULL, NULL},
    {"v:outbox_id", "1101", 0, NULL, NULL},
    {"v:belegnr", "4711", 0, NULL, NULL},
    {"v:event", "mahnung", 0, NULL, NULL},
    {"attachment", "%PDF-1\0\xe2", 8, "rechnung.pdf", "application/pdf"},
    /* Mailgun takes an inline part's filename as its Content-ID. */
    {"inline", "\x89PNG", 4, "logo", "image/png"},
};

static void test_full_form(void)
{
    size_t count = sizeof(full_parts) / sizeof(full_parts[0]);
    outbox_message message;
    outbox_mailgun_form form;
    outbox_error err = {{0}, {0}};
    size_t options = 0;
    size_t total = 0;

    CHECK_CASE("full form");
    init_full(&message);
    CHECK_INT(outbox__mailgun_form_build(&form, &err, &message, 25000000),
              OUTBOX_EOK);
    check_parts(&form, full_parts, count);

    for (size_t i = 0; i < count; i++) {
        size_t size = full_parts[i].size ? full_parts[i].size
                                         : strlen(full_parts[i].value);

        total += strlen(full_parts[i].name) + size;
        if (full_parts[i].name[1] == ':')
            options += strlen(full_parts[i].name) + size;
    }
    CHECK_INT(form.message_bytes, total);
    CHECK_INT(form.option_bytes, options);
    CHECK_INT(form.option_bytes, 171);
    outbox__mailgun_form_free(&form);
}

/* A template replaces text and html. An empty subject is left out, so
 * that the template's own subject applies. */
static void test_template_form(void)
{
    static const expected_part want[] = {
        {"from", "\"Beispiel GmbH, Buchhaltung\" <billing@ex.com>", 0, NULL,
         NULL},
        {"to", "\"Meier, Anna\" <a.meier@example.org>", 0, NULL, NULL},
        {"to", "J\xc3\xbcrgen Gro\xc3\x9f <j.gross@example.de>", 0, NULL,
         NULL},
        {"cc", "cc@example.org", 0, NULL, NULL},
        {"bcc", "Archiv <archive@ex.com>", 0, NULL, NULL},
        {"template", "invoice-reminder", 0, NULL, NULL},
        {"t:variables", "{\"invoice\": \"RE-4711\", \"total\": 12.5}", 0,
         NULL, NULL},
        {"h:Reply-To", "Support <help@ex.com>, billing@ex.com", 0, NULL,
         NULL},
        {"h:List-Unsubscribe", "<https://ex.com/u/1>", 0, NULL, NULL},
        {"h:X-Campaign", "q1", 0, NULL, NULL},
        {"h:Message-Id", "<1101.k3j2@ex.com>", 0, NULL, NULL},
        {"v:outbox_id", "1101", 0, NULL, NULL},
        {"v:belegnr", "4711", 0, NULL, NULL},
        {"v:event", "mahnung", 0, NULL, NULL},
        {"attachment", "%PDF-1\0\xe2", 8, "rechnung.pdf", "application/pdf"},
        {"inline", "\x89PNG", 4, "logo", "image/png"},
    };
    outbox_message message;
    outbox_mailgun_form form;
    outbox_error err = {{0}, {0}};

    CHECK_CASE("template form");
    init_full(&message);
    message.subject = "";
    message.body_text = NULL;
    message.body_html = NULL;
    message.template_name = "invoice-reminder";
    message.template_data = "{\"invoice\": \"RE-4711\", \"total\": 12.5}";
    CHECK_INT(outbox__mailgun_form_build(&form, &err, &message, 25000000),
              OUTBOX_EOK);
    check_parts(&form, want, sizeof(want) / sizeof(want[0]));

    /* t:variables is not an h: or v: field, so the 16 kB cap on those
     * does not count it. */
    CHECK_INT(form.option_bytes, 171);
    outbox__mailgun_form_free(&form);
}

/* A subject of the row is sent with the template. Without template_data
 * there is no t:variables field. */
static void test_template_subject_no_data(void)
{
    static const expected_part want[] = {
        {"from", "no-reply@ex.com", 0, NULL, NULL},
        {"to", "a@x.io", 0, NULL, NULL},
        {"subject", "Hi", 0, NULL, NULL},
        {"template", "welcome", 0, NULL, NULL},
        {"v:outbox_id", "42", 0, NULL, NULL},
    };
    outbox_message message;
    outbox_mailgun_form form;
    outbox_error err = {{0}, {0}};

    CHECK_CASE("template with subject, no data");
    init_minimal(&message);
    message.body_text = NULL;
    message.template_name = "welcome";
    CHECK_INT(outbox__mailgun_form_build(&form, &err, &message, 0),
              OUTBOX_EOK);
    check_parts(&form, want, sizeof(want) / sizeof(want[0]));
    outbox__mailgun_form_free(&form);
}

static void test_name_quoting(void)
{
    outbox_address to[] = {
        {"Sales; \"East\" \\ West", "s@ex.com"},
        {"Dr. Anna Meier", "dr@ex.com"},
        {"O'Brien & Co", "ob@ex.com"},
        {" Padded", "pad@ex.com"},
    };
    static const expected_part want[] = {
        {"from", "no-reply@ex.com", 0, NULL, NULL},
        {"to", "\"Sales; \\\"East\\\" \\\\ West\" <s@ex.com>", 0, NULL, NULL},
        {"to", "\"Dr. Anna Meier\" <dr@ex.com>", 0, NULL, NULL},
        {"to", "O'Brien & Co <ob@ex.com>", 0, NULL, NULL},
        {"to", "\" Padded\" <pad@ex.com>", 0, NULL, NULL},
        {"subject", "Hi", 0, NULL, NULL},
        {"text", "Hello", 0, NULL, NULL},
        {"v:outbox_id", "42", 0, NULL, NULL},
    };
    outbox_message message;
    outbox_mailgun_form form;
    outbox_error err = {{0}, {0}};

    CHECK_CASE("name quoting escapes");
    init_minimal(&message);
    message.to.items = to;
    message.to.count = 4;
    CHECK_INT(outbox__mailgun_form_build(&form, &err, &message, 0),
              OUTBOX_EOK);
    check_parts(&form, want, sizeof(want) / sizeof(want[0]));
    outbox__mailgun_form_free(&form);
}

/* A row as the ERP writes it: numbers and booleans in the metadata
 * become strings, and the to, cc and bcc lists go out in one request. */
static void test_form_from_row(void)
{
    static const expected_part want[] = {
        {"from", "Beispiel GmbH <billing@ex.com>", 0, NULL, NULL},
        {"to", "\"Meier, Anna\" <a.meier@example.org>", 0, NULL, NULL},
        {"to", "b.schulz@example.org", 0, NULL, NULL},
        {"cc", "Einkauf@Example.org", 0, NULL, NULL},
        {"bcc", "archiv@example.com", 0, NULL, NULL},
        {"subject", "Angebot 2025-117", 0, NULL, NULL},
        {"text", "Hallo", 0, NULL, NULL},
        {"h:Message-Id", "<1101.x@ex.com>", 0, NULL, NULL},
        {"v:outbox_id", "1101", 0, NULL, NULL},
        {"v:belegnr", "4711", 0, NULL, NULL},
        {"v:storno", "false", 0, NULL, NULL},
    };
    outbox_row row;
    outbox_message *message = NULL;
    outbox_mailgun_form form;
    outbox_error err = {{0}, {0}};

    CHECK_CASE("form from built row");
    memset(&row, 0, sizeof(row));
    row.id = 1101;
    row.attempt = 1;
    row.sender = "Beispiel GmbH <billing@ex.com>";
    row.recipients = "\"Meier, Anna\" <a.meier@example.org>, "
                     "b.schulz@example.org";
    row.cc = "Einkauf@Example.org; einkauf@example.org";
    row.bcc = "archiv@example.com, b.schulz@example.org";
    row.subject = "Angebot 2025-117";
    row.body_text = "Hallo";
    row.body_text_size = 5;
    row.metadata = "{\"belegnr\": 4711, \"storno\": false}";
    row.provider = "mailgun";
    row.message_id = "1101.x@ex.com";
    if (outbox_message_build(&message, &err, &row, NULL) != OUTBOX_EOK) {
        CHECK_FAIL("build failed: %s: %s", err.kind, err.text);
        return;
    }
    CHECK_INT(outbox__mailgun_form_build(&form, &err, message, 0),
              OUTBOX_EOK);

    /* The cc keeps the first spelling of the repeated address. */
    check_parts(&form, want, sizeof(want) / sizeof(want[0]));
    outbox__mailgun_form_free(&form);
    outbox_message_free(message);
}

static void test_no_to_recipient(void)
{
    outbox_message message;
    outbox_mailgun_form form;
    outbox_error err = {{0}, {0}};

    CHECK_CASE("no to recipient");
    init_minimal(&message);
    message.bcc = message.to;
    message.to.count = 0;
    CHECK_INT(outbox__mailgun_form_build(&form, &err, &message, 0),
              OUTBOX_EINVAL);
    CHECK_STR(err.kind, "invalid_recipients");
    CHECK_INT(form.count, 0);
    CHECK(form.parts == NULL);
}

static void test_too_large(void)
{
    static unsigned char bytes[300];
    outbox_attachment attachment = {"scan.pdf", "application/pdf", NULL,
                                    bytes, sizeof(bytes)};
    outbox_message message;
    outbox_mailgun_form form;
    outbox_error err = {{0}, {0}};

    CHECK_CASE("too large");
    init_minimal(&message);
    message.attachments = &attachment;
    message.attachment_count = 1;

    /* 58 for the minimal fields, 10 + 300 for the attachment: Mailgun
     * receives the attachment raw, not in base64. */
    CHECK_INT(outbox__mailgun_form_build(&form, &err, &message, 367),
              OUTBOX_ELIMIT);
    CHECK_STR(err.kind, "message_too_large");
    CHECK_CONTAINS(err.text, "368 bytes");
    CHECK_CONTAINS(err.text, "367 bytes (max_message_bytes)");
    CHECK(form.parts == NULL);

    CHECK_CASE("size equal to the cap");
    CHECK_INT(outbox__mailgun_form_build(&form, &err, &message, 368),
              OUTBOX_EOK);
    CHECK_INT(form.message_bytes, 368);
    outbox__mailgun_form_free(&form);
}

static void test_option_cap(void)
{
    /* v:outbox_id and 42 take 13 bytes, the name v:note 6. */
    static char value[OUTBOX_MAILGUN_MAX_OPTION_BYTES];
    outbox_field metadata[] = {{"note", value}};
    outbox_message message;
    outbox_mailgun_form form;
    outbox_error err = {{0}, {0}};

    CHECK_CASE("options at the cap");
    memset(value, 'x', OUTBOX_MAILGUN_MAX_OPTION_BYTES - 19);
    init_minimal(&message);
    message.metadata = metadata;
    message.metadata_count = 1;
    CHECK_INT(outbox__mailgun_form_build(&form, &err, &message, 0),
              OUTBOX_EOK);
    CHECK_INT(form.option_bytes, OUTBOX_MAILGUN_MAX_OPTION_BYTES);
    outbox__mailgun_form_free(&form);

    CHECK_CASE("options over the cap");
    value[OUTBOX_MAILGUN_MAX_OPTION_BYTES - 19] = 'x';
    CHECK_INT(outbox__mailgun_form_build(&form, &err, &message, 0),
              OUTBOX_ELIMIT);
    CHECK_STR(err.kind, "limit_exceeded");
    CHECK_CONTAINS(err.text, "16385 bytes as Mailgun h: and v: fields");
    CHECK_CONTAINS(err.text, "cap of 16384 bytes");
    CHECK(form.parts == NULL);
}

/* ------------------------------------------------------------------ */
/* Config                                                              */
/* ------------------------------------------------------------------ */

typedef struct url_case {
    const char *config;
    const char *url;       /* expected URL, or NULL for an error */
    const char *error;     /* expected part of the error text */
} url_case;

static const url_case url_cases[] = {
    {"{\"domain\":\"mg.example.com\"}",
     "https://api.mailgun.net/v3/mg.example.com/messages", ""},
    {"{\"domain\":\"mg.example.com\",\"region\":\"us\"}",
     "https://api.mailgun.net/v3/mg.example.com/messages", ""},
    {"{\"domain\":\"mg.example.com\",\"region\":\"eu\"}",
     "https://api.eu.mailgun.net/v3/mg.example.com/messages", ""},
    {"{\"domain\":\"mg.example.com\",\"region\":\"eu\","
     "\"base_url\":\"http://127.0.0.1:8080//\"}",
     "http://127.0.0.1:8080/v3/mg.example.com/messages", ""},
    {"{\"domain\":\"mg.example.com\",\"region\":\"EU\"}", NULL,
     "invalid \"region\": expected \"us\" or \"eu\""},
    {"{\"region\":\"eu\"}", NULL, "missing \"domain\""},
    {"{\"domain\":\"mg.example.com/../x\"}", NULL, "invalid \"domain\""},
    {"{\"domain\":\"\"}", NULL, "invalid \"domain\""},
    {"{\"domain\":\"mg..example.com\"}", NULL, "invalid \"domain\""},
    {"{\"domain\":7}", NULL, "invalid \"domain\""},
    {"{\"domain\":\"mg.example.com\",\"base_url\":\"ftp://127.0.0.1\"}",
     NULL, "invalid \"base_url\""},
    {"{\"domain\":\"mg.example.com\","
     "\"base_url\":\"http://127.0.0.1/?x=1\"}",
     NULL, "invalid \"base_url\""},
};

static void test_url_table(void)
{
    size_t count = sizeof(url_cases) / sizeof(url_cases[0]);

    for (size_t i = 0; i < count; i++) {
        cJSON *config = cJSON_Parse(url_cases[i].config);
        outbox_error err = {{0}, {0}};
        char *url = NULL;
        outbox_err rc;

        CHECK_CASE(url_cases[i].config);
        rc = outbox__mailgun_url(&url, &err, "mg", config);
        CHECK_INT(rc, url_cases[i].url ? OUTBOX_EOK : OUTBOX_ECONFIG);
        CHECK_STR(url, url_cases[i].url);
        CHECK_CONTAINS(err.text, url_cases[i].error);
        free(url);
        cJSON_Delete(config);
    }
}

typedef struct config_case {
    const char *name;
    const char *config;
    const char *error;     /* expected part of the error text */
} config_case;

static const config_case config_cases[] = {
    {"unknown key",
     "{\"name\":\"mg\",\"type\":\"mailgun\",\"domain\":\"mg.example.com\","
     "\"api_key\":\"k\",\"regoin\":\"eu\"}",
     "unknown key \"regoin\" for type mailgun"},
    {"no key",
     "{\"name\":\"mg\",\"type\":\"mailgun\",\"domain\":\"mg.example.com\"}",
     "missing \"api_key\" or \"api_key_env\""},
    {"key with a space",
     "{\"name\":\"mg\",\"type\":\"mailgun\",\"domain\":\"mg.example.com\","
     "\"api_key\":\"key- 1\"}",
     "the API key contains a space"},
    {"timeout zero",
     "{\"name\":\"mg\",\"type\":\"mailgun\",\"domain\":\"mg.example.com\","
     "\"api_key\":\"k\",\"timeout_seconds\":0}",
     "invalid \"timeout_seconds\""},
    {"size cap negative",
     "{\"name\":\"mg\",\"type\":\"mailgun\",\"domain\":\"mg.example.com\","
     "\"api_key\":\"k\",\"max_message_bytes\":-1}",
     "invalid \"max_message_bytes\""},
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
        CHECK_CONTAINS(err.text, config_cases[i].error);
        outbox_provider_free(provider);
        cJSON_Delete(config);
    }
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
    int not_found_count;
    outbox_result_kind kind;
    const char *error_kind;
    int64_t retry_after_seconds;
    bool counts_as_failure;
    const char *provider_id;
    const char *text;          /* expected part of error.text */
} classify_case;

#define NGINX_413                                                        \
    "<html><head><title>413 Request Entity Too Large</title></head>"     \
    "<body><h1>413</h1></body></html>"

#define LONG_ID                                                          \
    "<0123456789012345678901234567890123456789012345678901234567890123"  \
    "4567890123456789012345678901234567890123456789012345678901234567"   \
    "8901234567890123456789012345678901234567890123456789012345678901"   \
    "2345678901234567890123456789012345678901234567890123456789012345"   \
    "67890123456789012345678901234567890123456789@mg>"

static const classify_case classify_cases[] = {
    {"200 with id", CURLE_OK, "", 200, NULL,
     "{\"id\":\"<20250305100000.1001@mg.example.com>\","
     "\"message\":\"Queued. Thank you.\"}",
     0, OUTBOX_RESULT_SENT, "", -1, true,
     "20250305100000.1001@mg.example.com", ""},
    {"200 id without brackets", CURLE_OK, "", 200, NULL,
     "{\"id\":\"20250305100000.1002@mg.example.com\"}", 0,
     OUTBOX_RESULT_SENT, "", -1, true,
     "20250305100000.1002@mg.example.com", ""},
    {"200 without body", CURLE_OK, "", 200, NULL, "", 0, OUTBOX_RESULT_SENT,
     "", -1, true, "", "without a usable \"id\""},
    {"200 with an id too long", CURLE_OK, "", 200, NULL,
     "{\"id\":\"" LONG_ID "\"}", 0, OUTBOX_RESULT_SENT, "", -1, true, "",
     "without a usable \"id\""},
    {"200 then transfer error", CURLE_RECV_ERROR, "Connection reset", 200,
     NULL, "{\"id\":\"<20250305100000.1003@mg.example.com>\"}", 0,
     OUTBOX_RESULT_SENT, "", -1, true,
     "20250305100000.1003@mg.example.com", "then the transfer failed"},
    {"400 invalid address", CURLE_OK, "", 400, NULL,
     "{\"message\":\"'to' parameter is not a valid address. please check "
     "documentation\"}",
     0, OUTBOX_RESULT_FAILED, "provider_validation", -1, true, "",
     "HTTP 400: 'to' parameter is not a valid address. please check "
     "documentation"},
    {"400 without JSON", CURLE_OK, "", 400, NULL, "Bad Request\n", 0,
     OUTBOX_RESULT_FAILED, "provider_validation", -1, true, "",
     "HTTP 400: Bad Request"},
    {"401 Forbidden", CURLE_OK, "", 401, NULL, "Forbidden", 0,
     OUTBOX_RESULT_MISCONFIGURED, "provider_auth", -1, false, "",
     "HTTP 401: Forbidden; check the API key and \"region\""},
    {"402 request failed", CURLE_OK, "", 402, NULL,
     "{\"message\":\"Request failed\"}", 0, OUTBOX_RESULT_FAILED,
     "provider_rejected", -1, true, "", "HTTP 402: Request failed"},
    {"403 domain not allowed", CURLE_OK, "", 403, NULL,
     "{\"message\":\"Domain mg.example.com is not allowed to send\"}", 0,
     OUTBOX_RESULT_MISCONFIGURED, "provider_forbidden", -1, false, "",
     "HTTP 403: Domain mg.example.com is not allowed to send; check"},
    {"404 first", CURLE_OK, "", 404, NULL,
     "{\"message\":\"Domain not found: mg.example.com\"}", 1,
     OUTBOX_RESULT_RETRY, "provider_not_found", -1, true, "",
     "HTTP 404: Domain not found: mg.example.com; the provider pauses "
     "after 3 responses in a row are 404"},
    {"404 second", CURLE_OK, "", 404, NULL, "404 page not found", 2,
     OUTBOX_RESULT_RETRY, "provider_not_found", -1, true, "",
     "HTTP 404: 404 page not found"},
    {"404 third", CURLE_OK, "", 404, NULL,
     "{\"message\":\"Domain not found: mg.example.com\"}", 3,
     OUTBOX_RESULT_MISCONFIGURED, "provider_not_found", -1, false, "",
     "; 3 responses in a row were 404: check \"domain\", \"region\" and "
     "\"base_url\""},
    {"413 nginx HTML", CURLE_OK, "", 413, NULL, NGINX_413, 0,
     OUTBOX_RESULT_FAILED, "message_too_large", -1, true, "",
     "HTTP 413: <html><head><title>413 Request Entity Too Large</title>"},
    {"429 Retry-After 120", CURLE_OK, "", 429, "120",
     "{\"message\":\"Too many requests\"}", 0, OUTBOX_RESULT_RETRY,
     "rate_limited", 120, false, "", "HTTP 429"},
    {"429 Retry-After date", CURLE_OK, "", 429,
     "Wed, 05 Mar 2025 10:15:00 GMT", "", 0, OUTBOX_RESULT_RETRY,
     "rate_limited", 300, false, "", "HTTP 429"},
    {"429 without headers", CURLE_OK, "", 429, NULL, "", 0,
     OUTBOX_RESULT_RETRY, "rate_limited", -1, false, "", "HTTP 429"},
    {"500", CURLE_OK, "", 500, NULL, "{\"message\":\"Internal error\"}", 0,
     OUTBOX_RESULT_RETRY, "provider_unavailable", -1, true, "",
     "HTTP 500"},
    {"502", CURLE_OK, "", 502, NULL, "<html>Bad Gateway</html>", 0,
     OUTBOX_RESULT_RETRY, "provider_unavailable", -1, true, "", "HTTP 502"},
    {"503 Retry-After", CURLE_OK, "", 503, "30", "", 0, OUTBOX_RESULT_RETRY,
     "provider_unavailable", 30, true, "", "HTTP 503"},
    {"504", CURLE_OK, "", 504, NULL, "", 0, OUTBOX_RESULT_RETRY,
     "provider_unavailable", -1, true, "", "HTTP 504"},
    {"curl timeout", CURLE_OPERATION_TIMEDOUT,
     "Operation timed out after 30001 milliseconds with 0 bytes received",
     0, NULL, "", 0, OUTBOX_RESULT_RETRY, "timeout", -1, true, "",
     "Operation timed out after 30001 milliseconds"},
    {"curl could not connect", CURLE_COULDNT_CONNECT,
     "Failed to connect to api.mailgun.net port 443: Connection refused", 0,
     NULL, "", 0, OUTBOX_RESULT_RETRY, "network", -1, true, "",
     "Connection refused"},
    {"410", CURLE_OK, "", 410, NULL, "Gone", 0, OUTBOX_RESULT_FAILED,
     "provider_rejected", -1, true, "", "HTTP 410: Gone"},
    {"301 redirect", CURLE_OK, "", 301, NULL, "", 0,
     OUTBOX_RESULT_MISCONFIGURED, "provider_redirect", -1, false, "",
     "HTTP 301: (empty body); check base_url"},
    {"101 as final status", CURLE_OK, "", 101, NULL, "", 0,
     OUTBOX_RESULT_UNKNOWN, "provider_unexpected", -1, true, "",
     "HTTP 101"},
};

static void fill_response(outbox_response *response, outbox_field *header,
                          const classify_case *c)
{
    memset(response, 0, sizeof(*response));
    response->curl_code = c->curl_code;
    response->curl_error = c->curl_error;
    response->status = c->status;
    if (c->retry_after != NULL) {
        *header = (outbox_field){"retry-after", (char *)c->retry_after};
        response->headers = header;
        response->header_count = 1;
    }
    response->body = c->body;
    response->body_size = strlen(c->body);
    response->now = NOW;
}

static void run_classify_case(const classify_case *c)
{
    outbox_field header;
    outbox_response response;
    outbox_result result;

    CHECK_CASE(c->name);
    fill_response(&response, &header, c);
    memset(&result, 0x5A, sizeof(result));
    outbox__mailgun_classify(&result, &response, c->not_found_count);
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

static outbox_provider *create_mailgun(const char *base_url,
                                       double max_bytes,
                                       const outbox_logger *logger)
{
    cJSON *config = cJSON_CreateObject();
    outbox_provider *provider = NULL;
    outbox_error err = {{0}, {0}};

    cJSON_AddStringToObject(config, "name", "mg-test");
    cJSON_AddStringToObject(config, "type", "mailgun");
    cJSON_AddStringToObject(config, "domain", "mg.example.com");
    cJSON_AddStringToObject(config, "region", "eu");
    cJSON_AddStringToObject(config, "api_key", API_KEY);
    cJSON_AddStringToObject(config, "base_url", base_url);
    cJSON_AddNumberToObject(config, "max_message_bytes", max_bytes);
    cJSON_AddNumberToObject(config, "timeout_seconds", 10);
    if (outbox_provider_create(&provider, &err, config, logger)
        != OUTBOX_EOK)
        CHECK_FAIL("create failed: %s: %s", err.kind, err.text);
    cJSON_Delete(config);
    return provider;
}

/* Classifies one response through the provider, which counts 404s. */
static outbox_result_kind classify_status(outbox_provider *provider,
                                          CURLcode code, long status,
                                          const char *retry_after)
{
    classify_case c;
    outbox_field header;
    outbox_response response;
    outbox_result result;

    memset(&c, 0, sizeof(c));
    c.curl_code = code;
    c.curl_error = "";
    c.status = status;
    c.retry_after = retry_after;
    c.body = "{\"id\":\"<1@mg>\",\"message\":\"Domain not found\"}";
    fill_response(&response, &header, &c);
    outbox_provider_classify(provider, &result, &response);
    return result.kind;
}

static void test_not_found_count(void)
{
    log_capture capture = {0, {0}};
    outbox_logger logger = {capture_log, &capture, 0};
    outbox_provider *provider =
        create_mailgun("http://127.0.0.1:9", 0, &logger);

    CHECK_CASE("404 count pauses");
    if (provider == NULL)
        return;
    CHECK_INT(classify_status(provider, CURLE_OK, 404, NULL),
              OUTBOX_RESULT_RETRY);
    CHECK_INT(classify_status(provider, CURLE_OK, 404, NULL),
              OUTBOX_RESULT_RETRY);
    CHECK_INT(classify_status(provider, CURLE_OK, 404, NULL),
              OUTBOX_RESULT_MISCONFIGURED);
    CHECK_INT(classify_status(provider, CURLE_OK, 404, NULL),
              OUTBOX_RESULT_MISCONFIGURED);

    CHECK_CASE("other response resets the 404 count");
    CHECK_INT(classify_status(provider, CURLE_OK, 200, NULL),
              OUTBOX_RESULT_SENT);
    CHECK_INT(classify_status(provider, CURLE_OK, 404, NULL),
              OUTBOX_RESULT_RETRY);
    CHECK_INT(classify_status(provider, CURLE_OK, 500, NULL),
              OUTBOX_RESULT_RETRY);
    CHECK_INT(classify_status(provider, CURLE_OK, 404, NULL),
              OUTBOX_RESULT_RETRY);

    CHECK_CASE("network error keeps the 404 count");
    CHECK_INT(classify_status(provider, CURLE_COULDNT_CONNECT, 0, NULL),
              OUTBOX_RESULT_RETRY);
    CHECK_INT(classify_status(provider, CURLE_OK, 404, NULL),
              OUTBOX_RESULT_RETRY);
    CHECK_INT(classify_status(provider, CURLE_OK, 404, NULL),
              OUTBOX_RESULT_MISCONFIGURED);

    CHECK_CASE("unreadable Retry-After warns");
    CHECK_INT(capture.warnings, 0);
    CHECK_INT(classify_status(provider, CURLE_OK, 429, "soon"),
              OUTBOX_RESULT_RETRY);
    CHECK_INT(capture.warnings, 1);
    CHECK_CONTAINS(capture.text, "provider=mg-test status=429 Retry-After");
    outbox_provider_free(provider);
}

/* ------------------------------------------------------------------ */
/* One request on the wire                                             */
/* ------------------------------------------------------------------ */

/* What the capture server responds with. */
static const char capture_response[] =
    "HTTP/1.1 200 OK\r\n"
    "Content-Type: application/json\r\n"
    "Content-Length: 48\r\n\r\n"
    "{\"id\":\"<1.2@mg.example.com>\",\"message\":\"Queued\"}";

/* Builds the multipart/form-data body that the fields of the full message
 * must give with boundary, as RFC 7578 lays it out. */
static void build_expected_body(outbox_buf *body, const char *boundary)
{
    size_t count = sizeof(full_parts) / sizeof(full_parts[0]);

    for (size_t i = 0; i < count; i++) {
        const expected_part *part = &full_parts[i];
        size_t size = part->size ? part->size : strlen(part->value);

        outbox__buf_printf(body, "--%s\r\nContent-Disposition: form-data; "
                                 "name=\"%s\"",
                           boundary, part->name);
        if (part->filename != NULL)
            outbox__buf_printf(body, "; filename=\"%s\"", part->filename);
        outbox__buf_puts(body, "\r\n");
        if (part->type != NULL)
            outbox__buf_printf(body, "Content-Type: %s\r\n", part->type);
        outbox__buf_puts(body, "\r\n");
        outbox__buf_append(body, part->value, size);
        outbox__buf_puts(body, "\r\n");
    }
    outbox__buf_printf(body, "--%s--\r\n", boundary);
}

static void check_request_on_wire(const capture_server *server)
{
    static const char type_prefix[] =
        "\r\nContent-Type: multipart/form-data; boundary=";
    const char *type = strstr(server->request, type_prefix);
    const char *body = strstr(server->request, "\r\n\r\n");
    char boundary[80] = "";
    outbox_buf expected;

    CHECK_CONTAINS(server->request,
                   "POST /v3/mg.example.com/messages HTTP/1.1\r\n");
    CHECK_CONTAINS(server->request,
                   "\r\nAuthorization: Basic " BASIC_CREDENTIALS "\r\n");
    CHECK_CONTAINS(server->request, "\r\nAccept: application/json\r\n");
    CHECK(strstr(server->request, "Expect:") == NULL);
    CHECK(type != NULL);
    CHECK(body != NULL);
    if (type == NULL || body == NULL)
        return;
    sscanf(type + sizeof(type_prefix) - 1, "%79[^\r]", boundary);

    outbox__buf_init(&expected, SIZE_MAX);
    build_expected_body(&expected, boundary);
    CHECK_INT(server->size - (size_t)(body + 4 - server->request),
              expected.size);
    CHECK_INT(capture_content_length(server->request), expected.size);
    if (expected.data != NULL
        && memcmp(body + 4, expected.data, expected.size) != 0)
        CHECK_FAIL("multipart body: got\n%s\nwant\n%s", body + 4,
                   expected.data);
    outbox__buf_free(&expected);
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
    provider = create_mailgun(base_url, 25000000, NULL);
    easy = curl_easy_init();
    init_full(&message);
    if (provider == NULL || easy == NULL)
        goto cleanup;
    curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, discard_body);
    CHECK_INT(outbox_provider_prepare(provider, &request, &err, easy,
                                      &message),
              OUTBOX_EOK);
    CHECK_INT(curl_easy_perform(easy), CURLE_OK);
    curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &status);
    CHECK_INT(status, 200);

cleanup:
    capture_server_stop(&server);
    check_request_on_wire(&server);
    outbox_provider_release(provider, request);
    curl_easy_cleanup(easy);
    outbox_provider_free(provider);
    capture_server_free(&server);
}

static void test_prepare_too_large(void)
{
    outbox_provider *provider = create_mailgun("http://127.0.0.1:9", 57,
                                               NULL);
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
        CHECK_CONTAINS(err.text, "58 bytes as a Mailgun request");
        CHECK(outbox_provider_uses_curl(provider));
        CHECK_STR(outbox_provider_type(provider), "mailgun");
    }
    curl_easy_cleanup(easy);
    outbox_provider_free(provider);
}

int main(void)
{
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
        return 1;
    test_minimal_form();
    test_full_form();
    test_template_form();
    test_template_subject_no_data();
    test_name_quoting();
    test_form_from_row();
    test_no_to_recipient();
    test_too_large();
    test_option_cap();
    test_url_table();
    test_config_errors();
    test_classify_table();
    test_not_found_count();
    test_request_on_wire();
    test_prepare_too_large();
    curl_global_cleanup();
    CHECK_DONE();
}
