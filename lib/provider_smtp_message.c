/*
 * provider_smtp_message.c - the SMTP transaction of one message: the
 * envelope, the top-level header fields, and the body as a libcurl MIME
 * tree (curl_mime), which libcurl encodes and sends after DATA.
 *
 * The top is always multipart/mixed, because libcurl gives the tree it
 * sends that type. Its first part is the body: text/plain or text/html
 * alone, both in multipart/alternative, and that wrapped with the inline
 * images in multipart/related. Without an HTML body no part can show an
 * image through cid:, so such images become ordinary attachments. Other
 * attachments follow the body.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "internal.h"
#include "mime.h"
#include "provider_smtp.h"

/* Room per MIME part for its boundary line and part headers, in the size
 * estimate. */
#define PART_OVERHEAD 400

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

/* ------------------------------------------------------------------ */
/* MIME tree                                                           */
/* ------------------------------------------------------------------ */

static size_t read_source(char *buffer, size_t size, size_t count,
                          void *user)
{
    outbox_smtp_source *source = user;
    size_t room = size * count;
    size_t left = source->size - source->offset;
    size_t n = left < room ? left : room;

    memcpy(buffer, source->data + source->offset, n);
    source->offset += n;
    return n;
}

static int seek_source(void *user, curl_off_t offset, int origin)
{
    outbox_smtp_source *source = user;

    if (origin != SEEK_SET || offset < 0 || (size_t)offset > source->size)
        return CURL_SEEKFUNC_CANTSEEK;
    source->offset = (size_t)offset;
    return CURL_SEEKFUNC_OK;
}

/* Gives part the next source, reading size bytes at data. */
static CURLcode set_part_data(outbox_smtp_request *request,
                              curl_mimepart *part, const char *data,
                              size_t size)
{
    outbox_smtp_source *source = &request->sources[request->source_count++];

    source->data = data;
    source->size = size;
    source->offset = 0;
    return curl_mime_data_cb(part, (curl_off_t)size, read_source, seek_source,
                             NULL, source);
}

/* Copies text with every line break (CRLF, bare LF or bare CR) as CRLF,
 * the canonical form of text parts (RFC 2046 section 4.1.1). */
static char *canonical_text(const char *text, size_t *size)
{
    size_t n = strlen(text);
    char *out = malloc(2 * n + 1);
    size_t used = 0;

    if (out == NULL)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        if (text[i] == '\r' && text[i + 1] == '\n')
            continue;
        if (text[i] == '\r' || text[i] == '\n') {
            out[used++] = '\r';
            out[used++] = '\n';
        } else {
            out[used++] = text[i];
        }
    }
    out[used] = '\0';
    *size = used;
    return out;
}

/* Adds a text/plain or text/html part in quoted-printable. */
static outbox_err add_text_part(outbox_smtp_request *request, curl_mime *mime,
                                const char *type, const char *text)
{
    curl_mimepart *part = curl_mime_addpart(mime);
    char *canonical;
    size_t size = 0;
    CURLcode code;

    if (part == NULL)
        return OUTBOX_ENOMEM;
    canonical = canonical_text(text, &size);
    if (canonical == NULL)
        return OUTBOX_ENOMEM;
    request->texts[request->text_count++] = canonical;
    code = set_part_data(request, part, canonical, size);
    if (code == CURLE_OK)
        code = curl_mime_type(part, type);
    if (code == CURLE_OK)
        code = curl_mime_encoder(part, "quoted-printable");
    return code == CURLE_OK ? OUTBOX_EOK : OUTBOX_ENOMEM;
}

/* Adds the bodies to mime: one text part, or both in a
 * multipart/alternative subpart. */
static outbox_err add_bodies(outbox_smtp_request *request, curl_mime *mime,
                             CURL *easy, const outbox_message *m)
{
    const char *plain = "text/plain; charset=UTF-8";
    const char *html = "text/html; charset=UTF-8";
    curl_mimepart *part;
    curl_mime *alternative;
    outbox_err rc;

    if (m->body_html == NULL)
        return add_text_part(request, mime, plain,
                             m->body_text ? m->body_text : "");
    if (m->body_text == NULL)
        return add_text_part(request, mime, html, m->body_html);

    part = curl_mime_addpart(mime);
    alternative = curl_mime_init(easy);
    if (part == NULL || alternative == NULL) {
        curl_mime_free(alternative);
        return OUTBOX_ENOMEM;
    }
    /* The part owns alternative from here on, even if the type fails. */
    if (curl_mime_subparts(part, alternative) != CURLE_OK) {
        curl_mime_free(alternative);
        return OUTBOX_ENOMEM;
    }
    if (curl_mime_type(part, "multipart/alternative") != CURLE_OK)
        return OUTBOX_ENOMEM;
    rc = add_text_part(request, alternative, plain, m->body_text);
    if (rc == OUTBOX_EOK)
        rc = add_text_part(request, alternative, html, m->body_html);
    return rc;
}

