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
    const char *content_type;
    const char *authorization;
    const char *signature;       /* X-Twilio-Email-Event-Webhook-Signature */
    const char *timestamp;       /* X-Twilio-Email-Event-Webhook-Timestamp */
    const char *body;
    size_t body_size;
    int64_t now;
} webhook_request;

typedef struct webhook_endpoint {
    char *provider;              /* configured provider name */
    const char *type;            /* sendgrid, mailgun, postmark, ses */
    char *path;                  /* "/webhooks/<provider>" */
    char *secret;                /* key, signing key or password */
    char *username;              /* Postmark's basic auth user */
    bool insecure;               /* webhook_insecure_skip_verification */
    outbox_token_cache *tokens;  /* Mailgun's replay protection */
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
const webhook_endpoint *webhook_find(const webhook_endpoints *endpoints,
                                     const char *path);

/*
 * Checks that request came from the endpoint's provider, then parses its
 * events into batch. Returns the HTTP status to answer when it cannot go
 * on (401 unauthenticated, 400 malformed, 413 too many events, 415 wrong
 * content type) with err saying why, or 0 when batch is ready to store.
 */
int webhook_accept(const webhook_endpoint *endpoint,
                   const webhook_request *request, int max_age,
                   outbox_event_batch *batch, outbox_error *err);

#endif /* OUTBOXD_WEBHOOK_H */
