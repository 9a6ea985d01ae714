/*
 * test_message.c - outbox_message_build: a valid row and the message it
 * gives, repeats removed across to, cc and bcc, and bad rows with the
 * error kind and a text that names the field.
 */
#include <stdlib.h>

#include "check.h"
#include "internal.h"
#include "outbox.h"

/* In a bad case, a field set to NONE becomes NULL in the row. */
static const char NONE[] = "<none>";

static const unsigned char pdf_bytes[] = "%PDF-1.7 test";

static const outbox_attachment base_attachments[] = {
    {"Rechnung RE-4711.pdf", "application/pdf", NULL,
     (unsigned char *)pdf_bytes, sizeof(pdf_bytes) - 1},
    {"logo.png", NULL, "logo@erp.example.org", (unsigned char *)pdf_bytes,
     4},
};

static outbox_row base_row(void)
{
    outbox_row row;

    memset(&row, 0, sizeof(row));
    row.id = 42;
    row.attempt = 1;
    row.created_at = 1741000000;
    row.sender = "\"Muster GmbH, Buchhaltung\" <rechnung@muster.example>";
    row.recipients = "Anna Meier <a.meier@example.org>";
    row.subject = "Rechnung RE-4711";
    row.body_text = "Guten Tag,\nanbei Ihre Rechnung.";
    row.body_text_size = strlen(row.body_text);
    row.message_key = "RE-4711";
    row.headers = "{\"X-ERP-Beleg\": \"RE-4711\"}";
    row.metadata = "{\"auftrag\": 4711, \"eilig\": true, \"kunde\": \"K-100\", "
                   "\"betrag\": 12.5}";
    row.provider = "sendgrid";
    row.message_id = "42.1741000000@muster.example";
    row.attachments = base_attachments;
    row.attachment_count = 2;
    return row;
}

static void check_valid_row(void)
{
    outbox_row row = base_row();
    outbox_message *message = NULL;
    outbox_error err = {"", ""};
    outbox_err rc;

    CHECK_CASE("valid row builds");
    rc = outbox_message_build(&message, &err, &row, NULL);
    CHECK_INT(rc, OUTBOX_EOK);
    if (message == NULL) {
        CHECK_FAIL("error: %s: %s", err.kind, err.text);
        return;
    }
    CHECK_INT(message->id, 42);
    CHECK_INT(message->attempt, 1);
    CHECK_INT(message->created_at, 1741000000);
    CHECK_STR(message->message_key, "RE-4711");
    CHECK_STR(message->reference, NULL);
    CHECK_STR(message->provider, "sendgrid");
    CHECK_STR(message->message_id, "42.1741000000@muster.example");
    CHECK_STR(message->sender.name, "Muster GmbH, Buchhaltung");
    CHECK_STR(message->sender.email, "rechnung@muster.example");
    CHECK_INT(message->to.count, 1);
    CHECK_STR(message->to.items[0].name, "Anna Meier");
    CHECK_STR(message->to.items[0].email, "a.meier@example.org");
    CHECK_INT(message->cc.count, 0);
    CHECK_INT(message->bcc.count, 0);
    CHECK_INT(message->reply_to.count, 0);
    CHECK_INT(outbox_message_recipient_count(message), 1);
    CHECK_STR(message->subject, "Rechnung RE-4711");
    CHECK_STR(message->body_text, "Guten Tag,\nanbei Ihre Rechnung.");
    CHECK_STR(message->body_html, NULL);

    CHECK_INT(message->header_count, 1);
    CHECK_STR(message->headers[0].name, "X-ERP-Beleg");
    CHECK_STR(message->headers[0].value, "RE-4711");
    CHECK_INT(message->metadata_count, 4);
    CHECK_STR(message->metadata[0].name, "auftrag");
    CHECK_STR(message->metadata[0].value, "4711");
    CHECK_STR(message->metadata[1].value, "true");
    CHECK_STR(message->metadata[2].value, "K-100");
    CHECK_STR(message->metadata[3].value, "12.5");

    CHECK_INT(message->attachment_count, 2);
    CHECK_STR(message->attachments[0].filename, "Rechnung RE-4711.pdf");
    CHECK_STR(message->attachments[0].content_type, "application/pdf");
    CHECK_STR(message->attachments[0].content_id, NULL);
    CHECK_INT(message->attachments[0].size, sizeof(pdf_bytes) - 1);
    CHECK(message->attachments[0].content != pdf_bytes);
    CHECK(memcmp(message->attachments[0].content, pdf_bytes,
                 sizeof(pdf_bytes) - 1) == 0);
    CHECK_STR(message->attachments[1].content_type,
              "application/octet-stream");
    CHECK_STR(message->attachments[1].content_id, "logo@erp.example.org");
    CHECK_INT(message->attachments[1].size, 4);
    outbox_message_free(message);
}

