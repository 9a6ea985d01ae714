/*
 * provider_ses.c - delivery through Amazon SES v2: SendEmail, that is
 * POST {base_url}/v2/email/outbound-emails with a JSON body
 * (provider_ses_body.c, provider_ses_tags.c), signed with AWS Signature
 * Version 4 by libcurl (CURLOPT_AWS_SIGV4) with the credentials of
 * provider_ses_credentials.c. Responses are classified in
 * provider_ses_classify.c.
 *
 * Config keys of a provider of type "ses":
 *   region                   required, such as "eu-central-1"
 *   base_url                 default https://email.<region>.amazonaws.com
 *   access_key_id, access_key_id_env          the key id, or the variable
 *                            that contains it; default AWS_ACCESS_KEY_ID
 *   secret_access_key, secret_access_key_env  default AWS_SECRET_ACCESS_KEY
 *   session_token, session_token_env          sent as X-Amz-Security-Token;
 *                            default AWS_SESSION_TOKEN, but only when the
 *                            key id and secret also come from the default
 *                            variables, so that keys of two identities are
 *                            never mixed
 *   configuration_set        ConfigurationSetName of every message
 *   timeout_seconds          whole transfer, default 30
 *   connect_timeout_seconds  default 10
 *   max_message_bytes        default 41943040 (40 MiB); 0 turns the check
 *                            off
 *   quota_retry_seconds      wait after "Daily message quota exceeded" and
 *                            LimitExceeded, default 600
 *
 * Credentials are read once, when the provider is created. Known
 * limitation: temporary credentials that expire need a restart, and
 * credentials from an instance profile or a shared credentials file are
 * not read.
 *
 * How responses are classified (the error name comes from the
 * X-Amzn-ErrorType header, else from the body's "__type" or "type"):
 *   2xx                         sent; the body's MessageId is stored
 *   no response, 5xx            retry
 *   "Daily message quota exceeded"  retry after quota_retry_seconds,
 *                               kind quota_exceeded, no attempt used up
 *   429, TooManyRequests, Throttling  retry after Retry-After, else
 *                               after 1 s, kind rate_limited, no attempt
 *                               used up
 *   LimitExceeded               retry after quota_retry_seconds
 *   SendingPaused, AccountSuspended, MailFromDomainNotVerified, NotFound,
 *   401, 403                    misconfigured: the provider pauses
 *   "Message length is more than", 413  failed, kind message_too_large
 *   MessageRejected, BadRequest, other 4xx  failed
 *   3xx                         misconfigured: base_url points at a redirect
 *   anything else               unknown: SES may or may not have the message
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "internal.h"
#include "provider_ses.h"

#define SES_SEND_PATH "/v2/email/outbound-emails"
#define SES_DEFAULT_TIMEOUT 30
#define SES_DEFAULT_CONNECT_TIMEOUT 10
#define SES_DEFAULT_QUOTA_RETRY 600

/* Maximum timeout and quota wait accepted in config: one day. */
#define SES_MAX_SECONDS 86400

/* Maximum length of a region name such as "ap-southeast-5". */
#define SES_MAX_REGION 32

typedef struct ses_state {
    char *name;
    char *url;              /* base_url + SES_SEND_PATH */
    char *sigv4;            /* "aws:amz:<region>:ses" */
    char *userpwd;          /* "<key id>:<secret>": a secret */
    char *token_header;     /* "X-Amz-Security-Token: ...": a secret */
    char *configuration_set;
    long timeout;
    long connect_timeout;
    size_t max_message_bytes;
    int64_t quota_delay;
    outbox_logger logger;
} ses_state;

/* What one transfer needs until it ends. */
typedef struct ses_request {
    char *body;
    struct curl_slist *headers;
} ses_request;

/* ------------------------------------------------------------------ */
/* Config                                                              */
/* ------------------------------------------------------------------ */

/* Returns true if text is 1 to max characters of [a-z0-9-], or of
 * [A-Za-z0-9_-] when any_case is set. */
static bool is_simple_name(const char *text, size_t max, bool any_case)
{
    size_t length = strlen(text);

    if (length == 0 || length > max)
        return false;
    for (size_t i = 0; i < length; i++) {
        char c = text[i];
        bool upper = c >= 'A' && c <= 'Z';

        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-'
              || (any_case && (upper || c == '_'))))
            return false;
    }
    return true;
}

static outbox_err read_region(ses_state *state, outbox_error *err,
                              const cJSON *config, const char **region)
{
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(config, "region");
    const char *prefix = "aws:amz:";

    if (!cJSON_IsString(item)
        || !is_simple_name(item->valuestring, SES_MAX_REGION, false))
        return outbox_error_set(err, OUTBOX_ECONFIG, "config",
                                "provider \"%s\": missing or invalid "
                                "\"region\": expected an AWS region such as "
                                "\"eu-central-1\"",
                                state->name);
    *region = item->valuestring;
    state->sigv4 = malloc(strlen(prefix) + strlen(*region) + 5);
    if (state->sigv4 == NULL)
        return OUTBOX_ENOMEM;
    sprintf(state->sigv4, "%s%s:ses", prefix, *region);
    return OUTBOX_EOK;
}

