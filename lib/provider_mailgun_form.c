/*
 * provider_mailgun_form.c - the fields of a Mailgun send request, built
 * from a message as a list that provider_mailgun.c turns into libcurl's
 * multipart/form-data (curl_mime) and that tests read directly.
 *
 * Fields, in the order they are sent (one field per address, since
 * Mailgun takes repeated fields as a list):
 *   from, to..., cc..., bcc..., subject, text, html
 *   template          for a message with a template, in place of text
 *                     and html; subject is then sent only when the row
 *                     has one, so an empty one cannot hide a subject
 *                     stored with the template
 *   t:variables       the row's template_data, the JSON object that the
 *                     template fills in
 *   h:Reply-To        every reply-to address, comma-separated
 *   h:<Name>          each extra header of the row
 *   h:Message-Id      <message_id>, the id that the row stores, for the
 *                     delivered mail to carry
 *   v:outbox_id       the row id, which Mailgun returns in the
 *                     user-variables of every webhook event
 *   v:<key>           each metadata entry (the message build rejects a
 *                     metadata key "outbox_id")
 *   attachment        a file part per attachment
 *   inline            a file part per inline image
 *
 * Mailgun names an inline part's Content-ID after the part's filename, so
 * HTML refers to it as cid:<filename>. The ERP writes cid:<content_id>,
 * so an inline part is sent with the content ID as its filename. The
 * filename of the row does not reach the recipient for inline images.
 *
 * Mailgun sends v: fields in a visible X-Mailgun-Variables header, so
 * metadata is readable by anyone who views the delivered mail's source.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "provider_mailgun.h"

/* ------------------------------------------------------------------ */
/* Addresses                                                           */
/* ------------------------------------------------------------------ */

/* RFC 5322 atext, and any byte of a UTF-8 sequence (RFC 6532). */
static bool is_atext(unsigned char c)
{
    if (c >= 0x80)
        return true;
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
        || (c >= '0' && c <= '9'))
        return true;
    return c != '\0' && strchr("!#$%&'*+-/=?^_`{|}~", c) != NULL;
}

/* Returns true if name can be written as a phrase of atoms. */
static bool name_is_atoms(const char *name)
{
    for (const unsigned char *p = (const unsigned char *)name; *p; p++) {
        if (*p != ' ' && !is_atext(*p))
            return false;
    }
    return name[0] != ' ' && name[strlen(name) - 1] != ' ';
}

/*
 * Writes an address as Mailgun's address fields take it: "a@x.io",
 * "Anna Meier <a@x.io>" or "\"Meier, Anna\" <a@x.io>". A name that is not
 * a plain phrase (a comma, a dot, a quote) becomes a quoted string, so
 * that Mailgun does not split it into two addresses. Non-ASCII names stay
 * UTF-8, and Mailgun encodes them for the header.
 */
