/*
 * events.c - the webhook event model: type names, the batch, and the
 * helpers that every provider's parser uses to fill an event.
 *
 * Caps: a batch has at most OUTBOX_EVENTS_MAX events. Identifiers,
 * addresses and tags longer than OUTBOX_EVENT_TEXT_MAX - 1 bytes make the
 * request fail, because a cut id could match another one. A reason is free
 * text for people, so it is cut at a character boundary instead, and the
 * whole text stays in the raw JSON. The raw JSON itself is capped by the
 * size of the request body, which the listener limits, and, for parsers
 * that copy it per recipient, by OUTBOX_EVENTS_RAW_MAX.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/evp.h>

#include "events_internal.h"

/* JSON numbers are doubles, which hold whole numbers exactly up to 2^53. */
#define JSON_MAX_EXACT 9007199254740992.0

/* Decimal digits of the largest outbox id a string may carry (2^53). */
#define OUTBOX_ID_MAX_DIGITS 16

const char *outbox_event_type_name(outbox_event_type type)
{
    switch (type) {
    case OUTBOX_EVENT_OTHER:
        return "other";
    case OUTBOX_EVENT_ACCEPTED:
        return "accepted";
    case OUTBOX_EVENT_DELIVERED:
        return "delivered";
    case OUTBOX_EVENT_DEFERRED:
        return "deferred";
    case OUTBOX_EVENT_BOUNCED:
        return "bounced";
    case OUTBOX_EVENT_COMPLAINED:
        return "complained";
    case OUTBOX_EVENT_DROPPED:
        return "dropped";
    case OUTBOX_EVENT_OPENED:
        return "opened";
    case OUTBOX_EVENT_CLICKED:
        return "clicked";
    case OUTBOX_EVENT_UNSUBSCRIBED:
        return "unsubscribed";
    case OUTBOX_EVENT_RESUBSCRIBED:
        return "resubscribed";
    }
    return "other";
}

const char *outbox_bounce_kind_name(outbox_bounce_kind kind)
{
    switch (kind) {
    case OUTBOX_BOUNCE_NONE:
        return NULL;
    case OUTBOX_BOUNCE_HARD:
        return "hard";
    case OUTBOX_BOUNCE_SOFT:
        return "soft";
    }
    return NULL;
}

static void event_free(outbox_event *event)
{
    free(event->provider_event);
    free(event->event_id);
    free(event->provider_message_id);
    free(event->recipient);
    free(event->reason);
    free(event->tags);
    free(event->raw);
}

void outbox_event_batch_free(outbox_event_batch *batch)
{
    if (batch == NULL)
        return;
    for (size_t i = 0; i < batch->count; i++)
        event_free(&batch->events[i]);
    free(batch->events);
    batch->events = NULL;
    batch->count = 0;
}

/* Fills err for a failed allocation while reading field. */
static outbox_err out_of_memory(outbox_error *err, const char *field)
{
    return outbox_error_set(err, OUTBOX_ENOMEM, OUTBOX_EVENTS_KIND_NOMEM,
                            "out of memory reading %s", field);
}

outbox_err outbox__events_parse_json(cJSON **out, outbox_error *err,
                                     const char *kind, const char *name,
                                     const char *body, size_t size)
{
    const char *end = NULL;
    cJSON *json;

    *out = NULL;
    if (body == NULL || size == 0)
        return outbox_error_set(err, OUTBOX_EINVAL, kind,
                                "%s is not valid JSON: it is empty", name);
    if (!outbox__utf8_valid(body, size))
        return outbox_error_set(err, OUTBOX_EINVAL, kind,
                                "%s is not UTF-8 text", name);
    json = cJSON_ParseWithLengthOpts(body, size, &end, false);
    if (json == NULL)
        return outbox_error_set(err, OUTBOX_EINVAL, kind,
                                "%s is not valid JSON", name);

    /* cJSON stops after the first value, so a second value or garbage
     * after it means the body is not one JSON document. */
    while (end < body + size
           && (*end == ' ' || *end == '\t' || *end == '\r' || *end == '\n'))
        end++;
    if (end != body + size) {
        cJSON_Delete(json);
        return outbox_error_set(err, OUTBOX_EINVAL, kind,
                                "%s is not valid JSON: it has bytes after "
                                "its JSON value", name);
    }
    *out = json;
    return OUTBOX_EOK;
}

