/*
 * listener.c - the webhook listener on the daemon's loop.
 *
 * One request per connection. The listener reads a request with llhttp,
 * checks and parses it on the loop thread (webhook.c, which uses no
 * SQLite), and posts the events to the store thread. It responds when the
 * commit is done: 200, or 503 if the database could not take them, so the
 * provider sends them again. Every response closes the connection, so no
 * request waits behind another and no connection stays idle.
 *
 * Bounds: the request line and headers (LISTENER_MAX_HEADER_BYTES, 431),
 * the body (webhooks.max_body_bytes, 413), the number of connections
 * (webhooks.max_connections; more are closed at once) and the time a
 * request may take to arrive (webhooks.read_timeout_seconds, 408).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <llhttp.h>

#include "listener.h"
#include "webhook.h"

#define LISTENER_MAX_HEADER_BYTES (16 * 1024)
#define LISTENER_MAX_PATH 256
#define LISTENER_MAX_VALUE 1024

/* Headers the checks read, in the order of webhook_request's fields. */
enum header_slot {
    SLOT_CONTENT_TYPE,
    SLOT_AUTHORIZATION,
    SLOT_SIGNATURE,
    SLOT_TIMESTAMP,
    SLOT_COUNT,
    SLOT_NONE = SLOT_COUNT,
};

static const char *const slot_names[SLOT_COUNT] = {
    "content-type",
    "authorization",
    "x-twilio-email-event-webhook-signature",
    "x-twilio-email-event-webhook-timestamp",
};

struct listener {
    daemon_state *daemon;
    uv_tcp_t tcp;
    llhttp_settings_t settings;
    webhook_endpoints endpoints;
    struct connection *connections;
    size_t connection_count;
    bool closing;
};

typedef struct connection {
    struct listener *listener;
    struct connection *prev;
    struct connection *next;
    uv_tcp_t tcp;
    uv_timer_t timer;
    int open_handles;
    llhttp_t parser;
    bool done_reading;          /* the request is complete or rejected */
    bool in_worker;             /* a JOB_EVENTS job carries this request */
    bool closing;

    char peer[64];              /* the client's address, as text */
    char path[LISTENER_MAX_PATH + 1];
    size_t path_length;
    char field[64];
    size_t field_length;
    enum header_slot slot;
    char values[SLOT_COUNT][LISTENER_MAX_VALUE + 1];
    size_t value_lengths[SLOT_COUNT];
    bool seen[SLOT_COUNT];
    size_t header_bytes;
    char *body;
    size_t body_length;
    int status;                 /* set when a bound is broken */
    const char *reason;
} connection;

/* ------------------------------------------------------------------ */
/* Connections                                                         */
/* ------------------------------------------------------------------ */

static void on_handle_closed(uv_handle_t *handle)
{
    connection *c = handle->data;

    if (--c->open_handles > 0)
        return;
    free(c->body);
    free(c);
}

/* Closes c, unless a job still carries its request: then the job's
 * return frees it. */
static void connection_close(connection *c)
{
    struct listener *l = c->listener;

    if (c->closing)
        return;
    c->closing = true;
    if (c->prev != NULL)
        c->prev->next = c->next;
    else
        l->connections = c->next;
    if (c->next != NULL)
        c->next->prev = c->prev;
    l->connection_count--;
    if (c->in_worker)
        return;
    uv_close((uv_handle_t *)&c->timer, on_handle_closed);
    uv_close((uv_handle_t *)&c->tcp, on_handle_closed);
}

static void on_write_done(uv_write_t *request, int status)
{
    connection *c = request->data;

    (void)status;
    free(request);
    connection_close(c);
}

static const char *status_text(int status)
{
    switch (status) {
    case 200: return "OK";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 413: return "Content Too Large";
    case 415: return "Unsupported Media Type";
    case 431: return "Request Header Fields Too Large";
    case 503: return "Service Unavailable";
    default: return "Error";
    }
}

