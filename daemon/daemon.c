/*
 * daemon.c - outboxd's event loop: claiming, pausing providers, draining
 * and stopping.
 *
 * The loop keeps up to `concurrency` deliveries in flight. When enough
 * slots are free it posts a claim job to the worker; the claimed messages
 * start as soon as their dispatch is on disk (durable.c). Finished
 * deliveries queue their outcome, and once per loop iteration all queued
 * outcomes go to the worker as one record job.
 *
 * A provider whose response means "misconfigured" (bad API key) is paused:
 * no new claims pick its rows until the pause ends, and its messages wait
 * as `queued` without using up attempts. Only max_age can still fail them.
 * A rate limit pauses the provider for the delay it asked for. Other
 * providers go on.
 *
 * On SIGTERM or SIGINT the daemon stops claiming, lets the deliveries in
 * flight finish for up to shutdown_seconds, marks any still running as
 * outcome unknown, writes every outcome, and exits 0.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "daemon.h"
#include "listener.h"

/* A drain checks for remaining rows at most this often. */
#define DRAIN_CHECK_MS 100

/* After a failed sync of the database's log, no claim for this long: the
 * disk is in trouble, and every claim would be given back again. */
#define SYNC_FAILED_PAUSE_MS 5000

static void maybe_claim(daemon_state *d);
static void begin_stop(daemon_state *d, const char *why);
static void maybe_finish(daemon_state *d);

static int64_t now_seconds(void)
{
    return (int64_t)time(NULL);
}

/* Fills the job's claim filter. Returns false when out of memory: without
 * the list of paused providers a claim would pick their rows. */
static bool fill_filter(daemon_state *d, worker_job *job, bool stalled_only)
{
    size_t count = 0;

    job->names = providers_paused(d, &count, stalled_only);
    if (job->names == NULL)
        return false;
    job->filter.default_provider = d->config->default_provider;
    job->filter.configured = d->provider_names;
    job->filter.configured_count = d->provider_count;
    job->filter.paused = job->names;
    job->filter.paused_count = count;
    job->now = now_seconds();
    return true;
}

static void post_claim(daemon_state *d, size_t limit)
{
    worker_job *job = worker_job_new(JOB_CLAIM);

    if (job == NULL || !fill_filter(d, job, false)) {
        worker_job_free(job);
        outbox_log(&d->logger, OUTBOX_LOG_ERROR,
                   "out of memory posting a claim; retrying on the next "
                   "poll");
        return;
    }
    job->limit = limit;
    d->claim_pending = true;
    worker_post(&d->worker, job);
}

static void maybe_claim(daemon_state *d)
{
    size_t concurrency = (size_t)d->config->concurrency;
    size_t batch = (size_t)d->config->claim_batch;
    size_t free_slots;

    if (d->stopping || d->claim_pending || d->in_flight >= concurrency
        || uv_now(d->loop) < d->claims_resume_at)
        return;
    free_slots = concurrency - d->in_flight;
    if (batch > concurrency)
        batch = concurrency;

    /* Claiming a few rows at a time would cost a transaction each: wait
     * until half a batch of slots is free, unless nothing is in flight. */
    if (d->in_flight > 0 && free_slots < (batch + 1) / 2)
        return;
    post_claim(d, free_slots < batch ? free_slots : batch);
}

/* Asks the worker whether a drain is complete. Called after a claim found
 * nothing while nothing is in flight, at most every DRAIN_CHECK_MS. */
static void post_drain_check(daemon_state *d)
{
    worker_job *job;

    if (!d->drain || d->stopping || d->pending_check || d->claim_pending
        || d->in_flight > 0 || d->outcome_count > 0
        || d->records_in_worker > 0
        || uv_now(d->loop) < d->last_drain_check + DRAIN_CHECK_MS)
        return;
    d->last_drain_check = uv_now(d->loop);
    job = worker_job_new(JOB_PENDING);
    if (job == NULL || !fill_filter(d, job, true)) {
        /* Tried again after the next claim that finds nothing. */
        worker_job_free(job);
        return;
    }
    d->pending_check = true;
    worker_post(&d->worker, job);
}

