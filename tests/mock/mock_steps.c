/*
 * mock_steps.c - the scripted steps of the mock provider: parsing --script
 * and --default, and responding to a request as its step specifies.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "mock.h"

/* Parses the decimal number in [begin, end) into out. Returns -1 unless the
 * range is all digits, not empty and at most max. */
int parse_number(const char *begin, const char *end, long max,
                 long *out)
{
    long value = 0;

    if (begin == end)
        return -1;
    for (const char *p = begin; p < end; p++) {
        if (*p < '0' || *p > '9')
            return -1;
        value = value * 10 + (*p - '0');
        if (value > max)
            return -1;
    }
    *out = value;
    return 0;
}

static bool status_is_scriptable(long status)
{
    static const long codes[] = {200, 202, 400, 401, 403, 413, 429, 500, 503};

    for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++) {
        if (codes[i] == status)
            return true;
    }
    return false;
}

/* Parses the ':'-separated options after a status, e.g. "retry-after=2". */
static int parse_step_options(const char *options, struct step *step)
{
    const char *option = options;

    for (;;) {
        const char *colon = strchr(option, ':');
        const char *end = colon != NULL ? colon : option + strlen(option);
        size_t len = (size_t)(end - option);

        if (step->status == 429 && strncmp(option, "retry-after=", 12) == 0) {
            if (parse_number(option + 12, end, MOCK_MAX_SECONDS,
                             &step->retry_after) != 0)
                return -1;
        } else if (step->status == 429 && strncmp(option, "reset=", 6) == 0) {
            if (parse_number(option + 6, end, MOCK_MAX_SECONDS,
                             &step->reset_in) != 0)
                return -1;
        } else if (step->status == 503 && len == 4 &&
                   strncmp(option, "html", 4) == 0) {
            step->html = true;
        } else if (len == 5 && strncmp(option, "close", 5) == 0) {
            step->close = true;
        } else if (len == 3 && strncmp(option, "big", 3) == 0) {
            step->big = true;
        } else if (strncmp(option, "headers=", 8) == 0) {
            if (parse_number(option + 8, end, MOCK_MAX_PAD_HEADERS,
                             &step->pad_headers) != 0)
                return -1;
        } else {
            return -1;
        }
        if (colon == NULL)
            return 0;
        option = colon + 1;
    }
}

static const char *responses_dir;

void set_responses_dir(const char *dir)
{
    responses_dir = dir;
}

/* Reads the whole file at path, NUL-terminated, into a malloc'd buffer.
 * Returns NULL after printing why. */
static char *read_response_file(const char *path)
{
    FILE *file = fopen(path, "rb");
    char *data = NULL;
    size_t len;

    if (file == NULL) {
        fprintf(stderr, "mock_provider: cannot open response file %s\n", path);
        return NULL;
    }
    data = malloc(MOCK_MAX_RESPONSE_FILE_BYTES + 1);
    if (data == NULL) {
        fprintf(stderr, "mock_provider: out of memory for %s\n", path);
        goto fail;
    }
    len = fread(data, 1, MOCK_MAX_RESPONSE_FILE_BYTES + 1, file);
    if (ferror(file) || len > MOCK_MAX_RESPONSE_FILE_BYTES) {
        fprintf(stderr, "mock_provider: cannot read response file %s: "
                        "read error or longer than %d bytes\n", path,
                MOCK_MAX_RESPONSE_FILE_BYTES);
        goto fail;
    }
    if (memchr(data, '\0', len) != NULL) {
        fprintf(stderr, "mock_provider: response file %s contains a NUL byte\n",
                path);
        goto fail;
    }
    data[len] = '\0';
    fclose(file);
    return data;

fail:
    free(data);
    fclose(file);
    return NULL;
}

/* Splits a canned response: the status on the first line, header lines up
 * to an empty line, then the body. Header lines get CRLF endings. */
static int parse_response(const char *path, const char *data,
                        struct step *step)
{
    const char *line = strchr(data, '\n');
    const char *end;
    long status;
    size_t header_len = 0;

