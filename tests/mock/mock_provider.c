/*
 * mock_provider.c - a scripted HTTP/1.1 server on 127.0.0.1 that imitates
 * an email provider API (SendGrid's v3 mail/send responses) in
 * end-to-end tests and benchmarks.
 *
 * Requests are numbered from 1 in the order their parsing completes, across
 * all connections. Request n takes step n of --script, or the --default step
 * once the script is used up, and is written to --log as one JSON line.
 * Run with --help for the options and the step syntax.
 *
 * One libuv loop serves every connection, and llhttp parses the requests.
 * The parser pauses after each complete request until its response is
 * queued, so pipelined requests get their responses in order even when a
 * step delays one. A connection stops reading while it waits, which also
 * bounds the bytes buffered for it.
 */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <cJSON.h>
#include <llhttp.h>
#include <uv.h>

/* Caps on one request. Over a cap, the server responds with 413 or 431
 * and closes the connection. */
#define MOCK_MAX_BODY_BYTES ((uint64_t)64 * 1024 * 1024)
#define MOCK_MAX_HEADER_BYTES ((size_t)64 * 1024)
#define MOCK_MAX_CONNECTIONS ((size_t)1024)

#define MOCK_READ_BUFFER_BYTES ((size_t)64 * 1024)
#define MOCK_LOG_BUFFER_BYTES ((size_t)1024 * 1024)

/* Tests read the log right after the daemon drains, so a line must reach
 * the file within 100 ms of its request. */
#define MOCK_LOG_FLUSH_MS 50

/* After the server ends a connection, it reads and discards input for this
 * long, because closing a socket with unread input sends a reset that can
 * destroy the last response before the client reads it. */
#define MOCK_LINGER_MS 2000

/* A connection stops reading while this many response bytes wait to be
 * sent, so a client that pipelines without reading cannot grow memory. */
#define MOCK_MAX_QUEUED_WRITE_BYTES ((size_t)1024 * 1024)

#define MOCK_MAX_DELAY_MS 3600000L
#define MOCK_MAX_SECONDS 1000000000L

static const char usage_text[] =
    "usage: mock_provider --port N --log FILE [--host 127.0.0.1]\n"
    "                     [--log-bodies] [--script SPEC] [--default STEP]\n"
    "                     [--port-file FILE]\n"
    "\n"
    "  --port N          TCP port on 127.0.0.1; 0 picks a free port\n"
    "  --host HOST       only 127.0.0.1 is accepted\n"
    "  --log FILE        JSON Lines request log, truncated at start\n"
    "  --log-bodies      also log each request body\n"
    "  --script SPEC     comma-separated steps, one per request in order\n"
    "  --default STEP    step for every request after the script "
    "(default 202)\n"
    "  --port-file FILE  file that receives the port number and a newline\n"
    "\n"
    "Steps: 200 202 400 401 403 413 429 500 503 503:html close half hang,\n"
    "429:retry-after=S, 429:reset=S (both may be combined), and\n"
    "slow=MS:STEP, which responds as STEP after MS milliseconds.\n";

enum step_kind { STEP_RESPOND, STEP_CLOSE, STEP_HALF, STEP_HANG };

/* One parsed step of --script or --default. The times are -1 when the
 * step does not set them. */
struct step {
    enum step_kind kind;
    int status;
    bool html;
    long retry_after;   /* seconds, sent as Retry-After */
    long reset_in;      /* seconds from now, sent as X-RateLimit-Reset */
    long delay_ms;
    char *text;         /* the step as written, logged as "answer" */
};

struct buf {
    char *data;
    size_t len;
    size_t cap;
};

/* The request headers that the log keeps, by lower-case name. The parser
 * also tracks Expect, after these, to send the interim 100 Continue. */
static const char *const kept_header_names[] = {
    "authorization", "content-type", "content-length", "user-agent",
    "x-test", "expect",
};
#define KEPT_HEADER_COUNT 5
#define HEADER_SLOT_EXPECT 5
#define HEADER_SLOT_COUNT 6

enum conn_state { CONN_OPEN, CONN_HUNG, CONN_LINGER, CONN_CLOSING };

/* Reasons why a connection has stopped reading and parsing. */
#define WAIT_DELAY 1u
#define WAIT_WRITE 2u

struct server;

struct conn {
    struct server *server;
    struct conn *prev;
    struct conn *next;
    uv_tcp_t tcp;
    uv_timer_t timer;
    uv_shutdown_t shutdown_req;
    int open_handles;
    enum conn_state state;
    unsigned wait;              /* WAIT_DELAY and WAIT_WRITE bits */
    bool reading;
    bool peer_eof;
    bool shutdown_done;
    llhttp_t parser;
    struct buf pending;         /* input read but not parsed yet */

