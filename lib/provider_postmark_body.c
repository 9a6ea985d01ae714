/*
 * provider_postmark_body.c - the JSON body of a Postmark POST /email or
 * POST /email/withTemplate request, built from a message with cJSON.
 *
 * Postmark takes addresses as strings: From is one mailbox, and To, Cc,
 * Bcc and ReplyTo are lists joined with ", ". Keys follow in this order:
 * From, To, Cc, Bcc, ReplyTo, Subject, TextBody, HtmlBody, Headers,
 * Metadata (the outbox id, which webhook events carry back, and the row's
 * metadata), Attachments and MessageStream. A message with a template has
 * TemplateId or TemplateAlias and TemplateModel in place of Subject,
 * TextBody and HtmlBody, because the template brings its own. Keys whose
 * value would be empty are left out. The bodies and the base64
 * attachments are referred to, not copied, while the tree is printed.
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "internal.h"
#include "provider_postmark.h"

/* Cap on one joined address list. The message's own caps keep real lists
 * far below it. */
#define ADDRESS_LIST_MAX (1024 * 1024)

static size_t add_size(size_t a, size_t b)
{
    return a > SIZE_MAX - b ? SIZE_MAX : a + b;
}

static size_t text_size(const char *text)
{
    return text != NULL ? strlen(text) : 0;
}

/* Size of the message as counted against Postmark's cap: the bodies, the
 * subject, the template data, the extra headers and the attachments after
 * base64. */
static size_t encoded_message_size(const outbox_message *message)
{
    size_t total = add_size(text_size(message->subject),
                            text_size(message->template_data));

    total = add_size(total, text_size(message->body_text));
    total = add_size(total, text_size(message->body_html));
    for (size_t i = 0; i < message->header_count; i++) {
        total = add_size(total, text_size(message->headers[i].name));
        total = add_size(total, text_size(message->headers[i].value));
    }
    for (size_t i = 0; i < message->attachment_count; i++)
        total = add_size(total,
                         outbox__base64_size(message->attachments[i].size));
    return total;
}

/* RFC 5322 atext, extended by RFC 6532 to every byte of a UTF-8
 * sequence: a display name of these and spaces needs no quotes. */
static bool is_atext(unsigned char c)
{
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
        || (c >= '0' && c <= '9') || c >= 0x80)
        return true;
    return c != '\0' && strchr("!#$%&'*+-/=?^_`{|}~", c) != NULL;
}

static bool is_bare_phrase(const char *name)
{
    for (const char *p = name; *p != '\0'; p++) {
        if (*p != ' ' && !is_atext((unsigned char)*p))
            return false;
    }
    return true;
}

/*
 * Appends `Name <email>`, or the email alone when there is no name.
 * Postmark parses these strings as RFC 5322 addresses, so a name with a
 * comma or another special character goes into a quoted string. Without
 * the quotes, Postmark would read "Meier, Anna" as two addresses.
 * NOTE: non-ASCII names are sent as raw UTF-8 (RFC 6532). That Postmark
 * encodes them for the delivered header is assumed, not tested against
 * the real API.
 */
static outbox_err append_mailbox(outbox_buf *buf,
                                 const outbox_address *address)
{
    const char *name = address->name;
    outbox_err rc = OUTBOX_EOK;

    if (name == NULL || name[strspn(name, " ")] == '\0')
        return outbox__buf_puts(buf, address->email);
    if (is_bare_phrase(name))
        return outbox__buf_printf(buf, "%s <%s>", name, address->email);

    rc = outbox__buf_puts(buf, "\"");
    for (const char *p = name; rc == OUTBOX_EOK && *p != '\0'; p++) {
        if (*p == '"' || *p == '\\')
            rc = outbox__buf_puts(buf, "\\");
        if (rc == OUTBOX_EOK)
            rc = outbox__buf_append(buf, p, 1);
    }
    if (rc == OUTBOX_EOK)
        rc = outbox__buf_printf(buf, "\" <%s>", address->email);
    return rc;
}

