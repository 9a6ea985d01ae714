/*
 * store_claim.c - claiming due rows, and counting what keeps a drain
 * running. Dispatching and giving rows back are in store_dispatch.c.
 *
 * A claim is one UPDATE ... RETURNING inside BEGIN IMMEDIATE, so two daemons
 * on one database can never claim the same row: the second one waits for
 * the write lock and then no longer finds the row due. Each claimed row is
 * checked at once; a row that cannot be sent is failed in the same
 * transaction and never reaches a provider.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store_internal.h"

/* Columns of the claim's RETURNING clause, in order. */
enum claim_column {
    COL_ID,
    COL_ATTEMPTS,
    COL_CREATED_AT,
    COL_PROVIDER,
    COL_SEND_AFTER_VALID,
    COL_SENDER,
    COL_RECIPIENTS,
    COL_CC,
    COL_BCC,
    COL_REPLY_TO,
    COL_SUBJECT,
    COL_BODY_TEXT,
    COL_BODY_HTML,
    COL_MESSAGE_KEY,
    COL_REFERENCE,
    COL_HEADERS,
    COL_METADATA,
    COL_SEND_AFTER,
    COL_MESSAGE_ID,
    COL_TEMPLATE,
    COL_TEMPLATE_DATA,
    COL_COUNT
};

#define FIRST_TEXT_COLUMN COL_PROVIDER

static const char claim_sql[] =
    "UPDATE outbox SET status = 'sending', attempts = attempts + 1, "
    "       lease_owner = :owner, lease_until = :lease_until, "
    "       updated_at = :now "
    " WHERE id IN (SELECT id FROM outbox "
    "               WHERE status IN ('queued', 'retrying') "
    "                 AND next_attempt_at <= :now "
    "                 AND coalesce(provider, :default) NOT IN "
    "                     (SELECT value FROM json_each(:paused)) "
    "               ORDER BY priority DESC, next_attempt_at, id "
    "               LIMIT :limit) "
    "RETURNING id, attempts, created_at, coalesce(provider, :default), "
    "          send_after IS NULL OR (typeof(send_after) = 'text' "
    "                                 AND datetime(send_after) IS NOT NULL), "
    "          sender, recipients, cc, bcc, reply_to, subject, body_text, "
    "          body_html, message_key, reference, headers, metadata, "
    "          send_after, message_id, template, template_data";

/* One claimed row, copied out of the statement before any other runs. */
typedef struct claimed_row {
    int64_t id;
    int attempts;
    bool send_after_valid;
    char *text[COL_COUNT];
    size_t size[COL_COUNT];
} claimed_row;

typedef struct claim_job {
    const outbox_claim_filter *filter;
    size_t limit;
    int64_t now;
    char *paused_json;
    claimed_row *rows;
    size_t row_count;
    outbox_message **messages;
    size_t message_count;
    char random_hex[17];        /* random part of new Message-IDs */
} claim_job;

static void claimed_row_free(claimed_row *row)
{
    for (size_t i = 0; i < COL_COUNT; i++)
        free(row->text[i]);
}

static void claim_job_clear_rows(claim_job *job)
{
    for (size_t i = 0; i < job->row_count; i++)
        claimed_row_free(&job->rows[i]);
    free(job->rows);
    job->rows = NULL;
    job->row_count = 0;
}

static char *paused_to_json(const outbox_claim_filter *filter)
{
    outbox_buf buf;
    bool ok = true;

    outbox__buf_init(&buf, 64 * 1024);
    ok = outbox__buf_puts(&buf, "[") == OUTBOX_EOK;
    for (size_t i = 0; ok && i < filter->paused_count; i++) {
        /* Provider names are [A-Za-z0-9_-], so they need no escaping. */
        ok = outbox__buf_printf(&buf, "%s\"%s\"", i ? "," : "",
                                filter->paused[i])
             == OUTBOX_EOK;
    }
    if (ok)
        ok = outbox__buf_puts(&buf, "]") == OUTBOX_EOK;
    if (!ok) {
        outbox__buf_free(&buf);
        return NULL;
    }
    return outbox__buf_take(&buf, NULL);
}