    /* The request being parsed. */
    struct buf path;
    char field[32];
    size_t field_len;
    int field_slot;
    bool header_seen[HEADER_SLOT_COUNT];
    struct buf header_values[HEADER_SLOT_COUNT];
    struct buf body;
    uint64_t body_bytes;
    size_t header_bytes;
    bool keep_alive;
    int reject_status;
    const char *reject_reason;

    /* The last complete request, which is owed a response. */
    const struct step *completed_step;
    uint64_t completed_number;
    const char *completed_method;
    bool completed_keep_alive;
    bool completed_head;
};

struct server {
    uv_loop_t *loop;
    uv_tcp_t listener;
    uv_timer_t flush_timer;
    uv_signal_t sigterm;
    uv_signal_t sigint;
    uv_signal_t sigusr1;
    llhttp_settings_t settings;

    struct step *script;
    size_t script_len;
    size_t script_next;
    struct step default_step;
    uint64_t requests;

    FILE *log;
    char *log_buffer;
    const char *log_path;
    bool log_bodies;
    bool log_dirty;
    bool log_failed;

    struct conn *connections;
    size_t connection_count;
    uint64_t rejected_connections;
    char read_buffer[MOCK_READ_BUFFER_BYTES];
};

struct options {
    int port;
    const char *log_path;
    const char *script;
    const char *default_step;
    const char *port_file;
    bool log_bodies;
};

struct write_req {
    uv_write_t req;
    struct conn *conn;
    char bytes[];
};

static void conn_close(struct conn *c);
static void conn_continue(struct conn *c);

/* Appends n bytes and keeps the data NUL-terminated. Returns -1 when out of
 * memory. */
static int buf_append(struct buf *b, const char *at, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap * 2;
        char *data;

        if (cap < b->len + n + 1)
            cap = b->len + n + 1;
        if (cap < 64)
            cap = 64;
        data = realloc(b->data, cap);
        if (data == NULL)
            return -1;
        b->data = data;
        b->cap = cap;
    }
    memcpy(b->data + b->len, at, n);
    b->len += n;
    b->data[b->len] = '\0';
    return 0;
}

static const char *buf_text(const struct buf *b)
{
    return b->data != NULL ? b->data : "";
}

static void buf_free(struct buf *b)
{
    free(b->data);
    *b = (struct buf){0};
}

/* Parses the decimal number in [begin, end) into out. Returns -1 unless the
 * range is all digits, not empty and at most max. */
static int parse_number(const char *begin, const char *end, long max,
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
        } else {
            return -1;
        }
        if (colon == NULL)
            return 0;
        option = colon + 1;
    }
}

/* Parses one step such as "202", "429:reset=60" or "slow=500:503". */
static int parse_step(const char *text, struct step *step)
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
static int parse_script(const char *spec, struct step **out, size_t *count)
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

static const char *status_reason(int status)
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
static const char *status_body(int status, bool html, const char **type)
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

static void on_write_done(uv_write_t *req, int status)
{
    struct write_req *w = req->data;
    struct conn *c = w->conn;
    size_t queued = uv_stream_get_write_queue_size((uv_stream_t *)&c->tcp);

    free(w);

    /* A failed write means the client has gone: EPIPE or ECONNRESET. */
    if (status < 0) {
        conn_close(c);
        return;
    }
    if ((c->wait & WAIT_WRITE) != 0 &&
        queued <= MOCK_MAX_QUEUED_WRITE_BYTES / 2) {
        c->wait &= ~WAIT_WRITE;
        conn_continue(c);
    }
}

/* Queues a copy of the bytes for sending, and closes the connection if
 * that fails. */
static void conn_write(struct conn *c, const char *bytes, size_t len)
{
    struct write_req *w;
    uv_buf_t buf;

    if (c->state == CONN_CLOSING)
        return;
    w = malloc(sizeof(*w) + len);
    if (w == NULL) {
        fprintf(stderr, "mock_provider: out of memory for a response\n");
        conn_close(c);
        return;
    }
    memcpy(w->bytes, bytes, len);
    w->conn = c;
    w->req.data = w;
    buf = uv_buf_init(w->bytes, (unsigned int)len);
    if (uv_write(&w->req, (uv_stream_t *)&c->tcp, &buf, 1, on_write_done) < 0) {
        free(w);
        conn_close(c);
    }
}

/* One response to format. extra_headers contains whole "Name: value\r\n"
 * lines, and type is NULL for an empty body. */
