/*
 * provider_postmark.c - delivery through Postmark's email API:
 * POST {base_url}/email, or {base_url}/email/withTemplate for a message
 * with a template, with a JSON body (provider_postmark_body.c) and the
 * server token in X-Postmark-Server-Token. The responses are
 * classified in provider_postmark_response.c.
 *
 * Config keys of a provider of type "postmark":
 *   base_url                 default https://api.postmarkapp.com
 *   api_key, api_key_env     the server token, or the environment variable
 *                            that contains it
 *   message_stream           the MessageStream of every message, default
 *                            "outbound" (the transactional stream)
 *   timeout_seconds          whole transfer, default 30
 *   connect_timeout_seconds  default 10
 *   max_message_bytes        default 10000000, Postmark's cap of 10 MB on
 *                            the message after base64; 0 turns the check
 *                            off
 *
 * Every message also goes through two checks that no config changes:
 * at most 50 recipients (To, Cc and Bcc together), and a text or HTML
 * body or a template even when the message has attachments.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <openssl/crypto.h>

#include "internal.h"
#include "provider_postmark.h"

#define POSTMARK_DEFAULT_BASE_URL "https://api.postmarkapp.com"
#define POSTMARK_SEND_PATH "/email"
#define POSTMARK_TEMPLATE_PATH "/email/withTemplate"
#define POSTMARK_DEFAULT_STREAM "outbound"
#define POSTMARK_DEFAULT_TIMEOUT 30
#define POSTMARK_DEFAULT_CONNECT_TIMEOUT 10
#define POSTMARK_DEFAULT_MAX_MESSAGE 10000000

/* Maximum length of a message stream ID in config. */
#define POSTMARK_STREAM_MAX 100

typedef struct postmark_state {
    char *name;
    char *url;             /* base_url + POSTMARK_SEND_PATH */
    char *template_url;    /* base_url + POSTMARK_TEMPLATE_PATH */
    char *token_header;    /* "X-Postmark-Server-Token: <token>": a secret */
    char *stream;
    long timeout;
    long connect_timeout;
    size_t max_message_bytes;
    outbox_logger logger;
} postmark_state;

/* What one transfer needs until it ends. */
typedef struct postmark_request {
    char *body;
    struct curl_slist *headers;
} postmark_request;

/* ------------------------------------------------------------------ */
/* Config                                                              */
/* ------------------------------------------------------------------ */

static outbox_err read_base_url(postmark_state *state, outbox_error *err,
                                const cJSON *config)
{
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(config, "base_url");
    const char *base = POSTMARK_DEFAULT_BASE_URL;
    size_t length;

    if (item != NULL) {
        if (!cJSON_IsString(item)
            || !outbox__provider_url_valid(item->valuestring))
            return outbox_error_set(err, OUTBOX_ECONFIG, "config",
                                    "provider \"%s\": invalid \"base_url\": "
                                    "expected http:// or https:// and a "
                                    "host, such as %s",
                                    state->name, POSTMARK_DEFAULT_BASE_URL);
        base = item->valuestring;
    }

    /* A trailing slash is tolerated because the path brings its own. */
    length = strlen(base);
    while (length > 0 && base[length - 1] == '/')
        length--;
    state->url = malloc(length + sizeof(POSTMARK_SEND_PATH));
    state->template_url = malloc(length + sizeof(POSTMARK_TEMPLATE_PATH));
    if (state->url == NULL || state->template_url == NULL)
        return OUTBOX_ENOMEM;
    memcpy(state->url, base, length);
    memcpy(state->url + length, POSTMARK_SEND_PATH,
           sizeof(POSTMARK_SEND_PATH));
    memcpy(state->template_url, base, length);
    memcpy(state->template_url + length, POSTMARK_TEMPLATE_PATH,
           sizeof(POSTMARK_TEMPLATE_PATH));
    return OUTBOX_EOK;
}

/* Reads "message_stream": a stream ID as Postmark shows it, such as
 * "outbound" or "broadcast", in printable ASCII without spaces. */