static outbox_err copy_row(claimed_row *row, sqlite3_stmt *stmt)
{
    memset(row, 0, sizeof(*row));
    row->id = sqlite3_column_int64(stmt, COL_ID);
    row->attempts = sqlite3_column_int(stmt, COL_ATTEMPTS);
    row->send_after_valid = sqlite3_column_int(stmt, COL_SEND_AFTER_VALID);
    row->text[COL_CREATED_AT] =
        outbox__strdup((const char *)sqlite3_column_text(stmt,
                                                         COL_CREATED_AT));
    for (int i = FIRST_TEXT_COLUMN; i < COL_COUNT; i++) {
        const unsigned char *text;

        if (i == COL_SEND_AFTER_VALID
            || sqlite3_column_type(stmt, i) == SQLITE_NULL)
            continue;
        /* Column bytes count after the text conversion, and a body may
         * hold a NUL that the message check must see. */
        text = sqlite3_column_text(stmt, i);
        row->size[i] = (size_t)sqlite3_column_bytes(stmt, i);
        if (text == NULL)
            return OUTBOX_ENOMEM;
        row->text[i] = outbox__strndup((const char *)text, row->size[i]);
        if (row->text[i] == NULL)
            return OUTBOX_ENOMEM;
    }
    return OUTBOX_EOK;
}

static outbox_err run_claim(outbox_store *store, claim_job *job,
                            outbox_error *err)
{
    sqlite3_stmt *stmt = NULL;
    outbox_err rc = outbox__store_prepare(store, &stmt, err, claim_sql);
    size_t capacity = job->limit;
    int step;

    if (rc != OUTBOX_EOK)
        return rc;
    job->rows = calloc(capacity ? capacity : 1, sizeof(*job->rows));
    if (job->rows == NULL) {
        outbox__store_finish(stmt);
        return outbox_error_set(err, OUTBOX_ENOMEM, "internal",
                                "out of memory claiming rows");
    }
    outbox__bind_text(stmt, sqlite3_bind_parameter_index(stmt, ":owner"),
                      store->owner);
    outbox__bind_time(stmt, sqlite3_bind_parameter_index(stmt, ":lease_until"),
                      job->now + store->options.lease_seconds);
    outbox__bind_time(stmt, sqlite3_bind_parameter_index(stmt, ":now"),
                      job->now);
    outbox__bind_text(stmt, sqlite3_bind_parameter_index(stmt, ":default"),
                      job->filter->default_provider);
    outbox__bind_text(stmt, sqlite3_bind_parameter_index(stmt, ":paused"),
                      job->paused_json);
    sqlite3_bind_int64(stmt, sqlite3_bind_parameter_index(stmt, ":limit"),
                       (sqlite3_int64)job->limit);

    while ((step = sqlite3_step(stmt)) == SQLITE_ROW
           && job->row_count < capacity) {
        rc = copy_row(&job->rows[job->row_count++], stmt);
        if (rc != OUTBOX_EOK) {
            outbox_error_set(err, rc, "internal", "out of memory");
            break;
        }
    }
    if (rc == OUTBOX_EOK && step != SQLITE_DONE && step != SQLITE_ROW)
        rc = outbox__store_fail(store, err, OUTBOX_EDATABASE,
                                "claiming due rows");
    outbox__store_finish(stmt);
    return rc;
}

