/*
 * test_store.c - the SQLite store on its own: schema, settings, claims,
 * dispatches, outcomes and lease upkeep, driven with explicit times.
 */
#include <dirent.h>
#include <limits.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <unistd.h>

#include "check.h"
#include "outbox.h"
#include "schema.h"
#include "store_internal.h"

static char folder[] = "/tmp/outbox-store-XXXXXX";
static char path[256];

static const char *const configured[] = {"sendgrid"};
static const outbox_claim_filter filter = {"sendgrid", configured, 1, NULL, 0};

static sqlite3 *side_connection(void)
{
    sqlite3 *db = NULL;

    sqlite3_open(path, &db);
    sqlite3_busy_timeout(db, 5000);
    return db;
}

static void run_sql(const char *sql)
{
    sqlite3 *db = side_connection();
    char *message = NULL;

    if (sqlite3_exec(db, sql, NULL, NULL, &message) != SQLITE_OK)
        CHECK_FAIL("SQL failed: %s: %s", sql, message);
    sqlite3_free(message);
    sqlite3_close(db);
}

/* Returns the first column of the first row as a malloc'd string. */
static char *query_text_on(sqlite3 *db, const char *sql)
{
    sqlite3_stmt *stmt = NULL;
    char *text = NULL;

    if (sqlite3_prepare_v2(db, sql, -1, &stmt, NULL) == SQLITE_OK
        && sqlite3_step(stmt) == SQLITE_ROW
        && sqlite3_column_text(stmt, 0) != NULL) {
        const char *value = (const char *)sqlite3_column_text(stmt, 0);

        text = malloc(strlen(value) + 1);
        if (text != NULL)
            strcpy(text, value);
    }
    sqlite3_finalize(stmt);
    return text;
}

static char *query_text(const char *sql)
{
    sqlite3 *db = side_connection();
    char *text = query_text_on(db, sql);

    sqlite3_close(db);
    return text;
}

#define CHECK_QUERY(sql, want)                                           \
    do {                                                                 \
        char *check_text_ = query_text(sql);                             \
        CHECK_STR(check_text_, want);                                    \
        free(check_text_);                                               \
    } while (0)

static void check_migrates_from_version_1(void);

static outbox_store *open_store(const char *owner)
{
    outbox_store_options options;
    outbox_store *store = NULL;
    outbox_error err;

    outbox_store_options_default(&options);
    options.owner = owner;
    options.lease_seconds = 60;
    options.retry.jitter = 0;
    if (outbox_store_open(&store, &err, path, &options) != OUTBOX_EOK)
        CHECK_FAIL("open failed: %s", err.text);
    return store;
}

static void insert_invoice(const char *key)
{
    char sql[512];

    snprintf(sql, sizeof(sql),
             "INSERT INTO outbox (sender, recipients, subject, body_text, "
             "message_key) VALUES ('Billing <billing@example.com>', "
             "'kunde@example.org', 'Invoice', 'text', '%s')",
             key);
    run_sql(sql);
}

static void schema_and_settings(void)
{
    outbox_store *store = open_store("a");
    outbox_store_options options;
    outbox_store *newer = NULL;
    outbox_error err;

    CHECK_CASE("schema version and WAL");
    CHECK_QUERY("PRAGMA user_version", "6");
    CHECK_QUERY("PRAGMA journal_mode", "wal");
    outbox_store_close(store);

    CHECK_CASE("a newer schema is rejected");
    run_sql("PRAGMA user_version = 99");
    outbox_store_options_default(&options);
    CHECK_INT(outbox_store_open(&newer, &err, path, &options),
              OUTBOX_ESCHEMA);
    CHECK(newer == NULL);
    CHECK_CONTAINS(err.text, "schema version 99 is newer");
    run_sql("PRAGMA user_version = 6");

    /* A database made by the first version only, with a row in it, as a
     * site that installed it would have it. */
    CHECK_CASE("version 1 migrates in place");
    check_migrates_from_version_1();
}

