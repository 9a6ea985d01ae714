/*
 * mime.h - writes a message as RFC 5322 text with MIME parts. Not installed.
 *
 * The file provider uses it to store each message as a complete .eml file.
 */
#ifndef OUTBOX_MIME_H
#define OUTBOX_MIME_H

#include "internal.h"

/* Cap on the written message, headers and encoded parts included. */
#define OUTBOX_MIME_MAX_SIZE ((size_t)64 * 1024 * 1024)

/* RFC 5322 section 2.1.1: header lines should stay within 78 characters. */
#define OUTBOX_MIME_LINE_GOAL 78

/*
 * Writes message as one RFC 5322 message with CRLF line ends into *out, a
 * malloc'd NUL-terminated string of *size bytes that the caller frees.
 *
 * date is the unix time written in the Date header. The multipart
 * boundaries are "=_outbox_", the hex of the first 24 bytes of
 * boundary_seed, "_" and a counter. They are safe whatever the seed,
 * because no encoded part can contain them.
 *
 * Bcc recipients are never written. On failure *out is NULL and err
 * contains the kind: "invalid_headers", "invalid_header_value",
 * "invalid_attachment", "message_too_large" (over OUTBOX_MIME_MAX_SIZE), or
 * "internal" for a missing Message-ID and for OUTBOX_ENOMEM.
 */
outbox_err outbox__mime_write(char **out, size_t *size, outbox_error *err,
                              const outbox_message *message, int64_t date,
                              const char *boundary_seed);

/* The encodings below (mime_encode.c) append to buf. They fail only with
 * OUTBOX_ENOMEM or OUTBOX_ELIMIT unless their comment names another
 * error. */

/*
 * Appends "name: value" and CRLF, folded before a space or tab so lines
 * stay within OUTBOX_MIME_LINE_GOAL where the value allows. value may
 * already hold CRLF SP folds, as outbox_header_encode_text returns them.
 * Fails with OUTBOX_EINVAL and kind "invalid_header_value" when a word is
 * too long for the 998-character limit of a line.
 */
outbox_err outbox__mime_put_header(outbox_buf *buf, outbox_error *err,
                                   const char *name, const char *value);

/*
 * Appends text as quoted-printable (RFC 2045 section 6.7). CRLF and bare
 * LF become CRLF hard breaks. "=", bytes outside printable ASCII and a
 * space or tab before a line break or the end are written as =XX. Lines
 * are at most 76 characters.
 */
outbox_err outbox__mime_put_quoted_printable(outbox_buf *buf,
                                             const char *text);

/* Appends data as base64 in lines of 76 characters joined by CRLF, with
 * no CRLF after the last line. */
outbox_err outbox__mime_put_base64(outbox_buf *buf, const unsigned char *data,
                                   size_t size);

/*
 * Appends "; name=value" to a header value being built. A value that is
 * not short printable ASCII takes the RFC 2231 form
 * name*=UTF-8''percent-encoded, split into name*0*=, name*1*= ... pieces
 * when too long for one line.
 */
outbox_err outbox__mime_append_parameter(outbox_buf *field, const char *name,
                                         const char *value);

#endif /* OUTBOX_MIME_H */