static outbox_err read_base_url(ses_state *state, outbox_error *err,
                                const cJSON *config, const char *region)
{
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(config, "base_url");
    char fallback[96];
    const char *base = fallback;
    size_t length;

    snprintf(fallback, sizeof(fallback), "https://email.%s.amazonaws.com",
             region);
    if (item != NULL) {
        if (!cJSON_IsString(item)
            || !outbox__provider_url_valid(item->valuestring))
            return outbox_error_set(err, OUTBOX_ECONFIG, "config",
                                    "provider \"%s\": invalid \"base_url\": "
                                    "expected http:// or https:// and a "
                                    "host, such as %s",
                                    state->name, fallback);
        base = item->valuestring;
    }

    /* A trailing slash is tolerated because the path brings its own. */
    length = strlen(base);
    while (length > 0 && base[length - 1] == '/')
        length--;
    state->url = malloc(length + sizeof(SES_SEND_PATH));
    if (state->url == NULL)
        return OUTBOX_ENOMEM;
    memcpy(state->url, base, length);
    memcpy(state->url + length, SES_SEND_PATH, sizeof(SES_SEND_PATH));
    return OUTBOX_EOK;
}

static outbox_err read_configuration_set(ses_state *state, outbox_error *err,
                                         const cJSON *config)
{
    const cJSON *item =
        cJSON_GetObjectItemCaseSensitive(config, "configuration_set");

    if (item == NULL)
        return OUTBOX_EOK;
    if (!cJSON_IsString(item) || !is_simple_name(item->valuestring, 64, true))
        return outbox_error_set(err, OUTBOX_ECONFIG, "config",
                                "provider \"%s\": invalid "
                                "\"configuration_set\": expected 1 to 64 "
                                "letters, digits, \"_\" or \"-\"",
                                state->name);
    state->configuration_set = outbox__strdup(item->valuestring);
    return state->configuration_set != NULL ? OUTBOX_EOK : OUTBOX_ENOMEM;
}

static outbox_err read_numbers(ses_state *state, outbox_error *err,
                               const cJSON *config)
{
    outbox_http_settings settings = {SES_DEFAULT_TIMEOUT,
                                     SES_DEFAULT_CONNECT_TIMEOUT,
                                     OUTBOX_SES_DEFAULT_MAX_MESSAGE};
    double value = SES_DEFAULT_QUOTA_RETRY;
    outbox_err rc = outbox__provider_http_settings(&settings, err,
                                                   state->name, config);

    if (rc == OUTBOX_EOK)
        rc = outbox__provider_whole_number(&value, err, state->name, config,
                                           "quota_retry_seconds",
                                           SES_DEFAULT_QUOTA_RETRY, 1,
                                           SES_MAX_SECONDS);
    state->timeout = settings.timeout;
    state->connect_timeout = settings.connect_timeout;
    state->max_message_bytes = settings.max_message_bytes;
    state->quota_delay = (int64_t)value;
    return rc;
}

static void ses_destroy(void *opaque)
{
    ses_state *state = opaque;

    if (state == NULL)
        return;
    outbox__ses_free_secret(state->userpwd);
    outbox__ses_free_secret(state->token_header);
    free(state->configuration_set);
    free(state->sigv4);
    free(state->url);
    free(state->name);
    free(state);
}

static outbox_err ses_create(void **out, outbox_error *err, const char *name,
                             const cJSON *config, const outbox_logger *logger)
{
    ses_state *state = calloc(1, sizeof(*state));
    const char *region = NULL;
    outbox_err rc = OUTBOX_ENOMEM;

    *out = NULL;
    if (state == NULL)
        goto cleanup;
    if (logger != NULL)
        state->logger = *logger;
    state->name = outbox__strdup(name);
    if (state->name == NULL)
        goto cleanup;
    rc = read_region(state, err, config, &region);
    if (rc == OUTBOX_EOK)
        rc = read_base_url(state, err, config, region);
    if (rc == OUTBOX_EOK)
        rc = read_configuration_set(state, err, config);
    if (rc == OUTBOX_EOK)
        rc = read_numbers(state, err, config);
    if (rc == OUTBOX_EOK)
        rc = outbox__ses_read_credentials(&state->userpwd,
                                          &state->token_header, err,
                                          state->name, config);
    if (rc == OUTBOX_EOK) {
        *out = state;
        return OUTBOX_EOK;
    }

cleanup:
    if (rc == OUTBOX_ENOMEM)
        outbox_error_set(err, rc, "internal",
                         "provider \"%s\": out of memory", name);
    ses_destroy(state);
    return rc;
}

/* ------------------------------------------------------------------ */
/* Requests                                                            */
/* ------------------------------------------------------------------ */

static void ses_release(void *opaque)
{
    ses_request *request = opaque;

    if (request == NULL)
        return;
    curl_slist_free_all(request->headers);
    cJSON_free(request->body);
    free(request);
}

