/*
 * transfer.c - deliveries: libcurl's multi interface driven by the libuv
 * loop's sockets and timers, and local deliveries on libuv's thread pool.
 *
 * libcurl reports which sockets to watch (socket callback) and when
 * to call it back (timer callback). The loop calls curl_multi_socket_action
 * only from its own poll and timer callbacks, never from inside a libcurl
 * callback. One multi handle keeps connections alive and reuses them
 * across messages to the same provider.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "daemon.h"

/* Caps on what is kept of a response; more is read and dropped. */
#define RESPONSE_MAX_HEADERS 64
#define RESPONSE_MAX_HEADER_BYTES 8192
#define RESPONSE_MAX_BODY (64 * 1024)

typedef struct transfer {
    daemon_state *d;
    provider_slot *slot;
    outbox_message *message;
    void *request;
    CURL *easy;
    int64_t started_at;
    outbox_field headers[RESPONSE_MAX_HEADERS];
    size_t header_count;
    char *body;
    size_t body_size;
    bool body_truncated;
    size_t body_dropped;         /* bytes past RESPONSE_MAX_BODY */
    size_t headers_dropped;      /* header lines past the caps */
    bool headers_complete;       /* the blank line after the headers came */
    char error[CURL_ERROR_SIZE];
    int requests;                /* times libcurl sent the request */
    uv_work_t work;              /* local deliveries */
    outbox_result result;        /* local deliveries */
    struct transfer *prev;       /* list of running curl transfers */
    struct transfer *next;
} transfer;

typedef struct socket_poll {
    uv_poll_t handle;
    curl_socket_t fd;
    daemon_state *d;
} socket_poll;


static void check_done(daemon_state *d);

static void clear_headers(transfer *t)
{
    for (size_t i = 0; i < t->header_count; i++) {
        free(t->headers[i].name);
        free(t->headers[i].value);
    }
    t->header_count = 0;
    t->headers_dropped = 0;
}

static void transfer_free(transfer *t)
{
    if (t == NULL)
        return;
    clear_headers(t);
    free(t->body);
    if (t->request != NULL)
        outbox_provider_release(t->slot->provider, t->request);
    if (t->easy != NULL && t->d->idle_count < t->d->idle_capacity) {
        curl_easy_reset(t->easy);
        t->d->idle_handles[t->d->idle_count++] = t->easy;
    } else if (t->easy != NULL) {
        curl_easy_cleanup(t->easy);
    }
    outbox_message_free(t->message);
    free(t);
}

static size_t on_header(char *data, size_t size, size_t count, void *user)
{
    transfer *t = user;
    size_t length = size * count;
    size_t name_length;
    char *colon;
    char *value;
    size_t value_length;

    /* A new status line starts a new response (after 100 Continue, say). */
    if (length >= 5 && memcmp(data, "HTTP/", 5) == 0) {
        clear_headers(t);
        t->headers_complete = false;
        return length;
    }
    if ((length == 2 && data[0] == '\r') || (length == 1 && data[0] == '\n')) {
        t->headers_complete = true;
        return length;
    }
    colon = memchr(data, ':', length);
    if (colon == NULL)
        return length;
    if (t->header_count == RESPONSE_MAX_HEADERS
        || length > RESPONSE_MAX_HEADER_BYTES) {
        t->headers_dropped++;
        return length;
    }
    name_length = (size_t)(colon - data);
    value = colon + 1;
    value_length = length - name_length - 1;
    while (value_length > 0 && (*value == ' ' || *value == '\t')) {
        value++;
        value_length--;
    }
    while (value_length > 0 && (value[value_length - 1] == '\r'
                                || value[value_length - 1] == '\n'
                                || value[value_length - 1] == ' '))
        value_length--;
    t->headers[t->header_count].name = strndup(data, name_length);
    t->headers[t->header_count].value = strndup(value, value_length);
    if (t->headers[t->header_count].name == NULL
        || t->headers[t->header_count].value == NULL) {
        free(t->headers[t->header_count].name);
        free(t->headers[t->header_count].value);
        return 0;
    }
    t->header_count++;
    return length;
}