/* Returns true if the attachment is an image that the HTML shows. */
static bool is_related(const outbox_message *m, const outbox_attachment *a)
{
    return a->content_id != NULL && m->body_html != NULL;
}

/* Checks the attachment fields that go into part headers. */
static outbox_err check_attachment(outbox_error *err,
                                   const outbox_attachment *a, size_t index)
{
    const char *type = a->content_type;
    const char *id = a->content_id;
    bool type_ok = true;
    bool id_ok = true;

    for (const char *p = type; p != NULL && *p != '\0'; p++)
        type_ok = type_ok && *p >= ' ' && *p <= '~';
    if (type != NULL && (strchr(type, '/') == NULL
                         || strncmp(type, "multipart/", 10) == 0
                         || strncmp(type, "Multipart/", 10) == 0))
        type_ok = false;
    if (!type_ok)
        return outbox_error_set(err, OUTBOX_EINVAL, "invalid_attachment",
                                "attachment %zu: invalid content type; use "
                                "a single-part type/subtype in printable "
                                "ASCII, such as application/pdf", index + 1);
    for (const char *p = id; p != NULL && *p != '\0'; p++)
        id_ok = id_ok && *p > ' ' && *p <= '~' && *p != '<' && *p != '>';
    if (id != NULL && (id[0] == '\0' || !id_ok))
        return outbox_error_set(err, OUTBOX_EINVAL, "invalid_attachment",
                                "attachment %zu: invalid content ID; use "
                                "printable ASCII without spaces or angle "
                                "brackets, such as logo@example.org",
                                index + 1);
    if (a->filename != NULL
        && !outbox__utf8_valid(a->filename, strlen(a->filename)))
        return outbox_error_set(err, OUTBOX_EINVAL, "invalid_attachment",
                                "attachment %zu: the filename is not valid "
                                "UTF-8", index + 1);
    return OUTBOX_EOK;
}

/*
 * Builds the part headers of an attachment that this file writes instead
 * of libcurl: Content-Disposition, with a non-ASCII filename in RFC 2231
 * form, and Content-ID.
 */
static outbox_err attachment_headers(struct curl_slist **headers,
                                     const outbox_attachment *a,
                                     bool inline_part)
{
    outbox_buf field;
    struct curl_slist *grown = NULL;
    outbox_err rc;
    bool named = a->filename != NULL && a->filename[0] != '\0';

    outbox__buf_init(&field, 64 * 1024);
    rc = outbox__buf_puts(&field, "Content-Disposition: ");
    if (rc == OUTBOX_EOK)
        rc = outbox__buf_puts(&field, inline_part ? "inline" : "attachment");
    if (rc == OUTBOX_EOK && named)
        rc = outbox__mime_append_parameter(&field, "filename", a->filename);
    if (rc == OUTBOX_EOK) {
        grown = curl_slist_append(*headers, field.data);
        rc = grown != NULL ? OUTBOX_EOK : OUTBOX_ENOMEM;
        *headers = grown != NULL ? grown : *headers;
    }
    field.size = 0;
    if (rc == OUTBOX_EOK && a->content_id != NULL)
        rc = outbox__buf_printf(&field, "Content-ID: <%s>", a->content_id);
    if (rc == OUTBOX_EOK && a->content_id != NULL) {
        grown = curl_slist_append(*headers, field.data);
        rc = grown != NULL ? OUTBOX_EOK : OUTBOX_ENOMEM;
        *headers = grown != NULL ? grown : *headers;
    }
    outbox__buf_free(&field);
    return rc;
}

/* Adds attachment index of m to mime as a base64 part. */
static outbox_err add_attachment(outbox_smtp_request *request,
                                 curl_mime *mime, outbox_error *err,
                                 const outbox_message *m, size_t index,
                                 bool inline_part)
{
    const outbox_attachment *a = &m->attachments[index];
    curl_mimepart *part;
    struct curl_slist *headers = NULL;
    outbox_buf type;
    CURLcode code;
    outbox_err rc = check_attachment(err, a, index);

    if (rc != OUTBOX_EOK)
        return rc;
    part = curl_mime_addpart(mime);
    if (part == NULL)
        return OUTBOX_ENOMEM;

    /* The type carries the name parameter too, for older mail readers. */
    outbox__buf_init(&type, 64 * 1024);
    rc = outbox__buf_puts(&type, a->content_type ? a->content_type
                                                 : "application/octet-stream");
    if (rc == OUTBOX_EOK && a->filename != NULL && a->filename[0] != '\0')
        rc = outbox__mime_append_parameter(&type, "name", a->filename);
    if (rc == OUTBOX_EOK)
        rc = attachment_headers(&headers, a, inline_part);
    code = rc == OUTBOX_EOK ? curl_mime_type(part, type.data)
                            : CURLE_OUT_OF_MEMORY;
    outbox__buf_free(&type);
    if (code == CURLE_OK)
        code = curl_mime_encoder(part, "base64");
    if (code == CURLE_OK)
        code = set_part_data(request, part, (const char *)a->content,
                             a->size);
    /* The part takes ownership of headers; until then they are freed
     * here. */
    if (code == CURLE_OK)
        code = curl_mime_headers(part, headers, 1);
    else
        curl_slist_free_all(headers);
    if (rc == OUTBOX_EOK && code != CURLE_OK)
        rc = OUTBOX_ENOMEM;
    return rc;
}

