/*
 * worker.h - the store thread: every SQLite call of the daemon runs here.
 *
 * Threading rule: the event loop thread never touches SQLite. It posts jobs
 * to the worker; the worker runs them in order on its own connection, where
 * waiting for an ERP's write lock stalls nothing else, and hands finished
 * jobs back through a uv_async_t. A job belongs to the worker from
 * worker_post until the loop receives it back in its done callback.
 */
#ifndef OUTBOXD_WORKER_H
#define OUTBOXD_WORKER_H

#include <pthread.h>
#include <uv.h>

#include "outbox.h"
#include "outbox_events.h"

typedef enum worker_job_kind {
    JOB_CLAIM,      /* claim and dispatch up to limit rows */
    JOB_RECORD,     /* write outcomes */
    JOB_RELEASE,    /* give back dispatched messages that never left */
    JOB_MAINTAIN,   /* heartbeat, lease renewal, expired leases */
    JOB_PENDING,    /* count what keeps a drain running */
    JOB_SIGN_OFF,   /* remove the heartbeat on a clean stop */
    JOB_EVENTS,     /* store the events of one webhook request */
    JOB_SNS_SUBSCRIPTION, /* record what became of an SNS subscription */
} worker_job_kind;

typedef struct worker_job {
    worker_job_kind kind;
    struct worker_job *next;

    /* Inputs. paused names are borrowed from the loop, which keeps them
     * unchanged until the job comes back. */
    size_t limit;
    int64_t now;
    outbox_claim_filter filter;
    const char **names;             /* owned array behind filter.paused */
    outbox_outcome *outcomes;       /* owned by the job */
    size_t outcome_count;

    /* Claim output, or release input: owned by the job. */
    outbox_message **messages;
    size_t message_count;

    /* Webhook events, owned by the job, and the provider that sent
     * them (borrowed). webhook is the listener's request, which gets its
     * response when the job comes back to the loop. */
    outbox_event_batch events;
    const char *provider;
    void *webhook;
    size_t stored;

    /* An SNS subscription change; its strings belong to the request that
     * webhook points to. */
    outbox_sns_subscription subscription;

    /* Results. */
    outbox_err rc;
    outbox_error err;
    int64_t pending;
    int64_t next_due;
} worker_job;

typedef void (*worker_done_fn)(void *context, worker_job *job);

typedef struct worker {
    outbox_store *store;
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t wake;
    worker_job *queue;          /* jobs to run, in order */
    worker_job *queue_tail;
    worker_job *done;           /* finished jobs, in order */
    worker_job *done_tail;
    bool stop;
    bool started;
    uv_async_t async;
    worker_done_fn done_fn;
    void *context;
    const char *fault;          /* test hook, see worker.c */

    /* Worker-thread state that lets an idle claim skip its query. */
    bool quiet;
    int64_t quiet_next_due;
    size_t quiet_paused;
} worker;

/* Starts the thread. The store is used only by the worker from now on. */
int worker_start(worker *w, uv_loop_t *loop, outbox_store *store,
                 worker_done_fn done_fn, void *context);

/* Allocates a job of kind; NULL when out of memory. */
worker_job *worker_job_new(worker_job_kind kind);

void worker_job_free(worker_job *job);

void worker_post(worker *w, worker_job *job);

/* Stops the thread after the queued jobs ran, and closes the async handle. */
void worker_stop(worker *w);

#endif /* OUTBOXD_WORKER_H */