/* Sends the response and closes the connection when it is written. */
static void respond(connection *c, int status, const char *text)
{
    uv_write_t *request;
    char *out;
    int length;
    uv_buf_t buffer;

    uv_read_stop((uv_stream_t *)&c->tcp);
    uv_timer_stop(&c->timer);
    c->done_reading = true;
    request = malloc(sizeof(*request) + 2048);
    if (request == NULL) {
        connection_close(c);
        return;
    }
    out = (char *)(request + 1);
    length = snprintf(out, 2048,
                      "HTTP/1.1 %d %s\r\nContent-Type: text/plain\r\n"
                      "Content-Length: %zu\r\nConnection: close\r\n\r\n%s\n",
                      status, status_text(status), strlen(text) + 1, text);
    if (length < 0 || length >= 2048) {
        free(request);
        connection_close(c);
        return;
    }
    buffer = uv_buf_init(out, (unsigned)length);
    request->data = c;
    if (uv_write(request, (uv_stream_t *)&c->tcp, &buffer, 1, on_write_done)
        != 0) {
        free(request);
        connection_close(c);
    }
}

/* Logs a rejected request with its reason, then responds to it. */
static void reject(connection *c, int status, const char *reason)
{
    char quoted[OUTBOX_LOG_QUOTED_SIZE];

    outbox_log(&c->listener->daemon->logger, OUTBOX_LOG_WARN,
               "webhook rejected: path=%s status=%d error=%s",
               c->path_length > 0 ? c->path : "-", status,
               outbox_log_quote(quoted, sizeof(quoted), reason));
    respond(c, status, reason);
}

/* ------------------------------------------------------------------ */
/* Parsing                                                             */
/* ------------------------------------------------------------------ */

static connection *parser_connection(llhttp_t *parser)
{
    return parser->data;
}

/* Stops the parser with a bound that was broken. */
static int fail_bound(connection *c, int status, const char *reason)
{
    c->status = status;
    c->reason = reason;
    return HPE_USER;
}

static int count_header_bytes(connection *c, size_t length)
{
    c->header_bytes += length;
    return c->header_bytes > LISTENER_MAX_HEADER_BYTES
               ? fail_bound(c, 431, "the request line and headers are "
                                    "too large")
               : 0;
}

static int on_url(llhttp_t *parser, const char *at, size_t length)
{
    connection *c = parser_connection(parser);

    if (c->path_length + length > LISTENER_MAX_PATH)
        return fail_bound(c, 404, "the path is too long");
    memcpy(c->path + c->path_length, at, length);
    c->path_length += length;
    c->path[c->path_length] = '\0';
    return count_header_bytes(c, length);
}

static int on_header_field(llhttp_t *parser, const char *at, size_t length)
{
    connection *c = parser_connection(parser);

    if (c->field_length + length < sizeof(c->field)) {
        memcpy(c->field + c->field_length, at, length);
        c->field_length += length;
    } else {
        c->field_length = sizeof(c->field);  /* longer than any we keep */
    }
    return count_header_bytes(c, length);
}

static int on_header_field_complete(llhttp_t *parser)
{
    connection *c = parser_connection(parser);

    c->slot = SLOT_NONE;
    if (c->field_length < sizeof(c->field)) {
        c->field[c->field_length] = '\0';
        for (int i = 0; i < SLOT_COUNT; i++) {
            if (strcasecmp(c->field, slot_names[i]) == 0)
                c->slot = (enum header_slot)i;
        }
    }
    c->field_length = 0;
    if (c->slot != SLOT_NONE && c->seen[c->slot])
        return fail_bound(c, 400, "a header the check reads is repeated");
    return 0;
}

static int on_header_value(llhttp_t *parser, const char *at, size_t length)
{
    connection *c = parser_connection(parser);
    enum header_slot slot = c->slot;

    if (slot != SLOT_NONE) {
        if (c->value_lengths[slot] + length > LISTENER_MAX_VALUE)
            return fail_bound(c, 431, "a header value is too long");
        memcpy(c->values[slot] + c->value_lengths[slot], at, length);
        c->value_lengths[slot] += length;
        c->values[slot][c->value_lengths[slot]] = '\0';
        c->seen[slot] = true;
    }
    return count_header_bytes(c, length);
}

