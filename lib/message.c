/*
 * message.c - checks an outbox row and builds the message that providers
 * send. Also defines the default caps on a message.
 *
 * The checks run in this order, so that a row with several faults reports
 * the one that matters most: line breaks and invalid UTF-8 in header text
 * (an address column with CRLF is a header injection attempt before it is
 * a bad address), then the caps, the bodies, the addresses, the headers
 * and metadata columns, and the attachments. The first fault ends the
 * build.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "internal.h"

#define DEFAULT_CONTENT_TYPE "application/octet-stream"

/* Bytes of a JSON key that an error text quotes. */
#define KEY_EXCERPT_MAX 60

static const char *const reserved_headers[] = {
    "From",       "To",           "Cc",
    "Bcc",        "Reply-To",     "Subject",
    "Date",       "Message-ID",   "MIME-Version",
    "Content-Type", "Content-Transfer-Encoding",
};

/*
 * The defaults are generous for ERP mail (invoices, reminders, order
 * confirmations). The subject cap of 2000 bytes fits 1000 two-byte
 * characters such as umlauts, far more than a mail client shows. The
 * message cap stays below what base64 makes of it: 40 MiB of attachments
 * become about 54 MiB on the wire.
 */
void outbox_limits_default(outbox_limits *limits)
{
    limits->max_recipients = 1000;
    limits->max_address_text = 64 * 1024;
    limits->max_subject = 2000;
    limits->max_body = 25 * 1024 * 1024;
    limits->max_headers = 50;
    limits->max_header_value = 2000;
    limits->max_metadata = 50;
    limits->max_attachments = 100;
    limits->max_message = 40 * 1024 * 1024;
}

static outbox_err fail_nomem(outbox_error *err, const char *field)
{
    return outbox_error_set(err, OUTBOX_ENOMEM, "out_of_memory",
                            "%s: out of memory", field);
}

static outbox_err fail_limit(outbox_error *err, const char *field,
                             size_t size, size_t cap)
{
    return outbox_error_set(err, OUTBOX_ELIMIT, "limit_exceeded",
                            "%s: is %zu bytes long, more than the maximum "
                            "of %zu", field, size, cap);
}

/* Copies text, which may be NULL, into *out. */
static outbox_err copy_text(char **out, outbox_error *err, const char *field,
                            const char *text)
{
    *out = NULL;
    if (text == NULL)
        return OUTBOX_EOK;
    *out = outbox__strdup(text);
    return *out != NULL ? OUTBOX_EOK : fail_nomem(err, field);
}

/*
 * Writes s for an error text: at most KEY_EXCERPT_MAX bytes, with control
 * characters as '?' so that a JSON key cannot break a log line.
 */
static void make_excerpt(char out[KEY_EXCERPT_MAX + 1], const char *s)
{
    size_t i = 0;

    for (; s[i] != '\0' && i < KEY_EXCERPT_MAX; i++) {
        unsigned char c = (unsigned char)s[i];

        out[i] = c < 0x20 || c == 0x7F ? '?' : (char)c;
    }
    out[i] = '\0';
}

/*
 * Checks text bound for a header: CR or LF gives "invalid_header_value",
 * invalid UTF-8 gives "invalid_text". what describes the text after the
 * field, such as "the value of \"X-Tag\""; it may be "".
 */
static outbox_err check_header_text(outbox_error *err, const char *field,
                                    const char *what, const char *text)
{
    const char *space = what[0] != '\0' ? " " : "";

    if (text == NULL)
        return OUTBOX_EOK;
    if (strpbrk(text, "\r\n") != NULL)
        return outbox_error_set(err, OUTBOX_EINVAL, "invalid_header_value",
                                "%s:%s%s contains a line break (CR or LF), "
                                "which is not allowed in a header", field,
                                space, what);
    if (!outbox__utf8_valid(text, strlen(text)))
        return outbox_error_set(err, OUTBOX_EINVAL, "invalid_text",
                                "%s:%s%s is not valid UTF-8", field, space,
                                what);
    return OUTBOX_EOK;
}

