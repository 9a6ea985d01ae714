/*
 * provider_sendgrid_body.c - the JSON body of a SendGrid v3 mail send
 * request, built from a message with cJSON.
 *
 * The body has one personalization with the recipients and custom_args
 * (the outbox id, which webhook events carry back, and the metadata), then
 * from, reply_to or reply_to_list, subject, template_id, content,
 * attachments and headers. A template's data goes into the personalization
 * as dynamic_template_data. Keys whose list or object would be empty are
 * left out. The bodies and the base64 attachments are referred to, not
 * copied, while the tree is printed.
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "internal.h"
#include "provider_sendgrid.h"

/* Keys of SendGrid's event webhook objects. A custom arg with one of these
 * names is overwritten in the events, so it would never come back. The
 * outbox_id key is ours and is reserved for the same reason. */
static const char *const reserved_custom_args[] = {
    "event",        "email",       "timestamp",   "sg_event_id",
    "sg_message_id", "smtp-id",    "category",    "type",
    "reason",       "status",      "response",    "attempt",
    "url",          "useragent",   "ip",          "tls",
    "cert_err",     "asm_group_id", "marketing_campaign_id", "pool",
    "send_at",      "outbox_id",
};

static size_t add_size(size_t a, size_t b)
{
    return a > SIZE_MAX - b ? SIZE_MAX : a + b;
}

static size_t text_size(const char *text)
{
    return text != NULL ? strlen(text) : 0;
}

/* Size of the message as SendGrid counts it against its cap: the bodies,
 * the subject, the extra headers and the attachments after base64. */
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

/*
 * SendGrid reads a recipient name that contains a comma or a semicolon as
 * a list of addresses and drops the message as invalid. The workaround its
 * own client libraries adopted is an RFC 5322 quoted string.
 */
static char *quote_display_name(const char *name)
{
    size_t length = strlen(name);
    char *quoted;
    size_t used = 0;

    if (strpbrk(name, ",;") == NULL)
        return outbox__strdup(name);
    if (length > (SIZE_MAX - 3) / 2)
        return NULL;
    quoted = malloc(2 * length + 3);
    if (quoted == NULL)
        return NULL;
    quoted[used++] = '"';
    for (size_t i = 0; i < length; i++) {
        if (name[i] == '"' || name[i] == '\\')
            quoted[used++] = '\\';
        quoted[used++] = name[i];
    }
    quoted[used++] = '"';
    quoted[used] = '\0';
    return quoted;
}

/* Builds {"email": ..., "name": ...}; NULL when out of memory. */
static cJSON *address_object(const outbox_address *address, bool recipient)
{
    cJSON *object = cJSON_CreateObject();
    char *name = NULL;

    if (object == NULL)
        return NULL;
    if (cJSON_AddStringToObject(object, "email", address->email) == NULL)
        goto fail;
    if (address->name != NULL && address->name[0] != '\0') {
        name = recipient ? quote_display_name(address->name)
                         : outbox__strdup(address->name);
        if (name == NULL
            || cJSON_AddStringToObject(object, "name", name) == NULL)
            goto fail;
    }
    free(name);
    return object;

fail:
    free(name);
    cJSON_Delete(object);
    return NULL;
}

/* Adds parent[key] = [addresses] when list is not empty. */
static bool add_address_list(cJSON *parent, const char *key,
                             const outbox_address_list *list, bool recipient)
{
    cJSON *array;

    if (list->count == 0)
        return true;
    array = cJSON_AddArrayToObject(parent, key);
    if (array == NULL)
        return false;
    for (size_t i = 0; i < list->count; i++) {
        cJSON *object = address_object(&list->items[i], recipient);

        if (object == NULL || !cJSON_AddItemToArray(array, object)) {
            cJSON_Delete(object);
            return false;
        }
    }
    return true;
}

static bool add_address(cJSON *parent, const char *key,
                        const outbox_address *address)
{
    cJSON *object = address_object(address, false);

    if (object == NULL || !cJSON_AddItemToObject(parent, key, object)) {
        cJSON_Delete(object);
        return false;
    }
    return true;
}

static bool is_reserved_custom_arg(const char *key)
{
    size_t count = sizeof(reserved_custom_args) / sizeof(*reserved_custom_args);

    for (size_t i = 0; i < count; i++) {
        if (strcmp(key, reserved_custom_args[i]) == 0)
            return true;
    }
    return false;
}

