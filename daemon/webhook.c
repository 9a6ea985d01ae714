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
#include <strings.h>

#include <arpa/inet.h>
#include <curl/curl.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>

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
    /* SES: the certificate folder; Postmark: the allowed addresses. */
    const char *extra;
} webhook_keys;

static const webhook_keys known_types[] = {
    {"sendgrid", "webhook_public_key", "webhook_public_key_env", NULL, NULL},
    {"mailgun", "webhook_signing_key", "webhook_signing_key_env", NULL,
     NULL},
    {"postmark", "webhook_password", "webhook_password_env",
     "webhook_username", "webhook_allow_from"},
    {"ses", "webhook_topic_arn", NULL, NULL, "webhook_certificate_folder"},
};

/* True if key is name, where name may be NULL. */
static bool key_is(const char *key, const char *name)
{
    return name != NULL && strcmp(key, name) == 0;
}

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
            || key_is(key, keys->secret) || key_is(key, keys->secret_env)
            || key_is(key, keys->username) || key_is(key, keys->extra))
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
    const cJSON *env = keys->secret_env != NULL
                           ? cJSON_GetObjectItemCaseSensitive(provider,
                                                              keys->secret_env)
                           : NULL;
    const char *text = NULL;

    if (cJSON_IsString(value))
        text = value->valuestring;
    else if (cJSON_IsString(env))
        text = getenv(env->valuestring);
    if ((text == NULL || text[0] == '\0') && keys->secret_env == NULL)
        return outbox_error_set(err, OUTBOX_ECONFIG, "config",
                                "provider \"%s\": the webhook needs \"%s\"",
                                endpoint->provider, keys->secret);
    if (text == NULL || text[0] == '\0')
        return outbox_error_set(err, OUTBOX_ECONFIG, "config",
                                "provider \"%s\": the webhook needs \"%s\", "
                                "or \"%s\" naming a set environment variable",
                                endpoint->provider, keys->secret,
                                keys->secret_env);
    return copy_string(&endpoint->secret, err, text);
}

/* Reads the optional list of addresses a Postmark webhook may come from. */
static outbox_err read_allow_from(webhook_endpoint *endpoint,
                                  outbox_error *err, const cJSON *provider,
                                  const char *key)
{
    const cJSON *list = cJSON_GetObjectItemCaseSensitive(provider, key);
    const cJSON *item;
    size_t count = 0;

    if (list == NULL)
        return OUTBOX_EOK;
    if (!cJSON_IsArray(list) || cJSON_GetArraySize(list) == 0
        || cJSON_GetArraySize(list) > 256)
        return outbox_error_set(err, OUTBOX_ECONFIG, "config",
                                "provider \"%s\": \"%s\" must be a list of "
                                "1 to 256 IP addresses", endpoint->provider,
                                key);
    endpoint->allow_from = calloc((size_t)cJSON_GetArraySize(list),
                                  sizeof(char *));
    if (endpoint->allow_from == NULL)
        return outbox_error_set(err, OUTBOX_ENOMEM, "config",
                                "out of memory");
    cJSON_ArrayForEach(item, list)
    {
        unsigned char address[16];

        if (!cJSON_IsString(item)
            || (inet_pton(AF_INET, item->valuestring, address) != 1
                && inet_pton(AF_INET6, item->valuestring, address) != 1))
            return outbox_error_set(err, OUTBOX_ECONFIG, "config",
                                    "provider \"%s\": \"%s\" entry %zu is "
                                    "not an IP address", endpoint->provider,
                                    key, count + 1);
        if (copy_string(&endpoint->allow_from[count], err, item->valuestring)
            != OUTBOX_EOK)
            return OUTBOX_ENOMEM;
        endpoint->allow_from_count = ++count;
    }
    return OUTBOX_EOK;
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
    if (rc == OUTBOX_EOK && strcmp(keys->type, "postmark") == 0)
        rc = read_allow_from(endpoint, err, provider, keys->extra);
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
    if (rc == OUTBOX_EOK && strcmp(keys->type, "ses") == 0) {
        const cJSON *folder = cJSON_GetObjectItemCaseSensitive(provider,
                                                               keys->extra);

        if (folder != NULL
            && (!cJSON_IsString(folder) || folder->valuestring[0] == '\0'))
            return outbox_error_set(err, OUTBOX_ECONFIG, "config",
                                    "provider \"%s\": \"%s\" must be a "
                                    "folder name", name, keys->extra);
        if (folder != NULL)
            rc = copy_string(&endpoint->certificate_folder, err,
                             folder->valuestring);
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
        free(endpoint->certificate_folder);
        for (size_t j = 0; j < endpoint->allow_from_count; j++)
            free(endpoint->allow_from[j]);
        free(endpoint->allow_from);
        for (size_t j = 0; j < endpoint->certificate_count; j++) {
            free(endpoint->certificates[j].url);
            free(endpoint->certificates[j].pem);
        }
        outbox_token_cache_free(endpoint->tokens);
    }
    free(endpoints->items);
    memset(endpoints, 0, sizeof(*endpoints));
}