/* Fails one claimed row in the claim's transaction: attempt and status. */
static outbox_err fail_row(outbox_store *store, outbox_error *err,
                           const claimed_row *row, const outbox_error *why,
                           int64_t now)
{
    const char *key = row->text[COL_MESSAGE_KEY];
    char quoted_provider[OUTBOX_LOG_QUOTED_SIZE];
    char quoted_key[OUTBOX_LOG_QUOTED_SIZE];
    char quoted_error[OUTBOX_LOG_QUOTED_SIZE];
    sqlite3_stmt *stmt = NULL;
    outbox_err rc = outbox__store_prepare(
        store, &stmt, err,
        "INSERT INTO delivery_attempt (outbox_id, attempt, provider, "
        "       started_at, finished_at, outcome, error_kind, error, counted)"
        " VALUES (?1, ?2, ?3, ?4, ?4, 'failed', ?5, ?6, 1)");

    if (rc != OUTBOX_EOK)
        return rc;
    sqlite3_bind_int64(stmt, 1, row->id);
    sqlite3_bind_int(stmt, 2, row->attempts);
    outbox__bind_text(stmt, 3, row->text[COL_PROVIDER]);
    outbox__bind_time(stmt, 4, now);
    outbox__bind_text(stmt, 5, why->kind);
    outbox__bind_text(stmt, 6, why->text);
    if (sqlite3_step(stmt) != SQLITE_DONE)
        rc = outbox__store_fail(store, err, OUTBOX_EDATABASE,
                                "recording a failed row");
    outbox__store_finish(stmt);
    if (rc != OUTBOX_EOK)
        return rc;

    rc = outbox__store_prepare(
        store, &stmt, err,
        "UPDATE outbox SET status = 'failed', "
        "       last_error_kind = ?2, last_error = ?3, "
        "       next_attempt_at = NULL, lease_owner = NULL, "
        "       lease_until = NULL, updated_at = ?4 "
        " WHERE id = ?1");
    if (rc != OUTBOX_EOK)
        return rc;
    sqlite3_bind_int64(stmt, 1, row->id);
    outbox__bind_text(stmt, 2, why->kind);
    outbox__bind_text(stmt, 3, why->text);
    outbox__bind_time(stmt, 4, now);
    if (sqlite3_step(stmt) != SQLITE_DONE)
        rc = outbox__store_fail(store, err, OUTBOX_EDATABASE,
                                "recording a failed row");
    outbox__store_finish(stmt);
    outbox_log(&store->options.logger, OUTBOX_LOG_WARN,
               "id=%lld attempt=%d provider=%s key=%s status=failed "
               "kind=%s error=%s",
               (long long)row->id, row->attempts,
               outbox_log_quote(quoted_provider, sizeof(quoted_provider),
                                row->text[COL_PROVIDER]),
               key ? outbox_log_quote(quoted_key, sizeof(quoted_key), key)
                   : "-",
               why->kind,
               outbox_log_quote(quoted_error, sizeof(quoted_error),
                                why->text));
    return rc;
}

static void attachments_free(outbox_attachment *items, size_t count)
{
    for (size_t i = 0; i < count; i++) {
        free(items[i].filename);
        free(items[i].content_type);
        free(items[i].content_id);
        free(items[i].content);
    }
    free(items);
}

static outbox_err load_attachments(outbox_store *store, outbox_error *err,
                                   int64_t id, outbox_attachment **out,
                                   size_t *count)
{
    size_t cap = store->options.limits.max_attachments;
    sqlite3_stmt *stmt = NULL;
    outbox_err rc = outbox__store_prepare(
        store, &stmt, err,
        "SELECT filename, content_type, content, content_id "
        "  FROM outbox_attachment WHERE outbox_id = ?1 ORDER BY id");

    *out = NULL;
    *count = 0;
    if (rc != OUTBOX_EOK)
        return rc;
    sqlite3_bind_int64(stmt, 1, id);
    while (sqlite3_step(stmt) == SQLITE_ROW) {
        outbox_attachment *item;
        const void *blob = sqlite3_column_blob(stmt, 2);
        size_t size = (size_t)sqlite3_column_bytes(stmt, 2);

        if (*count == 0)
            *out = calloc(cap + 1, sizeof(**out));
        if (*out == NULL) {
            rc = OUTBOX_ENOMEM;
            break;
        }
        /* One past the cap is kept, so the message check can report it. */
        if (*count > cap)
            break;
        item = &(*out)[(*count)++];
        item->filename =
            outbox__strdup((const char *)sqlite3_column_text(stmt, 0));
        item->content_type =
            outbox__strdup((const char *)sqlite3_column_text(stmt, 1));
        item->content_id =
            outbox__strdup((const char *)sqlite3_column_text(stmt, 3));
        item->size = size;
        item->content = malloc(size ? size : 1);
        if (item->content == NULL) {
            rc = OUTBOX_ENOMEM;
            break;
        }
        if (size > 0)
            memcpy(item->content, blob, size);
    }
    outbox__store_finish(stmt);
    if (rc != OUTBOX_EOK)
        return outbox_error_set(err, rc, "internal",
                                "out of memory loading attachments");
    return OUTBOX_EOK;
}

