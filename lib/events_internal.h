/*
 * events_internal.h - helpers shared by the webhook parsers and checks.
 * Not installed.
 */
#ifndef OUTBOX_EVENTS_INTERNAL_H
#define OUTBOX_EVENTS_INTERNAL_H

#include <cjson/cJSON.h>

#include "internal.h"
#include "outbox_events.h"

/* Kinds that the parsers put in err. */
#define OUTBOX_EVENTS_KIND_INVALID "invalid_payload"
#define OUTBOX_EVENTS_KIND_LIMIT "limit_exceeded"
#define OUTBOX_EVENTS_KIND_NOMEM "out_of_memory"

/* Kind of every failed request check. */
#define OUTBOX_EVENTS_KIND_UNAUTHENTICATED "unauthenticated"

/*
 * Adds a zeroed event to batch and points *out at it. Fails with
 * OUTBOX_ELIMIT once batch has OUTBOX_EVENTS_MAX events, or OUTBOX_ENOMEM.
 */
outbox_err outbox__event_append(outbox_event_batch *batch, outbox_event **out);

/*
 * Copies an identifier or an address into *out. Such a value is never
 * cut, because a cut id could match another one: a value longer than
 * OUTBOX_EVENT_TEXT_MAX - 1 bytes fails with OUTBOX_ELIMIT. NULL copies
 * as NULL.
 */
outbox_err outbox__event_copy_id(char **out, const char *value);

/*
 * Copies free text for people (a reason, a diagnostic) into *out, cut to
 * at most OUTBOX_EVENT_TEXT_MAX - 1 bytes at a UTF-8 character boundary.
 * NULL copies as NULL.
 */
outbox_err outbox__event_copy_text(char **out, const char *value);

/* Sets event->raw to item printed as compact JSON. */
outbox_err outbox__event_set_raw(outbox_event *event, const cJSON *item);

/* Sets event->event_id to "sha256:" and the hex SHA-256 of event->raw. */
outbox_err outbox__event_set_hashed_id(outbox_event *event);

/* Parses the size bytes at body as one JSON value, with nothing but
 * white space after it. Returns NULL if they are anything else, or when
 * out of memory. */
cJSON *outbox__json_parse(const char *body, size_t size);

/* Returns the string value of object's member key, or NULL when the
 * member is absent or not a string. */
const char *outbox__json_string(const cJSON *object, const char *key);

/*
 * Reads an outbox id echoed by a provider: a JSON string of decimal
 * digits or a whole JSON number, from 1 to 2^53. Anything else gives 0,
 * so the event is matched by its message id instead.
 */
int64_t outbox__json_outbox_id(const cJSON *item);

/* Reads a unix time in seconds from a JSON number, dropping any
 * fraction; 0 when item is absent, not a number or out of range. */
int64_t outbox__json_unix_time(const cJSON *item);

/*
 * Decodes base64 text (whitespace between characters is skipped) into a
 * malloc'd buffer. Returns NULL for invalid base64, for text longer than
 * max_text bytes, or when out of memory.
 */
unsigned char *outbox__base64_decode(const char *text, size_t max_text,
                                     size_t *out_size);

/*
 * Checks that timestamp is a unix time in decimal digits within max_age
 * seconds of now. On failure fills err with kind "unauthenticated".
 */
outbox_err outbox__check_timestamp(outbox_error *err, const char *timestamp,
                                   int64_t now, int64_t max_age);

#endif /* OUTBOX_EVENTS_INTERNAL_H */
