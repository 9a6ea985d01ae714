/*
 * worker.c - the store thread (see worker.h for the threading rule).
 *
 * Each time it wakes, the worker takes every queued job. It writes all
 * outcomes of those jobs in one transaction first, so a burst of finished
 * deliveries costs one commit, then runs the other jobs in order.
 *
 * An idle daemon posts a claim job every few milliseconds. The worker then
 * skips the claim query unless something may have changed: another
 * connection committed (PRAGMA data_version), this worker wrote rows, the
 * set of paused providers changed, or a scheduled row became due.
 */
#define _GNU_SOURCE /* pthread_setname_np */
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "worker.h"

worker_job *worker_job_new(worker_job_kind kind)
{
    worker_job *job = calloc(1, sizeof(*job));

    if (job != NULL)
        job->kind = kind;
    return job;
}

void worker_job_free(worker_job *job)
{
    if (job == NULL)
        return;
    for (size_t i = 0; i < job->outcome_count; i++)
        outbox_outcome_clear(&job->outcomes[i]);
    free(job->outcomes);
    free(job->names);
    outbox_messages_free(job->messages, job->message_count);
    outbox_event_batch_free(&job->events);
    free(job);
}

#ifdef OUTBOX_FAULT_HOOKS
/*
 * Test builds stop the process with SIGKILL at a named point when the
 * environment variable OUTBOXD_FAULT names it, so tests can show what a
 * crash at that moment leaves behind.
 */
static void fault_point(const worker *w, const char *name)
{
    if (w->fault != NULL && strcmp(w->fault, name) == 0)
        raise(SIGKILL);
}
#else
static void fault_point(const worker *w, const char *name)
{
    (void)w;
    (void)name;
}
#endif

static void run_records(worker *w, worker_job *first)
{
    size_t total = 0;
    outbox_outcome *all;
    outbox_error err;
    outbox_err rc;
    size_t at = 0;

    for (worker_job *job = first; job != NULL; job = job->next) {
        if (job->kind == JOB_RECORD)
            total += job->outcome_count;
    }
    if (total == 0)
        return;
    all = malloc(total * sizeof(*all));
    if (all == NULL) {
        /* Without memory for the merged array, write each job alone. */
        for (worker_job *job = first; job != NULL; job = job->next) {
            if (job->kind == JOB_RECORD)
                job->rc = outbox_store_record(w->store, &job->err,
                                              job->outcomes,
                                              job->outcome_count);
        }
        w->quiet = false;
        return;
    }
    for (worker_job *job = first; job != NULL; job = job->next) {
        if (job->kind != JOB_RECORD)
            continue;
        memcpy(all + at, job->outcomes,
               job->outcome_count * sizeof(*all));
        at += job->outcome_count;
    }
    memset(&err, 0, sizeof(err));
    rc = outbox_store_record(w->store, &err, all, total);
    for (worker_job *job = first; job != NULL; job = job->next) {
        if (job->kind == JOB_RECORD) {
            job->rc = rc;
            job->err = err;
        }
    }
    fault_point(w, "crash_after_record");
    free(all);
    w->quiet = false;
}

static bool claim_may_find_rows(worker *w, const worker_job *job)
{
    if (!w->quiet || job->filter.paused_count != w->quiet_paused)
        return true;
    if (w->quiet_next_due != 0 && job->now >= w->quiet_next_due)
        return true;
    return outbox_store_changed(w->store);
}

/* Drops the messages whose lease this daemon lost before dispatch. */
static void keep_dispatched(worker_job *job, const bool *dispatched)
{
    size_t kept = 0;

    for (size_t i = 0; i < job->message_count; i++) {
        if (dispatched[i])
            job->messages[kept++] = job->messages[i];
        else
            outbox_message_free(job->messages[i]);
    }
    job->message_count = kept;
}

static void run_claim(worker *w, worker_job *job)
{
    bool *dispatched;
    int64_t pending = 0;

    if (!claim_may_find_rows(w, job))
        return;
    outbox_store_changed(w->store);
    job->rc = outbox_store_claim(w->store, &job->messages,
                                 &job->message_count, &job->err, &job->filter,
                                 job->limit, job->now);
    if (job->rc != OUTBOX_EOK || job->message_count == 0)
        goto settle;
    fault_point(w, "crash_after_claim");

    dispatched = calloc(job->message_count, sizeof(*dispatched));
    if (dispatched == NULL) {
        job->rc = outbox_error_set(&job->err, OUTBOX_ENOMEM, "internal",
                                   "out of memory dispatching");
        /* The rows stay claimed and undispatched; upkeep requeues them
         * when their lease expires. */
        outbox_messages_free(job->messages, job->message_count);
        job->messages = NULL;
        job->message_count = 0;
        return;
    }
    job->rc = outbox_store_dispatch(w->store, dispatched, &job->err,
                                    job->messages, job->message_count,
                                    job->now);
    if (job->rc == OUTBOX_EOK)
        keep_dispatched(job, dispatched);
    free(dispatched);
    fault_point(w, "crash_after_dispatch");

settle:
    /* A short claim means the queue is drained for now: remember when the
     * next scheduled row is due, so idle polls can skip the query. */
    w->quiet = false;
    if (job->rc == OUTBOX_EOK && job->message_count < job->limit
        && outbox_store_pending(w->store, &pending, &w->quiet_next_due,
                                &job->err, &job->filter, job->now)
               == OUTBOX_EOK
        && (w->quiet_next_due == 0 || w->quiet_next_due > job->now)) {
        w->quiet = true;
        w->quiet_paused = job->filter.paused_count;
    }
}