static int on_headers_complete(llhttp_t *parser)
{
    connection *c = parser_connection(parser);
    size_t max_body =
        (size_t)c->listener->daemon->config->webhooks.max_body_bytes;

    if ((parser->flags & F_CONTENT_LENGTH) && parser->content_length > max_body)
        return fail_bound(c, 413, "the body is larger than max_body_bytes");
    return 0;
}

static int on_body(llhttp_t *parser, const char *at, size_t length)
{
    connection *c = parser_connection(parser);
    size_t max_body =
        (size_t)c->listener->daemon->config->webhooks.max_body_bytes;
    char *grown;

    if (c->body_length + length > max_body)
        return fail_bound(c, 413, "the body is larger than max_body_bytes");
    grown = realloc(c->body, c->body_length + length + 1);
    if (grown == NULL)
        return fail_bound(c, 503, "out of memory for the body");
    c->body = grown;
    memcpy(c->body + c->body_length, at, length);
    c->body_length += length;
    c->body[c->body_length] = '\0';
    return 0;
}

static int on_message_complete(llhttp_t *parser)
{
    connection *c = parser_connection(parser);

    c->done_reading = true;
    return HPE_PAUSED;
}

/* ------------------------------------------------------------------ */
/* Requests                                                            */
/* ------------------------------------------------------------------ */

/* Fills request from the connection's headers and body. */
static void read_request(const connection *c, webhook_request *request)
{
    memset(request, 0, sizeof(*request));
    request->peer = c->peer[0] != '\0' ? c->peer : NULL;
    request->content_type = c->seen[SLOT_CONTENT_TYPE]
                                ? c->values[SLOT_CONTENT_TYPE] : NULL;
    request->authorization = c->seen[SLOT_AUTHORIZATION]
                                 ? c->values[SLOT_AUTHORIZATION] : NULL;
    request->signature = c->seen[SLOT_SIGNATURE] ? c->values[SLOT_SIGNATURE]
                                                 : NULL;
    request->timestamp = c->seen[SLOT_TIMESTAMP] ? c->values[SLOT_TIMESTAMP]
                                                 : NULL;
    request->body = c->body != NULL ? c->body : "";
    request->body_size = c->body_length;
    request->now = (int64_t)time(NULL);
}

/* Logs why a request is rejected and responds to it with status. */
static void refuse(connection *c, const webhook_endpoint *endpoint,
                   int status, const outbox_error *err)
{
    char quoted[OUTBOX_LOG_QUOTED_SIZE];

    outbox_log(&c->listener->daemon->logger, OUTBOX_LOG_WARN,
               "webhook rejected: provider=%s status=%d kind=%s error=%s",
               endpoint->provider, status, err->kind,
               outbox_log_quote(quoted, sizeof(quoted), err->text));
    respond(c, status, err->text);
}

/* Hands the events of job to the store thread. The response follows when
 * the job returns, or at once for an empty batch. */
static void store_events(connection *c, const webhook_endpoint *endpoint,
                         worker_job *job, int64_t now)
{
    if (job->events.count == 0) {
        worker_job_free(job);
        respond(c, 200, "nothing to store");
        return;
    }
    job->provider = endpoint->provider;
    job->webhook = c;
    job->now = now;
    c->in_worker = true;
    worker_post(&c->listener->daemon->worker, job);
}

/* A request for SES through SNS, across the fetches it may need. */
typedef struct sns_request {
    uv_work_t work;
    connection *c;
    webhook_endpoint *endpoint;
    outbox_sns_message message;
    webhook_request request;
    const char *url;            /* what the work fetches */
    bool confirming;            /* the URL confirms a subscription */
    char *body;
    size_t size;
    outbox_err rc;
    outbox_error err;
    int response_status;        /* sent once the subscription is recorded */
    const char *response_text;
} sns_request;

static void sns_request_free(sns_request *r)
{
    outbox_sns_message_free(&r->message);
    free(r->body);
    free(r);
}

