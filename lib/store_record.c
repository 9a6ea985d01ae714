/*
 * store_record.c - the end of each attempt: one function per state change.
 *
 * The states of a message, as the daemon moves them:
 *
 *   queued --claim--> sending --sent--> sent
 *                        |--retry-----> retrying --due--> (claim again)
 *                        |--failed----> failed   (permanent, or gave up)
 *                        |--unknown---> held     (a person decides)
 *                        '--misconfigured--> queued (the provider rests)
 *
 * Every move below checks that the row is still `sending` under this
 * daemon's lease, writes the attempt row in the same transaction, and logs
 * one line. A row that upkeep already turned `held` (this daemon's lease
 * expired while the request was out) still takes a late sent, failed or
 * retry result: the provider's response is better evidence than the guess.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "store_internal.h"

/* The outbox columns one move writes, bound to the update below. */
typedef struct move {
    const char *status;
    int64_t next_attempt_at;     /* 0 writes NULL */
    const char *error_kind;      /* NULL clears last_error_kind */
    const char *error;
} move;

static const char *const move_sql =
    "UPDATE outbox SET status = ?2, "
    "       next_attempt_at = ?3, last_error_kind = ?4, last_error = ?5, "
    "       provider_message_id = coalesce(?6, provider_message_id), "
    "       sent_at = CASE WHEN ?2 = 'sent' THEN ?7 ELSE sent_at END, "
    "       message_id = coalesce(message_id, ?10, (SELECT message_id "
    "           FROM delivery_attempt WHERE outbox_id = ?1 "
    "            AND attempt = ?9)), "
    "       lease_owner = NULL, lease_until = NULL, updated_at = ?7 "
    " WHERE id = ?1 AND attempts = ?9 AND lease_owner = ?8 "
    "   AND status IN ('sending', 'held')";

static const char *const attempt_sql =
    "UPDATE delivery_attempt SET finished_at = ?3, status_code = ?4, "
    "       outcome = ?5, error_kind = ?6, error = ?7, "
    "       provider_message_id = ?8, counted = ?9 "
    " WHERE outbox_id = ?1 AND attempt = ?2";

typedef struct record_job {
    const outbox_outcome *outcomes;
    size_t count;
    sqlite3_stmt *move;
    sqlite3_stmt *attempt;
    sqlite3_stmt *failures;
} record_job;

static const char *nonempty(const char *text)
{
    return text != NULL && text[0] != '\0' ? text : NULL;
}

static outbox_err write_attempt(outbox_store *store, outbox_error *err,
                                record_job *job,
                                const outbox_outcome *outcome)
{
    const outbox_result *result = &outcome->result;
    sqlite3_stmt *stmt = job->attempt;
    outbox_err rc = OUTBOX_EOK;

    sqlite3_bind_int64(stmt, 1, outcome->id);
    sqlite3_bind_int(stmt, 2, outcome->attempt);
    outbox__bind_time(stmt, 3, outcome->finished_at);
    if (result->status > 0)
        sqlite3_bind_int64(stmt, 4, result->status);
    else
        sqlite3_bind_null(stmt, 4);
    outbox__bind_text(stmt, 5, outbox_result_kind_name(result->kind));
    outbox__bind_text(stmt, 6, nonempty(result->error.kind));
    outbox__bind_text(stmt, 7, nonempty(result->error.text));
    outbox__bind_text(stmt, 8, nonempty(result->provider_message_id));
    sqlite3_bind_int(stmt, 9, result->counts_as_failure ? 1 : 0);
    if (sqlite3_step(stmt) != SQLITE_DONE)
        rc = outbox__store_fail(store, err, OUTBOX_EDATABASE,
                                "recording an attempt");
    sqlite3_reset(stmt);
    return rc;
}

static outbox_err write_move(outbox_store *store, outbox_error *err,
                             record_job *job, const outbox_outcome *outcome,
                             const move *to, bool *applied)
{
    sqlite3_stmt *stmt = job->move;
    outbox_err rc = OUTBOX_EOK;

    sqlite3_bind_int64(stmt, 1, outcome->id);
    outbox__bind_text(stmt, 2, to->status);
    if (to->next_attempt_at > 0)
        outbox__bind_time(stmt, 3, to->next_attempt_at);
    else
        sqlite3_bind_null(stmt, 3);
    outbox__bind_text(stmt, 4, to->error_kind);
    outbox__bind_text(stmt, 5, to->error);
    outbox__bind_text(stmt, 6,
                      nonempty(outcome->result.provider_message_id));
    outbox__bind_time(stmt, 7, outcome->finished_at);
    outbox__bind_text(stmt, 8, store->owner);
    sqlite3_bind_int(stmt, 9, outcome->attempt);
    outbox__bind_text(stmt, 10, outcome->message_id);
    if (sqlite3_step(stmt) != SQLITE_DONE)
        rc = outbox__store_fail(store, err, OUTBOX_EDATABASE,
                                "recording a status");
    *applied = sqlite3_changes(store->db) == 1;
    sqlite3_reset(stmt);
    return rc;
}