struct response {
    int status;
    const char *type;
    const char *body;
    const char *extra_headers;
    bool keep_alive;
    bool head;
};

/* Sends a complete response. A HEAD request gets the headers only. */
static void conn_send_response(struct conn *c, const struct response *r)
{
    char out[2048];
    int len;

    len = snprintf(out, sizeof(out),
                   "HTTP/1.1 %d %s\r\n%s%s%s%sContent-Length: %zu\r\n"
                   "Connection: %s\r\n\r\n%s",
                   r->status, status_reason(r->status),
                   r->type != NULL ? "Content-Type: " : "",
                   r->type != NULL ? r->type : "",
                   r->type != NULL ? "\r\n" : "", r->extra_headers,
                   strlen(r->body), r->keep_alive ? "keep-alive" : "close",
                   r->head ? "" : r->body);
    if (len < 0 || (size_t)len >= sizeof(out)) {
        fprintf(stderr, "mock_provider: formatting a response failed: longer "
                        "than %zu bytes\n", sizeof(out));
        conn_close(c);
        return;
    }
    conn_write(c, out, (size_t)len);
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
}

static void conn_shutdown(struct conn *c);

/* Responds to the last complete request as its step specifies, without
 * delay. */
static void conn_respond_now(struct conn *c)
{
    static const char half_response[] =
        "HTTP/1.1 202 Accepted\r\nX-Message-Id: mo";
    const struct step *step = c->completed_step;
    char extra[256];
    struct response r = {.status = step->status, .extra_headers = extra,
                         .keep_alive = c->completed_keep_alive,
                         .head = c->completed_head};

    switch (step->kind) {
    case STEP_RESPOND:
        format_step_headers(step, c->completed_number, extra, sizeof(extra));
        r.body = status_body(step->status, step->html, &r.type);
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

static void conn_respond(struct conn *c)
{
    const struct step *step = c->completed_step;

    if (step->delay_ms < 0) {
        conn_respond_now(c);
        return;
    }
    c->wait |= WAIT_DELAY;
    uv_timer_start(&c->timer, on_delay_done, (uint64_t)step->delay_ms, 0);
}

/* Responds to a request that the parser rejected or that broke a cap,
 * then ends the connection, because the rest of the stream cannot be
 * framed. */
static void conn_reject(struct conn *c, llhttp_errno_t err)
{
    struct response r = {.status = 400, .type = "application/json",
                         .extra_headers = ""};
    const char *reason = llhttp_get_error_reason(&c->parser);

    /* llhttp stops after an Upgrade or CONNECT request. The server has
     * responded to it like to any other, so it only ends the connection. */
    if (err == HPE_PAUSED_UPGRADE) {
        conn_shutdown(c);
        return;
    }

    if (c->reject_status != 0) {
        r.status = c->reject_status;
        r.body = status_body(r.status, false, &r.type);
        reason = c->reject_reason;
    } else {
        r.body = "{\"errors\":[{\"field\":null,\"message\":\"invalid HTTP "
                 "request\"}]}";
    }
    fprintf(stderr,
            "mock_provider: rejected request: %s (%s); responded %d and "
            "closed the connection\n",
            llhttp_errno_name(err), reason != NULL ? reason : "", r.status);
    conn_send_response(c, &r);
    conn_shutdown(c);
}

/* Parses input and responds to each complete request before parsing the
 * next one. Input left over while the connection waits goes to c->pending. */
static void conn_feed(struct conn *c, const char *data, size_t len)
{
    const char *p = data;
    const char *end = data + len;

    while (p < end && c->state == CONN_OPEN && c->wait == 0) {
        llhttp_errno_t err = llhttp_execute(&c->parser, p, (size_t)(end - p));

        if (err == HPE_OK)
            return;
        if (err != HPE_PAUSED) {
            conn_reject(c, err);
            return;
        }
        p = llhttp_get_error_pos(&c->parser);
        llhttp_resume(&c->parser);
        conn_respond(c);
    }

    if (p < end && c->state == CONN_OPEN &&
        buf_append(&c->pending, p, (size_t)(end - p)) != 0) {
        fprintf(stderr, "mock_provider: out of memory for pending input\n");
        conn_close(c);
    }
}

static void on_alloc(uv_handle_t *handle, size_t suggested, uv_buf_t *buf)
{
    struct conn *c = handle->data;

    /* One buffer serves every connection, because each read is parsed,
     * or its rest copied to c->pending, before the next read starts. */
    (void)suggested;
    buf->base = c->server->read_buffer;
    buf->len = sizeof(c->server->read_buffer);
}

static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
    struct conn *c = stream->data;

    if (nread > 0) {
        if (c->state == CONN_OPEN)
            conn_feed(c, buf->base, (size_t)nread);
        if (c->wait != 0 && c->state != CONN_CLOSING && c->reading) {
            uv_read_stop(stream);
            c->reading = false;
        }
        return;
    }
    if (nread == 0)
        return;

    /* A partial request left at EOF is dropped without a response. The
     * complete requests before it have their responses queued already, so
     * the FIN follows them. */
    if (nread == UV_EOF) {
        c->peer_eof = true;
        uv_read_stop(stream);
        c->reading = false;
        if (c->state == CONN_OPEN)
            conn_shutdown(c);
        else if (c->state == CONN_HUNG ||
                 (c->state == CONN_LINGER && c->shutdown_done))
            conn_close(c);
        return;
    }
    conn_close(c);
}

static void conn_start_reading(struct conn *c)
{
    if (c->reading || c->peer_eof || c->state == CONN_CLOSING)
        return;
    if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) < 0) {
        conn_close(c);
        return;
    }
    c->reading = true;
}