static void sns_fetch(uv_work_t *work)
{
    sns_request *r = work->data;

    r->rc = webhook_fetch(&r->body, &r->size, &r->err, r->url);
}

static void sns_continue(sns_request *r);

/*
 * Hands the subscription's new status to the store thread; the request
 * gets response_status when the job comes back. error, if not NULL, is
 * r->err.text.
 */
static void record_subscription(sns_request *r, const char *status,
                                const char *error, int response_status,
                                const char *response_text)
{
    worker_job *job = worker_job_new(JOB_SNS_SUBSCRIPTION);

    if (job == NULL) {
        respond(r->c, 503, "out of memory");
        sns_request_free(r);
        return;
    }
    r->response_status = response_status;
    r->response_text = response_text;
    job->webhook = r;
    job->now = r->request.now;
    job->subscription.provider = r->endpoint->provider;
    job->subscription.topic_arn = r->message.topic_arn;
    job->subscription.status = status;
    job->subscription.message_id = r->message.message_id;
    job->subscription.error = error;
    r->c->in_worker = true;
    worker_post(&r->c->listener->daemon->worker, job);
}

void listener_subscription_done(daemon_state *d, worker_job *job)
{
    sns_request *r = job->webhook;
    connection *c = r->c;
    char quoted[OUTBOX_LOG_QUOTED_SIZE];

    c->in_worker = false;
    if (job->rc != OUTBOX_EOK)
        outbox_log(&d->logger, OUTBOX_LOG_ERROR,
                   "webhook: provider=%s topic=%s status=%s: the SNS "
                   "subscription is not recorded in sns_subscription: %s",
                   r->endpoint->provider, r->message.topic_arn,
                   job->subscription.status,
                   outbox_log_quote(quoted, sizeof(quoted), job->err.text));
    if (c->closing) {
        uv_close((uv_handle_t *)&c->timer, on_handle_closed);
        uv_close((uv_handle_t *)&c->tcp, on_handle_closed);
    } else {
        respond(c, r->response_status, r->response_text);
    }
    sns_request_free(r);
    worker_job_free(job);
}

static void sns_fetched(uv_work_t *work, int status)
{
    sns_request *r = work->data;
    connection *c = r->c;
    daemon_state *d = c->listener->daemon;
    char quoted[OUTBOX_LOG_QUOTED_SIZE];

    c->in_worker = false;
    if (c->closing) {
        uv_close((uv_handle_t *)&c->timer, on_handle_closed);
        uv_close((uv_handle_t *)&c->tcp, on_handle_closed);
        sns_request_free(r);
        return;
    }
    if (status != 0 || r->rc != OUTBOX_EOK) {
        outbox_log(&d->logger, OUTBOX_LOG_ERROR,
                   "webhook: provider=%s %s: error=%s", r->endpoint->provider,
                   r->confirming ? "confirming the SNS subscription failed"
                                 : "fetching the SNS certificate failed",
                   outbox_log_quote(quoted, sizeof(quoted), r->err.text));
        if (r->confirming) {
            record_subscription(r, "pending", r->err.text, 503,
                                "confirming the subscription failed; send "
                                "again");
        } else {
            respond(c, 503, "a fetch from SNS failed; send again");
            sns_request_free(r);
        }
        return;
    }
    if (r->confirming) {
        outbox_log(&d->logger, OUTBOX_LOG_INFO,
                   "webhook: provider=%s SNS subscription confirmed: "
                   "topic=%s", r->endpoint->provider, r->message.topic_arn);
        record_subscription(r, "confirmed", NULL, 200,
                            "subscription confirmed");
        return;
    }
    webhook_sns_remember(r->endpoint, r->url, r->body, r->size);
    free(r->body);
    r->body = NULL;
    sns_continue(r);
}

/* Fetches url on libuv's thread pool: libcurl's easy call blocks. */
static void sns_start_fetch(sns_request *r, const char *url, bool confirming)
{
    r->url = url;
    r->confirming = confirming;
    r->work.data = r;
    r->c->in_worker = true;
    if (uv_queue_work(r->c->listener->daemon->loop, &r->work, sns_fetch,
                      sns_fetched) != 0) {
        r->c->in_worker = false;
        respond(r->c, 503, "cannot start a fetch from SNS");
        sns_request_free(r);
    }
}

