/*
 * store.c - the SQLite database: opening, settings, migrations,
 * transactions, and the upkeep that runs every few seconds (heartbeat,
 * lease renewal, expired leases).
 *
 * Durability settings, and why:
 * - journal_mode=WAL lets the ERP read and write while the daemon works;
 *   readers never block the writer.
 * - synchronous: the daemon commits that a request is about to leave
 *   (dispatch) before it sends it. If power loss could undo that commit, a
 *   message could be sent twice with no trace in the database, so with the
 *   default "FULL" the dispatch commit is synced to disk (synchronous=FULL,
 *   which also makes every earlier commit durable). Other commits run with
 *   synchronous=NORMAL: WAL stays consistent after power loss, and losing
 *   the last claims or outcomes cannot cause a duplicate. At worst a
 *   message the provider accepted shows as `held` after its lease expires.
 *   A site that accepts that risk for dispatches too may set "NORMAL".
 *   The daemon sets caller_syncs_dispatch: the dispatch commit then does
 *   not wait for the disk in the store's thread, and outbox_store_sync
 *   syncs the write-ahead log from another thread through a descriptor of
 *   its own, before any request leaves. The store's thread goes on with
 *   the next job meanwhile, and one sync covers every dispatch before it.
 *   A sync of that descriptor is as good as SQLite's own: fdatasync acts
 *   on the file, not the descriptor, and SQLite never replaces the log
 *   file while a connection (this one) has it open. A checkpoint may copy
 *   the log into the database and start the log over, but it syncs the
 *   database before the log's frames are reused.
 * - busy_timeout makes a statement wait for an ERP transaction that holds
 *   the write lock instead of failing at once.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "schema.h"
#include "store_internal.h"

/* The store's connection copies the log into the database (a checkpoint)
 * once it has this many frames. */
#define CHECKPOINT_FRAMES 4000

void outbox_store_options_default(outbox_store_options *options)
{
    memset(options, 0, sizeof(*options));
    options->owner = "outboxd";
    options->busy_timeout_ms = 5000;
    options->lease_seconds = 120;
    options->retry_unknown = false;
    options->synchronous = "FULL";
    outbox_limits_default(&options->limits);
    outbox_retry_policy_default(&options->retry);
}

int outbox_store_schema_version(void)
{
    return outbox_migrations[outbox_migration_count - 1].version;
}

outbox_err outbox__store_fail(outbox_store *store, outbox_error *err,
                              outbox_err code, const char *what)
{
    int rc = sqlite3_extended_errcode(store->db);

    if ((rc & 0xff) == SQLITE_BUSY || (rc & 0xff) == SQLITE_LOCKED)
        code = OUTBOX_EBUSY;
    return outbox_error_set(err, code, "database", "%s: %s", what,
                            sqlite3_errmsg(store->db));
}

outbox_err outbox__store_prepare(outbox_store *store, sqlite3_stmt **stmt,
                                 outbox_error *err, const char *sql)
{
    outbox_cached_statement *entry;

    /* Most statements are constants, found by their address before any
     * text is compared. */
    *stmt = NULL;
    for (size_t i = 0; i < store->statement_count; i++) {
        if (store->statements[i].caller_sql == sql) {
            *stmt = store->statements[i].stmt;
            return OUTBOX_EOK;
        }
    }
    for (size_t i = 0; i < store->statement_count; i++) {
        if (strcmp(store->statements[i].sql, sql) == 0) {
            *stmt = store->statements[i].stmt;
            return OUTBOX_EOK;
        }
    }
    if (store->statement_count == OUTBOX_STATEMENT_CACHE)
        return outbox_error_set(err, OUTBOX_EDATABASE, "internal",
                                "more than %d distinct statements",
                                OUTBOX_STATEMENT_CACHE);
    entry = &store->statements[store->statement_count];
    entry->sql = outbox__strdup(sql);
    if (entry->sql == NULL)
        return outbox_error_set(err, OUTBOX_ENOMEM, "internal",
                                "out of memory");
    if (sqlite3_prepare_v3(store->db, sql, -1, SQLITE_PREPARE_PERSISTENT,
                           &entry->stmt, NULL)
        != SQLITE_OK) {
        free(entry->sql);
        entry->sql = NULL;
        return outbox__store_fail(store, err, OUTBOX_EDATABASE,
                                  "preparing a statement");
    }
    entry->caller_sql = sql;
    store->statement_count++;
    *stmt = entry->stmt;
    return OUTBOX_EOK;
}

