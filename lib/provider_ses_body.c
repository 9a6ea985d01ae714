/*
 * provider_ses_body.c - the JSON body of an SES v2 SendEmail request,
 * built from a message with cJSON.
 *
 * The body has FromEmailAddress, Destination (to, cc and bcc in one
 * request), ReplyToAddresses, Content, EmailTags and ConfigurationSetName,
 * in that order. Lists that would be empty are left out. SES wants
 * addresses and header values in ASCII, so display names and non-ASCII
 * header values become RFC 2047 encoded words, joined by a space instead of
 * the fold that lib/header.c puts between them.
 *
 * Content is Simple, Raw, or Template for a message that names an SES
 * template. Template content carries the template's name, its data as a
 * JSON string, the extra headers and the attachments, and the template
 * brings its own subject and bodies.
 *
 * SES replaces the Message-ID of every message with its own, so neither
 * Simple nor Raw content can keep the outbox's Message-ID. The MessageId
 * of the response, which SES events repeat, is what identifies the mail.
 */
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "internal.h"
#include "mime.h"
#include "provider_ses.h"

/* Buffers that the JSON tree refers to without a copy. */
typedef struct body_parts {
    char **header_values;     /* encoded extra header values */
    char **attachments;       /* base64 of each attachment (not Raw) */
    char *raw;                /* base64 of the MIME message (Raw) */
} body_parts;

/* TemplateData when the row has no template_data. */
static const char empty_template_data[] = "{}";

static size_t add_size(size_t a, size_t b)
{
    return a > SIZE_MAX - b ? SIZE_MAX : a + b;
}

static size_t text_size(const char *text)
{
    return text != NULL ? strlen(text) : 0;
}

/* Size of n bytes as a MIME base64 body: lines of 76 and a CRLF each. */
static size_t mime_base64_size(size_t n)
{
    size_t encoded = outbox__base64_size(n);

    return add_size(encoded, 2 * ((encoded + 75) / 76));
}

/* Estimate of the message's size as SES counts it against its cap: the
 * subject, the bodies, the template data, the extra headers and the
 * attachments as MIME base64. The rest of the MIME framing adds about a
 * kilobyte. */
static size_t estimated_message_size(const outbox_message *message)
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
                         mime_base64_size(message->attachments[i].size));
    return total;
}

/* Removes every CRLF from text in place, keeping the space after it. */
static char *unfold(char *text)
{
    size_t used = 0;

    if (text == NULL)
        return NULL;
    for (size_t i = 0; text[i] != '\0'; i++) {
        if (text[i] == '\r' && text[i + 1] == '\n') {
            i++;
            continue;
        }
        text[used++] = text[i];
    }
    text[used] = '\0';
    return text;
}

/* ------------------------------------------------------------------ */
/* Simple or Raw                                                       */
/* ------------------------------------------------------------------ */

/* Returns true if SES accepts name as a message header name. */
static bool header_name_fits(const char *name)
{
    size_t length = text_size(name);

    if (length == 0 || length > OUTBOX_SES_MAX_HEADER_NAME)
        return false;
    for (size_t i = 0; i < length; i++) {
        if (name[i] < '!' || name[i] > '~' || name[i] == ':')
            return false;
    }
    return true;
}

/* Returns true if text is printable ASCII, spaces included. */
static bool is_printable_ascii(const char *text)
{
    for (const char *p = text; *p != '\0'; p++) {
        if (*p < ' ' || *p > '~')
            return false;
    }
    return true;
}

/*
 * Encodes every extra header value into parts->header_values. Printable
 * ASCII stays as it is, as mime.c writes it, so that structured values
 * such as a long List-Unsubscribe URL keep their form. Other values become
 * encoded words.
 */
