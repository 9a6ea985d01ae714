/*
 * mime.c - writes a message as RFC 5322 text with MIME parts (RFC 2045,
 * 2046, 2231 and 2387) for the file provider.
 *
 * libcurl's curl_mime serializes only into a libcurl transfer (HTTP, SMTP,
 * IMAP) and never into a buffer or a file, so the .eml files need this
 * writer of their own.
 *
 * Layout: a text body alone is text/plain, text and HTML together are
 * multipart/alternative. Attachments with a Content-ID are wrapped with the
 * HTML (or the alternative) in multipart/related. Without an HTML body no
 * part can show them inline, so they become ordinary attachments. Other
 * attachments go with the body into multipart/mixed.
 *
 * Why the boundaries are safe: each starts with "=_outbox_", and a
 * delimiter line inside a part would need "=_" in that part's body. Bodies
 * are written only as quoted-printable, where "=" is always followed by two
 * hex digits or a line break, and as base64, where "=" is padding followed
 * by "=" or a line break. Part headers come from this file, and each of
 * their lines starts with a field name or with folding whitespace, never
 * with "--". check_encoded_body still verifies the rule on every body.
 *
 * The encodings of single lines and bodies are in mime_encode.c.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "internal.h"
#include "mime.h"

#define LINE_GOAL OUTBOX_MIME_LINE_GOAL

/* Bytes of the boundary seed that the boundaries use, as hex. */
#define SEED_BYTES 24

typedef struct mime_writer {
    outbox_buf buf;
    outbox_error *err;
    const outbox_message *message;
    char seed_hex[2 * SEED_BYTES + 1];
    unsigned boundary_count;  /* multipart entities opened so far */
} mime_writer;

/* Multipart boundary: "=_outbox_", the seed hex, "_" and a number. */
typedef char mime_boundary[9 + 2 * SEED_BYTES + 1 + 10 + 1];

/* ------------------------------------------------------------------ */
/* Header lines                                                        */
/* ------------------------------------------------------------------ */

static outbox_err put_header(mime_writer *w, const char *name,
                             const char *value)
{
    return outbox__mime_put_header(&w->buf, w->err, name, value);
}

/* Returns the column reached by writing text at column; text may hold
 * CRLF folds. */
static size_t advance_column(size_t column, const char *text)
{
    const char *fold = strstr(text, "\r\n");

    while (fold != NULL) {
        text = fold + 2;
        column = 0;
        fold = strstr(text, "\r\n");
    }
    return column + strlen(text);
}

/*
 * Appends an address header, one address after another, with the fold
 * after a comma whenever the next address and the comma that may follow
 * it would pass LINE_GOAL.
 */
static outbox_err put_address_header(mime_writer *w, const char *name,
                                     const outbox_address *items,
                                     size_t count)
{
    size_t column = strlen(name) + 2;
    outbox_buf value;
    outbox_err rc = OUTBOX_EOK;

    if (count == 0)
        return OUTBOX_EOK;
    outbox__buf_init(&value, w->buf.cap);
    for (size_t i = 0; i < count && rc == OUTBOX_EOK; i++) {
        char *text = NULL;
        const char *fold;

        if (items[i].email == NULL) {
            rc = outbox_error_set(w->err, OUTBOX_EINVAL, "internal",
                                  "header %s: address %zu has no email",
                                  name, i + 1);
            break;
        }
        text = outbox_header_format_address(&items[i]);
        if (text == NULL) {
            rc = OUTBOX_ENOMEM;
            break;
        }

        /* Encoded display names may hold folds of their own, so only the
         * text up to the first fold counts against this line. */
        fold = strstr(text, "\r\n");
        if (i > 0) {
            size_t width = fold ? (size_t)(fold - text) : strlen(text);
            bool wrap = column + strlen(", ,") + width > LINE_GOAL;

            rc = outbox__buf_puts(&value, wrap ? ",\r\n " : ", ");
            column = wrap ? 1 : column + 2;
        }
        if (rc == OUTBOX_EOK)
            rc = outbox__buf_puts(&value, text);
        column = advance_column(column, text);
        free(text);
    }
    if (rc == OUTBOX_EOK)
        rc = put_header(w, name, value.data);
    outbox__buf_free(&value);
    return rc;
}

/* Appends the Date header in RFC 5322 form, with English names whatever
 * the locale. */
