/*
 * store_internal.h - what the store's source files share. Not installed.
 *
 * The store is the only code with SQL text (besides sql/). Its functions
 * run on the thread that owns the handle and may block on SQLite locks,
 * which is why the daemon calls them from a worker thread, never from its
 * event loop.
 */
#ifndef OUTBOX_STORE_INTERNAL_H
#define OUTBOX_STORE_INTERNAL_H

#include <sqlite3.h>

#include "internal.h"

/* Statements are prepared once and kept for the life of the connection:
 * parsing SQL again for every row cost more than running it. */
#define OUTBOX_STATEMENT_CACHE 64

typedef struct outbox_cached_statement {
    char *sql;
    const char *caller_sql;    /* the caller's text when first prepared */
    sqlite3_stmt *stmt;
} outbox_cached_statement;

struct outbox_store {
    sqlite3 *db;
    outbox_cached_statement statements[OUTBOX_STATEMENT_CACHE];
    size_t statement_count;
    outbox_store_options options;
    char *owner;
    char *synchronous;
    int wal_fd;                /* for outbox_store_sync; -1 when unused */
    int64_t started_at;
    int64_t data_version;
    uint64_t random_state;     /* xorshift state for retry jitter */
};

/* Fills err from the connection's last error and returns code. */
outbox_err outbox__store_fail(outbox_store *store, outbox_error *err,
                              outbox_err code, const char *what);

/*
 * Returns the statement for sql, prepared on first use and cached. sql must
 * stay unchanged for the store's life (a constant): the cache finds it by
 * its address first. Hand it back with outbox__store_finish, never
 * sqlite3_finalize.
 */
outbox_err outbox__store_prepare(outbox_store *store, sqlite3_stmt **stmt,
                                 outbox_error *err, const char *sql);

/* Resets a cached statement and clears its bindings. Accepts NULL. */
void outbox__store_finish(sqlite3_stmt *stmt);

/* Runs sql, a constant, and drops any rows it returns. The statement is
 * cached as with outbox__store_prepare. */
outbox_err outbox__store_exec(outbox_store *store, outbox_error *err,
                              const char *sql);

/* Binds text, or NULL for a NULL pointer. */
int outbox__bind_text(sqlite3_stmt *stmt, int index, const char *text);

/* Binds a unix time as datetime() text. */
int outbox__bind_time(sqlite3_stmt *stmt, int index, int64_t t);

/*
 * Runs body inside BEGIN IMMEDIATE ... COMMIT. When the database is locked
 * by another writer, persist=false returns OUTBOX_EBUSY and persist=true
 * rolls back, logs a warning and tries again until the lock is free, so no
 * result is ever dropped.
 */
typedef outbox_err (*outbox_store_body)(outbox_store *store, void *context,
                                        outbox_error *err);
outbox_err outbox__store_transaction(outbox_store *store, outbox_error *err,
                                     bool persist, outbox_store_body body,
                                     void *context);

/* store_events.c: delivery truth from webhooks. */

/* Sets a recipient's status unless it already has a higher rank. */
outbox_err outbox__store_set_recipient(outbox_store *store, outbox_error *err,
                                       int64_t outbox_id,
                                       const char *recipient,
                                       const char *status, const char *detail,
                                       int64_t now);

/* Moves a sent message to its best recipient's outcome, if higher. */
outbox_err outbox__store_update_message_status(outbox_store *store,
                                               outbox_error *err,
                                               int64_t outbox_id,
                                               int64_t now);

/*
 * Writes a delivery_recipient row at status for each of the outcome's
 * recipients, then applies the events that arrived before.
 */
outbox_err outbox__store_write_recipients(outbox_store *store,
                                          outbox_error *err,
                                          const outbox_outcome *outcome,
                                          const char *status);

/*
 * Adds each recipient of the outcome that its error text names (a
 * provider's error, such as Postmark's "Found inactive addresses: ...") to
 * the suppression list with reason inactive_recipient.
 */
outbox_err outbox__store_suppress_named(outbox_store *store, outbox_error *err,
                                        const outbox_outcome *outcome);

/* Adds address to the suppression list unless it is there already. */
outbox_err outbox__store_suppress(outbox_store *store, outbox_error *err,
                                  const char *address, const char *reason,
                                  const char *provider, const char *detail,
                                  int64_t outbox_id, int64_t now);

/*
 * Removes the suppressed addresses from a claimed message's to, cc and bcc,
 * each recorded in delivery_recipient as suppressed. When none is left,
 * fills why (kind "suppressed"); err is for database failures only.
 */
outbox_err outbox__store_drop_suppressed(outbox_store *store,
                                         outbox_error *err,
                                         outbox_message *message, int64_t now,
                                         outbox_error *why);

/* A number in [0, 1) for jitter. */
double outbox__store_random(outbox_store *store);

#endif /* OUTBOX_STORE_INTERNAL_H */
