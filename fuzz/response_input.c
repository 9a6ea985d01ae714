/*
 * response_input.c - the response decoder and the checks shared by the
 * classify fuzz targets (see response_input.h).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "response_input.h"

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

_Noreturn void fuzz_fail(const char *problem, long status)
{
    fprintf(stderr, "classify: status %ld: %s\n", status, problem);
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

void fuzz_check_error_texts(const outbox_result *result, long status)
{
    if (!is_utf8_string(result->error.kind, sizeof(result->error.kind)))
        fuzz_fail("error.kind is not a NUL-terminated UTF-8 string", status);
    if (!is_utf8_string(result->error.text, sizeof(result->error.text)))
        fuzz_fail("error.text is not a NUL-terminated UTF-8 string", status);
}

void fuzz_classify_input(const uint8_t *data, size_t size,
                         fuzz_classify_fn classify, fuzz_check_fn check)
{
    fuzz_response fuzz;
    outbox_result result;

    if (size < PREFIX_SIZE)
        return;
    memset(&fuzz, 0, sizeof(fuzz));

    if (build_response(&fuzz, data, size)) {
        memset(&result, 0xA5, sizeof(result));
        classify(&result, &fuzz.response);
        check(&result, &fuzz.response);
    }

    for (size_t i = 0; i < fuzz.response.header_count; i++) {
        free(fuzz.headers[i].name);
        free(fuzz.headers[i].value);
    }
    free(fuzz.body);
}
