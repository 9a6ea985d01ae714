/*
 * provider_sendgrid.c - delivery through SendGrid's v3 Mail Send API:
 * POST {base_url}/v3/mail/send with a JSON body (provider_sendgrid_body.c)
 * and a Bearer API key.
 *
 * Config keys of a provider of type "sendgrid":
 *   base_url                 default https://api.sendgrid.com; EU regional
 *                            subusers use https://api.eu.sendgrid.com
 *   api_key, api_key_env     the key, or the environment variable that
 *                            contains it
 *   timeout_seconds          whole transfer, default 30
 *   connect_timeout_seconds  default 10
 *   max_message_bytes        default 30000000, SendGrid's cap on the whole
 *                            encoded message; 0 turns the check off
 *
 * How responses are classified:
 *   2xx                 sent; X-Message-Id is the provider message id
 *   no response, 5xx    retry
 *   429                 retry after X-RateLimit-Reset (else Retry-After),
 *                       without using up an attempt
 *   400, 413            failed: the message itself is invalid or too large
 *   401, 403            misconfigured: a bad key or an unverified sender
 *                       identity stops every message, so the provider pauses
 *   3xx                 misconfigured: base_url points at a redirect
 *   other 4xx           failed
 *   anything else       unknown: SendGrid may or may not have the message
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <openssl/crypto.h>

#include "internal.h"
#include "provider_sendgrid.h"

#define SENDGRID_DEFAULT_BASE_URL "https://api.sendgrid.com"
#define SENDGRID_SEND_PATH "/v3/mail/send"
#define SENDGRID_DEFAULT_TIMEOUT 30
#define SENDGRID_DEFAULT_CONNECT_TIMEOUT 10
#define SENDGRID_DEFAULT_MAX_MESSAGE 30000000

/* Room in error texts for the "HTTP nnn: " prefix and a hint. */
#define SENDGRID_DETAIL_MAX (OUTBOX_ERROR_TEXT_MAX - 160)

typedef struct sendgrid_state {
    char *name;
    char *url;             /* base_url + SENDGRID_SEND_PATH */
    char *authorization;   /* "Authorization: Bearer <key>": a secret */
    /* The request headers, authorization first. Every request of this
     * provider uses this one list, which libcurl only reads. */
    struct curl_slist *headers;
    long timeout;
    long connect_timeout;
    size_t max_message_bytes;
    outbox_logger logger;
} sendgrid_state;

/* What one transfer needs until it ends. */
typedef struct sendgrid_request {
    char *body;
} sendgrid_request;

/* ------------------------------------------------------------------ */
/* Config                                                              */
/* ------------------------------------------------------------------ */

static outbox_err read_base_url(sendgrid_state *state, outbox_error *err,
                                const cJSON *config)
{
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(config, "base_url");
    const char *base = SENDGRID_DEFAULT_BASE_URL;
    size_t length;

    if (item != NULL) {
        if (!cJSON_IsString(item)
            || !outbox__provider_url_valid(item->valuestring))
            return outbox_error_set(err, OUTBOX_ECONFIG, "config",
                                    "provider \"%s\": invalid \"base_url\": "
                                    "expected http:// or https:// and a "
                                    "host, such as %s",
                                    state->name, SENDGRID_DEFAULT_BASE_URL);
        base = item->valuestring;
    }

    /* A trailing slash is tolerated because the path brings its own. */
    length = strlen(base);
    while (length > 0 && base[length - 1] == '/')
        length--;
    state->url = malloc(length + sizeof(SENDGRID_SEND_PATH));
    if (state->url == NULL)
        return OUTBOX_ENOMEM;
    memcpy(state->url, base, length);
    memcpy(state->url + length, SENDGRID_SEND_PATH,
           sizeof(SENDGRID_SEND_PATH));
    return OUTBOX_EOK;
}