/* Checks the text columns of row for line breaks and invalid UTF-8. */
static outbox_err check_row_text(outbox_error *err, const outbox_row *row)
{
    const struct {
        const char *field;
        const char *text;
    } columns[] = {
        {"sender", row->sender},   {"recipients", row->recipients},
        {"cc", row->cc},           {"bcc", row->bcc},
        {"reply_to", row->reply_to}, {"subject", row->subject},
        {"message_id", row->message_id},
    };
    outbox_err rc = OUTBOX_EOK;

    for (size_t i = 0; i < sizeof(columns) / sizeof(columns[0]); i++) {
        rc = check_header_text(err, columns[i].field, "", columns[i].text);
        if (rc != OUTBOX_EOK)
            return rc;
    }

    /* These two never reach a header, but logs and provider requests
     * carry them as text. */
    if (row->message_key != NULL
        && !outbox__utf8_valid(row->message_key, strlen(row->message_key)))
        return outbox_error_set(err, OUTBOX_EINVAL, "invalid_text",
                                "message_key: is not valid UTF-8");
    if (row->reference != NULL
        && !outbox__utf8_valid(row->reference, strlen(row->reference)))
        return outbox_error_set(err, OUTBOX_EINVAL, "invalid_text",
                                "reference: is not valid UTF-8");
    return OUTBOX_EOK;
}

/* Adds b to *total, saturating at SIZE_MAX. */
static void add_size(size_t *total, size_t b)
{
    *total = *total > SIZE_MAX - b ? SIZE_MAX : *total + b;
}

/* Checks the caps that a row's sizes alone decide. */
static outbox_err check_row_sizes(outbox_error *err, const outbox_row *row,
                                  const outbox_limits *limits)
{
    const char *const names[] = {"sender", "recipients", "cc", "bcc",
                                 "reply_to"};
    const char *const columns[] = {row->sender, row->recipients, row->cc,
                                   row->bcc, row->reply_to};
    size_t total = 0;

    for (size_t i = 0; i < sizeof(columns) / sizeof(columns[0]); i++) {
        size_t size = columns[i] != NULL ? strlen(columns[i]) : 0;

        if (size > limits->max_address_text)
            return fail_limit(err, names[i], size, limits->max_address_text);
    }
    if (row->subject != NULL && strlen(row->subject) > limits->max_subject)
        return fail_limit(err, "subject", strlen(row->subject),
                          limits->max_subject);
    if (row->body_text != NULL && row->body_text_size > limits->max_body)
        return fail_limit(err, "body_text", row->body_text_size,
                          limits->max_body);
    if (row->body_html != NULL && row->body_html_size > limits->max_body)
        return fail_limit(err, "body_html", row->body_html_size,
                          limits->max_body);
    if (row->attachment_count > limits->max_attachments)
        return outbox_error_set(
            err, OUTBOX_ELIMIT, "limit_exceeded",
            "attachments: has %zu entries, more than the maximum of %zu",
            row->attachment_count, limits->max_attachments);

    add_size(&total, row->body_text != NULL ? row->body_text_size : 0);
    add_size(&total, row->body_html != NULL ? row->body_html_size : 0);
    for (size_t i = 0; i < row->attachment_count; i++)
        add_size(&total, row->attachments[i].size);
    if (total > limits->max_message)
        return outbox_error_set(
            err, OUTBOX_ELIMIT, "limit_exceeded",
            "message: bodies and attachments have %zu bytes, more than the "
            "maximum of %zu", total, limits->max_message);
    return OUTBOX_EOK;
}

/* Copies a body of size bytes. An empty body stays NULL, meaning absent. */
static outbox_err copy_body(char **out, outbox_error *err, const char *field,
                            const char *body, size_t size)
{
    *out = NULL;
    if (body == NULL || size == 0)
        return OUTBOX_EOK;
    if (memchr(body, '\0', size) != NULL)
        return outbox_error_set(err, OUTBOX_EINVAL, "invalid_text",
                                "%s: contains a NUL byte", field);
    if (!outbox__utf8_valid(body, size))
        return outbox_error_set(err, OUTBOX_EINVAL, "invalid_text",
                                "%s: is not valid UTF-8", field);
    *out = outbox__strndup(body, size);
    return *out != NULL ? OUTBOX_EOK : fail_nomem(err, field);
}