static void check_migrates_from_version_1(void)
{
    char old_path[300];
    sqlite3 *db = NULL;
    outbox_store_options options;
    outbox_store *store = NULL;
    outbox_error err;
    char *value;

    snprintf(old_path, sizeof(old_path), "%s/version1.db", folder);
    if (sqlite3_open(old_path, &db) != SQLITE_OK
        || sqlite3_exec(db, outbox_migrations[0].sql, NULL, NULL, NULL)
               != SQLITE_OK
        || sqlite3_exec(db, "INSERT INTO outbox (sender, recipients, "
                            "body_text) VALUES ('a@example.com', "
                            "'b@example.org', 'kept'); "
                            "PRAGMA user_version = 1", NULL, NULL, NULL)
               != SQLITE_OK)
        CHECK_FAIL("making a version 1 database: %s", sqlite3_errmsg(db));
    sqlite3_close(db);

    outbox_store_options_default(&options);
    options.owner = "a";
    CHECK_INT(outbox_store_open(&store, &err, old_path, &options),
              OUTBOX_EOK);
    outbox_store_close(store);
    sqlite3_open(old_path, &db);
    value = query_text_on(db, "PRAGMA user_version");
    CHECK_INT(atoi(value ? value : "0"), outbox_store_schema_version());
    free(value);
    value = query_text_on(db, "SELECT count(*) FROM pragma_table_info("
                              "'outbox') WHERE name IN ('template', "
                              "'template_data')");
    CHECK_STR(value, "2");
    free(value);
    value = query_text_on(db, "SELECT body_text FROM outbox");
    CHECK_STR(value, "kept");
    free(value);
    sqlite3_close(db);
    /* Closing the last connection removed the -wal and -shm files. */
    unlink(old_path);
}

static outbox_message **claim(outbox_store *store, size_t *count,
                              size_t limit, int64_t now)
{
    outbox_message **messages = NULL;
    outbox_error err;

    if (outbox_store_claim(store, &messages, count, &err, &filter, limit, now)
        != OUTBOX_EOK)
        CHECK_FAIL("claim failed: %s", err.text);
    return messages;
}

static void claim_dispatch_record(void)
{
    outbox_store *store = open_store("a");
    int64_t now = (int64_t)time(NULL);
    outbox_message **messages;
    outbox_outcome outcome;
    outbox_error err;
    bool dispatched = false;
    size_t count = 0;

    insert_invoice("claim-1");
    run_sql("INSERT INTO outbox (sender, recipients, body_text, send_after) "
            "VALUES ('a@example.com', 'b@example.org', 'later', "
            "'2999-01-01 00:00:00')");
    run_sql("INSERT INTO outbox (sender, recipients, body_text) "
            "VALUES ('', 'b@example.org', 'no sender')");

    CHECK_CASE("claim takes the due valid row and fails the bad one");
    messages = claim(store, &count, 10, now);
    CHECK_INT(count, 1);
    CHECK_QUERY("SELECT status || ' ' || attempts FROM outbox "
                "WHERE message_key = 'claim-1'",
                "sending 1");
    CHECK_QUERY("SELECT status || ' ' || last_error_kind FROM outbox "
                "WHERE body_text = 'no sender'",
                "failed invalid_sender");
    CHECK_QUERY("SELECT status FROM outbox WHERE body_text = 'later'",
                "queued");

    CHECK_CASE("a second claim finds nothing");
    {
        size_t again = 0;
        outbox_message **none = claim(store, &again, 10, now);

        CHECK_INT(again, 0);
        outbox_messages_free(none, again);
    }

    CHECK_CASE("dispatch opens the attempt row");
    if (count == 1) {
        CHECK_INT(outbox_store_dispatch(store, &dispatched, &err, messages, 1,
                                        now),
                  OUTBOX_EOK);
        CHECK(dispatched);
        CHECK_QUERY("SELECT count(*) FROM delivery_attempt "
                    "WHERE finished_at IS NULL",
                    "1");

        CHECK_CASE("a sent outcome closes it and moves the row");
        memset(&outcome, 0, sizeof(outcome));
        outcome.id = messages[0]->id;
        outcome.attempt = messages[0]->attempt;
        outcome.created_at = now;
        outcome.started_at = now;
        outcome.finished_at = now;
        snprintf(outcome.provider, sizeof(outcome.provider), "sendgrid");
        outbox_result_init(&outcome.result, OUTBOX_RESULT_SENT);
        outcome.result.status = 202;
        snprintf(outcome.result.provider_message_id,
                 sizeof(outcome.result.provider_message_id), "abc123");
        CHECK_INT(outbox_store_record(store, &err, &outcome, 1), OUTBOX_EOK);
        CHECK_QUERY("SELECT status || ' ' || provider_message_id || ' ' || "
                    "(message_id IS NOT NULL) FROM outbox "
                    "WHERE message_key = 'claim-1'",
                    "sent abc123 1");
        CHECK_QUERY("SELECT outcome || ' ' || status_code FROM "
                    "delivery_attempt WHERE provider_message_id = 'abc123'",
                    "sent 202");
    }
    outbox_messages_free(messages, count);
    outbox_store_close(store);
}

