/*
 * store_events.c - what webhooks tell: events, each recipient's outcome,
 * the message's delivery status, and the suppression list.
 *
 * Each recipient of a message has a row in delivery_recipient once the
 * provider accepted the message (`sent`), once the outcome is unknown
 * (`pending`), or once an event names it, whichever comes first. A claim
 * writes rows only for the recipients it drops as suppressed, so sending
 * a message costs one row write per recipient, not two. A row's status
 * only moves forward, by this rank:
 *
 *   pending 0 < sent 1 < deferred 2 < delivered 3 < bounced, dropped 4
 *     < complained 5;   suppressed (never sent to) is final.
 *
 * The message's status follows its highest-ranked recipient once the
 * message is sent: delivered, then bounced (also for dropped), then
 * complained, so a late "delivered" never hides a bounce. An event that
 * arrives before the daemon recorded the message as sent (providers can be
 * that fast) updates the recipient at once, and the message when the
 * daemon records it as sent. A held message, whose outcome was unknown, is
 * settled by such an event too, and takes the provider's message id from
 * it.
 *
 * A hard bounce or a complaint adds the address to `suppression`. A claim
 * drops suppressed addresses from the message and fails a message that
 * has no recipient left, so the provider is never called for it.
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "outbox_events.h"
#include "store_internal.h"

/* The rank of a recipient or message status, as SQL. %s is the column. */
#define RANK_SQL(column)                                                   \
    "CASE " column " WHEN 'pending' THEN 0 WHEN 'sent' THEN 1 "            \
    "WHEN 'held' THEN 1 "                                                   \
    "WHEN 'deferred' THEN 2 WHEN 'delivered' THEN 3 WHEN 'bounced' THEN 4 " \
    "WHEN 'dropped' THEN 4 WHEN 'complained' THEN 5 ELSE 9 END"

static const char *const recipient_update_sql =
    "INSERT INTO delivery_recipient (outbox_id, recipient, status, detail, "
    "                                updated_at) "
    "VALUES (?1, ?2, ?3, ?4, ?5) "
    "ON CONFLICT (outbox_id, recipient) DO UPDATE "
    "   SET status = excluded.status, detail = excluded.detail, "
    "       updated_at = excluded.updated_at "
    " WHERE " RANK_SQL("excluded.status") " > "
    RANK_SQL("delivery_recipient.status");

/*
 * Moves a sent message to its best recipient's outcome. A held message
 * moves too: the provider's event shows that the request whose outcome
 * was unknown reached it, so the row is settled and leaves outbox_stuck
 * (the attempt row keeps the unknown outcome).
 */
static const char *const message_update_sql =
    "UPDATE outbox SET status = best.status, updated_at = ?2, "
    "       sent_at = coalesce(sent_at, ?2), "
    "       last_error_kind = CASE WHEN outbox.status = 'held' THEN NULL "
    "                              ELSE last_error_kind END, "
    "       last_error = CASE WHEN outbox.status = 'held' THEN NULL "
    "                         ELSE last_error END "
    "  FROM (SELECT CASE max(" RANK_SQL("r.status") ") "
    "                 WHEN 3 THEN 'delivered' WHEN 4 THEN 'bounced' "
    "                 WHEN 5 THEN 'complained' END AS status "
    "          FROM delivery_recipient AS r "
    "         WHERE r.outbox_id = ?1 AND r.status <> 'suppressed') AS best "
    " WHERE outbox.id = ?1 AND best.status IS NOT NULL "
    "   AND outbox.status IN ('sent', 'held', 'delivered', 'bounced', "
    "                         'complained') "
    "   AND " RANK_SQL("best.status") " > " RANK_SQL("outbox.status");

/* Returns the recipient status an event sets, or NULL if it sets none. */
static const char *recipient_status(const outbox_event *event)
{
    switch (event->type) {
    case OUTBOX_EVENT_DELIVERED: return "delivered";
    case OUTBOX_EVENT_DEFERRED: return "deferred";
    case OUTBOX_EVENT_BOUNCED:
        return event->bounce == OUTBOX_BOUNCE_HARD ? "bounced" : "deferred";
    case OUTBOX_EVENT_DROPPED: return "dropped";
    case OUTBOX_EVENT_COMPLAINED: return "complained";
    default: return NULL;
    }
}

