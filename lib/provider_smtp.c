/*
 * provider_smtp.c - delivery through an SMTP relay (a smarthost) with
 * libcurl: one transaction per message, with one MAIL FROM, one RCPT TO
 * per to, cc and bcc address, and the message built in
 * provider_smtp_message.c (envelope and header fields) and
 * provider_smtp_mime.c (body). Replies are classified in
 * provider_smtp_reply.c.
 *
 * Config keys of a provider of type "smtp":
 *   url                      required: smtp://host:587 (STARTTLS) or
 *                            smtps://host:465 (TLS from the start)
 *   username                 the login; needed with a password or token
 *   password, password_env   the password, or the variable that contains it
 *   oauth2_token, oauth2_token_env
 *                            an OAuth2 access token for XOAUTH2, in place
 *                            of the password (Office 365 without basic
 *                            authentication)
 *   ca_file                  PEM file of the CA that signed the relay's
 *                            certificate, for a site CA
 *   helo_name                the name sent with EHLO; Google's relay can
 *                            identify a sender by it
 *   insecure_plaintext_local_relay
 *                            true lets smtp:// go on without STARTTLS
 *                            when the relay does not offer it; allowed only
 *                            for localhost, 127.x.x.x and [::1]
 *   timeout_seconds          whole transaction, default 120
 *   connect_timeout_seconds  default 10
 *   max_message_bytes        default 25000000 (Google Workspace's cap;
 *                            Office 365 allows 35 MB); 0 turns it off
 *   max_recipients           default 100 (Google's cap per transaction;
 *                            Office 365 allows 500)
 *   throttle_retry_seconds   delay after 450/451/452/454, default 60
 *   quota_retry_seconds      delay after a daily limit (5.4.5),
 *                            default 3600
 *
 * Without STARTTLS on smtp:// the transaction stops before AUTH, so a
 * password crosses the network in the clear only to a local relay with
 * insecure_plaintext_local_relay set.
 *
 * NOTE: the OAuth2 token is read once, when the provider is created.
 * Access tokens are short-lived, and outboxd does not refresh them, so
 * a long-running daemon needs a restart with a fresh token.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <openssl/crypto.h>

#include "internal.h"
#include "provider_smtp.h"

#define SMTP_DEFAULT_TIMEOUT 120
#define SMTP_DEFAULT_CONNECT_TIMEOUT 10
#define SMTP_DEFAULT_MAX_MESSAGE 25000000
#define SMTP_DEFAULT_MAX_RECIPIENTS 100
#define SMTP_DEFAULT_THROTTLE_RETRY 60
#define SMTP_DEFAULT_QUOTA_RETRY 3600

/* Maximum timeout or delay accepted in config: one day. */
#define SMTP_MAX_SECONDS 86400

/* JSON numbers are doubles, which hold whole numbers exactly up to 2^53. */
#define SMTP_MAX_CONFIG_NUMBER 9007199254740992.0

/* Cap on the server replies kept for classification. A whole session,
 * with an EHLO reply of many lines, stays far below it. */
#define SMTP_MAX_REPLY_BYTES (64 * 1024)

/* RFC 1035: a host name is at most 253 characters. */
#define SMTP_HELO_MAX 253

typedef struct smtp_state {
    char *name;
    char *url;               /* url, plus "/" and helo_name when set */
    char *username;
    char *password;          /* a secret */
    char *oauth2_token;      /* a secret */
    char *ca_file;
    bool plaintext_allowed;
    long timeout;
    long connect_timeout;
    size_t max_message_bytes;
    size_t max_recipients;
    outbox_smtp_delays delays;
    outbox_logger logger;
} smtp_state;

/* ------------------------------------------------------------------ */
/* Config                                                              */
/* ------------------------------------------------------------------ */

/* Returns the host part of url (after the scheme), or NULL when url is not
 * smtp:// or smtps:// with a host, an optional port and nothing else. */