void outbox__store_finish(sqlite3_stmt *stmt)
{
    if (stmt == NULL)
        return;
    sqlite3_reset(stmt);
    sqlite3_clear_bindings(stmt);
}

int outbox__bind_text(sqlite3_stmt *stmt, int index, const char *text)
{
    if (text == NULL)
        return sqlite3_bind_null(stmt, index);
    return sqlite3_bind_text(stmt, index, text, -1, SQLITE_TRANSIENT);
}

int outbox__bind_time(sqlite3_stmt *stmt, int index, int64_t t)
{
    char text[OUTBOX_TIME_TEXT_SIZE];

    outbox_time_format(text, t);
    return sqlite3_bind_text(stmt, index, text, -1, SQLITE_TRANSIENT);
}

double outbox__store_random(outbox_store *store)
{
    uint64_t x = store->random_state;

    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    store->random_state = x;
    return (double)(x >> 11) / 9007199254740992.0;
}

outbox_err outbox__store_exec(outbox_store *store, outbox_error *err,
                              const char *sql)
{
    sqlite3_stmt *stmt = NULL;
    outbox_err rc = outbox__store_prepare(store, &stmt, err, sql);
    int step;

    /* Cached: every transaction runs BEGIN and COMMIT, which sqlite3_exec
     * would parse again each time. */
    if (rc != OUTBOX_EOK)
        return rc;
    do
        step = sqlite3_step(stmt);
    while (step == SQLITE_ROW);
    if (step != SQLITE_DONE)
        rc = outbox__store_fail(store, err, OUTBOX_EDATABASE, sql);
    outbox__store_finish(stmt);
    return rc;
}

outbox_err outbox__store_transaction(outbox_store *store, outbox_error *err,
                                     bool persist, outbox_store_body body,
                                     void *context)
{
    for (unsigned tries = 1;; tries++) {
        outbox_err rc = outbox__store_exec(store, err, "BEGIN IMMEDIATE");

        if (rc == OUTBOX_EOK) {
            rc = body(store, context, err);
            if (rc == OUTBOX_EOK)
                rc = outbox__store_exec(store, err, "COMMIT");
            if (rc != OUTBOX_EOK)
                sqlite3_exec(store->db, "ROLLBACK", NULL, NULL, NULL);
        }
        if (rc != OUTBOX_EBUSY || !persist)
            return rc;

        /* Another connection held the write lock for the whole busy
         * timeout. Results must not be dropped, so wait again. */
        outbox_log(&store->options.logger, OUTBOX_LOG_WARN,
                   "database locked by another connection for more than "
                   "%d ms; still waiting (try %u)",
                   store->options.busy_timeout_ms, tries);
    }
}

static outbox_err read_user_version(outbox_store *store, outbox_error *err,
                                    int *version)
{
    sqlite3_stmt *stmt = NULL;
    outbox_err rc = outbox__store_prepare(store, &stmt, err,
                                          "PRAGMA user_version");

    if (rc != OUTBOX_EOK)
        return rc;
    if (sqlite3_step(stmt) == SQLITE_ROW)
        *version = sqlite3_column_int(stmt, 0);
    else
        rc = outbox__store_fail(store, err, OUTBOX_EDATABASE,
                                "reading PRAGMA user_version");
    outbox__store_finish(stmt);
    return rc;
}

typedef struct migration_step {
    const outbox_migration *migration;
} migration_step;

