/*
 * store_lease.c - leases and the daemon heartbeat.
 *
 * A claimed row is `sending` with lease_owner and lease_until. The daemon
 * that owns it renews the lease every few seconds while it lives. When a
 * lease expires, its owner is gone (killed, or the machine stopped), and
 * the row is resolved here by whichever daemon runs upkeep first:
 *
 * - no open attempt row (one with finished_at NULL): no request left for
 *   it, so it goes back to work (`queued`, or `retrying` if it had
 *   attempts before), and the claim's attempt count is taken back.
 * - an open attempt row: a request may have reached the provider and no
 *   response was recorded. Sending again could deliver twice, so the row
 *   becomes `held` for a person to decide, unless the site chose
 *   retry_unknown, in which case it becomes `retrying`. Either way the open
 *   attempt row is closed with outcome `unknown`, so the database records
 *   that a duplicate is possible.
 */
#include <stdio.h>
#include <string.h>

#include "store_internal.h"

static const char *const unknown_text =
    "the daemon stopped after the request may have reached the provider; "
    "check the provider's log, then set status to 'queued' to resend or "
    "'sent' to keep it";

/*
 * Runs one statement that may use the named parameters :now, :owner (this
 * daemon), :text and :lease_until (the renewed lease end).
 */
static outbox_err run(outbox_store *store, outbox_error *err,
                      const char *sql, int64_t now, const char *text,
                      int *changes)
{
    sqlite3_stmt *stmt = NULL;
    outbox_err rc = outbox__store_prepare(store, &stmt, err, sql);
    int index;

    if (rc != OUTBOX_EOK)
        return rc;
    index = sqlite3_bind_parameter_index(stmt, ":now");
    if (index > 0)
        outbox__bind_time(stmt, index, now);
    index = sqlite3_bind_parameter_index(stmt, ":owner");
    if (index > 0)
        outbox__bind_text(stmt, index, store->owner);
    index = sqlite3_bind_parameter_index(stmt, ":text");
    if (index > 0)
        outbox__bind_text(stmt, index, text);
    index = sqlite3_bind_parameter_index(stmt, ":lease_until");
    if (index > 0)
        outbox__bind_time(stmt, index, now + store->options.lease_seconds);

    if (sqlite3_step(stmt) != SQLITE_DONE)
        rc = outbox__store_fail(store, err, OUTBOX_EDATABASE, "lease upkeep");
    if (changes != NULL)
        *changes = sqlite3_changes(store->db);
    outbox__store_finish(stmt);
    return rc;
}

static outbox_err heartbeat(outbox_store *store, outbox_error *err,
                            int64_t now)
{
    sqlite3_stmt *stmt = NULL;
    outbox_err rc = outbox__store_prepare(
        store, &stmt, err,
        "INSERT INTO daemon_heartbeat (owner, started_at, seen_at) "
        "VALUES (?1, ?2, ?3) "
        "ON CONFLICT (owner) DO UPDATE SET seen_at = excluded.seen_at");

    if (rc != OUTBOX_EOK)
        return rc;
    outbox__bind_text(stmt, 1, store->owner);
    outbox__bind_time(stmt, 2, store->started_at);
    outbox__bind_time(stmt, 3, now);
    if (sqlite3_step(stmt) != SQLITE_DONE)
        rc = outbox__store_fail(store, err, OUTBOX_EDATABASE,
                                "writing the heartbeat");
    outbox__store_finish(stmt);
    return rc;
}

#define OPEN_ATTEMPT                                                     \
    "EXISTS (SELECT 1 FROM delivery_attempt AS a "                       \
    "         WHERE a.outbox_id = outbox.id AND a.attempt = outbox.attempts " \
    "           AND a.finished_at IS NULL)"

/* The move of expired dispatched rows: to held, or with retry_unknown to
 * retrying at once. lease_owner stays, so a late response to that daemon's
 * request can still record what happened (see the store's record
 * function). */