static bool encode_header_values(body_parts *parts,
                                 const outbox_message *message)
{
    if (message->header_count == 0)
        return true;
    parts->header_values = calloc(message->header_count, sizeof(char *));
    if (parts->header_values == NULL)
        return false;
    for (size_t i = 0; i < message->header_count; i++) {
        const char *value = message->headers[i].value;

        if (value == NULL)
            value = "";
        parts->header_values[i] =
            is_printable_ascii(value)
                ? outbox__strdup(value)
                : unfold(outbox_header_encode_text(value));
        if (parts->header_values[i] == NULL)
            return false;
    }
    return true;
}

/* Returns why the Headers and Attachments of Simple or Template content
 * cannot carry the message's, or NULL if they can. */
static const char *parts_obstacle(const outbox_message *message,
                                  const body_parts *parts)
{
    if (message->header_count > OUTBOX_SES_MAX_HEADERS)
        return "more than 15 extra headers";
    for (size_t i = 0; i < message->header_count; i++) {
        size_t length = strlen(parts->header_values[i]);

        if (!header_name_fits(message->headers[i].name))
            return "a header name that SES does not accept";
        if (length == 0 || length > OUTBOX_SES_MAX_HEADER_VALUE)
            return "a header value empty or over 870 characters encoded";
    }
    for (size_t i = 0; i < message->attachment_count; i++) {
        const outbox_attachment *a = &message->attachments[i];
        size_t name = text_size(a->filename);

        if (name == 0 || name > OUTBOX_SES_MAX_FILENAME)
            return "an attachment name empty or over 255 bytes";
        if (text_size(a->content_id) > OUTBOX_SES_MAX_CONTENT_ID)
            return "a Content-ID over 78 bytes";
    }
    return NULL;
}

/* Returns why Simple content cannot carry message, or NULL if it can. */
static const char *simple_obstacle(const outbox_message *message,
                                   const body_parts *parts)
{
    if (message->subject == NULL || message->subject[0] == '\0')
        return "no subject";

    /* SES would send such a subject as it is, and mail readers would
     * decode it. mime.c encodes the whole subject instead. */
    if (strstr(message->subject, "=?") != NULL)
        return "a subject that contains \"=?\"";
    return parts_obstacle(message, parts);
}

/* ------------------------------------------------------------------ */
/* Addresses                                                           */
/* ------------------------------------------------------------------ */

static bool add_address(cJSON *parent, const char *key,
                        const outbox_address *address)
{
    char *text = unfold(outbox_header_format_address(address));
    bool ok = text != NULL
              && cJSON_AddStringToObject(parent, key, text) != NULL;

    free(text);
    return ok;
}

/* Adds parent[key] = ["name <email>", ...] when list is not empty. */
static bool add_address_list(cJSON *parent, const char *key,
                             const outbox_address_list *list)
{
    cJSON *array;

    if (list->count == 0)
        return true;
    array = cJSON_AddArrayToObject(parent, key);
    if (array == NULL)
        return false;
    for (size_t i = 0; i < list->count; i++) {
        char *text = unfold(outbox_header_format_address(&list->items[i]));
        cJSON *item = text != NULL ? cJSON_CreateString(text) : NULL;

        free(text);
        if (item == NULL || !cJSON_AddItemToArray(array, item)) {
            cJSON_Delete(item);
            return false;
        }
    }
    return true;
}

static bool add_destination(cJSON *root, const outbox_message *message)
{
    cJSON *destination = cJSON_AddObjectToObject(root, "Destination");

    return destination != NULL
           && add_address_list(destination, "ToAddresses", &message->to)
           && add_address_list(destination, "CcAddresses", &message->cc)
           && add_address_list(destination, "BccAddresses", &message->bcc);
}

/* ------------------------------------------------------------------ */
/* Simple content                                                      */
/* ------------------------------------------------------------------ */

/* Adds parent[key] = {"Data": text, "Charset": "UTF-8"}, referring to
 * text without a copy. */
static bool add_text(cJSON *parent, const char *key, const char *text)
{
    cJSON *object = cJSON_AddObjectToObject(parent, key);
    cJSON *data;

    if (object == NULL)
        return false;
    data = cJSON_CreateStringReference(text);
    if (data == NULL || !cJSON_AddItemToObject(object, "Data", data)) {
        cJSON_Delete(data);
        return false;
    }
    return cJSON_AddStringToObject(object, "Charset", "UTF-8") != NULL;
}

