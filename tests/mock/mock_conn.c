/*
 * mock_conn.c - one client connection of the mock provider: reading,
 * parsing requests with llhttp, writing responses and closing.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mock.h"

struct write_req {
    uv_write_t req;
    struct conn *conn;
    char bytes[];
};

/* Appends n bytes and keeps the data NUL-terminated. Returns -1 when out of
 * memory. */
int buf_append(struct buf *b, const char *at, size_t n)
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

const char *buf_text(const struct buf *b)
{
    return b->data != NULL ? b->data : "";
}

void buf_free(struct buf *b)
{
    free(b->data);
    *b = (struct buf){0};
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
void conn_write(struct conn *c, const char *bytes, size_t len)
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

/* Sends a complete response. A HEAD request gets the headers only. */
void conn_send_response(struct conn *c, const struct response *r)
{
    size_t size = 512 + strlen(r->extra_headers);
    char *out = malloc(size);
    int len;

    if (out == NULL) {
        fprintf(stderr, "mock_provider: out of memory for a response\n");
        conn_close(c);
        return;
    }
    len = snprintf(out, size,
                   "HTTP/1.1 %d %s\r\n%s%s%s%sContent-Length: %zu\r\n"
                   "Connection: %s\r\n\r\n",
                   r->status, status_reason(r->status),
                   r->type != NULL ? "Content-Type: " : "",
                   r->type != NULL ? r->type : "",
                   r->type != NULL ? "\r\n" : "", r->extra_headers,
                   strlen(r->body), r->keep_alive ? "keep-alive" : "close");
    if (len < 0 || (size_t)len >= size) {
        fprintf(stderr, "mock_provider: formatting a response failed: longer "
                        "than %zu bytes\n", size);
        free(out);
        conn_close(c);
        return;
    }
    conn_write(c, out, (size_t)len);
    free(out);
    if (!r->head)
        conn_write(c, r->body, strlen(r->body));
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

void conn_start_reading(struct conn *c)
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
void conn_continue(struct conn *c)
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
void conn_shutdown(struct conn *c)
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
void conn_close(struct conn *c)
{
    if (c->state == CONN_CLOSING)
        return;
    c->state = CONN_CLOSING;
    uv_close((uv_handle_t *)&c->tcp, on_conn_handle_closed);
    uv_close((uv_handle_t *)&c->timer, on_conn_handle_closed);
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

int on_message_begin(llhttp_t *parser)
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

int on_url(llhttp_t *parser, const char *at, size_t len)
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
int on_header_field(llhttp_t *parser, const char *at, size_t len)
{
    struct conn *c = parser->data;

    if (count_header_bytes(parser, len) != 0)
        return HPE_USER;
    if (c->field_len + len < sizeof(c->field))
        memcpy(c->field + c->field_len, at, len);
    c->field_len += len;
    return 0;
}

int on_header_field_complete(llhttp_t *parser)
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

int on_header_value(llhttp_t *parser, const char *at, size_t len)
{
    struct conn *c = parser->data;

    if (count_header_bytes(parser, len) != 0)
        return HPE_USER;
    if (c->field_slot >= 0 &&
        buf_append(&c->header_values[c->field_slot], at, len) != 0)
        return parser_reject(parser, 500, "out of memory");
    return 0;
}

int on_headers_complete(llhttp_t *parser)
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

int on_body(llhttp_t *parser, const char *at, size_t len)
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
int on_message_complete(llhttp_t *parser)
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