/* Parses the input kept while the connection waited, then reads again
 * unless the connection has to wait once more. */
static void conn_continue(struct conn *c)
{
    struct buf pending = c->pending;

    c->pending = (struct buf){0};
    if (pending.len > 0)
        conn_feed(c, pending.data, pending.len);
    buf_free(&pending);
    if (c->wait == 0)
        conn_start_reading(c);
}

static void on_linger_done(uv_timer_t *timer)
{
    conn_close(timer->data);
}

static void on_shutdown_done(uv_shutdown_t *req, int status)
{
    struct conn *c = req->data;

    c->shutdown_done = true;
    if (status < 0 || c->peer_eof) {
        conn_close(c);
        return;
    }
    uv_timer_start(&c->timer, on_linger_done, MOCK_LINGER_MS, 0);
}

/* Ends the connection gracefully: the FIN goes out after every queued
 * response, and the server keeps reading until the client closes too or
 * MOCK_LINGER_MS passes. */
static void conn_shutdown(struct conn *c)
{
    if (c->state == CONN_LINGER || c->state == CONN_CLOSING)
        return;
    c->state = CONN_LINGER;
    c->wait = 0;
    uv_timer_stop(&c->timer);
    c->shutdown_req.data = c;
    if (uv_shutdown(&c->shutdown_req, (uv_stream_t *)&c->tcp,
                    on_shutdown_done) < 0) {
        conn_close(c);
        return;
    }
    conn_start_reading(c);
}

static void conn_free(struct conn *c)
{
    struct server *s = c->server;

    if (c->prev != NULL)
        c->prev->next = c->next;
    else
        s->connections = c->next;
    if (c->next != NULL)
        c->next->prev = c->prev;
    s->connection_count--;

    buf_free(&c->pending);
    buf_free(&c->path);
    buf_free(&c->body);
    for (size_t i = 0; i < HEADER_SLOT_COUNT; i++)
        buf_free(&c->header_values[i]);
    free(c);
}

static void on_conn_handle_closed(uv_handle_t *handle)
{
    struct conn *c = handle->data;

    c->open_handles--;
    if (c->open_handles == 0)
        conn_free(c);
}

/* Closes both handles. The connection is freed when the last one has
 * closed, after libuv has cancelled its pending writes. */
static void conn_close(struct conn *c)
{
    if (c->state == CONN_CLOSING)
        return;
    c->state = CONN_CLOSING;
    uv_close((uv_handle_t *)&c->tcp, on_conn_handle_closed);
    uv_close((uv_handle_t *)&c->timer, on_conn_handle_closed);
}

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
static void log_request(struct conn *c, const char *step_text)
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

static void log_flush(struct server *s)
{
    if (!s->log_dirty)
        return;
    s->log_dirty = false;
    if (fflush(s->log) != 0 && !s->log_failed) {
        s->log_failed = true;
        perror("mock_provider: flushing the log failed");
    }
}

static int parser_reject(llhttp_t *parser, int status, const char *reason)
{
    struct conn *c = parser->data;

    c->reject_status = status;
    c->reject_reason = reason;
    llhttp_set_error_reason(parser, reason);
    return HPE_USER;
}

/* Counts header bytes against MOCK_MAX_HEADER_BYTES. */
static int count_header_bytes(llhttp_t *parser, size_t n)
{
    struct conn *c = parser->data;

    c->header_bytes += n;
    if (c->header_bytes > MOCK_MAX_HEADER_BYTES)
        return parser_reject(parser, 431, "header bytes over 65536");
    return 0;
}