static struct curl_slist *build_request_headers(const ses_state *state)
{
    static const char *const fixed[] = {
        "Content-Type: application/json",
        "Accept: application/json",
    };
    struct curl_slist *headers = NULL;

    for (size_t i = 0; i < 3; i++) {
        const char *line = i < 2 ? fixed[i] : state->token_header;
        struct curl_slist *grown;

        if (line == NULL)
            continue;
        grown = curl_slist_append(headers, line);
        if (grown == NULL) {
            curl_slist_free_all(headers);
            return NULL;
        }
        headers = grown;
    }
    return headers;
}

static CURLcode set_request_options(CURL *easy, const ses_state *state,
                                    const ses_request *request, size_t size)
{
    CURLcode code = curl_easy_setopt(easy, CURLOPT_URL, state->url);

    if (code == CURLE_OK)
        code = curl_easy_setopt(easy, CURLOPT_PROTOCOLS_STR, "http,https");
    if (code == CURLE_OK)
        code = curl_easy_setopt(easy, CURLOPT_FOLLOWLOCATION, 0L);
    if (code == CURLE_OK)
        code = curl_easy_setopt(easy, CURLOPT_POST, 1L);
    if (code == CURLE_OK)
        code = curl_easy_setopt(easy, CURLOPT_POSTFIELDSIZE_LARGE,
                                (curl_off_t)size);
    if (code == CURLE_OK)
        code = curl_easy_setopt(easy, CURLOPT_POSTFIELDS, request->body);
    if (code == CURLE_OK)
        code = curl_easy_setopt(easy, CURLOPT_HTTPHEADER, request->headers);
    if (code == CURLE_OK)
        code = curl_easy_setopt(easy, CURLOPT_USERPWD, state->userpwd);
    if (code == CURLE_OK)
        code = curl_easy_setopt(easy, CURLOPT_AWS_SIGV4, state->sigv4);
    /* libcurl 7.88 signs every header of CURLOPT_HTTPHEADER, even the
     * "Expect:" that only removes a header, and SES then finds a signed
     * header missing. So the body follows libcurl's own "Expect:
     * 100-continue" header at once instead, without waiting for "100
     * Continue". */
    if (code == CURLE_OK)
        code = curl_easy_setopt(easy, CURLOPT_EXPECT_100_TIMEOUT_MS, 0L);
    if (code == CURLE_OK)
        code = curl_easy_setopt(easy, CURLOPT_TIMEOUT, state->timeout);
    if (code == CURLE_OK)
        code = curl_easy_setopt(easy, CURLOPT_CONNECTTIMEOUT,
                                state->connect_timeout);
    /* Signals would interrupt the event loop's thread. */
    if (code == CURLE_OK)
        code = curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
    return code;
}

static outbox_err ses_prepare(void *opaque, void **out, outbox_error *err,
                              CURL *easy, const outbox_message *message)
{
    const ses_state *state = opaque;
    ses_request *request = calloc(1, sizeof(*request));
    outbox_ses_body_options options;
    size_t size = 0;
    CURLcode code;
    outbox_err rc;

    *out = NULL;
    if (request == NULL)
        goto nomem;
    options.configuration_set = state->configuration_set;
    options.max_message_bytes = state->max_message_bytes;
    options.date = (int64_t)time(NULL);
    rc = outbox__ses_body(&request->body, &size, err, message, &options,
                          &state->logger);
    if (rc != OUTBOX_EOK)
        goto cleanup;
    request->headers = build_request_headers(state);
    if (request->headers == NULL)
        goto nomem;

    code = set_request_options(easy, state, request, size);
    if (code != CURLE_OK) {
        rc = outbox_error_set(err, OUTBOX_EPROVIDER, "internal",
                              "provider \"%s\": libcurl rejected an option "
                              "of the request: %s",
                              state->name, curl_easy_strerror(code));
        goto cleanup;
    }
    *out = request;
    return OUTBOX_EOK;

nomem:
    rc = outbox_error_set(err, OUTBOX_ENOMEM, "internal",
                          "provider \"%s\": out of memory", state->name);
cleanup:
    ses_release(request);
    return rc;
}

/* The classification itself is in provider_ses_classify.c. The daemon
 * logs the pause that a misconfigured result starts. */
static void ses_classify(void *opaque, outbox_result *result,
                         const outbox_response *response)
{
    const ses_state *state = opaque;

    outbox__ses_classify(result, response, state->quota_delay);
}

static const char *const ses_keys[] = {
    "region",
    "base_url",
    "access_key_id",
    "access_key_id_env",
    "secret_access_key",
    "secret_access_key_env",
    "session_token",
    "session_token_env",
    "configuration_set",
    "timeout_seconds",
    "connect_timeout_seconds",
    "max_message_bytes",
    "quota_retry_seconds",
    NULL,
};

const outbox_provider_ops outbox__ses_ops = {
    .type = "ses",
    .keys = ses_keys,
    .renders_templates = true,
    .create = ses_create,
    .destroy = ses_destroy,
    .prepare = ses_prepare,
    .release = ses_release,
    .classify = ses_classify,
    .deliver = NULL,
};
