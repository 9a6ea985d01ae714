/*
 * provider_smtp_message.c - the SMTP transaction of one message: the
 * envelope and the top-level header fields. The body, a libcurl MIME
 * tree, is built in provider_smtp_mime.c.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "internal.h"
#include "mime.h"
#include "provider_smtp.h"

/* ------------------------------------------------------------------ */
/* Envelope                                                            */
/* ------------------------------------------------------------------ */

/* Appends "<email>" to *list. */
static outbox_err append_path(struct curl_slist **list, outbox_error *err,
                              const char *email)
{
    char *path = NULL;
    struct curl_slist *grown;
    size_t length;

    /* SMTP commands end at CRLF, so an address must not contain one. */
    if (email == NULL || !outbox_header_value_is_safe(email)
        || strpbrk(email, "<> ") != NULL)
        return outbox_error_set(err, OUTBOX_EINVAL, "invalid_recipients",
                                "address \"%.80s\" cannot be sent in an SMTP "
                                "command", email ? email : "");
    length = strlen(email);
    path = malloc(length + 3);
    if (path == NULL)
        return OUTBOX_ENOMEM;
    snprintf(path, length + 3, "<%s>", email);
    grown = curl_slist_append(*list, path);
    free(path);
    if (grown == NULL)
        return OUTBOX_ENOMEM;
    *list = grown;
    return OUTBOX_EOK;
}

outbox_err outbox__smtp_envelope(outbox_smtp_request *request,
                                 outbox_error *err,
                                 const outbox_message *message)
{
    const outbox_address_list *lists[] = {&message->to, &message->cc,
                                          &message->bcc};
    outbox_err rc;
    struct curl_slist *sender = NULL;

    rc = append_path(&sender, err, message->sender.email);
    if (rc == OUTBOX_EINVAL)
        snprintf(err->kind, sizeof(err->kind), "invalid_sender");
    if (rc == OUTBOX_EOK) {
        request->mail_from = outbox__strdup(sender->data);
        if (request->mail_from == NULL)
            rc = OUTBOX_ENOMEM;
    }
    curl_slist_free_all(sender);
    for (size_t i = 0; i < 3 && rc == OUTBOX_EOK; i++) {
        for (size_t k = 0; k < lists[i]->count && rc == OUTBOX_EOK; k++)
            rc = append_path(&request->recipients, err,
                             lists[i]->items[k].email);
    }
    return rc;
}

/* ------------------------------------------------------------------ */
/* Header fields                                                       */
/* ------------------------------------------------------------------ */

/* Appends "name: value" to the list, folded by outbox__mime_put_header,
 * without the CRLF that ends the field: libcurl adds it. */
static outbox_err add_field(outbox_smtp_request *request, outbox_error *err,
                            const char *name, const char *value)
{
    outbox_buf field;
    struct curl_slist *grown = NULL;
    outbox_err rc;

    outbox__buf_init(&field, OUTBOX_MIME_MAX_SIZE);
    rc = outbox__mime_put_header(&field, err, name, value);
    if (rc == OUTBOX_EOK) {
        field.size -= 2;
        field.data[field.size] = '\0';
        grown = curl_slist_append(request->headers, field.data);
        if (grown == NULL)
            rc = OUTBOX_ENOMEM;
        else
            request->headers = grown;
    }
    outbox__buf_free(&field);
    return rc;
}

/* Adds an address field; a long list is folded after its commas. */
static outbox_err add_address_field(outbox_smtp_request *request,
                                    outbox_error *err, const char *name,
                                    const outbox_address *items, size_t count)
{
    outbox_buf value;
    outbox_err rc = OUTBOX_EOK;

    if (count == 0)
        return OUTBOX_EOK;
    outbox__buf_init(&value, OUTBOX_MIME_MAX_SIZE);
    for (size_t i = 0; i < count && rc == OUTBOX_EOK; i++) {
        char *text = outbox_header_format_address(&items[i]);

        if (text == NULL)
            rc = OUTBOX_ENOMEM;
        if (rc == OUTBOX_EOK && i > 0)
            rc = outbox__buf_puts(&value, ", ");
        if (rc == OUTBOX_EOK)
            rc = outbox__buf_puts(&value, text);
        free(text);
    }
    if (rc == OUTBOX_EOK)
        rc = add_field(request, err, name, value.data);
    outbox__buf_free(&value);
    return rc;
}

/* Adds name with value as unstructured text, as RFC 2047 encoded words
 * when it is not plain printable ASCII. */
static outbox_err add_text_field(outbox_smtp_request *request,
                                 outbox_error *err, const char *name,
                                 const char *value)
{
    char *encoded;
    outbox_err rc;

    if (!outbox_header_value_is_safe(value))
        return outbox_error_set(err, OUTBOX_EINVAL, "invalid_header_value",
                                "header %s contains a line break, a NUL or "
                                "invalid UTF-8", name);
    encoded = outbox_header_encode_text(value);
    if (encoded == NULL)
        return OUTBOX_ENOMEM;
    rc = add_field(request, err, name, encoded);
    free(encoded);
    return rc;
}

