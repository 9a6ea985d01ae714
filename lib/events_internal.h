/*
 * events_internal.h - helpers shared by the webhook parsers and checks.
 * Not installed.
 *
 * Every helper that can fail takes its out-params first, then err, which
 * it fills with a kind below and a text that names the field or body.
 */
#ifndef OUTBOX_EVENTS_INTERNAL_H
#define OUTBOX_EVENTS_INTERNAL_H

#include <cjson/cJSON.h>

#include "internal.h"
#include "outbox_events.h"

/* Kinds that the parsers put in err. */
#define OUTBOX_EVENTS_KIND_INVALID "invalid_payload"
#define OUTBOX_EVENTS_KIND_INVALID_JSON "invalid_json"
#define OUTBOX_EVENTS_KIND_LIMIT "limit_exceeded"
#define OUTBOX_EVENTS_KIND_NOMEM "out_of_memory"

/* Kind of every failed request check. */
#define OUTBOX_EVENTS_KIND_UNAUTHENTICATED "unauthenticated"

/*
 * Maximum bytes of raw JSON in one batch. Without it, an SES event whose
 * raw JSON is copied into the event of each of its many recipients could
 * take memory in proportion to the square of the body size.
 */
#define OUTBOX_EVENTS_RAW_MAX (32u * 1024u * 1024u)

/*
 * Parses the size bytes at body as one JSON value in UTF-8, with nothing
 * but white space after it. On failure fills err with OUTBOX_EINVAL, kind
 * and a text that starts with name (such as "the SendGrid webhook body").
 * On success the caller owns *out.
 */
outbox_err outbox__events_parse_json(cJSON **out, outbox_error *err,
                                     const char *kind, const char *name,
                                     const char *body, size_t size);

/*
 * Adds a zeroed event to batch and points *out at it. Fails with
 * OUTBOX_ELIMIT once batch has OUTBOX_EVENTS_MAX events, or OUTBOX_ENOMEM.
 */
outbox_err outbox__events_append(outbox_event **out, outbox_error *err,
                                 outbox_event_batch *batch);

/*
 * Copies an identifier or an address into *out. Such a value is never
 * cut, because a cut id could match another one: a value longer than
 * OUTBOX_EVENT_TEXT_MAX - 1 bytes fails with OUTBOX_ELIMIT and a text
 * that names field. NULL copies as NULL.
 */
outbox_err outbox__events_copy_id(char **out, outbox_error *err,
                                  const char *field, const char *value);

/*
 * Copies free text for people (a reason, a diagnostic) into *out, cut to
 * at most OUTBOX_EVENT_TEXT_MAX - 1 bytes at a UTF-8 character boundary.
 * NULL copies as NULL. Fails only with OUTBOX_ENOMEM.
 */
outbox_err outbox__events_copy_text(char **out, outbox_error *err,
                                    const char *field, const char *value);

/* Prints item as compact JSON into *out (malloc'd). */
outbox_err outbox__events_print_json(char **out, outbox_error *err,
                                     const cJSON *item);

/* Sets *out to "sha256:" and the lowercase hex SHA-256 of the n bytes at
 * data. Fails with OUTBOX_ENOMEM when out of memory or OpenSSL fails. */
outbox_err outbox__events_sha256_id(char **out, outbox_error *err,
                                    const void *data, size_t n);

/* Returns the string value of object's member key, or NULL when the
 * member is absent or not a string. Keys are compared case-sensitively. */
const char *outbox__events_string(const cJSON *object, const char *key);

/*
 * Reads an outbox id echoed by a provider: a JSON string of decimal
 * digits or a whole JSON number, from 1 to 2^53. Anything else gives 0,
 * so the event is matched by its message id instead.
 */
int64_t outbox__events_outbox_id(const cJSON *item);

/* Reads a unix time in seconds from a JSON number into *out, dropping
 * any fraction. Sets *out to 0 and returns false when item is absent,
 * not a number or out of range. */
bool outbox__events_unix_time(int64_t *out, const cJSON *item);

/*
 * Reads an ISO 8601 time as providers send it: "2025-03-05T09:00:02Z",
 * with or without fractional seconds, "Z" or an offset such as "-05:00".
 * Sets *out to unix seconds (fraction dropped). Sets *out to 0 and
 * returns false for anything else, a time before 1970 included.
 */
bool outbox__events_iso_time(int64_t *out, const char *text);

/*
 * Decodes base64 text (RFC 4648: the standard alphabet, padding required,
 * no white space) into *out (malloc'd) of *size bytes. Empty text decodes
 * to zero bytes. Text longer than max_text bytes or not in that form
 * fails with OUTBOX_EINVAL, kind and a text that names field.
 */
outbox_err outbox__events_base64_decode(unsigned char **out, size_t *size,
                                        outbox_error *err, const char *kind,
                                        const char *field, const char *text,
                                        size_t max_text);

/*
 * Checks that timestamp is a unix time in decimal digits within max_age
 * seconds of now. On failure fills err with kind "unauthenticated".
 */
outbox_err outbox__events_check_timestamp(outbox_error *err,
                                          const char *timestamp, int64_t now,
                                          int64_t max_age);

#endif /* OUTBOX_EVENTS_INTERNAL_H */