webhook_endpoint *webhook_find(const webhook_endpoints *endpoints,
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
                                   request->body, request->body_size,
                                   request->now))
        rc = outbox_error_set(err, OUTBOX_EINVAL, "unauthenticated",
                              "signature: the token was used before with "
                              "another body (a replayed request)");
    return rc;
}

/* True if the endpoint has no allow list, or peer is on it. */
static bool peer_allowed(const webhook_endpoint *endpoint, const char *peer)
{
    if (endpoint->allow_from_count == 0)
        return true;
    for (size_t i = 0; peer != NULL && i < endpoint->allow_from_count; i++) {
        if (strcmp(endpoint->allow_from[i], peer) == 0)
            return true;
    }
    return false;
}

static outbox_err check_request(const webhook_endpoint *endpoint,
                                const webhook_request *request, int max_age,
                                outbox_error *err)
{
    /* An allow list applies even without the other checks. */
    if (!peer_allowed(endpoint, request->peer))
        return outbox_error_set(err, OUTBOX_EINVAL, "forbidden_source",
                                "source address %s is not in "
                                "webhook_allow_from",
                                request->peer ? request->peer : "(unknown)");
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
        return strcmp(err->kind, "forbidden_source") == 0 ? 403 : 401;
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

/* ------------------------------------------------------------------ */
/* Amazon SES through SNS                                              */
/* ------------------------------------------------------------------ */

/* Caps on what the daemon fetches from SNS. */
#define FETCH_MAX_BYTES (64 * 1024)
#define FETCH_TIMEOUT_SECONDS 10L

/* Names the cache file of url: the SHA-256 of the URL in hex, ".pem". */
static bool certificate_path(char *out, size_t size, const char *folder,
                             const char *url)
{
    unsigned char digest[32];
    char hex[65];
    int length;

    if (EVP_Digest(url, strlen(url), digest, NULL, EVP_sha256(), NULL) != 1)
        return false;
    for (size_t i = 0; i < sizeof(digest); i++)
        snprintf(hex + 2 * i, 3, "%02x", digest[i]);
    length = snprintf(out, size, "%s/%s.pem", folder, hex);
    return length > 0 && (size_t)length < size;
}

static const webhook_certificate *find_certificate(
    const webhook_endpoint *endpoint, const char *url)
{
    for (size_t i = 0; i < endpoint->certificate_count; i++) {
        if (strcmp(endpoint->certificates[i].url, url) == 0)
            return &endpoint->certificates[i];
    }
    return NULL;
}

/* Keeps pem in memory, dropping the oldest certificate when full. */
static void keep_certificate(webhook_endpoint *endpoint, const char *url,
                             const char *pem, size_t size)
{
    webhook_certificate *slot;
    char *url_copy = strdup(url);
    char *pem_copy = malloc(size + 1);

    if (url_copy == NULL || pem_copy == NULL) {
        free(url_copy);
        free(pem_copy);
        return;
    }
    memcpy(pem_copy, pem, size);
    pem_copy[size] = '\0';
    if (endpoint->certificate_count == WEBHOOK_CERTIFICATES_MAX) {
        free(endpoint->certificates[0].url);
        free(endpoint->certificates[0].pem);
        memmove(&endpoint->certificates[0], &endpoint->certificates[1],
                (WEBHOOK_CERTIFICATES_MAX - 1) * sizeof(webhook_certificate));
        endpoint->certificate_count--;
    }
    slot = &endpoint->certificates[endpoint->certificate_count++];
    slot->url = url_copy;
    slot->pem = pem_copy;
    slot->size = size;
}

/* Loads url's certificate from the folder into memory, if it is there. */
static void load_certificate(webhook_endpoint *endpoint, const char *url)
{
    char path[4096];
    char pem[FETCH_MAX_BYTES + 1];
    FILE *file;
    size_t size;

    if (endpoint->certificate_folder == NULL
        || !certificate_path(path, sizeof(path),
                             endpoint->certificate_folder, url))
        return;
    file = fopen(path, "rb");
    if (file == NULL)
        return;
    size = fread(pem, 1, sizeof(pem), file);
    fclose(file);
    if (size > 0 && size <= FETCH_MAX_BYTES)
        keep_certificate(endpoint, url, pem, size);
}

void webhook_sns_remember(webhook_endpoint *endpoint, const char *url,
                          const char *pem, size_t size)
{
    char path[4096];
    FILE *file;

    keep_certificate(endpoint, url, pem, size);
    if (endpoint->certificate_folder == NULL
        || !certificate_path(path, sizeof(path),
                             endpoint->certificate_folder, url))
        return;
    file = fopen(path, "wb");
    if (file == NULL)
        return;
    fwrite(pem, 1, size, file);
    fclose(file);
}

int webhook_sns_check(webhook_endpoint *endpoint,
                      const webhook_request *request, int max_age,
                      outbox_sns_message *message, const char **fetch_url,
                      outbox_error *err)
{
    *fetch_url = NULL;
    if (!media_type_is(request->content_type, "text/plain")
        && !media_type_is(request->content_type, "application/json")) {
        outbox_error_set(err, OUTBOX_EINVAL, "unsupported_media_type",
                         "Content-Type must be text/plain, as SNS sends it");
        return 415;
    }
    if (outbox_sns_parse(message, err, request->body, request->body_size)
        != OUTBOX_EOK)
        return 400;
    if (endpoint->insecure)
        return 0;
    if (message->topic_arn == NULL
        || strcmp(message->topic_arn, endpoint->secret) != 0) {
        outbox_error_set(err, OUTBOX_EINVAL, "unauthenticated",
                         "TopicArn \"%.200s\" is not webhook_topic_arn",
                         message->topic_arn ? message->topic_arn : "");
        return 403;
    }
    if (outbox_sns_check_timestamp(err, message, request->now, max_age)
            != OUTBOX_EOK
        || outbox_sns_check_cert_url(err, message->signing_cert_url)
               != OUTBOX_EOK)
        return 403;
    if (find_certificate(endpoint, message->signing_cert_url) == NULL)
        load_certificate(endpoint, message->signing_cert_url);
    if (find_certificate(endpoint, message->signing_cert_url) == NULL) {
        *fetch_url = message->signing_cert_url;
        return -1;
    }
    return 0;
}

int webhook_sns_finish(webhook_endpoint *endpoint,
                       const webhook_request *request,
                       const outbox_sns_message *message,
                       outbox_event_batch *batch, const char **confirm_url,
                       outbox_error *err)
{
    const webhook_certificate *certificate =
        find_certificate(endpoint, message->signing_cert_url);
    outbox_err rc;

    *confirm_url = NULL;
    if (!endpoint->insecure
        && (certificate == NULL
            || outbox_sns_verify(err, message, certificate->pem,
                                 certificate->size) != OUTBOX_EOK))
        return certificate == NULL ? 503 : 403;
    if (message->type == OUTBOX_SNS_SUBSCRIPTION_CONFIRMATION) {
        if (outbox_sns_check_subscribe_url(err, message->subscribe_url)
            != OUTBOX_EOK)
            return 403;
        *confirm_url = message->subscribe_url;
        return 0;
    }
    if (message->type != OUTBOX_SNS_NOTIFICATION)
        return 0;
    rc = outbox_events_parse_ses(batch, err, request->body,
                                 request->body_size);
    if (rc == OUTBOX_ELIMIT)
        return 413;
    return rc == OUTBOX_EOK ? 0 : 400;
}

typedef struct fetch_buffer {
    char *data;
    size_t size;
} fetch_buffer;

static size_t on_fetch_data(char *data, size_t size, size_t count,
                            void *user)
{
    fetch_buffer *buffer = user;
    size_t length = size * count;

    if (buffer->size + length > FETCH_MAX_BYTES)
        return 0;
    memcpy(buffer->data + buffer->size, data, length);
    buffer->size += length;
    buffer->data[buffer->size] = '\0';
    return length;
}

#ifdef OUTBOX_FAULT_HOOKS
/*
 * Test builds reach a fake SNS on 127.0.0.1. OUTBOXD_TEST_SNS_CONNECT_TO
 * is one CURLOPT_CONNECT_TO entry ("HOST:443:127.0.0.1:PORT"), and
 * OUTBOXD_TEST_SNS_CA a CA file for the fake's certificate. The URL stays
 * as it is, so the SNS host check and TLS's name check still apply. An
 * entry that does not lead to 127.0.0.1 is ignored.
 */
static struct curl_slist *redirect_for_tests(CURL *easy)
{
    const char *connect_to = getenv("OUTBOXD_TEST_SNS_CONNECT_TO");
    const char *ca = getenv("OUTBOXD_TEST_SNS_CA");
    struct curl_slist *list;

    if (connect_to == NULL || ca == NULL
        || strstr(connect_to, ":127.0.0.1:") == NULL)
        return NULL;
    list = curl_slist_append(NULL, connect_to);
    if (list != NULL) {
        curl_easy_setopt(easy, CURLOPT_CONNECT_TO, list);
        curl_easy_setopt(easy, CURLOPT_CAINFO, ca);
    }
    return list;
}
#else
static struct curl_slist *redirect_for_tests(CURL *easy)
{
    (void)easy;
    return NULL;
}
#endif

outbox_err webhook_fetch(char **body, size_t *size, outbox_error *err,
                         const char *url)
{
    fetch_buffer buffer = {malloc(FETCH_MAX_BYTES + 1), 0};
    CURL *easy = curl_easy_init();
    struct curl_slist *connect_to;
    long status = 0;
    CURLcode code;

    *body = NULL;
    *size = 0;
    if (buffer.data == NULL || easy == NULL) {
        free(buffer.data);
        curl_easy_cleanup(easy);
        return outbox_error_set(err, OUTBOX_ENOMEM, "internal",
                                "out of memory fetching %s", url);
    }
    buffer.data[0] = '\0';
    curl_easy_setopt(easy, CURLOPT_URL, url);
    curl_easy_setopt(easy, CURLOPT_PROTOCOLS_STR, "https");
    curl_easy_setopt(easy, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(easy, CURLOPT_TIMEOUT, FETCH_TIMEOUT_SECONDS);
    curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, on_fetch_data);
    curl_easy_setopt(easy, CURLOPT_WRITEDATA, &buffer);
    connect_to = redirect_for_tests(easy);
    code = curl_easy_perform(easy);
    curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_cleanup(easy);
    curl_slist_free_all(connect_to);

    /* This runs on a libuv pool thread, which lives until the process
     * exits. OpenSSL keeps the TLS handshake's per-thread state (random
     * generators, error queue) until the thread ends, so free it now. */
    OPENSSL_thread_stop();
    if (code != CURLE_OK || status != 200) {
        /* The query of a SubscribeURL carries the confirmation token. */
        int url_length = (int)strcspn(url, "?");

        free(buffer.data);
        return outbox_error_set(err, OUTBOX_EIO, "fetch_failed",
                                "fetching %.*s failed: %s (HTTP %ld)",
                                url_length < 300 ? url_length : 300, url,
                                curl_easy_strerror(code), status);
    }
    *body = buffer.data;
    *size = buffer.size;
    return OUTBOX_EOK;
}
