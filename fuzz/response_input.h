/*
 * response_input.h - the input of the classify fuzz targets, turned into
 * a response as the daemon captures it:
 *   bytes 0-1   HTTP status: 100 + (big-endian value % 500)
 *   byte 2      libcurl result code, an index into a list of the codes a
 *               delivery meets
 *   byte 3      flags: bit 0 sets body_truncated, bit 1 fills curl_error
 *               with libcurl's text (else ""), bit 2 makes the status 0
 *               as when no response arrived
 *   then        header lines "Name: value", ended by LF or CRLF, up to a
 *               blank line; lines without a colon are skipped
 *   the rest    the body, NUL-terminated and capped at 64 KiB
 */
#ifndef OUTBOX_FUZZ_RESPONSE_INPUT_H
#define OUTBOX_FUZZ_RESPONSE_INPUT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "provider.h"

typedef void (*fuzz_classify_fn)(outbox_result *result,
                                 const outbox_response *response);
typedef void (*fuzz_check_fn)(const outbox_result *result,
                              const outbox_response *response);

/*
 * Builds the response that data encodes and classifies it into a result
 * whose every byte was 0xA5 before, so a field that classify leaves unset
 * fails check. Inputs shorter than the 4-byte prefix are skipped.
 */
void fuzz_classify_input(const uint8_t *data, size_t size,
                         fuzz_classify_fn classify, fuzz_check_fn check);

/* Prints the problem and aborts, so libFuzzer saves the input. */
_Noreturn void fuzz_fail(const char *problem, long status);

/* Fails unless error.kind and error.text of result are NUL-terminated
 * valid UTF-8, because the store writes them into TEXT columns. */
void fuzz_check_error_texts(const outbox_result *result, long status);

#endif /* OUTBOX_FUZZ_RESPONSE_INPUT_H */