static int on_message_begin(llhttp_t *parser)
{
    struct conn *c = parser->data;

    c->path.len = 0;
    c->body.len = 0;
    c->body_bytes = 0;
    c->header_bytes = 0;
    c->field_len = 0;
    for (size_t i = 0; i < HEADER_SLOT_COUNT; i++) {
        c->header_seen[i] = false;
        c->header_values[i].len = 0;
    }
    return 0;
}

static int on_url(llhttp_t *parser, const char *at, size_t len)
{
    struct conn *c = parser->data;

    if (count_header_bytes(parser, len) != 0)
        return HPE_USER;
    if (buf_append(&c->path, at, len) != 0)
        return parser_reject(parser, 500, "out of memory");
    return 0;
}

/* Collects a header name. Names longer than c->field are not kept, so
 * only their length is counted. */
static int on_header_field(llhttp_t *parser, const char *at, size_t len)
{
    struct conn *c = parser->data;

    if (count_header_bytes(parser, len) != 0)
        return HPE_USER;
    if (c->field_len + len < sizeof(c->field))
        memcpy(c->field + c->field_len, at, len);
    c->field_len += len;
    return 0;
}

static int on_header_field_complete(llhttp_t *parser)
{
    struct conn *c = parser->data;
    size_t len = c->field_len;

    /* The ": " and CRLF of the header line count towards the cap. */
    c->field_slot = -1;
    c->field_len = 0;
    if (count_header_bytes(parser, 4) != 0)
        return HPE_USER;
    for (int i = 0; len < sizeof(c->field) && i < HEADER_SLOT_COUNT; i++) {
        const char *name = kept_header_names[i];

        if (strlen(name) == len && strncasecmp(name, c->field, len) == 0)
            c->field_slot = i;
    }
    if (c->field_slot < 0)
        return 0;

    /* A repeated header is joined into one comma-separated value. */
    if (c->header_seen[c->field_slot] &&
        buf_append(&c->header_values[c->field_slot], ", ", 2) != 0)
        return parser_reject(parser, 500, "out of memory");
    c->header_seen[c->field_slot] = true;
    return 0;
}

static int on_header_value(llhttp_t *parser, const char *at, size_t len)
{
    struct conn *c = parser->data;

    if (count_header_bytes(parser, len) != 0)
        return HPE_USER;
    if (c->field_slot >= 0 &&
        buf_append(&c->header_values[c->field_slot], at, len) != 0)
        return parser_reject(parser, 500, "out of memory");
    return 0;
}

static int on_headers_complete(llhttp_t *parser)
{
    static const char continue_response[] = "HTTP/1.1 100 Continue\r\n\r\n";
    struct conn *c = parser->data;
    bool has_length = (parser->flags & F_CONTENT_LENGTH) != 0;
    bool chunked = (parser->flags & F_CHUNKED) != 0;

    c->keep_alive = llhttp_should_keep_alive(parser) != 0;
    if (has_length && parser->content_length > MOCK_MAX_BODY_BYTES) {
        parser_reject(parser, 413, "body over 64 MiB");
        return -1;
    }

    /* libcurl sends "Expect: 100-continue" before large bodies and then
     * waits up to CURLOPT_EXPECT_100_TIMEOUT_MS, 1000 ms by default, for
     * this interim response. */
    if (c->header_seen[HEADER_SLOT_EXPECT] &&
        strcasecmp(buf_text(&c->header_values[HEADER_SLOT_EXPECT]),
                   "100-continue") == 0 &&
        (chunked || (has_length && parser->content_length > 0)))
        conn_write(c, continue_response, sizeof(continue_response) - 1);
    return 0;
}

static int on_body(llhttp_t *parser, const char *at, size_t len)
{
    struct conn *c = parser->data;

    c->body_bytes += len;
    if (c->body_bytes > MOCK_MAX_BODY_BYTES)
        return parser_reject(parser, 413, "body over 64 MiB");
    if (c->server->log_bodies && buf_append(&c->body, at, len) != 0)
        return parser_reject(parser, 500, "out of memory");
    return 0;
}

/* Numbers the request, takes its step and logs it, then pauses the parser
 * so that conn_feed responds before parsing further. */
static int on_message_complete(llhttp_t *parser)
{
    struct conn *c = parser->data;
    struct server *s = c->server;
    const struct step *step = &s->default_step;
    uint8_t method = llhttp_get_method(parser);

    if (s->script_next < s->script_len)
        step = &s->script[s->script_next++];
    c->completed_number = ++s->requests;
    c->completed_step = step;
    c->completed_keep_alive = c->keep_alive;
    c->completed_method = llhttp_method_name((llhttp_method_t)method);
    c->completed_head = method == HTTP_HEAD;
    log_request(c, step->text);
    return HPE_PAUSED;
}