/* Returns the suppression reason an event gives, or NULL. */
static const char *suppression_reason(const outbox_event *event)
{
    if (event->type == OUTBOX_EVENT_COMPLAINED)
        return "complaint";

    /* Each provider drops later messages to an unsubscribed address
     * itself (Postmark's SuppressSending, SendGrid's and Mailgun's
     * unsubscribes), so sending them would only waste attempts. */
    if (event->type == OUTBOX_EVENT_UNSUBSCRIBED)
        return "unsubscribe";
    if (event->type == OUTBOX_EVENT_BOUNCED
        && event->bounce == OUTBOX_BOUNCE_HARD)
        return "hard_bounce";
    return NULL;
}

outbox_err outbox__store_update_message_status(outbox_store *store,
                                               outbox_error *err,
                                               int64_t outbox_id, int64_t now)
{
    sqlite3_stmt *stmt = NULL;
    outbox_err rc = outbox__store_prepare(store, &stmt, err,
                                          message_update_sql);

    if (rc != OUTBOX_EOK)
        return rc;
    sqlite3_bind_int64(stmt, 1, outbox_id);
    outbox__bind_time(stmt, 2, now);
    if (sqlite3_step(stmt) != SQLITE_DONE)
        rc = outbox__store_fail(store, err, OUTBOX_EDATABASE,
                                "updating a message's delivery status");
    outbox__store_finish(stmt);
    return rc;
}

outbox_err outbox__store_set_recipient(outbox_store *store, outbox_error *err,
                                       int64_t outbox_id,
                                       const char *recipient,
                                       const char *status, const char *detail,
                                       int64_t now)
{
    sqlite3_stmt *stmt = NULL;
    outbox_err rc = outbox__store_prepare(store, &stmt, err,
                                          recipient_update_sql);

    if (rc != OUTBOX_EOK)
        return rc;
    sqlite3_bind_int64(stmt, 1, outbox_id);
    outbox__bind_text(stmt, 2, recipient);
    outbox__bind_text(stmt, 3, status);
    outbox__bind_text(stmt, 4, detail);
    outbox__bind_time(stmt, 5, now);
    if (sqlite3_step(stmt) != SQLITE_DONE)
        rc = outbox__store_fail(store, err, OUTBOX_EDATABASE,
                                "updating a recipient's status");
    outbox__store_finish(stmt);
    return rc;
}

outbox_err outbox__store_suppress(outbox_store *store, outbox_error *err,
                                  const char *address, const char *reason,
                                  const char *provider, const char *detail,
                                  int64_t outbox_id, int64_t now)
{
    sqlite3_stmt *stmt = NULL;
    outbox_err rc = outbox__store_prepare(
        store, &stmt, err,
        "INSERT INTO suppression (address, reason, provider, detail, "
        "                         outbox_id, created_at) "
        "VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (address) DO NOTHING");

    if (rc != OUTBOX_EOK)
        return rc;
    outbox__bind_text(stmt, 1, address);
    outbox__bind_text(stmt, 2, reason);
    outbox__bind_text(stmt, 3, provider);
    outbox__bind_text(stmt, 4, detail);
    if (outbox_id > 0)
        sqlite3_bind_int64(stmt, 5, outbox_id);
    outbox__bind_time(stmt, 6, now);
    if (sqlite3_step(stmt) != SQLITE_DONE)
        rc = outbox__store_fail(store, err, OUTBOX_EDATABASE,
                                "adding an address to the suppression list");
    else if (sqlite3_changes(store->db) > 0)
        outbox_log(&store->options.logger, OUTBOX_LOG_INFO,
                   "id=%lld event=suppressed reason=%s provider=%s",
                   (long long)outbox_id, reason, provider ? provider : "-");
    outbox__store_finish(stmt);
    return rc;
}

