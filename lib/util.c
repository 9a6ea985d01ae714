/*
 * util.c - errors, logging, time text and the small helpers that every
 * module of liboutbox shares.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/evp.h>
#include <openssl/rand.h>

#include "internal.h"

static const char *const error_texts[] = {
#define OUTBOX_ERR_TEXT(name, text) text,
    OUTBOX_ERRNO_MAP(OUTBOX_ERR_TEXT)
#undef OUTBOX_ERR_TEXT
};

const char *outbox_strerror(outbox_err code)
{
    size_t index = (size_t)code;

    if (index >= sizeof(error_texts) / sizeof(error_texts[0]))
        return "unknown error";
    return error_texts[index];
}

outbox_err outbox_error_set(outbox_error *err, outbox_err code,
                            const char *kind, const char *format, ...)
{
    va_list args;

    if (err == NULL)
        return code;
    snprintf(err->kind, sizeof(err->kind), "%s", kind);
    va_start(args, format);
    vsnprintf(err->text, sizeof(err->text), format, args);
    va_end(args);
    return code;
}

void outbox_log(const outbox_logger *logger, outbox_log_level level,
                const char *format, ...)
{
    char line[2048];
    va_list args;

    if (logger == NULL || logger->fn == NULL
        || (logger->max_level > 0 && (int)level > logger->max_level))
        return;
    va_start(args, format);
    vsnprintf(line, sizeof(line), format, args);
    va_end(args);
    logger->fn(logger->context, level, line);
}

/* Writes the escaped form of byte c into piece; returns its length. */
static size_t escape_log_byte(char piece[5], unsigned char c)
{
    static const char hex[] = "0123456789abcdef";

    switch (c) {
    case '"':
    case '\\':
        piece[0] = '\\';
        piece[1] = (char)c;
        return 2;
    case '\r':
        memcpy(piece, "\\r", 2);
        return 2;
    case '\n':
        memcpy(piece, "\\n", 2);
        return 2;
    case '\t':
        memcpy(piece, "\\t", 2);
        return 2;
    default:
        break;
    }
    if (c < 0x20 || c == 0x7F) {
        piece[0] = '\\';
        piece[1] = 'x';
        piece[2] = hex[c >> 4];
        piece[3] = hex[c & 0xF];
        return 4;
    }
    piece[0] = (char)c;
    return 1;
}

const char *outbox_log_quote(char *out, size_t size, const char *text)
{
    static const char cut[] = "...\"";
    const unsigned char *p = (const unsigned char *)(text ? text : "");
    size_t needed = 3;  /* the two quotes and the NUL */
    size_t room;
    size_t used = 0;
    char piece[5];

    if (size < 8) {
        if (size > 0)
            out[0] = '\0';
        return out;
    }
    for (const unsigned char *q = p; *q != '\0'; q++)
        needed += escape_log_byte(piece, *q);

    /* When the whole text does not fit, keep room for the cut mark. */
    room = needed <= size ? size - 2 : size - sizeof(cut);
    out[used++] = '"';
    for (; *p != '\0'; p++) {
        size_t length = escape_log_byte(piece, *p);

        if (used + length > room)
            break;
        memcpy(out + used, piece, length);
        used += length;
    }
    if (*p == '\0') {
        out[used++] = '"';
        out[used] = '\0';
        return out;
    }

    /* If p is inside a multibyte character, cut before its first byte. */
    if ((*p & 0xC0) == 0x80) {
        while (used > 1 && ((unsigned char)out[used - 1] & 0xC0) == 0x80)
            used--;
        if (used > 1 && (unsigned char)out[used - 1] >= 0xC0)
            used--;
    }
    memcpy(out + used, cut, sizeof(cut));
    return out;
}

void outbox_time_format(char out[OUTBOX_TIME_TEXT_SIZE], int64_t t)
{
    /* The store writes the same second into several columns of every
     * message, so each thread keeps the last text it made. */
    static _Thread_local int64_t last_time = -1;
    static _Thread_local char last_text[OUTBOX_TIME_TEXT_SIZE];
    time_t seconds = (time_t)t;
    struct tm tm;

    if (t == last_time) {
        memcpy(out, last_text, OUTBOX_TIME_TEXT_SIZE);
        return;
    }
    if (gmtime_r(&seconds, &tm) == NULL) {
        snprintf(out, OUTBOX_TIME_TEXT_SIZE, "1970-01-01 00:00:00");
        return;
    }
    strftime(out, OUTBOX_TIME_TEXT_SIZE, "%Y-%m-%d %H:%M:%S", &tm);
    memcpy(last_text, out, OUTBOX_TIME_TEXT_SIZE);
    last_time = t;
}

/* Reads the digits of text[from, from + count) as a number; -1 if one of
 * them is not a digit. */