/* Frees what handle->data points to: the handle itself or its
 * connection. */
static void on_close_free_data(uv_handle_t *handle)
{
    free(handle->data);
}

/* Accepts a connection and closes it at once, so the client sees it end
 * instead of waiting in the listen backlog. */
static void reject_connection(struct server *s)
{
    uv_tcp_t *tcp = malloc(sizeof(*tcp));

    if (tcp == NULL || uv_tcp_init(s->loop, tcp) < 0) {
        fprintf(stderr, "mock_provider: out of memory for a connection\n");
        free(tcp);
        return;
    }
    tcp->data = tcp;
    if (uv_accept((uv_stream_t *)&s->listener, (uv_stream_t *)tcp) == 0)
        s->rejected_connections++;
    uv_close((uv_handle_t *)tcp, on_close_free_data);
}

static void on_connection(uv_stream_t *listener, int status)
{
    struct server *s = listener->data;
    struct conn *c;

    if (status < 0) {
        fprintf(stderr, "mock_provider: accept failed: %s\n",
                uv_strerror(status));
        return;
    }
    if (s->connection_count >= MOCK_MAX_CONNECTIONS) {
        if (s->rejected_connections == 0)
            fprintf(stderr, "mock_provider: %zu connections are open; "
                            "closing new ones until some end\n",
                    MOCK_MAX_CONNECTIONS);
        reject_connection(s);
        return;
    }
    c = calloc(1, sizeof(*c));
    if (c == NULL || uv_tcp_init(s->loop, &c->tcp) < 0) {
        fprintf(stderr, "mock_provider: out of memory for a connection\n");
        free(c);
        reject_connection(s);
        return;
    }
    c->tcp.data = c;
    if (uv_timer_init(s->loop, &c->timer) < 0) {
        uv_close((uv_handle_t *)&c->tcp, on_close_free_data);
        return;
    }

    c->server = s;
    c->next = s->connections;
    if (s->connections != NULL)
        s->connections->prev = c;
    s->connections = c;
    s->connection_count++;
    c->timer.data = c;
    c->open_handles = 2;
    llhttp_init(&c->parser, HTTP_REQUEST, &s->settings);
    c->parser.data = c;

    if (uv_accept(listener, (uv_stream_t *)&c->tcp) < 0) {
        conn_close(c);
        return;
    }
    uv_tcp_nodelay(&c->tcp, 1);
    conn_start_reading(c);
}

/* Closes a handle during a failed start. No connection exists yet, so every
 * open handle is embedded in struct server and needs no close callback. */
static void close_any_handle(uv_handle_t *handle, void *arg)
{
    (void)arg;
    if (!uv_is_closing(handle))
        uv_close(handle, NULL);
}

static void server_stop(struct server *s)
{
    uv_close((uv_handle_t *)&s->listener, NULL);
    uv_close((uv_handle_t *)&s->flush_timer, NULL);
    uv_close((uv_handle_t *)&s->sigterm, NULL);
    uv_close((uv_handle_t *)&s->sigint, NULL);
    uv_close((uv_handle_t *)&s->sigusr1, NULL);
    for (struct conn *c = s->connections; c != NULL; c = c->next)
        conn_close(c);
}

static void on_signal(uv_signal_t *handle, int signum)
{
    struct server *s = handle->data;

    if (signum == SIGUSR1) {
        log_flush(s);
        return;
    }
    server_stop(s);
}

static void on_flush_timer(uv_timer_t *timer)
{
    log_flush(timer->data);
}

/* Writes "PORT\n" to a temporary file and renames it over path, so that a
 * reader never sees a partial file. */
static int write_port_file(const char *path, int port)
{
    size_t size = strlen(path) + 32;
    char *tmp = malloc(size);
    FILE *f;
    int rc = -1;

    if (tmp == NULL) {
        fprintf(stderr, "mock_provider: out of memory\n");
        return -1;
    }
    snprintf(tmp, size, "%s.tmp.%ld", path, (long)getpid());
    f = fopen(tmp, "w");
    if (f == NULL) {
        fprintf(stderr, "mock_provider: creating %s failed: %s\n", tmp,
                strerror(errno));
        goto cleanup;
    }
    if (fprintf(f, "%d\n", port) < 0 || fclose(f) != 0) {
        fprintf(stderr, "mock_provider: writing %s failed: %s\n", tmp,
                strerror(errno));
        unlink(tmp);
        goto cleanup;
    }
    if (rename(tmp, path) != 0) {
        fprintf(stderr, "mock_provider: renaming %s to %s failed: %s\n", tmp,
                path, strerror(errno));
        unlink(tmp);
        goto cleanup;
    }
    rc = 0;

cleanup:
    free(tmp);
    return rc;
}