static const char *url_host(const char *url)
{
    const char *host;

    if (outbox__starts_with_ignoring_case(url, "smtps://"))
        host = url + 8;
    else if (outbox__starts_with_ignoring_case(url, "smtp://"))
        host = url + 7;
    else
        return NULL;
    if (*host == '\0' || *host == '/' || *host == ':')
        return NULL;
    for (const char *p = url; *p != '\0'; p++) {
        if (*p <= ' ' || *p >= 0x7F || *p == '?' || *p == '#' || *p == '@')
            return NULL;
    }
    /* A path would become the EHLO name, which helo_name sets instead. */
    if (strchr(host, '/') != NULL && strchr(host, '/')[1] != '\0')
        return NULL;
    return host;
}

/* Returns true if host (up to a port or "/") is the local machine. */
static bool host_is_loopback(const char *host)
{
    size_t n = host[0] == '[' ? strcspn(host, "]") + 1 : strcspn(host, ":/");

    if ((n == 9 && strncmp(host, "localhost", 9) == 0)
        || (n == 5 && strncmp(host, "[::1]", 5) == 0))
        return true;
    if (strncmp(host, "127.", 4) != 0)
        return false;
    for (size_t i = 4; i < n; i++) {
        if (!(host[i] >= '0' && host[i] <= '9') && host[i] != '.')
            return false;
    }
    return true;
}

/* Reads config[key] as a string, or NULL when absent. */
static outbox_err read_string(const char **out, outbox_error *err,
                              const char *name, const cJSON *config,
                              const char *key)
{
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(config, key);

    *out = NULL;
    if (item == NULL)
        return OUTBOX_EOK;
    if (!cJSON_IsString(item) || item->valuestring[0] == '\0')
        return outbox_error_set(err, OUTBOX_ECONFIG, "config",
                                "provider \"%s\": \"%s\" must be a non-empty "
                                "string", name, key);
    *out = item->valuestring;
    return OUTBOX_EOK;
}