static bool provider_configured(const outbox_claim_filter *filter,
                                const char *name)
{
    for (size_t i = 0; i < filter->configured_count; i++) {
        if (strcmp(filter->configured[i], name) == 0)
            return true;
    }
    return false;
}

/*
 * Makes a Message-ID from the row id and the claim's random part. The id
 * keeps the Message-IDs of one claim apart, and the random part keeps them
 * apart from those of other databases and of reused ids, so one draw per
 * claim is enough.
 */
static outbox_err make_message_id(outbox_message *message,
                                  const char *random_hex)
{
    const char *at = strrchr(message->sender.email, '@');
    char id[320];

    snprintf(id, sizeof(id), "outbox.%lld.%s@%s", (long long)message->id,
             random_hex, at ? at + 1 : "localhost");
    message->message_id = outbox__strdup(id);
    return message->message_id ? OUTBOX_EOK : OUTBOX_ENOMEM;
}

/*
 * outbox_row carries these columns as C strings, so a NUL inside one would
 * silently cut the value short. Returns false and fills why if one has a
 * NUL; bodies carry their sizes and are checked by the message build.
 */
static bool columns_free_of_nul(const claimed_row *row, outbox_error *why)
{
    static const struct {
        enum claim_column column;
        const char *field;
    } header_columns[] = {
        {COL_SENDER, "sender"},     {COL_RECIPIENTS, "recipients"},
        {COL_CC, "cc"},             {COL_BCC, "bcc"},
        {COL_REPLY_TO, "reply_to"}, {COL_SUBJECT, "subject"},
        {COL_HEADERS, "headers"},   {COL_METADATA, "metadata"},
        {COL_TEMPLATE, "template"}, {COL_TEMPLATE_DATA, "template_data"},
    };

    for (size_t i = 0; i < sizeof(header_columns) / sizeof(header_columns[0]);
         i++) {
        const char *text = row->text[header_columns[i].column];

        size_t size = row->size[header_columns[i].column];

        if (text != NULL && strlen(text) != size) {
            outbox_error_set(why, OUTBOX_EINVAL, "invalid_header_value",
                             "%s: contains a NUL byte",
                             header_columns[i].field);
            return false;
        }
    }
    return true;
}

/*
 * Checks one claimed row and builds its message. A row that cannot be sent
 * is failed here; *message stays NULL and the claim goes on.
 */