static outbox_err put_date(mime_writer *w, int64_t date)
{
    static const char days[7][4] = {"Sun", "Mon", "Tue", "Wed",
                                    "Thu", "Fri", "Sat"};
    static const char months[12][4] = {"Jan", "Feb", "Mar", "Apr",
                                       "May", "Jun", "Jul", "Aug",
                                       "Sep", "Oct", "Nov", "Dec"};
    time_t seconds = (time_t)date;
    struct tm tm;

    if (gmtime_r(&seconds, &tm) == NULL || tm.tm_year + 1900 < 1900
        || tm.tm_year + 1900 > 9999)
        return outbox_error_set(w->err, OUTBOX_EINVAL, "internal",
                                "date %" PRId64 " is out of range for the "
                                "Date header", date);
    return outbox__buf_printf(&w->buf,
                              "Date: %s, %02d %s %04d %02d:%02d:%02d "
                              "+0000\r\n",
                              days[tm.tm_wday], tm.tm_mday,
                              months[tm.tm_mon], tm.tm_year + 1900,
                              tm.tm_hour, tm.tm_min, tm.tm_sec);
}

/* Returns true if any byte of text is outside ASCII. */
static bool has_non_ascii(const char *text)
{
    for (; *text != '\0'; text++) {
        if ((unsigned char)*text >= 0x80)
            return true;
    }
    return false;
}

/*
 * Appends name with value as unstructured text: RFC 2047 encoded words for
 * the Subject, and for other headers when the value is not ASCII.
 */
static outbox_err put_text_header(mime_writer *w, const char *name,
                                  const char *value, bool always_encode)
{
    char *encoded;
    outbox_err rc;

    if (!outbox_header_value_is_safe(value))
        return outbox_error_set(w->err, OUTBOX_EINVAL,
                                "invalid_header_value",
                                "header %s contains a line break, a NUL or "
                                "invalid UTF-8", name);
    if (!always_encode && !has_non_ascii(value))
        return put_header(w, name, value);
    encoded = outbox_header_encode_text(value);
    if (encoded == NULL)
        return OUTBOX_ENOMEM;
    rc = put_header(w, name, encoded);
    free(encoded);
    return rc;
}

/* Header fields that this file writes from the message's columns, so the
 * headers column must not set them a second time. */
static const char *const reserved_headers[] = {
    "Date", "From", "To", "Cc", "Bcc", "Reply-To", "Subject",
    "Message-ID", "MIME-Version", "Content-Type",
    "Content-Transfer-Encoding", "Content-Disposition", "Content-ID",
};

/* Checks an extra header's name: RFC 5322 field-name characters, and no
 * field that the message's columns set. */
static outbox_err check_header_name(mime_writer *w, const char *name)
{
    size_t n = strlen(name);

    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)name[i];

        if (c < 33 || c > 126 || c == ':')
            n = 0;
    }
    if (n == 0 || n > LINE_GOAL - 2)
        return outbox_error_set(w->err, OUTBOX_EINVAL, "invalid_headers",
                                "header name \"%s\" is invalid; use at most "
                                "%d printable ASCII characters without "
                                "spaces or colons", name, LINE_GOAL - 2);
    for (size_t i = 0; i < sizeof(reserved_headers) / sizeof(char *); i++) {
        if (outbox__strcasecmp(name, reserved_headers[i]) == 0)
            return outbox_error_set(w->err, OUTBOX_EINVAL, "invalid_headers",
                                    "header %s is set from the message's "
                                    "columns; remove it from headers", name);
    }
    return OUTBOX_EOK;
}

/* Appends every header field of the message, in the usual order. */
static outbox_err put_message_headers(mime_writer *w, int64_t date)
{
    const outbox_message *m = w->message;
    outbox_err rc = put_date(w, date);

    if (rc == OUTBOX_EOK)
        rc = put_address_header(w, "From", &m->sender, 1);
    if (rc == OUTBOX_EOK)
        rc = put_address_header(w, "To", m->to.items, m->to.count);
    if (rc == OUTBOX_EOK)
        rc = put_address_header(w, "Cc", m->cc.items, m->cc.count);
    if (rc == OUTBOX_EOK)
        rc = put_address_header(w, "Reply-To", m->reply_to.items,
                                m->reply_to.count);
    if (rc == OUTBOX_EOK && m->subject != NULL && m->subject[0] != '\0')
        rc = put_text_header(w, "Subject", m->subject, true);
    if (rc == OUTBOX_EOK)
        rc = outbox__buf_printf(&w->buf, "Message-ID: <%s>\r\n",
                                m->message_id);
    if (rc == OUTBOX_EOK)
        rc = outbox__buf_puts(&w->buf, "MIME-Version: 1.0\r\n");
    for (size_t i = 0; i < m->header_count && rc == OUTBOX_EOK; i++) {
        rc = check_header_name(w, m->headers[i].name);
        if (rc == OUTBOX_EOK)
            rc = put_text_header(w, m->headers[i].name, m->headers[i].value,
                                 false);
    }
    return rc;
}

