/*
 * test_store_events.c - webhook events in the store: matching, ignoring
 * resent events, statuses that only move forward, per-recipient outcomes
 * and the suppression list that a claim honours.
 */
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "outbox.h"
#include "outbox_events.h"

static char folder[] = "/tmp/outbox-events-XXXXXX";
static char path[256];
static const int64_t now = 1800000000;

static const char *const configured[] = {"sendgrid"};
static const outbox_claim_filter filter = {"sendgrid", configured, 1, NULL, 0};

static void run_sql(const char *sql)
{
    sqlite3 *db = NULL;
    char *message = NULL;

    sqlite3_open(path, &db);
    sqlite3_busy_timeout(db, 5000);
    if (sqlite3_exec(db, sql, NULL, NULL, &message) != SQLITE_OK)
        CHECK_FAIL("SQL failed: %s: %s", sql, message);
    sqlite3_free(message);
    sqlite3_close(db);
}

/* Returns the rows of sql as "a b|c d" (columns joined by spaces, rows by
 * "|"), malloc'd. */
static char *query(const char *sql)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *stmt = NULL;
    char text[2048] = "";
    size_t used = 0;

    sqlite3_open(path, &db);
    if (sqlite3_prepare_v2(db, sql, -1, &stmt, NULL) != SQLITE_OK)
        CHECK_FAIL("prepare failed: %s: %s", sql, sqlite3_errmsg(db));
    while (stmt != NULL && sqlite3_step(stmt) == SQLITE_ROW) {
        for (int i = 0; i < sqlite3_column_count(stmt); i++) {
            const char *value = (const char *)sqlite3_column_text(stmt, i);
            const char *separator = "";

            if (i > 0)
                separator = " ";
            else if (used > 0)
                separator = "|";
            used += (size_t)snprintf(text + used, sizeof(text) - used, "%s%s",
                                     separator,
                                     value != NULL ? value : "NULL");
            if (used >= sizeof(text))
                used = sizeof(text) - 1;
        }
    }
    sqlite3_finalize(stmt);
    sqlite3_close(db);
    return strdup(text);
}

#define CHECK_QUERY(sql, want)                                           \
    do {                                                                 \
        char *check_text_ = query(sql);                                  \
        CHECK_STR(check_text_, want);                                    \
        free(check_text_);                                               \
    } while (0)

static outbox_store *open_store(void)
{
    outbox_store_options options;
    outbox_store *store = NULL;
    outbox_error err;

    outbox_store_options_default(&options);
    options.owner = "test";
    if (outbox_store_open(&store, &err, path, &options) != OUTBOX_EOK)
        CHECK_FAIL("open failed: %s", err.text);
    return store;
}

/* Claims every due row and returns the messages. */
static outbox_message **claim_all(outbox_store *store, size_t *count)
{
    outbox_message **messages = NULL;
    outbox_error err;

    *count = 0;
    if (outbox_store_claim(store, &messages, count, &err, &filter, 50, now)
        != OUTBOX_EOK)
        CHECK_FAIL("claim failed: %s", err.text);
    return messages;
}

/* Dispatches message and records its outcome as kind, with provider id
 * id (sent only) and the provider's error kind and text, if not NULL. */
static void record_outcome(outbox_store *store, outbox_message *message,
                           outbox_result_kind kind, const char *id,
                           const char *error_kind, const char *error_text)
{
    outbox_outcome outcome;
    outbox_error err;
    bool dispatched = false;

    CHECK_INT(outbox_store_dispatch(store, &dispatched, &err, &message, 1,
                                    now),
              OUTBOX_EOK);
    memset(&outcome, 0, sizeof(outcome));
    outcome.id = message->id;
    outcome.attempt = message->attempt;
    outcome.created_at = now;
    outcome.started_at = now;
    outcome.finished_at = now;
    snprintf(outcome.provider, sizeof(outcome.provider), "sendgrid");
    outbox_result_init(&outcome.result, kind);
    if (kind == OUTBOX_RESULT_SENT)
        outcome.result.status = 202;
    snprintf(outcome.result.provider_message_id,
             sizeof(outcome.result.provider_message_id), "%s", id);
    if (error_kind != NULL)
        outbox_error_set(&outcome.result.error, OUTBOX_EPROVIDER, error_kind,
                         "%s", error_text);
    CHECK_INT(outbox_outcome_copy_message(&outcome, &err, message),
              OUTBOX_EOK);
    CHECK_INT(outbox_store_record(store, &err, &outcome, 1), OUTBOX_EOK);
    outbox_outcome_clear(&outcome);
}