/* Finds the row an event is about: by the echoed outbox id first, then by
 * the provider's message id. *outbox_id is 0 when nothing matches. */
static outbox_err match_event(outbox_store *store, outbox_error *err,
                              const outbox_event *event, int64_t *outbox_id)
{
    sqlite3_stmt *stmt = NULL;
    outbox_err rc;
    int step;

    *outbox_id = 0;
    if (event->outbox_id <= 0 && event->provider_message_id == NULL)
        return OUTBOX_EOK;
    rc = outbox__store_prepare(
        store, &stmt, err,
        "SELECT id FROM outbox WHERE id = ?1 "
        "UNION ALL "
        "SELECT id FROM outbox WHERE ?2 IS NOT NULL "
        "   AND provider_message_id = ?2 "
        "LIMIT 1");
    if (rc != OUTBOX_EOK)
        return rc;
    sqlite3_bind_int64(stmt, 1, event->outbox_id);
    outbox__bind_text(stmt, 2, event->provider_message_id);
    step = sqlite3_step(stmt);
    if (step == SQLITE_ROW)
        *outbox_id = sqlite3_column_int64(stmt, 0);
    else if (step != SQLITE_DONE)
        rc = outbox__store_fail(store, err, OUTBOX_EDATABASE,
                                "matching an event to its message");
    outbox__store_finish(stmt);
    return rc;
}

/* Inserts the event unless the provider sent it before. *inserted is
 * set when it is new. */
static outbox_err insert_event(outbox_store *store, outbox_error *err,
                               const char *provider,
                               const outbox_event *event, int64_t outbox_id,
                               int64_t now, bool *inserted)
{
    sqlite3_stmt *stmt = NULL;
    outbox_err rc = outbox__store_prepare(
        store, &stmt, err,
        "INSERT INTO delivery_event (outbox_id, provider, event_type, "
        "       bounce_type, provider_event, recipient, occurred_at, reason, "
        "       event_id, provider_message_id, raw, received_at, tags) "
        "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13) "
        "ON CONFLICT (provider, event_id) DO NOTHING");

    *inserted = false;
    if (rc != OUTBOX_EOK)
        return rc;
    if (outbox_id > 0)
        sqlite3_bind_int64(stmt, 1, outbox_id);
    outbox__bind_text(stmt, 2, provider);
    outbox__bind_text(stmt, 3, outbox_event_type_name(event->type));
    outbox__bind_text(stmt, 4, outbox_bounce_kind_name(event->bounce));
    outbox__bind_text(stmt, 5, event->provider_event);
    outbox__bind_text(stmt, 6, event->recipient);
    if (event->occurred_at > 0)
        outbox__bind_time(stmt, 7, event->occurred_at);
    outbox__bind_text(stmt, 8, event->reason);
    outbox__bind_text(stmt, 9, event->event_id);
    outbox__bind_text(stmt, 10, event->provider_message_id);
    outbox__bind_text(stmt, 11, event->raw != NULL ? event->raw : "{}");
    outbox__bind_time(stmt, 12, now);
    outbox__bind_text(stmt, 13, event->tags);
    if (sqlite3_step(stmt) != SQLITE_DONE)
        rc = outbox__store_fail(store, err, OUTBOX_EDATABASE,
                                "storing a webhook event");
    else
        *inserted = sqlite3_changes(store->db) > 0;
    outbox__store_finish(stmt);
    return rc;
}

/* Fills the provider's message id of a row that has none: a held row,
 * whose sent outcome was lost, learns it from the event. */