static outbox_err read_stream(postmark_state *state, outbox_error *err,
                              const cJSON *config)
{
    const cJSON *item =
        cJSON_GetObjectItemCaseSensitive(config, "message_stream");
    const char *stream = POSTMARK_DEFAULT_STREAM;

    if (item != NULL) {
        bool valid = cJSON_IsString(item) && item->valuestring[0] != '\0'
                     && strlen(item->valuestring) <= POSTMARK_STREAM_MAX;

        for (const char *p = valid ? item->valuestring : ""; *p; p++) {
            if (*p <= ' ' || *p >= 0x7F)
                valid = false;
        }
        if (!valid)
            return outbox_error_set(err, OUTBOX_ECONFIG, "config",
                                    "provider \"%s\": invalid "
                                    "\"message_stream\": expected the ID of "
                                    "a Postmark message stream (1 to %d "
                                    "printable ASCII characters without "
                                    "spaces), such as \"%s\"",
                                    state->name, POSTMARK_STREAM_MAX,
                                    POSTMARK_DEFAULT_STREAM);
        stream = item->valuestring;
    }
    state->stream = outbox__strdup(stream);
    return state->stream != NULL ? OUTBOX_EOK : OUTBOX_ENOMEM;
}

static outbox_err read_limits(postmark_state *state, outbox_error *err,
                              const cJSON *config)
{
    outbox_http_settings settings = {POSTMARK_DEFAULT_TIMEOUT,
                                     POSTMARK_DEFAULT_CONNECT_TIMEOUT,
                                     POSTMARK_DEFAULT_MAX_MESSAGE};
    outbox_err rc = outbox__provider_http_settings(&settings, err,
                                                   state->name, config);

    state->timeout = settings.timeout;
    state->connect_timeout = settings.connect_timeout;
    state->max_message_bytes = settings.max_message_bytes;
    return rc;
}

/* Builds the token header line. */
static outbox_err read_token(postmark_state *state, outbox_error *err,
                             const cJSON *config)
{
    return outbox__provider_header_line(&state->token_header, err,
                                        state->name, config,
                                        "X-Postmark-Server-Token: ",
                                        "the server token");
}

static void postmark_destroy(void *opaque)
{
    postmark_state *state = opaque;

    if (state == NULL)
        return;
    if (state->token_header != NULL) {
        OPENSSL_cleanse(state->token_header, strlen(state->token_header));
        free(state->token_header);
    }
    free(state->stream);
    free(state->url);
    free(state->template_url);
    free(state->name);
    free(state);
}

static outbox_err postmark_create(void **out, outbox_error *err,
                                  const char *name, const cJSON *config,
                                  const outbox_logger *logger)
{
    postmark_state *state = calloc(1, sizeof(*state));
    outbox_err rc = OUTBOX_ENOMEM;

    *out = NULL;
    if (state == NULL)
        goto cleanup;
    if (logger != NULL)
        state->logger = *logger;
    state->name = outbox__strdup(name);
    if (state->name == NULL)
        goto cleanup;
    rc = read_base_url(state, err, config);
    if (rc == OUTBOX_EOK)
        rc = read_stream(state, err, config);
    if (rc == OUTBOX_EOK)
        rc = read_limits(state, err, config);
    if (rc == OUTBOX_EOK)
        rc = read_token(state, err, config);
    if (rc == OUTBOX_EOK) {
        *out = state;
        return OUTBOX_EOK;
    }

cleanup:
    if (rc == OUTBOX_ENOMEM)
        outbox_error_set(err, rc, "internal",
                         "provider \"%s\": out of memory", name);
    postmark_destroy(state);
    return rc;
}

/* ------------------------------------------------------------------ */
/* Requests                                                            */
/* ------------------------------------------------------------------ */

static void postmark_release(void *opaque)
{
    postmark_request *request = opaque;

    if (request == NULL)
        return;
    curl_slist_free_all(request->headers);
    cJSON_free(request->body);
    free(request);
}