static void on_claim_timer(uv_timer_t *timer)
{
    daemon_state *d = timer->data;

    maybe_claim(d);
}

static void on_maintain_timer(uv_timer_t *timer)
{
    daemon_state *d = timer->data;
    worker_job *job = worker_job_new(JOB_MAINTAIN);

    if (job == NULL)
        return;
    job->now = now_seconds();
    worker_post(&d->worker, job);
}

/* Queues an outcome for the next record job. */
static bool queue_outcome(daemon_state *d, const outbox_outcome *outcome)
{
    if (d->outcome_count == d->outcome_capacity) {
        size_t capacity = d->outcome_capacity ? d->outcome_capacity * 2 : 256;
        outbox_outcome *grown = realloc(d->outcomes,
                                        capacity * sizeof(*grown));

        if (grown == NULL)
            return false;
        d->outcomes = grown;
        d->outcome_capacity = capacity;
    }
    d->outcomes[d->outcome_count++] = *outcome;
    return true;
}

void daemon_finished(daemon_state *d, const outbox_message *message,
                     provider_slot *slot, const outbox_result *result,
                     int64_t started_at)
{
    outbox_outcome outcome;
    outbox_error err;

#ifdef OUTBOX_FAULT_HOOKS
    /* Test builds: die after the provider accepted, before the outcome is
     * written, to show what such a crash leaves (the row becomes held). */
    if (result->kind == OUTBOX_RESULT_SENT && d->fault != NULL
        && strcmp(d->fault, "crash_after_provider_ok") == 0)
        raise(SIGKILL);
#endif
    memset(&outcome, 0, sizeof(outcome));
    outcome.id = message->id;
    outcome.attempt = message->attempt;
    outcome.created_at = message->created_at;
    outcome.started_at = started_at;
    outcome.finished_at = now_seconds();
    snprintf(outcome.provider, sizeof(outcome.provider), "%s",
             outbox_provider_name(slot->provider));
    outcome.result = *result;
    if (outbox_outcome_copy_message(&outcome, &err, message) != OUTBOX_EOK) {
        char quoted[OUTBOX_LOG_QUOTED_SIZE];

        outbox_log(&d->logger, OUTBOX_LOG_ERROR,
                   "id=%lld error=%s; delivery_recipient misses this "
                   "attempt's recipients", (long long)message->id,
                   outbox_log_quote(quoted, sizeof(quoted), err.text));
    }

    /* Without memory the row keeps its lease and dispatched_at; when the
     * lease expires, upkeep holds it, so the result is not silently
     * lost. */
    if (!queue_outcome(d, &outcome)) {
        outbox_log(&d->logger, OUTBOX_LOG_ERROR,
                   "id=%lld error=\"out of memory recording the outcome "
                   "%s\"",
                   (long long)message->id,
                   outbox_result_kind_name(result->kind));
        outbox_outcome_clear(&outcome);
    }
    providers_pause(d, slot, result);
    d->in_flight--;
    maybe_claim(d);
    maybe_finish(d);
}

/* Runs once per loop iteration: all outcomes of the iteration go to the
 * worker as one record job, hence one transaction. */
static void on_flush_check(uv_check_t *check)
{
    daemon_state *d = check->data;
    worker_job *job;

    if (d->outcome_count == 0)
        return;
    job = worker_job_new(JOB_RECORD);
    if (job == NULL)
        return;     /* tried again on the next iteration */
    job->outcomes = d->outcomes;
    job->outcome_count = d->outcome_count;
    d->outcomes = NULL;
    d->outcome_count = 0;
    d->outcome_capacity = 0;
    d->records_in_worker++;
    worker_post(&d->worker, job);
}

/* Returns true when it kept the job (held or reposted), false when the
 * caller frees it. */