static bool add_simple_body(cJSON *simple, const outbox_message *message)
{
    cJSON *body = cJSON_AddObjectToObject(simple, "Body");
    bool has_text = message->body_text != NULL && message->body_text[0];
    bool has_html = message->body_html != NULL && message->body_html[0];

    return body != NULL
           && (!has_text || add_text(body, "Text", message->body_text))
           && (!has_html || add_text(body, "Html", message->body_html));
}

static bool add_headers(cJSON *simple, const outbox_message *message,
                        const body_parts *parts)
{
    cJSON *list;

    if (message->header_count == 0)
        return true;
    list = cJSON_AddArrayToObject(simple, "Headers");
    if (list == NULL)
        return false;
    for (size_t i = 0; i < message->header_count; i++) {
        cJSON *header = cJSON_CreateObject();

        if (header == NULL || !cJSON_AddItemToArray(list, header)) {
            cJSON_Delete(header);
            return false;
        }
        if (cJSON_AddStringToObject(header, "Name", message->headers[i].name)
                == NULL
            || cJSON_AddStringToObject(header, "Value",
                                       parts->header_values[i])
                   == NULL)
            return false;
    }
    return true;
}

/* Adds one attachment. *encoded receives the base64 text, which the JSON
 * tree refers to without a copy. */
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
    if (*encoded == NULL
        || cJSON_AddStringToObject(object, "FileName", attachment->filename)
               == NULL)
        return false;
    content = cJSON_CreateStringReference(*encoded);
    if (content == NULL
        || !cJSON_AddItemToObject(object, "RawContent", content)) {
        cJSON_Delete(content);
        return false;
    }
    if (attachment->content_type != NULL
        && cJSON_AddStringToObject(object, "ContentType",
                                   attachment->content_type)
               == NULL)
        return false;
    if (cJSON_AddStringToObject(object, "ContentDisposition",
                                inline_part ? "INLINE" : "ATTACHMENT")
        == NULL)
        return false;
    return !inline_part
           || cJSON_AddStringToObject(object, "ContentId",
                                      attachment->content_id)
                  != NULL;
}

/* Adds Headers and Attachments, which Simple and Template content share,
 * to object. */
static bool add_headers_and_attachments(cJSON *object,
                                        const outbox_message *message,
                                        body_parts *parts)
{
    cJSON *list;

    if (!add_headers(object, message, parts))
        return false;
    if (message->attachment_count == 0)
        return true;
    parts->attachments = calloc(message->attachment_count, sizeof(char *));
    list = cJSON_AddArrayToObject(object, "Attachments");
    if (parts->attachments == NULL || list == NULL)
        return false;
    for (size_t i = 0; i < message->attachment_count; i++) {
        if (!add_attachment(list, &message->attachments[i],
                            &parts->attachments[i]))
            return false;
    }
    return true;
}

static bool add_simple(cJSON *content, const outbox_message *message,
                       body_parts *parts)
{
    cJSON *simple = cJSON_AddObjectToObject(content, "Simple");

    return simple != NULL && add_text(simple, "Subject", message->subject)
           && add_simple_body(simple, message)
           && add_headers_and_attachments(simple, message, parts);
}

/* Adds Template content. SES takes TemplateData as a string that contains
 * the JSON object, so the row's text is sent as it is. */
static bool add_template(cJSON *content, const outbox_message *message,
                         body_parts *parts)
{
    cJSON *template = cJSON_AddObjectToObject(content, "Template");
    const char *data = message->template_data != NULL
                           ? message->template_data
                           : empty_template_data;
    cJSON *data_item;

    if (template == NULL
        || cJSON_AddStringToObject(template, "TemplateName",
                                   message->template_name)
               == NULL)
        return false;
    data_item = cJSON_CreateStringReference(data);
    if (data_item == NULL
        || !cJSON_AddItemToObject(template, "TemplateData", data_item)) {
        cJSON_Delete(data_item);
        return false;
    }
    return add_headers_and_attachments(template, message, parts);
}

