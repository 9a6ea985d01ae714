/*
 * provider_ses_classify.c - turns SES v2's response to SendEmail into an
 * outbox_result. provider_ses.c lists which response leads to which result.
 *
 * An SES error names its exception in the X-Amzn-ErrorType header, as
 * "MessageRejected" or "TooManyRequestsException", optionally followed by
 * ":" and a URL. Some front ends put the name in the body instead, as
 * "__type" ("com.amazonaws.sesv2#MessageRejected") or "type". The body's
 * "message" explains the error. Names are compared with and without the
 * "Exception" suffix, since both spellings occur.
 */
#include <stdio.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "internal.h"
#include "provider_ses.h"

#define ERROR_TYPE_MAX 64

/* Wait after a rate limit response that names no delay. */
#define RATE_RETRY_SECONDS 1

/* Room in error texts for "HTTP nnn <type>: " and a hint. */
#define DETAIL_MAX (OUTBOX_ERROR_TEXT_MAX - 240)

typedef struct ses_error {
    char type[ERROR_TYPE_MAX];   /* exception name, "" when none */
    char message[DETAIL_MAX];    /* the body's message, else an excerpt */
} ses_error;

/* Copies the name at text, which ends at ":", at the end or at any
 * character that no exception name has. */
static void copy_type(char *out, size_t size, const char *text)
{
    size_t used = 0;

    for (; text[used] != '\0' && used + 1 < size; used++) {
        char c = text[used];

        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
              || (c >= '0' && c <= '9') || c == '_' || c == '.'))
            break;
        out[used] = c;
    }
    out[used] = '\0';
}

static const char *body_string(const cJSON *root, const char *key)
{
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(root, key);

    return cJSON_IsString(item) ? item->valuestring : NULL;
}

/* Writes text into out as one clean line, as body excerpts are. */
static void copy_excerpt(char *out, size_t size, const char *text)
{
    outbox_response view;

    memset(&view, 0, sizeof(view));
    view.body = text;
    view.body_size = strlen(text);
    outbox__body_excerpt(out, size, &view);
}

static void read_error(ses_error *error, const outbox_response *response)
{
    const char *header = outbox_response_header(response, "X-Amzn-ErrorType");
    cJSON *root = NULL;
    const char *type;
    const char *message;

    if (response->body != NULL && response->body_size > 0)
        root = cJSON_ParseWithLength(response->body, response->body_size);
    type = header;
    if (type == NULL)
        type = body_string(root, "__type");
    if (type == NULL)
        type = body_string(root, "type");
    if (type != NULL && strrchr(type, '#') != NULL)
        type = strrchr(type, '#') + 1;
    copy_type(error->type, sizeof(error->type), type != NULL ? type : "");

    message = body_string(root, "message");
    if (message == NULL)
        message = body_string(root, "Message");
    if (message != NULL)
        copy_excerpt(error->message, sizeof(error->message), message);
    else
        outbox__body_excerpt(error->message, sizeof(error->message),
                             response);
    cJSON_Delete(root);
}

/* Returns true if the error's name is name, with or without the
 * "Exception" suffix. */
static bool type_is(const ses_error *error, const char *name)
{
    size_t length = strlen(name);

    if (strncmp(error->type, name, length) != 0)
        return false;
    return error->type[length] == '\0'
           || strcmp(error->type + length, "Exception") == 0;
}

static bool message_has(const ses_error *error, const char *text)
{
    return strstr(error->message, text) != NULL;
}

/* Sets kind and "HTTP <status> <type>: <message><hint>". */
static void set_result(outbox_result *result, outbox_result_kind kind,
                       const char *error_kind,
                       const outbox_response *response,
                       const ses_error *error, const char *hint)
{
    outbox_result_init(result, kind);
    result->status = response->status;
    if (kind == OUTBOX_RESULT_MISCONFIGURED)
        result->counts_as_failure = false;
    outbox_error_set(&result->error, OUTBOX_EPROVIDER, error_kind,
                     "HTTP %ld%s%s: %s%s", response->status,
                     error->type[0] != '\0' ? " " : "", error->type,
                     error->message[0] != '\0' ? error->message
                                               : "(empty body)",
                     hint);
}

static void classify_accepted(outbox_result *result,
                              const outbox_response *response)
{
    cJSON *root = NULL;
    const char *id;
    bool id_usable;

    if (response->body != NULL && response->body_size > 0)
        root = cJSON_ParseWithLength(response->body, response->body_size);
    id = body_string(root, "MessageId");
    id_usable = id != NULL && id[0] != '\0'
                && strlen(id) < sizeof(result->provider_message_id);

    outbox_result_init(result, OUTBOX_RESULT_SENT);
    result->status = response->status;
    if (id_usable)
        memcpy(result->provider_message_id, id, strlen(id) + 1);
    cJSON_Delete(root);

    /* The message still counts as sent in both cases below: a retry would
     * send it twice. */
    if (response->curl_code != CURLE_OK)
        snprintf(result->error.text, sizeof(result->error.text),
                 "HTTP %ld, then the transfer failed (curl error %d): %s",
                 response->status, (int)response->curl_code,
                 curl_easy_strerror(response->curl_code));
    else if (!id_usable)
        snprintf(result->error.text, sizeof(result->error.text),
                 "HTTP %ld without a usable MessageId in the body, so SES "
                 "events can be matched to this message only by the "
                 "outbox_id tag",
                 response->status);
}

