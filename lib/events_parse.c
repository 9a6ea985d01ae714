/*
 * events_parse.c - helpers of the SES, SNS and Postmark parsers: JSON,
 * copies within the caps, ids, times and base64.
 *
 * TODO: events.c has helpers for the same work, written in parallel for
 * the SendGrid and Mailgun parsers; merge the two sets into one.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/evp.h>

#include "events_parse.h"
#include "internal.h"

outbox_err outbox__events_parse_json(cJSON **out, outbox_error *err,
                                     const char *body, size_t size)
{
    const char *end = NULL;
    cJSON *json;

    *out = NULL;
    if (body == NULL || size == 0)
        return outbox_error_set(err, OUTBOX_EINVAL, "invalid_json",
                                "the webhook body is empty");
    json = cJSON_ParseWithLengthOpts(body, size, &end, false);
    if (json == NULL)
        return outbox_error_set(err, OUTBOX_EINVAL, "invalid_json",
                                "the webhook body is not valid JSON");

    /* cJSON stops after the first value; a second value or garbage after
     * it means the body is not one JSON document. */
    while (end < body + size
           && (*end == ' ' || *end == '\t' || *end == '\r' || *end == '\n'))
        end++;
    if (end != body + size) {
        cJSON_Delete(json);
        return outbox_error_set(err, OUTBOX_EINVAL, "invalid_json",
                                "the webhook body has bytes after its JSON "
                                "value");
    }
    *out = json;
    return OUTBOX_EOK;
}

outbox_err outbox__events_append(outbox_event **out, outbox_event_batch *batch,
                                 outbox_error *err)
{
    outbox_event *events;

    if (batch->count >= OUTBOX_EVENTS_MAX)
        return outbox_error_set(err, OUTBOX_ELIMIT, "limit_exceeded",
                                "the webhook body has more than %d events",
                                OUTBOX_EVENTS_MAX);
    events = realloc(batch->events, (batch->count + 1) * sizeof(*events));
    if (events == NULL)
        return outbox_error_set(err, OUTBOX_ENOMEM, "out_of_memory",
                                "out of memory while reading events");
    batch->events = events;
    *out = &events[batch->count];
    memset(*out, 0, sizeof(**out));
    batch->count++;
    return OUTBOX_EOK;
}

static outbox_err copy_bytes(char **out, outbox_error *err, const char *text,
                             size_t n)
{
    *out = outbox__strndup(text, n);
    if (*out == NULL)
        return outbox_error_set(err, OUTBOX_ENOMEM, "out_of_memory",
                                "out of memory while reading events");
    return OUTBOX_EOK;
}

outbox_err outbox__events_copy(char **out, outbox_error *err,
                               const char *field, const char *text)
{
    size_t n;

    *out = NULL;
    if (text == NULL)
        return OUTBOX_EOK;
    n = strlen(text);
    if (n > OUTBOX_EVENT_TEXT_MAX)
        return outbox_error_set(err, OUTBOX_ELIMIT, "limit_exceeded",
                                "%s is %zu bytes long, over the maximum of "
                                "%d",
                                field, n, OUTBOX_EVENT_TEXT_MAX);
    return copy_bytes(out, err, text, n);
}

outbox_err outbox__events_copy_cut(char **out, outbox_error *err,
                                   const char *field, const char *text)
{
    size_t n;

    (void)field;
    *out = NULL;
    if (text == NULL)
        return OUTBOX_EOK;
    n = strlen(text);
    if (n > OUTBOX_EVENT_TEXT_MAX) {
        n = OUTBOX_EVENT_TEXT_MAX;

        /* Step back over UTF-8 continuation bytes so that the cut never
         * splits a character. */
        while (n > 0 && ((unsigned char)text[n] & 0xC0) == 0x80)
            n--;
    }
    return copy_bytes(out, err, text, n);
}

outbox_err outbox__events_sha256_id(char **out, outbox_error *err,
                                    const void *data, size_t n)
{
    static const char prefix[] = "sha256:";
    static const char hex[] = "0123456789abcdef";
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int length = 0;
    char *id;

    *out = NULL;
    if (EVP_Digest(data, n, digest, &length, EVP_sha256(), NULL) != 1)
        return outbox_error_set(err, OUTBOX_ENOMEM, "internal",
                                "SHA-256 failed in OpenSSL");
    id = malloc(sizeof(prefix) + 2 * (size_t)length);
    if (id == NULL)
        return outbox_error_set(err, OUTBOX_ENOMEM, "out_of_memory",
                                "out of memory while reading events");
    memcpy(id, prefix, sizeof(prefix) - 1);
    for (unsigned int i = 0; i < length; i++) {
        id[sizeof(prefix) - 1 + 2 * i] = hex[digest[i] >> 4];
        id[sizeof(prefix) + 2 * i] = hex[digest[i] & 0x0F];
    }
    id[sizeof(prefix) - 1 + 2 * (size_t)length] = '\0';
    *out = id;
    return OUTBOX_EOK;
}

outbox_err outbox__events_print_raw(char **out, outbox_error *err,
                                    const cJSON *item)
{
    *out = cJSON_PrintUnformatted(item);
    if (*out == NULL)
        return outbox_error_set(err, OUTBOX_ENOMEM, "out_of_memory",
                                "out of memory while printing an event");
    return OUTBOX_EOK;
}