static bool claim_done(daemon_state *d, worker_job *job)
{
    d->claim_pending = false;
    if (job->rc != OUTBOX_EOK) {
        outbox_log(&d->logger,
                   job->rc == OUTBOX_EBUSY ? OUTBOX_LOG_WARN
                                           : OUTBOX_LOG_ERROR,
                   "claim failed: %s", job->err.text);
        return false;
    }
    if (d->stopping) {
        if (job->message_count == 0)
            return false;
        /* Claimed while the stop began: give the rows back untouched. */
        job->kind = JOB_RELEASE;
        worker_post(&d->worker, job);
        return true;
    }
    /* The messages hold their slots while they wait for the disk. */
    d->in_flight += job->message_count;
    if (job->message_count == job->limit)
        maybe_claim(d);
    else if (job->message_count == 0)
        post_drain_check(d);
    if (job->message_count > 0) {
        durable_hold(d, job);
        return true;
    }
    return false;
}

void daemon_dispatch_durable(daemon_state *d, worker_job *job,
                             const outbox_error *failure)
{
    if (failure != NULL) {
        outbox_log(&d->logger, OUTBOX_LOG_ERROR,
                   "%zu claimed messages given back unsent: %s; claims "
                   "resume in %d ms", job->message_count, failure->text,
                   SYNC_FAILED_PAUSE_MS);
        d->claims_resume_at = uv_now(d->loop) + SYNC_FAILED_PAUSE_MS;
    }
    if (failure != NULL || d->stopping) {
        /* The messages never left: give the rows back untouched. */
        d->in_flight -= job->message_count;
        job->kind = JOB_RELEASE;
        worker_post(&d->worker, job);
        return;
    }
    for (size_t i = 0; i < job->message_count; i++) {
        outbox_message *message = job->messages[i];

        job->messages[i] = NULL;
        transfers_start(d, providers_find(d, message->provider), message);
    }
    worker_job_free(job);
}

static void record_done(daemon_state *d, worker_job *job)
{
    d->records_in_worker--;
    if (job->rc == OUTBOX_EOK)
        return;

    /* The store retries a locked database by itself; this is worse (disk
     * full, I/O error). Keep the outcomes and try again on the next
     * iteration rather than lose them. */
    outbox_log(&d->logger, OUTBOX_LOG_ERROR,
               "recording %zu outcomes failed, will retry: %s",
               job->outcome_count, job->err.text);
    for (size_t i = 0; i < job->outcome_count; i++) {
        if (queue_outcome(d, &job->outcomes[i])) {
            job->outcomes[i].recipients = NULL;     /* moved */
            job->outcomes[i].message_id = NULL;
        }
        else
            outbox_log(&d->logger, OUTBOX_LOG_ERROR,
                       "id=%lld error=\"out of memory keeping the outcome\"",
                       (long long)job->outcomes[i].id);
    }
}

static void pending_done(daemon_state *d, worker_job *job)
{
    d->pending_check = false;
    if (job->rc != OUTBOX_EOK || job->pending > 0 || d->in_flight > 0
        || d->claim_pending)
        return;
    if (job->filter.paused_count > 0) {
        for (size_t i = 0; i < job->filter.paused_count; i++) {
            provider_slot *slot = providers_find(d, job->filter.paused[i]);
            char quoted[OUTBOX_LOG_QUOTED_SIZE];

            outbox_log(&d->logger, OUTBOX_LOG_ERROR,
                       "drain incomplete: provider=%s is paused and its "
                       "messages wait; error=%s",
                       job->filter.paused[i],
                       outbox_log_quote(quoted, sizeof(quoted),
                                        slot ? slot->pause_reason : NULL));
        }
        d->exit_code = 3;
    }
    begin_stop(d, "drained");
}

static void on_worker_done(void *context, worker_job *job)
{
    daemon_state *d = context;

    switch (job->kind) {
    case JOB_CLAIM:
        if (claim_done(d, job))
            return;     /* held for the disk, or reposted */
        break;
    case JOB_RECORD:
        record_done(d, job);
        break;
    case JOB_PENDING:
        pending_done(d, job);
        break;
    case JOB_MAINTAIN:
    case JOB_RELEASE:
        if (job->rc != OUTBOX_EOK)
            outbox_log(&d->logger, OUTBOX_LOG_ERROR, "%s failed: %s",
                       job->kind == JOB_MAINTAIN ? "upkeep" : "release",
                       job->err.text);
        break;
    case JOB_SIGN_OFF:
        worker_job_free(job);
        d->finishing = true;
        uv_stop(d->loop);
        return;
    case JOB_EVENTS:
        listener_events_done(d, job);
        return;
    case JOB_SNS_SUBSCRIPTION:
        listener_subscription_done(d, job);
        return;
    }
    worker_job_free(job);
    maybe_finish(d);
}