static outbox_err fill_provider_message_id(outbox_store *store,
                                           outbox_error *err,
                                           int64_t outbox_id, const char *id)
{
    sqlite3_stmt *stmt = NULL;
    outbox_err rc;

    if (id == NULL)
        return OUTBOX_EOK;
    rc = outbox__store_prepare(
        store, &stmt, err,
        "UPDATE outbox SET provider_message_id = ?2 "
        " WHERE id = ?1 AND provider_message_id IS NULL");
    if (rc != OUTBOX_EOK)
        return rc;
    sqlite3_bind_int64(stmt, 1, outbox_id);
    outbox__bind_text(stmt, 2, id);
    if (sqlite3_step(stmt) != SQLITE_DONE)
        rc = outbox__store_fail(store, err, OUTBOX_EDATABASE,
                                "storing the provider's message id");
    outbox__store_finish(stmt);
    return rc;
}

/* Removes the address from the suppression list where this provider put
 * it, because the provider sends to it again. Rows that ops or another
 * provider added stay. */
static outbox_err unsuppress(outbox_store *store, outbox_error *err,
                             const char *address, const char *provider,
                             int64_t outbox_id)
{
    sqlite3_stmt *stmt = NULL;
    outbox_err rc = outbox__store_prepare(
        store, &stmt, err,
        "DELETE FROM suppression WHERE address = ?1 AND provider = ?2");

    if (rc != OUTBOX_EOK)
        return rc;
    outbox__bind_text(stmt, 1, address);
    outbox__bind_text(stmt, 2, provider);
    if (sqlite3_step(stmt) != SQLITE_DONE)
        rc = outbox__store_fail(store, err, OUTBOX_EDATABASE,
                                "removing an address from the suppression "
                                "list");
    else if (sqlite3_changes(store->db) > 0)
        outbox_log(&store->options.logger, OUTBOX_LOG_INFO,
                   "id=%lld event=unsuppressed provider=%s",
                   (long long)outbox_id, provider);
    outbox__store_finish(stmt);
    return rc;
}

/* Stores one event and applies it to the recipient, the message and the
 * suppression list. */
static outbox_err apply_event(outbox_store *store, outbox_error *err,
                              const char *provider, const outbox_event *event,
                              int64_t now, size_t *stored)
{
    const char *status = recipient_status(event);
    const char *reason = suppression_reason(event);
    int64_t outbox_id = 0;
    bool inserted = false;
    outbox_err rc = match_event(store, err, event, &outbox_id);

    if (rc == OUTBOX_EOK)
        rc = insert_event(store, err, provider, event, outbox_id, now,
                          &inserted);
    if (rc != OUTBOX_EOK || !inserted)
        return rc;
    (*stored)++;
    outbox_log(&store->options.logger, OUTBOX_LOG_INFO,
               "id=%lld event=%s%s%s provider=%s matched=%s",
               (long long)outbox_id, outbox_event_type_name(event->type),
               event->bounce != OUTBOX_BOUNCE_NONE ? "/" : "",
               event->bounce != OUTBOX_BOUNCE_NONE
                   ? outbox_bounce_kind_name(event->bounce) : "",
               provider, outbox_id > 0 ? "yes" : "no");

    if (reason != NULL && event->recipient != NULL)
        rc = outbox__store_suppress(store, err, event->recipient, reason,
                                    provider, event->reason, outbox_id, now);
    if (event->type == OUTBOX_EVENT_RESUBSCRIBED && event->recipient != NULL)
        rc = unsuppress(store, err, event->recipient, provider, outbox_id);
    if (rc != OUTBOX_EOK || outbox_id == 0 || status == NULL
        || event->recipient == NULL)
        return rc;
    rc = outbox__store_set_recipient(store, err, outbox_id, event->recipient,
                                     status, event->reason, now);
    if (rc == OUTBOX_EOK)
        rc = fill_provider_message_id(store, err, outbox_id,
                                      event->provider_message_id);
    if (rc == OUTBOX_EOK)
        rc = outbox__store_update_message_status(store, err, outbox_id, now);
    return rc;
}

typedef struct events_job {
    const char *provider;
    const outbox_event *events;
    size_t count;
    int64_t now;
    size_t stored;
} events_job;