/* The message owns copies: changing the row afterwards changes nothing. */
static void check_strings_copied(void)
{
    char subject[] = "Mahnung";
    char html[] = "<p>Hallo</p>";
    outbox_row row = base_row();
    outbox_message *message = NULL;

    CHECK_CASE("strings are copied");
    row.subject = subject;
    row.body_text = "";
    row.body_text_size = 0;
    row.body_html = html;
    row.body_html_size = strlen(html);
    CHECK_INT(outbox_message_build(&message, NULL, &row, NULL), OUTBOX_EOK);
    if (message == NULL)
        return;
    subject[0] = 'X';
    html[1] = 'X';
    CHECK_STR(message->subject, "Mahnung");
    CHECK_STR(message->body_html, "<p>Hallo</p>");
    CHECK_STR(message->body_text, NULL);
    outbox_message_free(message);
}

static void check_empty_optional_columns(void)
{
    outbox_row row = base_row();
    outbox_message *message = NULL;

    CHECK_CASE("empty optional columns");
    row.subject = NULL;
    row.cc = "";
    row.bcc = " , ";
    row.reply_to = NULL;
    row.headers = NULL;
    row.metadata = NULL;
    row.attachments = NULL;
    row.attachment_count = 0;
    CHECK_INT(outbox_message_build(&message, NULL, &row, NULL), OUTBOX_EOK);
    if (message == NULL)
        return;
    CHECK_STR(message->subject, "");
    CHECK_INT(message->cc.count, 0);
    CHECK_INT(message->bcc.count, 0);
    CHECK_INT(message->header_count, 0);
    CHECK_INT(message->metadata_count, 0);
    CHECK_INT(message->attachment_count, 0);
    outbox_message_free(message);
}

static void check_repeats_removed(void)
{
    outbox_row row = base_row();
    outbox_message *message = NULL;
    outbox_error err = {"", ""};

    CHECK_CASE("repeats removed across lists");
    row.recipients = "a.meier@example.org, Einkauf@Example.org";
    row.cc = "einkauf@example.org, lager@example.org";
    row.bcc = "A.Meier@example.org; archiv@muster.example; "
              "ARCHIV@muster.example";
    CHECK_INT(outbox_message_build(&message, &err, &row, NULL), OUTBOX_EOK);
    if (message == NULL) {
        CHECK_FAIL("error: %s: %s", err.kind, err.text);
        return;
    }
    CHECK_INT(message->to.count, 2);
    CHECK_STR(message->to.items[1].email, "Einkauf@Example.org");
    CHECK_INT(message->cc.count, 1);
    CHECK_STR(message->cc.items[0].email, "lager@example.org");
    CHECK_INT(message->bcc.count, 1);
    CHECK_STR(message->bcc.items[0].email, "archiv@muster.example");
    CHECK_INT(outbox_message_recipient_count(message), 4);
    outbox_message_free(message);
}

/* The recipient cap counts addresses after repeats are removed. */
static void check_cap_counts_after_repeats(void)
{
    outbox_row row = base_row();
    outbox_limits limits;
    outbox_message *message = NULL;

    CHECK_CASE("recipient cap after repeats");
    outbox_limits_default(&limits);
    limits.max_recipients = 2;
    row.recipients = "a@example.org, A@example.org, b@example.org";
    row.bcc = "B@EXAMPLE.ORG";
    CHECK_INT(outbox_message_build(&message, NULL, &row, &limits),
              OUTBOX_EOK);
    CHECK_INT(outbox_message_recipient_count(message), 2);
    outbox_message_free(message);
}

/* Bodies come with a size, so a NUL byte inside one can be seen. */
static void check_body_with_nul(void)
{
    static const char body[] = "Guten Tag\0Bcc: x@example.net";
    outbox_row row = base_row();
    outbox_message *message = NULL;
    outbox_error err = {"", ""};

    CHECK_CASE("body with NUL byte");
    row.body_text = body;
    row.body_text_size = sizeof(body) - 1;
    CHECK_INT(outbox_message_build(&message, &err, &row, NULL),
              OUTBOX_EINVAL);
    CHECK(message == NULL);
    CHECK_STR(err.kind, "invalid_text");
    CHECK_STR(err.text, "body_text: contains a NUL byte");
}