/* Copies the columns that need no parsing: ids, keys, subject and bodies. */
static outbox_err copy_columns(outbox_message *message, outbox_error *err,
                               const outbox_row *row)
{
    outbox_err rc;

    message->id = row->id;
    message->attempt = row->attempt;
    message->created_at = row->created_at;
    rc = copy_text(&message->message_key, err, "message_key",
                   row->message_key);
    if (rc == OUTBOX_EOK)
        rc = copy_text(&message->reference, err, "reference",
                       row->reference);
    if (rc == OUTBOX_EOK)
        rc = copy_text(&message->provider, err, "provider", row->provider);
    if (rc == OUTBOX_EOK)
        rc = copy_text(&message->message_id, err, "message_id",
                       row->message_id);
    if (rc == OUTBOX_EOK)
        rc = copy_text(&message->subject, err, "subject",
                       row->subject != NULL ? row->subject : "");
    if (rc == OUTBOX_EOK)
        rc = copy_body(&message->body_text, err, "body_text", row->body_text,
                       row->body_text_size);
    if (rc == OUTBOX_EOK)
        rc = copy_body(&message->body_html, err, "body_html", row->body_html,
                       row->body_html_size);
    if (rc == OUTBOX_EOK && message->body_text == NULL
        && message->body_html == NULL)
        rc = outbox_error_set(err, OUTBOX_EINVAL, "missing_body",
                              "body_text and body_html: both are missing or "
                              "empty, but a message needs at least one body");
    return rc;
}

/* Returns true if an address column has only separators and whitespace. */
static bool is_blank(const char *text)
{
    return text == NULL || text[strspn(text, " \t,;")] == '\0';
}

/*
 * Parses an address column into list and labels its errors with kind.
 * The parser gets no count cap because the recipient cap applies after
 * repeats are removed. The byte cap on the column bounds the work instead.
 */
static outbox_err parse_column(outbox_address_list *list, outbox_error *err,
                               const char *field, const char *kind,
                               const char *text, bool required)
{
    outbox_err rc;

    if (is_blank(text)) {
        if (!required)
            return OUTBOX_EOK;
        return outbox_error_set(err, OUTBOX_EINVAL, kind,
                                "%s: is missing or empty, but an address "
                                "is required", field);
    }
    rc = outbox_address_list_parse(list, err, field, text, SIZE_MAX);
    if (rc == OUTBOX_EINVAL && err != NULL)
        snprintf(err->kind, sizeof(err->kind), "%s", kind);
    return rc;
}

static outbox_err parse_sender(outbox_message *message, outbox_error *err,
                               const char *text)
{
    outbox_address_list list = {NULL, 0};
    outbox_err rc = parse_column(&list, err, "sender", "invalid_sender", text,
                                 true);

    if (rc != OUTBOX_EOK)
        return rc;
    if (list.count != 1) {
        rc = outbox_error_set(err, OUTBOX_EINVAL, "invalid_sender",
                              "sender: has %zu addresses, but exactly one is "
                              "required", list.count);
        outbox_address_list_clear(&list);
        return rc;
    }
    message->sender = list.items[0];
    free(list.items);
    return OUTBOX_EOK;
}

/*
 * A set of email addresses that compares them without regard to ASCII
 * case: open addressing over borrowed pointers, at most half full.
 */
typedef struct email_set {
    const char **slots;
    size_t mask;
} email_set;

/* FNV-1a over the address with ASCII letters in lower case. */
static uint64_t hash_email(const char *email)
{
    uint64_t hash = UINT64_C(14695981039346656037);

    for (const unsigned char *p = (const unsigned char *)email; *p != '\0';
         p++) {
        unsigned char c = *p;

        if (c >= 'A' && c <= 'Z')
            c = (unsigned char)(c + ('a' - 'A'));
        hash = (hash ^ c) * UINT64_C(1099511628211);
    }
    return hash;
}

/* Adds email to set; returns false if the set already has it. */
static bool email_set_add(email_set *set, const char *email)
{
    size_t i = (size_t)hash_email(email) & set->mask;

    while (set->slots[i] != NULL) {
        if (outbox__strcasecmp(set->slots[i], email) == 0)
            return false;
        i = (i + 1) & set->mask;
    }
    set->slots[i] = email;
    return true;
}