    end = line != NULL ? line : data + strlen(data);
    if (end > data && end[-1] == '\r')
        end--;
    if (parse_number(data, end, 599, &status) != 0 || status < 100) {
        fprintf(stderr, "mock_provider: response file %s: the first line "
                        "must be a status from 100 to 599\n", path);
        return -1;
    }
    step->status = (int)status;
    /* Each header line grows by at most one byte (LF to CRLF). */
    step->canned_headers = malloc(strlen(data) * 2 + 1);
    if (step->canned_headers == NULL)
        return -1;
    while (line != NULL) {
        const char *start = line + 1;
        const char *stop;

        line = strchr(start, '\n');
        stop = line != NULL ? line : start + strlen(start);
        if (stop > start && stop[-1] == '\r')
            stop--;
        if (stop == start)
            break;
        memcpy(step->canned_headers + header_len, start,
               (size_t)(stop - start));
        header_len += (size_t)(stop - start);
        memcpy(step->canned_headers + header_len, "\r\n", 2);
        header_len += 2;
    }
    step->canned_headers[header_len] = '\0';
    step->canned_body = strdup(line != NULL ? line + 1 : "");
    return step->canned_body != NULL ? 0 : -1;
}

/* Loads the canned response "@NAME" or "@NAME:close" from responses_dir. */
static int parse_response_step(const char *text, struct step *step)
{
    const char *name = text + 1;
    const char *colon = strchr(name, ':');
    size_t name_len = colon != NULL ? (size_t)(colon - name) : strlen(name);
    char path[4096];
    char *data;
    int rc;

    if (colon != NULL) {
        if (strcmp(colon, ":close") != 0)
            return -1;
        step->close = true;
    }
    if (responses_dir == NULL) {
        fprintf(stderr, "mock_provider: step %s needs --responses DIR\n", text);
        return -1;
    }
    if (name_len == 0 ||
        strspn(name, "abcdefghijklmnopqrstuvwxyz"
                     "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-.") < name_len ||
        name[0] == '.')
        return -1;
    if (snprintf(path, sizeof(path), "%s/%.*s", responses_dir, (int)name_len,
                 name) >= (int)sizeof(path))
        return -1;
    data = read_response_file(path);
    if (data == NULL)
        return -1;
    rc = parse_response(path, data, step);
    free(data);
    return rc;
}

void free_step(struct step *step)
{
    free(step->canned_headers);
    free(step->canned_body);
    free(step->text);
    step->canned_headers = NULL;
    step->canned_body = NULL;
    step->text = NULL;
}

/* Parses one step such as "202", "429:reset=60", "slow=500:503" or
 * "@name". */
int parse_step(const char *text, struct step *step)
{
    const char *rest = text;
    const char *end;
    long status;

    *step = (struct step){.kind = STEP_RESPOND, .retry_after = -1,
                          .reset_in = -1, .delay_ms = -1};
    if (strncmp(rest, "slow=", 5) == 0) {
        const char *colon = strchr(rest + 5, ':');

        if (colon == NULL || parse_number(rest + 5, colon, MOCK_MAX_DELAY_MS,
                                          &step->delay_ms) != 0)
            return -1;
        rest = colon + 1;
    }

    if (strcmp(rest, "close") == 0) {
        step->kind = STEP_CLOSE;
    } else if (strcmp(rest, "half") == 0) {
        step->kind = STEP_HALF;
    } else if (strcmp(rest, "hang") == 0) {
        step->kind = STEP_HANG;
    } else if (rest[0] == '@') {
        if (parse_response_step(rest, step) != 0) {
            free_step(step);
            return -1;
        }
    } else {
        end = strchr(rest, ':');
        if (end == NULL)
            end = rest + strlen(rest);
        if (parse_number(rest, end, 999, &status) != 0 ||
            !status_is_scriptable(status))
            return -1;
        step->status = (int)status;
        if (*end == ':' && parse_step_options(end + 1, step) != 0)
            return -1;
    }

    step->text = strdup(text);
    return step->text != NULL ? 0 : -1;
}

/* Parses a comma-separated script into steps. An empty spec is an empty
 * script. Prints the invalid step and returns -1 on error. */