/* ------------------------------------------------------------------ */
/* Parts                                                               */
/* ------------------------------------------------------------------ */

/* Checks that the body written since start contains no "=_", the prefix
 * of every boundary (the top of this file explains why it never does). */
static outbox_err check_encoded_body(mime_writer *w, size_t start)
{
    for (size_t i = start; i + 1 < w->buf.size; i++) {
        if (w->buf.data[i] == '=' && w->buf.data[i + 1] == '_')
            return outbox_error_set(w->err, OUTBOX_EINVAL, "internal",
                                    "an encoded body of message %" PRId64
                                    " contains a boundary prefix",
                                    w->message->id);
    }
    return OUTBOX_EOK;
}

/* Returns true if every byte of text is in the range lowest..126. */
static bool is_printable(const char *text, char lowest)
{
    for (; *text != '\0'; text++) {
        if (*text < lowest || *text > 126)
            return false;
    }
    return true;
}

/* Returns true if text starts with prefix, comparing ASCII letters without
 * regard to case and independent of the locale. */
static bool starts_with_ignoring_case(const char *text, const char *prefix)
{
    char head[16];
    size_t n = strlen(prefix);

    if (n >= sizeof(head) || strlen(text) < n)
        return false;
    memcpy(head, text, n);
    head[n] = '\0';
    return outbox__strcasecmp(head, prefix) == 0;
}

/* Checks the attachment fields that go into part headers: the content
 * type, the Content-ID and the filename. */
static outbox_err check_attachment(mime_writer *w, const outbox_attachment *a,
                                   size_t index)
{
    const char *type = a->content_type;
    const char *id = a->content_id;

    if (type != NULL && !is_printable(type, ' '))
        return outbox_error_set(w->err, OUTBOX_EINVAL, "invalid_attachment",
                                "attachment %zu: the content type contains "
                                "a line break or a non-ASCII character",
                                index + 1);

    /* A multipart type would need boundaries of its own, not base64. */
    if (type != NULL && (strchr(type, '/') == NULL
                         || starts_with_ignoring_case(type, "multipart/")))
        return outbox_error_set(w->err, OUTBOX_EINVAL, "invalid_attachment",
                                "attachment %zu: invalid content type "
                                "\"%s\"; use a single-part type/subtype such "
                                "as application/pdf", index + 1, type);
    if (id != NULL && (id[0] == '\0' || !is_printable(id, '!')
                       || strpbrk(id, "<>") != NULL))
        return outbox_error_set(w->err, OUTBOX_EINVAL, "invalid_attachment",
                                "attachment %zu: invalid content ID; use "
                                "printable ASCII without spaces or angle "
                                "brackets, such as logo@example.org",
                                index + 1);
    if (a->filename != NULL
        && !outbox__utf8_valid(a->filename, strlen(a->filename)))
        return outbox_error_set(w->err, OUTBOX_EINVAL, "invalid_attachment",
                                "attachment %zu: the filename is not valid "
                                "UTF-8", index + 1);
    return OUTBOX_EOK;
}

/*
 * Appends an attachment as one base64 part. An inline part (an image the
 * HTML shows through cid:) gets disposition inline, the others attachment.
 */
