/*
 * provider_smtp_mime.c - the body of an SMTP message as a libcurl MIME
 * tree (curl_mime), which libcurl encodes and sends after DATA, and an
 * estimate of its size.
 *
 * The top is always multipart/mixed, because libcurl gives the tree it
 * sends that type. Its first part is the body: text/plain or text/html
 * alone, both in multipart/alternative, and that wrapped with the inline
 * images in multipart/related. Without an HTML body no part can show an
 * image through cid:, so such images become ordinary attachments. Other
 * attachments follow the body.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "mime.h"
#include "provider_smtp.h"

/* Room per MIME part for its boundary line and part headers, in the size
 * estimate. */
#define PART_OVERHEAD 400

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
