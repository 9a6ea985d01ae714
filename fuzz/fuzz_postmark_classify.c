/*
 * fuzz_postmark_classify.c - libFuzzer target for the classification of
 * Postmark's responses.
 *
 * The input is split into a response as the daemon captures it:
 *   bytes 0-1   HTTP status: 100 + (big-endian value % 500)
 *   byte 2      libcurl result code, an index into curl_codes
 *   byte 3      flags: bit 0 sets body_truncated, bit 1 fills curl_error
 *               with libcurl's text (else ""), bit 2 makes the status 0
 *               as when no response arrived
 *   then        header lines "Name: value", ended by LF or CRLF, up to a
 *               blank line; lines without a colon are skipped
 *   the rest    the body, NUL-terminated and capped at 64 KiB
 * The body's ErrorCode picks among several kinds for a 4xx, so the checks
 * are the rules that hold for every body: 2xx is sent, a transfer error,
 * 429 and 5xx retry, 3xx is misconfigured, and a pause or a rate limit
 * never uses up an attempt. Every string in the result must be
 * NUL-terminated, error.kind and error.text valid UTF-8, and a provider
 * message id printable ASCII without spaces.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "provider_postmark.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Caps that match what the daemon keeps of a response (transfer.c). */
#define MAX_HEADERS 64
#define MAX_BODY (64 * 1024)

#define PREFIX_SIZE 4
#define FLAG_TRUNCATED 0x01
#define FLAG_CURL_ERROR 0x02
#define FLAG_NO_STATUS 0x04

/* A fixed clock keeps a saved input reproducible: 2023-11-14 22:13:20. */
#define FUZZ_NOW 1700000000

/* CURLE_OK first, then failures that a delivery meets in practice. */
static const CURLcode curl_codes[] = {
    CURLE_OK,
    CURLE_COULDNT_RESOLVE_HOST,
    CURLE_COULDNT_CONNECT,
    CURLE_OPERATION_TIMEDOUT,
    CURLE_SSL_CONNECT_ERROR,
    CURLE_SEND_ERROR,
    CURLE_RECV_ERROR,
    CURLE_GOT_NOTHING,
    CURLE_PARTIAL_FILE,
    CURLE_WRITE_ERROR,
};

#define CURL_CODE_COUNT (sizeof(curl_codes) / sizeof(curl_codes[0]))

/* The response and the copies it points into. */
typedef struct fuzz_response {
    outbox_response response;
    outbox_field headers[MAX_HEADERS];
    char *body;
} fuzz_response;

/* Prints the problem and aborts, so libFuzzer saves the input. */
static _Noreturn void fail(const char *problem, long status)
{
    fprintf(stderr, "fuzz_postmark_classify: status %ld: %s\n", status,
            problem);
    abort();
}

/* Adds one header line without its LF. Like the daemon's header callback,
 * it skips spaces and tabs after the colon and drops trailing CR and
 * spaces. Returns false when out of memory. */
static bool add_header(fuzz_response *fuzz, const char *line, size_t length)
{
    const char *colon = memchr(line, ':', length);
    const char *value;
    size_t value_length;
    outbox_field *header;

    if (colon == NULL || fuzz->response.header_count == MAX_HEADERS)
        return true;
    value = colon + 1;
    value_length = length - (size_t)(value - line);
    while (value_length > 0 && (*value == ' ' || *value == '\t')) {
        value++;
        value_length--;
    }
    while (value_length > 0 && (value[value_length - 1] == '\r'
                                || value[value_length - 1] == ' '))
        value_length--;

    header = &fuzz->headers[fuzz->response.header_count];
    header->name = outbox__strndup(line, (size_t)(colon - line));
    header->value = outbox__strndup(value, value_length);
    fuzz->response.header_count++;
    return header->name != NULL && header->value != NULL;
}

/* Reads header lines up to a blank line and returns the offset of the
 * body, or SIZE_MAX when out of memory. */
static size_t read_headers(fuzz_response *fuzz, const char *text,
                           size_t size)
{
    size_t offset = 0;

    while (offset < size) {
        const char *line = text + offset;
        const char *newline = memchr(line, '\n', size - offset);
        size_t length = newline != NULL ? (size_t)(newline - line)
                                        : size - offset;

        offset += newline != NULL ? length + 1 : length;
        if (length == 0 || (length == 1 && line[0] == '\r'))
            break;
        if (!add_header(fuzz, line, length))
            return SIZE_MAX;
    }
    return offset;
}