static int read_digits(const char *text, size_t from, size_t count)
{
    int value = 0;

    for (size_t i = from; i < from + count; i++) {
        if (text[i] < '0' || text[i] > '9')
            return -1;
        value = value * 10 + (text[i] - '0');
    }
    return value;
}

/*
 * Fills tm from text in exactly the form of SQLite's datetime(),
 * "YYYY-MM-DD HH:MM:SS". Returns false for any other form, which the
 * caller then reads with sscanf. The store parses a time for every
 * claimed row, and sscanf showed in its profile.
 */
static bool parse_datetime_form(struct tm *tm, const char *text)
{
    static const char pattern[] = "0000-00-00 00:00:00";

    for (size_t i = 0; i < sizeof(pattern) - 1; i++) {
        if (text[i] == '\0' || (pattern[i] != '0' && text[i] != pattern[i]))
            return false;
    }
    if (text[sizeof(pattern) - 1] != '\0')
        return false;
    tm->tm_year = read_digits(text, 0, 4);
    tm->tm_mon = read_digits(text, 5, 2);
    tm->tm_mday = read_digits(text, 8, 2);
    tm->tm_hour = read_digits(text, 11, 2);
    tm->tm_min = read_digits(text, 14, 2);
    tm->tm_sec = read_digits(text, 17, 2);
    return tm->tm_year >= 0 && tm->tm_mon >= 0 && tm->tm_mday >= 0
           && tm->tm_hour >= 0 && tm->tm_min >= 0 && tm->tm_sec >= 0;
}

bool outbox__utc_seconds(int64_t *out, int year, int month, int day,
                         int hour, int minute, int second)
{
    static const int days_in_month[12] = {31, 29, 31, 30, 31, 30,
                                          31, 31, 30, 31, 30, 31};
    bool leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    struct tm tm;

    if (year < 0 || month < 1 || month > 12 || day < 1
        || day > days_in_month[month - 1] || (month == 2 && day == 29 && !leap)
        || hour < 0 || hour > 23 || minute < 0 || minute > 59 || second < 0
        || second > 60)
        return false;
    memset(&tm, 0, sizeof(tm));
    tm.tm_year = year - 1900;
    tm.tm_mon = month - 1;
    tm.tm_mday = day;
    tm.tm_hour = hour;
    tm.tm_min = minute;
    tm.tm_sec = second;
    *out = (int64_t)timegm(&tm);
    return true;
}

bool outbox_time_parse(int64_t *out, const char *text)
{
    struct tm tm;
    int consumed = 0;

    if (text == NULL)
        return false;
    memset(&tm, 0, sizeof(tm));
    if (!parse_datetime_form(&tm, text)
        && (sscanf(text, "%4d-%2d-%2d %2d:%2d:%2d%n", &tm.tm_year,
                   &tm.tm_mon, &tm.tm_mday, &tm.tm_hour, &tm.tm_min,
                   &tm.tm_sec, &consumed)
                != 6
            || text[consumed] != '\0'))
        return false;
    return outbox__utc_seconds(out, tm.tm_year, tm.tm_mon, tm.tm_mday,
                               tm.tm_hour, tm.tm_min, tm.tm_sec);
}

char *outbox__strdup(const char *s)
{
    if (s == NULL)
        return NULL;
    return outbox__strndup(s, strlen(s));
}

char *outbox__strndup(const char *s, size_t n)
{
    char *copy = malloc(n + 1);

    if (copy == NULL)
        return NULL;
    memcpy(copy, s, n);
    copy[n] = '\0';
    return copy;
}

int outbox__strcasecmp(const char *a, const char *b)
{
    return outbox__strncasecmp(a, b, SIZE_MAX);
}

int outbox__strncasecmp(const char *a, const char *b, size_t n)
{
    for (; n > 0; a++, b++, n--) {
        int ca = (unsigned char)*a;
        int cb = (unsigned char)*b;

        if (ca >= 'A' && ca <= 'Z')
            ca += 'a' - 'A';
        if (cb >= 'A' && cb <= 'Z')
            cb += 'a' - 'A';
        if (ca != cb || ca == 0)
            return ca - cb;
    }
    return 0;
}