/*
 * Removes repeated addresses from to, cc and bcc, in that order, so that
 * an address keeps its first place. A hash set keeps this linear, because
 * a 64 KiB column can hold thousands of addresses.
 */
static outbox_err remove_repeats(outbox_message *message, outbox_error *err)
{
    outbox_address_list *lists[] = {&message->to, &message->cc,
                                    &message->bcc};
    size_t total = outbox_message_recipient_count(message);
    size_t size = 16;
    email_set set;

    while (size / 2 < total)
        size *= 2;
    set.slots = calloc(size, sizeof(*set.slots));
    if (set.slots == NULL)
        return fail_nomem(err, "recipients");
    set.mask = size - 1;

    for (size_t l = 0; l < sizeof(lists) / sizeof(lists[0]); l++) {
        outbox_address_list *list = lists[l];
        size_t kept_count = 0;

        for (size_t i = 0; i < list->count; i++) {
            outbox_address address = list->items[i];

            if (email_set_add(&set, address.email)) {
                list->items[kept_count++] = address;
            } else {
                free(address.name);
                free(address.email);
            }
        }
        list->count = kept_count;
    }
    free(set.slots);
    return OUTBOX_EOK;
}

static outbox_err build_addresses(outbox_message *message, outbox_error *err,
                                  const outbox_row *row,
                                  const outbox_limits *limits)
{
    outbox_err rc = parse_sender(message, err, row->sender);
    size_t count;

    if (rc == OUTBOX_EOK)
        rc = parse_column(&message->to, err, "recipients",
                          "invalid_recipients", row->recipients, true);
    if (rc == OUTBOX_EOK)
        rc = parse_column(&message->cc, err, "cc", "invalid_cc", row->cc,
                          false);
    if (rc == OUTBOX_EOK)
        rc = parse_column(&message->bcc, err, "bcc", "invalid_bcc", row->bcc,
                          false);
    if (rc == OUTBOX_EOK)
        rc = parse_column(&message->reply_to, err, "reply_to",
                          "invalid_reply_to", row->reply_to, false);
    if (rc == OUTBOX_EOK)
        rc = remove_repeats(message, err);
    if (rc != OUTBOX_EOK)
        return rc;

    count = outbox_message_recipient_count(message);
    if (count > limits->max_recipients)
        return outbox_error_set(
            err, OUTBOX_ELIMIT, "limit_exceeded",
            "recipients: to, cc and bcc have %zu addresses, more than the "
            "maximum of %zu", count, limits->max_recipients);
    return OUTBOX_EOK;
}

/* RFC 5322 field name: printable ASCII other than space and colon. */
static bool is_field_name(const char *name)
{
    if (name[0] == '\0')
        return false;
    for (const char *p = name; *p != '\0'; p++) {
        if (*p <= ' ' || *p > '~' || *p == ':')
            return false;
    }
    return true;
}

/* Checks one entry of the headers column and copies it into field. */
static outbox_err add_header(outbox_field *field, outbox_error *err,
                             const cJSON *item, const outbox_limits *limits)
{
    const char *value = cJSON_GetStringValue(item);
    char name[KEY_EXCERPT_MAX + 1];
    char what[KEY_EXCERPT_MAX + 20];
    outbox_err rc;

    make_excerpt(name, item->string);
    if (!is_field_name(item->string))
        return outbox_error_set(err, OUTBOX_EINVAL, "invalid_headers",
                                "headers: \"%s\" is not a valid header name "
                                "(printable ASCII without spaces or colons)",
                                name);
    for (size_t i = 0; i < sizeof(reserved_headers) / sizeof(*reserved_headers);
         i++) {
        if (outbox__strcasecmp(item->string, reserved_headers[i]) == 0)
            return outbox_error_set(
                err, OUTBOX_EINVAL, "invalid_headers",
                "headers: \"%s\" is set by outboxd and cannot be given in "
                "the headers column", name);
    }
    if (value == NULL)
        return outbox_error_set(err, OUTBOX_EINVAL, "invalid_headers",
                                "headers: the value of \"%s\" is not a string",
                                name);

    snprintf(what, sizeof(what), "the value of \"%s\"", name);
    rc = check_header_text(err, "headers", what, value);
    if (rc != OUTBOX_EOK)
        return rc;
    if (strlen(value) > limits->max_header_value)
        return outbox_error_set(
            err, OUTBOX_ELIMIT, "limit_exceeded",
            "headers: the value of \"%s\" has %zu bytes, more than the "
            "maximum of %zu", name, strlen(value), limits->max_header_value);
    if (copy_text(&field->name, err, "headers", item->string) != OUTBOX_EOK)
        return OUTBOX_ENOMEM;
    return copy_text(&field->value, err, "headers", value);
}