/* A template replaces the bodies: the row needs none, and the message
 * carries the name and the data as written. */
static void check_template_without_body(void)
{
    outbox_row row = base_row();
    outbox_message *message = NULL;
    outbox_error err = {"", ""};

    CHECK_CASE("template without body");
    row.body_text = NULL;
    row.body_text_size = 0;
    row.template_name = "d-13b8f94f";
    row.template_data = "{\"invoice\": \"RE-4711\", \"total\": 12.5}";
    CHECK_INT(outbox_message_build(&message, &err, &row, NULL), OUTBOX_EOK);
    if (message == NULL) {
        CHECK_FAIL("error: %s: %s", err.kind, err.text);
        return;
    }
    CHECK(message->body_text == NULL);
    CHECK(message->body_html == NULL);
    CHECK_STR(message->template_name, "d-13b8f94f");
    CHECK_STR(message->template_data, row.template_data);
    CHECK(message->template_data != row.template_data);
    outbox_message_free(message);
}

static void check_defaults(void)
{
    outbox_limits limits;

    CHECK_CASE("default limits");
    outbox_limits_default(&limits);
    CHECK_INT(limits.max_recipients, 1000);
    CHECK_INT(limits.max_address_text, 64 * 1024);
    CHECK_INT(limits.max_subject, 2000);
    CHECK_INT(limits.max_body, 25 * 1024 * 1024);
    CHECK_INT(limits.max_headers, 50);
    CHECK_INT(limits.max_header_value, 2000);
    CHECK_INT(limits.max_metadata, 50);
    CHECK_INT(limits.max_attachments, 100);
    CHECK_INT(limits.max_message, 40 * 1024 * 1024);
    CHECK_INT(limits.max_template_data, 256 * 1024);
    CHECK_INT(outbox_message_recipient_count(NULL), 0);
    outbox_message_free(NULL);
}

/*
 * A row with one fault. Columns left NULL here keep the base row's value,
 * NONE makes them NULL. limit, when set, names a cap lowered to
 * limit_value.
 */
typedef struct bad_case {
    const char *name;
    const char *sender;
    const char *recipients;
    const char *cc;
    const char *bcc;
    const char *reply_to;
    const char *subject;
    const char *body_text;
    const char *body_html;
    const char *headers;
    const char *metadata;
    const char *message_key;
    const char *template_name;
    const char *template_data;
    const outbox_attachment *attachment;
    const char *limit;
    size_t limit_value;
    const char *kind;
    const char *text_part;
} bad_case;

static const outbox_attachment no_filename = {NULL, "application/pdf", NULL,
                                              NULL, 0};
static const outbox_attachment crlf_filename = {
    "a.pdf\r\nContent-Type: text/html", NULL, NULL, NULL, 0};
static const outbox_attachment bad_type = {"a.pdf", "pdf", NULL, NULL, 0};
static const outbox_attachment bad_content_id = {"a.png", "image/png",
                                                 "<logo>", NULL, 0};
static const outbox_attachment empty_content = {"a.pdf", "application/pdf",
                                                NULL, NULL, 0};

