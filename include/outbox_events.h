/*
 * outbox_events.h - provider webhook events in liboutbox: the event model,
 * one parser per provider, and the checks that a webhook request came
 * from the provider.
 *
 * A parser turns the raw body of one webhook request into events. It uses
 * no SQLite, HTTP or libuv, so it can be tested with tables of bodies. The
 * daemon checks the request first (a signature, an HMAC or credentials),
 * then parses it, then hands the events to the store, which matches them
 * to outbox rows. The daemon responds to the provider only after the
 * commit.
 *
 * Event types are normalized: a SendGrid "bounce", a Mailgun "failed" with
 * severity "permanent", an SES "Bounce" with bounceType "Permanent" and a
 * Postmark "Bounce" with a HardBounce type code are all a hard bounce. An
 * event of a type outboxd does not know is kept as OUTBOX_EVENT_OTHER with
 * the provider's own name, never rejected.
 */
#ifndef OUTBOX_EVENTS_H
#define OUTBOX_EVENTS_H

#include "outbox.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum outbox_event_type {
    OUTBOX_EVENT_OTHER,        /* a type outboxd does not act on */
    OUTBOX_EVENT_ACCEPTED,     /* the provider took the message in */
    OUTBOX_EVENT_DELIVERED,    /* the receiving server accepted it */
    OUTBOX_EVENT_DEFERRED,     /* delivery delayed; the provider retries */
    OUTBOX_EVENT_BOUNCED,      /* see outbox_bounce_kind */
    OUTBOX_EVENT_COMPLAINED,   /* the recipient marked it as spam */
    OUTBOX_EVENT_DROPPED,      /* the provider did not try to deliver it */
    OUTBOX_EVENT_OPENED,
    OUTBOX_EVENT_CLICKED,
    OUTBOX_EVENT_UNSUBSCRIBED,
    OUTBOX_EVENT_RESUBSCRIBED, /* the provider sends to the address again */
} outbox_event_type;

/* Returns "other", "accepted", "delivered", "deferred", "bounced",
 * "complained", "dropped", "opened", "clicked", "unsubscribed" or
 * "resubscribed": the words stored in delivery_event.event_type. */
const char *outbox_event_type_name(outbox_event_type type);

typedef enum outbox_bounce_kind {
    OUTBOX_BOUNCE_NONE,        /* not a bounce */
    OUTBOX_BOUNCE_HARD,        /* permanent: the address is suppressed */
    OUTBOX_BOUNCE_SOFT,        /* temporary, or undetermined */
} outbox_bounce_kind;

/* Returns NULL for OUTBOX_BOUNCE_NONE, else "hard" or "soft". */
const char *outbox_bounce_kind_name(outbox_bounce_kind kind);

/*
 * Caps on one webhook request's events. A text field is at most
 * OUTBOX_EVENT_TEXT_MAX - 1 bytes long, so that it fits a buffer of
 * OUTBOX_EVENT_TEXT_MAX with its terminating NUL. A longer reason is cut on
 * a UTF-8 character boundary. A longer id, address or event name fails the
 * parse with OUTBOX_ELIMIT, because a cut one could match the wrong row.
 */
#define OUTBOX_EVENTS_MAX 10000       /* events in one request */
#define OUTBOX_EVENT_TEXT_MAX 4096    /* bytes of one text field */

/*
 * One event for one recipient of one message. Every string is malloc'd
 * and owned by the batch, or NULL when the provider did not send it.
 */
typedef struct outbox_event {
    outbox_event_type type;
    outbox_bounce_kind bounce;
    char *provider_event;      /* the provider's own type, e.g. "spamreport" */
    /*
     * The provider's id of this event, used to ignore a resent event. When
     * the provider sends none, the parser derives one from what it sent
     * (for example "sha256:" and the hash of the event's JSON), so that
     * resending the same event gives the same id. Never NULL.
     */
    char *event_id;
    int64_t outbox_id;         /* the id echoed at send time; 0 if absent */
    /* The provider's message id as outboxd stored it at send time:
     * SendGrid's without the part after the first ".", Mailgun's without
     * angle brackets. */
    char *provider_message_id;
    char *recipient;           /* the address the event is about */
    int64_t occurred_at;       /* unix seconds; 0 when unknown */
    char *reason;              /* the provider's reason or diagnostic code */
    char *tags;                /* the provider's tags or categories as a
                                  JSON array of strings; NULL if none */
    char *raw;                 /* the JSON of this event, as one object */
} outbox_event;

typedef struct outbox_event_batch {
    outbox_event *events;
    size_t count;
} outbox_event_batch;

/* Frees every event of batch and sets it empty. Accepts an empty batch. */
void outbox_event_batch_free(outbox_event_batch *batch);

/*
 * Parsers. Each reads the raw body of one webhook request, as the provider
 * sent it, into batch (which must be empty). A body that is not what the
 * provider sends (not JSON, not the documented shape, over a cap) fails
 * with OUTBOX_EINVAL or OUTBOX_ELIMIT, err names the problem, and batch
 * stays empty. A request with no events gives an empty batch and OK.
 */

