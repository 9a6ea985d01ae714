/*
 * provider_postmark_response.c - the classification of Postmark's
 * responses to POST /email.
 *
 * Postmark responds with an HTTP status and, for most errors, a JSON body
 * {"ErrorCode": n, "Message": "..."}. Under a 4xx status the ErrorCode
 * decides, because one status (422) carries many of them:
 *
 *   2xx                   sent; MessageID from the body is the provider
 *                         message id, and a Message other than "OK" is
 *                         kept as a note in the attempt row. A note of
 *                         skipped inactive recipients gets the kind
 *                         inactive_recipients_skipped, so that the store
 *                         marks the addresses it names suppressed
 *   no response, 429,     retry; a 429 honours Retry-After and does not
 *   5xx                   use up an attempt
 *   ErrorCode 100         retry: Postmark is down for maintenance
 *   ErrorCode 429         retry, as HTTP 429
 *   ErrorCode 10          misconfigured, kind provider_auth: the server
 *                         token is wrong, so the provider pauses
 *   ErrorCode 400, 401,   misconfigured, kind provider_forbidden: no
 *   405, 412, 413         confirmed sender signature for From, or the
 *                         account may not send (no credits, pending
 *                         approval, sending disabled)
 *   ErrorCode 406         failed, kind inactive_recipient: a recipient is
 *                         on Postmark's inactive list after a hard bounce,
 *                         a spam complaint or a manual suppression; the
 *                         text names the address as Postmark gives it
 *   ErrorCode 411         failed, kind forbidden_attachment
 *   ErrorCode 300, 402,   failed, kind provider_validation: the request
 *   403, 409              is invalid (an address, a field, the JSON)
 *   other ErrorCode       failed, kind provider_rejected: Postmark refused
 *                         this request and took nothing, so a permanent
 *                         failure cannot lose a message, whereas a retry
 *                         would repeat a refusal nobody has looked at
 *   401 without a known   misconfigured, kind provider_auth
 *   ErrorCode
 *   403 without a code    retry, kind edge_blocked, counted as a failure:
 *                         such a 403 (usually an HTML page) comes from the
 *                         network edge in front of the API, not from
 *                         Postmark's API. A block of the sending address
 *                         passes, and a block of this content ends in
 *                         failed after max_attempts without pausing the
 *                         provider for the other messages.
 *   404 without a code    misconfigured, kind provider_not_found: base_url
 *                         does not lead to the API
 *   413 without a code    failed, kind message_too_large
 *   3xx                   misconfigured, kind provider_redirect
 *   other 4xx             failed, kind provider_rejected
 *   anything else         unknown: Postmark may or may not have the
 *                         message, so the row is held for a person
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "internal.h"
#include "provider_postmark.h"

/* Room in error texts for the "HTTP nnn: ErrorCode nnn: " prefix and a
 * hint. */
#define DETAIL_MAX (OUTBOX_ERROR_TEXT_MAX - 200)

/* What a response body contains, read once. */
typedef struct postmark_answer {
    long error_code;       /* -1 when the body has none */
    char message[DETAIL_MAX];   /* "Message" as one line; "" if none */
    char message_id[OUTBOX_PROVIDER_ID_MAX]; /* "" if none or unusable */
} postmark_answer;

typedef struct error_code_rule {
    long code;
    outbox_result_kind kind;
    const char *error_kind;
    const char *hint;
} error_code_rule;

static const error_code_rule error_code_rules[] = {
    {10, OUTBOX_RESULT_MISCONFIGURED, "provider_auth",
     "; check the server token"},
    {300, OUTBOX_RESULT_FAILED, "provider_validation", ""},
    {400, OUTBOX_RESULT_MISCONFIGURED, "provider_forbidden",
     "; add a sender signature for the From address on the Postmark "
     "server"},
    {401, OUTBOX_RESULT_MISCONFIGURED, "provider_forbidden",
     "; confirm the sender signature of the From address"},
    {402, OUTBOX_RESULT_FAILED, "provider_validation", ""},
    {403, OUTBOX_RESULT_FAILED, "provider_validation", ""},
    {405, OUTBOX_RESULT_MISCONFIGURED, "provider_forbidden",
     "; the Postmark account may not send: check its credits"},
    {406, OUTBOX_RESULT_FAILED, "inactive_recipient", ""},
    {409, OUTBOX_RESULT_FAILED, "provider_validation", ""},
    {411, OUTBOX_RESULT_FAILED, "forbidden_attachment", ""},
    {412, OUTBOX_RESULT_MISCONFIGURED, "provider_forbidden",
     "; the Postmark account is pending approval"},
    {413, OUTBOX_RESULT_MISCONFIGURED, "provider_forbidden",
     "; the Postmark account may not send"},
};