/* Checks the signature with the certificate at hand, then stores the
 * events or confirms the subscription. */
static void sns_continue(sns_request *r)
{
    const char *confirm_url = NULL;
    worker_job *job = worker_job_new(JOB_EVENTS);
    int status;

    if (job == NULL) {
        respond(r->c, 503, "out of memory");
        sns_request_free(r);
        return;
    }
    status = webhook_sns_finish(r->endpoint, &r->request, &r->message,
                                &job->events, &confirm_url, &r->err);
    if (status != 0) {
        worker_job_free(job);
        refuse(r->c, r->endpoint, status, &r->err);
        sns_request_free(r);
        return;
    }
    if (confirm_url != NULL) {
        worker_job_free(job);
        sns_start_fetch(r, confirm_url, true);
        return;
    }

    /* Confirming this one would subscribe again the endpoint that the
     * operator has just removed. */
    if (r->message.type == OUTBOX_SNS_UNSUBSCRIBE_CONFIRMATION) {
        worker_job_free(job);
        outbox_log(&r->c->listener->daemon->logger, OUTBOX_LOG_WARN,
                   "webhook: provider=%s SNS unsubscribed topic=%s; "
                   "outboxd does not subscribe again",
                   r->endpoint->provider, r->message.topic_arn);
        record_subscription(r, "unsubscribed", NULL, 200,
                            "unsubscribe recorded");
        return;
    }
    store_events(r->c, r->endpoint, job, r->request.now);
    sns_request_free(r);
}

static void handle_sns(connection *c, webhook_endpoint *endpoint)
{
    daemon_state *d = c->listener->daemon;
    sns_request *r = calloc(1, sizeof(*r));
    const char *fetch_url = NULL;
    int status;

    if (r == NULL) {
        respond(c, 503, "out of memory");
        return;
    }
    r->c = c;
    r->endpoint = endpoint;
    read_request(c, &r->request);
    status = webhook_sns_check(endpoint, &r->request,
                               d->config->webhooks.max_age_seconds,
                               &r->message, &fetch_url, &r->err);
    if (status > 0) {
        refuse(c, endpoint, status, &r->err);
        sns_request_free(r);
    } else if (status < 0) {
        sns_start_fetch(r, fetch_url, false);
    } else {
        sns_continue(r);
    }
}

/* Checks and parses a complete request, then hands its events to the
 * store thread. */
static void handle_request(connection *c)
{
    struct listener *l = c->listener;
    daemon_state *d = l->daemon;
    char *query = strchr(c->path, '?');
    webhook_endpoint *endpoint;
    webhook_request request;
    outbox_error err = {{0}, {0}};
    worker_job *job;
    int status;

    if (query != NULL)
        *query = '\0';
    endpoint = webhook_find(&l->endpoints, c->path);
    if (endpoint == NULL) {
        reject(c, 404, "no webhook endpoint at this path");
        return;
    }
    if (llhttp_get_method(&c->parser) != HTTP_POST) {
        reject(c, 405, "webhooks take POST only");
        return;
    }
    if (strcmp(endpoint->type, "ses") == 0) {
        handle_sns(c, endpoint);
        return;
    }
    job = worker_job_new(JOB_EVENTS);
    if (job == NULL) {
        reject(c, 503, "out of memory");
        return;
    }
    read_request(c, &request);
    status = webhook_accept(endpoint, &request,
                            d->config->webhooks.max_age_seconds,
                            &job->events, &err);
    if (status != 0) {
        worker_job_free(job);
        refuse(c, endpoint, status, &err);
        return;
    }
    store_events(c, endpoint, job, request.now);
}