int parse_script(const char *spec, struct step **out, size_t *count)
{
    size_t capacity = 1;
    struct step *steps;
    char *copy;
    char *token;
    int rc = -1;

    *out = NULL;
    *count = 0;
    for (const char *p = spec; *p != '\0'; p++)
        capacity += *p == ',' ? 1 : 0;
    steps = calloc(capacity, sizeof(*steps));
    copy = strdup(spec);
    if (steps == NULL || copy == NULL) {
        fprintf(stderr, "mock_provider: out of memory\n");
        goto cleanup;
    }

    token = copy;
    while (*spec != '\0') {
        char *comma = strchr(token, ',');

        if (comma != NULL)
            *comma = '\0';
        if (parse_step(token, &steps[*count]) != 0) {
            fprintf(stderr, "mock_provider: --script: invalid step '%s'\n",
                    token);
            goto cleanup;
        }
        (*count)++;
        if (comma == NULL)
            break;
        token = comma + 1;
    }
    *out = steps;
    steps = NULL;
    rc = 0;

cleanup:
    if (steps != NULL) {
        for (size_t i = 0; i < *count; i++)
            free_step(&steps[i]);
        *count = 0;
    }
    free(steps);
    free(copy);
    return rc;
}

const char *status_reason(int status)
{
    switch (status) {
    case 200: return "OK";
    case 202: return "Accepted";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 413: return "Request Entity Too Large";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 503: return "Service Unavailable";
    default: return "Unknown";
    }
}

/* Returns the body for a status, with its media type in *type. The texts
 * imitate what SendGrid and an nginx in front of it send. */
const char *status_body(int status, bool html, const char **type)
{
    *type = "application/json";
    switch (status) {
    case 200: return "{}";
    case 202: *type = NULL; return "";
    case 400: return "{\"errors\":[{\"message\":\"The from email does not "
                     "contain a valid address.\",\"field\":\"from\","
                     "\"help\":null}]}";
    case 401: return "{\"errors\":[{\"message\":\"The provided authorization "
                     "grant is invalid, expired, or revoked\",\"field\":null,"
                     "\"help\":null}]}";
    case 403: return "{\"errors\":[{\"message\":\"The from address does not "
                     "match a verified Sender Identity.\",\"field\":\"from\","
                     "\"help\":null}]}";
    case 413:
        *type = "text/html";
        return "<html><head><title>413 Request Entity Too Large</title>"
               "</head><body><center><h1>413 Request Entity Too Large</h1>"
               "</center><hr><center>nginx</center></body></html>";
    case 429: return "{\"errors\":[{\"field\":null,\"message\":\"too many "
                     "requests\"}]}";
    case 431: return "{\"errors\":[{\"field\":null,\"message\":\"request "
                     "header fields too large\"}]}";
    case 503:
        if (html) {
            *type = "text/html";
            return "<html>maintenance</html>";
        }
        return "{\"errors\":[{\"field\":null,\"message\":\"service "
               "unavailable\"}]}";
    default: return "{\"errors\":[{\"field\":null,\"message\":\"internal "
                    "error\"}]}";
    }
}

/* Formats the step's provider headers: the message id of a 202 and the
 * rate-limit headers of a 429. */
static void format_step_headers(const struct step *step, uint64_t n,
                                char *out, size_t size)
{
    size_t len = 0;

    /* The texts are far shorter than size, and snprintf truncates the
     * last one if that ever changes. */
    out[0] = '\0';
    if (step->status == 202)
        snprintf(out, size,
                 "X-Message-Id: mock-%" PRIu64 "\r\n"
                 "X-RateLimit-Limit: 600\r\n"
                 "X-RateLimit-Remaining: 599\r\n", n);
    len = strlen(out);
    if (step->retry_after >= 0)
        snprintf(out + len, size - len, "Retry-After: %ld\r\n",
                 step->retry_after);
    len = strlen(out);
    if (step->reset_in >= 0)
        snprintf(out + len, size - len,
                 "X-RateLimit-Reset: %lld\r\nX-RateLimit-Remaining: 0\r\n",
                 (long long)time(NULL) + step->reset_in);
    for (long i = 0; i < step->pad_headers; i++) {
        len = strlen(out);
        snprintf(out + len, size - len, "X-Pad-%ld: padding\r\n", i);
    }
}