/* Describes the JSON type of item for an error text. */
static const char *json_type_name(const cJSON *item)
{
    if (cJSON_IsObject(item))
        return "an object";
    if (cJSON_IsArray(item))
        return "an array";
    return "null";
}

/*
 * Checks one entry of the metadata column and copies it into field.
 * Numbers and booleans become their JSON text as cJSON prints it, so 4711
 * and 4711.0 both become "4711".
 */
static outbox_err add_metadata(outbox_field *field, outbox_error *err,
                               const cJSON *item,
                               const outbox_limits *limits)
{
    char key[KEY_EXCERPT_MAX + 1];
    char *printed;

    (void)limits;
    make_excerpt(key, item->string);
    if (item->string[0] == '\0')
        return outbox_error_set(err, OUTBOX_EINVAL, "invalid_metadata",
                                "metadata: a key is empty");
    if (!outbox__utf8_valid(item->string, strlen(item->string)))
        return outbox_error_set(err, OUTBOX_EINVAL, "invalid_text",
                                "metadata: the key \"%s\" is not valid UTF-8",
                                key);
    /* outboxd sends the row id under this key (for SendGrid as a custom
     * arg that webhook events return), so a row may not set it. */
    if (outbox__strcasecmp(item->string, "outbox_id") == 0)
        return outbox_error_set(err, OUTBOX_EINVAL, "invalid_metadata",
                                "metadata: the key \"%s\" is reserved for "
                                "outboxd", key);

    if (copy_text(&field->name, err, "metadata", item->string) != OUTBOX_EOK)
        return OUTBOX_ENOMEM;
    if (cJSON_IsString(item)) {
        if (!outbox__utf8_valid(item->valuestring, strlen(item->valuestring)))
            return outbox_error_set(err, OUTBOX_EINVAL, "invalid_text",
                                    "metadata: the value of \"%s\" is not "
                                    "valid UTF-8", key);
        return copy_text(&field->value, err, "metadata", item->valuestring);
    }
    if (!cJSON_IsNumber(item) && !cJSON_IsBool(item))
        return outbox_error_set(err, OUTBOX_EINVAL, "invalid_metadata",
                                "metadata: the value of \"%s\" is %s, but "
                                "only strings, numbers and booleans are "
                                "allowed", key, json_type_name(item));

    /* cJSON may allocate with other hooks: copy its text with malloc. */
    printed = cJSON_PrintUnformatted(item);
    if (printed == NULL)
        return fail_nomem(err, "metadata");
    field->value = outbox__strdup(printed);
    cJSON_free(printed);
    return field->value != NULL ? OUTBOX_EOK : fail_nomem(err, "metadata");
}

typedef outbox_err (*add_field_fn)(outbox_field *field, outbox_error *err,
                                   const cJSON *item,
                                   const outbox_limits *limits);

/*
 * Parses text, a JSON object or NULL, into *fields with add_field for each
 * entry. column names the column in error texts, and kind labels the
 * errors about its form.
 */
