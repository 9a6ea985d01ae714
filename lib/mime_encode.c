/*
 * mime_encode.c - the encodings that the MIME writer (mime.c) applies to
 * one header line or one body: folding, quoted-printable, base64 lines and
 * RFC 2231 parameters. Each appends to an outbox_buf and does not read the
 * message.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "mime.h"

/* RFC 5322 section 2.1.1: no line may be longer than 998 characters. */
#define LINE_LIMIT 998

/* RFC 2045: quoted-printable and base64 lines are at most 76 characters. */
#define ENCODED_LINE 76

/* Maximum length of a parameter value written as a quoted string. Longer
 * values take the RFC 2231 form, which can be split across lines. */
#define QUOTED_PARAMETER_MAX 60

#define LINE_GOAL OUTBOX_MIME_LINE_GOAL

static bool is_wsp(char c)
{
    return c == ' ' || c == '\t';
}

/*
 * Appends one line of a header and its CRLF, folded before a space or tab
 * so each piece stays within LINE_GOAL characters. The fold is never placed
 * before position min (the field name, or the leading space of a
 * continuation line) nor into trailing whitespace, which would leave a line
 * of whitespace only. A line with no such place may stay longer, but not
 * longer than LINE_LIMIT.
 */
static outbox_err put_folded_line(outbox_buf *buf, outbox_error *err,
                                  const char *name, const char *line,
                                  size_t n, size_t min)
{
    size_t text_end = n;
    outbox_err rc = OUTBOX_EOK;

    while (text_end > 0 && is_wsp(line[text_end - 1]))
        text_end--;
    while (rc == OUTBOX_EOK) {
        size_t cut = 0;

        for (size_t i = min; n > LINE_GOAL && i <= LINE_GOAL; i++) {
            if (is_wsp(line[i]) && i < text_end)
                cut = i;
        }
        for (size_t i = LINE_GOAL + 1; cut == 0 && i < text_end; i++) {
            if (is_wsp(line[i]))
                cut = i;
        }
        if (cut == 0)
            cut = n;
        if (cut > LINE_LIMIT)
            return outbox_error_set(err, OUTBOX_EINVAL,
                                    "invalid_header_value",
                                    "header %s has a word longer than %d "
                                    "characters; shorten it",
                                    name, LINE_LIMIT);
        rc = outbox__buf_append(buf, line, cut);
        if (rc == OUTBOX_EOK)
            rc = outbox__buf_puts(buf, "\r\n");
        if (cut == n)
            break;
        line += cut;
        n -= cut;
        text_end -= cut;
        min = 1;
    }
    return rc;
}

outbox_err outbox__mime_put_header(outbox_buf *buf, outbox_error *err,
                                   const char *name, const char *value)
{
    size_t min = strlen(name) + 2;
    outbox_buf field;
    const char *line;
    outbox_err rc;

    outbox__buf_init(&field, buf->cap);
    rc = outbox__buf_printf(&field, "%s: %s", name, value);
    line = field.data;
    while (rc == OUTBOX_EOK) {
        const char *end = strstr(line, "\r\n");
        size_t n = end != NULL ? (size_t)(end - line) : strlen(line);

        rc = put_folded_line(buf, err, name, line, n, min);
        if (end == NULL)
            break;
        line = end + 2;
        min = 1;
    }
    outbox__buf_free(&field);
    return rc;
}

/* Returns the length of the line break at p (CRLF or a bare LF), or 0. */
static size_t line_break_at(const unsigned char *p)
{
    if (p[0] == '\n')
        return 1;
    if (p[0] == '\r' && p[1] == '\n')
        return 2;
    return 0;
}

/*
 * A soft break ("=" CRLF) ends a line once 75 characters are used, so the
 * line with its "=" stays within 76, and never splits an =XX triplet.
 */