static outbox_err read_limits(sendgrid_state *state, outbox_error *err,
                              const cJSON *config)
{
    outbox_http_settings settings = {SENDGRID_DEFAULT_TIMEOUT,
                                     SENDGRID_DEFAULT_CONNECT_TIMEOUT,
                                     SENDGRID_DEFAULT_MAX_MESSAGE};
    outbox_err rc = outbox__provider_http_settings(&settings, err,
                                                   state->name, config);

    state->timeout = settings.timeout;
    state->connect_timeout = settings.connect_timeout;
    state->max_message_bytes = settings.max_message_bytes;
    return rc;
}

/* Builds the Authorization header line from the key. */
static outbox_err read_api_key(sendgrid_state *state, outbox_error *err,
                               const cJSON *config)
{
    return outbox__provider_header_line(&state->authorization, err,
                                        state->name, config,
                                        "Authorization: Bearer ",
                                        "the API key");
}

static struct curl_slist *build_request_headers(const sendgrid_state *state)
{
    static const char *const fixed[] = {
        "Content-Type: application/json",
        "Accept: application/json",
        /* Without this libcurl may wait for "100 Continue" before it
         * sends a large body, a round trip that SendGrid does not need. */
        "Expect:",
    };
    struct curl_slist *headers = curl_slist_append(NULL, state->authorization);

    for (size_t i = 0; headers != NULL && i < 3; i++) {
        struct curl_slist *grown = curl_slist_append(headers, fixed[i]);

        if (grown == NULL) {
            curl_slist_free_all(headers);
            return NULL;
        }
        headers = grown;
    }
    return headers;
}

static void sendgrid_destroy(void *opaque)
{
    sendgrid_state *state = opaque;

    if (state == NULL)
        return;
    if (state->headers != NULL) {
        /* The first header is libcurl's copy of the authorization. */
        OPENSSL_cleanse(state->headers->data, strlen(state->headers->data));
        curl_slist_free_all(state->headers);
    }
    if (state->authorization != NULL) {
        OPENSSL_cleanse(state->authorization, strlen(state->authorization));
        free(state->authorization);
    }
    free(state->url);
    free(state->name);
    free(state);
}

static outbox_err sendgrid_create(void **out, outbox_error *err,
                                  const char *name, const cJSON *config,
                                  const outbox_logger *logger)
{
    sendgrid_state *state = calloc(1, sizeof(*state));
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
        rc = read_limits(state, err, config);
    if (rc == OUTBOX_EOK)
        rc = read_api_key(state, err, config);
    if (rc == OUTBOX_EOK) {
        state->headers = build_request_headers(state);
        if (state->headers == NULL)
            rc = OUTBOX_ENOMEM;
    }
    if (rc == OUTBOX_EOK) {
        *out = state;
        return OUTBOX_EOK;
    }

cleanup:
    if (rc == OUTBOX_ENOMEM)
        outbox_error_set(err, rc, "internal",
                         "provider \"%s\": out of memory", name);
    sendgrid_destroy(state);
    return rc;
}

/* ------------------------------------------------------------------ */
/* Requests                                                            */
/* ------------------------------------------------------------------ */

static void sendgrid_release(void *opaque)
{
    sendgrid_request *request = opaque;

    if (request == NULL)
        return;
    cJSON_free(request->body);
    free(request);
}

static CURLcode set_request_options(CURL *easy, const sendgrid_state *state,
                                    const sendgrid_request *request,
                                    size_t size)
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
        code = curl_easy_setopt(easy, CURLOPT_HTTPHEADER, state->headers);
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

static outbox_err sendgrid_prepare(void *opaque, void **out,
                                   outbox_error *err, CURL *easy,
                                   const outbox_message *message)
{
    const sendgrid_state *state = opaque;
    sendgrid_request *request = calloc(1, sizeof(*request));
    size_t size = 0;
    CURLcode code;
    outbox_err rc;

    *out = NULL;
    if (request == NULL)
        goto nomem;
    rc = outbox__sendgrid_body(&request->body, &size, err, message,
                               &state->logger, state->max_message_bytes);
    if (rc != OUTBOX_EOK)
        goto cleanup;
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
    sendgrid_release(request);
    return rc;
}