static outbox_err put_attachment(mime_writer *w, size_t index, bool inline_part)
{
    const outbox_attachment *a = &w->message->attachments[index];
    const char *type = a->content_type ? a->content_type
                                       : "application/octet-stream";
    outbox_buf field;
    size_t start;
    outbox_err rc = check_attachment(w, a, index);

    outbox__buf_init(&field, w->buf.cap);
    if (rc == OUTBOX_EOK)
        rc = outbox__buf_puts(&field, type);
    if (rc == OUTBOX_EOK && a->filename != NULL && a->filename[0] != '\0')
        rc = outbox__mime_append_parameter(&field, "name", a->filename);
    if (rc == OUTBOX_EOK)
        rc = put_header(w, "Content-Type", field.data);
    if (rc == OUTBOX_EOK)
        rc = outbox__buf_puts(&w->buf, "Content-Transfer-Encoding: base64\r\n");

    field.size = 0;
    if (rc == OUTBOX_EOK)
        rc = outbox__buf_puts(&field, inline_part ? "inline" : "attachment");
    if (rc == OUTBOX_EOK && a->filename != NULL && a->filename[0] != '\0')
        rc = outbox__mime_append_parameter(&field, "filename", a->filename);
    if (rc == OUTBOX_EOK)
        rc = put_header(w, "Content-Disposition", field.data);
    if (rc == OUTBOX_EOK && a->content_id != NULL)
        rc = outbox__buf_printf(&w->buf, "Content-ID: <%s>\r\n", a->content_id);
    outbox__buf_free(&field);

    if (rc == OUTBOX_EOK)
        rc = outbox__buf_puts(&w->buf, "\r\n");
    start = w->buf.size;
    if (rc == OUTBOX_EOK)
        rc = outbox__mime_put_base64(&w->buf, a->content, a->size);
    if (rc == OUTBOX_EOK)
        rc = check_encoded_body(w, start);
    return rc;
}

/* Appends a text part: text/plain or text/html in quoted-printable. */
static outbox_err put_text_part(mime_writer *w, const char *subtype,
                                const char *text)
{
    size_t start;
    outbox_err rc;

    rc = outbox__buf_printf(&w->buf,
                            "Content-Type: text/%s; charset=UTF-8\r\n"
                            "Content-Transfer-Encoding: quoted-printable\r\n"
                            "\r\n", subtype);
    start = w->buf.size;
    if (rc == OUTBOX_EOK)
        rc = outbox__mime_put_quoted_printable(&w->buf, text);
    if (rc == OUTBOX_EOK)
        rc = check_encoded_body(w, start);
    return rc;
}

/*
 * Opens a multipart entity: writes its Content-Type with a fresh boundary
 * and the first delimiter. type, if not NULL, is the root part's type that
 * multipart/related names (RFC 2387).
 */
static outbox_err open_multipart(mime_writer *w, mime_boundary boundary,
                                 const char *subtype, const char *type)
{
    char field[sizeof(mime_boundary) + 80];
    outbox_err rc;

    snprintf(boundary, sizeof(mime_boundary), "=_outbox_%s_%u", w->seed_hex,
             w->boundary_count++);
    if (type != NULL)
        snprintf(field, sizeof(field), "multipart/%s; type=\"%s\"; "
                 "boundary=\"%s\"", subtype, type, boundary);
    else
        snprintf(field, sizeof(field), "multipart/%s; boundary=\"%s\"",
                 subtype, boundary);
    rc = put_header(w, "Content-Type", field);
    if (rc == OUTBOX_EOK)
        rc = outbox__buf_printf(&w->buf, "\r\n--%s\r\n", boundary);
    return rc;
}

/* Appends the delimiter before the next part, or the closing one. */
static outbox_err next_part(mime_writer *w, const char *boundary, bool last)
{
    return outbox__buf_printf(&w->buf, "\r\n--%s%s", boundary,
                              last ? "--" : "\r\n");
}

/* Appends the bodies: one text part, or both in multipart/alternative. */
static outbox_err put_bodies(mime_writer *w)
{
    const outbox_message *m = w->message;
    mime_boundary boundary;
    outbox_err rc;

    if (m->body_html == NULL)
        return put_text_part(w, "plain", m->body_text ? m->body_text : "");
    if (m->body_text == NULL)
        return put_text_part(w, "html", m->body_html);
    rc = open_multipart(w, boundary, "alternative", NULL);
    if (rc == OUTBOX_EOK)
        rc = put_text_part(w, "plain", m->body_text);
    if (rc == OUTBOX_EOK)
        rc = next_part(w, boundary, false);
    if (rc == OUTBOX_EOK)
        rc = put_text_part(w, "html", m->body_html);
    if (rc == OUTBOX_EOK)
        rc = next_part(w, boundary, true);
    return rc;
}

/* Returns true if attachment a is an inline part of multipart/related. */
static bool is_related(const outbox_message *m, const outbox_attachment *a)
{
    return a->content_id != NULL && m->body_html != NULL;
}