/* Adds one metadata pair to custom_args, renaming a reserved key. */
static bool add_custom_arg(cJSON *args, const outbox_field *field,
                           const outbox_message *message,
                           const outbox_logger *logger)
{
    char renamed[128];
    const char *key = field->name;

    if (key == NULL)
        return true;
    if (is_reserved_custom_arg(key)) {
        snprintf(renamed, sizeof(renamed), "erp_%s", key);
        outbox_log(logger, OUTBOX_LOG_WARN,
                   "id=%lld metadata key \"%s\" is a SendGrid event field, "
                   "so it is sent as custom arg \"%s\"",
                   (long long)message->id, key, renamed);
        key = renamed;
    }
    if (cJSON_GetObjectItemCaseSensitive(args, key) != NULL) {
        outbox_log(logger, OUTBOX_LOG_WARN,
                   "id=%lld metadata key \"%.64s\" is given twice; the "
                   "later value is not sent",
                   (long long)message->id, key);
        return true;
    }
    return cJSON_AddStringToObject(args, key,
                                   field->value ? field->value : "")
           != NULL;
}

/* Adds custom_args: the outbox id, which webhook events carry back, and
 * the metadata. SendGrid rejects custom args that are not strings. */
static bool add_custom_args(cJSON *personalization,
                            const outbox_message *message,
                            const outbox_logger *logger)
{
    cJSON *args = cJSON_AddObjectToObject(personalization, "custom_args");
    char id[24];

    if (args == NULL)
        return false;
    snprintf(id, sizeof(id), "%lld", (long long)message->id);
    if (cJSON_AddStringToObject(args, "outbox_id", id) == NULL)
        return false;
    for (size_t i = 0; i < message->metadata_count; i++) {
        if (!add_custom_arg(args, &message->metadata[i], message, logger))
            return false;
    }
    return true;
}

/* Adds the row's template_data as dynamic_template_data, the values that
 * a dynamic template renders. */
static bool add_template_data(cJSON *personalization,
                              const outbox_message *message)
{
    cJSON *data;

    if (message->template_data == NULL)
        return true;
    data = cJSON_Parse(message->template_data);
    if (data == NULL
        || !cJSON_AddItemToObject(personalization, "dynamic_template_data",
                                  data)) {
        cJSON_Delete(data);
        return false;
    }
    return true;
}

static bool add_personalizations(cJSON *root, const outbox_message *message,
                                 const outbox_logger *logger)
{
    cJSON *list = cJSON_AddArrayToObject(root, "personalizations");
    cJSON *personalization = cJSON_CreateObject();

    if (list == NULL || personalization == NULL
        || !cJSON_AddItemToArray(list, personalization)) {
        cJSON_Delete(personalization);
        return false;
    }
    return add_address_list(personalization, "to", &message->to, true)
           && add_address_list(personalization, "cc", &message->cc, true)
           && add_address_list(personalization, "bcc", &message->bcc, true)
           && add_custom_args(personalization, message, logger)
           && add_template_data(personalization, message);
}

/* Adds {"type": type, "value": text}, referring to text without a copy. */
static bool add_content_part(cJSON *content, const char *type,
                             const char *text)
{
    cJSON *part;
    cJSON *value;

    if (text == NULL || text[0] == '\0')
        return true;
    part = cJSON_CreateObject();
    if (part == NULL || !cJSON_AddItemToArray(content, part)) {
        cJSON_Delete(part);
        return false;
    }
    if (cJSON_AddStringToObject(part, "type", type) == NULL)
        return false;
    value = cJSON_CreateStringReference(text);
    if (value == NULL || !cJSON_AddItemToObject(part, "value", value)) {
        cJSON_Delete(value);
        return false;
    }
    return true;
}

/* SendGrid requires text/plain before text/html. */
static bool add_content(cJSON *root, const outbox_message *message)
{
    cJSON *content;

    if ((message->body_text == NULL || message->body_text[0] == '\0')
        && (message->body_html == NULL || message->body_html[0] == '\0'))
        return true;
    content = cJSON_AddArrayToObject(root, "content");
    return content != NULL
           && add_content_part(content, "text/plain", message->body_text)
           && add_content_part(content, "text/html", message->body_html);
}

/* Adds one attachment. *encoded receives the base64 text, which the JSON
 * tree refers to without a copy, so the caller frees it after printing. */
static bool add_attachment(cJSON *list, const outbox_attachment *attachment,
                           char **encoded)
{
    cJSON *object = cJSON_CreateObject();
    cJSON *content;
    bool inline_part = attachment->content_id != NULL;

    if (object == NULL || !cJSON_AddItemToArray(list, object)) {
        cJSON_Delete(object);
        return false;
    }
    *encoded = outbox__base64(attachment->content, attachment->size, NULL);
    if (*encoded == NULL)
        return false;
    content = cJSON_CreateStringReference(*encoded);
    if (content == NULL || !cJSON_AddItemToObject(object, "content", content)) {
        cJSON_Delete(content);
        return false;
    }
    if ((attachment->filename != NULL
         && cJSON_AddStringToObject(object, "filename", attachment->filename)
                == NULL)
        || (attachment->content_type != NULL
            && cJSON_AddStringToObject(object, "type",
                                       attachment->content_type)
                   == NULL))
        return false;
    if (cJSON_AddStringToObject(object, "disposition",
                                inline_part ? "inline" : "attachment")
        == NULL)
        return false;
    return !inline_part
           || cJSON_AddStringToObject(object, "content_id",
                                      attachment->content_id)
                  != NULL;
}