/* Returns MOCK_BIG_BODY bytes of text, made once and kept. */
static const char *big_body(void)
{
    static char *body;

    if (body == NULL) {
        body = malloc(MOCK_BIG_BODY + 1);
        if (body == NULL)
            return "{}";
        memset(body, 'x', MOCK_BIG_BODY);
        body[MOCK_BIG_BODY] = '\0';
    }
    return body;
}

/* Returns a malloc'd copy of text with each "{n}" replaced by n, or
 * NULL when out of memory. */
static char *with_number(const char *text, uint64_t n)
{
    char number[24];
    size_t number_len;
    size_t count = 0;
    char *out;
    char *w;

    number_len = (size_t)snprintf(number, sizeof(number), "%" PRIu64, n);
    for (const char *p = strstr(text, "{n}"); p != NULL;
         p = strstr(p + 3, "{n}"))
        count++;
    out = malloc(strlen(text) + count * number_len + 1);
    if (out == NULL)
        return NULL;
    w = out;
    while (*text != '\0') {
        if (strncmp(text, "{n}", 3) == 0) {
            memcpy(w, number, number_len);
            w += number_len;
            text += 3;
        } else {
            *w++ = *text++;
        }
    }
    *w = '\0';
    return out;
}

/* Sends a canned response with the request number filled in. */
static void conn_send_canned(struct conn *c, struct response *r,
                             const struct step *step)
{
    char *headers = with_number(step->canned_headers, c->completed_number);
    char *body = with_number(step->canned_body, c->completed_number);

    if (headers == NULL || body == NULL) {
        fprintf(stderr, "mock_provider: out of memory for a canned response\n");
        conn_close(c);
    } else {
        r->extra_headers = headers;
        r->body = body;
        conn_send_response(c, r);
    }
    free(headers);
    free(body);
}

/* Responds to the last complete request as its step specifies, without
 * delay. */
static void conn_respond_now(struct conn *c)
{
    static const char half_response[] =
        "HTTP/1.1 202 Accepted\r\nX-Message-Id: mo";
    const struct step *step = c->completed_step;
    size_t extra_size = 256 + (size_t)step->pad_headers * 40;
    char *extra = malloc(extra_size);
    struct response r = {.status = step->status, .extra_headers = extra,
                         .keep_alive = c->completed_keep_alive &&
                                       !step->close,
                         .head = c->completed_head};

    if (extra == NULL) {
        fprintf(stderr, "mock_provider: out of memory for a response\n");
        conn_close(c);
        return;
    }
    switch (step->kind) {
    case STEP_RESPOND:
        if (step->canned_body != NULL) {
            conn_send_canned(c, &r, step);
        } else {
            format_step_headers(step, c->completed_number, extra,
                                extra_size);
            r.body = step->big ? big_body()
                               : status_body(step->status, step->html,
                                             &r.type);
            conn_send_response(c, &r);
        }
        if (!r.keep_alive)
            conn_shutdown(c);
        break;
    case STEP_CLOSE:
        conn_shutdown(c);
        break;
    case STEP_HALF:
        conn_write(c, half_response, sizeof(half_response) - 1);
        conn_shutdown(c);
        break;
    case STEP_HANG:
        /* Later requests on this connection would get their responses
         * after this one, which is never, so the connection only watches
         * for EOF. */
        c->state = CONN_HUNG;
        break;
    }
    free(extra);

    if (c->state != CONN_CLOSING &&
        uv_stream_get_write_queue_size((uv_stream_t *)&c->tcp) >
            MOCK_MAX_QUEUED_WRITE_BYTES)
        c->wait |= WAIT_WRITE;
}

static void on_delay_done(uv_timer_t *timer)
{
    struct conn *c = timer->data;

    c->wait &= ~WAIT_DELAY;
    conn_respond_now(c);
    conn_continue(c);
}

void conn_respond(struct conn *c)
{
    const struct step *step = c->completed_step;

    if (step->delay_ms < 0) {
        conn_respond_now(c);
        return;
    }
    c->wait |= WAIT_DELAY;
    uv_timer_start(&c->timer, on_delay_done, (uint64_t)step->delay_ms, 0);
}
