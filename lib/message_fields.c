/*
 * message_fields.c - checks and copies the headers and metadata columns
 * (JSON objects) and the attachments of an outbox row into a message.
 */
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "message_internal.h"

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
outbox_err outbox__message_check_header_text(outbox_error *err,
                                             const char *field,
                                             const char *what,
                                             const char *text)
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
    rc = outbox__message_check_header_text(err, "headers", what, value);
    if (rc != OUTBOX_EOK)
        return rc;
    if (strlen(value) > limits->max_header_value)
        return outbox_error_set(
            err, OUTBOX_ELIMIT, "limit_exceeded",
            "headers: the value of \"%s\" has %zu bytes, more than the "
            "maximum of %zu", name, strlen(value), limits->max_header_value);
    if (outbox__message_copy_text(&field->name, err, "headers", item->string)
        != OUTBOX_EOK)
        return OUTBOX_ENOMEM;
    return outbox__message_copy_text(&field->value, err, "headers", value);
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

    if (outbox__message_copy_text(&field->name, err, "metadata", item->string)
        != OUTBOX_EOK)
        return OUTBOX_ENOMEM;
    if (cJSON_IsString(item)) {
        if (!outbox__utf8_valid(item->valuestring, strlen(item->valuestring)))
            return outbox_error_set(err, OUTBOX_EINVAL, "invalid_text",
                                    "metadata: the value of \"%s\" is not "
                                    "valid UTF-8", key);
        return outbox__message_copy_text(&field->value, err, "metadata",
                                         item->valuestring);
    }
    if (!cJSON_IsNumber(item) && !cJSON_IsBool(item))
        return outbox_error_set(err, OUTBOX_EINVAL, "invalid_metadata",
                                "metadata: the value of \"%s\" is %s, but "
                                "only strings, numbers and booleans are "
                                "allowed", key, json_type_name(item));

    /* cJSON may allocate with other hooks: copy its text with malloc. */
    printed = cJSON_PrintUnformatted(item);
    if (printed == NULL)
        return outbox__message_fail_nomem(err, "metadata");
    field->value = outbox__strdup(printed);
    cJSON_free(printed);
    return field->value != NULL ? OUTBOX_EOK
                                : outbox__message_fail_nomem(err, "metadata");
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
        rc = outbox__message_fail_nomem(err, column);
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

outbox_err outbox__message_build_headers(outbox_message *message,
                                         outbox_error *err,
                                         const outbox_row *row,
                                         const outbox_limits *limits)
{
    return build_fields(&message->headers, &message->header_count, err,
                        "headers", "invalid_headers", row->headers,
                        limits->max_headers, add_header, limits);
}

outbox_err outbox__message_build_metadata(outbox_message *message,
                                          outbox_error *err,
                                          const outbox_row *row,
                                          const outbox_limits *limits)
{
    return build_fields(&message->metadata, &message->metadata_count, err,
                        "metadata", "invalid_metadata", row->metadata,
                        limits->max_metadata, add_metadata, limits);
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
    rc = outbox__message_check_header_text(err, field, "filename",
                                           src->filename);
    if (rc == OUTBOX_EOK)
        rc = outbox__message_check_header_text(err, field, "content type",
                                               type);
    if (rc == OUTBOX_EOK)
        rc = outbox__message_check_header_text(err, field, "content ID",
                                               content_id);
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
    /* An empty invoice is never what the ERP meant: readfile() in the
     * sqlite3 shell gives NULL for a file that does not exist. */
    if (src->size == 0)
        return outbox_error_set(err, OUTBOX_EINVAL, "invalid_attachment",
                                "%s: content is empty (NULL or 0 bytes); "
                                "check the file the ERP attached", field);
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
            return outbox__message_fail_nomem(err, field);
        memcpy(dst->content, src->content, src->size);
        dst->size = src->size;
    }
    rc = outbox__message_copy_text(&dst->filename, err, field,
                                   src->filename);
    if (rc == OUTBOX_EOK)
        rc = outbox__message_copy_text(&dst->content_type, err, field, type);
    if (rc == OUTBOX_EOK)
        rc = outbox__message_copy_text(&dst->content_id, err, field,
                                       content_id);
    return rc;
}

outbox_err outbox__message_copy_attachments(outbox_message *message,
                                            outbox_error *err,
                                            const outbox_row *row)
{
    size_t count = row->attachment_count;

    if (count == 0)
        return OUTBOX_EOK;
    message->attachments = calloc(count, sizeof(*message->attachments));
    if (message->attachments == NULL)
        return outbox__message_fail_nomem(err, "attachments");
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

/* Returns true if text is 1 to OUTBOX_TEMPLATE_NAME_MAX bytes of visible
 * ASCII: providers' template ids and names contain no spaces. */
static bool template_name_valid(const char *text)
{
    size_t length = strlen(text);

    if (length == 0 || length > OUTBOX_TEMPLATE_NAME_MAX)
        return false;
    for (size_t i = 0; i < length; i++) {
        if (text[i] < '!' || text[i] > '~')
            return false;
    }
    return true;
}

outbox_err outbox__message_build_template(outbox_message *message,
                                          outbox_error *err,
                                          const outbox_row *row,
                                          const outbox_limits *limits)
{
    const char *data = row->template_data;
    size_t size = data != NULL ? strlen(data) : 0;
    cJSON *root;
    bool is_object;

    if (row->template_name == NULL) {
        if (data != NULL)
            return outbox_error_set(err, OUTBOX_EINVAL, "invalid_template",
                                    "template_data: is set, but template is "
                                    "missing");
        return OUTBOX_EOK;
    }
    if (!template_name_valid(row->template_name))
        return outbox_error_set(err, OUTBOX_EINVAL, "invalid_template",
                                "template: must be 1 to %d characters of "
                                "printable ASCII without spaces",
                                OUTBOX_TEMPLATE_NAME_MAX);
    if (size > limits->max_template_data)
        return outbox_error_set(err, OUTBOX_ELIMIT, "limit_exceeded",
                                "template_data: has %zu bytes, more than the "
                                "maximum of %zu", size,
                                limits->max_template_data);
    if (data != NULL) {
        if (!outbox__utf8_valid(data, size))
            return outbox_error_set(err, OUTBOX_EINVAL, "invalid_template",
                                    "template_data: is not valid UTF-8");
        root = cJSON_Parse(data);
        is_object = cJSON_IsObject(root);
        cJSON_Delete(root);
        if (!is_object)
            return outbox_error_set(err, OUTBOX_EINVAL, "invalid_template",
                                    "template_data: is not a JSON object");
    }
    if (outbox__message_copy_text(&message->template_name, err, "template",
                                  row->template_name) != OUTBOX_EOK)
        return OUTBOX_ENOMEM;
    return outbox__message_copy_text(&message->template_data, err,
                                     "template_data", data);
}