/* Reads count digits at *p into *value and moves *p past them. */
static bool read_number(const char **p, int count, int *value)
{
    *value = 0;
    for (int i = 0; i < count; i++) {
        char c = (*p)[i];

        if (c < '0' || c > '9')
            return false;
        *value = *value * 10 + (c - '0');
    }
    *p += count;
    return true;
}

static bool expect_char(const char **p, char c)
{
    if (**p != c)
        return false;
    (*p)++;
    return true;
}

/* Reads "Z", "+HH:MM" or "-HH:MM" into seconds east of UTC. */
static bool read_zone(const char *p, int64_t *offset)
{
    int hours = 0;
    int minutes = 0;
    int sign;

    if (p[0] == 'Z' && p[1] == '\0') {
        *offset = 0;
        return true;
    }
    if (*p != '+' && *p != '-')
        return false;
    sign = *p == '-' ? -1 : 1;
    p++;
    if (!read_number(&p, 2, &hours) || !expect_char(&p, ':')
        || !read_number(&p, 2, &minutes) || *p != '\0' || hours > 23
        || minutes > 59)
        return false;
    *offset = sign * (int64_t)(hours * 3600 + minutes * 60);
    return true;
}

bool outbox__events_parse_time(int64_t *out, const char *text)
{
    const char *p = text;
    struct tm tm;
    int64_t offset = 0;

    if (text == NULL)
        return false;
    memset(&tm, 0, sizeof(tm));
    if (!read_number(&p, 4, &tm.tm_year) || !expect_char(&p, '-')
        || !read_number(&p, 2, &tm.tm_mon) || !expect_char(&p, '-')
        || !read_number(&p, 2, &tm.tm_mday) || !expect_char(&p, 'T')
        || !read_number(&p, 2, &tm.tm_hour) || !expect_char(&p, ':')
        || !read_number(&p, 2, &tm.tm_min) || !expect_char(&p, ':')
        || !read_number(&p, 2, &tm.tm_sec))
        return false;

    /* Postmark sends up to seven fraction digits, SES three. */
    if (*p == '.') {
        p++;
        if (*p < '0' || *p > '9')
            return false;
        while (*p >= '0' && *p <= '9')
            p++;
    }
    if (!read_zone(p, &offset))
        return false;
    if (tm.tm_mon < 1 || tm.tm_mon > 12 || tm.tm_mday < 1 || tm.tm_mday > 31
        || tm.tm_hour > 23 || tm.tm_min > 59 || tm.tm_sec > 60)
        return false;
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    *out = (int64_t)timegm(&tm) - offset;
    return true;
}

int64_t outbox__events_outbox_id(const cJSON *item)
{
    const char *text;
    int64_t value = 0;

    if (cJSON_IsNumber(item)) {
        double number = item->valuedouble;

        /* A double represents every integer up to 2^53 exactly. */
        if (number >= 1 && number <= 9007199254740992.0
            && number == (double)(int64_t)number)
            return (int64_t)number;
        return 0;
    }
    if (!cJSON_IsString(item))
        return 0;
    text = item->valuestring;
    if (text[0] == '\0' || strlen(text) > 19)
        return 0;
    for (const char *p = text; *p != '\0'; p++) {
        int digit = *p - '0';

        if (*p < '0' || *p > '9' || value > (INT64_MAX - digit) / 10)
            return 0;
        value = value * 10 + digit;
    }
    return value;
}

outbox_err outbox__events_base64_decode(unsigned char **out, size_t *size,
                                        outbox_error *err, const char *text)
{
    size_t length = strlen(text);
    size_t padding = 0;
    unsigned char *data;
    int decoded;

    *out = NULL;
    *size = 0;

    /* EVP_DecodeBlock skips white space and reads padding as zero bytes,
     * so check the form here and remove the padding bytes afterwards. */
    if (length == 0 || length % 4 != 0 || length > INT32_MAX)
        return outbox_error_set(err, OUTBOX_EINVAL, "unauthenticated",
                                "the signature is not valid base64");
    for (size_t i = 0; i < length; i++) {
        char c = text[i];
        bool tail = i >= length - 2 && c == '=';

        if (tail) {
            padding++;
        } else if (padding > 0
                   || !((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z')
                        || (c >= '0' && c <= '9') || c == '+' || c == '/')) {
            return outbox_error_set(err, OUTBOX_EINVAL, "unauthenticated",
                                    "the signature is not valid base64");
        }
    }
    data = malloc(length / 4 * 3);
    if (data == NULL)
        return outbox_error_set(err, OUTBOX_ENOMEM, "out_of_memory",
                                "out of memory while decoding a signature");
    decoded = EVP_DecodeBlock(data, (const unsigned char *)text, (int)length);
    if (decoded < 0 || (size_t)decoded < padding) {
        free(data);
        return outbox_error_set(err, OUTBOX_EINVAL, "unauthenticated",
                                "the signature is not valid base64");
    }
    *out = data;
    *size = (size_t)decoded - padding;
    return OUTBOX_EOK;
}