static void on_shutdown_timer(uv_timer_t *timer)
{
    daemon_state *d = timer->data;

    outbox_log(&d->logger, OUTBOX_LOG_WARN,
               "stop: %zu deliveries still running after %d s; marking "
               "them held",
               d->in_flight, d->config->shutdown_seconds);
    transfers_abort_all(d);
}

static void begin_stop(daemon_state *d, const char *why)
{
    if (d->stopping)
        return;
    d->stopping = true;
    outbox_log(&d->logger, OUTBOX_LOG_INFO,
               "stopping reason=%s in_flight=%zu", why, d->in_flight);
    listener_stop(d);
    uv_timer_stop(&d->claim_timer);
    uv_timer_start(&d->shutdown_timer, on_shutdown_timer,
                   (uint64_t)d->config->shutdown_seconds * 1000, 0);
    maybe_finish(d);
}

/* Once nothing is in flight, writes the last outcomes and signs off. */
static void maybe_finish(daemon_state *d)
{
    worker_job *job;

    if (!d->stopping || d->finishing || d->in_flight > 0 || d->claim_pending)
        return;
    on_flush_check(&d->flush_check);
    job = worker_job_new(JOB_SIGN_OFF);
    if (job == NULL) {
        d->finishing = true;
        uv_stop(d->loop);
        return;
    }
    d->finishing = true;
    worker_post(&d->worker, job);
}

static void on_signal(uv_signal_t *handle, int signal_number)
{
    daemon_state *d = handle->data;

    begin_stop(d, signal_number == SIGTERM ? "SIGTERM" : "SIGINT");
}

static int start_handles(daemon_state *d)
{
    int rc = transfers_init(d);

    if (rc == 0)
        rc = uv_timer_init(d->loop, &d->claim_timer);
    if (rc == 0)
        rc = uv_timer_init(d->loop, &d->maintain_timer);
    if (rc == 0)
        rc = uv_timer_init(d->loop, &d->shutdown_timer);
    if (rc == 0)
        rc = uv_check_init(d->loop, &d->flush_check);
    if (rc == 0)
        rc = uv_signal_init(d->loop, &d->sigterm);
    if (rc == 0)
        rc = uv_signal_init(d->loop, &d->sigint);
    if (rc != 0)
        return rc;
    d->claim_timer.data = d;
    d->maintain_timer.data = d;
    d->shutdown_timer.data = d;
    d->flush_check.data = d;
    d->sigterm.data = d;
    d->sigint.data = d;
    uv_check_start(&d->flush_check, on_flush_check);
    uv_signal_start(&d->sigterm, on_signal, SIGTERM);
    uv_signal_start(&d->sigint, on_signal, SIGINT);
    uv_timer_start(&d->claim_timer, on_claim_timer,
                   (uint64_t)d->config->poll_interval_ms,
                   (uint64_t)d->config->poll_interval_ms);
    /* Upkeep runs at once, so expired leases of a crashed predecessor are
     * resolved before the first claim. */
    uv_timer_start(&d->maintain_timer, on_maintain_timer, 0,
                   (uint64_t)d->config->heartbeat_seconds * 1000);
    return 0;
}

