/*
 * webhook.c - per-provider webhook endpoints: reading their secrets from
 * the provider objects of the config, checking that a request is
 * authentic, and parsing its events.
 *
 * A check always runs before the parser, so a forged request changes
 * nothing and costs little. Accepting requests without a check takes the
 * provider key webhook_insecure_skip_verification, whose name says what it
 * does.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "webhook.h"

/* Replay protection for Mailgun: tokens remembered per endpoint. */
#define TOKEN_CACHE_CAPACITY 20000

/* The webhook keys each provider type takes, besides the insecure switch;
 * the first one of each pair is required. */
typedef struct webhook_keys {
    const char *type;
    const char *secret;          /* value in config */
    const char *secret_env;      /* or the environment variable it names */
    const char *username;        /* Postmark only */
} webhook_keys;

static const webhook_keys known_types[] = {
    {"sendgrid", "webhook_public_key", "webhook_public_key_env", NULL},
    {"mailgun", "webhook_signing_key", "webhook_signing_key_env", NULL},
    {"postmark", "webhook_password", "webhook_password_env",
     "webhook_username"},
};

#define INSECURE_KEY "webhook_insecure_skip_verification"

static const webhook_keys *find_type(const char *type)
{
    for (size_t i = 0; i < sizeof(known_types) / sizeof(known_types[0]); i++) {
        if (strcmp(known_types[i].type, type) == 0)
            return &known_types[i];
    }
    return NULL;
}

static bool has_webhook_keys(const cJSON *provider)
{
    const cJSON *item;

    cJSON_ArrayForEach(item, provider)
    {
        if (strncmp(item->string, "webhook_", 8) == 0)
            return true;
    }
    return false;
}

/* Rejects webhook_* keys that the provider's type does not take. */
static outbox_err check_keys(outbox_error *err, const char *name,
                             const webhook_keys *keys, const cJSON *provider)
{
    const cJSON *item;

    cJSON_ArrayForEach(item, provider)
    {
        const char *key = item->string;

        if (strncmp(key, "webhook_", 8) != 0 || strcmp(key, INSECURE_KEY) == 0
            || strcmp(key, keys->secret) == 0
            || strcmp(key, keys->secret_env) == 0
            || (keys->username != NULL && strcmp(key, keys->username) == 0))
            continue;
        return outbox_error_set(err, OUTBOX_ECONFIG, "config",
                                "provider \"%s\": unknown key \"%s\" for a "
                                "%s webhook", name, key, keys->type);
    }
    return OUTBOX_EOK;
}

static outbox_err copy_string(char **out, outbox_error *err, const char *text)
{
    *out = strdup(text);
    return *out != NULL ? OUTBOX_EOK
                        : outbox_error_set(err, OUTBOX_ENOMEM, "config",
                                           "out of memory");
}

/* Reads the secret from config or from the variable it names. */
static outbox_err read_secret(webhook_endpoint *endpoint, outbox_error *err,
                              const webhook_keys *keys, const cJSON *provider)
{
    const cJSON *value = cJSON_GetObjectItemCaseSensitive(provider,
                                                          keys->secret);
    const cJSON *env = cJSON_GetObjectItemCaseSensitive(provider,
                                                        keys->secret_env);
    const char *text = NULL;

    if (cJSON_IsString(value))
        text = value->valuestring;
    else if (cJSON_IsString(env))
        text = getenv(env->valuestring);
    if (text == NULL || text[0] == '\0')
        return outbox_error_set(err, OUTBOX_ECONFIG, "config",
                                "provider \"%s\": the webhook needs \"%s\", "
                                "or \"%s\" naming a set environment variable",
                                endpoint->provider, keys->secret,
                                keys->secret_env);
    return copy_string(&endpoint->secret, err, text);
}

static outbox_err load_endpoint(webhook_endpoint *endpoint, outbox_error *err,
                                const cJSON *provider, int max_age)
{
    const char *name =
        cJSON_GetObjectItemCaseSensitive(provider, "name")->valuestring;
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(provider, "type");
    const cJSON *insecure = cJSON_GetObjectItemCaseSensitive(provider,
                                                             INSECURE_KEY);
    const webhook_keys *keys =
        cJSON_IsString(type) ? find_type(type->valuestring) : NULL;
    char path[128];
    outbox_err rc = copy_string(&endpoint->provider, err, name);

    if (rc != OUTBOX_EOK)
        return rc;
    if (keys == NULL)
        return outbox_error_set(err, OUTBOX_ECONFIG, "config",
                                "provider \"%s\": type %s takes no webhook "
                                "keys", name,
                                cJSON_IsString(type) ? type->valuestring
                                                     : "(none)");
    endpoint->type = keys->type;
    rc = check_keys(err, name, keys, provider);
    if (rc != OUTBOX_EOK)
        return rc;
    if (insecure != NULL && !cJSON_IsBool(insecure))
        return outbox_error_set(err, OUTBOX_ECONFIG, "config",
                                "provider \"%s\": \"%s\" must be true or "
                                "false", name, INSECURE_KEY);
    endpoint->insecure = cJSON_IsTrue(insecure);
    snprintf(path, sizeof(path), "/webhooks/%s", name);
    rc = copy_string(&endpoint->path, err, path);
    if (rc != OUTBOX_EOK || endpoint->insecure)
        return rc;

    rc = read_secret(endpoint, err, keys, provider);
    if (rc == OUTBOX_EOK && keys->username != NULL) {
        const cJSON *user = cJSON_GetObjectItemCaseSensitive(provider,
                                                             keys->username);

        if (!cJSON_IsString(user) || user->valuestring[0] == '\0')
            return outbox_error_set(err, OUTBOX_ECONFIG, "config",
                                    "provider \"%s\": the webhook needs "
                                    "\"%s\"", name, keys->username);
        rc = copy_string(&endpoint->username, err, user->valuestring);
    }
    if (rc == OUTBOX_EOK && strcmp(keys->type, "mailgun") == 0)
        rc = outbox_token_cache_create(&endpoint->tokens,
                                       TOKEN_CACHE_CAPACITY, max_age);
    if (rc == OUTBOX_ENOMEM)
        outbox_error_set(err, rc, "config", "out of memory");
    return rc;
}