static void retry_schedules_next_attempt(void)
{
    outbox_store *store = open_store("a");
    int64_t now = (int64_t)time(NULL) + 10;
    outbox_outcome outcome;
    outbox_error err;
    bool dispatched;
    size_t count = 0;
    outbox_message **messages;

    insert_invoice("retry-1");

    CHECK_CASE("a retry result schedules the next attempt");
    messages = claim(store, &count, 10, now);
    CHECK_INT(count, 1);
    if (count == 1) {
        outbox_store_dispatch(store, &dispatched, &err, messages, 1, now);
        memset(&outcome, 0, sizeof(outcome));
        outcome.id = messages[0]->id;
        outcome.attempt = messages[0]->attempt;
        outcome.created_at = now;
        outcome.finished_at = now;
        snprintf(outcome.provider, sizeof(outcome.provider), "sendgrid");
        outbox_result_init(&outcome.result, OUTBOX_RESULT_RETRY);
        outcome.result.status = 503;
        outbox_error_set(&outcome.result.error, OUTBOX_EPROVIDER,
                         "provider_unavailable", "HTTP 503");
        CHECK_INT(outbox_store_record(store, &err, &outcome, 1), OUTBOX_EOK);
        CHECK_QUERY("SELECT status || ' ' || last_error_kind || ' ' || "
                    "(strftime('%s', next_attempt_at) - strftime('%s', "
                    "updated_at)) FROM outbox WHERE message_key = 'retry-1'",
                    "retrying provider_unavailable 31");
    }
    outbox_messages_free(messages, count);
    outbox_store_close(store);
}

static void expired_leases(void)
{
    outbox_store *dead = open_store("dead-daemon");
    outbox_store *alive;
    int64_t now = (int64_t)time(NULL) + 100;
    outbox_message **messages;
    outbox_error err;
    bool dispatched[2];
    size_t count = 0;

    run_sql("UPDATE outbox SET status = 'cancelled' "
            "WHERE status IN ('queued', 'retrying')");
    insert_invoice("lease-undispatched");
    insert_invoice("lease-dispatched");
    messages = claim(dead, &count, 10, now);
    CHECK_CASE("both rows claimed by the daemon that then dies");
    CHECK_INT(count, 2);
    if (count == 2) {
        /* Only the second request may have left. */
        outbox_store_dispatch(dead, dispatched, &err, messages + 1, 1, now);
    }
    outbox_messages_free(messages, count);
    outbox_store_close(dead);

    alive = open_store("alive-daemon");
    CHECK_CASE("leases are left alone before they expire");
    CHECK_INT(outbox_store_maintain(alive, &err, now + 30), OUTBOX_EOK);
    CHECK_QUERY("SELECT group_concat(status) FROM outbox "
                "WHERE message_key LIKE 'lease-%'",
                "sending,sending");

    CHECK_CASE("an undispatched row goes back, a dispatched one is held");
    CHECK_INT(outbox_store_maintain(alive, &err, now + 61), OUTBOX_EOK);
    CHECK_QUERY("SELECT status || ' ' || attempts FROM outbox "
                "WHERE message_key = 'lease-undispatched'",
                "queued 0");
    CHECK_QUERY("SELECT status || ' ' || last_error_kind || ' ' || attempts "
                "FROM outbox WHERE message_key = 'lease-dispatched'",
                "held outcome_unknown 1");
    CHECK_QUERY("SELECT a.outcome FROM delivery_attempt AS a JOIN outbox AS o"
                " ON o.id = a.outbox_id "
                "WHERE o.message_key = 'lease-dispatched'",
                "unknown");
    CHECK_QUERY("SELECT count(*) FROM daemon_heartbeat "
                "WHERE owner = 'alive-daemon'",
                "1");
    outbox_store_close(alive);
}