/* Copies text into out as one line of valid UTF-8, as for any other text
 * from the network. */
static void copy_excerpt(char *out, size_t size, const char *text)
{
    outbox_response view;

    memset(&view, 0, sizeof(view));
    view.body = text;
    view.body_size = strlen(text);
    outbox__body_excerpt(out, size, &view);
}

/* A MessageID is stored and logged, so only a short token of printable
 * ASCII without spaces is kept: Postmark sends a UUID. */
static bool message_id_is_usable(const char *id)
{
    size_t length = strlen(id);

    if (length == 0 || length >= OUTBOX_PROVIDER_ID_MAX)
        return false;
    for (size_t i = 0; i < length; i++) {
        if (id[i] <= ' ' || id[i] >= 0x7F)
            return false;
    }
    return true;
}

static void read_answer(postmark_answer *answer,
                        const outbox_response *response)
{
    cJSON *root = NULL;
    const cJSON *item;

    answer->error_code = -1;
    answer->message[0] = '\0';
    answer->message_id[0] = '\0';
    if (response->body != NULL && response->body_size > 0)
        root = cJSON_ParseWithLength(response->body, response->body_size);
    if (!cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return;
    }

    item = cJSON_GetObjectItemCaseSensitive(root, "ErrorCode");
    if (cJSON_IsNumber(item) && item->valuedouble >= 0
        && item->valuedouble < 1e9
        && item->valuedouble == (double)(long)item->valuedouble)
        answer->error_code = (long)item->valuedouble;
    item = cJSON_GetObjectItemCaseSensitive(root, "Message");
    if (cJSON_IsString(item))
        copy_excerpt(answer->message, sizeof(answer->message),
                     item->valuestring);
    item = cJSON_GetObjectItemCaseSensitive(root, "MessageID");
    if (cJSON_IsString(item) && message_id_is_usable(item->valuestring))
        memcpy(answer->message_id, item->valuestring,
               strlen(item->valuestring) + 1);
    cJSON_Delete(root);
}

/* Writes "HTTP <status>: ErrorCode <n>: <Message><hint>" when the body
 * has an error code, and else "HTTP <status>: <body excerpt><hint>". */
static void set_text(outbox_result *result, const outbox_response *response,
                     const postmark_answer *answer, const char *kind,
                     const char *hint)
{
    char detail[DETAIL_MAX];

    if (answer->error_code >= 0) {
        outbox_error_set(&result->error, OUTBOX_EPROVIDER, kind,
                         "HTTP %ld: ErrorCode %ld: %s%s", response->status,
                         answer->error_code,
                         answer->message[0] ? answer->message
                                            : "(no message)",
                         hint);
        return;
    }
    outbox__body_excerpt(detail, sizeof(detail), response);
    outbox_error_set(&result->error, OUTBOX_EPROVIDER, kind, "HTTP %ld: %s%s",
                     response->status, detail[0] ? detail : "(empty body)",
                     hint);
}

static void set_result(outbox_result *result, outbox_result_kind kind,
                       const char *error_kind,
                       const outbox_response *response,
                       const postmark_answer *answer, const char *hint)
{
    outbox_result_init(result, kind);
    result->status = response->status;
    if (kind == OUTBOX_RESULT_MISCONFIGURED)
        result->counts_as_failure = false;
    set_text(result, response, answer, error_kind, hint);
}

/* True if text contains word, in any case of ASCII letters. */
static bool contains_ignoring_case(const char *text, const char *word)
{
    size_t length = strlen(word);

    for (; *text != '\0'; text++) {
        size_t i = 0;

        while (i < length && text[i] != '\0'
               && tolower((unsigned char)text[i])
                      == tolower((unsigned char)word[i]))
            i++;
        if (i == length)
            return true;
    }
    return false;
}

static void classify_accepted(outbox_result *result,
                              const outbox_response *response,
                              const postmark_answer *answer)
{
    char *note = result->error.text;
    size_t size = sizeof(result->error.text);

    outbox_result_init(result, OUTBOX_RESULT_SENT);
    result->status = response->status;
    memcpy(result->provider_message_id, answer->message_id,
           strlen(answer->message_id) + 1);

    /* The message counts as sent in every case below: a retry after a
     * 2xx could send it twice. */
    if (response->curl_code != CURLE_OK)
        snprintf(note, size,
                 "HTTP %ld, then the transfer failed (curl error %d): %s",
                 response->status, (int)response->curl_code,
                 curl_easy_strerror(response->curl_code));
    else if (answer->message_id[0] == '\0')
        snprintf(note, size,
                 "HTTP %ld without a usable MessageID in the body, so "
                 "webhook events can be matched to this message only by "
                 "the outbox_id metadata",
                 response->status);
    else if (answer->error_code > 0
             || (answer->message[0] && strcmp(answer->message, "OK") != 0))
        snprintf(note, size, "HTTP %ld: ErrorCode %ld: %s", response->status,
                 answer->error_code > 0 ? answer->error_code : 0,
                 answer->message);

    /* Postmark took the message but left out the inactive recipients. */
    if (contains_ignoring_case(answer->message, "inactive recipients skipped"))
        snprintf(result->error.kind, sizeof(result->error.kind),
                 "inactive_recipients_skipped");
}