static outbox_err record_events(outbox_store *store, void *context,
                                outbox_error *err)
{
    events_job *job = context;
    outbox_err rc = OUTBOX_EOK;

    job->stored = 0;
    for (size_t i = 0; i < job->count && rc == OUTBOX_EOK; i++)
        rc = apply_event(store, err, job->provider, &job->events[i],
                         job->now, &job->stored);
    return rc;
}

outbox_err outbox_store_record_events(outbox_store *store, outbox_error *err,
                                      const char *provider,
                                      const outbox_event *events,
                                      size_t count, int64_t now,
                                      size_t *stored)
{
    events_job job = {provider, events, count, now, 0};
    outbox_err rc = outbox__store_transaction(store, err, false,
                                              record_events, &job);

    if (stored != NULL)
        *stored = rc == OUTBOX_EOK ? job.stored : 0;
    return rc;
}

/* Looks address up in the suppression list; *reason receives a copy of
 * "reason since created_at" (malloc'd), or NULL when it is not there. */
static outbox_err find_suppression(outbox_store *store, outbox_error *err,
                                   const char *address, char **reason)
{
    sqlite3_stmt *stmt = NULL;
    outbox_err rc = outbox__store_prepare(
        store, &stmt, err,
        "SELECT reason || ' since ' || created_at FROM suppression "
        " WHERE address = ?1");
    int step;

    *reason = NULL;
    if (rc != OUTBOX_EOK)
        return rc;
    outbox__bind_text(stmt, 1, address);
    step = sqlite3_step(stmt);
    if (step == SQLITE_ROW) {
        *reason = outbox__strdup((const char *)sqlite3_column_text(stmt, 0));
        if (*reason == NULL)
            rc = outbox_error_set(err, OUTBOX_ENOMEM, "internal",
                                  "out of memory reading the suppression "
                                  "list");
    } else if (step != SQLITE_DONE) {
        rc = outbox__store_fail(store, err, OUTBOX_EDATABASE,
                                "reading the suppression list");
    }
    outbox__store_finish(stmt);
    return rc;
}

/* Drops the suppressed addresses of one list, recording each. */
static outbox_err drop_from_list(outbox_store *store, outbox_error *err,
                                 outbox_message *message,
                                 outbox_address_list *list, const char *kind,
                                 int64_t now)
{
    size_t kept = 0;
    outbox_err rc = OUTBOX_EOK;

    for (size_t i = 0; i < list->count; i++) {
        outbox_address *address = &list->items[i];
        char *reason = NULL;

        if (rc == OUTBOX_EOK)
            rc = find_suppression(store, err, address->email, &reason);
        if (rc == OUTBOX_EOK && reason != NULL) {
            char quoted[OUTBOX_LOG_QUOTED_SIZE];

            outbox_log(&store->options.logger, OUTBOX_LOG_INFO,
                       "id=%lld event=recipient_suppressed kind=%s reason=%s",
                       (long long)message->id, kind,
                       outbox_log_quote(quoted, sizeof(quoted), reason));
            rc = outbox__store_set_recipient(store, err, message->id,
                                             address->email, "suppressed",
                                             reason, now);
            free(reason);
            free(address->name);
            free(address->email);
            continue;
        }
        list->items[kept++] = *address;
    }
    list->count = kept;
    return rc;
}

outbox_err outbox__store_drop_suppressed(outbox_store *store,
                                         outbox_error *err,
                                         outbox_message *message, int64_t now,
                                         outbox_error *why)
{
    size_t before = outbox_message_recipient_count(message);
    outbox_err rc = drop_from_list(store, err, message, &message->to, "to",
                                   now);

    if (rc == OUTBOX_EOK)
        rc = drop_from_list(store, err, message, &message->cc, "cc", now);
    if (rc == OUTBOX_EOK)
        rc = drop_from_list(store, err, message, &message->bcc, "bcc", now);
    if (rc == OUTBOX_EOK && before > 0
        && outbox_message_recipient_count(message) == 0)
        outbox_error_set(why, OUTBOX_EINVAL, "suppressed",
                         "recipients: every recipient is on the suppression "
                         "list; see delivery_recipient for each reason, and "
                         "DELETE the address from suppression to send to it "
                         "again");
    return rc;
}