/* Statements the store ran, in order, joined by newlines. */
static char trace[16384];

static int record_statement(unsigned type, void *context, void *statement,
                            void *unused)
{
    char *sql = sqlite3_expanded_sql(statement);
    size_t used = strlen(trace);

    (void)type;
    (void)context;
    (void)unused;
    if (sql != NULL && used + strlen(sql) + 2 < sizeof(trace)) {
        strcat(trace, sql);
        strcat(trace, "\n");
    }
    sqlite3_free(sql);
    return 0;
}

/* Dispatches message with every statement of the store recorded in
 * trace. */
static void dispatch_traced(outbox_store *store, outbox_message *message,
                            int64_t now, bool *dispatched)
{
    outbox_error err;

    trace[0] = '\0';
    sqlite3_trace_v2(store->db, SQLITE_TRACE_STMT, record_statement, NULL);
    outbox_store_dispatch(store, dispatched, &err, &message, 1, now);
    sqlite3_trace_v2(store->db, 0, NULL, NULL);
}

/* Returns the value of a pragma on the store's connection, or -1. */
static int pragma_int(outbox_store *store, const char *pragma)
{
    sqlite3_stmt *stmt = NULL;
    int value = -1;

    if (sqlite3_prepare_v2(store->db, pragma, -1, &stmt, NULL) == SQLITE_OK
        && sqlite3_step(stmt) == SQLITE_ROW)
        value = sqlite3_column_int(stmt, 0);
    sqlite3_finalize(stmt);
    return value;
}

static void time_text(void)
{
    char text[OUTBOX_TIME_TEXT_SIZE];

    CHECK_CASE("times are written as SQLite's datetime() text");
    outbox_time_format(text, 1796428800);
    CHECK_STR(text, "2026-12-05 00:00:00");
    outbox_time_format(text, 1796428801);
    CHECK_STR(text, "2026-12-05 00:00:01");
    outbox_time_format(text, 1796428801);
    CHECK_STR(text, "2026-12-05 00:00:01");
    outbox_time_format(text, 0);
    CHECK_STR(text, "1970-01-01 00:00:00");
}

static void time_parse(void)
{
    static const struct {
        const char *text;
        bool valid;
        int64_t seconds;
    } cases[] = {
        {"2026-12-05 00:00:00", true, 1796428800},
        {"2024-02-29 12:00:00", true, 1709208000},
        {"2026-12-05 23:59:60", true, 1796515200},
        {"2025-02-29 00:00:00", false, 0},
        {"2026-04-31 00:00:00", false, 0},
        {"2026-13-01 00:00:00", false, 0},
        {"2026-00-01 00:00:00", false, 0},
        {"2026-12-05 24:00:00", false, 0},
        {"2026-12-05 23:60:00", false, 0},
        {"2026-12-05T00:00:00", false, 0},
        {"2026-12-05 00:00:00 ", false, 0},
        {"", false, 0},
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        int64_t seconds = -1;
        bool valid;

        CHECK_CASE(cases[i].text);
        valid = outbox_time_parse(&seconds, cases[i].text);
        CHECK_INT(valid, cases[i].valid);
        if (cases[i].valid)
            CHECK_INT(seconds, cases[i].seconds);
    }
}