static const bad_case bad_cases[] = {
    {.name = "sender missing", .sender = NONE, .kind = "invalid_sender",
     .text_part = "sender: is missing or empty"},
    {.name = "sender empty", .sender = " ", .kind = "invalid_sender",
     .text_part = "sender: is missing or empty"},
    {.name = "two senders", .sender = "a@example.org, b@example.org",
     .kind = "invalid_sender",
     .text_part = "sender: has 2 addresses, but exactly one"},
    {.name = "sender invalid", .sender = "rechnung@", .kind = "invalid_sender",
     .text_part = "sender: address 1 \"rechnung@\" has an empty domain"},
    {.name = "recipients missing", .recipients = NONE,
     .kind = "invalid_recipients",
     .text_part = "recipients: is missing or empty"},
    {.name = "recipient invalid",
     .recipients = "a@example.org, kunde@@example.org",
     .kind = "invalid_recipients",
     .text_part = "recipients: address 2 \"kunde@@example.org\" has more "
                  "than one @"},
    {.name = "cc invalid", .cc = "lager", .kind = "invalid_cc",
     .text_part = "cc: address 1 \"lager\" has no @"},
    {.name = "bcc invalid", .bcc = "Einkauf: a@example.org;",
     .kind = "invalid_bcc", .text_part = "bcc: address 1"},
    {.name = "reply_to invalid", .reply_to = "<a@example.org",
     .kind = "invalid_reply_to", .text_part = "reply_to: address 1"},
    {.name = "CRLF in recipients",
     .recipients = "a@example.org\r\nBcc: x@example.net",
     .kind = "invalid_header_value", .text_part = "recipients: contains a "
                                                  "line break"},
    {.name = "LF in sender", .sender = "a@example.org\nBcc: x@example.net",
     .kind = "invalid_header_value", .text_part = "sender: contains"},
    {.name = "CR in cc", .cc = "a@example.org\r",
     .kind = "invalid_header_value", .text_part = "cc: contains"},
    {.name = "LF in bcc", .bcc = "\na@example.org",
     .kind = "invalid_header_value", .text_part = "bcc: contains"},
    {.name = "CRLF in reply_to", .reply_to = "a@example.org\r\n",
     .kind = "invalid_header_value", .text_part = "reply_to: contains"},
    {.name = "CRLF in subject", .subject = "Hallo\r\nBcc: x@example.net",
     .kind = "invalid_header_value", .text_part = "subject: contains a line "
                                                  "break"},
    {.name = "subject invalid UTF-8", .subject = "Rechnung f\xFCr M\xE4rz",
     .kind = "invalid_text", .text_part = "subject: is not valid UTF-8"},
    {.name = "recipients invalid UTF-8", .recipients = "J\xFC <j@example.org>",
     .kind = "invalid_text", .text_part = "recipients: is not valid UTF-8"},
    {.name = "body invalid UTF-8", .body_text = "Gr\xFC\xDF" "e",
     .kind = "invalid_text", .text_part = "body_text: is not valid UTF-8"},
    {.name = "message key invalid UTF-8", .message_key = "RE-\xFC",
     .kind = "invalid_text", .text_part = "message_key: is not valid UTF-8"},
    {.name = "metadata value invalid UTF-8",
     .metadata = "{\"kunde\": \"M\xFCller\"}", .kind = "invalid_text",
     .text_part = "metadata: the value of \"kunde\" is not valid UTF-8"},
    {.name = "header value invalid UTF-8",
     .headers = "{\"X-Kunde\": \"M\xFCller\"}", .kind = "invalid_text",
     .text_part = "headers: the value of \"X-Kunde\" is not valid UTF-8"},
    {.name = "no body", .body_text = "", .body_html = NONE,
     .kind = "missing_body", .text_part = "body_text and body_html"},
    {.name = "template data without template", .template_data = "{}",
     .kind = "invalid_template",
     .text_part = "template_data: is set, but template is missing"},
    {.name = "template name with space", .template_name = "d- 1",
     .kind = "invalid_template",
     .text_part = "template: must be 1 to 256 characters of printable ASCII"},
    {.name = "template name empty", .template_name = "",
     .kind = "invalid_template", .text_part = "template: must be 1 to 256"},
    {.name = "template data array", .template_name = "d-1",
     .template_data = "[1]", .kind = "invalid_template",
     .text_part = "template_data: is not a JSON object"},
    {.name = "template data invalid UTF-8", .template_name = "d-1",
     .template_data = "{\"name\": \"M\xFCller\"}", .kind = "invalid_template",
     .text_part = "template_data: is not valid UTF-8"},
    {.name = "template data too large", .template_name = "d-1",
     .template_data = "{\"name\": \"Anna\"}", .limit = "max_template_data",
     .limit_value = 10, .kind = "limit_exceeded",
     .text_part = "template_data: has 16 bytes, more than the maximum of 10"},
    {.name = "headers not JSON", .headers = "{X-Tag: 1}",
     .kind = "invalid_headers", .text_part = "headers: is not valid JSON"},
    {.name = "headers array", .headers = "[\"X-Tag\"]",
     .kind = "invalid_headers", .text_part = "headers: is not a JSON object"},
    {.name = "header value number", .headers = "{\"X-Prio\": 1}",
     .kind = "invalid_headers",
     .text_part = "headers: the value of \"X-Prio\" is not a string"},
    {.name = "header name with space", .headers = "{\"X Tag\": \"1\"}",
     .kind = "invalid_headers",
     .text_part = "headers: \"X Tag\" is not a valid header name"},
    {.name = "header name with colon", .headers = "{\"X-Tag:\": \"1\"}",
     .kind = "invalid_headers", .text_part = "is not a valid header name"},
    {.name = "reserved header any case", .headers = "{\"subject\": \"x\"}",
     .kind = "invalid_headers",
     .text_part = "headers: \"subject\" is set by outboxd"},
    {.name = "reserved header Bcc", .headers = "{\"BCC\": \"x@example.net\"}",
     .kind = "invalid_headers", .text_part = "\"BCC\" is set by outboxd"},
    {.name = "CRLF in header value",
     .headers = "{\"X-Tag\": \"a\\r\\nBcc: x@example.net\"}",
     .kind = "invalid_header_value",
     .text_part = "headers: the value of \"X-Tag\" contains a line break"},
    {.name = "metadata not object", .metadata = "4711",
     .kind = "invalid_metadata",
     .text_part = "metadata: is not a JSON object"},
    {.name = "metadata object value", .metadata = "{\"kunde\": {\"nr\": 1}}",
     .kind = "invalid_metadata",
     .text_part = "metadata: the value of \"kunde\" is an object"},
    {.name = "metadata array value", .metadata = "{\"posten\": [1, 2]}",
     .kind = "invalid_metadata",
     .text_part = "metadata: the value of \"posten\" is an array"},
    {.name = "metadata null value", .metadata = "{\"kunde\": null}",
     .kind = "invalid_metadata",
     .text_part = "metadata: the value of \"kunde\" is null"},
    {.name = "metadata outbox_id", .metadata = "{\"outbox_id\": \"1\"}",
     .kind = "invalid_metadata",
     .text_part = "metadata: the key \"outbox_id\" is reserved"},
    {.name = "attachment filename missing", .attachment = &no_filename,
     .kind = "invalid_attachment",
     .text_part = "attachment 2: filename is missing"},
    {.name = "CRLF in attachment filename", .attachment = &crlf_filename,
     .kind = "invalid_header_value",
     .text_part = "attachment 2: filename contains a line break"},
    {.name = "attachment type without subtype", .attachment = &bad_type,
     .kind = "invalid_attachment",
     .text_part = "attachment 2: content type \"pdf\" is not of the form "
                  "type/subtype"},
    {.name = "content ID with brackets", .attachment = &bad_content_id,
     .kind = "invalid_attachment", .text_part = "attachment 2: content ID"},
    {.name = "attachment content empty", .attachment = &empty_content,
     .kind = "invalid_attachment",
     .text_part = "attachment 2: content is empty (NULL or 0 bytes)"},
    {.name = "too many recipients",
     .cc = "b@example.org, c@example.org", .limit = "max_recipients",
     .limit_value = 2, .kind = "limit_exceeded",
     .text_part = "recipients: to, cc and bcc have 3 addresses, more than the "
                  "maximum of 2"},
    {.name = "address column too long", .limit = "max_address_text",
     .limit_value = 10, .kind = "limit_exceeded",
     .text_part = "sender: is 52 bytes long, more than the maximum of 10"},
    {.name = "subject too long", .limit = "max_subject", .limit_value = 10,
     .kind = "limit_exceeded",
     .text_part = "subject: is 16 bytes long, more than the maximum of 10"},
    {.name = "body too long", .limit = "max_body", .limit_value = 10,
     .kind = "limit_exceeded",
     .text_part = "body_text: is 31 bytes long, more than the maximum of 10"},
    {.name = "too many headers",
     .headers = "{\"X-A\": \"1\", \"X-B\": \"2\"}",
     .limit = "max_headers", .limit_value = 1, .kind = "limit_exceeded",
     .text_part = "headers: has 2 entries, more than the maximum of 1"},
    {.name = "header value too long", .limit = "max_header_value",
     .limit_value = 3, .kind = "limit_exceeded",
     .text_part = "headers: the value of \"X-ERP-Beleg\" has 7 bytes, more "
                  "than the maximum of 3"},
    {.name = "too many metadata entries", .limit = "max_metadata",
     .limit_value = 3, .kind = "limit_exceeded",
     .text_part = "metadata: has 4 entries, more than the maximum of 3"},
    {.name = "too many attachments", .limit = "max_attachments",
     .limit_value = 1, .kind = "limit_exceeded",
     .text_part = "attachments: has 2 entries, more than the maximum of 1"},
    {.name = "message too large", .limit = "max_message", .limit_value = 40,
     .kind = "limit_exceeded",
     .text_part = "message: bodies and attachments have 48 bytes, more than "
                  "the maximum of 40"},
};

