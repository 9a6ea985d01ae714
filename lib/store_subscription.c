/*
 * store_subscription.c - the state of each SNS subscription that delivers
 * SES events, for ops to read in sns_subscription.
 */
#include "outbox_events.h"
#include "store_internal.h"

typedef struct subscription_job {
    const outbox_sns_subscription *subscription;
    int64_t now;
} subscription_job;

static outbox_err record_subscription(outbox_store *store, void *context,
                                      outbox_error *err)
{
    const subscription_job *job = context;
    const outbox_sns_subscription *subscription = job->subscription;
    sqlite3_stmt *stmt = NULL;
    outbox_err rc = outbox__store_prepare(
        store, &stmt, err,
        "INSERT INTO sns_subscription (provider, topic_arn, status, "
        "       message_id, last_error, confirmed_at, updated_at) "
        "VALUES (?1, ?2, ?3, ?4, ?5, "
        "        CASE WHEN ?3 = 'confirmed' THEN ?6 END, ?6) "
        "ON CONFLICT (provider, topic_arn) DO UPDATE SET "
        "       status = excluded.status, "
        "       message_id = excluded.message_id, "
        "       last_error = excluded.last_error, "
        "       confirmed_at = coalesce(excluded.confirmed_at, "
        "                               sns_subscription.confirmed_at), "
        "       updated_at = excluded.updated_at");

    if (rc != OUTBOX_EOK)
        return rc;
    outbox__bind_text(stmt, 1, subscription->provider);
    outbox__bind_text(stmt, 2, subscription->topic_arn);
    outbox__bind_text(stmt, 3, subscription->status);
    outbox__bind_text(stmt, 4, subscription->message_id);
    outbox__bind_text(stmt, 5, subscription->error);
    outbox__bind_time(stmt, 6, job->now);
    if (sqlite3_step(stmt) != SQLITE_DONE)
        rc = outbox__store_fail(store, err, OUTBOX_EDATABASE,
                                "recording an SNS subscription");
    outbox__store_finish(stmt);
    return rc;
}

outbox_err outbox_store_record_sns_subscription(
    outbox_store *store, outbox_error *err,
    const outbox_sns_subscription *subscription, int64_t now)
{
    subscription_job job = {subscription, now};

    if (subscription->provider == NULL || subscription->topic_arn == NULL
        || subscription->status == NULL)
        return outbox_error_set(err, OUTBOX_EINVAL, "internal",
                                "an SNS subscription needs a provider, a "
                                "topic and a status");
    return outbox__store_transaction(store, err, false, record_subscription,
                                     &job);
}