/* Stores one option that takes a value. Returns -1 after printing an
 * error. */
static int set_option(struct options *opts, const char *name,
                      const char *value)
{
    static const char *const names[] = {"--port", "--host", "--log",
                                        "--script", "--default",
                                        "--port-file"};
    bool known = false;
    long port;

    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        known = known || strcmp(name, names[i]) == 0;
    if (!known) {
        fprintf(stderr, "mock_provider: unknown option '%s'\n", name);
        return -1;
    }
    if (value == NULL) {
        fprintf(stderr, "mock_provider: %s: missing value\n", name);
        return -1;
    }

    if (strcmp(name, "--port") == 0) {
        if (parse_number(value, value + strlen(value), 65535, &port) != 0) {
            fprintf(stderr, "mock_provider: --port: invalid port '%s'; "
                            "expected 0 to 65535\n", value);
            return -1;
        }
        opts->port = (int)port;
    } else if (strcmp(name, "--host") == 0) {
        if (strcmp(value, "127.0.0.1") != 0) {
            fprintf(stderr, "mock_provider: --host: invalid host '%s'; "
                            "only 127.0.0.1 is supported\n", value);
            return -1;
        }
    } else if (strcmp(name, "--log") == 0) {
        opts->log_path = value;
    } else if (strcmp(name, "--script") == 0) {
        opts->script = value;
    } else if (strcmp(name, "--default") == 0) {
        opts->default_step = value;
    } else {
        opts->port_file = value;
    }
    return 0;
}

/* Parses the command line into opts. Returns 0, 1 after --help, or -1
 * after printing an error. */
static int parse_options(int argc, char **argv, struct options *opts)
{
    *opts = (struct options){.port = -1, .script = "", .default_step = "202"};
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            fputs(usage_text, stdout);
            return 1;
        }
        if (strcmp(argv[i], "--log-bodies") == 0) {
            opts->log_bodies = true;
            continue;
        }
        if (set_option(opts, argv[i], i + 1 < argc ? argv[i + 1] : NULL) != 0)
            goto usage;
        i++;
    }

    if (opts->port < 0 || opts->log_path == NULL) {
        fprintf(stderr, "mock_provider: --port and --log are required\n");
        goto usage;
    }
    if (strchr(opts->default_step, ',') != NULL) {
        fprintf(stderr, "mock_provider: --default: expected one step, got "
                        "'%s'\n", opts->default_step);
        goto usage;
    }
    return 0;

usage:
    fprintf(stderr, "Run 'mock_provider --help' for the options.\n");
    return -1;
}

/* Parses --script and --default. Returns -1 after printing an error. */
static int server_load_steps(struct server *s, const struct options *opts)
{
    if (parse_script(opts->script, &s->script, &s->script_len) != 0)
        return -1;
    if (parse_step(opts->default_step, &s->default_step) != 0) {
        fprintf(stderr, "mock_provider: --default: invalid step '%s'\n",
                opts->default_step);
        return -1;
    }
    return 0;
}

/* Opens the log and sets up the parser callbacks. Returns -1 after
 * printing an error. */
static int server_configure(struct server *s, const struct options *opts)
{
    s->log_bodies = opts->log_bodies;
    s->log_path = opts->log_path;
    s->log = fopen(opts->log_path, "w");
    if (s->log == NULL) {
        fprintf(stderr, "mock_provider: opening log %s failed: %s\n",
                opts->log_path, strerror(errno));
        return -1;
    }
    s->log_buffer = malloc(MOCK_LOG_BUFFER_BYTES);
    if (s->log_buffer == NULL ||
        setvbuf(s->log, s->log_buffer, _IOFBF, MOCK_LOG_BUFFER_BYTES) != 0) {
        fprintf(stderr, "mock_provider: out of memory for the log buffer\n");
        return -1;
    }

    llhttp_settings_init(&s->settings);
    s->settings.on_message_begin = on_message_begin;
    s->settings.on_url = on_url;
    s->settings.on_header_field = on_header_field;
    s->settings.on_header_field_complete = on_header_field_complete;
    s->settings.on_header_value = on_header_value;
    s->settings.on_headers_complete = on_headers_complete;
    s->settings.on_body = on_body;
    s->settings.on_message_complete = on_message_complete;
    return 0;
}