/* ------------------------------------------------------------------ */
/* Responses                                                           */
/* ------------------------------------------------------------------ */

/*
 * Writes SendGrid's {"errors": [{"field": ..., "message": ...}]} as
 * "field: message; message" into text. Returns false, leaving text empty,
 * when the body contains no such list, as with the nginx HTML of a 413.
 */
static bool format_error_list(char *text, size_t size,
                              const outbox_response *response)
{
    cJSON *root = NULL;
    const cJSON *item;
    outbox_buf joined;
    outbox_response view;

    text[0] = '\0';
    outbox__buf_init(&joined, 4 * OUTBOX_ERROR_TEXT_MAX);
    if (response->body != NULL && response->body_size > 0)
        root = cJSON_ParseWithLength(response->body, response->body_size);
    cJSON_ArrayForEach(item,
                       cJSON_GetObjectItemCaseSensitive(root, "errors"))
    {
        const cJSON *field = cJSON_GetObjectItemCaseSensitive(item, "field");
        const cJSON *message =
            cJSON_GetObjectItemCaseSensitive(item, "message");

        if (!cJSON_IsString(message))
            continue;
        /* A full buffer ends the list, and the excerpt marks the cut. */
        if (outbox__buf_printf(&joined, "%s%s%s%s", joined.size ? "; " : "",
                               cJSON_IsString(field) ? field->valuestring : "",
                               cJSON_IsString(field) ? ": " : "",
                               message->valuestring)
            != OUTBOX_EOK)
            break;
    }
    cJSON_Delete(root);

    /* The excerpt turns control characters into spaces and keeps UTF-8
     * whole, as for any other text from the network. */
    memset(&view, 0, sizeof(view));
    view.body = joined.data;
    view.body_size = joined.size;
    outbox__body_excerpt(text, size, &view);
    outbox__buf_free(&joined);
    return text[0] != '\0';
}

/* Sets kind and "HTTP <status>: <detail><hint>", where detail is the
 * error list when there is one and else an excerpt of the body. */
static void set_http_result(outbox_result *result, outbox_result_kind kind,
                            const char *error_kind,
                            const outbox_response *response,
                            bool parse_errors, const char *hint)
{
    char detail[SENDGRID_DETAIL_MAX];

    outbox_result_init(result, kind);
    result->status = response->status;
    if (kind == OUTBOX_RESULT_MISCONFIGURED)
        result->counts_as_failure = false;
    if (!parse_errors || !format_error_list(detail, sizeof(detail), response))
        outbox__body_excerpt(detail, sizeof(detail), response);
    outbox_error_set(&result->error, OUTBOX_EPROVIDER, error_kind,
                     "HTTP %ld: %s%s", response->status,
                     detail[0] != '\0' ? detail : "(empty body)", hint);
}

static void classify_accepted(outbox_result *result,
                              const outbox_response *response)
{
    const char *id = outbox_response_header(response, "X-Message-Id");
    bool id_usable = id != NULL && id[0] != '\0'
                     && strlen(id) < sizeof(result->provider_message_id);

    outbox_result_init(result, OUTBOX_RESULT_SENT);
    result->status = response->status;
    if (id_usable)
        memcpy(result->provider_message_id, id, strlen(id) + 1);

    /* The message still counts as sent in both cases below. */
    if (response->curl_code != CURLE_OK)
        snprintf(result->error.text, sizeof(result->error.text),
                 "HTTP %ld, then the transfer failed (curl error %d): %s",
                 response->status, (int)response->curl_code,
                 curl_easy_strerror(response->curl_code));
    else if (!id_usable)
        snprintf(result->error.text, sizeof(result->error.text),
                 "HTTP %ld without a usable X-Message-Id header, so webhook "
                 "events can be matched to this message only by outbox_id",
                 response->status);
}

/* SendGrid states when its rate limit window resets in X-RateLimit-Reset
 * (unix seconds), which is more exact than a Retry-After. Reading the
 * value as a Retry-After relative to time 0 yields those unix seconds. */