static void dispatch_is_synced(void)
{
    outbox_store *store = open_store("a");
    int64_t now = (int64_t)time(NULL) + 200;
    outbox_message **messages;
    bool dispatched = false;
    size_t count = 0;
    const char *full;
    const char *insert;
    const char *normal;

    run_sql("UPDATE outbox SET status = 'cancelled' "
            "WHERE status IN ('queued', 'retrying')");
    insert_invoice("synced-1");

    CHECK_CASE("the connection runs with synchronous=NORMAL");
    CHECK_QUERY("PRAGMA journal_mode", "wal");
    CHECK_INT(pragma_int(store, "PRAGMA synchronous"), 1);

    /* Without it, a statement fails at once while an ERP holds the write
     * lock, and the daemon spins instead of waiting. */
    CHECK_CASE("the connection waits for locks (busy_timeout)");
    CHECK_INT(pragma_int(store, "PRAGMA busy_timeout"), 5000);

    CHECK_CASE("the connection checkpoints every 4,000 frames");
    CHECK_INT(pragma_int(store, "PRAGMA wal_autocheckpoint"), 4000);

    CHECK_CASE("the dispatch commit runs with synchronous=FULL");
    messages = claim(store, &count, 10, now);
    CHECK_INT(count, 1);
    if (count == 1)
        dispatch_traced(store, messages[0], now, &dispatched);
    full = strstr(trace, "PRAGMA synchronous = FULL");
    insert = strstr(trace, "INSERT INTO delivery_attempt");
    normal = strstr(trace, "PRAGMA synchronous = NORMAL");
    CHECK(dispatched);
    CHECK(full != NULL);
    CHECK(insert != NULL);
    CHECK(normal != NULL);
    CHECK(full < insert);
    CHECK(insert < normal);
    CHECK_CONTAINS(trace, "COMMIT");
    outbox_messages_free(messages, count);
    outbox_store_close(store);
}

/* Counts this process's descriptors open on the file at target. */
static int descriptors_on(const char *target)
{
    DIR *fds = opendir("/proc/self/fd");
    struct dirent *entry;
    int count = 0;

    if (fds == NULL)
        return -1;
    while ((entry = readdir(fds)) != NULL) {
        char link[300];
        char name[PATH_MAX];
        ssize_t size;

        snprintf(link, sizeof(link), "/proc/self/fd/%s", entry->d_name);
        size = readlink(link, name, sizeof(name) - 1);
        if (size <= 0)
            continue;
        name[size] = '\0';
        if (strcmp(name, target) == 0)
            count++;
    }
    closedir(fds);
    return count;
}

static void dispatch_synced_by_caller(void)
{
    outbox_store_options options;
    outbox_store *store = NULL;
    int64_t now = (int64_t)time(NULL) + 400;
    outbox_message **messages = NULL;
    outbox_error err;
    bool dispatched = false;
    size_t count = 0;
    char wal[300];
    int before = 0;

    snprintf(wal, sizeof(wal), "%s-wal", path);
    outbox_store_options_default(&options);
    options.owner = "a";
    options.caller_syncs_dispatch = true;
    before = descriptors_on(wal);
    if (outbox_store_open(&store, &err, path, &options) != OUTBOX_EOK)
        CHECK_FAIL("open failed: %s", err.text);
    run_sql("UPDATE outbox SET status = 'cancelled' "
            "WHERE status IN ('queued', 'retrying')");
    insert_invoice("synced-by-caller-1");

    /* SQLite's connection has the log open too; the store adds its own
     * descriptor, which outbox_store_sync syncs. */
    CHECK_CASE("the store opens a descriptor of its own on the log");
    CHECK_INT(descriptors_on(wal), before + 2);

    CHECK_CASE("the dispatch commit leaves the sync to the caller");
    messages = claim(store, &count, 10, now);
    CHECK_INT(count, 1);
    if (count == 1)
        dispatch_traced(store, messages[0], now, &dispatched);
    CHECK(dispatched);
    CHECK_CONTAINS(trace, "INSERT INTO delivery_attempt");
    CHECK(strstr(trace, "PRAGMA synchronous = FULL") == NULL);
    CHECK_INT(outbox_store_sync(store, &err), OUTBOX_EOK);
    outbox_messages_free(messages, count);
    outbox_store_close(store);

    CHECK_CASE("closing the store closes its descriptor");
    CHECK_INT(descriptors_on(wal), before);
}

int main(void)
{
    if (mkdtemp(folder) == NULL) {
        perror("mkdtemp");
        return 1;
    }
    snprintf(path, sizeof(path), "%s/outbox.db", folder);
    schema_and_settings();
    claim_dispatch_record();
    retry_schedules_next_attempt();
    expired_leases();
    time_text();
    time_parse();
    dispatch_is_synced();
    dispatch_synced_by_caller();
    CHECK_DONE();
}
