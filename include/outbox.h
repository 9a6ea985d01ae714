/*
 * outbox.h - public API of liboutbox, the engine behind outboxd.
 *
 * liboutbox turns rows of the `outbox` table into delivered email. It contains
 * the message model, address parsing, header encoding, validation, the retry
 * policy, the SQLite store and the providers. It never prints, exits or
 * aborts: functions return an outbox_err and fill an outbox_error with the
 * detail, and log lines go to a callback that the caller installs.
 *
 * Thread safety: each outbox_store handle must be used by one thread at a
 * time. Providers, parsers and encoders are pure functions of their inputs
 * and may be called from any thread.
 */
#ifndef OUTBOX_H
#define OUTBOX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <curl/curl.h>

#ifdef __cplusplus
extern "C" {
#endif

struct cJSON;

/* ------------------------------------------------------------------ */
/* Errors                                                              */
/* ------------------------------------------------------------------ */

#define OUTBOX_ERRNO_MAP(X)                                              \
    X(OK, "success")                                                     \
    X(NOMEM, "out of memory")                                            \
    X(INVAL, "invalid input")                                          \
    X(LIMIT, "a size limit was exceeded")                                \
    X(DATABASE, "database error")                                        \
    X(BUSY, "database is locked")                                        \
    X(SCHEMA, "database schema is newer than this program")              \
    X(IO, "input/output error")                                          \
    X(CONFIG, "invalid configuration")                                   \
    X(PROVIDER, "provider error")

typedef enum outbox_err {
#define OUTBOX_ERR_ENUM(name, text) OUTBOX_E##name,
    OUTBOX_ERRNO_MAP(OUTBOX_ERR_ENUM)
#undef OUTBOX_ERR_ENUM
} outbox_err;

/* Returns a static description of code. */
const char *outbox_strerror(outbox_err code);

/*
 * Detail of a failure, written into the outbox row as last_error_kind and
 * last_error. kind is a stable word for machines and ops queries
 * ("invalid_recipients", "rate_limited"); text is one sentence for people
 * that names the field and the problem.
 */
#define OUTBOX_ERROR_KIND_MAX 40
#define OUTBOX_ERROR_TEXT_MAX 1024

typedef struct outbox_error {
    char kind[OUTBOX_ERROR_KIND_MAX];
    char text[OUTBOX_ERROR_TEXT_MAX];
} outbox_error;

/* Fills err (which may be NULL) and returns code. Truncates long text. */
outbox_err outbox_error_set(outbox_error *err, outbox_err code,
                            const char *kind, const char *format, ...)
    __attribute__((format(printf, 4, 5)));

/* ------------------------------------------------------------------ */
/* Logging                                                             */
/* ------------------------------------------------------------------ */

typedef enum outbox_log_level {
    OUTBOX_LOG_ERROR = 1,
    OUTBOX_LOG_WARN,
    OUTBOX_LOG_INFO,
    OUTBOX_LOG_DEBUG,
} outbox_log_level;

/*
 * Receives one log line without a trailing newline. Lines about a message
 * start with "id=N", followed by key=value fields. Secrets never appear.
 */
typedef void (*outbox_log_fn)(void *context, outbox_log_level level,
                              const char *line);

typedef struct outbox_logger {
    outbox_log_fn fn;   /* NULL discards every line */
    void *context;
    /* Lines above this level are dropped before they are formatted; 0
     * passes every line to fn. */
    int max_level;
} outbox_logger;

void outbox_log(const outbox_logger *logger, outbox_log_level level,
                const char *format, ...) __attribute__((format(printf, 3, 4)));

/* Buffer size for outbox_log_quote that fits most error texts whole. */
#define OUTBOX_LOG_QUOTED_SIZE 1024

/*
 * Writes text (NULL counts as empty) into out as one quoted log field
 * value, so that a line stays one line and key=value parsers can split
 * it. The value is in double quotes, with '"' and '\\' escaped by a
 * backslash, CR, LF and tab written as \r, \n and \t, and other control
 * bytes as \xHH. Text that does not fit in size bytes is cut at a UTF-8
 * character boundary and ends in "...". Returns out, which is empty when
 * size is below 8.
 */
const char *outbox_log_quote(char *out, size_t size, const char *text);

/* ------------------------------------------------------------------ */
/* Time                                                                */
/* ------------------------------------------------------------------ */

/* Length of "YYYY-MM-DD HH:MM:SS" plus the terminating NUL. */
#define OUTBOX_TIME_TEXT_SIZE 20

/* Writes unix time t as UTC text in the format of SQLite's datetime(). */
void outbox_time_format(char out[OUTBOX_TIME_TEXT_SIZE], int64_t t);

/* Parses text written by outbox_time_format; returns false if malformed. */
bool outbox_time_parse(int64_t *out, const char *text);

/* ------------------------------------------------------------------ */
/* Limits                                                              */
/* ------------------------------------------------------------------ */

/*
 * Caps on one message. A row over a cap fails with kind "limit_exceeded"
 * and a text that names the field, the size and the cap.
 */
typedef struct outbox_limits {
    size_t max_recipients;       /* to + cc + bcc, after removing repeats */
    size_t max_address_text;     /* bytes of one address-list column */
    size_t max_subject;          /* bytes, before encoding */
    size_t max_body;             /* bytes of body_text, and of body_html */
    size_t max_headers;          /* entries in the headers column */
    size_t max_header_value;     /* bytes of one extra header value */
    size_t max_metadata;         /* entries in the metadata column */
    size_t max_attachments;      /* attachments on one message */
    size_t max_message;          /* bodies plus attachments, before encoding */
    size_t max_template_data;    /* bytes of the template_data column */
} outbox_limits;

/* Maximum length of the template column: a provider's template id or
 * name. */
#define OUTBOX_TEMPLATE_NAME_MAX 256

/* Fills limits with the documented defaults. */
void outbox_limits_default(outbox_limits *limits);

/* ------------------------------------------------------------------ */
/* Addresses                                                           */
/* ------------------------------------------------------------------ */

/* One mailbox: an optional display name and an addr-spec. */
typedef struct outbox_address {
    char *name;    /* UTF-8 display name, unquoted; NULL when absent */
    char *email;   /* local-part@domain, as written */
} outbox_address;

typedef struct outbox_address_list {
    outbox_address *items;
    size_t count;
} outbox_address_list;

/*
 * Parses an RFC 5322 address list such as
 * `"Meier, Anna" <a.meier@example.org>, b@example.org`. A comma or a
 * semicolon separates addresses. Comments in parentheses are dropped, and
 * group syntax is rejected. field names the column in error texts. Entries
 * already in out are overwritten, not freed. On failure out is left empty
 * and err names the wrong address and the problem. The caller frees out
 * with outbox_address_list_clear.
 */
outbox_err outbox_address_list_parse(outbox_address_list *out,
                                     outbox_error *err, const char *field,
                                     const char *text, size_t max_count);

/* Frees the entries of list and leaves it empty. Accepts NULL. */
void outbox_address_list_clear(outbox_address_list *list);

/* ------------------------------------------------------------------ */
/* Header encoding                                                     */
/* ------------------------------------------------------------------ */

/*
 * Returns true if value may be placed in a header: no CR, LF or NUL, and
 * valid UTF-8.
 */
bool outbox_header_value_is_safe(const char *value);

/*
 * Encodes text as RFC 2047 encoded words when it is not plain printable
 * ASCII, so it can be a Subject or other unstructured header value. Words
 * are at most 75 characters, separated by CRLF SP, so each continuation
 * line stays within 76 characters. The first line also carries the field
 * name; a caller that needs it short folds after the colon. Returns a
 * malloc'd string the caller frees, or NULL when out of memory.
 */
char *outbox_header_encode_text(const char *text);

/*
 * Formats a mailbox for a header: `=?UTF-8?B?...?= <a@example.org>` for a
 * non-ASCII name, `"Meier, Anna" <a@example.org>` for a name that needs
 * quotes, `a@example.org` without a name. Returns a malloc'd string or NULL.
 */
char *outbox_header_format_address(const outbox_address *address);

/* ------------------------------------------------------------------ */
/* Messages                                                            */
/* ------------------------------------------------------------------ */

/* Header name and value, also used for metadata keys and values. */
typedef struct outbox_field {
    char *name;
    char *value;
} outbox_field;

typedef struct outbox_attachment {
    char *filename;
    char *content_type;
    char *content_id;      /* set for inline images; NULL otherwise */
    unsigned char *content;
    size_t size;
} outbox_attachment;

/* The columns of one outbox row as SQLite returned them (UTF-8, or NULL). */
typedef struct outbox_row {
    int64_t id;
    int attempt;                 /* number of this attempt, 1 for the first */
    int64_t created_at;          /* unix seconds */
    const char *sender;
    const char *recipients;
    const char *cc;
    const char *bcc;
    const char *reply_to;
    const char *subject;
    const char *body_text;
    size_t body_text_size;
    const char *body_html;
    size_t body_html_size;
    const char *message_key;
    const char *reference;
    const char *headers;         /* JSON object text */
    const char *metadata;        /* JSON object text */
    const char *provider;        /* resolved name; never NULL */
    const char *send_after;
    const char *message_id;      /* RFC 5322 Message-ID, without <> */
    const char *template_name;   /* the template column */
    const char *template_data;   /* JSON object text */
    const outbox_attachment *attachments;  /* borrowed, not copied deeply */
    size_t attachment_count;
} outbox_row;

/*
 * A checked message, ready for a provider. Built only by
 * outbox_message_build, freed by outbox_message_free.
 */
typedef struct outbox_message {
    int64_t id;
    int attempt;
    int64_t created_at;
    char *message_key;          /* NULL when the row has none */
    char *reference;            /* NULL when the row has none */
    char *provider;
    char *message_id;           /* without <> */
    outbox_address sender;
    outbox_address_list to;
    outbox_address_list cc;
    outbox_address_list bcc;
    outbox_address_list reply_to;
    char *subject;              /* "" when the row has none */
    char *body_text;            /* NULL when absent */
    char *body_html;            /* NULL when absent */
    /* The provider's template and its data (a JSON object's text); both
     * NULL when the row names no template. A message with a template may
     * have no body. */
    char *template_name;
    char *template_data;
    outbox_field *headers;
    size_t header_count;
    outbox_field *metadata;     /* values are strings */
    size_t metadata_count;
    outbox_attachment *attachments;
    size_t attachment_count;
} outbox_message;

/*
 * Checks row and builds a message from it. Addresses are parsed, and an
 * address repeated across to, cc and bcc is kept once, in the first of
 * them (compared without regard to case). Header values must not contain
 * CR, LF or NUL, headers, metadata and template_data must be JSON
 * objects, at least one body is required unless the row names a template,
 * and every cap in limits applies. On failure *out is NULL and err names
 * the field and the problem. The kind is one of invalid_sender,
 * invalid_recipients, invalid_cc, invalid_bcc, invalid_reply_to,
 * invalid_header_value, invalid_headers, invalid_metadata, missing_body,
 * invalid_template, invalid_attachment, invalid_text, limit_exceeded, or
 * out_of_memory.
 */
outbox_err outbox_message_build(outbox_message **out, outbox_error *err,
                                const outbox_row *row,
                                const outbox_limits *limits);

/* Frees message and everything it owns. Accepts NULL. */
void outbox_message_free(outbox_message *message);

/* Total number of recipients: to + cc + bcc. */
size_t outbox_message_recipient_count(const outbox_message *message);

/* ------------------------------------------------------------------ */
/* Delivery results                                                    */
/* ------------------------------------------------------------------ */

typedef enum outbox_result_kind {
    OUTBOX_RESULT_SENT,          /* the provider accepted the message */
    OUTBOX_RESULT_RETRY,         /* try again later */
    OUTBOX_RESULT_FAILED,        /* permanent for this message */
    OUTBOX_RESULT_MISCONFIGURED, /* the provider setup is wrong: pause it */
    OUTBOX_RESULT_UNKNOWN,       /* the provider may have it: hold the row */
} outbox_result_kind;

/* Returns "sent", "retry", "failed", "misconfigured" or "unknown". */
const char *outbox_result_kind_name(outbox_result_kind kind);

#define OUTBOX_PROVIDER_ID_MAX 256

/* What one delivery attempt came to, as a provider classified it. */
typedef struct outbox_result {
    outbox_result_kind kind;
    long status;              /* HTTP or SMTP status; 0 when none arrived */
    int64_t retry_after;      /* seconds the provider asked for; -1 if none */
    /* False for rate limits and pauses: they do not use up max_attempts. */
    bool counts_as_failure;
    char provider_message_id[OUTBOX_PROVIDER_ID_MAX];
    outbox_error error;       /* kind and text; empty for SENT */
} outbox_result;

/* Sets result to kind with empty fields and counts_as_failure true. */
void outbox_result_init(outbox_result *result, outbox_result_kind kind);

/* The response to one transfer, captured by the caller for classification. */
typedef struct outbox_response {
    CURLcode curl_code;          /* CURLE_OK when a response arrived */
    const char *curl_error;      /* libcurl's error text, or "" */
    long status;                 /* HTTP status; 0 when none arrived */
    const outbox_field *headers; /* response headers, in order */
    size_t header_count;
    const char *body;            /* NUL-terminated, at most body_cap bytes */
    size_t body_size;
    bool body_truncated;         /* the body was longer than the cap */
    int64_t now;                 /* unix time the response arrived */
} outbox_response;

/* Returns the value of the first header called name (any case), or NULL. */
const char *outbox_response_header(const outbox_response *response,
                                   const char *name);

/*
 * Reads Retry-After (delta seconds or an HTTP date) relative to now. Returns
 * the delay in seconds, 0 for a date in the past, or -1 when value is
 * malformed.
 */
int64_t outbox_parse_retry_after(const char *value, int64_t now);

/* ------------------------------------------------------------------ */
/* Providers                                                           */
/* ------------------------------------------------------------------ */

typedef struct outbox_provider outbox_provider;

/*
 * Creates a provider from one object of the config's "providers" list:
 * {"name": ..., "type": ..., ...}. Secrets come from "api_key" or from the
 * environment variable named by "api_key_env". On failure err names the
 * provider and the key at fault.
 */
outbox_err outbox_provider_create(outbox_provider **out, outbox_error *err,
                                  const struct cJSON *config,
                                  const outbox_logger *logger);

/* Creates the file provider that writes .eml files into folder. */
outbox_err outbox_provider_create_file(outbox_provider **out,
                                       outbox_error *err, const char *name,
                                       const char *folder);

void outbox_provider_free(outbox_provider *provider);

const char *outbox_provider_name(const outbox_provider *provider);
const char *outbox_provider_type(const outbox_provider *provider);

/*
 * True if the provider talks through libcurl (prepare, then classify).
 * False if it delivers locally with outbox_provider_deliver, which blocks,
 * so it must run off an event loop thread.
 */
bool outbox_provider_uses_curl(const outbox_provider *provider);

/*
 * Sets up easy (a fresh or reset libcurl handle) to deliver message.
 * *request receives buffers that must live until the transfer ends; free
 * them with outbox_provider_release. On failure nothing is left to free,
 * and err describes why the message cannot be sent (a permanent failure).
 */
outbox_err outbox_provider_prepare(const outbox_provider *provider,
                                   void **request, outbox_error *err,
                                   CURL *easy, const outbox_message *message);

void outbox_provider_release(const outbox_provider *provider, void *request);

/* Classifies the response to a transfer that prepare set up. */
void outbox_provider_classify(const outbox_provider *provider,
                              outbox_result *result,
                              const outbox_response *response);

/* Delivers message without libcurl (the file provider). Blocks. */
void outbox_provider_deliver(const outbox_provider *provider,
                             outbox_result *result,
                             const outbox_message *message);

/* ------------------------------------------------------------------ */
/* Retry policy                                                        */
/* ------------------------------------------------------------------ */

typedef struct outbox_retry_policy {
    int64_t base_delay;        /* seconds before the second attempt */
    int64_t max_delay;         /* backoff waits at most this, plus 1 s */
    double jitter;             /* 0.2 spreads each delay by +-20% */
    int max_attempts;          /* failures that count before giving up */
    int64_t max_age;           /* seconds after created_at to give up */
    int64_t max_retry_after;   /* cap on a delay the provider asked for */
    int64_t misconfigured_pause; /* seconds a misconfigured provider rests */
} outbox_retry_policy;

void outbox_retry_policy_default(outbox_retry_policy *policy);

typedef struct outbox_retry_decision {
    bool give_up;              /* true: fail the message now */
    int64_t next_attempt_at;   /* unix time of the next attempt */
    bool capped;               /* the provider's delay was over the cap */
    char reason[160];          /* why it gives up, for last_error */
} outbox_retry_decision;

/*
 * Decides what follows a RETRY or MISCONFIGURED result. failures is the
 * number of earlier attempts that counted as failures, this one excluded.
 * random is a number in [0, 1) that places the jitter.
 */
void outbox_retry_decide(outbox_retry_decision *decision,
                         const outbox_retry_policy *policy,
                         const outbox_result *result, int failures,
                         int64_t created_at, int64_t now, double random);

/* ------------------------------------------------------------------ */
/* Store                                                               */
/* ------------------------------------------------------------------ */

typedef struct outbox_store outbox_store;

typedef struct outbox_store_options {
    const char *owner;          /* lease owner: unique per daemon process */
    int busy_timeout_ms;        /* how long one statement waits for a lock */
    int64_t lease_seconds;      /* a claim is valid this long unless renewed */
    bool retry_unknown;         /* expired dispatched leases: retry, not hold */
    const char *synchronous;    /* "NORMAL" or "FULL" */
    /* With "FULL": dispatch commits without waiting for the disk, and the
     * caller calls outbox_store_sync before any request leaves (see
     * outbox_store_dispatch). */
    bool caller_syncs_dispatch;
    outbox_limits limits;
    outbox_retry_policy retry;
    outbox_logger logger;
} outbox_store_options;

void outbox_store_options_default(outbox_store_options *options);

/*
 * Opens the database at path, sets WAL mode and the options, and migrates
 * the schema to the newest version. Fails with OUTBOX_ESCHEMA when the file
 * was written by a newer version.
 */
outbox_err outbox_store_open(outbox_store **out, outbox_error *err,
                             const char *path,
                             const outbox_store_options *options);

void outbox_store_close(outbox_store *store);

/* Schema version this build writes (PRAGMA user_version). */
int outbox_store_schema_version(void);

/* Which providers a claim may pick rows for. */
typedef struct outbox_claim_filter {
    const char *default_provider;  /* used for rows whose provider is NULL */
    const char *const *configured; /* every configured provider name */
    size_t configured_count;
    const char *const *paused;     /* configured but resting: skip rows */
    size_t paused_count;
} outbox_claim_filter;

/*
 * Claims up to limit due rows in one transaction: each becomes `sending`
 * with a lease, and its attempts count includes the coming attempt. Rows
 * that fail validation, or name a provider that is not configured, are
 * marked `failed` in the same transaction and not returned.
 * The caller owns the returned messages (*out, a malloc'd array of *count
 * pointers) and frees them with outbox_messages_free.
 */
outbox_err outbox_store_claim(outbox_store *store, outbox_message ***out,
                              size_t *count, outbox_error *err,
                              const outbox_claim_filter *filter, size_t limit,
                              int64_t now);

void outbox_messages_free(outbox_message **messages, size_t count);

/*
 * Records that the requests for these messages are about to leave: an
 * attempt row, carrying the Message-ID, is opened for each. From here on,
 * an expired lease means the outcome is unknown. dispatched[i] is set false
 * for a message whose lease this daemon lost (another daemon took it over),
 * and that message must not be sent. With synchronous "FULL" the commit is
 * synced to disk here, unless options.caller_syncs_dispatch leaves that to
 * outbox_store_sync.
 */
outbox_err outbox_store_dispatch(outbox_store *store, bool *dispatched,
                                 outbox_error *err,
                                 outbox_message *const *messages,
                                 size_t count, int64_t now);

/*
 * Syncs the database's write-ahead log to disk, which makes every commit so
 * far durable. With options.caller_syncs_dispatch, a dispatched message may
 * be sent only once a call that began after its dispatch returned OK; one
 * call covers every dispatch before it. Unlike every other store function,
 * it may run on another thread while the store's own thread goes on: it
 * uses a file descriptor of its own, fixed when the store opens. Returns
 * OK at once when nothing is left to sync: synchronous "NORMAL", or a
 * dispatch that synced its own commit (an in-memory database has no log).
 */
outbox_err outbox_store_sync(outbox_store *store, outbox_error *err);

/* The end of one dispatched attempt, as the caller hands it to the store. */
typedef struct outbox_outcome {
    int64_t id;
    int attempt;
    int64_t created_at;
    int64_t started_at;
    int64_t finished_at;
    char provider[64];
    outbox_result result;
    /* The request's recipients and Message-ID, owned by the outcome (see
     * outbox_outcome_copy_message), NULL when not known. recipients has
     * one line per recipient: 't', 'c' or 'b' (to, cc, bcc), then the
     * address. message_id has no <>. */
    char *recipients;
    char *message_id;
} outbox_outcome;

/*
 * Copies the to, cc and bcc addresses and the Message-ID of message into
 * outcome, replacing what was there. outbox_store_record writes a
 * delivery_recipient row for each recipient when the provider accepted the
 * message (`sent`) or the outcome is unknown (`pending`), looks for them in
 * the error text of an inactive_recipient failure, and keeps the Message-ID
 * on the message's row.
 */
outbox_err outbox_outcome_copy_message(outbox_outcome *outcome,
                                       outbox_error *err,
                                       const outbox_message *message);

/* Frees what outbox_outcome_copy_message copied. Accepts NULL. */
void outbox_outcome_clear(outbox_outcome *outcome);

/*
 * Writes outcomes in one transaction: the attempt row, and the message's
 * move to sent, retrying, failed, held or back to queued. Applies the retry
 * policy to RETRY and MISCONFIGURED results. Retries on SQLITE_BUSY until it
 * succeeds or fails for another reason, so no outcome is dropped.
 */
outbox_err outbox_store_record(outbox_store *store, outbox_error *err,
                               const outbox_outcome *outcomes, size_t count);

/*
 * Gives dispatched messages back whose requests never left (the daemon is
 * stopping): the open attempt row is removed and each row returns to
 * queued or retrying as it was before the claim.
 */
outbox_err outbox_store_release(outbox_store *store, outbox_error *err,
                                outbox_message *const *messages,
                                size_t count);

/*
 * Writes this daemon's heartbeat, renews its leases, and resolves expired
 * leases of any owner: rows never dispatched go back to work, dispatched
 * rows become `held` (or `retrying` with retry_unknown).
 */
outbox_err outbox_store_maintain(outbox_store *store, outbox_error *err,
                                 int64_t now);

/* Removes this daemon's heartbeat row (on a clean stop). */
outbox_err outbox_store_sign_off(outbox_store *store, outbox_error *err);

/*
 * Counts rows that keep a drain running: due queued rows, retrying rows and
 * sending rows, leaving out providers in filter->paused. Also returns, in
 * *next_due, the earliest next_attempt_at of a queued or retrying row (0 when
 * there is none).
 */
outbox_err outbox_store_pending(outbox_store *store, int64_t *count,
                                int64_t *next_due, outbox_error *err,
                                const outbox_claim_filter *filter,
                                int64_t now);

/*
 * Returns true if another connection committed since the last call: a cheap
 * check (PRAGMA data_version) that reads no table.
 */
bool outbox_store_changed(outbox_store *store);

#ifdef __cplusplus
}
#endif

#endif /* OUTBOX_H */