bool outbox__utf8_valid(const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;

    while (i < n) {
        unsigned char c;
        size_t extra;
        uint32_t code;
        uint64_t word;

        /* Bodies are mostly ASCII: take 8 bytes at once while none has its
         * high bit set and none is NUL. */
        if (n - i >= sizeof(word)) {
            memcpy(&word, p + i, sizeof(word));
            if ((word & 0x8080808080808080u) == 0
                && ((word - 0x0101010101010101u) & ~word
                    & 0x8080808080808080u) == 0) {
                i += sizeof(word);
                continue;
            }
        }
        c = p[i];
        if (c == 0)
            return false;
        if (c < 0x80) {
            i++;
            continue;
        }
        if (c >= 0xC2 && c <= 0xDF) {
            extra = 1;
            code = c & 0x1Fu;
        } else if (c >= 0xE0 && c <= 0xEF) {
            extra = 2;
            code = c & 0x0Fu;
        } else if (c >= 0xF0 && c <= 0xF4) {
            extra = 3;
            code = c & 0x07u;
        } else {
            return false;
        }
        if (n - i <= extra)
            return false;
        for (size_t k = 1; k <= extra; k++) {
            if ((p[i + k] & 0xC0) != 0x80)
                return false;
            code = (code << 6) | (p[i + k] & 0x3Fu);
        }
        /* Overlong forms, UTF-16 surrogates and code points past U+10FFFF
         * are not UTF-8. */
        if ((extra == 2 && code < 0x800) || (extra == 3 && code < 0x10000)
            || (code >= 0xD800 && code <= 0xDFFF) || code > 0x10FFFF)
            return false;
        i += extra + 1;
    }
    return true;
}

void outbox__buf_init(outbox_buf *buf, size_t cap)
{
    buf->data = NULL;
    buf->size = 0;
    buf->capacity = 0;
    buf->cap = cap;
}

void outbox__buf_free(outbox_buf *buf)
{
    free(buf->data);
    buf->data = NULL;
    buf->size = 0;
    buf->capacity = 0;
}

outbox_err outbox__buf_append(outbox_buf *buf, const void *data, size_t n)
{
    if (n > buf->cap || buf->size > buf->cap - n)
        return OUTBOX_ELIMIT;
    if (buf->size + n + 1 > buf->capacity) {
        size_t capacity = buf->capacity ? buf->capacity : 256;
        char *grown;

        while (capacity < buf->size + n + 1)
            capacity *= 2;
        grown = realloc(buf->data, capacity);
        if (grown == NULL)
            return OUTBOX_ENOMEM;
        buf->data = grown;
        buf->capacity = capacity;
    }
    if (n > 0)
        memcpy(buf->data + buf->size, data, n);
    buf->size += n;
    buf->data[buf->size] = '\0';
    return OUTBOX_EOK;
}

outbox_err outbox__buf_puts(outbox_buf *buf, const char *s)
{
    return outbox__buf_append(buf, s, strlen(s));
}

outbox_err outbox__buf_printf(outbox_buf *buf, const char *format, ...)
{
    char small[512];
    va_list args;
    int n;

    va_start(args, format);
    n = vsnprintf(small, sizeof(small), format, args);
    va_end(args);
    if (n < 0)
        return OUTBOX_EINVAL;
    if ((size_t)n < sizeof(small))
        return outbox__buf_append(buf, small, (size_t)n);

    /* Longer than the stack buffer: format straight into the buffer. */
    {
        size_t len = (size_t)n;
        outbox_err rc = outbox__buf_append(buf, NULL, 0);
        char *large;

        if (rc != OUTBOX_EOK)
            return rc;
        large = malloc(len + 1);
        if (large == NULL)
            return OUTBOX_ENOMEM;
        va_start(args, format);
        vsnprintf(large, len + 1, format, args);
        va_end(args);
        rc = outbox__buf_append(buf, large, len);
        free(large);
        return rc;
    }
}

char *outbox__buf_take(outbox_buf *buf, size_t *size)
{
    char *data = buf->data;

    if (data == NULL)
        data = calloc(1, 1);
    if (size != NULL)
        *size = data ? buf->size : 0;
    buf->data = NULL;
    buf->size = 0;
    buf->capacity = 0;
    return data;
}

size_t outbox__base64_size(size_t n)
{
    return (n + 2) / 3 * 4;
}

char *outbox__base64(const unsigned char *data, size_t n, size_t *out_size)
{
    /* EVP_EncodeBlock takes an int length, so encode in chunks whose
     * length is a multiple of 3. */
    const size_t chunk = 3u * 1024u * 1024u;
    size_t size = outbox__base64_size(n);
    char *text;
    size_t written = 0;

    if (n > SIZE_MAX / 2)
        return NULL;
    text = malloc(size + 1);
    if (text == NULL)
        return NULL;
    for (size_t offset = 0; offset < n; offset += chunk) {
        size_t part = n - offset < chunk ? n - offset : chunk;

        written += (size_t)EVP_EncodeBlock((unsigned char *)text + written,
                                           data + offset, (int)part);
    }
    text[written] = '\0';
    if (out_size != NULL)
        *out_size = written;
    return text;
}

bool outbox__random_bytes(unsigned char *out, size_t n)
{
    return n <= INT32_MAX && RAND_bytes(out, (int)n) == 1;
}

void outbox__describe_errno(char *out, size_t size, int error)
{
    if (strerror_r(error, out, size) != 0)
        snprintf(out, size, "error %d", error);
}
