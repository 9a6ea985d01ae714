/*
 * provider_mailgun.c - delivery through Mailgun's Messages API:
 * POST {base_url}/v3/{domain}/messages as multipart/form-data, built with
 * libcurl's curl_mime from the fields in provider_mailgun_form.c, with
 * HTTP Basic authentication as user "api" and the API key as password.
 * The responses are classified in provider_mailgun_response.c.
 *
 * Config keys of a provider of type "mailgun":
 *   domain                   the sending domain, as in the API path
 *                            (required)
 *   region                   "us" (default) or "eu"; picks the base URL
 *                            when base_url is absent
 *   base_url                 default https://api.mailgun.net, or
 *                            https://api.eu.mailgun.net for region "eu"
 *   api_key, api_key_env     the key, or the environment variable that
 *                            contains it
 *   timeout_seconds          whole transfer, default 30
 *   connect_timeout_seconds  default 10
 *   max_message_bytes        default 25000000, Mailgun's 25 MB cap on a
 *                            message; 0 turns the check off
 *
 * NOTE: Mailgun applies its 25 MB cap to the request body. outboxd counts
 * the names and values of the fields, attachments unencoded, but not the
 * multipart framing (about 100 bytes per field), so a message just under
 * the cap may still get a 413.
 */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <openssl/crypto.h>

#include "internal.h"
#include "provider_mailgun.h"

#define MAILGUN_US_BASE_URL "https://api.mailgun.net"
#define MAILGUN_EU_BASE_URL "https://api.eu.mailgun.net"
#define MAILGUN_DEFAULT_TIMEOUT 30
#define MAILGUN_DEFAULT_CONNECT_TIMEOUT 10
#define MAILGUN_DEFAULT_MAX_MESSAGE 25000000

/* Maximum length of a DNS name. */
#define MAILGUN_DOMAIN_MAX 253

typedef struct mailgun_state {
    char *name;
    char *url;             /* base_url + "/v3/" + domain + "/messages" */
    char *authorization;   /* "Authorization: Basic ...": a secret */
    long timeout;
    long connect_timeout;
    size_t max_message_bytes;
    outbox_logger logger;
    /* Consecutive 404 responses, atomic because classify may run on any
     * thread. */
    atomic_int not_found_count;
} mailgun_state;

/* Where libcurl reads one field's value from. */
typedef struct mailgun_cursor {
    const char *data;
    size_t size;
    size_t offset;
} mailgun_cursor;

/* What one transfer needs until it ends. */
typedef struct mailgun_request {
    outbox_mailgun_form form;
    mailgun_cursor *cursors;   /* one per field of form */
    curl_mime *mime;
    struct curl_slist *headers;
} mailgun_request;

/* ------------------------------------------------------------------ */
/* Config                                                              */
/* ------------------------------------------------------------------ */

/* A domain goes into the URL path as it is, so only the characters of
 * DNS names are accepted: letters, digits, '-' and '.' between labels. */
static bool domain_is_valid(const char *domain)
{
    size_t length = strlen(domain);

    if (length == 0 || length > MAILGUN_DOMAIN_MAX || domain[0] == '.'
        || domain[length - 1] == '.' || strstr(domain, "..") != NULL)
        return false;
    for (size_t i = 0; i < length; i++) {
        char c = domain[i];

        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
              || (c >= '0' && c <= '9') || c == '-' || c == '.'))
            return false;
    }
    return true;
}

/* Reads "region" and returns the base URL it picks, or NULL on error. */
static const char *read_region(outbox_error *err, const char *name,
                               const cJSON *config)
{
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(config, "region");

    if (item == NULL)
        return MAILGUN_US_BASE_URL;
    if (cJSON_IsString(item) && strcmp(item->valuestring, "us") == 0)
        return MAILGUN_US_BASE_URL;
    if (cJSON_IsString(item) && strcmp(item->valuestring, "eu") == 0)
        return MAILGUN_EU_BASE_URL;
    outbox_error_set(err, OUTBOX_ECONFIG, "config",
                     "provider \"%s\": invalid \"region\": expected \"us\" "
                     "or \"eu\", the region of the Mailgun domain",
                     name);
    return NULL;
}