static const char *pick(const char *override, const char *base)
{
    if (override == NULL)
        return base;
    return override == NONE ? NULL : override;
}

static void lower_limit(outbox_limits *limits, const char *name, size_t value)
{
    struct {
        const char *name;
        size_t *field;
    } fields[] = {
        {"max_recipients", &limits->max_recipients},
        {"max_address_text", &limits->max_address_text},
        {"max_subject", &limits->max_subject},
        {"max_body", &limits->max_body},
        {"max_headers", &limits->max_headers},
        {"max_header_value", &limits->max_header_value},
        {"max_metadata", &limits->max_metadata},
        {"max_attachments", &limits->max_attachments},
        {"max_message", &limits->max_message},
        {"max_template_data", &limits->max_template_data},
    };

    for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
        if (strcmp(fields[i].name, name) == 0) {
            *fields[i].field = value;
            return;
        }
    }
    CHECK_FAIL("unknown limit %s", name);
}

static void check_bad(const bad_case *c)
{
    outbox_row row = base_row();
    outbox_attachment attachments[2];
    outbox_limits limits;
    outbox_message sentinel;
    outbox_message *message = &sentinel;
    outbox_error err = {"", ""};
    outbox_err rc;

    CHECK_CASE(c->name);
    row.sender = pick(c->sender, row.sender);
    row.recipients = pick(c->recipients, row.recipients);
    row.cc = pick(c->cc, row.cc);
    row.bcc = pick(c->bcc, row.bcc);
    row.reply_to = pick(c->reply_to, row.reply_to);
    row.subject = pick(c->subject, row.subject);
    row.body_text = pick(c->body_text, row.body_text);
    row.body_text_size = row.body_text ? strlen(row.body_text) : 0;
    row.body_html = pick(c->body_html, row.body_html);
    row.body_html_size = row.body_html ? strlen(row.body_html) : 0;
    row.headers = pick(c->headers, row.headers);
    row.metadata = pick(c->metadata, row.metadata);
    row.message_key = pick(c->message_key, row.message_key);
    row.template_name = pick(c->template_name, row.template_name);
    row.template_data = pick(c->template_data, row.template_data);
    if (c->attachment != NULL) {
        attachments[0] = base_attachments[0];
        attachments[1] = *c->attachment;
        row.attachments = attachments;
    }
    outbox_limits_default(&limits);
    if (c->limit != NULL)
        lower_limit(&limits, c->limit, c->limit_value);

    rc = outbox_message_build(&message, &err, &row, &limits);
    CHECK(rc != OUTBOX_EOK);
    CHECK(message == NULL);
    CHECK_STR(err.kind, c->kind);
    CHECK_CONTAINS(err.text, c->text_part);
}