/* Classifies ErrorCode 100 or 429 under a status that is neither 429 nor
 * 5xx as a retry. */
static void classify_retry_code(outbox_result *result,
                                const outbox_response *response,
                                const postmark_answer *answer)
{
    bool rate_limited = answer->error_code == 429;
    const char *retry_after = outbox_response_header(response, "Retry-After");

    outbox_result_init(result, OUTBOX_RESULT_RETRY);
    result->status = response->status;
    if (retry_after != NULL)
        result->retry_after = outbox_parse_retry_after(retry_after,
                                                       response->now);
    result->counts_as_failure = !rate_limited;
    set_text(result, response, answer,
             rate_limited ? "rate_limited" : "provider_unavailable", "");
}

static const error_code_rule *find_rule(long code)
{
    size_t count = sizeof(error_code_rules) / sizeof(error_code_rules[0]);

    for (size_t i = 0; i < count; i++) {
        if (error_code_rules[i].code == code)
            return &error_code_rules[i];
    }
    return NULL;
}

/* The status decides when the body has no ErrorCode, which is when the
 * response comes from something in front of the API. */
static void classify_status(outbox_result *result,
                            const outbox_response *response,
                            const postmark_answer *answer)
{
    const char *retry_after = outbox_response_header(response, "Retry-After");
    long status = response->status;

    if (status == 401) {
        set_result(result, OUTBOX_RESULT_MISCONFIGURED, "provider_auth",
                   response, answer, "; check the server token");
    } else if (status == 403) {
        set_result(result, OUTBOX_RESULT_RETRY, "edge_blocked", response,
                   answer,
                   "; a 403 without a Postmark ErrorCode comes from the "
                   "network edge in front of the API, which blocked the "
                   "request");
        if (retry_after != NULL)
            result->retry_after = outbox_parse_retry_after(retry_after,
                                                           response->now);
    } else if (status == 404) {
        set_result(result, OUTBOX_RESULT_MISCONFIGURED, "provider_not_found",
                   response, answer, "; check base_url");
    } else if (status == 413) {
        set_result(result, OUTBOX_RESULT_FAILED, "message_too_large",
                   response, answer, "");
    } else if (status >= 400 && status <= 499) {
        set_result(result, OUTBOX_RESULT_FAILED, "provider_rejected",
                   response, answer, "");
    } else if (status >= 300 && status <= 399) {
        set_result(result, OUTBOX_RESULT_MISCONFIGURED, "provider_redirect",
                   response, answer, "; check base_url");
    } else {
        set_result(result, OUTBOX_RESULT_UNKNOWN, "provider_unexpected",
                   response, answer, "");
    }
}

void outbox__postmark_classify(outbox_result *result,
                               const outbox_response *response)
{
    long status = response->status;
    const error_code_rule *rule;
    postmark_answer answer;

    read_answer(&answer, response);
    if (status >= 200 && status <= 299) {
        classify_accepted(result, response, &answer);
        return;
    }

    /* A transfer error, 429 and 5xx retry whatever the body contains.
     * The text is rewritten when the body has Postmark's error fields. */
    if (outbox__classify_common(result, response)) {
        char kind[OUTBOX_ERROR_KIND_MAX];

        if (response->curl_code != CURLE_OK || answer.error_code < 0)
            return;
        memcpy(kind, result->error.kind, sizeof(kind));
        set_text(result, response, &answer, kind, "");
        return;
    }
    /* Postmark's API sends its ErrorCodes with a 4xx status. Other
     * statuses come from something in front of it. */
    if (status < 400 || status > 499) {
        classify_status(result, response, &answer);
        return;
    }
    if (answer.error_code == 100 || answer.error_code == 429) {
        classify_retry_code(result, response, &answer);
        return;
    }
    rule = find_rule(answer.error_code);
    if (rule != NULL)
        set_result(result, rule->kind, rule->error_kind, response, &answer,
                   rule->hint);
    else if (answer.error_code >= 0 && status != 401)
        set_result(result, OUTBOX_RESULT_FAILED, "provider_rejected",
                   response, &answer, "");
    else
        classify_status(result, response, &answer);
}