static void run_job(worker *w, worker_job *job)
{
    switch (job->kind) {
    case JOB_RECORD:
        break;      /* done by run_records */
    case JOB_CLAIM:
        run_claim(w, job);
        break;
    case JOB_RELEASE:
        job->rc = outbox_store_release(w->store, &job->err, job->messages,
                                       job->message_count);
        w->quiet = false;
        break;
    case JOB_MAINTAIN:
        job->rc = outbox_store_maintain(w->store, &job->err, job->now);
        w->quiet = false;
        break;
    case JOB_PENDING:
        job->rc = outbox_store_pending(w->store, &job->pending,
                                       &job->next_due, &job->err,
                                       &job->filter, job->now);
        break;
    case JOB_SIGN_OFF:
        job->rc = outbox_store_sign_off(w->store, &job->err);
        break;
    case JOB_EVENTS:
        job->rc = outbox_store_record_events(w->store, &job->err,
                                             job->provider,
                                             job->events.events,
                                             job->events.count, job->now,
                                             &job->stored);
        w->quiet = false;
        break;
    case JOB_SNS_SUBSCRIPTION:
        job->rc = outbox_store_record_sns_subscription(
            w->store, &job->err, &job->subscription, job->now);
        break;
    }
}

static void *worker_main(void *argument)
{
    worker *w = argument;

    /* Named so that top -H and perf show the store thread apart. */
    pthread_setname_np(pthread_self(), "outboxd-store");
    for (;;) {
        worker_job *batch;
        worker_job *next;

        pthread_mutex_lock(&w->lock);
        while (w->queue == NULL && !w->stop)
            pthread_cond_wait(&w->wake, &w->lock);
        batch = w->queue;
        w->queue = NULL;
        w->queue_tail = NULL;
        if (batch == NULL && w->stop) {
            pthread_mutex_unlock(&w->lock);
            return NULL;
        }
        pthread_mutex_unlock(&w->lock);

        run_records(w, batch);
        for (worker_job *job = batch; job != NULL; job = job->next)
            run_job(w, job);

        pthread_mutex_lock(&w->lock);
        for (worker_job *job = batch; job != NULL; job = next) {
            next = job->next;
            job->next = NULL;
            if (w->done_tail != NULL)
                w->done_tail->next = job;
            else
                w->done = job;
            w->done_tail = job;
        }
        pthread_mutex_unlock(&w->lock);
        uv_async_send(&w->async);
    }
}

static void on_async(uv_async_t *handle)
{
    worker *w = handle->data;
    worker_job *done;
    worker_job *next;

    pthread_mutex_lock(&w->lock);
    done = w->done;
    w->done = NULL;
    w->done_tail = NULL;
    pthread_mutex_unlock(&w->lock);
    for (worker_job *job = done; job != NULL; job = next) {
        next = job->next;
        job->next = NULL;
        w->done_fn(w->context, job);
    }
}

int worker_start(worker *w, uv_loop_t *loop, outbox_store *store,
                 worker_done_fn done_fn, void *context)
{
    int rc;

    memset(w, 0, sizeof(*w));
    w->store = store;
    w->done_fn = done_fn;
    w->context = context;
#ifdef OUTBOX_FAULT_HOOKS
    w->fault = getenv("OUTBOXD_FAULT");
#endif
    rc = uv_async_init(loop, &w->async, on_async);
    if (rc != 0)
        return rc;
    w->async.data = w;
    pthread_mutex_init(&w->lock, NULL);
    pthread_cond_init(&w->wake, NULL);
    rc = pthread_create(&w->thread, NULL, worker_main, w);
    if (rc != 0) {
        uv_close((uv_handle_t *)&w->async, NULL);
        return -rc;
    }
    w->started = true;
    return 0;
}

void worker_post(worker *w, worker_job *job)
{
    job->next = NULL;
    pthread_mutex_lock(&w->lock);
    if (w->queue_tail != NULL)
        w->queue_tail->next = job;
    else
        w->queue = job;
    w->queue_tail = job;
    pthread_cond_signal(&w->wake);
    pthread_mutex_unlock(&w->lock);
}

void worker_stop(worker *w)
{
    if (!w->started)
        return;
    pthread_mutex_lock(&w->lock);
    w->stop = true;
    pthread_cond_signal(&w->wake);
    pthread_mutex_unlock(&w->lock);
    pthread_join(w->thread, NULL);
    w->started = false;

    /* Jobs finished after the last async callback are delivered now, so
     * none is leaked. */
    on_async(&w->async);
    uv_close((uv_handle_t *)&w->async, NULL);
    pthread_mutex_destroy(&w->lock);
    pthread_cond_destroy(&w->wake);
}