/* Adds parent[key] = "a, b, c" unless the list is empty. */
static bool add_address_list(cJSON *parent, const char *key,
                             const outbox_address *items, size_t count)
{
    outbox_buf joined;
    bool ok = true;

    if (count == 0)
        return true;
    outbox__buf_init(&joined, ADDRESS_LIST_MAX);
    for (size_t i = 0; ok && i < count; i++) {
        if (i > 0)
            ok = outbox__buf_puts(&joined, ", ") == OUTBOX_EOK;
        if (ok)
            ok = append_mailbox(&joined, &items[i]) == OUTBOX_EOK;
    }
    if (ok)
        ok = cJSON_AddStringToObject(parent, key, joined.data) != NULL;
    outbox__buf_free(&joined);
    return ok;
}

/* Adds key: text unless text is empty, referring to text without a
 * copy. */
static bool add_text_reference(cJSON *parent, const char *key,
                               const char *text)
{
    cJSON *value;

    if (text == NULL || text[0] == '\0')
        return true;
    value = cJSON_CreateStringReference(text);
    if (value == NULL || !cJSON_AddItemToObject(parent, key, value)) {
        cJSON_Delete(value);
        return false;
    }
    return true;
}

/* Adds {"Name": name, "Value": value} to list. */
static bool add_header_pair(cJSON *list, const char *name, const char *value)
{
    cJSON *pair = cJSON_CreateObject();

    if (pair == NULL || !cJSON_AddItemToArray(list, pair)) {
        cJSON_Delete(pair);
        return false;
    }
    return cJSON_AddStringToObject(pair, "Name", name) != NULL
           && cJSON_AddStringToObject(pair, "Value", value) != NULL;
}

/* Adds "Message-ID": "<id>". */
static bool add_message_id(cJSON *list, const char *id)
{
    size_t length = strlen(id);
    char *value = malloc(length + 3);
    bool ok;

    if (value == NULL)
        return false;
    value[0] = '<';
    memcpy(value + 1, id, length);
    memcpy(value + 1 + length, ">", 2);
    ok = add_header_pair(list, "Message-ID", value);
    free(value);
    return ok;
}

/* Adds the extra headers, and Message-ID so that the delivered mail
 * carries the id that the store keeps for this message. */
static bool add_headers(cJSON *root, const outbox_message *message,
                        const outbox_logger *logger)
{
    bool has_id = message->message_id != NULL && message->message_id[0];
    cJSON *list;

    if (message->header_count == 0 && !has_id)
        return true;
    list = cJSON_AddArrayToObject(root, "Headers");
    if (list == NULL)
        return false;
    for (size_t i = 0; i < message->header_count; i++) {
        const outbox_field *header = &message->headers[i];

        if (header->name == NULL)
            continue;
        if (has_id && outbox__strcasecmp(header->name, "Message-ID") == 0) {
            outbox_log(logger, OUTBOX_LOG_WARN,
                       "id=%lld header Message-ID from the row is replaced "
                       "by the message id the outbox assigned",
                       (long long)message->id);
            continue;
        }
        if (!add_header_pair(list, header->name,
                             header->value ? header->value : ""))
            return false;
    }
    return !has_id || add_message_id(list, message->message_id);
}

/* Adds one metadata pair. The row's own "outbox_id" would hide the id that
 * matches webhook events to the row, so it is renamed. */
static bool add_metadata_pair(cJSON *metadata, const outbox_field *field,
                              const outbox_message *message,
                              const outbox_logger *logger)
{
    const char *key = field->name;

    if (key == NULL)
        return true;
    if (strcmp(key, "outbox_id") == 0) {
        key = "erp_outbox_id";
        outbox_log(logger, OUTBOX_LOG_WARN,
                   "id=%lld metadata key \"outbox_id\" is reserved for the "
                   "outbox id, so it is sent as \"%s\"",
                   (long long)message->id, key);
    }
    if (cJSON_GetObjectItemCaseSensitive(metadata, key) != NULL) {
        outbox_log(logger, OUTBOX_LOG_WARN,
                   "id=%lld metadata key \"%.64s\" is given twice; the "
                   "later value is not sent",
                   (long long)message->id, key);
        return true;
    }
    return cJSON_AddStringToObject(metadata, key,
                                   field->value ? field->value : "")
           != NULL;
}

/* Postmark rejects metadata values that are not strings, so the id is
 * sent as a string too. */
