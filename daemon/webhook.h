/*
 * webhook.h - the webhook endpoint of each configured provider: its
 * secrets, the check that a request came from the provider, and the
 * parser of its events. The HTTP side is in listener.c.
 */
#ifndef OUTBOXD_WEBHOOK_H
#define OUTBOXD_WEBHOOK_H

#include <cjson/cJSON.h>

#include "outbox_events.h"

/* Headers of a webhook request that the checks read; NULL when absent. */
typedef struct webhook_request {
    const char *peer;            /* the connecting address, as text */
    const char *content_type;
    const char *authorization;
    const char *signature;       /* X-Twilio-Email-Event-Webhook-Signature */
    const char *timestamp;       /* X-Twilio-Email-Event-Webhook-Timestamp */
    const char *body;
    size_t body_size;
    int64_t now;
} webhook_request;

/* An SNS signing certificate, by the URL it was fetched from. */
typedef struct webhook_certificate {
    char *url;
    char *pem;
    size_t size;
} webhook_certificate;

#define WEBHOOK_CERTIFICATES_MAX 16

typedef struct webhook_endpoint {
    char *provider;              /* configured provider name */
    const char *type;            /* sendgrid, mailgun, postmark, ses */
    char *path;                  /* "/webhooks/<provider>" */
    char *secret;                /* key, signing key, password, topic ARN */
    char *username;              /* Postmark's basic auth user */
    bool insecure;               /* webhook_insecure_skip_verification */
    char **allow_from;           /* Postmark: source addresses, or NULL */
    size_t allow_from_count;
    outbox_token_cache *tokens;  /* Mailgun's replay protection */
    char *certificate_folder;    /* SES: where fetched certificates stay */
    webhook_certificate certificates[WEBHOOK_CERTIFICATES_MAX];
    size_t certificate_count;    /* SES: certificates kept in memory */
} webhook_endpoint;

typedef struct webhook_endpoints {
    webhook_endpoint *items;
    size_t count;
} webhook_endpoints;

/*
 * Reads the webhook_* keys of every provider object. A provider whose type
 * takes no webhooks must have none; a provider with webhook keys must
 * have a complete set, or webhook_insecure_skip_verification. Providers
 * without webhook keys get no endpoint. err names the provider and key.
 */
outbox_err webhook_endpoints_load(webhook_endpoints *out, outbox_error *err,
                                  const cJSON *providers, int max_age);

void webhook_endpoints_free(webhook_endpoints *endpoints);

/* Returns the endpoint for path, or NULL. */
webhook_endpoint *webhook_find(const webhook_endpoints *endpoints,
                                     const char *path);

/*
 * Checks that request came from the endpoint's provider, then parses its
 * events into batch. Returns the HTTP status to respond with when it cannot go
 * on (401 unauthenticated, 400 malformed, 413 too many events, 415 wrong
 * content type) with err saying why, or 0 when batch is ready to store.
 */
int webhook_accept(const webhook_endpoint *endpoint,
                   const webhook_request *request, int max_age,
                   outbox_event_batch *batch, outbox_error *err);

/*
 * SES through SNS, in steps, because the signing certificate may have to
 * be fetched first. webhook_sns_check reads and checks the message (topic,
 * age, certificate URL) and returns an HTTP status to respond with, or 0 when
 * the certificate is at hand, or -1 when *fetch_url must be fetched (with
 * webhook_fetch, off the loop) and given to webhook_sns_remember first.
 * webhook_sns_finish then checks the signature and fills batch for a
 * Notification, or sets *confirm_url for a SubscriptionConfirmation,
 * whose URL the caller fetches to confirm. Both return like
 * webhook_accept.
 */
int webhook_sns_check(webhook_endpoint *endpoint,
                      const webhook_request *request, int max_age,
                      outbox_sns_message *message, const char **fetch_url,
                      outbox_error *err);

int webhook_sns_finish(webhook_endpoint *endpoint,
                       const webhook_request *request,
                       const outbox_sns_message *message,
                       outbox_event_batch *batch, const char **confirm_url,
                       outbox_error *err);

/* Keeps a fetched certificate in memory and in the certificate folder. */
void webhook_sns_remember(webhook_endpoint *endpoint, const char *url,
                          const char *pem, size_t size);

/*
 * Fetches an https URL with a blocking libcurl call, for the thread pool:
 * no redirects, at most 64 KiB, 10 s. *body is malloc'd and
 * NUL-terminated.
 */
outbox_err webhook_fetch(char **body, size_t *size, outbox_error *err,
                         const char *url);

#endif /* OUTBOXD_WEBHOOK_H */