static size_t on_body(char *data, size_t size, size_t count, void *user)
{
    transfer *t = user;
    size_t length = size * count;
    size_t room = RESPONSE_MAX_BODY - t->body_size;
    size_t keep = length < room ? length : room;

    if (keep < length) {
        t->body_truncated = true;
        t->body_dropped += length - keep;
    }
    if (keep == 0)
        return length;
    if (t->body == NULL) {
        t->body = malloc(RESPONSE_MAX_BODY + 1);
        if (t->body == NULL)
            return 0;
    }
    memcpy(t->body + t->body_size, data, keep);
    t->body_size += keep;
    t->body[t->body_size] = '\0';
    return length;
}

/*
 * libcurl sends a request a second time, on a new connection, when a reused
 * connection closes before any response. The server may have processed the
 * first copy, so the count is kept and the attempt row records it.
 */
static int on_request(void *user, char *primary_ip, char *local_ip,
                      int primary_port, int local_port)
{
    transfer *t = user;

    (void)primary_ip;
    (void)local_ip;
    (void)primary_port;
    (void)local_port;
    t->requests++;
    return CURL_PREREQFUNC_OK;
}

/* Notes in the result that the request left more than once. */
static void note_resent(daemon_state *d, const transfer *t,
                        outbox_result *result)
{
    char note[200];
    size_t used = strlen(result->error.text);

    snprintf(note, sizeof(note),
             "%slibcurl sent the request %d times because a reused "
             "connection closed without an answer; the provider may have "
             "received it more than once",
             used ? "; " : "", t->requests);
    snprintf(result->error.text + used, sizeof(result->error.text) - used,
             "%s", note);
    if (result->error.kind[0] == '\0')
        snprintf(result->error.kind, sizeof(result->error.kind), "resent");
    outbox_log(&d->logger, OUTBOX_LOG_WARN,
               "id=%lld provider=%s requests=%d error=\"request re-sent on "
               "a new connection\"",
               (long long)t->message->id,
               outbox_provider_name(t->slot->provider), t->requests);
}

static void on_poll(uv_poll_t *handle, int status, int events)
{
    socket_poll *poll = handle->data;
    int flags = 0;
    int still_running = 0;

    /* An error on the socket is libcurl's to report, on the transfer. */
    if (status < 0)
        flags = CURL_CSELECT_ERR;
    if (events & UV_READABLE)
        flags |= CURL_CSELECT_IN;
    if (events & UV_WRITABLE)
        flags |= CURL_CSELECT_OUT;
    curl_multi_socket_action(poll->d->multi, poll->fd, flags, &still_running);
    check_done(poll->d);
}

static void on_poll_closed(uv_handle_t *handle)
{
    free(handle->data);
}

static int on_socket(CURL *easy, curl_socket_t fd, int what, void *user,
                     void *socket_data)
{
    daemon_state *d = user;
    socket_poll *poll = socket_data;
    int events = 0;

    (void)easy;
    if (what == CURL_POLL_REMOVE) {
        if (poll != NULL) {
            uv_poll_stop(&poll->handle);
            curl_multi_assign(d->multi, fd, NULL);
            uv_close((uv_handle_t *)&poll->handle, on_poll_closed);
        }
        return 0;
    }
    if (poll == NULL) {
        poll = calloc(1, sizeof(*poll));
        if (poll == NULL)
            return -1;
        poll->fd = fd;
        poll->d = d;
        if (uv_poll_init_socket(d->loop, &poll->handle, fd) != 0) {
            free(poll);
            return -1;
        }
        poll->handle.data = poll;
        curl_multi_assign(d->multi, fd, poll);
    }
    if (what & CURL_POLL_IN)
        events |= UV_READABLE;
    if (what & CURL_POLL_OUT)
        events |= UV_WRITABLE;
    uv_poll_start(&poll->handle, events, on_poll);
    return 0;
}

static void on_curl_timeout(uv_timer_t *timer)
{
    daemon_state *d = timer->data;
    int still_running = 0;

    curl_multi_socket_action(d->multi, CURL_SOCKET_TIMEOUT, 0,
                             &still_running);
    check_done(d);
}

/* libcurl requests a call back in timeout_ms (0: at the next loop
 * iteration, -1: no timer). The call happens from the loop, not here. */
static int on_timer(CURLM *multi, long timeout_ms, void *user)
{
    daemon_state *d = user;

    (void)multi;
    if (timeout_ms < 0)
        uv_timer_stop(&d->curl_timer);
    else
        uv_timer_start(&d->curl_timer, on_curl_timeout, (uint64_t)timeout_ms,
                       0);
    return 0;
}