/* Binds 127.0.0.1:port and listens, and stores the bound port in *bound.
 * Returns -1 after printing an error. */
static int server_listen(struct server *s, int port, int *bound)
{
    struct sockaddr_in addr;
    struct sockaddr_storage name;
    int name_len = (int)sizeof(name);
    int rc;

    rc = uv_tcp_init(s->loop, &s->listener);
    s->listener.data = s;
    if (rc == 0)
        rc = uv_ip4_addr("127.0.0.1", port, &addr);
    if (rc == 0)
        rc = uv_tcp_bind(&s->listener, (const struct sockaddr *)&addr, 0);
    if (rc == 0)
        rc = uv_listen((uv_stream_t *)&s->listener, SOMAXCONN, on_connection);
    if (rc == 0)
        rc = uv_tcp_getsockname(&s->listener, (struct sockaddr *)&name,
                                &name_len);
    if (rc != 0) {
        fprintf(stderr, "mock_provider: listening on 127.0.0.1:%d failed: "
                        "%s%s\n", port, uv_strerror(rc),
                rc == UV_EADDRINUSE ? "; use another --port, or 0" : "");
        return -1;
    }
    *bound = ntohs(((struct sockaddr_in *)&name)->sin_port);
    return 0;
}

/* Starts the flush timer and the signal handlers. */
static int server_start_handles(struct server *s)
{
    uv_signal_t *signals[] = {&s->sigterm, &s->sigint, &s->sigusr1};
    const int numbers[] = {SIGTERM, SIGINT, SIGUSR1};
    int rc;

    rc = uv_timer_init(s->loop, &s->flush_timer);
    s->flush_timer.data = s;
    if (rc == 0)
        rc = uv_timer_start(&s->flush_timer, on_flush_timer,
                            MOCK_LOG_FLUSH_MS, MOCK_LOG_FLUSH_MS);
    for (size_t i = 0; rc == 0 && i < 3; i++) {
        rc = uv_signal_init(s->loop, signals[i]);
        signals[i]->data = s;
        if (rc == 0)
            rc = uv_signal_start(signals[i], on_signal, numbers[i]);
    }
    if (rc != 0)
        fprintf(stderr, "mock_provider: starting the event loop failed: %s\n",
                uv_strerror(rc));
    return rc;
}

static int server_close(struct server *s)
{
    int rc = 0;

    for (size_t i = 0; i < s->script_len; i++)
        free(s->script[i].text);
    free(s->script);
    free(s->default_step.text);
    if (s->log != NULL) {
        s->log_dirty = true;
        log_flush(s);
        if (fclose(s->log) != 0 || s->log_failed) {
            fprintf(stderr, "mock_provider: writing log %s failed, so it "
                            "may be missing lines\n", s->log_path);
            rc = -1;
        }
    }
    free(s->log_buffer);
    if (s->rejected_connections > 0)
        fprintf(stderr, "mock_provider: closed %" PRIu64 " connections at "
                        "accept, over the limit of %zu or out of memory\n",
                s->rejected_connections, MOCK_MAX_CONNECTIONS);
    free(s);
    return rc;
}

int main(int argc, char **argv)
{
    struct options opts;
    struct server *s;
    int port = 0;
    int rc;

    rc = parse_options(argc, argv, &opts);
    if (rc != 0)
        return rc > 0 ? 0 : 2;

    /* Writes to a client that has gone must fail with EPIPE instead of
     * killing the server. */
    signal(SIGPIPE, SIG_IGN);

    s = calloc(1, sizeof(*s));
    if (s == NULL) {
        fprintf(stderr, "mock_provider: out of memory\n");
        return 1;
    }
    s->loop = uv_default_loop();

    /* An invalid step is a usage error like an invalid option. */
    if (server_load_steps(s, &opts) != 0) {
        rc = 2;
    } else if (server_configure(s, &opts) != 0 ||
               server_listen(s, opts.port, &port) != 0 ||
               (opts.port_file != NULL &&
                write_port_file(opts.port_file, port) != 0) ||
               server_start_handles(s) != 0) {
        rc = 1;
    }
    if (rc != 0) {
        uv_walk(s->loop, close_any_handle, NULL);
        uv_run(s->loop, UV_RUN_DEFAULT);
        uv_loop_close(s->loop);
        server_close(s);
        return rc;
    }

    printf("listening 127.0.0.1:%d\n", port);
    fflush(stdout);
    uv_run(s->loop, UV_RUN_DEFAULT);
    uv_loop_close(s->loop);
    return server_close(s) == 0 ? 0 : 1;
}
