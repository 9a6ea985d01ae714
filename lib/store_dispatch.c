/*
 * store_dispatch.c - the moment a request may leave, and giving back the
 * messages whose requests never left.
 *
 * A dispatch opens one attempt row per claimed message, in one
 * transaction. From its commit on, an expired lease means the outcome is
 * unknown (the request may have reached the provider), so upkeep holds
 * the row instead of sending it again. A release undoes a dispatch for
 * messages that a stopping daemon never sent.
 */
#include <string.h>

#include "store_internal.h"

typedef struct dispatch_job {
    outbox_message *const *messages;
    size_t count;
    bool *dispatched;
    int64_t now;
} dispatch_job;

/*
 * A dispatch writes only the attempt row, never the outbox row: the open
 * attempt row (finished_at NULL) is what marks a request that may have left.
 */
static outbox_err dispatch(outbox_store *store, void *context,
                           outbox_error *err)
{
    dispatch_job *job = context;
    sqlite3_stmt *insert = NULL;
    outbox_err rc = outbox__store_prepare(
        store, &insert, err,
        "INSERT INTO delivery_attempt (outbox_id, attempt, provider, "
        "       started_at, message_id) "
        "SELECT id, attempts, ?3, ?4, ?5 FROM outbox "
        " WHERE id = ?1 AND attempts = ?2 AND status = 'sending' "
        "   AND lease_owner = ?6");

    for (size_t i = 0; rc == OUTBOX_EOK && i < job->count; i++) {
        const outbox_message *message = job->messages[i];

        sqlite3_bind_int64(insert, 1, message->id);
        sqlite3_bind_int(insert, 2, message->attempt);
        outbox__bind_text(insert, 3, message->provider);
        outbox__bind_time(insert, 4, job->now);
        outbox__bind_text(insert, 5, message->message_id);
        outbox__bind_text(insert, 6, store->owner);
        if (sqlite3_step(insert) != SQLITE_DONE)
            rc = outbox__store_fail(store, err, OUTBOX_EDATABASE,
                                    "opening an attempt");
        job->dispatched[i] = sqlite3_changes(store->db) == 1;
        sqlite3_reset(insert);
    }
    outbox__store_finish(insert);
    return rc;
}

outbox_err outbox_store_dispatch(outbox_store *store, bool *dispatched,
                                 outbox_error *err,
                                 outbox_message *const *messages,
                                 size_t count, int64_t now)
{
    dispatch_job job = {messages, count, dispatched, now};
    bool durable = strcmp(store->synchronous, "FULL") == 0
                   && store->wal_fd < 0;
    outbox_err rc = OUTBOX_EOK;

    for (size_t i = 0; i < count; i++)
        dispatched[i] = false;

    /* This commit must survive power loss: see the notes in store.c. With
     * its own descriptor on the log, outbox_store_sync does it instead. */
    if (durable)
        rc = outbox__store_exec(store, err, "PRAGMA synchronous = FULL");
    if (rc == OUTBOX_EOK)
        rc = outbox__store_transaction(store, err, true, dispatch, &job);
    if (durable && rc == OUTBOX_EOK)
        rc = outbox__store_exec(store, err, "PRAGMA synchronous = NORMAL");
    else if (durable)
        outbox__store_exec(store, NULL, "PRAGMA synchronous = NORMAL");
    return rc;
}

static outbox_err release(outbox_store *store, void *context,
                          outbox_error *err)
{
    const dispatch_job *job = context;
    sqlite3_stmt *update = NULL;
    sqlite3_stmt *remove = NULL;
    outbox_err rc = outbox__store_prepare(
        store, &update, err,
        "UPDATE outbox SET status = CASE WHEN attempts > 1 THEN 'retrying' "
        "       ELSE 'queued' END, attempts = attempts - 1, "
        "       lease_owner = NULL, "
        "       lease_until = NULL "
        " WHERE id = ?1 AND attempts = ?2 AND status = 'sending' "
        "   AND lease_owner = ?3");

    if (rc == OUTBOX_EOK)
        rc = outbox__store_prepare(
            store, &remove, err,
            "DELETE FROM delivery_attempt WHERE outbox_id = ?1 "
            "   AND attempt = ?2 AND finished_at IS NULL");
    for (size_t i = 0; rc == OUTBOX_EOK && i < job->count; i++) {
        const outbox_message *message = job->messages[i];

        sqlite3_bind_int64(update, 1, message->id);
        sqlite3_bind_int(update, 2, message->attempt);
        outbox__bind_text(update, 3, store->owner);
        sqlite3_bind_int64(remove, 1, message->id);
        sqlite3_bind_int(remove, 2, message->attempt);
        if (sqlite3_step(update) != SQLITE_DONE
            || sqlite3_step(remove) != SQLITE_DONE)
            rc = outbox__store_fail(store, err, OUTBOX_EDATABASE,
                                    "releasing a row");
        sqlite3_reset(update);
        sqlite3_reset(remove);
    }
    outbox__store_finish(update);
    outbox__store_finish(remove);
    return rc;
}

outbox_err outbox_store_release(outbox_store *store, outbox_error *err,
                                outbox_message *const *messages,
                                size_t count)
{
    dispatch_job job = {messages, count, NULL, 0};

    return outbox__store_transaction(store, err, true, release, &job);
}