void listener_events_done(daemon_state *d, worker_job *job)
{
    connection *c = job->webhook;
    char quoted[OUTBOX_LOG_QUOTED_SIZE];

    c->in_worker = false;
    if (job->rc != OUTBOX_EOK)
        outbox_log(&d->logger, OUTBOX_LOG_ERROR,
                   "webhook not stored: provider=%s events=%zu error=%s; "
                   "answered 503 so the provider sends them again",
                   job->provider, job->events.count,
                   outbox_log_quote(quoted, sizeof(quoted), job->err.text));
    else
        outbox_log(&d->logger, OUTBOX_LOG_INFO,
                   "webhook stored: provider=%s events=%zu new=%zu",
                   job->provider, job->events.count, job->stored);
    if (c->closing) {
        /* The client went away. A provider that got no response sends the
         * events again, and a resent event is ignored. */
        uv_close((uv_handle_t *)&c->timer, on_handle_closed);
        uv_close((uv_handle_t *)&c->tcp, on_handle_closed);
    } else if (job->rc == OUTBOX_EOK) {
        respond(c, 200, "stored");
    } else {
        respond(c, 503, "the database could not take the events; "
                        "send them again");
    }
    worker_job_free(job);
}

static void on_alloc(uv_handle_t *handle, size_t suggested, uv_buf_t *buffer)
{
    static char input[64 * 1024];

    (void)handle;
    (void)suggested;
    *buffer = uv_buf_init(input, sizeof(input));
}

static void on_read(uv_stream_t *stream, ssize_t count, const uv_buf_t *buf)
{
    connection *c = stream->data;
    llhttp_errno_t rc;

    if (count < 0) {
        /* The client closed or reset before a whole request arrived. */
        connection_close(c);
        return;
    }
    if (count == 0 || c->done_reading)
        return;
    rc = llhttp_execute(&c->parser, buf->base, (size_t)count);
    /* A broken bound stops the parser with a code that depends on the
     * callback that found it; c->status records which bound it was. */
    if (c->status != 0) {
        reject(c, c->status, c->reason);
    } else if (rc == HPE_PAUSED) {
        handle_request(c);
    } else if (rc != HPE_OK) {
        reject(c, 400, llhttp_errno_name(rc));
    }
}

static void on_timeout(uv_timer_t *timer)
{
    connection *c = timer->data;

    if (!c->done_reading)
        reject(c, 408, "the request did not arrive within "
                       "read_timeout_seconds");
}

/* Writes the client's address into c->peer, or leaves it empty. */
static void read_peer(connection *c)
{
    struct sockaddr_storage address;
    int length = sizeof(address);

    if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&address, &length)
        != 0)
        return;
    if (address.ss_family == AF_INET)
        uv_ip4_name((struct sockaddr_in *)&address, c->peer, sizeof(c->peer));
    else if (address.ss_family == AF_INET6)
        uv_ip6_name((struct sockaddr_in6 *)&address, c->peer,
                    sizeof(c->peer));
}

static void on_connection(uv_stream_t *server, int status)
{
    struct listener *l = server->data;
    daemon_state *d = l->daemon;
    connection *c;

    if (status < 0)
        return;
    c = calloc(1, sizeof(*c));
    if (c == NULL)
        return;
    c->listener = l;
    uv_tcp_init(d->loop, &c->tcp);
    uv_timer_init(d->loop, &c->timer);
    c->tcp.data = c;
    c->timer.data = c;
    c->open_handles = 2;
    c->next = l->connections;
    if (l->connections != NULL)
        l->connections->prev = c;
    l->connections = c;
    l->connection_count++;
    if (uv_accept(server, (uv_stream_t *)&c->tcp) != 0
        || l->connection_count > (size_t)d->config->webhooks.max_connections) {
        connection_close(c);
        return;
    }
    read_peer(c);
    llhttp_init(&c->parser, HTTP_REQUEST, &l->settings);
    c->parser.data = c;
    uv_timer_start(&c->timer, on_timeout,
                   (uint64_t)d->config->webhooks.read_timeout_seconds * 1000,
                   0);
    uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
}

/* ------------------------------------------------------------------ */
/* Start and stop                                                      */
/* ------------------------------------------------------------------ */