/* UTF-8 checks of long texts, where 8 ASCII bytes are taken at once:
 * each fault sits after or across such a block. */
static void check_utf8_in_long_text(void)
{
#define TEXT(literal) literal, sizeof(literal) - 1
    static const struct {
        const char *name;
        const char *text;
        size_t size;
        bool valid;
    } cases[] = {
        {"ascii", TEXT("Invoice 2025-0815 attached"), true},
        {"umlaut across a block", TEXT("Invoice\xC3\xA4 2025-0815"), true},
        {"euro at the end", TEXT("Total 1234.50 \xE2\x82\xAC"), true},
        {"latin-1 byte after a block", TEXT("Invoice f\xFCr March"), false},
        {"nul after two blocks", TEXT("Invoice 2025-081\0 attached"), false},
        {"cut sequence at the end", TEXT("Total 1234.50 \xE2\x82"), false},
        {"high bit in the last block", TEXT("Invoice 2025-0815\x80"), false},
    };
#undef TEXT

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        CHECK_CASE(cases[i].name);
        CHECK_INT(outbox__utf8_valid(cases[i].text, cases[i].size),
                  cases[i].valid);
    }
}

int main(void)
{
    check_utf8_in_long_text();
    check_valid_row();
    check_strings_copied();
    check_empty_optional_columns();
    check_repeats_removed();
    check_cap_counts_after_repeats();
    check_body_with_nul();
    check_template_without_body();
    check_defaults();
    for (size_t i = 0; i < sizeof(bad_cases) / sizeof(bad_cases[0]); i++)
        check_bad(&bad_cases[i]);
    CHECK_DONE();
}