/* SendGrid: a JSON array of event objects. A single event object, not
 * in an array, is read as one event. */
outbox_err outbox_events_parse_sendgrid(outbox_event_batch *batch,
                                        outbox_error *err, const char *body,
                                        size_t size);

/*
 * Mailgun: one JSON object with "signature" and "event-data". Mailgun's
 * legacy webhooks, posted as form fields, fail with OUTBOX_EINVAL.
 */
outbox_err outbox_events_parse_mailgun(outbox_event_batch *batch,
                                       outbox_error *err, const char *body,
                                       size_t size);

/* The "signature" object of a Mailgun webhook body, for
 * outbox_verify_mailgun. */
#define OUTBOX_MAILGUN_FIELD_MAX 256   /* bytes of one field, with the NUL */

typedef struct outbox_mailgun_signature {
    char timestamp[OUTBOX_MAILGUN_FIELD_MAX];
    char token[OUTBOX_MAILGUN_FIELD_MAX];
    char signature[OUTBOX_MAILGUN_FIELD_MAX];
} outbox_mailgun_signature;

/*
 * Reads the signature object from a Mailgun webhook body, before the body
 * is parsed for events. A body without it, or with a field that is not a
 * non-empty string shorter than OUTBOX_MAILGUN_FIELD_MAX, fails with
 * OUTBOX_EINVAL and err->kind "unauthenticated".
 */
outbox_err outbox_mailgun_signature_read(outbox_mailgun_signature *out,
                                         outbox_error *err, const char *body,
                                         size_t size);

/*
 * Amazon SES through SNS: an SNS Notification whose Message is the SES
 * event as a JSON string. One SES event gives one outbox_event per
 * recipient it names. Subscription confirmations are not events: they
 * fail with err->kind "sns_not_notification" (see outbox_sns_parse), and
 * a bare SES event without the SNS envelope, as SNS posts it when raw
 * message delivery is on, fails with "sns_envelope_missing".
 */
outbox_err outbox_events_parse_ses(outbox_event_batch *batch,
                                   outbox_error *err, const char *body,
                                   size_t size);

/* Postmark: one JSON object with a RecordType. Keys are matched without
 * regard to case ("MessageID" and "MessageId"). */
outbox_err outbox_events_parse_postmark(outbox_event_batch *batch,
                                        outbox_error *err, const char *body,
                                        size_t size);

/*
 * Amazon SNS, which carries SES events over HTTPS. Every message, event or
 * not, is a JSON object with a Type; its signature covers the fields below.
 */
typedef enum outbox_sns_type {
    OUTBOX_SNS_NOTIFICATION,
    OUTBOX_SNS_SUBSCRIPTION_CONFIRMATION,
    OUTBOX_SNS_UNSUBSCRIBE_CONFIRMATION,
} outbox_sns_type;

/* The fields of one SNS message; strings are malloc'd, NULL when absent. */
typedef struct outbox_sns_message {
    outbox_sns_type type;
    char *message_id;
    char *topic_arn;
    char *subject;
    char *message;             /* for a Notification: the SES event JSON */
    char *timestamp;
    char *token;               /* confirmations only */
    char *subscribe_url;       /* confirmations only */
    char *signature_version;   /* "1" (SHA1) or "2" (SHA256) */
    char *signature;           /* base64 */
    char *signing_cert_url;
} outbox_sns_message;

/* Reads an SNS message. Fails with OUTBOX_EINVAL naming the field that is
 * missing or malformed. */
outbox_err outbox_sns_parse(outbox_sns_message *out, outbox_error *err,
                            const char *body, size_t size);

void outbox_sns_message_free(outbox_sns_message *message);

/*
 * Checks that url may be fetched for a signing certificate: https, a host
 * of the form sns.<region>.amazonaws.com (or .com.cn), and a path ending
 * in ".pem". Anything else fails with err->kind "unauthenticated".
 */
outbox_err outbox_sns_check_cert_url(outbox_error *err, const char *url);

/*
 * Checks that url may be fetched to confirm a subscription: https, a host
 * of the form sns.<region>.amazonaws.com (or .com.cn), then a path and
 * query of printable ASCII. Anything else, NULL included, fails with
 * err->kind "unauthenticated".
 */
outbox_err outbox_sns_check_subscribe_url(outbox_error *err,
                                          const char *url);

/*
 * Checks message's signature with the PEM certificate cert_pem: the string
 * to sign is built from the fields SNS signs for its type, and the RSA
 * PKCS#1 v1.5 signature is checked with SHA1 (version 1) or SHA256
 * (version 2).
 */
outbox_err outbox_sns_verify(outbox_error *err,
                             const outbox_sns_message *message,
                             const char *cert_pem, size_t cert_size);