/* Dispatches message and records it as sent with provider id id. */
static void send_one(outbox_store *store, outbox_message *message,
                     const char *id)
{
    record_outcome(store, message, OUTBOX_RESULT_SENT, id, NULL, NULL);
}

/* An event for the tests; strings are borrowed, not owned. */
static outbox_event event(outbox_event_type type, outbox_bounce_kind bounce,
                          const char *event_id, int64_t outbox_id,
                          const char *message_id, const char *recipient)
{
    outbox_event e;

    memset(&e, 0, sizeof(e));
    e.type = type;
    e.bounce = bounce;
    e.event_id = (char *)event_id;
    e.outbox_id = outbox_id;
    e.provider_message_id = (char *)message_id;
    e.recipient = (char *)recipient;
    e.occurred_at = now;
    e.reason = bounce == OUTBOX_BOUNCE_HARD ? (char *)"550 5.1.1 no such user"
                                            : NULL;
    e.raw = (char *)"{}";
    return e;
}

static size_t record(outbox_store *store, const outbox_event *events,
                     size_t count)
{
    outbox_error err;
    size_t stored = 99;

    CHECK_INT(outbox_store_record_events(store, &err, "sendgrid", events,
                                         count, now, &stored),
              OUTBOX_EOK);
    return stored;
}

static void delivered_then_late_events(void)
{
    outbox_store *store = open_store();
    outbox_message **messages;
    size_t count;

    CHECK_CASE("a claim writes no recipient row");
    run_sql("INSERT INTO outbox (id, sender, recipients, cc, bcc, body_text,"
            " reference) VALUES (42, 'billing@example.com', "
            "'anna@example.org', 'Bob <bob@example.org>', "
            "'archive@example.com', 'Invoice 42', 'INV-42')");
    messages = claim_all(store, &count);
    CHECK_INT(count, 1);
    CHECK_QUERY("SELECT count(*) FROM delivery_recipient", "0");

    CHECK_CASE("an event before the sent record waits for it");
    {
        outbox_event early = event(OUTBOX_EVENT_DELIVERED, OUTBOX_BOUNCE_NONE,
                                   "ev-1", 42, NULL, "ANNA@example.org");

        CHECK_INT(record(store, &early, 1), 1);
        CHECK_QUERY("SELECT status FROM outbox WHERE id = 42", "sending");
        CHECK_QUERY("SELECT status FROM delivery_recipient "
                    "WHERE recipient = 'anna@example.org'", "delivered");
    }

    CHECK_CASE("the sent record applies it");
    if (count == 1)
        send_one(store, messages[0], "sg-abc");
    CHECK_QUERY("SELECT status FROM outbox WHERE id = 42", "delivered");
    CHECK_QUERY("SELECT o.message_id = a.message_id FROM outbox AS o "
                "JOIN delivery_attempt AS a ON a.outbox_id = o.id "
                "WHERE o.id = 42", "1");
    CHECK_QUERY("SELECT recipient, kind, status FROM delivery_recipient "
                "ORDER BY kind DESC",
                "anna@example.org to delivered|bob@example.org cc sent|"
                "archive@example.com bcc sent");

    CHECK_CASE("a resent event is ignored");
    {
        outbox_event again = event(OUTBOX_EVENT_DELIVERED, OUTBOX_BOUNCE_NONE,
                                   "ev-1", 42, NULL, "anna@example.org");

        CHECK_INT(record(store, &again, 1), 0);
        CHECK_QUERY("SELECT count(*) FROM delivery_event", "1");
    }

    CHECK_CASE("matched by the provider's message id; bounce wins");
    {
        outbox_event batch[] = {
            event(OUTBOX_EVENT_BOUNCED, OUTBOX_BOUNCE_HARD, "ev-2", 0,
                  "sg-abc", "bob@example.org"),
            event(OUTBOX_EVENT_DELIVERED, OUTBOX_BOUNCE_NONE, "ev-3", 0,
                  "sg-abc", "bob@example.org"),
            event(OUTBOX_EVENT_OPENED, OUTBOX_BOUNCE_NONE, "ev-4", 42, NULL,
                  "anna@example.org"),
        };

        CHECK_INT(record(store, batch, 3), 3);
        CHECK_QUERY("SELECT status FROM outbox WHERE id = 42", "bounced");
        CHECK_QUERY("SELECT status, detail FROM delivery_recipient "
                    "WHERE recipient = 'bob@example.org'",
                    "bounced 550 5.1.1 no such user");
        CHECK_QUERY("SELECT event_type, coalesce(bounce_type, '-'), "
                    "outbox_id FROM delivery_event ORDER BY id",
                    "delivered - 42|bounced hard 42|delivered - 42|"
                    "opened - 42");
        CHECK_QUERY("SELECT address, reason, provider, outbox_id "
                    "FROM suppression",
                    "bob@example.org hard_bounce sendgrid 42");
    }

    CHECK_CASE("a complaint outranks every later event");
    {
        outbox_event batch[] = {
            event(OUTBOX_EVENT_COMPLAINED, OUTBOX_BOUNCE_NONE, "ev-6", 42,
                  NULL, "anna@example.org"),
            event(OUTBOX_EVENT_DELIVERED, OUTBOX_BOUNCE_NONE, "ev-7", 42,
                  NULL, "archive@example.com"),
            event(OUTBOX_EVENT_BOUNCED, OUTBOX_BOUNCE_HARD, "ev-8", 42,
                  NULL, "archive@example.com"),
        };

        CHECK_INT(record(store, batch, 3), 3);
        CHECK_QUERY("SELECT status FROM outbox WHERE id = 42", "complained");
        CHECK_QUERY("SELECT status FROM delivery_recipient "
                    "WHERE recipient = 'anna@example.org'", "complained");
        CHECK_QUERY("SELECT reason FROM suppression "
                    "WHERE address = 'anna@example.org'", "complaint");
    }

    CHECK_CASE("finance: delivered to every recipient?");
    CHECK_QUERY("SELECT min(r.status = 'delivered') FROM delivery_recipient "
                "AS r JOIN outbox AS o ON o.id = r.outbox_id "
                "WHERE o.reference = 'INV-42'", "0");

    CHECK_CASE("an event that matches nothing is kept");
    {
        outbox_event stray = event(OUTBOX_EVENT_COMPLAINED,
                                   OUTBOX_BOUNCE_NONE, "ev-5", 0, "unknown",
                                   "carol@example.org");

        CHECK_INT(record(store, &stray, 1), 1);
        CHECK_QUERY("SELECT coalesce(outbox_id, 'NULL'), event_type FROM "
                    "delivery_event WHERE event_id = 'ev-5'",
                    "NULL complained");
        CHECK_QUERY("SELECT reason FROM suppression "
                    "WHERE address = 'carol@example.org'", "complaint");
    }
    outbox_messages_free(messages, count);
    outbox_store_close(store);
}