static struct curl_slist *build_request_headers(const postmark_state *state)
{
    static const char *const fixed[] = {
        "Content-Type: application/json",
        "Accept: application/json",
        /* Without this libcurl may wait for "100 Continue" before it
         * sends a large body, a round trip that Postmark does not need. */
        "Expect:",
    };
    struct curl_slist *headers = curl_slist_append(NULL, state->token_header);
    size_t count = sizeof(fixed) / sizeof(fixed[0]);

    for (size_t i = 0; headers != NULL && i < count; i++) {
        struct curl_slist *grown = curl_slist_append(headers, fixed[i]);

        if (grown == NULL) {
            curl_slist_free_all(headers);
            return NULL;
        }
        headers = grown;
    }
    return headers;
}

static CURLcode set_request_options(CURL *easy, const postmark_state *state,
                                    const postmark_request *request,
                                    size_t size, bool template)
{
    const char *url = template ? state->template_url : state->url;
    CURLcode code = curl_easy_setopt(easy, CURLOPT_URL, url);

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
        code = curl_easy_setopt(easy, CURLOPT_TIMEOUT, state->timeout);
    if (code == CURLE_OK)
        code = curl_easy_setopt(easy, CURLOPT_CONNECTTIMEOUT,
                                state->connect_timeout);
    /* Signals would interrupt the event loop's thread. */
    if (code == CURLE_OK)
        code = curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
    return code;
}

static outbox_err postmark_prepare(void *opaque, void **out,
                                   outbox_error *err, CURL *easy,
                                   const outbox_message *message)
{
    const postmark_state *state = opaque;
    postmark_request *request = calloc(1, sizeof(*request));
    size_t size = 0;
    CURLcode code;
    outbox_err rc;

    *out = NULL;
    if (request == NULL)
        goto nomem;
    rc = outbox__postmark_body(&request->body, &size, err, message,
                               state->stream, &state->logger,
                               state->max_message_bytes);
    if (rc != OUTBOX_EOK)
        goto cleanup;
    request->headers = build_request_headers(state);
    if (request->headers == NULL)
        goto nomem;

    code = set_request_options(easy, state, request, size,
                               message->template_name != NULL);
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
    postmark_release(request);
    return rc;
}

/* ------------------------------------------------------------------ */
/* Responses                                                           */
/* ------------------------------------------------------------------ */

/* Classifies, and warns when a Retry-After header was present but
 * unreadable, since the retry then falls back to the backoff schedule. */
static void postmark_classify(void *opaque, outbox_result *result,
                              const outbox_response *response)
{
    const postmark_state *state = opaque;
    const char *header;
    outbox_response view;
    char shown[48];

    outbox__postmark_classify(result, response);
    if (result->kind != OUTBOX_RESULT_RETRY || result->retry_after >= 0
        || response->curl_code != CURLE_OK)
        return;
    header = outbox_response_header(response, "Retry-After");
    if (header == NULL)
        return;
    memset(&view, 0, sizeof(view));
    view.body = header;
    view.body_size = strlen(header);
    outbox__body_excerpt(shown, sizeof(shown), &view);
    outbox_log(&state->logger, OUTBOX_LOG_WARN,
               "provider=%s status=%ld Retry-After \"%s\" is not a number "
               "of seconds or an HTTP date; using the backoff schedule",
               state->name, response->status, shown);
}

static const char *const postmark_keys[] = {
    "base_url", "api_key", "api_key_env", "message_stream",
    "timeout_seconds", "connect_timeout_seconds", "max_message_bytes", NULL};

const outbox_provider_ops outbox__postmark_ops = {
    .type = "postmark",
    .keys = postmark_keys,
    .renders_templates = true,
    .create = postmark_create,
    .destroy = postmark_destroy,
    .prepare = postmark_prepare,
    .release = postmark_release,
    .classify = postmark_classify,
    .deliver = NULL,
};