static outbox_err check_row(outbox_store *store, outbox_error *err,
                            const claim_job *job, const claimed_row *claimed,
                            outbox_message **message)
{
    outbox_attachment *attachments = NULL;
    size_t attachment_count = 0;
    outbox_error why = {{0}, {0}};
    outbox_row row;
    int64_t created_at = job->now;
    outbox_err rc;

    *message = NULL;
    if (!provider_configured(job->filter, claimed->text[COL_PROVIDER])) {
        outbox_error_set(&why, OUTBOX_EINVAL, "provider_not_configured",
                         "provider: \"%s\" is not a configured provider",
                         claimed->text[COL_PROVIDER]);
        return fail_row(store, err, claimed, &why, job->now);
    }
    if (!claimed->send_after_valid) {
        outbox_error_set(&why, OUTBOX_EINVAL, "invalid_send_after",
                         "send_after: \"%.60s\" is not a date; write UTC as "
                         "YYYY-MM-DD HH:MM:SS or ISO 8601 with an offset",
                         claimed->text[COL_SEND_AFTER]
                             ? claimed->text[COL_SEND_AFTER]
                             : "(a number)");
        return fail_row(store, err, claimed, &why, job->now);
    }
    if (!columns_free_of_nul(claimed, &why))
        return fail_row(store, err, claimed, &why, job->now);
    rc = load_attachments(store, err, claimed->id, &attachments,
                          &attachment_count);
    if (rc != OUTBOX_EOK)
        return rc;

    outbox_time_parse(&created_at, claimed->text[COL_CREATED_AT]);
    memset(&row, 0, sizeof(row));
    row.id = claimed->id;
    row.attempt = claimed->attempts;
    row.created_at = created_at;
    row.provider = claimed->text[COL_PROVIDER];
    row.sender = claimed->text[COL_SENDER];
    row.recipients = claimed->text[COL_RECIPIENTS];
    row.cc = claimed->text[COL_CC];
    row.bcc = claimed->text[COL_BCC];
    row.reply_to = claimed->text[COL_REPLY_TO];
    row.subject = claimed->text[COL_SUBJECT];
    row.body_text = claimed->text[COL_BODY_TEXT];
    row.body_text_size = claimed->size[COL_BODY_TEXT];
    row.body_html = claimed->text[COL_BODY_HTML];
    row.body_html_size = claimed->size[COL_BODY_HTML];
    row.message_key = claimed->text[COL_MESSAGE_KEY];
    row.reference = claimed->text[COL_REFERENCE];
    row.headers = claimed->text[COL_HEADERS];
    row.metadata = claimed->text[COL_METADATA];
    row.send_after = claimed->text[COL_SEND_AFTER];
    row.template_name = claimed->text[COL_TEMPLATE];
    row.template_data = claimed->text[COL_TEMPLATE_DATA];
    row.message_id = claimed->text[COL_MESSAGE_ID];
    row.attachments = attachments;
    row.attachment_count = attachment_count;

    rc = outbox_message_build(message, &why, &row, &store->options.limits);
    attachments_free(attachments, attachment_count);
    if (rc == OUTBOX_ENOMEM)
        return outbox_error_set(err, rc, "internal", "%s", why.text);
    if (rc != OUTBOX_EOK)
        return fail_row(store, err, claimed, &why, job->now);
    memset(&why, 0, sizeof(why));
    rc = outbox__store_drop_suppressed(store, err, *message, job->now, &why);
    if (rc == OUTBOX_EOK && why.kind[0] != '\0') {
        outbox_message_free(*message);
        *message = NULL;
        return fail_row(store, err, claimed, &why, job->now);
    }
    if (rc != OUTBOX_EOK) {
        outbox_message_free(*message);
        *message = NULL;
        return rc;
    }
    if ((*message)->message_id == NULL) {
        rc = make_message_id(*message, job->random_hex);
        if (rc != OUTBOX_EOK) {
            outbox_message_free(*message);
            *message = NULL;
            return outbox_error_set(err, rc, "internal",
                                    "cannot make a Message-ID");
        }
    }
    return OUTBOX_EOK;
}

static outbox_err claim(outbox_store *store, void *context, outbox_error *err)
{
    claim_job *job = context;
    unsigned char random[8];
    outbox_err rc = run_claim(store, job, err);

    if (rc != OUTBOX_EOK)
        return rc;
    if (!outbox__random_bytes(random, sizeof(random)))
        return outbox_error_set(err, OUTBOX_EIO, "internal",
                                "cannot make a Message-ID");
    for (size_t i = 0; i < sizeof(random); i++)
        snprintf(job->random_hex + 2 * i, 3, "%02x", random[i]);
    job->messages = calloc(job->row_count ? job->row_count : 1,
                           sizeof(*job->messages));
    if (job->messages == NULL)
        return outbox_error_set(err, OUTBOX_ENOMEM, "internal",
                                "out of memory claiming rows");
    for (size_t i = 0; i < job->row_count; i++) {
        outbox_message *message = NULL;

        rc = check_row(store, err, job, &job->rows[i], &message);
        if (rc != OUTBOX_EOK)
            return rc;
        if (message != NULL)
            job->messages[job->message_count++] = message;
    }
    return OUTBOX_EOK;
}

