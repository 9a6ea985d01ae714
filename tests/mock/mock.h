/*
 * mock.h - the types, caps and functions that the source files of the mock
 * provider share.
 */
#ifndef OUTBOX_MOCK_H
#define OUTBOX_MOCK_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

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
    bool big;           /* body of MOCK_BIG_BODY bytes instead of the usual */
    long pad_headers;   /* extra X-Pad-N headers after the usual ones */
    bool close;         /* respond with Connection: close, then close */
    char *canned_headers; /* header lines of a canned response, or NULL */
    char *canned_body;    /* a canned response's body; set with the above */
    char *text;         /* the step as written, logged as "answer" */
};

/* Cap on the size of a canned response file (--responses). */
#define MOCK_MAX_RESPONSE_FILE_BYTES (1024 * 1024)

/* Sizes for the steps that test a client's caps on a response. */
#define MOCK_BIG_BODY (1024 * 1024)
#define MOCK_MAX_PAD_HEADERS 10000

struct buf {
    char *data;
    size_t len;
    size_t cap;
};

/* The request headers that the log keeps, by lower-case name. The parser
 * also tracks Expect, after these, to send the interim 100 Continue. */
extern const char *const kept_header_names[];
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

/* mock_steps.c */

/* Parses the decimal number in [begin, end) into out. Returns -1 unless the
 * range is all digits, not empty and at most max. */
int parse_number(const char *begin, const char *end, long max, long *out);

/* Sets the folder that canned responses (step "@NAME") are read from. */
void set_responses_dir(const char *dir);

/* Parses one step such as "202", "429:reset=60" or "slow=500:503". */
int parse_step(const char *text, struct step *step);

/* Frees what parse_step allocated for step. */
void free_step(struct step *step);

/* Parses a comma-separated script into steps. An empty spec is an empty
 * script. Prints the invalid step and returns -1 on error. */
int parse_script(const char *spec, struct step **out, size_t *count);

/* Returns the reason phrase of an HTTP status. */
const char *status_reason(int status);

/* Returns the body for a status, with its media type in *type. */
const char *status_body(int status, bool html, const char **type);

/* Responds to the last complete request as its step specifies, at once
 * or after the step's delay. */
void conn_respond(struct conn *c);

/* mock_conn.c */

/* Appends n bytes and keeps the data NUL-terminated. Returns -1 when out of
 * memory. */
int buf_append(struct buf *b, const char *at, size_t n);

/* Returns the data as text, "" when nothing was appended. */
const char *buf_text(const struct buf *b);

/* Frees the data and empties b. */
void buf_free(struct buf *b);

/* Queues a copy of the bytes for sending, and closes the connection if
 * that fails. */
void conn_write(struct conn *c, const char *bytes, size_t len);

/* Sends a complete response. A HEAD request gets the headers only. */
void conn_send_response(struct conn *c, const struct response *r);

/* Starts reading from the client. */
void conn_start_reading(struct conn *c);

/* Parses the input kept while the connection waited, then reads again
 * unless it still waits. */
void conn_continue(struct conn *c);

/* Ends the connection gracefully after every queued response. */
void conn_shutdown(struct conn *c);

/* Closes both handles. The connection is freed when the last one has
 * closed. */
void conn_close(struct conn *c);

/* The llhttp callbacks that the server installs for every connection. */
int on_message_begin(llhttp_t *parser);
int on_url(llhttp_t *parser, const char *at, size_t len);
int on_header_field(llhttp_t *parser, const char *at, size_t len);
int on_header_field_complete(llhttp_t *parser);
int on_header_value(llhttp_t *parser, const char *at, size_t len);
int on_headers_complete(llhttp_t *parser);
int on_body(llhttp_t *parser, const char *at, size_t len);
int on_message_complete(llhttp_t *parser);

/* mock_log.c */

/* Appends the request's line to the log buffer. The flush timer writes
 * the buffer to the file. */
void log_request(struct conn *c, const char *step_text);

/* Writes the buffered log lines to the file if there are any. */
void log_flush(struct server *s);

#endif /* OUTBOX_MOCK_H */