static void claims_honour_suppression(void)
{
    outbox_store *store = open_store();
    outbox_message **messages;
    size_t count;

    CHECK_CASE("a suppressed recipient is dropped from the message");
    run_sql("INSERT INTO outbox (id, sender, recipients, cc, body_text) "
            "VALUES (43, 'billing@example.com', 'Bob@Example.org', "
            "'dave@example.org', 'Invoice 43')");
    messages = claim_all(store, &count);
    CHECK_INT(count, 1);
    if (count == 1) {
        CHECK_INT(messages[0]->to.count, 0);
        CHECK_INT(messages[0]->cc.count, 1);
        CHECK_STR(messages[0]->cc.items[0].email, "dave@example.org");
    }
    CHECK_QUERY("SELECT recipient, status, substr(detail, 1, 17) FROM "
                "delivery_recipient WHERE outbox_id = 43 ORDER BY recipient",
                "Bob@Example.org suppressed hard_bounce since");
    outbox_messages_free(messages, count);

    CHECK_CASE("a message with every recipient suppressed fails");
    run_sql("INSERT INTO outbox (id, sender, recipients, bcc, body_text) "
            "VALUES (44, 'billing@example.com', 'bob@example.org', "
            "'carol@example.org', 'Invoice 44')");
    messages = claim_all(store, &count);
    CHECK_INT(count, 0);
    CHECK_QUERY("SELECT status, last_error_kind FROM outbox WHERE id = 44",
                "failed suppressed");
    CHECK_QUERY("SELECT count(*) FROM delivery_attempt WHERE outbox_id = 44 "
                "AND outcome = 'failed'", "1");
    outbox_messages_free(messages, count);

    CHECK_CASE("ops remove an address with one DELETE");
    run_sql("DELETE FROM suppression WHERE address = 'bob@example.org'");
    run_sql("INSERT INTO outbox (id, sender, recipients, body_text) "
            "VALUES (45, 'billing@example.com', 'bob@example.org', "
            "'Invoice 45')");
    messages = claim_all(store, &count);
    CHECK_INT(count, 1);
    outbox_messages_free(messages, count);
    outbox_store_close(store);
}