outbox_err outbox__mailgun_url(char **out, outbox_error *err,
                               const char *name, const cJSON *config)
{
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(config, "base_url");
    const cJSON *domain = cJSON_GetObjectItemCaseSensitive(config, "domain");
    const char *base = read_region(err, name, config);
    outbox_buf url;
    size_t length;

    *out = NULL;
    if (base == NULL)
        return OUTBOX_ECONFIG;
    if (item != NULL) {
        if (!cJSON_IsString(item)
            || !outbox__provider_url_valid(item->valuestring))
            return outbox_error_set(err, OUTBOX_ECONFIG, "config",
                                    "provider \"%s\": invalid \"base_url\": "
                                    "expected http:// or https:// and a "
                                    "host, such as %s",
                                    name, MAILGUN_US_BASE_URL);
        base = item->valuestring;
    }
    if (domain == NULL)
        return outbox_error_set(err, OUTBOX_ECONFIG, "config",
                                "provider \"%s\": missing \"domain\", the "
                                "Mailgun sending domain such as "
                                "mg.example.com",
                                name);
    if (!cJSON_IsString(domain) || !domain_is_valid(domain->valuestring))
        return outbox_error_set(err, OUTBOX_ECONFIG, "config",
                                "provider \"%s\": invalid \"domain\": "
                                "expected a DNS name such as mg.example.com",
                                name);

    /* A trailing slash is tolerated because the path brings its own. */
    length = strlen(base);
    while (length > 0 && base[length - 1] == '/')
        length--;
    outbox__buf_init(&url, SIZE_MAX);
    if (outbox__buf_append(&url, base, length) != OUTBOX_EOK
        || outbox__buf_printf(&url, "/v3/%s/messages", domain->valuestring)
               != OUTBOX_EOK) {
        outbox__buf_free(&url);
        return outbox_error_set(err, OUTBOX_ENOMEM, "internal",
                                "provider \"%s\": out of memory", name);
    }
    *out = outbox__buf_take(&url, NULL);
    if (*out == NULL)
        return outbox_error_set(err, OUTBOX_ENOMEM, "internal",
                                "provider \"%s\": out of memory", name);
    return OUTBOX_EOK;
}

static outbox_err read_limits(mailgun_state *state, outbox_error *err,
                              const cJSON *config)
{
    outbox_http_settings settings = {MAILGUN_DEFAULT_TIMEOUT,
                                     MAILGUN_DEFAULT_CONNECT_TIMEOUT,
                                     MAILGUN_DEFAULT_MAX_MESSAGE};
    outbox_err rc = outbox__provider_http_settings(&settings, err,
                                                   state->name, config);

    state->timeout = settings.timeout;
    state->connect_timeout = settings.connect_timeout;
    state->max_message_bytes = settings.max_message_bytes;
    return rc;
}

/* Builds "Authorization: Basic base64(api:<key>)". The key must be
 * printable ASCII so that it cannot end the header early. */
static outbox_err read_api_key(mailgun_state *state, outbox_error *err,
                               const cJSON *config)
{
    static const char prefix[] = "Authorization: Basic ";
    char *key = NULL;
    char *credentials = NULL;
    char *encoded = NULL;
    size_t length = 0;
    size_t encoded_size = 0;
    outbox_err rc;

    rc = outbox__provider_header_secret(&key, err, state->name, config,
                                        "the API key");
    if (rc != OUTBOX_EOK)
        return rc;
    length = strlen(key);

    rc = OUTBOX_ENOMEM;
    credentials = malloc(length + 5);
    if (credentials == NULL)
        goto cleanup;
    memcpy(credentials, "api:", 4);
    memcpy(credentials + 4, key, length + 1);
    encoded = outbox__base64((const unsigned char *)credentials, length + 4,
                             &encoded_size);
    if (encoded == NULL)
        goto cleanup;
    state->authorization = malloc(sizeof(prefix) + encoded_size);
    if (state->authorization == NULL)
        goto cleanup;
    memcpy(state->authorization, prefix, sizeof(prefix) - 1);
    memcpy(state->authorization + sizeof(prefix) - 1, encoded,
           encoded_size + 1);
    rc = OUTBOX_EOK;

cleanup:
    if (encoded != NULL) {
        OPENSSL_cleanse(encoded, encoded_size);
        free(encoded);
    }
    if (credentials != NULL) {
        OPENSSL_cleanse(credentials, length + 4);
        free(credentials);
    }
    OPENSSL_cleanse(key, length);
    free(key);
    return rc;
}