/* Binds the five parameters of both statements of write_recipient. */
static void bind_recipient(sqlite3_stmt *stmt, int64_t outbox_id,
                           const char *recipient, int size, const char *kind,
                           const char *status, int64_t now)
{
    sqlite3_bind_int64(stmt, 1, outbox_id);
    sqlite3_bind_text(stmt, 2, recipient, size, SQLITE_STATIC);
    outbox__bind_text(stmt, 3, kind);
    outbox__bind_text(stmt, 4, status);
    outbox__bind_time(stmt, 5, now);
}

/*
 * Writes one recipient of an outcome at status. Returns in *earlier whether
 * a row was there already: an event came first, or an earlier attempt's
 * outcome was unknown. That row keeps a higher status, and takes the kind
 * and the spelling of the address from the message.
 */
static outbox_err write_recipient(outbox_store *store, outbox_error *err,
                                  int64_t outbox_id, const char *recipient,
                                  int size, const char *kind,
                                  const char *status, int64_t now,
                                  bool *earlier)
{
    sqlite3_stmt *insert = NULL;
    sqlite3_stmt *update = NULL;
    bool inserted = false;
    outbox_err rc = outbox__store_prepare(
        store, &insert, err,
        "INSERT INTO delivery_recipient (outbox_id, recipient, kind, status, "
        "                                updated_at) "
        "VALUES (?1, ?2, ?3, ?4, ?5) "
        "ON CONFLICT (outbox_id, recipient) DO NOTHING");

    if (rc != OUTBOX_EOK)
        return rc;
    bind_recipient(insert, outbox_id, recipient, size, kind, status, now);
    if (sqlite3_step(insert) != SQLITE_DONE)
        rc = outbox__store_fail(store, err, OUTBOX_EDATABASE,
                                "adding a message's recipient");
    else
        inserted = sqlite3_changes(store->db) > 0;
    outbox__store_finish(insert);
    if (rc != OUTBOX_EOK || inserted)
        return rc;

    *earlier = true;
    rc = outbox__store_prepare(
        store, &update, err,
        "UPDATE delivery_recipient SET recipient = ?2, "
        "       kind = coalesce(kind, ?3), "
        "       status = CASE WHEN " RANK_SQL("?4") " > "
        RANK_SQL("status") " THEN ?4 ELSE status END, updated_at = ?5 "
        " WHERE outbox_id = ?1 AND recipient = ?2 "
        "   AND status <> 'suppressed'");
    if (rc != OUTBOX_EOK)
        return rc;
    bind_recipient(update, outbox_id, recipient, size, kind, status, now);
    if (sqlite3_step(update) != SQLITE_DONE)
        rc = outbox__store_fail(store, err, OUTBOX_EDATABASE,
                                "updating a message's recipient");
    outbox__store_finish(update);
    return rc;
}

/* Returns the delivery_recipient kind for a line's first character. */
static const char *recipient_kind(char code)
{
    switch (code) {
    case 't': return "to";
    case 'c': return "cc";
    case 'b': return "bcc";
    default: return NULL;
    }
}

/* What each_recipient calls for one recipient: address is size bytes,
 * not NUL-terminated. */
typedef outbox_err (*recipient_fn)(outbox_store *store, outbox_error *err,
                                   const outbox_outcome *outcome,
                                   const char *kind, const char *address,
                                   int size, void *context);

/* Calls fn for each line of an outcome's recipients, stopping at an
 * error. */
static outbox_err each_recipient(outbox_store *store, outbox_error *err,
                                 const outbox_outcome *outcome,
                                 recipient_fn fn, void *context)
{
    const char *line = outcome->recipients;
    outbox_err rc = OUTBOX_EOK;

    while (rc == OUTBOX_EOK && line != NULL && line[0] != '\0') {
        const char *end = strchr(line, '\n');
        size_t size = end != NULL ? (size_t)(end - line) : strlen(line);

        if (size >= 2 && size <= INT_MAX)
            rc = fn(store, err, outcome, recipient_kind(line[0]), line + 1,
                    (int)size - 1, context);
        line += size;
        if (*line == '\n')
            line++;
    }
    return rc;
}