static void apply_rate_limit_reset(outbox_result *result,
                                   const outbox_response *response)
{
    const char *value = outbox_response_header(response, "X-RateLimit-Reset");
    int64_t reset = outbox_parse_retry_after(value, 0);

    if (reset < 0)
        return;
    result->retry_after = reset - response->now > 1 ? reset - response->now
                                                    : 1;
}

void outbox__sendgrid_classify(outbox_result *result,
                               const outbox_response *response)
{
    long status = response->status;

    /* A 2xx status means SendGrid accepted the message, even if the
     * transfer failed afterwards: a retry would send it twice. */
    if (status >= 200 && status <= 299) {
        classify_accepted(result, response);
    } else if (outbox__classify_common(result, response)) {
        if (response->curl_code == CURLE_OK && status == 429)
            apply_rate_limit_reset(result, response);
    } else if (status == 400) {
        set_http_result(result, OUTBOX_RESULT_FAILED,
                        "provider_validation", response, true, "");
    } else if (status == 413) {
        set_http_result(result, OUTBOX_RESULT_FAILED, "message_too_large",
                        response, false, "");
    } else if (status == 401) {
        set_http_result(result, OUTBOX_RESULT_MISCONFIGURED,
                        "provider_auth", response, true,
                        "; check the API key");
    } else if (status == 403) {
        set_http_result(result, OUTBOX_RESULT_MISCONFIGURED,
                        "provider_forbidden", response, true,
                        "; check the verified sender identities and the "
                        "API key's Mail Send permission");
    } else if (status >= 400 && status <= 499) {
        set_http_result(result, OUTBOX_RESULT_FAILED, "provider_rejected",
                        response, false, "");
    } else if (status >= 300 && status <= 399) {
        set_http_result(result, OUTBOX_RESULT_MISCONFIGURED,
                        "provider_redirect", response, false,
                        "; check base_url");
    } else {
        /* An unexpected status: SendGrid may have taken the message, so
         * a person decides rather than a retry that could send it twice. */
        set_http_result(result, OUTBOX_RESULT_UNKNOWN, "provider_unexpected",
                        response, false, "");
    }
}

/* Classifies, and warns when a delay header was present but unreadable,
 * since the retry then falls back to the backoff schedule. */
static void sendgrid_classify(void *opaque, outbox_result *result,
                              const outbox_response *response)
{
    const sendgrid_state *state = opaque;
    const char *header;
    outbox_response view;
    char shown[48];

    outbox__sendgrid_classify(result, response);
    if (result->kind != OUTBOX_RESULT_RETRY || result->retry_after >= 0
        || response->curl_code != CURLE_OK)
        return;

    /* SendGrid sends X-RateLimit-Reset with every response, but it gives
     * the delay of a 429 only. */
    header = outbox_response_header(response, "Retry-After");
    if (header == NULL && response->status == 429)
        header = outbox_response_header(response, "X-RateLimit-Reset");
    if (header == NULL)
        return;
    memset(&view, 0, sizeof(view));
    view.body = header;
    view.body_size = strlen(header);
    outbox__body_excerpt(shown, sizeof(shown), &view);
    outbox_log(&state->logger, OUTBOX_LOG_WARN,
               "provider=%s status=%ld delay header \"%s\" is not a number "
               "of seconds or an HTTP date; using the backoff schedule",
               state->name, response->status, shown);
}

static const char *const sendgrid_keys[] = {
    "base_url", "api_key", "api_key_env", "timeout_seconds",
    "connect_timeout_seconds", "max_message_bytes", NULL};

const outbox_provider_ops outbox__sendgrid_ops = {
    .type = "sendgrid",
    .renders_templates = true,
    .keys = sendgrid_keys,
    .create = sendgrid_create,
    .destroy = sendgrid_destroy,
    .prepare = sendgrid_prepare,
    .release = sendgrid_release,
    .classify = sendgrid_classify,
    .deliver = NULL,
};