static void held_rows_wait_for_events(void)
{
    outbox_store *store = open_store();
    outbox_message **messages;
    size_t count;

    CHECK_CASE("an unknown outcome writes its recipients as pending");
    run_sql("INSERT INTO outbox (id, sender, recipients, cc, body_text, "
            "reference) VALUES (46, 'billing@example.com', "
            "'erin@example.org', 'frank@example.org', 'Invoice 46', "
            "'INV-46')");
    messages = claim_all(store, &count);
    CHECK_INT(count, 1);
    if (count == 1)
        record_outcome(store, messages[0], OUTBOX_RESULT_UNKNOWN, "", NULL,
                       NULL);
    CHECK_QUERY("SELECT status FROM outbox WHERE id = 46", "held");
    CHECK_QUERY("SELECT recipient, kind, status FROM delivery_recipient "
                "WHERE outbox_id = 46 ORDER BY kind DESC",
                "erin@example.org to pending|frank@example.org cc pending");

    CHECK_CASE("one delivery settles the row, not every recipient");
    {
        outbox_event delivered = event(OUTBOX_EVENT_DELIVERED,
                                       OUTBOX_BOUNCE_NONE, "ev-46", 46, NULL,
                                       "erin@example.org");

        CHECK_INT(record(store, &delivered, 1), 1);
        CHECK_QUERY("SELECT status, delivered_to_all FROM delivery_status "
                    "WHERE id = 46", "delivered 0");
    }
    outbox_messages_free(messages, count);
    outbox_store_close(store);
}

/* Reasons of outbox_stuck that depend on a provider's responses. */
static void stuck_reasons(void)
{
    outbox_store *store = open_store();

    CHECK_CASE("stuck: a row waiting on a quota");
    run_sql("INSERT INTO outbox (id, sender, recipients, body_text, status, "
            "provider, next_attempt_at, updated_at, last_error_kind, "
            "last_error) VALUES (60, 'billing@example.com', "
            "'a@example.org', 'x', 'retrying', 'ses', "
            "datetime('now', '+5 minutes'), datetime('now', '-20 minutes'), "
            "'quota_exceeded', 'Daily message quota exceeded.')");
    CHECK_QUERY("SELECT substr(reason, 1, 49) FROM outbox_stuck "
                "WHERE id = 60",
                "waiting for the provider's limit (quota_exceeded)");

    CHECK_CASE("stuck: a row waiting on a rate limit");
    run_sql("INSERT INTO outbox (id, sender, recipients, body_text, status, "
            "provider, next_attempt_at, updated_at, last_error_kind, "
            "last_error) VALUES (62, 'billing@example.com', "
            "'a@example.org', 'x', 'retrying', 'ses', "
            "datetime('now', '+5 minutes'), datetime('now', '-20 minutes'), "
            "'rate_limited', 'HTTP 429: Maximum sending rate exceeded.')");
    CHECK_QUERY("SELECT substr(reason, 1, 47) FROM outbox_stuck "
                "WHERE id = 62",
                "waiting for the provider's limit (rate_limited)");

    /* A daemon is running, or the row would be listed for that. */
    CHECK_CASE("stuck: a provider paused by any account error");
    run_sql("INSERT INTO daemon_heartbeat (owner, started_at, seen_at) "
            "VALUES ('test', datetime('now'), datetime('now'))");
    run_sql("INSERT INTO outbox (id, sender, recipients, body_text, status, "
            "provider, last_error_kind, last_error) VALUES (61, "
            "'billing@example.com', 'a@example.org', 'x', 'queued', 'ses', "
            "'sending_paused', 'sending is paused')");
    run_sql("INSERT INTO delivery_attempt (outbox_id, attempt, provider, "
            "started_at, finished_at, outcome, error_kind) VALUES "
            "(61, 1, 'ses', datetime('now'), datetime('now'), "
            "'misconfigured', 'sending_paused')");
    CHECK_QUERY("SELECT reason FROM outbox_stuck WHERE id = 61",
                "provider ses is paused: sending is paused");
    outbox_store_close(store);
}