static outbox_err apply_migration(outbox_store *store, void *context,
                                  outbox_error *err)
{
    const outbox_migration *migration =
        ((migration_step *)context)->migration;
    char pragma[64];
    int version = 0;
    outbox_err rc = read_user_version(store, err, &version);

    /* Another daemon may have migrated while this one waited for the
     * lock. */
    if (rc != OUTBOX_EOK || version >= migration->version)
        return rc;
    if (sqlite3_exec(store->db, migration->sql, NULL, NULL, NULL)
        != SQLITE_OK)
        return outbox_error_set(err, OUTBOX_EDATABASE, "database",
                                "migration %s failed: %s", migration->name,
                                sqlite3_errmsg(store->db));
    snprintf(pragma, sizeof(pragma), "PRAGMA user_version = %d",
             migration->version);
    /* Not outbox__store_exec: its cache takes constant text only. */
    if (sqlite3_exec(store->db, pragma, NULL, NULL, NULL) != SQLITE_OK)
        return outbox__store_fail(store, err, OUTBOX_EDATABASE, pragma);
    return OUTBOX_EOK;
}

static outbox_err migrate(outbox_store *store, outbox_error *err)
{
    int version = 0;
    int newest = outbox_store_schema_version();
    outbox_err rc = read_user_version(store, err, &version);

    if (rc != OUTBOX_EOK)
        return rc;
    if (version > newest)
        return outbox_error_set(err, OUTBOX_ESCHEMA, "config",
                                "database schema version %d is newer than "
                                "this outboxd supports (%d); run a newer "
                                "outboxd",
                                version, newest);
    for (size_t i = 0; i < outbox_migration_count; i++) {
        migration_step step = {&outbox_migrations[i]};

        if (outbox_migrations[i].version <= version)
            continue;
        rc = outbox__store_transaction(store, err, true, apply_migration,
                                       &step);
        if (rc != OUTBOX_EOK)
            return rc;
        outbox_log(&store->options.logger, OUTBOX_LOG_INFO,
                   "database migrated to schema version %d (%s)",
                   outbox_migrations[i].version, outbox_migrations[i].name);
    }
    return OUTBOX_EOK;
}

static outbox_err apply_settings(outbox_store *store, outbox_error *err)
{
    outbox_err rc;

    if (strcmp(store->synchronous, "FULL") != 0
        && strcmp(store->synchronous, "NORMAL") != 0)
        return outbox_error_set(err, OUTBOX_ECONFIG, "config",
                                "synchronous must be \"FULL\" or \"NORMAL\", "
                                "not \"%s\"",
                                store->synchronous);
    sqlite3_busy_timeout(store->db, store->options.busy_timeout_ms);
    rc = outbox__store_exec(store, err, "PRAGMA journal_mode = WAL");
    if (rc == OUTBOX_EOK)
        rc = outbox__store_exec(store, err, "PRAGMA synchronous = NORMAL");
    if (rc == OUTBOX_EOK)
        rc = outbox__store_exec(store, err, "PRAGMA foreign_keys = ON");
    /* A claim's multi-row UPDATE keeps a statement journal, which with
     * the default temp_store spilled to a new temporary file (created and
     * unlinked) on every claim. */
    if (rc == OUTBOX_EOK)
        rc = outbox__store_exec(store, err, "PRAGMA temp_store = MEMORY");
    /* A checkpoint waits for two syncs of the disk in the store's thread,
     * and a sync costs about 2 ms even when little was written. Every
     * 4,000 frames instead of SQLite's 1,000 cut those waits from 1.35 s
     * to 0.47 s per 50,000 messages, for a log of about 16 MiB. */
    if (rc == OUTBOX_EOK
        && sqlite3_wal_autocheckpoint(store->db, CHECKPOINT_FRAMES)
               != SQLITE_OK)
        rc = outbox__store_fail(store, err, OUTBOX_EDATABASE,
                                "setting the checkpoint interval");
    return rc;
}

/*
 * Opens the descriptor outbox_store_sync uses. The migration has read the
 * database, so its write-ahead log exists. Without the descriptor (an
 * in-memory database) dispatch syncs its own commit, as without
 * caller_syncs_dispatch.
 */