/* Adds the body to top, wrapped with the inline images in a
 * multipart/related subpart when there are any. */
static outbox_err add_related(outbox_smtp_request *request, curl_mime *top,
                              outbox_error *err, CURL *easy,
                              const outbox_message *m)
{
    const char *type = m->body_text
                           ? "multipart/related; type=\"multipart/alternative\""
                           : "multipart/related; type=\"text/html\"";
    curl_mimepart *part;
    curl_mime *related;
    size_t count = 0;
    outbox_err rc;

    for (size_t i = 0; i < m->attachment_count; i++)
        count += is_related(m, &m->attachments[i]);
    if (count == 0)
        return add_bodies(request, top, easy, m);

    part = curl_mime_addpart(top);
    related = curl_mime_init(easy);
    if (part == NULL || related == NULL) {
        curl_mime_free(related);
        return OUTBOX_ENOMEM;
    }
    if (curl_mime_subparts(part, related) != CURLE_OK) {
        curl_mime_free(related);
        return OUTBOX_ENOMEM;
    }
    if (curl_mime_type(part, type) != CURLE_OK)
        return OUTBOX_ENOMEM;
    rc = add_bodies(request, related, easy, m);
    for (size_t i = 0; i < m->attachment_count && rc == OUTBOX_EOK; i++) {
        if (is_related(m, &m->attachments[i]))
            rc = add_attachment(request, related, err, m, i, true);
    }
    return rc;
}

outbox_err outbox__smtp_mime(outbox_smtp_request *request, outbox_error *err,
                             CURL *easy, const outbox_message *m)
{
    outbox_err rc;

    /* Two text bodies and every attachment each read from one source. */
    request->texts = calloc(2, sizeof(*request->texts));
    request->sources = calloc(2 + m->attachment_count,
                              sizeof(*request->sources));
    request->mime = curl_mime_init(easy);
    if (request->texts == NULL || request->sources == NULL
        || request->mime == NULL)
        return OUTBOX_ENOMEM;

    rc = add_related(request, request->mime, err, easy, m);
    for (size_t i = 0; i < m->attachment_count && rc == OUTBOX_EOK; i++) {
        if (!is_related(m, &m->attachments[i]))
            rc = add_attachment(request, request->mime, err, m, i, false);
    }
    return rc;
}

/* ------------------------------------------------------------------ */
/* Size                                                                */
/* ------------------------------------------------------------------ */

/* Quoted-printable size of n bytes: 3 for each byte that needs =XX, and
 * a soft line break ("=" CRLF) per 73 characters. */
static size_t quoted_printable_size(const char *text)
{
    size_t n = 0;

    for (const char *p = text; *p != '\0'; p++) {
        unsigned char c = (unsigned char)*p;

        n += (c > '~' || c == '=' || (c < ' ' && c != '\r' && c != '\n'))
                 ? 3
                 : 1;
    }
    return n + 3 * (n / 73 + 1);
}

size_t outbox__smtp_estimated_size(const outbox_smtp_request *request,
                                   const outbox_message *m)
{
    size_t size = PART_OVERHEAD;

    for (const struct curl_slist *h = request->headers; h != NULL;
         h = h->next)
        size += strlen(h->data) + 2;
    if (m->body_text != NULL)
        size += quoted_printable_size(m->body_text) + PART_OVERHEAD;
    if (m->body_html != NULL)
        size += quoted_printable_size(m->body_html) + PART_OVERHEAD;
    for (size_t i = 0; i < m->attachment_count; i++) {
        size_t base64 = outbox__base64_size(m->attachments[i].size);

        size += base64 + 2 * (base64 / 76 + 1) + PART_OVERHEAD;
    }
    return size;
}

void outbox__smtp_request_free(outbox_smtp_request *request)
{
    if (request == NULL)
        return;
    curl_mime_free(request->mime);
    curl_slist_free_all(request->headers);
    curl_slist_free_all(request->recipients);
    for (size_t i = 0; i < request->text_count; i++)
        free(request->texts[i]);
    free(request->texts);
    free(request->sources);
    free(request->mail_from);
    free(request);
}