outbox_err outbox__events_append(outbox_event **out, outbox_error *err,
                                 outbox_event_batch *batch)
{
    outbox_event *grown;
    size_t count = batch->count;

    *out = NULL;
    if (count >= OUTBOX_EVENTS_MAX)
        return outbox_error_set(err, OUTBOX_ELIMIT, OUTBOX_EVENTS_KIND_LIMIT,
                                "the webhook body has more than %d events",
                                OUTBOX_EVENTS_MAX);

    /* Grow in powers of two: a count that is one is about to double. */
    if (count == 0 || (count & (count - 1)) == 0) {
        size_t capacity = count == 0 ? 1 : count * 2;

        grown = realloc(batch->events, capacity * sizeof(*grown));
        if (grown == NULL)
            return out_of_memory(err, "events");
        batch->events = grown;
    }
    memset(&batch->events[count], 0, sizeof(batch->events[count]));
    batch->count = count + 1;
    *out = &batch->events[count];
    return OUTBOX_EOK;
}

outbox_err outbox__events_copy_id(char **out, outbox_error *err,
                                  const char *field, const char *value)
{
    size_t length;

    *out = NULL;
    if (value == NULL)
        return OUTBOX_EOK;
    length = strlen(value);
    if (length >= OUTBOX_EVENT_TEXT_MAX)
        return outbox_error_set(err, OUTBOX_ELIMIT, OUTBOX_EVENTS_KIND_LIMIT,
                                "%s is %zu bytes long, over the maximum of "
                                "%d",
                                field, length, OUTBOX_EVENT_TEXT_MAX - 1);
    *out = outbox__strndup(value, length);
    return *out != NULL ? OUTBOX_EOK : out_of_memory(err, field);
}

outbox_err outbox__events_copy_text(char **out, outbox_error *err,
                                    const char *field, const char *value)
{
    size_t length;

    *out = NULL;
    if (value == NULL)
        return OUTBOX_EOK;
    length = strlen(value);
    if (length >= OUTBOX_EVENT_TEXT_MAX) {
        length = OUTBOX_EVENT_TEXT_MAX - 1;

        /* Step back over continuation bytes to the start of a character,
         * which the cut then drops whole. */
        while (length > 0 && ((unsigned char)value[length] & 0xC0) == 0x80)
            length--;
    }
    *out = outbox__strndup(value, length);
    return *out != NULL ? OUTBOX_EOK : out_of_memory(err, field);
}

outbox_err outbox__events_print_json(char **out, outbox_error *err,
                                     const cJSON *item)
{
    *out = cJSON_PrintUnformatted(item);
    return *out != NULL ? OUTBOX_EOK : out_of_memory(err, "an event's JSON");
}

outbox_err outbox__events_sha256_id(char **out, outbox_error *err,
                                    const void *data, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    static const char prefix[] = "sha256:";
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int length = 0;
    char *id;

    *out = NULL;
    if (EVP_Digest(data, n, digest, &length, EVP_sha256(), NULL) != 1)
        return outbox_error_set(err, OUTBOX_ENOMEM, "internal",
                                "SHA-256 failed in OpenSSL");
    id = malloc(sizeof(prefix) + 2 * (size_t)length);
    if (id == NULL)
        return out_of_memory(err, "an event id");
    memcpy(id, prefix, sizeof(prefix) - 1);
    for (unsigned int i = 0; i < length; i++) {
        id[sizeof(prefix) - 1 + 2 * i] = hex[digest[i] >> 4];
        id[sizeof(prefix) + 2 * i] = hex[digest[i] & 0x0F];
    }
    id[sizeof(prefix) - 1 + 2 * (size_t)length] = '\0';
    *out = id;
    return OUTBOX_EOK;
}