/* ------------------------------------------------------------------ */
/* Raw content                                                         */
/* ------------------------------------------------------------------ */

/*
 * Writes the message as MIME into parts->raw, in base64. The MIME text is
 * freed as soon as it is encoded, so that only one large copy besides the
 * JSON exists at a time.
 */
static outbox_err encode_raw(body_parts *parts, outbox_error *err,
                             const outbox_message *message,
                             const outbox_ses_body_options *options)
{
    char seed[64];
    char *mime = NULL;
    size_t mime_size = 0;
    outbox_err rc;

    /* Boundaries are safe whatever the seed, as mime.c explains. */
    snprintf(seed, sizeof(seed), "%" PRId64 "-%d", message->id,
             message->attempt);
    rc = outbox__mime_write(&mime, &mime_size, err, message, options->date,
                            seed);
    if (rc != OUTBOX_EOK)
        return rc;
    if (options->max_message_bytes != 0
        && mime_size > options->max_message_bytes) {
        free(mime);
        return outbox_error_set(err, OUTBOX_ELIMIT, "message_too_large",
                                "message is %zu bytes as MIME, over the SES "
                                "cap of %zu bytes (max_message_bytes)",
                                mime_size, options->max_message_bytes);
    }
    parts->raw = outbox__base64((const unsigned char *)mime, mime_size,
                                NULL);
    free(mime);
    if (parts->raw == NULL)
        return outbox_error_set(err, OUTBOX_ENOMEM, "internal",
                                "out of memory while encoding message %"
                                PRId64, message->id);
    return OUTBOX_EOK;
}

static bool add_raw(cJSON *content, const body_parts *parts)
{
    cJSON *raw = cJSON_AddObjectToObject(content, "Raw");
    cJSON *data = raw != NULL ? cJSON_CreateStringReference(parts->raw)
                              : NULL;

    if (data == NULL || !cJSON_AddItemToObject(raw, "Data", data)) {
        cJSON_Delete(data);
        return false;
    }
    return true;
}

/* ------------------------------------------------------------------ */
/* Body                                                                */
/* ------------------------------------------------------------------ */

static void free_parts(body_parts *parts, const outbox_message *message)
{
    for (size_t i = 0; parts->header_values && i < message->header_count;
         i++)
        free(parts->header_values[i]);
    for (size_t i = 0; parts->attachments && i < message->attachment_count;
         i++)
        free(parts->attachments[i]);
    free(parts->header_values);
    free(parts->attachments);
    free(parts->raw);
}

static bool build_body_tree(cJSON *root, const outbox_message *message,
                            const outbox_ses_body_options *options,
                            const outbox_logger *logger, body_parts *parts)
{
    cJSON *content;

    if (!add_address(root, "FromEmailAddress", &message->sender)
        || !add_destination(root, message))
        return false;

    /* Raw content carries Reply-To in its header section. */
    if (parts->raw == NULL
        && !add_address_list(root, "ReplyToAddresses", &message->reply_to))
        return false;
    content = cJSON_AddObjectToObject(root, "Content");
    if (content == NULL)
        return false;
    if (message->template_name != NULL) {
        if (!add_template(content, message, parts))
            return false;
    } else if (parts->raw != NULL ? !add_raw(content, parts)
                                  : !add_simple(content, message, parts)) {
        return false;
    }
    if (!outbox__ses_add_tags(root, message, logger))
        return false;
    return options->configuration_set == NULL
           || cJSON_AddStringToObject(root, "ConfigurationSetName",
                                      options->configuration_set)
                  != NULL;
}

