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

/* Parses one step such as "202", "429:reset=60" or "slow=500:503". */
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
            free(steps[i].text);
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
                         .keep_alive = c->completed_keep_alive,
                         .head = c->completed_head};

    if (extra == NULL) {
        fprintf(stderr, "mock_provider: out of memory for a response\n");
        conn_close(c);
        return;
    }
    switch (step->kind) {
    case STEP_RESPOND:
        format_step_headers(step, c->completed_number, extra, extra_size);
        r.body = step->big ? big_body()
                           : status_body(step->status, step->html, &r.type);
        conn_send_response(c, &r);
        if (!c->completed_keep_alive)
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