/*
 * Checks that message's Timestamp lies within max_age seconds of now (unix
 * seconds), so that a captured message cannot be replayed later. A retry
 * may carry the Timestamp of the first attempt, so max_age must be longer
 * than the retry period of the subscription's delivery policy.
 */
outbox_err outbox_sns_check_timestamp(outbox_error *err,
                                      const outbox_sns_message *message,
                                      int64_t now, int64_t max_age);

/*
 * Checks. Each returns OUTBOX_EOK when the request is authentic, and
 * otherwise OUTBOX_EINVAL with err->kind "unauthenticated" and a text that
 * gives the reason (never a secret). A key or credential from config that
 * cannot be used (empty, not base64, not a P-256 key) fails with
 * OUTBOX_ECONFIG and kind "config" instead, because the request may be
 * genuine.
 * now is the current unix time.
 */

/*
 * SendGrid's signed event webhook: signature_b64 is the base64 DER ECDSA
 * signature from X-Twilio-Email-Event-Webhook-Signature, timestamp the
 * value of X-Twilio-Email-Event-Webhook-Timestamp, and public_key_b64 the
 * verification key as SendGrid shows it (base64 DER SubjectPublicKeyInfo,
 * P-256). The signed data is the timestamp followed by the raw body. A
 * timestamp more than max_age seconds away from now fails.
 */
outbox_err outbox_verify_sendgrid(outbox_error *err,
                                  const char *public_key_b64,
                                  const char *signature_b64,
                                  const char *timestamp, const char *body,
                                  size_t size, int64_t now, int64_t max_age);

/*
 * Mailgun: signature_hex must be the HMAC-SHA256, under signing_key, of
 * timestamp followed by token, compared in constant time. A timestamp more
 * than max_age seconds away from now fails. The caller also rejects a
 * token it has seen before with another body (outbox_token_cache).
 */
outbox_err outbox_verify_mailgun(outbox_error *err, const char *signing_key,
                                 const char *timestamp, const char *token,
                                 const char *signature_hex, int64_t now,
                                 int64_t max_age);

/*
 * Postmark sends no signature: the webhook URL carries basic auth
 * credentials. authorization is the request's Authorization header (or
 * NULL); it must be "Basic " and the base64 of username:password, compared
 * in constant time.
 */
outbox_err outbox_verify_basic_auth(outbox_error *err,
                                    const char *authorization,
                                    const char *username,
                                    const char *password);

/*
 * A bounded set of recently seen tokens, for replay protection. Tokens
 * older than max_age seconds are forgotten; when full, the oldest goes.
 */
typedef struct outbox_token_cache outbox_token_cache;

outbox_err outbox_token_cache_create(outbox_token_cache **out,
                                     size_t capacity, int64_t max_age);
void outbox_token_cache_free(outbox_token_cache *cache);

/*
 * Returns true and remembers token with the digest of the size bytes at
 * body if token was not seen within max_age. Returns true as well for the
 * same token with the same body (a resend, whose events the store ignores
 * the second time). Returns false for the same token with another body (a
 * replay), for a NULL token, or if hashing fails.
 */
bool outbox_token_cache_add(outbox_token_cache *cache, const char *token,
                            const void *body, size_t size, int64_t now);

/*
 * Stores the events of one webhook request in one transaction, for the
 * configured provider named provider: each event is matched to its row
 * (by the echoed outbox id, then by the provider's message id), stored in
 * delivery_event unless the provider sent it before, and applied: the
 * recipient's status and the message's status move forward, and a hard
 * bounce or a complaint adds the address to the suppression list. Events
 * that match no row are stored with a NULL outbox_id. *stored receives the
 * number of new events. Fails with OUTBOX_EBUSY when another writer holds
 * the database longer than the busy timeout; nothing is written then, and
 * the provider should be told to resend.
 */
outbox_err outbox_store_record_events(outbox_store *store, outbox_error *err,
                                      const char *provider,
                                      const outbox_event *events,
                                      size_t count, int64_t now,
                                      size_t *stored);

/* One change to an SNS subscription; every string is borrowed. */
typedef struct outbox_sns_subscription {
    const char *provider;       /* the configured provider's name */
    const char *topic_arn;
    const char *status;         /* "pending", "confirmed", "unsubscribed" */
    const char *message_id;     /* SNS MessageId of the request, or NULL */
    const char *error;          /* why a confirmation failed, or NULL */
} outbox_sns_subscription;

/*
 * Writes the subscription's state into sns_subscription, replacing the
 * row of the same provider and topic. confirmed_at keeps the time of the
 * last confirmation. Fails with OUTBOX_EBUSY when another writer keeps the
 * write lock longer than the busy timeout.
 */
outbox_err outbox_store_record_sns_subscription(
    outbox_store *store, outbox_error *err,
    const outbox_sns_subscription *subscription, int64_t now);

#ifdef __cplusplus
}
#endif

#endif /* OUTBOX_EVENTS_H */