/*
 * Appends the bodies, wrapped with the inline attachments in
 * multipart/related when there are any.
 */
static outbox_err put_related(mime_writer *w)
{
    const outbox_message *m = w->message;
    const char *root = m->body_text ? "multipart/alternative" : "text/html";
    mime_boundary boundary;
    size_t count = 0;
    outbox_err rc;

    for (size_t i = 0; i < m->attachment_count; i++)
        count += is_related(m, &m->attachments[i]);
    if (count == 0)
        return put_bodies(w);
    rc = open_multipart(w, boundary, "related", root);
    if (rc == OUTBOX_EOK)
        rc = put_bodies(w);
    for (size_t i = 0; i < m->attachment_count && rc == OUTBOX_EOK; i++) {
        if (!is_related(m, &m->attachments[i]))
            continue;
        rc = next_part(w, boundary, false);
        if (rc == OUTBOX_EOK)
            rc = put_attachment(w, i, true);
    }
    if (rc == OUTBOX_EOK)
        rc = next_part(w, boundary, true);
    return rc;
}

/* Appends the message's content: multipart/mixed when it has attachments
 * other than the inline ones. */
static outbox_err put_content(mime_writer *w)
{
    const outbox_message *m = w->message;
    mime_boundary boundary;
    size_t count = 0;
    outbox_err rc;

    for (size_t i = 0; i < m->attachment_count; i++)
        count += !is_related(m, &m->attachments[i]);
    if (count == 0)
        return put_related(w);
    rc = open_multipart(w, boundary, "mixed", NULL);
    if (rc == OUTBOX_EOK)
        rc = put_related(w);
    for (size_t i = 0; i < m->attachment_count && rc == OUTBOX_EOK; i++) {
        if (is_related(m, &m->attachments[i]))
            continue;
        rc = next_part(w, boundary, false);
        if (rc == OUTBOX_EOK)
            rc = put_attachment(w, i, false);
    }
    if (rc == OUTBOX_EOK)
        rc = next_part(w, boundary, true);
    return rc;
}

/* ------------------------------------------------------------------ */
/* Message                                                             */
/* ------------------------------------------------------------------ */

static bool ends_with_line_break(const outbox_buf *buf)
{
    return buf->size >= 2 && buf->data[buf->size - 2] == '\r'
           && buf->data[buf->size - 1] == '\n';
}

outbox_err outbox__mime_write(char **out, size_t *size, outbox_error *err,
                              const outbox_message *message, int64_t date,
                              const char *boundary_seed)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *seed = (const unsigned char *)boundary_seed;
    mime_writer w = {.err = err, .message = message};
    outbox_err rc;

    *out = NULL;
    if (size != NULL)
        *size = 0;
    if (message->message_id == NULL
        || !outbox_header_value_is_safe(message->message_id))
        return outbox_error_set(err, OUTBOX_EINVAL, "internal",
                                "message %" PRId64 " has no valid Message-ID",
                                message->id);
    for (size_t i = 0; seed != NULL && seed[i] != '\0' && i < SEED_BYTES;
         i++) {
        w.seed_hex[2 * i] = hex[seed[i] >> 4];
        w.seed_hex[2 * i + 1] = hex[seed[i] & 0x0F];
    }
    outbox__buf_init(&w.buf, OUTBOX_MIME_MAX_SIZE);

    rc = put_message_headers(&w, date);
    if (rc == OUTBOX_EOK)
        rc = put_content(&w);

    /* The file ends with a line break, but a text that ends with one
     * already gets no second, which would add an empty line to it. */
    if (rc == OUTBOX_EOK && !ends_with_line_break(&w.buf))
        rc = outbox__buf_puts(&w.buf, "\r\n");
    if (rc == OUTBOX_EOK)
        *out = outbox__buf_take(&w.buf, size);
    if (rc == OUTBOX_EOK && *out == NULL)
        rc = OUTBOX_ENOMEM;

    if (rc == OUTBOX_ELIMIT)
        outbox_error_set(err, rc, "message_too_large",
                         "message %" PRId64 " is larger than %zu MiB once "
                         "encoded; send smaller or fewer attachments",
                         message->id, OUTBOX_MIME_MAX_SIZE >> 20);
    else if (rc == OUTBOX_ENOMEM)
        outbox_error_set(err, rc, "internal",
                         "out of memory while writing message %" PRId64,
                         message->id);
    outbox__buf_free(&w.buf);
    return rc;
}