static void mailgun_destroy(void *opaque)
{
    mailgun_state *state = opaque;

    if (state == NULL)
        return;
    if (state->authorization != NULL) {
        OPENSSL_cleanse(state->authorization, strlen(state->authorization));
        free(state->authorization);
    }
    free(state->url);
    free(state->name);
    free(state);
}

static outbox_err mailgun_create(void **out, outbox_error *err,
                                 const char *name, const cJSON *config,
                                 const outbox_logger *logger)
{
    mailgun_state *state = calloc(1, sizeof(*state));
    outbox_err rc = OUTBOX_ENOMEM;

    *out = NULL;
    if (state == NULL)
        goto cleanup;
    atomic_init(&state->not_found_count, 0);
    if (logger != NULL)
        state->logger = *logger;
    state->name = outbox__strdup(name);
    if (state->name == NULL)
        goto cleanup;
    rc = outbox__mailgun_url(&state->url, err, name, config);
    if (rc == OUTBOX_EOK)
        rc = read_limits(state, err, config);
    if (rc == OUTBOX_EOK)
        rc = read_api_key(state, err, config);
    if (rc == OUTBOX_EOK) {
        *out = state;
        return OUTBOX_EOK;
    }

cleanup:
    if (rc == OUTBOX_ENOMEM)
        outbox_error_set(err, rc, "internal",
                         "provider \"%s\": out of memory", name);
    mailgun_destroy(state);
    return rc;
}

/* ------------------------------------------------------------------ */
/* Requests                                                            */
/* ------------------------------------------------------------------ */

/* libcurl reads each value through these, so the bodies and attachments
 * are not copied into the curl_mime structure. */
static size_t read_field(char *buffer, size_t size, size_t count, void *arg)
{
    mailgun_cursor *cursor = arg;
    size_t room = size * count;
    size_t left = cursor->size - cursor->offset;
    size_t n = left < room ? left : room;

    if (n > 0)
        memcpy(buffer, cursor->data + cursor->offset, n);
    cursor->offset += n;
    return n;
}

/* libcurl rewinds a field when it sends the request again, after a
 * reused connection closed without a response. */
static int seek_field(void *arg, curl_off_t offset, int origin)
{
    mailgun_cursor *cursor = arg;

    if (origin != SEEK_SET || offset < 0
        || (curl_off_t)cursor->size < offset)
        return CURL_SEEKFUNC_FAIL;
    cursor->offset = (size_t)offset;
    return CURL_SEEKFUNC_OK;
}

static void mailgun_release(void *opaque)
{
    mailgun_request *request = opaque;

    if (request == NULL)
        return;
    /* The mime structure goes first: it refers to the cursors. */
    curl_mime_free(request->mime);
    curl_slist_free_all(request->headers);
    free(request->cursors);
    outbox__mailgun_form_free(&request->form);
    free(request);
}

static CURLcode add_mime_part(curl_mime *mime,
                              const outbox_mailgun_part *field,
                              mailgun_cursor *cursor)
{
    curl_mimepart *part = curl_mime_addpart(mime);
    CURLcode code;

    if (part == NULL)
        return CURLE_OUT_OF_MEMORY;
    cursor->data = field->data;
    cursor->size = field->size;
    cursor->offset = 0;
    code = curl_mime_name(part, field->name);
    if (code == CURLE_OK)
        code = curl_mime_data_cb(part, (curl_off_t)field->size, read_field,
                                 seek_field, NULL, cursor);
    if (code == CURLE_OK && field->filename != NULL)
        code = curl_mime_filename(part, field->filename);
    if (code == CURLE_OK && field->type != NULL)
        code = curl_mime_type(part, field->type);
    return code;
}