static bool add_attachments(cJSON *root, const outbox_message *message,
                            char **encoded)
{
    cJSON *list;

    if (message->attachment_count == 0)
        return true;
    list = cJSON_AddArrayToObject(root, "attachments");
    if (list == NULL)
        return false;
    for (size_t i = 0; i < message->attachment_count; i++) {
        if (!add_attachment(list, &message->attachments[i], &encoded[i]))
            return false;
    }
    return true;
}

/* Adds "Message-ID": "<id>". */
static bool add_message_id(cJSON *headers, const char *id)
{
    size_t length = strlen(id);
    char *value = malloc(length + 3);
    bool ok;

    if (value == NULL)
        return false;
    value[0] = '<';
    memcpy(value + 1, id, length);
    memcpy(value + 1 + length, ">", 2);
    ok = cJSON_AddStringToObject(headers, "Message-ID", value) != NULL;
    free(value);
    return ok;
}

/* Adds the extra headers, and Message-ID so that the delivered mail
 * carries the id that the store keeps for this message. */
static bool add_headers(cJSON *root, const outbox_message *message,
                        const outbox_logger *logger)
{
    bool has_id = message->message_id != NULL && message->message_id[0];
    cJSON *headers;

    if (message->header_count == 0 && !has_id)
        return true;
    headers = cJSON_AddObjectToObject(root, "headers");
    if (headers == NULL)
        return false;
    for (size_t i = 0; i < message->header_count; i++) {
        const outbox_field *header = &message->headers[i];

        if (has_id && outbox__strcasecmp(header->name, "Message-ID") == 0) {
            outbox_log(logger, OUTBOX_LOG_WARN,
                       "id=%lld header Message-ID from the row is replaced "
                       "by the message id the outbox assigned",
                       (long long)message->id);
            continue;
        }
        if (header->name == NULL)
            continue;
        if (cJSON_AddStringToObject(headers, header->name,
                                    header->value ? header->value : "")
            == NULL)
            return false;
    }
    return !has_id || add_message_id(headers, message->message_id);
}

static bool build_body_tree(cJSON *root, const outbox_message *message,
                            const outbox_logger *logger, char **encoded)
{
    bool ok = add_personalizations(root, message, logger)
              && add_address(root, "from", &message->sender);

    if (ok && message->reply_to.count == 1)
        ok = add_address(root, "reply_to", &message->reply_to.items[0]);
    else if (ok && message->reply_to.count > 1)
        ok = add_address_list(root, "reply_to_list", &message->reply_to,
                              false);
    /* A dynamic template has its own subject, which an empty one would
     * override. */
    if (ok && (message->template_name == NULL || message->subject[0] != '\0'))
        ok = cJSON_AddStringToObject(root, "subject", message->subject)
             != NULL;
    if (ok && message->template_name != NULL)
        ok = cJSON_AddStringToObject(root, "template_id",
                                     message->template_name) != NULL;
    return ok
           && add_content(root, message)
           && add_attachments(root, message, encoded)
           && add_headers(root, message, logger);
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

outbox_err outbox__sendgrid_body(char **json, size_t *size, outbox_error *err,
                                 const outbox_message *message,
                                 const outbox_logger *logger,
                                 size_t max_bytes)
{
    size_t encoded_size = encoded_message_size(message);
    char **encoded = NULL;
    cJSON *root = NULL;
    outbox_err rc = OUTBOX_EOK;

    *json = NULL;
    *size = 0;
    if (max_bytes != 0 && encoded_size > max_bytes)
        return outbox_error_set(err, OUTBOX_ELIMIT, "message_too_large",
                                "message is %zu bytes encoded (bodies, "
                                "subject, headers and base64 attachments), "
                                "over the SendGrid cap of %zu bytes "
                                "(max_message_bytes)",
                                encoded_size, max_bytes);
    if (message->to.count == 0)
        return outbox_error_set(err, OUTBOX_EINVAL, "invalid_recipients",
                                "SendGrid requires at least one \"to\" "
                                "recipient, and this message has none");

    encoded = calloc(message->attachment_count + 1, sizeof(*encoded));
    root = cJSON_CreateObject();
    if (encoded == NULL || root == NULL
        || !build_body_tree(root, message, logger, encoded))
        goto nomem;
    *json = print_body(root, encoded_size);
    if (*json == NULL)
        goto nomem;
    *size = strlen(*json);
    goto cleanup;

nomem:
    rc = outbox_error_set(err, OUTBOX_ENOMEM, "internal",
                          "out of memory while building the SendGrid "
                          "request body");
cleanup:
    cJSON_Delete(root);
    for (size_t i = 0; encoded != NULL && i < message->attachment_count; i++)
        free(encoded[i]);
    free(encoded);
    return rc;
}