static outbox_err build_fields(outbox_field **fields, size_t *count,
                               outbox_error *err, const char *column,
                               const char *kind, const char *text,
                               size_t max_count, add_field_fn add_field,
                               const outbox_limits *limits)
{
    const char *end = NULL;
    cJSON *root;
    const cJSON *item;
    size_t entries = 0;
    outbox_err rc = OUTBOX_EOK;

    if (text == NULL)
        return OUTBOX_EOK;
    root = cJSON_ParseWithOpts(text, &end, true);
    if (root == NULL) {
        return outbox_error_set(err, OUTBOX_EINVAL, kind,
                                "%s: is not valid JSON (error at byte %zu)",
                                column, end != NULL ? (size_t)(end - text) : 0);
    }
    if (!cJSON_IsObject(root)) {
        rc = outbox_error_set(err, OUTBOX_EINVAL, kind,
                              "%s: is not a JSON object", column);
        goto cleanup;
    }

    cJSON_ArrayForEach(item, root)
        entries++;
    if (entries > max_count) {
        rc = outbox_error_set(err, OUTBOX_ELIMIT, "limit_exceeded",
                              "%s: has %zu entries, more than the maximum "
                              "of %zu",
                              column, entries, max_count);
        goto cleanup;
    }
    if (entries == 0)
        goto cleanup;
    *fields = calloc(entries, sizeof(**fields));
    if (*fields == NULL) {
        rc = fail_nomem(err, column);
        goto cleanup;
    }
    cJSON_ArrayForEach(item, root) {
        /* Counted first, so that freeing the message frees this entry. */
        rc = add_field(&(*fields)[(*count)++], err, item, limits);
        if (rc != OUTBOX_EOK)
            break;
    }

cleanup:
    cJSON_Delete(root);
    return rc;
}

/* Counts the RFC 2045 token characters at the start of text. */
static size_t token_span(const char *text)
{
    size_t n = 0;

    while (text[n] > ' ' && text[n] < 0x7F
           && strchr("()<>@,;:\\\"/[]?=", text[n]) == NULL)
        n++;
    return n;
}

/* Returns true if text is type/subtype, optionally with parameters. */
static bool is_content_type(const char *text)
{
    size_t n = token_span(text);
    const char *rest;

    if (n == 0 || text[n] != '/')
        return false;
    rest = text + n + 1;
    n = token_span(rest);
    if (n == 0)
        return false;
    rest += n;
    rest += strspn(rest, " \t");
    if (*rest != '\0' && *rest != ';')
        return false;
    for (; *rest != '\0'; rest++) {
        if ((*rest < ' ' && *rest != '\t') || *rest > '~')
            return false;
    }
    return true;
}

/* Checks the header text of an attachment: the name, type and ID. */
static outbox_err check_attachment(outbox_error *err, const char *field,
                                   const outbox_attachment *src,
                                   const char *type, const char *content_id)
{
    char shown[KEY_EXCERPT_MAX + 1];
    outbox_err rc;

    if (src->filename == NULL || src->filename[0] == '\0')
        return outbox_error_set(err, OUTBOX_EINVAL, "invalid_attachment",
                                "%s: filename is missing", field);
    rc = check_header_text(err, field, "filename", src->filename);
    if (rc == OUTBOX_EOK)
        rc = check_header_text(err, field, "content type", type);
    if (rc == OUTBOX_EOK)
        rc = check_header_text(err, field, "content ID", content_id);
    if (rc != OUTBOX_EOK)
        return rc;

    make_excerpt(shown, type);
    if (!is_content_type(type))
        return outbox_error_set(err, OUTBOX_EINVAL, "invalid_attachment",
                                "%s: content type \"%s\" is not of the form "
                                "type/subtype", field, shown);
    if (content_id != NULL && content_id[strcspn(content_id, " \t<>")] != '\0')
        return outbox_error_set(err, OUTBOX_EINVAL, "invalid_attachment",
                                "%s: content ID contains a space or an angle "
                                "bracket; write it without <>", field);
    if (src->size > 0 && src->content == NULL)
        return outbox_error_set(err, OUTBOX_EINVAL, "invalid_attachment",
                                "%s: content is missing, but its size is %zu",
                                field, src->size);
    return OUTBOX_EOK;
}

/*
 * Copies attachment number (1-based) of the row into dst. A content type
 * that is NULL or empty becomes application/octet-stream, and an empty
 * content ID becomes NULL.
 */
static outbox_err copy_attachment(outbox_attachment *dst, outbox_error *err,
                                  size_t number, const outbox_attachment *src)
{
    const char *type = src->content_type;
    const char *content_id = src->content_id;
    char field[40];
    outbox_err rc;

    snprintf(field, sizeof(field), "attachment %zu", number);
    if (type == NULL || type[0] == '\0')
        type = DEFAULT_CONTENT_TYPE;
    if (content_id != NULL && content_id[0] == '\0')
        content_id = NULL;
    rc = check_attachment(err, field, src, type, content_id);
    if (rc != OUTBOX_EOK)
        return rc;

    if (src->size > 0) {
        dst->content = malloc(src->size);
        if (dst->content == NULL)
            return fail_nomem(err, field);
        memcpy(dst->content, src->content, src->size);
        dst->size = src->size;
    }
    rc = copy_text(&dst->filename, err, field, src->filename);
    if (rc == OUTBOX_EOK)
        rc = copy_text(&dst->content_type, err, field, type);
    if (rc == OUTBOX_EOK)
        rc = copy_text(&dst->content_id, err, field, content_id);
    return rc;
}