static outbox_err read_url(smtp_state *state, outbox_error *err,
                           const cJSON *config)
{
    const cJSON *plaintext = cJSON_GetObjectItemCaseSensitive(
        config, "insecure_plaintext_local_relay");
    const char *url = NULL;
    const char *helo = NULL;
    const char *host;
    size_t length;
    outbox_err rc = read_string(&url, err, state->name, config, "url");

    if (rc == OUTBOX_EOK)
        rc = read_string(&helo, err, state->name, config, "helo_name");
    if (rc != OUTBOX_EOK)
        return rc;
    host = url != NULL ? url_host(url) : NULL;
    if (host == NULL)
        return outbox_error_set(err, OUTBOX_ECONFIG, "config",
                                "provider \"%s\": %s \"url\": expected "
                                "smtp://host:587 or smtps://host:465, "
                                "without a path or user name",
                                state->name, url ? "invalid" : "missing");
    if (helo != NULL && (strlen(helo) > SMTP_HELO_MAX
                         || strspn(helo, "abcdefghijklmnopqrstuvwxyz"
                                         "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                         "0123456789.-")
                                != strlen(helo)))
        return outbox_error_set(err, OUTBOX_ECONFIG, "config",
                                "provider \"%s\": invalid \"helo_name\": use "
                                "a host name of letters, digits, \".\" and "
                                "\"-\", such as mail.example.com",
                                state->name);

    if (plaintext != NULL && !cJSON_IsBool(plaintext))
        return outbox_error_set(err, OUTBOX_ECONFIG, "config",
                                "provider \"%s\": "
                                "\"insecure_plaintext_local_relay\" must be "
                                "true or false", state->name);
    state->plaintext_allowed = cJSON_IsTrue(plaintext);
    if (state->plaintext_allowed && !host_is_loopback(host))
        return outbox_error_set(err, OUTBOX_ECONFIG, "config",
                                "provider \"%s\": "
                                "\"insecure_plaintext_local_relay\" is "
                                "allowed only for a relay on localhost, "
                                "127.x.x.x or [::1]", state->name);

    length = strlen(url);
    while (length > 0 && url[length - 1] == '/')
        length--;
    state->url = malloc(length + (helo ? strlen(helo) : 0) + 2);
    if (state->url == NULL)
        return OUTBOX_ENOMEM;
    memcpy(state->url, url, length);
    state->url[length] = '\0';
    if (helo != NULL) {
        state->url[length] = '/';
        memcpy(state->url + length + 1, helo, strlen(helo) + 1);
    }
    return OUTBOX_EOK;
}

static outbox_err read_limits(smtp_state *state, outbox_error *err,
                              const cJSON *config)
{
    static const struct {
        const char *key;
        double fallback;
        double min;
        double max;
    } keys[] = {
        {"timeout_seconds", SMTP_DEFAULT_TIMEOUT, 1, SMTP_MAX_SECONDS},
        {"connect_timeout_seconds", SMTP_DEFAULT_CONNECT_TIMEOUT, 1,
         SMTP_MAX_SECONDS},
        {"max_message_bytes", SMTP_DEFAULT_MAX_MESSAGE, 0,
         SMTP_MAX_CONFIG_NUMBER},
        {"max_recipients", SMTP_DEFAULT_MAX_RECIPIENTS, 1, 100000},
        {"throttle_retry_seconds", SMTP_DEFAULT_THROTTLE_RETRY, 1,
         SMTP_MAX_SECONDS},
        {"quota_retry_seconds", SMTP_DEFAULT_QUOTA_RETRY, 1,
         SMTP_MAX_SECONDS},
    };
    double values[6];

    for (size_t i = 0; i < 6; i++) {
        outbox_err rc = outbox__provider_whole_number(&values[i], err,
                                                      state->name, config,
                                                      keys[i].key,
                                                      keys[i].fallback,
                                                      keys[i].min, keys[i].max);

        if (rc != OUTBOX_EOK)
            return rc;
    }
    state->timeout = (long)values[0];
    state->connect_timeout = (long)values[1];
    state->max_message_bytes = (size_t)values[2];
    state->max_recipients = (size_t)values[3];
    state->delays.throttle = (int64_t)values[4];
    state->delays.quota = (int64_t)values[5];
    return OUTBOX_EOK;
}

/* Reads the secret of key or key_env when either is present. A secret
 * must hold no control character, which would end an SMTP command. */
static outbox_err read_optional_secret(char **out, outbox_error *err,
                                       const char *name, const cJSON *config,
                                       const char *key, const char *key_env)
{
    outbox_err rc;

    *out = NULL;
    if (cJSON_GetObjectItemCaseSensitive(config, key) == NULL
        && cJSON_GetObjectItemCaseSensitive(config, key_env) == NULL)
        return OUTBOX_EOK;
    rc = outbox__provider_secret(out, err, name, config, key, key_env);
    if (rc != OUTBOX_EOK)
        return rc;
    for (const char *p = *out; *p != '\0'; p++) {
        if ((unsigned char)*p < ' ' || *p == 0x7F)
            return outbox_error_set(err, OUTBOX_ECONFIG, "config",
                                    "provider \"%s\": the secret from \"%s\" "
                                    "or \"%s\" contains a control character",
                                    name, key, key_env);
    }
    return OUTBOX_EOK;
}

static outbox_err read_credentials(smtp_state *state, outbox_error *err,
                                   const cJSON *config)
{
    const char *username = NULL;
    const char *ca_file = NULL;
    outbox_err rc;

    rc = read_string(&username, err, state->name, config, "username");
    if (rc == OUTBOX_EOK)
        rc = read_optional_secret(&state->password, err, state->name, config,
                                  "password", "password_env");
    if (rc == OUTBOX_EOK)
        rc = read_optional_secret(&state->oauth2_token, err, state->name,
                                  config, "oauth2_token", "oauth2_token_env");
    if (rc != OUTBOX_EOK)
        return rc;
    if (state->password != NULL && state->oauth2_token != NULL)
        return outbox_error_set(err, OUTBOX_ECONFIG, "config",
                                "provider \"%s\": set a password or an "
                                "OAuth2 token, not both", state->name);
    if ((username == NULL)
        != (state->password == NULL && state->oauth2_token == NULL))
        return outbox_error_set(err, OUTBOX_ECONFIG, "config",
                                "provider \"%s\": \"username\" goes with "
                                "\"password\" or \"oauth2_token\" (or their "
                                "_env forms); set both or neither",
                                state->name);
    state->username = outbox__strdup(username);
    if (username != NULL && state->username == NULL)
        return OUTBOX_ENOMEM;

    rc = read_string(&ca_file, err, state->name, config, "ca_file");
    if (rc == OUTBOX_EOK && ca_file != NULL && access(ca_file, R_OK) != 0)
        return outbox_error_set(err, OUTBOX_ECONFIG, "config",
                                "provider \"%s\": \"ca_file\" %.200s cannot "
                                "be read", state->name, ca_file);
    state->ca_file = outbox__strdup(ca_file);
    if (ca_file != NULL && state->ca_file == NULL)
        return OUTBOX_ENOMEM;
    return rc;
}

static void free_secret(char *secret)
{
    if (secret == NULL)
        return;
    OPENSSL_cleanse(secret, strlen(secret));
    free(secret);
}

static void smtp_destroy(void *opaque)
{
    smtp_state *state = opaque;

    if (state == NULL)
        return;
    free_secret(state->password);
    free_secret(state->oauth2_token);
    free(state->username);
    free(state->ca_file);
    free(state->url);
    free(state->name);
    free(state);
}

static outbox_err smtp_create(void **out, outbox_error *err,
                              const char *name, const cJSON *config,
                              const outbox_logger *logger)
{
    smtp_state *state = calloc(1, sizeof(*state));
    outbox_err rc = OUTBOX_ENOMEM;

    *out = NULL;
    if (state == NULL)
        goto cleanup;
    if (logger != NULL)
        state->logger = *logger;
    state->name = outbox__strdup(name);
    if (state->name == NULL)
        goto cleanup;
    rc = read_url(state, err, config);
    if (rc == OUTBOX_EOK)
        rc = read_limits(state, err, config);
    if (rc == OUTBOX_EOK)
        rc = read_credentials(state, err, config);
    if (rc == OUTBOX_EOK) {
        *out = state;
        return OUTBOX_EOK;
    }

cleanup:
    if (rc == OUTBOX_ENOMEM)
        outbox_error_set(err, rc, "internal",
                         "provider \"%s\": out of memory", name);
    smtp_destroy(state);
    return rc;
}

/* ------------------------------------------------------------------ */
/* Requests                                                            */
/* ------------------------------------------------------------------ */

static CURLcode set_auth_options(CURL *easy, const smtp_state *state)
{
    CURLcode code = CURLE_OK;

    if (state->username != NULL)
        code = curl_easy_setopt(easy, CURLOPT_USERNAME, state->username);
    if (code == CURLE_OK && state->password != NULL)
        code = curl_easy_setopt(easy, CURLOPT_PASSWORD, state->password);
    if (code == CURLE_OK && state->oauth2_token != NULL)
        code = curl_easy_setopt(easy, CURLOPT_XOAUTH2_BEARER,
                                state->oauth2_token);
    if (code == CURLE_OK && state->ca_file != NULL)
        code = curl_easy_setopt(easy, CURLOPT_CAINFO, state->ca_file);
    return code;
}

static CURLcode set_request_options(CURL *easy, const smtp_state *state,
                                    const outbox_smtp_request *request)
{
    CURLcode code = curl_easy_setopt(easy, CURLOPT_URL, state->url);

    if (code == CURLE_OK)
        code = curl_easy_setopt(easy, CURLOPT_PROTOCOLS_STR, "smtp,smtps");
    if (code == CURLE_OK)
        code = curl_easy_setopt(easy, CURLOPT_USE_SSL,
                                state->plaintext_allowed
                                    ? (long)CURLUSESSL_TRY
                                    : (long)CURLUSESSL_ALL);
    if (code == CURLE_OK)
        code = set_auth_options(easy, state);
    if (code == CURLE_OK)
        code = curl_easy_setopt(easy, CURLOPT_MAIL_FROM, request->mail_from);
    if (code == CURLE_OK)
        code = curl_easy_setopt(easy, CURLOPT_MAIL_RCPT, request->recipients);
    if (code == CURLE_OK)
        code = curl_easy_setopt(easy, CURLOPT_HTTPHEADER, request->headers);
    if (code == CURLE_OK)
        code = curl_easy_setopt(easy, CURLOPT_MIMEPOST, request->mime);
    if (code == CURLE_OK)
        code = curl_easy_setopt(easy, CURLOPT_UPLOAD, 1L);
    if (code == CURLE_OK)
        code = curl_easy_setopt(easy, CURLOPT_TIMEOUT, state->timeout);
    if (code == CURLE_OK)
        code = curl_easy_setopt(easy, CURLOPT_CONNECTTIMEOUT,
                                state->connect_timeout);
    if (code == CURLE_OK)
        code = curl_easy_setopt(easy, CURLOPT_SERVER_RESPONSE_TIMEOUT,
                                state->timeout);
    /* Signals would interrupt the event loop's thread. */
    if (code == CURLE_OK)
        code = curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
    return code;
}

/* Checks the provider's caps on recipients and size before anything is
 * sent. */
static outbox_err check_caps(const smtp_state *state, outbox_error *err,
                             const outbox_smtp_request *request,
                             const outbox_message *message)
{
    size_t recipients = outbox_message_recipient_count(message);
    size_t size;

    if (recipients > state->max_recipients)
        return outbox_error_set(err, OUTBOX_ELIMIT, "too_many_recipients",
                                "message %" PRId64 " has %zu recipients; "
                                "provider \"%s\" sends at most %zu in one "
                                "transaction (max_recipients)",
                                message->id, recipients, state->name,
                                state->max_recipients);
    if (state->max_message_bytes == 0)
        return OUTBOX_EOK;
    size = outbox__smtp_estimated_size(request, message);
    if (size > state->max_message_bytes)
        return outbox_error_set(err, OUTBOX_ELIMIT, "message_too_large",
                                "message %" PRId64 " is about %zu bytes once "
                                "encoded; provider \"%s\" accepts at most "
                                "%zu (max_message_bytes)",
                                message->id, size, state->name,
                                state->max_message_bytes);
    return OUTBOX_EOK;
}

/* Appends each reply line that libcurl hands to the header callback to
 * the buffer, up to its cap; the lines past it are dropped. */
static size_t keep_reply_line(char *data, size_t size, size_t count,
                              void *user)
{
    outbox_buf *replies = user;
    size_t length = size * count;

    if (replies->size + length <= replies->cap)
        (void)outbox__buf_append(replies, data, length);
    return length;
}

/* Builds the transaction of message on easy. Fails before any network
 * step when the message cannot be sent as it is. */
static outbox_err prepare(const smtp_state *state,
                          outbox_smtp_request **out, outbox_error *err,
                          CURL *easy, const outbox_message *message)
{
    outbox_smtp_request *request = calloc(1, sizeof(*request));
    outbox_err rc = OUTBOX_ENOMEM;
    CURLcode code;

    *out = NULL;
    if (request == NULL)
        goto cleanup;
    rc = outbox__smtp_envelope(request, err, message);
    if (rc == OUTBOX_EOK)
        rc = outbox__smtp_headers(request, err, message, (int64_t)time(NULL));
    if (rc == OUTBOX_EOK)
        rc = check_caps(state, err, request, message);
    if (rc == OUTBOX_EOK)
        rc = outbox__smtp_mime(request, err, easy, message);
    if (rc != OUTBOX_EOK)
        goto cleanup;

    code = set_request_options(easy, state, request);
    if (code != CURLE_OK) {
        rc = outbox_error_set(err, OUTBOX_EPROVIDER, "internal",
                              "provider \"%s\": libcurl rejected an option "
                              "of the transaction: %s",
                              state->name, curl_easy_strerror(code));
        goto cleanup;
    }
    *out = request;
    return OUTBOX_EOK;

cleanup:
    if (rc == OUTBOX_ENOMEM)
        outbox_error_set(err, rc, "internal", "provider \"%s\": out of memory",
                         state->name);
    outbox__smtp_request_free(request);
    return rc;
}

/*
 * Runs the transaction with curl_easy_perform on the calling thread, which
 * the daemon takes from libuv's thread pool. libcurl 7.88 waits for the
 * reply to the end of DATA inside the call that finishes the transfer,
 * blocking even under curl_multi_socket_action, so an SMTP transaction
 * must not run on the event loop's thread.
 *
 * NOTE: a stop of the daemon waits for these deliveries, even for those
 * still queued for a thread, because it aborts only curl transfers on the
 * loop. Each takes at most timeout_seconds, plus the wait for QUIT.
 */
static void smtp_deliver(void *opaque, outbox_result *result,
                         const outbox_message *message)
{
    const smtp_state *state = opaque;
    outbox_smtp_request *request = NULL;
    outbox_response response;
    char curl_error[CURL_ERROR_SIZE] = "";
    outbox_buf replies;
    outbox_error error;
    CURL *easy = curl_easy_init();
    outbox_err rc;

    memset(&error, 0, sizeof(error));
    outbox__buf_init(&replies, SMTP_MAX_REPLY_BYTES);
    if (easy == NULL) {
        outbox_result_init(result, OUTBOX_RESULT_RETRY);
        outbox_error_set(&result->error, OUTBOX_ENOMEM, "internal",
                         "cannot create a libcurl handle");
        return;
    }
    rc = prepare(state, &request, &error, easy, message);
    if (rc != OUTBOX_EOK) {
        /* Only a lack of memory is no fault of the message. */
        outbox_result_init(result, rc == OUTBOX_ENOMEM ? OUTBOX_RESULT_RETRY
                                                       : OUTBOX_RESULT_FAILED);
        result->error = error;
        curl_easy_cleanup(easy);
        return;
    }

    curl_easy_setopt(easy, CURLOPT_HEADERFUNCTION, keep_reply_line);
    curl_easy_setopt(easy, CURLOPT_HEADERDATA, &replies);
    curl_easy_setopt(easy, CURLOPT_ERRORBUFFER, curl_error);
    memset(&response, 0, sizeof(response));
    response.curl_code = curl_easy_perform(easy);
    curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &response.status);
    response.curl_error = curl_error;
    response.body = replies.data != NULL ? replies.data : "";
    response.body_size = replies.size;
    response.now = (int64_t)time(NULL);
    outbox__smtp_classify(result, &response, &state->delays);

    /* Closing sends QUIT, bounded by the server response timeout. */
    curl_easy_cleanup(easy);
    outbox__smtp_request_free(request);
    outbox__buf_free(&replies);
}

static const char *const smtp_keys[] = {
    "url", "username", "password", "password_env", "oauth2_token",
    "oauth2_token_env", "ca_file", "helo_name",
    "insecure_plaintext_local_relay", "timeout_seconds",
    "connect_timeout_seconds", "max_message_bytes", "max_recipients",
    "throttle_retry_seconds", "quota_retry_seconds", NULL};

const outbox_provider_ops outbox__smtp_ops = {
    .type = "smtp",
    .keys = smtp_keys,
    .create = smtp_create,
    .destroy = smtp_destroy,
    .deliver = smtp_deliver,
};