outbox_err outbox__mime_put_quoted_printable(outbox_buf *buf,
                                             const char *text)
{
    static const char hex[] = "0123456789ABCDEF";
    const unsigned char *p = (const unsigned char *)text;
    char line[ENCODED_LINE + 4];
    size_t used = 0;
    outbox_err rc = OUTBOX_EOK;

    while (*p != '\0' && rc == OUTBOX_EOK) {
        size_t line_break = line_break_at(p);
        bool line_end = p[1] == '\0' || line_break_at(p + 1) > 0;
        bool literal = (*p >= 33 && *p <= 126 && *p != '=')
                       || (is_wsp((char)*p) && !line_end);
        size_t width = literal ? 1 : 3;

        if (line_break > 0) {
            memcpy(line + used, "\r\n", 2);
            rc = outbox__buf_append(buf, line, used + 2);
            used = 0;
            p += line_break;
            continue;
        }
        if (used + width > ENCODED_LINE - 1) {
            memcpy(line + used, "=\r\n", 3);
            rc = outbox__buf_append(buf, line, used + 3);
            used = 0;
        }
        if (literal) {
            line[used++] = (char)*p;
        } else {
            line[used++] = '=';
            line[used++] = hex[*p >> 4];
            line[used++] = hex[*p & 0x0F];
        }
        p++;
    }
    if (rc == OUTBOX_EOK && used > 0)
        rc = outbox__buf_append(buf, line, used);
    return rc;
}

outbox_err outbox__mime_put_base64(outbox_buf *buf, const unsigned char *data,
                                   size_t size)
{
    size_t encoded_size = 0;
    char *encoded;
    outbox_err rc = OUTBOX_EOK;

    /* Fail before the base64 copy of an attachment that cannot fit. */
    if (outbox__base64_size(size) > buf->cap - buf->size)
        return OUTBOX_ELIMIT;
    encoded = outbox__base64(data, size, &encoded_size);
    if (encoded == NULL)
        return OUTBOX_ENOMEM;
    for (size_t offset = 0; offset < encoded_size && rc == OUTBOX_EOK;
         offset += ENCODED_LINE) {
        size_t n = encoded_size - offset;

        if (n > ENCODED_LINE)
            n = ENCODED_LINE;
        if (offset > 0)
            rc = outbox__buf_puts(buf, "\r\n");
        if (rc == OUTBOX_EOK)
            rc = outbox__buf_append(buf, encoded + offset, n);
    }
    free(encoded);
    return rc;
}

/* Returns true if c may stand unencoded in an RFC 2231 parameter value. */
static bool is_attribute_char(unsigned char c)
{
    return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z')
           || (c >= 'a' && c <= 'z')
           || (c != '\0' && strchr("!#$&+-.^_`|~", c) != NULL);
}

/* Returns true if value can be written as a quoted parameter that fits a
 * line: printable ASCII without '"' or '\'. */
static bool is_plain_parameter(const char *value)
{
    size_t n = strlen(value);

    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)value[i];

        if (c < 32 || c > 126 || c == '"' || c == '\\')
            return false;
    }
    return n > 0 && n <= QUOTED_PARAMETER_MAX;
}

/* Each RFC 2231 piece is sized so that the line " name*NN*=piece;" stays
 * within LINE_GOAL while the piece number NN has at most two digits. */
outbox_err outbox__mime_append_parameter(outbox_buf *field, const char *name,
                                         const char *value)
{
    static const char hex[] = "0123456789ABCDEF";
    static const char charset[] = "UTF-8''";
    const unsigned char *p = (const unsigned char *)value;
    size_t budget = LINE_GOAL - strlen(" *NN*=;") - strlen(name);
    size_t piece = strlen(charset);
    unsigned index = 0;
    outbox_err rc;

    if (is_plain_parameter(value))
        return outbox__buf_printf(field, "; %s=\"%s\"", name, value);
    for (size_t i = 0; p[i] != '\0'; i++)
        piece += is_attribute_char(p[i]) ? 1 : 3;
    if (piece <= budget)
        rc = outbox__buf_printf(field, "; %s*=%s", name, charset);
    else
        rc = outbox__buf_printf(field, "; %s*0*=%s", name, charset);
    piece = strlen(charset);

    for (; *p != '\0' && rc == OUTBOX_EOK; p++) {
        bool literal = is_attribute_char(*p);
        size_t width = literal ? 1 : 3;
        char unit[3] = {(char)*p, 0, 0};

        if (piece + width > budget) {
            rc = outbox__buf_printf(field, "; %s*%u*=", name, ++index);
            piece = 0;
        }
        if (!literal) {
            unit[0] = '%';
            unit[1] = hex[*p >> 4];
            unit[2] = hex[*p & 0x0F];
        }
        if (rc == OUTBOX_EOK)
            rc = outbox__buf_append(field, unit, width);
        piece += width;
    }
    return rc;
}