/* Fills fuzz from the input; false when out of memory. */
static bool build_response(fuzz_response *fuzz, const uint8_t *data,
                           size_t size)
{
    outbox_response *response = &fuzz->response;
    unsigned flags = data[3];
    const char *text = (const char *)data + PREFIX_SIZE;
    size_t body_offset;
    size_t body_size;

    response->status = 100 + (long)(((unsigned)data[0] << 8 | data[1]) % 500);
    response->curl_code = curl_codes[data[2] % CURL_CODE_COUNT];
    response->curl_error = "";
    if (flags & FLAG_CURL_ERROR)
        response->curl_error = curl_easy_strerror(response->curl_code);
    if (flags & FLAG_NO_STATUS)
        response->status = 0;
    response->now = FUZZ_NOW;
    response->headers = fuzz->headers;

    body_offset = read_headers(fuzz, text, size - PREFIX_SIZE);
    if (body_offset == SIZE_MAX)
        return false;
    body_size = size - PREFIX_SIZE - body_offset;
    response->body_truncated = (flags & FLAG_TRUNCATED) != 0;
    if (body_size > MAX_BODY) {
        body_size = MAX_BODY;
        response->body_truncated = true;
    }
    fuzz->body = malloc(body_size + 1);
    if (fuzz->body == NULL)
        return false;
    memcpy(fuzz->body, text + body_offset, body_size);
    fuzz->body[body_size] = '\0';
    response->body = fuzz->body;
    response->body_size = body_size;
    return true;
}

/* Returns true if the array of size bytes contains a NUL-terminated
 * string of valid UTF-8. */
static bool is_utf8_string(const char *text, size_t size)
{
    const char *end = memchr(text, '\0', size);

    return end != NULL && outbox__utf8_valid(text, (size_t)(end - text));
}

/* Returns true if id is a NUL-terminated run of printable ASCII without
 * spaces, possibly empty. */
static bool is_token(const char *id, size_t size)
{
    const char *end = memchr(id, '\0', size);

    if (end == NULL)
        return false;
    for (const char *p = id; p < end; p++) {
        if (*p <= ' ' || *p >= 0x7F)
            return false;
    }
    return true;
}

/* Checks the kind against the rules that hold whatever the body is. */
static void check_kind(const outbox_result *result,
                       const outbox_response *response)
{
    long status = response->status;
    outbox_result_kind kind = result->kind;

    if (kind < OUTBOX_RESULT_SENT || kind > OUTBOX_RESULT_UNKNOWN)
        fail("result kind is not an outbox_result_kind", status);
    if (status >= 200 && status <= 299) {
        if (kind != OUTBOX_RESULT_SENT)
            fail("a 2xx response is not sent", status);
    } else if (response->curl_code != CURLE_OK || status == 429
               || (status >= 500 && status <= 599)) {
        if (kind != OUTBOX_RESULT_RETRY)
            fail("a transfer error, 429 or 5xx is not a retry", status);
    } else if (status >= 300 && status <= 399) {
        if (kind != OUTBOX_RESULT_MISCONFIGURED)
            fail("a 3xx response is not misconfigured", status);
    } else if (status >= 400 && status <= 499) {
        if (kind == OUTBOX_RESULT_SENT || kind == OUTBOX_RESULT_UNKNOWN)
            fail("a 4xx response is sent or unknown", status);
    } else if (kind != OUTBOX_RESULT_UNKNOWN) {
        fail("an unexpected status is not unknown", status);
    }
}

static void check_result(const outbox_result *result,
                         const outbox_response *response)
{
    long status = response->status;

    check_kind(result, response);
    if (result->kind == OUTBOX_RESULT_MISCONFIGURED
        && result->counts_as_failure)
        fail("a pause uses up an attempt", status);
    if (!is_utf8_string(result->error.kind, sizeof(result->error.kind)))
        fail("error.kind is not a NUL-terminated UTF-8 string", status);
    if (!is_utf8_string(result->error.text, sizeof(result->error.text)))
        fail("error.text is not a NUL-terminated UTF-8 string", status);
    if (strcmp(result->error.kind, "rate_limited") == 0
        && result->counts_as_failure)
        fail("a rate limit uses up an attempt", status);
    if (!is_token(result->provider_message_id,
                  sizeof(result->provider_message_id)))
        fail("provider_message_id is not a printable token", status);
    if (result->kind != OUTBOX_RESULT_SENT
        && result->provider_message_id[0] != '\0')
        fail("a result other than sent has a provider_message_id", status);
    if (result->retry_after < -1)
        fail("retry_after is below -1", status);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_response fuzz;
    outbox_result result;

    if (size < PREFIX_SIZE)
        return 0;
    memset(&fuzz, 0, sizeof(fuzz));

    if (build_response(&fuzz, data, size)) {
        /* A field that the classifier leaves unset keeps this pattern and
         * fails the kind or NUL checks. */
        memset(&result, 0xA5, sizeof(result));
        outbox__postmark_classify(&result, &fuzz.response);
        check_result(&result, &fuzz.response);
    }

    for (size_t i = 0; i < fuzz.response.header_count; i++) {
        free(fuzz.headers[i].name);
        free(fuzz.headers[i].value);
    }
    free(fuzz.body);
    return 0;
}