static outbox_err count_failures(outbox_store *store, outbox_error *err,
                                 record_job *job,
                                 const outbox_outcome *outcome, int *failures)
{
    sqlite3_stmt *stmt = job->failures;
    outbox_err rc = OUTBOX_EOK;

    sqlite3_bind_int64(stmt, 1, outcome->id);
    sqlite3_bind_int(stmt, 2, outcome->attempt);
    if (sqlite3_step(stmt) == SQLITE_ROW)
        *failures = sqlite3_column_int(stmt, 0);
    else
        rc = outbox__store_fail(store, err, OUTBOX_EDATABASE,
                                "counting failed attempts");
    sqlite3_reset(stmt);
    return rc;
}

/* Works out the move for a retry or misconfigured result. */
static outbox_err plan_retry(outbox_store *store, outbox_error *err,
                             record_job *job, const outbox_outcome *outcome,
                             move *to, char *reason, size_t reason_size)
{
    const outbox_result *result = &outcome->result;
    outbox_retry_decision decision;
    int failures = 0;
    outbox_err rc = count_failures(store, err, job, outcome, &failures);

    if (rc != OUTBOX_EOK)
        return rc;
    outbox_retry_decide(&decision, &store->options.retry, result, failures,
                        outcome->created_at, outcome->finished_at,
                        outbox__store_random(store));
    if (decision.capped)
        outbox_log(&store->options.logger, OUTBOX_LOG_WARN,
                   "id=%lld provider=%s retry_after=%llds capped_to=%llds",
                   (long long)outcome->id, outcome->provider,
                   (long long)result->retry_after,
                   (long long)store->options.retry.max_retry_after);
    if (decision.give_up) {
        snprintf(reason, reason_size, "%s; last error: %s", decision.reason,
                 result->error.text);
        to->status = "failed";
        to->error_kind = "retries_exhausted";
        to->error = reason;
        return OUTBOX_EOK;
    }
    to->status = result->kind == OUTBOX_RESULT_MISCONFIGURED ? "queued"
                                                             : "retrying";
    to->next_attempt_at = decision.next_attempt_at;
    return OUTBOX_EOK;
}

static void log_move(outbox_store *store, const outbox_outcome *outcome,
                     const move *to, bool applied)
{
    const outbox_result *result = &outcome->result;
    char next[OUTBOX_TIME_TEXT_SIZE] = "-";
    char quoted[OUTBOX_LOG_QUOTED_SIZE];

    if (to->next_attempt_at > 0)
        outbox_time_format(next, to->next_attempt_at);
    if (!applied) {
        outbox_log(&store->options.logger, OUTBOX_LOG_ERROR,
                   "id=%lld attempt=%d provider=%s outcome=%s "
                   "status_code=%ld error=\"lease lost: another daemon "
                   "resolved the row; the attempt row keeps the outcome\"",
                   (long long)outcome->id, outcome->attempt,
                   outcome->provider, outbox_result_kind_name(result->kind),
                   result->status);
        return;
    }
    outbox_log(&store->options.logger,
               result->kind == OUTBOX_RESULT_SENT ? OUTBOX_LOG_INFO
                                                  : OUTBOX_LOG_WARN,
               "id=%lld attempt=%d provider=%s status=%s status_code=%ld "
               "provider_id=%s next_attempt_at=\"%s\" kind=%s error=%s",
               (long long)outcome->id, outcome->attempt, outcome->provider,
               to->status, result->status,
               result->provider_message_id[0] ? result->provider_message_id
                                              : "-",
               next, to->error_kind ? to->error_kind : "-",
               outbox_log_quote(quoted, sizeof(quoted), to->error));
}