outbox_err outbox_store_claim(outbox_store *store, outbox_message ***out,
                              size_t *count, outbox_error *err,
                              const outbox_claim_filter *filter, size_t limit,
                              int64_t now)
{
    claim_job job;
    outbox_err rc;

    memset(&job, 0, sizeof(job));
    *out = NULL;
    *count = 0;
    job.filter = filter;
    job.limit = limit;
    job.now = now;
    job.paused_json = paused_to_json(filter);
    if (job.paused_json == NULL)
        return outbox_error_set(err, OUTBOX_ENOMEM, "internal",
                                "out of memory");
    rc = outbox__store_transaction(store, err, false, claim, &job);
    claim_job_clear_rows(&job);
    free(job.paused_json);
    if (rc != OUTBOX_EOK) {
        outbox_messages_free(job.messages, job.message_count);
        return rc;
    }
    *out = job.messages;
    *count = job.message_count;
    return OUTBOX_EOK;
}

void outbox_messages_free(outbox_message **messages, size_t count)
{
    if (messages == NULL)
        return;
    for (size_t i = 0; i < count; i++)
        outbox_message_free(messages[i]);
    free(messages);
}

static outbox_err count_query(outbox_store *store, outbox_error *err,
                              const char *sql, const char *paused,
                              const outbox_claim_filter *filter, int64_t now,
                              sqlite3_stmt **out)
{
    outbox_err rc = outbox__store_prepare(store, out, err, sql);
    int index;

    if (rc != OUTBOX_EOK)
        return rc;
    index = sqlite3_bind_parameter_index(*out, ":now");
    if (index > 0)
        outbox__bind_time(*out, index, now);
    index = sqlite3_bind_parameter_index(*out, ":default");
    if (index > 0)
        outbox__bind_text(*out, index, filter->default_provider);
    index = sqlite3_bind_parameter_index(*out, ":paused");
    if (index > 0)
        outbox__bind_text(*out, index, paused);
    if (sqlite3_step(*out) != SQLITE_ROW) {
        rc = outbox__store_fail(store, err, OUTBOX_EDATABASE,
                                "counting pending rows");
        outbox__store_finish(*out);
        *out = NULL;
    }
    return rc;
}

outbox_err outbox_store_pending(outbox_store *store, int64_t *count,
                                int64_t *next_due, outbox_error *err,
                                const outbox_claim_filter *filter,
                                int64_t now)
{
    static const char waiting_sql[] =
        "SELECT count(*) FROM outbox "
        " WHERE status IN ('queued', 'retrying') "
        "   AND (status = 'retrying' OR next_attempt_at <= :now) "
        "   AND coalesce(provider, :default) NOT IN "
        "       (SELECT value FROM json_each(:paused))";
    static const char due_sql[] =
        "SELECT min(next_attempt_at) FROM outbox "
        " WHERE status IN ('queued', 'retrying') "
        "   AND coalesce(provider, :default) NOT IN "
        "       (SELECT value FROM json_each(:paused))";
    static const char sending_sql[] =
        "SELECT count(*) FROM outbox WHERE status = 'sending'";
    char *paused = paused_to_json(filter);
    sqlite3_stmt *stmt = NULL;
    outbox_err rc;

    *count = 0;
    *next_due = 0;
    if (paused == NULL)
        return outbox_error_set(err, OUTBOX_ENOMEM, "internal",
                                "out of memory");
    rc = count_query(store, err, waiting_sql, paused, filter, now, &stmt);
    if (rc == OUTBOX_EOK) {
        *count = sqlite3_column_int64(stmt, 0);
        outbox__store_finish(stmt);
        rc = count_query(store, err, sending_sql, paused, filter, now, &stmt);
    }
    if (rc == OUTBOX_EOK) {
        *count += sqlite3_column_int64(stmt, 0);
        outbox__store_finish(stmt);
        rc = count_query(store, err, due_sql, paused, filter, now, &stmt);
    }
    if (rc == OUTBOX_EOK) {
        if (!outbox_time_parse(next_due,
                               (const char *)sqlite3_column_text(stmt, 0)))
            *next_due = 0;
        outbox__store_finish(stmt);
    }
    free(paused);
    return rc;
}