static void close_handles(daemon_state *d)
{
    uv_handle_t *handles[] = {
        (uv_handle_t *)&d->claim_timer,    (uv_handle_t *)&d->maintain_timer,
        (uv_handle_t *)&d->shutdown_timer, (uv_handle_t *)&d->flush_check,
        (uv_handle_t *)&d->sigterm,        (uv_handle_t *)&d->sigint,
    };

    for (size_t i = 0; i < sizeof(handles) / sizeof(handles[0]); i++) {
        if (handles[i]->loop != NULL && !uv_is_closing(handles[i]))
            uv_close(handles[i], NULL);
    }
    transfers_close(d);
    worker_stop(&d->worker);
    uv_run(d->loop, UV_RUN_DEFAULT);
}

static char *make_owner(void)
{
    char host[128] = "localhost";
    char owner[200];

    gethostname(host, sizeof(host) - 1);
    host[sizeof(host) - 1] = '\0';
    snprintf(owner, sizeof(owner), "%s:%ld:%lld", host, (long)getpid(),
             (long long)now_seconds());
    return strdup(owner);
}

int daemon_run(outboxd_config *config, bool drain)
{
    daemon_state d;
    uv_loop_t loop;
    outbox_store *store = NULL;
    outbox_error err;
    char *owner = make_owner();
    int exit_code = 1;

    memset(&d, 0, sizeof(d));
    memset(&err, 0, sizeof(err));
    d.config = config;
    d.drain = drain;
#ifdef OUTBOX_FAULT_HOOKS
    d.fault = getenv("OUTBOXD_FAULT");
#endif
    d.logger.fn = daemon_log_line;
    d.logger.context = config;
    d.logger.max_level = (int)config->log_level;
    config->store.logger = d.logger;
    config->store.owner = owner ? owner : "outboxd";
    config->store.caller_syncs_dispatch = true;
    if (uv_loop_init(&loop) != 0) {
        free(owner);
        return 1;
    }
    d.loop = &loop;

    /* A provider error is a config error (exit 2, as --check-config
     * reports it); a database that cannot be used is not (exit 1). */
    if (providers_create(&d, &err) != OUTBOX_EOK) {
        outbox_log(&d.logger, OUTBOX_LOG_ERROR, "invalid config: %s",
                   err.text);
        exit_code = 2;
        goto cleanup;
    }
    if (outbox_store_open(&store, &err, config->database, &config->store)
        != OUTBOX_EOK) {
        outbox_log(&d.logger, OUTBOX_LOG_ERROR, "cannot start: %s", err.text);
        goto cleanup;
    }
    durable_init(&d, store);
    if (worker_start(&d.worker, &loop, store, on_worker_done, &d) != 0
        || start_handles(&d) != 0) {
        outbox_log(&d.logger, OUTBOX_LOG_ERROR,
                   "cannot start: event loop setup failed");
        close_handles(&d);
        goto cleanup;
    }
    if (listener_start(&d) != 0) {
        listener_stop(&d);
        close_handles(&d);
        goto cleanup;
    }
    outbox_log(&d.logger, OUTBOX_LOG_INFO,
               "started database=%s owner=%s concurrency=%d mode=%s",
               config->database, config->store.owner, config->concurrency,
               drain ? "drain" : "run");
    uv_run(&loop, UV_RUN_DEFAULT);
    close_handles(&d);
    exit_code = d.exit_code;
    outbox_log(&d.logger, OUTBOX_LOG_INFO, "stopped exit_code=%d", exit_code);

cleanup:
    listener_free(&d);
    free(d.outcomes);
    outbox_store_close(store);
    providers_free(&d);
    uv_loop_close(&loop);
    free(owner);
    return exit_code;
}

int daemon_migrate(outboxd_config *config)
{
    outbox_logger logger = {daemon_log_line, config,
                            (int)config->log_level};
    outbox_store *store = NULL;
    outbox_error err;

    memset(&err, 0, sizeof(err));
    config->store.logger = logger;
    if (outbox_store_open(&store, &err, config->database, &config->store)
        != OUTBOX_EOK) {
        outbox_log(&logger, OUTBOX_LOG_ERROR, "cannot migrate: %s", err.text);
        return 1;
    }
    outbox_log(&logger, OUTBOX_LOG_INFO,
               "database=%s schema_version=%d ready", config->database,
               outbox_store_schema_version());
    outbox_store_close(store);
    return 0;
}