static CURLcode build_mime(mailgun_request *request, CURL *easy)
{
    const outbox_mailgun_form *form = &request->form;
    CURLcode code = CURLE_OK;

    request->cursors = calloc(form->count + 1, sizeof(*request->cursors));
    request->mime = curl_mime_init(easy);
    if (request->cursors == NULL || request->mime == NULL)
        return CURLE_OUT_OF_MEMORY;
    for (size_t i = 0; code == CURLE_OK && i < form->count; i++)
        code = add_mime_part(request->mime, &form->parts[i],
                             &request->cursors[i]);
    return code;
}

static struct curl_slist *build_request_headers(const mailgun_state *state)
{
    static const char *const fixed[] = {
        "Accept: application/json",
        /* Without this libcurl may wait for "100 Continue" before it
         * sends a large body, a round trip that Mailgun does not need. */
        "Expect:",
    };
    struct curl_slist *headers = curl_slist_append(NULL, state->authorization);

    for (size_t i = 0; headers != NULL && i < 2; i++) {
        struct curl_slist *grown = curl_slist_append(headers, fixed[i]);

        if (grown == NULL) {
            curl_slist_free_all(headers);
            return NULL;
        }
        headers = grown;
    }
    return headers;
}

static CURLcode set_request_options(CURL *easy, const mailgun_state *state,
                                    const mailgun_request *request)
{
    CURLcode code = curl_easy_setopt(easy, CURLOPT_URL, state->url);

    if (code == CURLE_OK)
        code = curl_easy_setopt(easy, CURLOPT_PROTOCOLS_STR, "http,https");
    if (code == CURLE_OK)
        code = curl_easy_setopt(easy, CURLOPT_FOLLOWLOCATION, 0L);
    if (code == CURLE_OK)
        code = curl_easy_setopt(easy, CURLOPT_MIMEPOST, request->mime);
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

static outbox_err mailgun_prepare(void *opaque, void **out,
                                  outbox_error *err, CURL *easy,
                                  const outbox_message *message)
{
    const mailgun_state *state = opaque;
    mailgun_request *request = calloc(1, sizeof(*request));
    CURLcode code;
    outbox_err rc;

    *out = NULL;
    if (request == NULL)
        goto nomem;
    rc = outbox__mailgun_form_build(&request->form, err, message,
                                    state->max_message_bytes);
    if (rc != OUTBOX_EOK)
        goto cleanup;
    request->headers = build_request_headers(state);
    if (request->headers == NULL)
        goto nomem;

    code = build_mime(request, easy);
    if (code == CURLE_OK)
        code = set_request_options(easy, state, request);
    if (code == CURLE_OUT_OF_MEMORY)
        goto nomem;
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
    /* curl_mime_free also detaches the structure from the handle. */
    mailgun_release(request);
    return rc;
}

/* ------------------------------------------------------------------ */
/* Responses                                                           */
/* ------------------------------------------------------------------ */

/* Counts consecutive 404 responses, because a wrong domain, region or
 * base_url gives one to every message, and classifies. */
static void mailgun_classify(void *opaque, outbox_result *result,
                             const outbox_response *response)
{
    mailgun_state *state = opaque;
    int not_found = 0;

    if (response->curl_code == CURLE_OK && response->status == 404)
        not_found = atomic_fetch_add(&state->not_found_count, 1) + 1;
    else if (response->status > 0)
        atomic_store(&state->not_found_count, 0);
    outbox__mailgun_classify(result, response, not_found);

    if (result->kind == OUTBOX_RESULT_RETRY && result->retry_after < 0
        && response->curl_code == CURLE_OK
        && outbox_response_header(response, "Retry-After") != NULL)
        outbox_log(&state->logger, OUTBOX_LOG_WARN,
                   "provider=%s status=%ld Retry-After header is not a "
                   "number of seconds or an HTTP date; using the backoff "
                   "schedule",
                   state->name, response->status);
}

static const char *const mailgun_keys[] = {
    "domain", "region", "base_url", "api_key", "api_key_env",
    "timeout_seconds", "connect_timeout_seconds", "max_message_bytes", NULL};

const outbox_provider_ops outbox__mailgun_ops = {
    .type = "mailgun",
    .keys = mailgun_keys,
    .renders_templates = true,
    .create = mailgun_create,
    .destroy = mailgun_destroy,
    .prepare = mailgun_prepare,
    .release = mailgun_release,
    .classify = mailgun_classify,
    .deliver = NULL,
};