/* Checks the caps that apply before anything is built. */
static outbox_err check_caps(outbox_error *err, const outbox_message *message,
                             const outbox_ses_body_options *options)
{
    size_t recipients = outbox_message_recipient_count(message);
    size_t estimate = estimated_message_size(message);

    if (text_size(message->template_data) > OUTBOX_SES_MAX_TEMPLATE_DATA)
        return outbox_error_set(err, OUTBOX_ELIMIT, "limit_exceeded",
                                "template_data has %zu bytes, over the SES "
                                "cap of %d bytes for TemplateData",
                                strlen(message->template_data),
                                OUTBOX_SES_MAX_TEMPLATE_DATA);
    if (recipients > OUTBOX_SES_MAX_RECIPIENTS)
        return outbox_error_set(err, OUTBOX_ELIMIT, "limit_exceeded",
                                "message has %zu recipients in to, cc and "
                                "bcc, over the SES cap of %d per message",
                                recipients, OUTBOX_SES_MAX_RECIPIENTS);
    if (options->max_message_bytes != 0
        && estimate > options->max_message_bytes)
        return outbox_error_set(err, OUTBOX_ELIMIT, "message_too_large",
                                "message is %zu bytes encoded (subject, "
                                "bodies, headers and base64 attachments), "
                                "over the SES cap of %zu bytes "
                                "(max_message_bytes)",
                                estimate, options->max_message_bytes);
    return OUTBOX_EOK;
}

/* Prints root without formatting, into a buffer sized up front so that
 * cJSON does not double it for large attachments. */
static char *print_body(const cJSON *root, size_t estimate)
{
    size_t prebuffer = add_size(add_size(estimate, estimate / 3), 4096);

    if (prebuffer > INT_MAX)
        return cJSON_PrintUnformatted(root);
    return cJSON_PrintBuffered(root, (int)prebuffer, 0);
}

/*
 * Picks Template content for a message with a template, else Simple
 * content, else Raw content, which it encodes into parts->raw. Raw content
 * cannot name a template, so a template message whose headers or
 * attachments do not fit Template content fails.
 */
static outbox_err choose_content(body_parts *parts, outbox_error *err,
                                 const outbox_message *message,
                                 const outbox_ses_body_options *options,
                                 const outbox_logger *logger)
{
    const char *obstacle;

    if (message->template_name != NULL) {
        obstacle = parts_obstacle(message, parts);
        if (obstacle == NULL)
            return OUTBOX_EOK;
        return outbox_error_set(err, OUTBOX_EINVAL, "invalid_template",
                                "template \"%.64s\": SES Template content "
                                "cannot carry %s; send the row with "
                                "body_text or body_html instead",
                                message->template_name, obstacle);
    }
    obstacle = simple_obstacle(message, parts);
    if (obstacle == NULL)
        return OUTBOX_EOK;
    outbox_log(logger, OUTBOX_LOG_DEBUG,
               "id=%" PRId64 " SES content is Raw: %s", message->id,
               obstacle);
    return encode_raw(parts, err, message, options);
}

outbox_err outbox__ses_body(char **json, size_t *size, outbox_error *err,
                            const outbox_message *message,
                            const outbox_ses_body_options *options,
                            const outbox_logger *logger)
{
    body_parts parts = {NULL, NULL, NULL};
    cJSON *root = NULL;
    outbox_err rc;

    *json = NULL;
    *size = 0;
    rc = check_caps(err, message, options);
    if (rc != OUTBOX_EOK)
        return rc;
    if (!encode_header_values(&parts, message))
        goto nomem;

    rc = choose_content(&parts, err, message, options, logger);
    if (rc != OUTBOX_EOK)
        goto cleanup;

    root = cJSON_CreateObject();
    if (root == NULL
        || !build_body_tree(root, message, options, logger, &parts))
        goto nomem;
    *json = print_body(root, estimated_message_size(message));
    if (*json == NULL)
        goto nomem;
    *size = strlen(*json);
    goto cleanup;

nomem:
    rc = outbox_error_set(err, OUTBOX_ENOMEM, "internal",
                          "out of memory while building the SES request for "
                          "message %" PRId64, message->id);
cleanup:
    cJSON_Delete(root);
    free_parts(&parts, message);
    return rc;
}