static outbox_err copy_attachments(outbox_message *message, outbox_error *err,
                                   const outbox_row *row)
{
    size_t count = row->attachment_count;

    if (count == 0)
        return OUTBOX_EOK;
    message->attachments = calloc(count, sizeof(*message->attachments));
    if (message->attachments == NULL)
        return fail_nomem(err, "attachments");
    for (size_t i = 0; i < count; i++) {
        outbox_err rc;

        /* Counted first, so that freeing the message frees this entry. */
        message->attachment_count = i + 1;
        rc = copy_attachment(&message->attachments[i], err, i + 1,
                             &row->attachments[i]);
        if (rc != OUTBOX_EOK)
            return rc;
    }
    return OUTBOX_EOK;
}

outbox_err outbox_message_build(outbox_message **out, outbox_error *err,
                                const outbox_row *row,
                                const outbox_limits *limits)
{
    outbox_limits defaults;
    outbox_message *message = NULL;
    outbox_err rc;

    if (out == NULL || row == NULL
        || (row->attachment_count > 0 && row->attachments == NULL))
        return outbox_error_set(err, OUTBOX_EINVAL, "internal",
                                "message: outbox_message_build needs an "
                                "output, a row, and the row's attachments");
    *out = NULL;
    if (limits == NULL) {
        outbox_limits_default(&defaults);
        limits = &defaults;
    }

    rc = check_row_text(err, row);
    if (rc == OUTBOX_EOK)
        rc = check_row_sizes(err, row, limits);
    if (rc != OUTBOX_EOK)
        goto cleanup;

    message = calloc(1, sizeof(*message));
    if (message == NULL) {
        rc = fail_nomem(err, "message");
        goto cleanup;
    }
    rc = copy_columns(message, err, row);
    if (rc == OUTBOX_EOK)
        rc = build_addresses(message, err, row, limits);
    if (rc == OUTBOX_EOK)
        rc = build_fields(&message->headers, &message->header_count, err,
                          "headers", "invalid_headers", row->headers,
                          limits->max_headers, add_header, limits);
    if (rc == OUTBOX_EOK)
        rc = build_fields(&message->metadata, &message->metadata_count, err,
                          "metadata", "invalid_metadata", row->metadata,
                          limits->max_metadata, add_metadata, limits);
    if (rc == OUTBOX_EOK)
        rc = copy_attachments(message, err, row);
    if (rc == OUTBOX_EOK) {
        *out = message;
        message = NULL;
    }

cleanup:
    outbox_message_free(message);
    return rc;
}

static void free_fields(outbox_field *fields, size_t count)
{
    for (size_t i = 0; i < count; i++) {
        free(fields[i].name);
        free(fields[i].value);
    }
    free(fields);
}

void outbox_message_free(outbox_message *message)
{
    if (message == NULL)
        return;
    free(message->message_key);
    free(message->reference);
    free(message->provider);
    free(message->message_id);
    free(message->sender.name);
    free(message->sender.email);
    outbox_address_list_clear(&message->to);
    outbox_address_list_clear(&message->cc);
    outbox_address_list_clear(&message->bcc);
    outbox_address_list_clear(&message->reply_to);
    free(message->subject);
    free(message->body_text);
    free(message->body_html);
    free_fields(message->headers, message->header_count);
    free_fields(message->metadata, message->metadata_count);
    for (size_t i = 0; i < message->attachment_count; i++) {
        free(message->attachments[i].filename);
        free(message->attachments[i].content_type);
        free(message->attachments[i].content_id);
        free(message->attachments[i].content);
    }
    free(message->attachments);
    free(message);
}

size_t outbox_message_recipient_count(const outbox_message *message)
{
    if (message == NULL)
        return 0;
    return message->to.count + message->cc.count + message->bcc.count;
}