static void open_wal(outbox_store *store)
{
    const char *database = sqlite3_db_filename(store->db, "main");
    const char *wal;

    if (database == NULL || database[0] == '\0')
        return;
    wal = sqlite3_filename_wal(database);
    store->wal_fd = open(wal, O_RDONLY | O_CLOEXEC);
    if (store->wal_fd < 0) {
        char reason[128];

        outbox__describe_errno(reason, sizeof(reason), errno);
        outbox_log(&store->options.logger, OUTBOX_LOG_WARN,
                   "cannot open the write-ahead log %s (%s): dispatch "
                   "commits wait for the disk in the store's thread",
                   wal, reason);
    }
}

outbox_err outbox_store_sync(outbox_store *store, outbox_error *err)
{
    char reason[128];

    if (store->wal_fd < 0 || fdatasync(store->wal_fd) == 0)
        return OUTBOX_EOK;
    outbox__describe_errno(reason, sizeof(reason), errno);
    return outbox_error_set(err, OUTBOX_EDATABASE, "database",
                            "syncing the write-ahead log to disk failed: %s",
                            reason);
}

outbox_err outbox_store_open(outbox_store **out, outbox_error *err,
                             const char *path,
                             const outbox_store_options *options)
{
    outbox_store *store = calloc(1, sizeof(*store));
    outbox_err rc = OUTBOX_ENOMEM;
    int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE
                | SQLITE_OPEN_NOMUTEX;

    *out = NULL;
    if (store == NULL)
        return outbox_error_set(err, rc, "internal", "out of memory");
    store->options = *options;
    store->wal_fd = -1;
    store->owner = outbox__strdup(options->owner);
    store->synchronous = outbox__strdup(options->synchronous);
    store->options.owner = store->owner;
    store->options.synchronous = store->synchronous;
    if (store->owner == NULL || store->synchronous == NULL
        || !outbox__random_bytes((unsigned char *)&store->random_state,
                                 sizeof(store->random_state))) {
        outbox_error_set(err, rc, "internal", "out of memory");
        goto cleanup;
    }
    store->random_state |= 1;

    if (sqlite3_open_v2(path, &store->db, flags, NULL) != SQLITE_OK) {
        rc = outbox_error_set(err, OUTBOX_EDATABASE, "config",
                              "cannot open database \"%s\": %s", path,
                              store->db ? sqlite3_errmsg(store->db)
                                        : "out of memory");
        goto cleanup;
    }
    rc = apply_settings(store, err);
    if (rc == OUTBOX_EOK)
        rc = migrate(store, err);
    if (rc != OUTBOX_EOK) {
        if (err != NULL && strcmp(err->kind, "database") == 0)
            snprintf(err->kind, sizeof(err->kind), "config");
        goto cleanup;
    }
    store->data_version = -1;
    outbox_store_changed(store);
    if (options->caller_syncs_dispatch
        && strcmp(store->synchronous, "FULL") == 0)
        open_wal(store);
    *out = store;
    return OUTBOX_EOK;

cleanup:
    outbox_store_close(store);
    return rc;
}

void outbox_store_close(outbox_store *store)
{
    if (store == NULL)
        return;
    for (size_t i = 0; i < store->statement_count; i++) {
        sqlite3_finalize(store->statements[i].stmt);
        free(store->statements[i].sql);
    }
    sqlite3_close_v2(store->db);
    if (store->wal_fd >= 0)
        close(store->wal_fd);
    free(store->owner);
    free(store->synchronous);
    free(store);
}

bool outbox_store_changed(outbox_store *store)
{
    sqlite3_stmt *stmt = NULL;
    int64_t version = store->data_version;

    if (sqlite3_prepare_v2(store->db, "PRAGMA data_version", -1, &stmt, NULL)
            == SQLITE_OK
        && sqlite3_step(stmt) == SQLITE_ROW)
        version = sqlite3_column_int64(stmt, 0);
    sqlite3_finalize(stmt);
    if (version == store->data_version)
        return false;
    store->data_version = version;
    return true;
}