static void inactive_recipients(void)
{
    outbox_store *store = open_store();
    outbox_message **messages;
    size_t count;

    run_sql("UPDATE outbox SET status = 'cancelled' "
            "WHERE status IN ('queued', 'retrying')");
    run_sql("INSERT INTO outbox (id, sender, recipients, body_text) VALUES "
            "(70, 'billing@example.com', 'a@example.net, anna@example.net', "
            "'x')");
    messages = claim_all(store, &count);
    CHECK_CASE("inactive: the refused address only, matched whole");
    CHECK_INT(count, 1);
    if (count == 1)
        record_outcome(store, messages[0], OUTBOX_RESULT_FAILED, "",
                       "inactive_recipient",
                       "HTTP 422: ErrorCode 406: Recipient marked inactive: "
                       "ANNA@example.net.");
    outbox_messages_free(messages, count);
    CHECK_QUERY("SELECT address, reason, outbox_id FROM suppression "
                "WHERE address LIKE '%example.net'",
                "anna@example.net inactive_recipient 70");

    run_sql("INSERT INTO outbox (id, sender, recipients, body_text) VALUES "
            "(71, 'billing@example.com', 'b@example.net, bob@example.net', "
            "'x')");
    messages = claim_all(store, &count);
    CHECK_CASE("inactive: skipped addresses of a sent message");
    CHECK_INT(count, 1);
    if (count == 1)
        record_outcome(store, messages[0], OUTBOX_RESULT_SENT, "pm-71",
                       "inactive_recipients_skipped",
                       "HTTP 200: ErrorCode 0: Message accepted; inactive "
                       "recipients skipped: b@example.net");
    outbox_messages_free(messages, count);
    CHECK_QUERY("SELECT recipient, status FROM delivery_recipient "
                "WHERE outbox_id = 71 ORDER BY recipient",
                "b@example.net suppressed|bob@example.net sent");
    CHECK_QUERY("SELECT status FROM outbox WHERE id = 71", "sent");
    CHECK_QUERY("SELECT address FROM suppression WHERE outbox_id = 71",
                "b@example.net");
    outbox_store_close(store);
}

static void sns_subscriptions(void)
{
    static const char topic[] = "arn:aws:sns:eu-central-1:123456789012:erp";
    outbox_store *store = open_store();
    outbox_sns_subscription subscription = {"ses", topic, "pending", "m-1",
                                            "fetching failed (HTTP 500)"};
    outbox_error err;

    CHECK_CASE("sns: a failed confirmation leaves the topic pending");
    CHECK_INT(outbox_store_record_sns_subscription(store, &err,
                                                   &subscription, now),
              OUTBOX_EOK);
    CHECK_QUERY("SELECT status, message_id, last_error, "
                "coalesce(confirmed_at, 'NULL') FROM sns_subscription",
                "pending m-1 fetching failed (HTTP 500) NULL");

    CHECK_CASE("sns: the resent confirmation succeeds");
    subscription.status = "confirmed";
    subscription.message_id = "m-2";
    subscription.error = NULL;
    CHECK_INT(outbox_store_record_sns_subscription(store, &err,
                                                   &subscription, now),
              OUTBOX_EOK);
    CHECK_QUERY("SELECT status, message_id, coalesce(last_error, 'NULL'), "
                "confirmed_at FROM sns_subscription",
                "confirmed m-2 NULL 2027-01-15 08:00:00");

    CHECK_CASE("sns: an unsubscribe keeps when it was confirmed");
    subscription.status = "unsubscribed";
    subscription.message_id = "m-3";
    CHECK_INT(outbox_store_record_sns_subscription(store, &err,
                                                   &subscription, now + 60),
              OUTBOX_EOK);
    CHECK_QUERY("SELECT count(*), status, confirmed_at, updated_at "
                "FROM sns_subscription",
                "1 unsubscribed 2027-01-15 08:00:00 2027-01-15 08:01:00");

    CHECK_CASE("sns: a status outside the vocabulary is rejected");
    subscription.status = "active";
    CHECK_INT(outbox_store_record_sns_subscription(store, &err,
                                                   &subscription, now),
              OUTBOX_EDATABASE);
    subscription.topic_arn = NULL;
    CHECK_INT(outbox_store_record_sns_subscription(store, &err,
                                                   &subscription, now),
              OUTBOX_EINVAL);
    outbox_store_close(store);
}

int main(void)
{
    if (mkdtemp(folder) == NULL) {
        perror("mkdtemp");
        return 1;
    }
    snprintf(path, sizeof(path), "%s/outbox.db", folder);
    delivered_then_late_events();
    claims_honour_suppression();
    held_rows_wait_for_events();
    stuck_reasons();
    inactive_recipients();
    sns_subscriptions();
    unlink(path);
    rmdir(folder);
    CHECK_DONE();
}
