/*
 * events_parse.h - helpers of the SES, SNS and Postmark parsers.
 * Not installed; names carry the outbox__ prefix.
 */
#ifndef OUTBOX_EVENTS_PARSE_H
#define OUTBOX_EVENTS_PARSE_H

#include <cjson/cJSON.h>

#include "outbox_events.h"

/*
 * Maximum bytes of raw JSON in one batch. Without it, an SES event whose
 * raw JSON is copied into the event of each of its many recipients could
 * take memory in proportion to the square of the body size.
 */
#define OUTBOX__EVENTS_RAW_MAX (32u * 1024u * 1024u)

/*
 * Parses size bytes of body as one JSON value. Bytes after the value other
 * than white space, and a body over the nesting limit of cJSON, fail with
 * OUTBOX_EINVAL and kind "invalid_json". On success the caller owns *out.
 */
outbox_err outbox__events_parse_json(cJSON **out, outbox_error *err,
                                     const char *body, size_t size);

/*
 * Adds one zeroed event to batch and points *out at it. Fails with
 * OUTBOX_ELIMIT past OUTBOX_EVENTS_MAX events and with OUTBOX_ENOMEM.
 */
outbox_err outbox__events_append(outbox_event **out, outbox_event_batch *batch,
                                 outbox_error *err);

/*
 * Copies text into *out. Identifiers and addresses longer than
 * OUTBOX_EVENT_TEXT_MAX bytes fail with OUTBOX_ELIMIT naming field,
 * because a cut id would match the wrong row. NULL text leaves *out NULL.
 */
outbox_err outbox__events_copy(char **out, outbox_error *err,
                               const char *field, const char *text);

/*
 * Copies a free-form text such as a bounce diagnostic into *out, cut at
 * OUTBOX_EVENT_TEXT_MAX bytes on a UTF-8 character boundary: the start of
 * a long diagnostic is still worth keeping.
 */
outbox_err outbox__events_copy_cut(char **out, outbox_error *err,
                                   const char *field, const char *text);

/* Sets *out to "sha256:" and the lowercase hex SHA-256 of the n bytes at
 * data. Fails with OUTBOX_ENOMEM when out of memory or OpenSSL fails. */
outbox_err outbox__events_sha256_id(char **out, outbox_error *err,
                                    const void *data, size_t n);

/* Prints item as compact JSON into *out (malloc'd). */
outbox_err outbox__events_print_raw(char **out, outbox_error *err,
                                    const cJSON *item);

/*
 * Reads an ISO 8601 time as providers send it: "2025-03-05T09:00:02Z",
 * with or without fractional seconds, "Z" or an offset such as "-05:00".
 * Sets *out to unix seconds (fraction dropped); false for anything else.
 */
bool outbox__events_parse_time(int64_t *out, const char *text);

/*
 * Reads an outbox id that the provider echoed: a JSON string of decimal
 * digits or a JSON integer, from 1 to INT64_MAX. Anything else gives 0,
 * which the store treats as "match by provider message id".
 */
int64_t outbox__events_outbox_id(const cJSON *item);

/*
 * Decodes base64 text (RFC 4648, padding required, no white space) into
 * *out (malloc'd) of *size bytes. Fails with OUTBOX_EINVAL on any other
 * character or length.
 */
outbox_err outbox__events_base64_decode(unsigned char **out, size_t *size,
                                        outbox_error *err, const char *text);

#endif /* OUTBOX_EVENTS_PARSE_H */