static bool add_metadata(cJSON *root, const outbox_message *message,
                         const outbox_logger *logger)
{
    cJSON *metadata = cJSON_AddObjectToObject(root, "Metadata");
    char id[24];

    if (metadata == NULL)
        return false;
    snprintf(id, sizeof(id), "%lld", (long long)message->id);
    if (cJSON_AddStringToObject(metadata, "outbox_id", id) == NULL)
        return false;
    for (size_t i = 0; i < message->metadata_count; i++) {
        if (!add_metadata_pair(metadata, &message->metadata[i], message,
                               logger))
            return false;
    }
    return true;
}

/*
 * Adds one attachment. An inline image gets a ContentID of "cid:<id>",
 * the form Postmark documents; the HTML body refers to it as
 * src="cid:<id>". *encoded receives the base64 text, which the JSON tree
 * refers to without a copy, so the caller frees it after printing.
 */
static bool add_attachment(cJSON *list, const outbox_attachment *attachment,
                           char **encoded)
{
    cJSON *object = cJSON_CreateObject();
    cJSON *content;
    char *content_id;
    bool ok;

    if (object == NULL || !cJSON_AddItemToArray(list, object)) {
        cJSON_Delete(object);
        return false;
    }
    *encoded = outbox__base64(attachment->content, attachment->size, NULL);
    if (*encoded == NULL)
        return false;
    if (cJSON_AddStringToObject(object, "Name", attachment->filename) == NULL)
        return false;
    content = cJSON_CreateStringReference(*encoded);
    if (content == NULL || !cJSON_AddItemToObject(object, "Content", content)) {
        cJSON_Delete(content);
        return false;
    }
    if (cJSON_AddStringToObject(object, "ContentType",
                                attachment->content_type
                                    ? attachment->content_type
                                    : "application/octet-stream")
        == NULL)
        return false;
    if (attachment->content_id == NULL)
        return true;

    content_id = malloc(strlen(attachment->content_id) + 5);
    if (content_id == NULL)
        return false;
    memcpy(content_id, "cid:", 4);
    memcpy(content_id + 4, attachment->content_id,
           strlen(attachment->content_id) + 1);
    ok = cJSON_AddStringToObject(object, "ContentID", content_id) != NULL;
    free(content_id);
    return ok;
}

static bool add_attachments(cJSON *root, const outbox_message *message,
                            char **encoded)
{
    cJSON *list;

    if (message->attachment_count == 0)
        return true;
    list = cJSON_AddArrayToObject(root, "Attachments");
    if (list == NULL)
        return false;
    for (size_t i = 0; i < message->attachment_count; i++) {
        if (!add_attachment(list, &message->attachments[i], &encoded[i]))
            return false;
    }
    return true;
}

static bool add_from(cJSON *root, const outbox_address *sender)
{
    return add_address_list(root, "From", sender, 1);
}

/* Returns true if name is a number as Postmark shows template ids: digits
 * without a leading zero. Any other name is a template alias. */
static bool is_template_id(const char *name)
{
    if (name[0] < '1' || name[0] > '9')
        return false;
    return name[strspn(name, "0123456789")] == '\0';
}

/*
 * Adds TemplateId (a JSON number) or TemplateAlias, then TemplateModel:
 * the row's template_data, or {} when it has none. The id is written as
 * raw digits, because cJSON's double would round ids above 2^53.
 */
static bool add_template(cJSON *root, const outbox_message *message)
{
    const char *name = message->template_name;
    cJSON *model;

    if (is_template_id(name)) {
        if (cJSON_AddRawToObject(root, "TemplateId", name) == NULL)
            return false;
    } else if (cJSON_AddStringToObject(root, "TemplateAlias", name) == NULL) {
        return false;
    }
    if (message->template_data == NULL)
        return cJSON_AddObjectToObject(root, "TemplateModel") != NULL;
    model = cJSON_Parse(message->template_data);
    if (model == NULL
        || !cJSON_AddItemToObject(root, "TemplateModel", model)) {
        cJSON_Delete(model);
        return false;
    }
    return true;
}

/* Adds Subject, TextBody and HtmlBody, or the template that replaces
 * them. */
static bool add_content(cJSON *root, const outbox_message *message)
{
    if (message->template_name != NULL)
        return add_template(root, message);
    return cJSON_AddStringToObject(root, "Subject",
                                   message->subject ? message->subject : "")
               != NULL
           && add_text_reference(root, "TextBody", message->body_text)
           && add_text_reference(root, "HtmlBody", message->body_html);
}