static int bind_and_listen(struct listener *l, const outboxd_webhooks *config)
{
    struct sockaddr_storage address;
    struct sockaddr_storage bound;
    int length = sizeof(bound);
    char text[64] = "";
    int rc;

    rc = uv_ip4_addr(config->listen, config->port,
                     (struct sockaddr_in *)&address);
    if (rc != 0)
        rc = uv_ip6_addr(config->listen, config->port,
                         (struct sockaddr_in6 *)&address);
    if (rc == 0)
        rc = uv_tcp_bind(&l->tcp, (const struct sockaddr *)&address, 0);
    if (rc == 0)
        rc = uv_listen((uv_stream_t *)&l->tcp, 128, on_connection);
    if (rc != 0) {
        outbox_log(&l->daemon->logger, OUTBOX_LOG_ERROR,
                   "webhooks: cannot listen on %s port %d: %s",
                   config->listen, config->port, uv_strerror(rc));
        return -1;
    }
    uv_tcp_getsockname(&l->tcp, (struct sockaddr *)&bound, &length);
    if (bound.ss_family == AF_INET)
        uv_ip4_name((struct sockaddr_in *)&bound, text, sizeof(text));
    else
        uv_ip6_name((struct sockaddr_in6 *)&bound, text, sizeof(text));
    if (l->endpoints.count == 0)
        outbox_log(&l->daemon->logger, OUTBOX_LOG_WARN,
                   "webhooks: no provider has webhook keys, so every "
                   "request gets 404; add them to the provider objects");
    outbox_log(&l->daemon->logger, OUTBOX_LOG_INFO,
               "webhooks listening: address=%s port=%d endpoints=%zu", text,
               ntohs(((struct sockaddr_in *)&bound)->sin_port),
               l->endpoints.count);
    return 0;
}

int listener_start(daemon_state *d)
{
    struct listener *l;
    outbox_error err = {{0}, {0}};

    if (!d->config->webhooks.enabled)
        return 0;
    l = calloc(1, sizeof(*l));
    if (l == NULL)
        return -1;
    l->daemon = d;
    if (webhook_endpoints_load(&l->endpoints, &err, d->config->providers,
                               d->config->webhooks.max_age_seconds)
        != OUTBOX_EOK) {
        outbox_log(&d->logger, OUTBOX_LOG_ERROR, "%s", err.text);
        free(l);
        return -1;
    }
    for (size_t i = 0; i < l->endpoints.count; i++) {
        const webhook_endpoint *endpoint = &l->endpoints.items[i];

        outbox_log(&d->logger,
                   endpoint->insecure ? OUTBOX_LOG_WARN : OUTBOX_LOG_INFO,
                   "webhook endpoint: path=%s type=%s%s", endpoint->path,
                   endpoint->type,
                   endpoint->insecure ? " checks=OFF (insecure)" : "");
    }
    llhttp_settings_init(&l->settings);
    l->settings.on_url = on_url;
    l->settings.on_header_field = on_header_field;
    l->settings.on_header_field_complete = on_header_field_complete;
    l->settings.on_header_value = on_header_value;
    l->settings.on_headers_complete = on_headers_complete;
    l->settings.on_body = on_body;
    l->settings.on_message_complete = on_message_complete;
    uv_tcp_init(d->loop, &l->tcp);
    l->tcp.data = l;
    d->listener = l;
    if (bind_and_listen(l, &d->config->webhooks) != 0) {
        listener_stop(d);
        return -1;
    }
    return 0;
}

void listener_stop(daemon_state *d)
{
    struct listener *l = d->listener;
    connection *c;
    connection *next;

    if (l == NULL || l->closing)
        return;
    l->closing = true;
    /* A request in the store thread is answered when its job returns. */
    for (c = l->connections; c != NULL; c = next) {
        next = c->next;
        if (!c->in_worker)
            connection_close(c);
    }
    uv_close((uv_handle_t *)&l->tcp, NULL);
}

void listener_free(daemon_state *d)
{
    struct listener *l = d->listener;

    if (l == NULL)
        return;
    webhook_endpoints_free(&l->endpoints);
    free(l);
    d->listener = NULL;
}