static outbox_err record_one(outbox_store *store, outbox_error *err,
                             record_job *job, const outbox_outcome *outcome)
{
    const outbox_result *result = &outcome->result;
    char reason[OUTBOX_ERROR_TEXT_MAX + 200];
    move to = {NULL, 0, nonempty(result->error.kind),
               nonempty(result->error.text)};
    bool applied = false;
    outbox_err rc = write_attempt(store, err, job, outcome);

    if (rc != OUTBOX_EOK)
        return rc;
    switch (result->kind) {
    case OUTBOX_RESULT_SENT:
        to.status = "sent";
        to.error_kind = NULL;
        to.error = NULL;
        break;
    case OUTBOX_RESULT_FAILED:
        to.status = "failed";
        break;
    case OUTBOX_RESULT_UNKNOWN:
        to.status = "held";
        break;
    case OUTBOX_RESULT_RETRY:
    case OUTBOX_RESULT_MISCONFIGURED:
        rc = plan_retry(store, err, job, outcome, &to, reason,
                        sizeof(reason));
        break;
    }
    if (rc == OUTBOX_EOK)
        rc = write_move(store, err, job, outcome, &to, &applied);
    if (rc == OUTBOX_EOK && applied && result->kind == OUTBOX_RESULT_SENT)
        rc = outbox__store_write_recipients(store, err, outcome, "sent");
    if (rc == OUTBOX_EOK && applied && result->kind == OUTBOX_RESULT_UNKNOWN)
        rc = outbox__store_write_recipients(store, err, outcome, "pending");
    /* The provider refuses these addresses for good: Postmark's 406, or
     * its note of inactive recipients skipped from a sent message. */
    if (rc == OUTBOX_EOK && applied
        && (strcmp(result->error.kind, "inactive_recipient") == 0
            || strcmp(result->error.kind, "inactive_recipients_skipped")
                   == 0))
        rc = outbox__store_suppress_named(store, err, outcome);
    if (rc == OUTBOX_EOK)
        log_move(store, outcome, &to, applied);
    return rc;
}

static outbox_err record(outbox_store *store, void *context,
                         outbox_error *err)
{
    record_job *job = context;
    outbox_err rc = outbox__store_prepare(store, &job->move, err, move_sql);

    if (rc == OUTBOX_EOK)
        rc = outbox__store_prepare(store, &job->attempt, err, attempt_sql);
    if (rc == OUTBOX_EOK)
        rc = outbox__store_prepare(
            store, &job->failures, err,
            "SELECT count(*) FROM delivery_attempt "
            " WHERE outbox_id = ?1 AND attempt < ?2 AND counted = 1");
    for (size_t i = 0; rc == OUTBOX_EOK && i < job->count; i++)
        rc = record_one(store, err, job, &job->outcomes[i]);
    outbox__store_finish(job->move);
    outbox__store_finish(job->attempt);
    outbox__store_finish(job->failures);
    job->move = NULL;
    job->attempt = NULL;
    job->failures = NULL;
    return rc;
}

/* Appends one line per address of list to buf: code, then the address. */
static outbox_err add_recipients(outbox_buf *buf, char code,
                                 const outbox_address_list *list)
{
    outbox_err rc = OUTBOX_EOK;

    for (size_t i = 0; rc == OUTBOX_EOK && i < list->count; i++)
        rc = outbox__buf_printf(buf, "%c%s\n", code, list->items[i].email);
    return rc;
}

outbox_err outbox_outcome_copy_message(outbox_outcome *outcome,
                                       outbox_error *err,
                                       const outbox_message *message)
{
    char *message_id = NULL;
    outbox_buf buf;
    outbox_err rc;

    /* The claim's recipient cap bounds the size. */
    outbox__buf_init(&buf, SIZE_MAX);
    rc = add_recipients(&buf, 't', &message->to);
    if (rc == OUTBOX_EOK)
        rc = add_recipients(&buf, 'c', &message->cc);
    if (rc == OUTBOX_EOK)
        rc = add_recipients(&buf, 'b', &message->bcc);
    if (rc == OUTBOX_EOK && message->message_id != NULL) {
        message_id = outbox__strdup(message->message_id);
        if (message_id == NULL)
            rc = OUTBOX_ENOMEM;
    }
    if (rc != OUTBOX_EOK) {
        outbox__buf_free(&buf);
        return outbox_error_set(err, rc, "internal",
                                "out of memory copying the recipients");
    }
    outbox_outcome_clear(outcome);
    outcome->recipients = outbox__buf_take(&buf, NULL);
    outcome->message_id = message_id;
    return OUTBOX_EOK;
}

void outbox_outcome_clear(outbox_outcome *outcome)
{
    if (outcome == NULL)
        return;
    free(outcome->recipients);
    free(outcome->message_id);
    outcome->recipients = NULL;
    outcome->message_id = NULL;
}

outbox_err outbox_store_record(outbox_store *store, outbox_error *err,
                               const outbox_outcome *outcomes, size_t count)
{
    record_job job = {outcomes, count, NULL, NULL, NULL};

    if (count == 0)
        return OUTBOX_EOK;
    return outbox__store_transaction(store, err, true, record, &job);
}
