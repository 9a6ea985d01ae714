/*
 * daemon.h - the state of one outboxd process and the pieces of its loop.
 *
 * One libuv loop thread owns every socket, timer and transfer; SQLite runs
 * on the worker thread (worker.h). A message travels: claim job -> loop
 * starts a transfer (curl multi) or a local delivery (libuv thread pool) ->
 * the provider classifies the response -> the outcome is queued and written
 * by the next record job.
 */
#ifndef OUTBOXD_DAEMON_H
#define OUTBOXD_DAEMON_H

#include <curl/curl.h>
#include <uv.h>

#include "config.h"
#include "outbox.h"
#include "worker.h"

/* Per-provider state kept by the loop. */
typedef struct provider_slot {
    outbox_provider *provider;
    int64_t paused_until;        /* no new claims before this unix time */
    bool misconfigured;          /* the pause is for a configuration error */
    char pause_reason[OUTBOX_ERROR_TEXT_MAX];
} provider_slot;

/* Claim jobs whose dispatch waits for the disk (durable.c). */
typedef struct durable_gate {
    struct daemon_state *d;
    outbox_store *store;
    uv_work_t work;
    bool running;                /* a sync is in libuv's pool */
    struct worker_job *covered;  /* jobs the running sync covers */
    struct worker_job *waiting;  /* jobs for the next sync */
    struct worker_job *waiting_tail;
    outbox_err rc;               /* of the running sync */
    outbox_error err;
    const char *fault;           /* test hook: OUTBOXD_FAULT */
} durable_gate;

typedef struct daemon_state {
    uv_loop_t *loop;
    outboxd_config *config;
    outbox_logger logger;
    worker worker;

    provider_slot *providers;
    size_t provider_count;
    const char **provider_names;     /* for the claim filter */

    CURLM *multi;
    uv_timer_t curl_timer;
    struct transfer *running;        /* curl transfers, for abort on stop */
    /* Easy handles of finished transfers, reset and kept for the next
     * ones: creating a handle per message cost more than the request. */
    CURL **idle_handles;
    size_t idle_count;
    size_t idle_capacity;
    uv_timer_t claim_timer;
    uv_timer_t maintain_timer;
    uv_timer_t shutdown_timer;
    uv_signal_t sigterm;
    uv_signal_t sigint;
    struct listener *listener;       /* webhooks; NULL when not enabled */

    durable_gate durable;
    uint64_t claims_resume_at;       /* uv_now() after a failed sync */
    /* Transfers, local deliveries, and messages waiting for the disk. */
    size_t in_flight;
    bool claim_pending;
    bool pending_check;              /* a drain count is in the worker */
    uint64_t last_drain_check;       /* uv_now() of the last one */
    size_t records_in_worker;        /* record jobs not yet back */
    outbox_outcome *outcomes;        /* finished, not yet posted */
    size_t outcome_count;
    size_t outcome_capacity;
    uv_check_t flush_check;          /* posts outcomes once per iteration */

    bool drain;
    bool stopping;
    bool finishing;
    int exit_code;
    const char *fault;               /* test hook: OUTBOXD_FAULT */
} daemon_state;

/* Runs the daemon until a signal, or until drained with drain. Returns the
 * process exit code. */
int daemon_run(outboxd_config *config, bool drain);

/* Creates every provider from config and frees them again: 0 if all are
 * valid, 2 otherwise (with one log line naming the problem). */
int daemon_check(outboxd_config *config);

/* Creates or migrates the database schema, then returns 0, or 1 with one
 * log line naming the problem. */
int daemon_migrate(outboxd_config *config);

/* transfer.c: the libcurl multi interface on the libuv loop. */
int transfers_init(daemon_state *d);
void transfers_close(daemon_state *d);
/* Starts the delivery of message, which the transfer now owns. */
void transfers_start(daemon_state *d, provider_slot *slot,
                     outbox_message *message);
/* Aborts every transfer still running (shutdown timed out). */
void transfers_abort_all(daemon_state *d);

/* daemon.c: called by transfer.c when a delivery has its result. */
void daemon_finished(daemon_state *d, const outbox_message *message,
                     provider_slot *slot, const outbox_result *result,
                     int64_t started_at);

/* providers.c: the configured providers. */
/* Creates every provider of the config into d->providers. */
outbox_err providers_create(daemon_state *d, outbox_error *err);
void providers_free(daemon_state *d);
/* Returns the slot of the provider called name, or NULL. */
provider_slot *providers_find(daemon_state *d, const char *name);
/* Ends pauses that are over and lists the providers still paused (a
 * malloc'd array of *count names, or NULL when out of memory). With
 * stalled_only, lists only those paused for a configuration error. */
const char **providers_paused(daemon_state *d, size_t *count,
                              bool stalled_only);
/* Pauses slot's provider after a misconfigured or rate-limited result. */
void providers_pause(daemon_state *d, provider_slot *slot,
                     const outbox_result *result);

/* durable.c: keeps claimed messages waiting until their dispatch is on
 * disk. */
void durable_init(daemon_state *d, outbox_store *store);
/* Takes job, a claim job with messages; hands it back through
 * daemon_dispatch_durable once a sync covers it. */
void durable_hold(daemon_state *d, worker_job *job);

/* daemon.c: job's dispatch is on disk, or with failure it may not be. */
void daemon_dispatch_durable(daemon_state *d, worker_job *job,
                             const outbox_error *failure);

/* Logging with the daemon's logger (log.c). */
void daemon_log_line(void *context, outbox_log_level level,
                     const char *line);

#endif /* OUTBOXD_DAEMON_H */
