/*
 * events.c - the webhook event model: type names, the batch, and the
 * helpers that every provider's parser uses to fill an event.
 *
 * Caps: a batch has at most OUTBOX_EVENTS_MAX events. Identifiers,
 * addresses and tags longer than OUTBOX_EVENT_TEXT_MAX - 1 bytes make the
 * request fail, because a cut id could match another one. A reason is free
 * text for people, so it is cut at a character boundary instead, and the
 * whole text stays in the raw JSON. The raw JSON itself is capped only by
 * the size of the request body, which the listener limits.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/sha.h>

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

outbox_err outbox__event_append(outbox_event_batch *batch, outbox_event **out)
{
    outbox_event *grown;
    size_t count = batch->count;

    if (count >= OUTBOX_EVENTS_MAX)
        return OUTBOX_ELIMIT;

    /* Grow in powers of two: a count that is one is about to double. */
    if (count == 0 || (count & (count - 1)) == 0) {
        size_t capacity = count == 0 ? 1 : count * 2;

        grown = realloc(batch->events, capacity * sizeof(*grown));
        if (grown == NULL)
            return OUTBOX_ENOMEM;
        batch->events = grown;
    }
    memset(&batch->events[count], 0, sizeof(batch->events[count]));
    batch->count = count + 1;
    *out = &batch->events[count];
    return OUTBOX_EOK;
}

outbox_err outbox__event_copy_id(char **out, const char *value)
{
    size_t length;

    *out = NULL;
    if (value == NULL)
        return OUTBOX_EOK;
    length = strlen(value);
    if (length >= OUTBOX_EVENT_TEXT_MAX)
        return OUTBOX_ELIMIT;
    *out = outbox__strndup(value, length);
    return *out != NULL ? OUTBOX_EOK : OUTBOX_ENOMEM;
}

outbox_err outbox__event_copy_text(char **out, const char *value)
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
    return *out != NULL ? OUTBOX_EOK : OUTBOX_ENOMEM;
}

outbox_err outbox__event_set_raw(outbox_event *event, const cJSON *item)
{
    event->raw = cJSON_PrintUnformatted(item);
    return event->raw != NULL ? OUTBOX_EOK : OUTBOX_ENOMEM;
}

outbox_err outbox__event_set_hashed_id(outbox_event *event)
{
    static const char hex[] = "0123456789abcdef";
    static const char prefix[] = "sha256:";
    unsigned char digest[SHA256_DIGEST_LENGTH];
    char *id;

    SHA256((const unsigned char *)event->raw, strlen(event->raw), digest);
    id = malloc(sizeof(prefix) + 2 * sizeof(digest));
    if (id == NULL)
        return OUTBOX_ENOMEM;
    memcpy(id, prefix, sizeof(prefix) - 1);
    for (size_t i = 0; i < sizeof(digest); i++) {
        id[sizeof(prefix) - 1 + 2 * i] = hex[digest[i] >> 4];
        id[sizeof(prefix) + 2 * i] = hex[digest[i] & 0x0F];
    }
    id[sizeof(prefix) - 1 + 2 * sizeof(digest)] = '\0';
    event->event_id = id;
    return OUTBOX_EOK;
}

cJSON *outbox__json_parse(const char *body, size_t size)
{
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(body, size, &end, false);

    if (root == NULL)
        return NULL;
    for (; end < body + size; end++) {
        if (*end != ' ' && *end != '\t' && *end != '\r' && *end != '\n') {
            cJSON_Delete(root);
            return NULL;
        }
    }
    return root;
}

const char *outbox__json_string(const cJSON *object, const char *key)
{
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(object, key);

    return cJSON_IsString(item) ? item->valuestring : NULL;
}

int64_t outbox__json_outbox_id(const cJSON *item)
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

int64_t outbox__json_unix_time(const cJSON *item)
{
    double value;

    if (!cJSON_IsNumber(item))
        return 0;
    value = item->valuedouble;
    if (!isfinite(value) || value < 0 || value > JSON_MAX_EXACT)
        return 0;
    return (int64_t)floor(value);
}