const char *outbox__events_string(const cJSON *object, const char *key)
{
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(object, key);

    return cJSON_IsString(item) ? item->valuestring : NULL;
}

int64_t outbox__events_outbox_id(const cJSON *item)
{
    if (cJSON_IsNumber(item)) {
        double value = item->valuedouble;

        if (!isfinite(value) || value < 1 || value > JSON_MAX_EXACT
            || floor(value) != value)
            return 0;
        return (int64_t)value;
    }
    if (cJSON_IsString(item)) {
        const char *text = item->valuestring;
        size_t length = strlen(text);
        int64_t value = 0;

        if (length == 0 || length > OUTBOX_ID_MAX_DIGITS)
            return 0;
        for (size_t i = 0; i < length; i++) {
            if (text[i] < '0' || text[i] > '9')
                return 0;
            value = value * 10 + (text[i] - '0');
        }
        if (value > (int64_t)JSON_MAX_EXACT)
            return 0;
        return value;
    }
    return 0;
}

bool outbox__events_unix_time(int64_t *out, const cJSON *item)
{
    double value;

    *out = 0;
    if (!cJSON_IsNumber(item))
        return false;
    value = item->valuedouble;
    if (!isfinite(value) || value < 0 || value > JSON_MAX_EXACT)
        return false;
    *out = (int64_t)floor(value);
    return true;
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

bool outbox__events_iso_time(int64_t *out, const char *text)
{
    const char *p = text;
    struct tm tm;
    int64_t offset = 0;

    *out = 0;
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
    if (!read_zone(p, &offset)
        || !outbox__utc_seconds(out, tm.tm_year, tm.tm_mon, tm.tm_mday,
                                tm.tm_hour, tm.tm_min, tm.tm_sec))
        return false;
    *out -= offset;

    /* No provider sends a time before 1970; the stores treat 0 as none. */
    if (*out < 0) {
        *out = 0;
        return false;
    }
    return true;
}

static bool is_base64_char(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z')
           || (c >= '0' && c <= '9') || c == '+' || c == '/';
}

outbox_err outbox__events_base64_decode(unsigned char **out, size_t *size,
                                        outbox_error *err, const char *kind,
                                        const char *field, const char *text,
                                        size_t max_text)
{
    size_t length = strlen(text);
    size_t padding = 0;
    unsigned char *data;
    int decoded = 0;

    *out = NULL;
    *size = 0;
    if (length > max_text || length > INT32_MAX)
        return outbox_error_set(err, OUTBOX_EINVAL, kind,
                                "%s is over %zu bytes of base64", field,
                                max_text);

    /* EVP_DecodeBlock skips white space and reads padding as zero bytes,
     * so check the form here and remove the padding bytes afterwards. */
    if (length % 4 != 0)
        return outbox_error_set(err, OUTBOX_EINVAL, kind,
                                "%s is not valid base64", field);
    for (size_t i = 0; i < length; i++) {
        bool tail = i + 2 >= length && text[i] == '=';

        if (tail)
            padding++;
        else if (padding > 0 || !is_base64_char(text[i]))
            return outbox_error_set(err, OUTBOX_EINVAL, kind,
                                    "%s is not valid base64", field);
    }

    /* One byte more than the decoded size, so that empty text still gets
     * a buffer of its own. */
    data = malloc(length / 4 * 3 + 1);
    if (data == NULL)
        return out_of_memory(err, field);
    if (length > 0)
        decoded = EVP_DecodeBlock(data, (const unsigned char *)text,
                                  (int)length);
    if (decoded < 0 || (size_t)decoded < padding) {
        free(data);
        return outbox_error_set(err, OUTBOX_EINVAL, kind,
                                "%s is not valid base64", field);
    }
    *out = data;
    *size = (size_t)decoded - padding;
    return OUTBOX_EOK;
}