/* Classifies throttling, quotas and server errors, which SES wants
 * retried. Returns false for any other error. */
static bool classify_throttle(outbox_result *result,
                              const outbox_response *response,
                              const ses_error *error, int64_t quota_delay)
{
    const char *retry_after = outbox_response_header(response, "Retry-After");
    long status = response->status;

    if (message_has(error, "Daily message quota exceeded")) {
        set_result(result, OUTBOX_RESULT_RETRY, "quota_exceeded", response,
                   error, "");
        result->retry_after = quota_delay;
        result->counts_as_failure = false;
    } else if (status == 429 || type_is(error, "TooManyRequests")
               || type_is(error, "Throttling")) {
        set_result(result, OUTBOX_RESULT_RETRY, "rate_limited", response,
                   error, "");
        result->counts_as_failure = false;

        /* SES sends no Retry-After. Its rate limit counts messages per
         * second, so one second is the wait that can help. */
        if (retry_after == NULL)
            result->retry_after = RATE_RETRY_SECONDS;
    } else if (type_is(error, "LimitExceeded")) {
        set_result(result, OUTBOX_RESULT_RETRY, "provider_limit", response,
                   error, "");
        result->retry_after = quota_delay;
    } else if (status >= 500 && status <= 599) {
        set_result(result, OUTBOX_RESULT_RETRY, "provider_unavailable",
                   response, error, "");
    } else {
        return false;
    }
    if (retry_after != NULL && result->retry_after < 0)
        result->retry_after = outbox_parse_retry_after(retry_after,
                                                       response->now);
    return true;
}

/* Classifies errors that stop every message of this SES account or
 * configuration. Returns false for any other error. */
static bool classify_account(outbox_result *result,
                             const outbox_response *response,
                             const ses_error *error)
{
    static const struct {
        const char *type;
        const char *kind;
        const char *hint;
    } account_errors[] = {
        {"SendingPaused", "sending_paused",
         "; sending is paused for the account or the configuration set"},
        {"AccountSuspended", "account_suspended",
         "; the SES account is suspended"},
        {"MailFromDomainNotVerified", "sender_not_verified",
         "; verify the MAIL FROM domain in SES"},
        {"NotFound", "provider_not_found",
         "; check configuration_set, region and base_url"},
    };
    long status = response->status;

    for (size_t i = 0; i < sizeof(account_errors) / sizeof(*account_errors);
         i++) {
        if (type_is(error, account_errors[i].type)) {
            set_result(result, OUTBOX_RESULT_MISCONFIGURED,
                       account_errors[i].kind, response, error,
                       account_errors[i].hint);
            return true;
        }
    }
    if (status == 401 || status == 403) {
        set_result(result, OUTBOX_RESULT_MISCONFIGURED, "provider_auth",
                   response, error,
                   "; check the access key, the secret, the session token "
                   "and the region");
        return true;
    }
    if (status == 404) {
        set_result(result, OUTBOX_RESULT_MISCONFIGURED, "provider_not_found",
                   response, error, "; check base_url and region");
        return true;
    }
    return false;
}

void outbox__ses_classify(outbox_result *result,
                          const outbox_response *response,
                          int64_t quota_delay)
{
    long status = response->status;
    ses_error error;

    /* A 2xx status means SES accepted the message, even if the transfer
     * failed afterwards. */
    if (status >= 200 && status <= 299) {
        classify_accepted(result, response);
        return;
    }
    if (response->curl_code != CURLE_OK) {
        outbox__classify_common(result, response);
        return;
    }

    read_error(&error, response);
    if (classify_throttle(result, response, &error, quota_delay)
        || classify_account(result, response, &error))
        return;
    if (status == 413 || message_has(&error, "Message length is more than"))
        set_result(result, OUTBOX_RESULT_FAILED, "message_too_large",
                   response, &error, "");
    else if (type_is(&error, "MessageRejected"))
        set_result(result, OUTBOX_RESULT_FAILED, "provider_rejected",
                   response, &error, "");
    else if (status == 400)
        set_result(result, OUTBOX_RESULT_FAILED, "provider_validation",
                   response, &error, "");
    else if (status >= 400 && status <= 499)
        set_result(result, OUTBOX_RESULT_FAILED, "provider_rejected",
                   response, &error, "");
    else if (status >= 300 && status <= 399)
        set_result(result, OUTBOX_RESULT_MISCONFIGURED, "provider_redirect",
                   response, &error, "; check base_url");
    else
        /* SES may have taken the message, so a person decides rather than
         * a retry that could send it twice. */
        set_result(result, OUTBOX_RESULT_UNKNOWN, "provider_unexpected",
                   response, &error, "");
}