/* Maximum address length: a local part of 64 bytes, "@", a domain of 253. */
#define ADDRESS_MAX (64 + 1 + 253)

/* True for a character that may appear in an email address. */
static bool is_address_char(char c)
{
    /* strchr finds the terminating NUL too, so '\0' is ruled out first.
     * A negative char is a byte of UTF-8. */
    return c != '\0'
           && ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
               || (c >= '0' && c <= '9') || c < 0
               || strchr("!#$%&'*+-/=?^_`{|}~.@", c) != NULL);
}

/*
 * True if text names the size-byte address as a whole, in any case of
 * ASCII letters: "a@example.org" is not named by "anna@example.org", but
 * is by "skipped: a@example.org." (the period ends the sentence).
 */
static bool text_names_address(const char *text, const char *address,
                               int size)
{
    for (const char *at = text; text != NULL && *at != '\0'; at++) {
        const char *after = at + size;

        if ((at > text && is_address_char(at[-1]))
            || outbox__strncasecmp(at, address, (size_t)size) != 0)
            continue;
        if (*after == '.')
            after++;
        if (!is_address_char(*after))
            return true;
    }
    return false;
}

typedef struct recipients_write {
    const char *status;
    const char *skipped;        /* a provider's note of skipped addresses */
    bool earlier;
} recipients_write;

static outbox_err write_one(outbox_store *store, outbox_error *err,
                            const outbox_outcome *outcome, const char *kind,
                            const char *address, int size, void *context)
{
    recipients_write *write = context;
    const char *status = write->status;

    if (write->skipped != NULL
        && text_names_address(write->skipped, address, size))
        status = "suppressed";
    return write_recipient(store, err, outcome->id, address, size, kind,
                           status, outcome->finished_at, &write->earlier);
}

outbox_err outbox__store_write_recipients(outbox_store *store,
                                          outbox_error *err,
                                          const outbox_outcome *outcome,
                                          const char *status)
{
    recipients_write write = {status, NULL, false};
    outbox_err rc;

    if (strcmp(outcome->result.error.kind, "inactive_recipients_skipped") == 0)
        write.skipped = outcome->result.error.text;
    rc = each_recipient(store, err, outcome, write_one, &write);

    /* Events that arrived before this record count now. */
    if (rc == OUTBOX_EOK && write.earlier)
        rc = outbox__store_update_message_status(store, err, outcome->id,
                                                 outcome->finished_at);
    return rc;
}

static outbox_err suppress_if_named(outbox_store *store, outbox_error *err,
                                    const outbox_outcome *outcome,
                                    const char *kind, const char *address,
                                    int size, void *context)
{
    char copy[ADDRESS_MAX + 1];
    outbox_err rc;

    (void)kind;
    if (size >= (int)sizeof(copy)
        || !text_names_address(outcome->result.error.text, address, size))
        return OUTBOX_EOK;
    memcpy(copy, address, (size_t)size);
    copy[size] = '\0';
    rc = outbox__store_suppress(store, err, copy, "inactive_recipient",
                                outcome->provider, outcome->result.error.text,
                                outcome->id, outcome->finished_at);
    if (rc == OUTBOX_EOK && sqlite3_changes(store->db) > 0)
        (*(int *)context)++;
    return rc;
}

outbox_err outbox__store_suppress_named(outbox_store *store, outbox_error *err,
                                        const outbox_outcome *outcome)
{
    int added = 0;
    outbox_err rc = each_recipient(store, err, outcome, suppress_if_named,
                                   &added);

    if (rc == OUTBOX_EOK && added > 0)
        outbox_log(&store->options.logger, OUTBOX_LOG_INFO,
                   "id=%lld event=suppressed reason=inactive_recipient "
                   "addresses=%d provider=%s", (long long)outcome->id, added,
                   outcome->provider);
    return rc;
}
