/*
 * durable.c - no request leaves before its dispatch commit is on disk.
 *
 * The store commits a claim's dispatch (the open attempt rows) without
 * waiting for the disk, so its thread can go on with the next job. The
 * loop keeps the claimed messages waiting, has a thread of libuv's pool sync
 * the write-ahead log (outbox_store_sync), and only then starts their
 * deliveries. Claims that come back while a sync runs wait for the next
 * one, which covers them all: one sync per group of claims, and the
 * store's thread does not wait for any of them.
 *
 * A sync that fails leaves the dispatches perhaps not on disk, so their
 * messages are given back unsent (daemon.c releases them).
 */
#include <string.h>

#include "daemon.h"

static void sync_log(uv_work_t *work)
{
    durable_gate *gate = work->data;

    gate->rc = outbox_store_sync(gate->store, &gate->err);
#ifdef OUTBOX_FAULT_HOOKS
    /* Test builds: a disk that fails to sync. */
    if (gate->fault != NULL && strcmp(gate->fault, "sync_fails") == 0)
        gate->rc = outbox_error_set(&gate->err, OUTBOX_EDATABASE, "database",
                                    "syncing the write-ahead log to disk "
                                    "failed: test fault");
#endif
}

static void start_sync(daemon_state *d);

static void sync_done(uv_work_t *work, int status)
{
    durable_gate *gate = work->data;
    daemon_state *d = gate->d;
    worker_job *job = gate->covered;
    const outbox_error *failure = NULL;

    if (status != 0)
        outbox_error_set(&gate->err, OUTBOX_EDATABASE, "internal",
                         "the sync of the write-ahead log did not run: %s",
                         uv_strerror(status));
    if (status != 0 || gate->rc != OUTBOX_EOK)
        failure = &gate->err;
    gate->running = false;
    gate->covered = NULL;
    while (job != NULL) {
        worker_job *next = job->next;

        job->next = NULL;
        daemon_dispatch_durable(d, job, failure);
        job = next;
    }
    if (gate->waiting != NULL)
        start_sync(d);
}

static void start_sync(daemon_state *d)
{
    durable_gate *gate = &d->durable;
    int rc;

    gate->covered = gate->waiting;
    gate->waiting = NULL;
    gate->waiting_tail = NULL;
    gate->running = true;
    gate->rc = OUTBOX_EOK;
    rc = uv_queue_work(d->loop, &gate->work, sync_log, sync_done);
    if (rc != 0)
        sync_done(&gate->work, rc);
}

void durable_init(daemon_state *d, outbox_store *store)
{
    durable_gate *gate = &d->durable;

    gate->d = d;
    gate->store = store;
    gate->work.data = gate;
    gate->fault = d->fault;
}

void durable_hold(daemon_state *d, worker_job *job)
{
    durable_gate *gate = &d->durable;

    job->next = NULL;
    if (gate->waiting_tail != NULL)
        gate->waiting_tail->next = job;
    else
        gate->waiting = job;
    gate->waiting_tail = job;
    if (!gate->running)
        start_sync(d);
}
