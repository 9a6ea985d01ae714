/*
 * provider_mailgun_response.c - what Mailgun's responses to a send request
 * mean for the message.
 *
 *   2xx                 sent; the "id" of the JSON body, without its angle
 *                       brackets, is the provider message id
 *   no response, 5xx    retry
 *   429                 retry after Retry-After, without using up an
 *                       attempt
 *   400                 failed: a field is invalid (kind
 *                       provider_validation)
 *   402                 failed: Mailgun did not accept the request
 *   413                 failed: the message is too large
 *   401, 403            misconfigured: a bad key, or a key without access
 *                       to the domain, stops every message, so the
 *                       provider pauses
 *   404                 retry, because a 404 can be transient; but the
 *                       third 404 in a row (OUTBOX_MAILGUN_NOT_FOUND_PAUSE)
 *                       points at a wrong domain, region or base_url:
 *                       misconfigured
 *   3xx                 misconfigured: base_url points at a redirect
 *   other 4xx           failed
 *   anything else       unknown: Mailgun may or may not have the message
 *
 * Error texts are "HTTP <status>: <message>", where message is the
 * "message" of Mailgun's JSON error body, or else an excerpt of the body.
 */
#include <stdio.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "internal.h"
#include "provider_mailgun.h"

/* Room in error texts for the "HTTP nnn: " prefix and a hint. */
#define MAILGUN_DETAIL_MAX (OUTBOX_ERROR_TEXT_MAX - 200)

/* Copies text through outbox__body_excerpt, which keeps one line of valid
 * UTF-8 of at most 1 KB. */
static void excerpt_of(char *out, size_t size, const char *text)
{
    outbox_response view;

    memset(&view, 0, sizeof(view));
    view.body = text;
    view.body_size = strlen(text);
    outbox__body_excerpt(out, size, &view);
}

/* Reads the JSON body; NULL when it is not a complete JSON object. */
static cJSON *parse_body(const outbox_response *response)
{
    cJSON *root;

    if (response->body == NULL || response->body_truncated)
        return NULL;
    root = cJSON_ParseWithLength(response->body, response->body_size);
    if (root != NULL && !cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return NULL;
    }
    return root;
}

/* Writes the "message" of a JSON error body into text; false if none. */
static bool error_message(char *text, size_t size,
                          const outbox_response *response)
{
    cJSON *root = parse_body(response);
    const char *message;
    bool found = false;

    message = cJSON_GetStringValue(
        cJSON_GetObjectItemCaseSensitive(root, "message"));
    if (message != NULL && message[0] != '\0') {
        excerpt_of(text, size, message);
        found = text[0] != '\0';
    }
    cJSON_Delete(root);
    return found;
}

/* Sets kind and "HTTP <status>: <detail><hint>". */
static void set_http_result(outbox_result *result, outbox_result_kind kind,
                            const char *error_kind,
                            const outbox_response *response,
                            const char *hint)
{
    char detail[MAILGUN_DETAIL_MAX];

    outbox_result_init(result, kind);
    result->status = response->status;
    if (kind == OUTBOX_RESULT_MISCONFIGURED)
        result->counts_as_failure = false;
    if (!error_message(detail, sizeof(detail), response))
        outbox__body_excerpt(detail, sizeof(detail), response);
    outbox_error_set(&result->error, OUTBOX_EPROVIDER, error_kind,
                     "HTTP %ld: %s%s", response->status,
                     detail[0] != '\0' ? detail : "(empty body)", hint);
}

/* Copies the id without one pair of angle brackets; false if unusable. */
static bool store_message_id(outbox_result *result, const char *id)
{
    size_t length = id != NULL ? strlen(id) : 0;

    if (length >= 2 && id[0] == '<' && id[length - 1] == '>') {
        id++;
        length -= 2;
    }
    if (length == 0 || length >= sizeof(result->provider_message_id)
        || !outbox__utf8_valid(id, length))
        return false;
    memcpy(result->provider_message_id, id, length);
    result->provider_message_id[length] = '\0';
    return true;
}

static void classify_accepted(outbox_result *result,
                              const outbox_response *response)
{
    cJSON *root = parse_body(response);
    bool id_usable;

    outbox_result_init(result, OUTBOX_RESULT_SENT);
    result->status = response->status;
    id_usable = store_message_id(
        result, cJSON_GetStringValue(
                    cJSON_GetObjectItemCaseSensitive(root, "id")));
    cJSON_Delete(root);

    /* The message still counts as sent in both cases below. */
    if (response->curl_code != CURLE_OK)
        snprintf(result->error.text, sizeof(result->error.text),
                 "HTTP %ld, then the transfer failed (curl error %d): %s",
                 response->status, (int)response->curl_code,
                 curl_easy_strerror(response->curl_code));
    else if (!id_usable)
        snprintf(result->error.text, sizeof(result->error.text),
                 "HTTP %ld without a usable \"id\" in the body, so webhook "
                 "events can be matched to this message only by "
                 "v:outbox_id",
                 response->status);
}

static void classify_not_found(outbox_result *result,
                               const outbox_response *response,
                               int not_found_count)
{
    char hint[160];

    if (not_found_count >= OUTBOX_MAILGUN_NOT_FOUND_PAUSE) {
        snprintf(hint, sizeof(hint),
                 "; %d responses in a row were 404: check \"domain\", "
                 "\"region\" and \"base_url\"",
                 not_found_count);
        set_http_result(result, OUTBOX_RESULT_MISCONFIGURED,
                        "provider_not_found", response, hint);
        return;
    }
    snprintf(hint, sizeof(hint),
             "; the provider pauses after %d responses in a row are 404",
             OUTBOX_MAILGUN_NOT_FOUND_PAUSE);
    set_http_result(result, OUTBOX_RESULT_RETRY, "provider_not_found",
                    response, hint);
}

void outbox__mailgun_classify(outbox_result *result,
                              const outbox_response *response,
                              int not_found_count)
{
    long status = response->status;

    /* A 2xx status means Mailgun accepted the message, even if the
     * transfer failed afterwards: a retry would send it twice. */
    if (status >= 200 && status <= 299) {
        classify_accepted(result, response);
    } else if (outbox__classify_common(result, response)) {
        return;
    } else if (status == 400) {
        set_http_result(result, OUTBOX_RESULT_FAILED, "provider_validation",
                        response, "");
    } else if (status == 413) {
        set_http_result(result, OUTBOX_RESULT_FAILED, "message_too_large",
                        response, "");
    } else if (status == 401) {
        set_http_result(result, OUTBOX_RESULT_MISCONFIGURED, "provider_auth",
                        response,
                        "; check the API key and \"region\"");
    } else if (status == 403) {
        set_http_result(result, OUTBOX_RESULT_MISCONFIGURED,
                        "provider_forbidden", response,
                        "; check the API key's access to the domain");
    } else if (status == 404) {
        classify_not_found(result, response, not_found_count);
    } else if (status >= 400 && status <= 499) {
        set_http_result(result, OUTBOX_RESULT_FAILED, "provider_rejected",
                        response, "");
    } else if (status >= 300 && status <= 399) {
        set_http_result(result, OUTBOX_RESULT_MISCONFIGURED,
                        "provider_redirect", response, "; check base_url");
    } else {
        /* An unexpected status: Mailgun may have taken the message, so a
         * person decides rather than a retry that could send it twice. */
        set_http_result(result, OUTBOX_RESULT_UNKNOWN, "provider_unexpected",
                        response, "");
    }
}