static void unlink_running(transfer *t)
{
    if (t->prev != NULL)
        t->prev->next = t->next;
    else
        t->d->running = t->next;
    if (t->next != NULL)
        t->next->prev = t->prev;
    t->prev = NULL;
    t->next = NULL;
}

static void finish_curl(daemon_state *d, transfer *t, CURLcode code)
{
    outbox_response response;
    outbox_result result;
    long status = 0;

    curl_easy_getinfo(t->easy, CURLINFO_RESPONSE_CODE, &status);

    /* libcurl 7.88 reports success when the connection closes in the
     * middle of the headers. Such a response is incomplete, so it becomes
     * a network error, and the text keeps the status that did arrive,
     * since the provider may have accepted the message. */
    if (code == CURLE_OK && status > 0 && !t->headers_complete) {
        snprintf(t->error, sizeof(t->error),
                 "the connection closed in the middle of the response "
                 "headers after status %ld; the provider may have accepted "
                 "the message",
                 status);
        code = CURLE_PARTIAL_FILE;
        status = 0;
    }
    memset(&response, 0, sizeof(response));
    response.curl_code = code;
    response.curl_error = t->error[0] ? t->error : curl_easy_strerror(code);
    response.status = status;
    response.headers = t->headers;
    response.header_count = t->header_count;
    response.body = t->body ? t->body : "";
    response.body_size = t->body_size;
    response.body_truncated = t->body_truncated;
    response.now = (int64_t)time(NULL);
    if (t->body_dropped > 0 || t->headers_dropped > 0)
        outbox_log(&d->logger, OUTBOX_LOG_WARN,
                   "id=%lld event=response_capped kept_body_bytes=%zu "
                   "dropped_body_bytes=%zu kept_headers=%zu "
                   "dropped_headers=%zu", (long long)t->message->id,
                   t->body_size, t->body_dropped, t->header_count,
                   t->headers_dropped);
    outbox_provider_classify(t->slot->provider, &result, &response);
    if (t->requests > 1)
        note_resent(d, t, &result);

    curl_multi_remove_handle(d->multi, t->easy);
    unlink_running(t);
    daemon_finished(d, t->message, t->slot, &result, t->started_at);
    transfer_free(t);
}

static void check_done(daemon_state *d)
{
    CURLMsg *message;
    int left = 0;

    while ((message = curl_multi_info_read(d->multi, &left)) != NULL) {
        char *private_data = NULL;

        if (message->msg != CURLMSG_DONE)
            continue;
        curl_easy_getinfo(message->easy_handle, CURLINFO_PRIVATE,
                          &private_data);
        finish_curl(d, (transfer *)(void *)private_data,
                    message->data.result);
    }
}

/* A message that never reached a provider: the check before the request
 * failed (too large, say), so the result is permanent. */
static void fail_before_request(daemon_state *d, transfer *t,
                                const outbox_error *why)
{
    outbox_result result;

    outbox_result_init(&result, OUTBOX_RESULT_FAILED);
    result.error = *why;
    daemon_finished(d, t->message, t->slot, &result, t->started_at);
    transfer_free(t);
}

