/*
 * mock_log.c - the JSON Lines request log of the mock provider: one line
 * per complete request, buffered and flushed by a timer.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cJSON.h>

#include "mock.h"

const char *const kept_header_names[] = {
    "authorization", "content-type", "content-length", "user-agent",
    "x-test", "expect",
};

static double unix_time_with_ms(void)
{
    struct timespec now;
    long long ms;

    clock_gettime(CLOCK_REALTIME, &now);
    ms = (long long)now.tv_sec * 1000 + now.tv_nsec / 1000000;
    return (double)ms / 1000.0;
}

/* Checks that bytes can be stored as a JSON string: valid UTF-8 without a
 * NUL byte, because cJSON strings end at the first NUL. */
static bool is_json_text(const unsigned char *s, size_t len)
{
    size_t i = 0;

    while (i < len) {
        unsigned char lead = s[i];
        size_t extra;
        uint32_t code;
        uint32_t min;

        if (lead == 0)
            return false;
        if (lead < 0x80) {
            i++;
            continue;
        }
        if ((lead & 0xE0) == 0xC0) {
            extra = 1, code = lead & 0x1Fu, min = 0x80;
        } else if ((lead & 0xF0) == 0xE0) {
            extra = 2, code = lead & 0x0Fu, min = 0x800;
        } else if ((lead & 0xF8) == 0xF0) {
            extra = 3, code = lead & 0x07u, min = 0x10000;
        } else {
            return false;
        }
        if (len - i <= extra)
            return false;
        for (size_t k = 1; k <= extra; k++) {
            if ((s[i + k] & 0xC0) != 0x80)
                return false;
            code = (code << 6) | (s[i + k] & 0x3Fu);
        }
        if (code < min || code > 0x10FFFF || (code >= 0xD800 && code <= 0xDFFF))
            return false;
        i += extra + 1;
    }
    return true;
}

/* Returns a NUL-terminated base64 text that the caller frees, or NULL when
 * out of memory. */
static char *base64_encode(const unsigned char *data, size_t len)
{
    static const char alphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    char *out = malloc(4 * ((len + 2) / 3) + 1);
    char *o = out;

    if (out == NULL)
        return NULL;
    for (size_t i = 0; i < len; i += 3) {
        uint32_t group = (uint32_t)data[i] << 16;

        if (i + 1 < len)
            group |= (uint32_t)data[i + 1] << 8;
        if (i + 2 < len)
            group |= data[i + 2];
        *o++ = alphabet[(group >> 18) & 0x3F];
        *o++ = alphabet[(group >> 12) & 0x3F];
        *o++ = i + 1 < len ? alphabet[(group >> 6) & 0x3F] : '=';
        *o++ = i + 2 < len ? alphabet[group & 0x3F] : '=';
    }
    *o = '\0';
    return out;
}

static bool log_add_body(cJSON *entry, const struct buf *body)
{
    const unsigned char *bytes = (const unsigned char *)buf_text(body);
    char *encoded;
    bool ok;

    if (is_json_text(bytes, body->len))
        return cJSON_AddStringToObject(entry, "body", buf_text(body)) != NULL;
    encoded = base64_encode(bytes, body->len);
    if (encoded == NULL)
        return false;
    ok = cJSON_AddStringToObject(entry, "body_base64", encoded) != NULL;
    free(encoded);
    return ok;
}

/* Builds the log entry of the request that has just completed.
 * NOTE: header values and paths are copied as received, so a value with
 * bytes that are not UTF-8 makes that log line invalid UTF-8. */
static cJSON *log_entry_create(const struct conn *c, const char *step_text)
{
    cJSON *entry = cJSON_CreateObject();
    cJSON *headers = cJSON_CreateObject();
    bool ok = entry != NULL && headers != NULL;

    ok = ok && cJSON_AddNumberToObject(entry, "n", (double)c->completed_number);
    ok = ok && cJSON_AddStringToObject(entry, "method", c->completed_method);
    ok = ok && cJSON_AddStringToObject(entry, "path", buf_text(&c->path));
    for (size_t i = 0; ok && i < KEPT_HEADER_COUNT; i++) {
        if (c->header_seen[i])
            ok = cJSON_AddStringToObject(headers, kept_header_names[i],
                                         buf_text(&c->header_values[i]));
    }
    ok = ok && cJSON_AddItemToObject(entry, "headers", headers);
    if (ok)
        headers = NULL;
    if (ok && c->server->log_bodies)
        ok = log_add_body(entry, &c->body);
    ok = ok && cJSON_AddStringToObject(entry, "answer", step_text);
    ok = ok && cJSON_AddNumberToObject(entry, "received_at",
                                       unix_time_with_ms());
    cJSON_Delete(headers);
    if (!ok) {
        cJSON_Delete(entry);
        return NULL;
    }
    return entry;
}

/* Appends the request's line to the log buffer. The flush timer writes
 * the buffer to the file. */
void log_request(struct conn *c, const char *step_text)
{
    struct server *s = c->server;
    cJSON *entry = log_entry_create(c, step_text);
    char *line = entry != NULL ? cJSON_PrintUnformatted(entry) : NULL;

    if (line == NULL) {
        fprintf(stderr, "mock_provider: out of memory; request %" PRIu64
                        " is missing from the log\n", c->completed_number);
    } else if ((fputs(line, s->log) == EOF || fputc('\n', s->log) == EOF) &&
               !s->log_failed) {
        s->log_failed = true;
        perror("mock_provider: writing the log failed");
    }
    s->log_dirty = true;
    cJSON_free(line);
    cJSON_Delete(entry);
}

void log_flush(struct server *s)
{
    if (!s->log_dirty)
        return;
    s->log_dirty = false;
    if (fflush(s->log) != 0 && !s->log_failed) {
        s->log_failed = true;
        perror("mock_provider: flushing the log failed");
    }
}