/* Adds the Date field in RFC 5322 form, with English names whatever the
 * locale. */
static outbox_err add_date(outbox_smtp_request *request, outbox_error *err,
                           int64_t date)
{
    static const char days[7][4] = {"Sun", "Mon", "Tue", "Wed",
                                    "Thu", "Fri", "Sat"};
    static const char months[12][4] = {"Jan", "Feb", "Mar", "Apr",
                                       "May", "Jun", "Jul", "Aug",
                                       "Sep", "Oct", "Nov", "Dec"};
    time_t seconds = (time_t)date;
    struct tm tm;
    char value[64];

    if (gmtime_r(&seconds, &tm) == NULL || tm.tm_year + 1900 < 1900
        || tm.tm_year + 1900 > 9999)
        return outbox_error_set(err, OUTBOX_EINVAL, "internal",
                                "date %" PRId64 " is out of range for the "
                                "Date header", date);
    snprintf(value, sizeof(value), "%s, %02d %s %04d %02d:%02d:%02d +0000",
             days[tm.tm_wday], tm.tm_mday, months[tm.tm_mon],
             tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
    return add_field(request, err, "Date", value);
}

/* Fields that the message's columns or libcurl set, so the headers column
 * must not set them a second time. */
static const char *const reserved_fields[] = {
    "Date", "From", "Sender", "To", "Cc", "Bcc", "Reply-To", "Subject",
    "Message-ID", "X-Outbox-Id", "MIME-Version", "Content-Type",
    "Content-Transfer-Encoding", "Content-Disposition", "Content-ID",
};

/* Checks an extra header's name: RFC 5322 field-name characters, and no
 * reserved field. */
static outbox_err check_field_name(outbox_error *err, const char *name)
{
    size_t n = strlen(name);

    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)name[i];

        if (c < 33 || c > 126 || c == ':')
            n = 0;
    }
    if (n == 0 || n > OUTBOX_MIME_LINE_GOAL - 2)
        return outbox_error_set(err, OUTBOX_EINVAL, "invalid_headers",
                                "header name \"%.80s\" is invalid; use at "
                                "most %d printable ASCII characters without "
                                "spaces or colons",
                                name, OUTBOX_MIME_LINE_GOAL - 2);
    for (size_t i = 0; i < sizeof(reserved_fields) / sizeof(char *); i++) {
        if (outbox__strcasecmp(name, reserved_fields[i]) == 0)
            return outbox_error_set(err, OUTBOX_EINVAL, "invalid_headers",
                                    "header %s is set from the message's "
                                    "columns; remove it from headers", name);
    }
    return OUTBOX_EOK;
}

outbox_err outbox__smtp_headers(outbox_smtp_request *request,
                                outbox_error *err,
                                const outbox_message *m, int64_t date)
{
    char value[400];
    outbox_err rc;

    if (m->message_id == NULL || !outbox_header_value_is_safe(m->message_id)
        || strlen(m->message_id) > sizeof(value) - 3)
        return outbox_error_set(err, OUTBOX_EINVAL, "internal",
                                "message %" PRId64 " has no valid Message-ID",
                                m->id);
    rc = add_date(request, err, date);
    if (rc == OUTBOX_EOK)
        rc = add_address_field(request, err, "From", &m->sender, 1);
    if (rc == OUTBOX_EOK)
        rc = add_address_field(request, err, "To", m->to.items, m->to.count);
    if (rc == OUTBOX_EOK)
        rc = add_address_field(request, err, "Cc", m->cc.items, m->cc.count);
    if (rc == OUTBOX_EOK)
        rc = add_address_field(request, err, "Reply-To", m->reply_to.items,
                               m->reply_to.count);
    if (rc == OUTBOX_EOK && m->subject != NULL && m->subject[0] != '\0')
        rc = add_text_field(request, err, "Subject", m->subject);
    if (rc == OUTBOX_EOK) {
        snprintf(value, sizeof(value), "<%s>", m->message_id);
        rc = add_field(request, err, "Message-ID", value);
    }
    if (rc == OUTBOX_EOK) {
        snprintf(value, sizeof(value), "%" PRId64, m->id);
        rc = add_field(request, err, "X-Outbox-Id", value);
    }
    for (size_t i = 0; i < m->header_count && rc == OUTBOX_EOK; i++) {
        rc = check_field_name(err, m->headers[i].name);
        if (rc == OUTBOX_EOK)
            rc = add_text_field(request, err, m->headers[i].name,
                                m->headers[i].value);
    }
    return rc;
}