static void start_curl(daemon_state *d, transfer *t)
{
    outbox_error why;
    CURLMcode added;

    memset(&why, 0, sizeof(why));
    t->easy = d->idle_count > 0 ? d->idle_handles[--d->idle_count]
                                : curl_easy_init();
    if (t->easy == NULL) {
        outbox_error_set(&why, OUTBOX_ENOMEM, "internal",
                         "cannot create a libcurl handle");
        fail_before_request(d, t, &why);
        return;
    }
    /* The daemon's own settings first; a provider may narrow them. */
    curl_easy_setopt(t->easy, CURLOPT_PRIVATE, t);
    curl_easy_setopt(t->easy, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(t->easy, CURLOPT_HEADERDATA, t);
    curl_easy_setopt(t->easy, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(t->easy, CURLOPT_WRITEDATA, t);
    curl_easy_setopt(t->easy, CURLOPT_ERRORBUFFER, t->error);
    curl_easy_setopt(t->easy, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(t->easy, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(t->easy, CURLOPT_PREREQFUNCTION, on_request);
    curl_easy_setopt(t->easy, CURLOPT_PREREQDATA, t);
    if (outbox_provider_prepare(t->slot->provider, &t->request, &why,
                                t->easy, t->message)
        != OUTBOX_EOK) {
        fail_before_request(d, t, &why);
        return;
    }
    added = curl_multi_add_handle(d->multi, t->easy);
    if (added != CURLM_OK) {
        outbox_error_set(&why, OUTBOX_EIO, "internal",
                         "cannot start the transfer: %s",
                         curl_multi_strerror(added));
        fail_before_request(d, t, &why);
        return;
    }
    t->next = d->running;
    if (d->running != NULL)
        d->running->prev = t;
    d->running = t;
}

static void deliver_local(uv_work_t *work)
{
    transfer *t = work->data;

    outbox_provider_deliver(t->slot->provider, &t->result, t->message);
}

static void after_local(uv_work_t *work, int status)
{
    transfer *t = work->data;

    if (status != 0) {
        outbox_result_init(&t->result, OUTBOX_RESULT_RETRY);
        outbox_error_set(&t->result.error, OUTBOX_EIO, "internal",
                         "local delivery did not run: %s",
                         uv_strerror(status));
    }
    daemon_finished(t->d, t->message, t->slot, &t->result, t->started_at);
    transfer_free(t);
}

void transfers_start(daemon_state *d, provider_slot *slot,
                     outbox_message *message)
{
    transfer *t = calloc(1, sizeof(*t));
    int rc;

    if (t == NULL) {
        outbox_result result;

        /* Without memory the message cannot be tried now; it is not its
         * fault, so it retries. */
        outbox_result_init(&result, OUTBOX_RESULT_RETRY);
        outbox_error_set(&result.error, OUTBOX_ENOMEM, "internal",
                         "out of memory starting a delivery");
        daemon_finished(d, message, slot, &result, (int64_t)time(NULL));
        outbox_message_free(message);
        return;
    }
    t->d = d;
    t->slot = slot;
    t->message = message;
    t->started_at = (int64_t)time(NULL);
    if (outbox_provider_uses_curl(slot->provider)) {
        start_curl(d, t);
        return;
    }
    t->work.data = t;
    rc = uv_queue_work(d->loop, &t->work, deliver_local, after_local);
    if (rc != 0) {
        outbox_error why;

        outbox_error_set(&why, OUTBOX_EIO, "internal",
                         "cannot queue local delivery: %s", uv_strerror(rc));
        fail_before_request(d, t, &why);
    }
}

void transfers_abort_all(daemon_state *d)
{
    while (d->running != NULL) {
        transfer *t = d->running;
        outbox_result result;

        /* The request may have reached the provider: only a person can
         * tell whether to send again. */
        outbox_result_init(&result, OUTBOX_RESULT_UNKNOWN);
        outbox_error_set(&result.error, OUTBOX_EIO, "interrupted",
                         "outboxd stopped while the request was in flight; "
                         "the provider may have accepted it");
        curl_multi_remove_handle(d->multi, t->easy);
        unlink_running(t);
        daemon_finished(d, t->message, t->slot, &result, t->started_at);
        transfer_free(t);
    }
}

int transfers_init(daemon_state *d)
{
    int rc;

    d->multi = curl_multi_init();
    d->idle_capacity = (size_t)d->config->concurrency;
    d->idle_handles = calloc(d->idle_capacity, sizeof(*d->idle_handles));
    if (d->multi == NULL || d->idle_handles == NULL)
        return UV_ENOMEM;
    rc = uv_timer_init(d->loop, &d->curl_timer);
    if (rc != 0)
        return rc;
    d->curl_timer.data = d;
    curl_multi_setopt(d->multi, CURLMOPT_SOCKETFUNCTION, on_socket);
    curl_multi_setopt(d->multi, CURLMOPT_SOCKETDATA, d);
    curl_multi_setopt(d->multi, CURLMOPT_TIMERFUNCTION, on_timer);
    curl_multi_setopt(d->multi, CURLMOPT_TIMERDATA, d);
    /* Keep one idle connection per possible transfer, so a burst does not
     * close and reopen connections to the same provider. */
    curl_multi_setopt(d->multi, CURLMOPT_MAXCONNECTS,
                      (long)d->config->concurrency);
    return 0;
}

void transfers_close(daemon_state *d)
{
    if (d->multi != NULL)
        curl_multi_cleanup(d->multi);
    d->multi = NULL;
    while (d->idle_count > 0)
        curl_easy_cleanup(d->idle_handles[--d->idle_count]);
    free(d->idle_handles);
    d->idle_handles = NULL;
    d->idle_capacity = 0;
    uv_close((uv_handle_t *)&d->curl_timer, NULL);
}