outbox_err webhook_endpoints_load(webhook_endpoints *out, outbox_error *err,
                                  const cJSON *providers, int max_age)
{
    const cJSON *provider;
    size_t count = 0;
    outbox_err rc = OUTBOX_EOK;

    memset(out, 0, sizeof(*out));
    cJSON_ArrayForEach(provider, providers)
        count += has_webhook_keys(provider) ? 1 : 0;
    if (count == 0)
        return OUTBOX_EOK;
    out->items = calloc(count, sizeof(*out->items));
    if (out->items == NULL)
        return outbox_error_set(err, OUTBOX_ENOMEM, "config",
                                "out of memory");
    cJSON_ArrayForEach(provider, providers)
    {
        if (rc != OUTBOX_EOK || !has_webhook_keys(provider))
            continue;
        rc = load_endpoint(&out->items[out->count++], err, provider,
                           max_age);
    }
    if (rc != OUTBOX_EOK)
        webhook_endpoints_free(out);
    return rc;
}

void webhook_endpoints_free(webhook_endpoints *endpoints)
{
    for (size_t i = 0; i < endpoints->count; i++) {
        webhook_endpoint *endpoint = &endpoints->items[i];

        free(endpoint->provider);
        free(endpoint->path);
        free(endpoint->secret);
        free(endpoint->username);
        outbox_token_cache_free(endpoint->tokens);
    }
    free(endpoints->items);
    memset(endpoints, 0, sizeof(*endpoints));
}

const webhook_endpoint *webhook_find(const webhook_endpoints *endpoints,
                                     const char *path)
{
    for (size_t i = 0; i < endpoints->count; i++) {
        if (strcmp(endpoints->items[i].path, path) == 0)
            return &endpoints->items[i];
    }
    return NULL;
}

/* True if the media type of content_type is type (parameters ignored). */
static bool media_type_is(const char *content_type, const char *type)
{
    size_t length = strlen(type);

    return content_type != NULL
           && strncasecmp(content_type, type, length) == 0
           && (content_type[length] == '\0' || content_type[length] == ';'
               || content_type[length] == ' ');
}

/* Checks Mailgun's signature object, then the token cache. */
static outbox_err check_mailgun(const webhook_endpoint *endpoint,
                                const webhook_request *request, int max_age,
                                outbox_error *err)
{
    outbox_mailgun_signature signature;
    outbox_err rc = outbox_mailgun_signature_read(&signature, err,
                                                  request->body,
                                                  request->body_size);

    if (rc == OUTBOX_EOK)
        rc = outbox_verify_mailgun(err, endpoint->secret, signature.timestamp,
                                   signature.token, signature.signature,
                                   request->now, max_age);
    if (rc == OUTBOX_EOK
        && !outbox_token_cache_add(endpoint->tokens, signature.token,
                                   request->now))
        rc = outbox_error_set(err, OUTBOX_EINVAL, "unauthenticated",
                              "signature: the token was used before "
                              "(a replayed request)");
    return rc;
}

static outbox_err check_request(const webhook_endpoint *endpoint,
                                const webhook_request *request, int max_age,
                                outbox_error *err)
{
    if (endpoint->insecure)
        return OUTBOX_EOK;
    if (strcmp(endpoint->type, "sendgrid") == 0) {
        if (request->signature == NULL || request->timestamp == NULL)
            return outbox_error_set(err, OUTBOX_EINVAL, "unauthenticated",
                                    "the signature or timestamp header is "
                                    "missing");
        return outbox_verify_sendgrid(err, endpoint->secret,
                                      request->signature, request->timestamp,
                                      request->body, request->body_size,
                                      request->now, max_age);
    }
    if (strcmp(endpoint->type, "mailgun") == 0)
        return check_mailgun(endpoint, request, max_age, err);
    return outbox_verify_basic_auth(err, request->authorization,
                                    endpoint->username, endpoint->secret);
}

int webhook_accept(const webhook_endpoint *endpoint,
                   const webhook_request *request, int max_age,
                   outbox_event_batch *batch, outbox_error *err)
{
    outbox_err rc;

    if (!media_type_is(request->content_type, "application/json")) {
        outbox_error_set(err, OUTBOX_EINVAL, "unsupported_media_type",
                         "Content-Type must be application/json");
        return 415;
    }
    if (check_request(endpoint, request, max_age, err) != OUTBOX_EOK)
        return 401;
    if (strcmp(endpoint->type, "sendgrid") == 0)
        rc = outbox_events_parse_sendgrid(batch, err, request->body,
                                          request->body_size);
    else if (strcmp(endpoint->type, "mailgun") == 0)
        rc = outbox_events_parse_mailgun(batch, err, request->body,
                                         request->body_size);
    else
        rc = outbox_events_parse_postmark(batch, err, request->body,
                                          request->body_size);
    if (rc == OUTBOX_ELIMIT)
        return 413;
    return rc == OUTBOX_EOK ? 0 : 400;
}