static bool build_body_tree(cJSON *root, const outbox_message *message,
                            const char *stream, const outbox_logger *logger,
                            char **encoded)
{
    return add_from(root, &message->sender)
           && add_address_list(root, "To", message->to.items,
                               message->to.count)
           && add_address_list(root, "Cc", message->cc.items,
                               message->cc.count)
           && add_address_list(root, "Bcc", message->bcc.items,
                               message->bcc.count)
           && add_address_list(root, "ReplyTo", message->reply_to.items,
                               message->reply_to.count)
           && add_content(root, message)
           && add_headers(root, message, logger)
           && add_metadata(root, message, logger)
           && add_attachments(root, message, encoded)
           && cJSON_AddStringToObject(root, "MessageStream", stream) != NULL;
}

/* Prints root without formatting. A buffer sized for the message up front
 * spares cJSON from doubling it, which matters for large attachments. */
static char *print_body(const cJSON *root, size_t estimate)
{
    size_t prebuffer = add_size(add_size(estimate, estimate / 8), 4096);

    if (prebuffer > INT_MAX)
        return cJSON_PrintUnformatted(root);
    return cJSON_PrintBuffered(root, (int)prebuffer, 0);
}

static bool has_text(const char *text)
{
    return text != NULL && text[0] != '\0';
}

/* Checks what Postmark would reject, so that the message fails before a
 * request leaves, with an error that names the limit. */
static outbox_err check_message(outbox_error *err,
                                const outbox_message *message,
                                size_t encoded_size, size_t max_bytes)
{
    size_t recipients = message->to.count + message->cc.count
                        + message->bcc.count;

    if (recipients > OUTBOX_POSTMARK_MAX_RECIPIENTS)
        return outbox_error_set(err, OUTBOX_ELIMIT, "limit_exceeded",
                                "message has %zu recipients (to, cc and "
                                "bcc), over the Postmark limit of %d per "
                                "message",
                                recipients, OUTBOX_POSTMARK_MAX_RECIPIENTS);
    if (max_bytes != 0 && encoded_size > max_bytes)
        return outbox_error_set(err, OUTBOX_ELIMIT, "message_too_large",
                                "message is %zu bytes encoded (bodies, "
                                "subject, headers and base64 attachments), "
                                "over the Postmark limit of %zu bytes "
                                "(max_message_bytes)",
                                encoded_size, max_bytes);
    if (message->to.count == 0)
        return outbox_error_set(err, OUTBOX_EINVAL, "invalid_recipients",
                                "Postmark requires at least one \"to\" "
                                "recipient, and this message has none");

    /* A message with attachments still needs a body at Postmark, unless
     * a template renders one. */
    if (message->template_name == NULL && !has_text(message->body_text)
        && !has_text(message->body_html))
        return outbox_error_set(err, OUTBOX_EINVAL, "missing_body",
                                "Postmark requires body_text or body_html, "
                                "even when the message has attachments");
    return OUTBOX_EOK;
}

outbox_err outbox__postmark_body(char **json, size_t *size, outbox_error *err,
                                 const outbox_message *message,
                                 const char *stream,
                                 const outbox_logger *logger,
                                 size_t max_bytes)
{
    size_t encoded_size = encoded_message_size(message);
    char **encoded = NULL;
    cJSON *root = NULL;
    outbox_err rc;

    *json = NULL;
    *size = 0;
    rc = check_message(err, message, encoded_size, max_bytes);
    if (rc != OUTBOX_EOK)
        return rc;

    encoded = calloc(message->attachment_count + 1, sizeof(*encoded));
    root = cJSON_CreateObject();
    if (encoded == NULL || root == NULL
        || !build_body_tree(root, message, stream, logger, encoded))
        goto nomem;
    *json = print_body(root, encoded_size);
    if (*json == NULL)
        goto nomem;
    *size = strlen(*json);
    goto cleanup;

nomem:
    rc = outbox_error_set(err, OUTBOX_ENOMEM, "internal",
                          "out of memory while building the Postmark "
                          "request body");
cleanup:
    cJSON_Delete(root);
    for (size_t i = 0; encoded != NULL && i < message->attachment_count; i++)
        free(encoded[i]);
    free(encoded);
    return rc;
}