static outbox_err append_address(outbox_buf *buf,
                                 const outbox_address *address)
{
    const char *name = address->name;
    outbox_err rc = OUTBOX_EOK;

    if (name == NULL || name[0] == '\0')
        return outbox__buf_puts(buf, address->email);
    if (name_is_atoms(name))
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

/* ------------------------------------------------------------------ */
/* The list of fields                                                  */
/* ------------------------------------------------------------------ */

/* Adds a field whose value form owns; takes value even on failure. */
static bool add_owned(outbox_mailgun_form *form, const char *name,
                      char *value, size_t size)
{
    outbox_mailgun_part *part;

    if (value == NULL || form->count == form->capacity) {
        free(value);
        return false;
    }
    part = &form->parts[form->count];
    part->name = outbox__strdup(name);
    if (part->name == NULL) {
        free(value);
        return false;
    }
    part->owned = value;
    part->data = value;
    part->size = size;
    form->count++;
    return true;
}

/* Adds a field whose value stays in the message. */
static bool add_borrowed(outbox_mailgun_form *form, const char *name,
                         const char *data, size_t size)
{
    outbox_mailgun_part *part;

    if (form->count == form->capacity)
        return false;
    part = &form->parts[form->count];
    part->name = outbox__strdup(name);
    if (part->name == NULL)
        return false;
    part->data = data;
    part->size = size;
    form->count++;
    return true;
}

static bool add_text(outbox_mailgun_form *form, const char *name,
                     const char *text)
{
    return add_borrowed(form, name, text, strlen(text));
}

/* Adds a field "prefix:name" with a value from the message. */
static bool add_prefixed(outbox_mailgun_form *form, const char *prefix,
                         const char *name, const char *value)
{
    outbox_buf full;
    bool ok;

    outbox__buf_init(&full, SIZE_MAX);
    ok = outbox__buf_printf(&full, "%s:%s", prefix, name) == OUTBOX_EOK
         && add_text(form, full.data, value != NULL ? value : "");
    outbox__buf_free(&full);
    return ok;
}

static bool add_address_field(outbox_mailgun_form *form, const char *name,
                              const outbox_address *address)
{
    outbox_buf text;
    size_t size = 0;
    char *value;

    outbox__buf_init(&text, SIZE_MAX);
    if (append_address(&text, address) != OUTBOX_EOK) {
        outbox__buf_free(&text);
        return false;
    }
    value = outbox__buf_take(&text, &size);
    return add_owned(form, name, value, size);
}

static bool add_address_fields(outbox_mailgun_form *form, const char *name,
                               const outbox_address_list *list)
{
    for (size_t i = 0; i < list->count; i++) {
        if (!add_address_field(form, name, &list->items[i]))
            return false;
    }
    return true;
}

static bool add_reply_to(outbox_mailgun_form *form,
                         const outbox_address_list *list)
{
    outbox_buf text;
    size_t size = 0;
    char *value;
    outbox_err rc = OUTBOX_EOK;

    if (list->count == 0)
        return true;
    outbox__buf_init(&text, SIZE_MAX);
    for (size_t i = 0; rc == OUTBOX_EOK && i < list->count; i++) {
        if (i > 0)
            rc = outbox__buf_puts(&text, ", ");
        if (rc == OUTBOX_EOK)
            rc = append_address(&text, &list->items[i]);
    }
    if (rc != OUTBOX_EOK) {
        outbox__buf_free(&text);
        return false;
    }
    value = outbox__buf_take(&text, &size);
    return add_owned(form, "h:Reply-To", value, size);
}

static bool add_headers(outbox_mailgun_form *form,
                        const outbox_message *message)
{
    for (size_t i = 0; i < message->header_count; i++) {
        const outbox_field *header = &message->headers[i];

        if (header->name != NULL
            && !add_prefixed(form, "h", header->name, header->value))
            return false;
    }
    if (message->message_id != NULL && message->message_id[0] != '\0') {
        size_t size = strlen(message->message_id) + 2;
        char *value = malloc(size + 1);

        if (value != NULL)
            snprintf(value, size + 1, "<%s>", message->message_id);
        return add_owned(form, "h:Message-Id", value, size);
    }
    return true;
}

static bool add_variables(outbox_mailgun_form *form,
                          const outbox_message *message)
{
    char id[24];
    int length = snprintf(id, sizeof(id), "%lld", (long long)message->id);

    if (!add_owned(form, "v:outbox_id", outbox__strdup(id), (size_t)length))
        return false;
    for (size_t i = 0; i < message->metadata_count; i++) {
        const outbox_field *field = &message->metadata[i];

        if (field->name != NULL
            && !add_prefixed(form, "v", field->name, field->value))
            return false;
    }
    return true;
}

static bool add_files(outbox_mailgun_form *form,
                      const outbox_message *message)
{
    for (size_t i = 0; i < message->attachment_count; i++) {
        const outbox_attachment *file = &message->attachments[i];
        bool inline_part = file->content_id != NULL;

        if (!add_borrowed(form, inline_part ? "inline" : "attachment",
                          (const char *)file->content, file->size))
            return false;
        form->parts[form->count - 1].filename =
            inline_part ? file->content_id : file->filename;
        form->parts[form->count - 1].type =
            file->content_type != NULL ? file->content_type
                                       : "application/octet-stream";
    }
    return true;
}

static bool has_text(const char *text)
{
    return text != NULL && text[0] != '\0';
}

/* Adds subject, text and html, or the template that renders them. */
static bool add_content(outbox_mailgun_form *form,
                        const outbox_message *message)
{
    if (message->template_name != NULL)
        return (!has_text(message->subject)
                || add_text(form, "subject", message->subject))
               && add_text(form, "template", message->template_name)
               && (message->template_data == NULL
                   || add_text(form, "t:variables",
                               message->template_data));
    return add_text(form, "subject",
                    message->subject != NULL ? message->subject : "")
           && (!has_text(message->body_text)
               || add_text(form, "text", message->body_text))
           && (!has_text(message->body_html)
               || add_text(form, "html", message->body_html));
}

static bool add_all_fields(outbox_mailgun_form *form,
                           const outbox_message *message)
{
    return add_address_field(form, "from", &message->sender)
           && add_address_fields(form, "to", &message->to)
           && add_address_fields(form, "cc", &message->cc)
           && add_address_fields(form, "bcc", &message->bcc)
           && add_content(form, message)
           && add_reply_to(form, &message->reply_to)
           && add_headers(form, message)
           && add_variables(form, message)
           && add_files(form, message);
}

/* The maximum number of fields that add_all_fields adds for message. */
static size_t field_capacity(const outbox_message *message)
{
    return 1 + outbox_message_recipient_count(message) + 3 + 2 + 1
           + message->header_count + 1 + 1 + message->metadata_count
           + message->attachment_count;
}

static size_t add_size(size_t a, size_t b)
{
    return a > SIZE_MAX - b ? SIZE_MAX : a + b;
}

static void count_bytes(outbox_mailgun_form *form)
{
    for (size_t i = 0; i < form->count; i++) {
        const outbox_mailgun_part *part = &form->parts[i];
        size_t bytes = add_size(strlen(part->name), part->size);

        form->message_bytes = add_size(form->message_bytes, bytes);
        if (strncmp(part->name, "h:", 2) == 0
            || strncmp(part->name, "v:", 2) == 0)
            form->option_bytes = add_size(form->option_bytes, bytes);
    }
}

/* Checks Mailgun's caps on the built form. */
static outbox_err check_caps(const outbox_mailgun_form *form,
                             outbox_error *err, size_t max_bytes)
{
    if (form->option_bytes > OUTBOX_MAILGUN_MAX_OPTION_BYTES)
        return outbox_error_set(err, OUTBOX_ELIMIT, "limit_exceeded",
                                "headers, reply-to, Message-ID and metadata "
                                "take %zu bytes as Mailgun h: and v: "
                                "fields, over Mailgun's cap of %d bytes on "
                                "those fields",
                                form->option_bytes,
                                OUTBOX_MAILGUN_MAX_OPTION_BYTES);
    if (max_bytes != 0 && form->message_bytes > max_bytes)
        return outbox_error_set(err, OUTBOX_ELIMIT, "message_too_large",
                                "message is %zu bytes as a Mailgun request "
                                "(fields and attachments, without the "
                                "multipart framing), over the Mailgun cap "
                                "of %zu bytes (max_message_bytes)",
                                form->message_bytes, max_bytes);
    return OUTBOX_EOK;
}

outbox_err outbox__mailgun_form_build(outbox_mailgun_form *form,
                                      outbox_error *err,
                                      const outbox_message *message,
                                      size_t max_bytes)
{
    outbox_err rc;

    memset(form, 0, sizeof(*form));
    if (message->to.count == 0)
        return outbox_error_set(err, OUTBOX_EINVAL, "invalid_recipients",
                                "Mailgun requires at least one \"to\" "
                                "recipient, and this message has none");

    form->capacity = field_capacity(message);
    form->parts = calloc(form->capacity, sizeof(*form->parts));
    if (form->parts == NULL || !add_all_fields(form, message)) {
        outbox__mailgun_form_free(form);
        return outbox_error_set(err, OUTBOX_ENOMEM, "internal",
                                "out of memory while building the Mailgun "
                                "request");
    }
    count_bytes(form);
    rc = check_caps(form, err, max_bytes);
    if (rc != OUTBOX_EOK)
        outbox__mailgun_form_free(form);
    return rc;
}

void outbox__mailgun_form_free(outbox_mailgun_form *form)
{
    for (size_t i = 0; form->parts != NULL && i < form->count; i++) {
        free(form->parts[i].name);
        free(form->parts[i].owned);
    }
    free(form->parts);
    memset(form, 0, sizeof(*form));
}