#define EXPIRED_DISPATCHED_SQL(status, next_attempt_at)                     \
    "UPDATE outbox SET status = '" status "', "                             \
    "       next_attempt_at = " next_attempt_at ", "                        \
    "       lease_until = NULL, updated_at = :now, "                        \
    "       message_id = coalesce(message_id, (SELECT message_id "          \
    "           FROM delivery_attempt AS a WHERE a.outbox_id = id "         \
    "            AND a.attempt = attempts)), "                              \
    "       last_error_kind = 'outcome_unknown', last_error = :text"        \
    " WHERE status = 'sending' AND lease_until < :now AND " OPEN_ATTEMPT

static outbox_err resolve_dispatched(outbox_store *store, outbox_error *err,
                                     int64_t now, int *held)
{
    static const char hold_sql[] = EXPIRED_DISPATCHED_SQL("held", "NULL");
    static const char retry_sql[] =
        EXPIRED_DISPATCHED_SQL("retrying", ":now");
    const char *sql = store->options.retry_unknown ? retry_sql : hold_sql;
    outbox_err rc;

    rc = run(store, err, sql, now, unknown_text, held);
    if (rc != OUTBOX_EOK || *held == 0)
        return rc;

    /* An attempt row is open only while its message is `sending`, so the
     * open rows of messages that just left that state are the ones to
     * close. */
    return run(store, err,
               "UPDATE delivery_attempt SET finished_at = :now, "
               "       outcome = 'unknown', error_kind = 'outcome_unknown', "
               "       error = :text "
               " WHERE finished_at IS NULL "
               "   AND (SELECT status FROM outbox "
               "         WHERE outbox.id = outbox_id) <> 'sending'",
               now, unknown_text, NULL);
}

static outbox_err maintain(outbox_store *store, void *context,
                           outbox_error *err)
{
    int64_t now = *(const int64_t *)context;
    int requeued = 0;
    int held = 0;
    outbox_err rc = heartbeat(store, err, now);

    /* This daemon's own leases are renewed first, so only the leases of
     * daemons that stopped renewing can expire below. */
    if (rc == OUTBOX_EOK)
        rc = run(store, err,
                 "UPDATE outbox SET lease_until = :lease_until "
                 " WHERE status = 'sending' AND lease_owner = :owner",
                 now, NULL, NULL);
    if (rc == OUTBOX_EOK)
        rc = run(store, err,
                 "UPDATE outbox SET status = CASE WHEN attempts > 1 "
                 "       THEN 'retrying' ELSE 'queued' END, "
                 "       attempts = attempts - 1, "
                 "       lease_owner = NULL, lease_until = NULL, "
                 "       next_attempt_at = :now, updated_at = :now "
                 " WHERE status = 'sending' AND lease_until < :now "
                 "   AND NOT " OPEN_ATTEMPT,
                 now, NULL, &requeued);
    if (rc == OUTBOX_EOK)
        rc = resolve_dispatched(store, err, now, &held);

    /* Heartbeats of daemons gone for a day only clutter the table. */
    if (rc == OUTBOX_EOK)
        rc = run(store, err,
                 "DELETE FROM daemon_heartbeat "
                 " WHERE seen_at < datetime(:now, '-1 day')",
                 now, NULL, NULL);

    if (rc == OUTBOX_EOK && requeued > 0)
        outbox_log(&store->options.logger, OUTBOX_LOG_WARN,
                   "leases expired before dispatch count=%d action=requeued",
                   requeued);
    if (rc == OUTBOX_EOK && held > 0)
        outbox_log(&store->options.logger, OUTBOX_LOG_WARN,
                   "leases expired after dispatch count=%d action=%s",
                   held, store->options.retry_unknown ? "retry" : "held");
    return rc;
}

outbox_err outbox_store_maintain(outbox_store *store, outbox_error *err,
                                 int64_t now)
{
    if (store->started_at == 0)
        store->started_at = now;
    return outbox__store_transaction(store, err, false, maintain, &now);
}

static outbox_err sign_off(outbox_store *store, void *context,
                           outbox_error *err)
{
    (void)context;
    return run(store, err,
               "DELETE FROM daemon_heartbeat WHERE owner = :owner", 0, NULL,
               NULL);
}

outbox_err outbox_store_sign_off(outbox_store *store, outbox_error *err)
{
    return outbox__store_transaction(store, err, true, sign_off, NULL);
}
