/*
 * provider_smtp_reply.c - classifies how an SMTP transaction ended, from
 * libcurl's result, the last reply code (RFC 5321) and the enhanced status
 * code in its text (RFC 3463, "class.subject.detail").
 *
 *   250 after the end of DATA    sent; the relay's queue id is the
 *                                provider message id
 *   535, 530, 534, 538, auth     misconfigured (provider_auth): the relay
 *   failure in libcurl, 5.7.8,   rejects our credentials, so every message
 *   5.7.9, 5.7.11, 5.7.30,       would fail alike and the provider pauses;
 *   5.7.57, 5.7.139              550 5.7.30 is Office 365 with basic auth
 *                                turned off
 *   450, 451, 452, 454           retry after the throttle delay
 *                                (rate_limited), without using up an attempt
 *   other 4xx                    retry (provider_unavailable)
 *   5.4.5                        retry after the quota delay
 *                                (quota_exceeded): Google's daily limit
 *   552, 5.3.4                   failed (message_too_large)
 *   5.1.x                        failed (invalid_recipient; 5.1.7 and 5.1.8
 *                                invalid_sender)
 *   other 5xx                    failed (provider_rejected)
 *   no final reply after DATA    unknown (timeout_after_data, or
 *                                outcome_unknown): the relay may have the
 *                                message, so a resend could duplicate it
 *   no reply, TLS failures       retry (network, timeout); misconfigured
 *                                when STARTTLS is missing or the relay's
 *                                certificate is not trusted
 *
 * The enhanced class decides over the basic code's first digit when both
 * are present and differ.
 */
#include <stdio.h>
#include <string.h>

#include "internal.h"
#include "provider_smtp.h"

/* Room in error texts for a prefix and a hint around the reply. */
#define DETAIL_MAX (OUTBOX_ERROR_TEXT_MAX - 200)

/* The reply that decided the outcome, found in the body: the final line
 * whose code is the response's status, the enhanced status code that
 * starts its text, if any, and the reply's lines for error texts. */
typedef struct smtp_reply {
    long code;              /* 0 when the body contains no such reply */
    int enhanced[3];        /* class, subject, detail; class 0 if absent */
    const char *text;       /* the final line after the codes */
    size_t text_length;
    const char *lines;      /* every line of the reply */
    size_t lines_length;
} smtp_reply;

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

/* Parses a number of 1 to 3 digits at *p. */
static bool take_number(const char **p, const char *end, int *out)
{
    int value = 0;
    int digits = 0;

    while (*p < end && is_digit(**p) && digits < 4) {
        value = value * 10 + (**p - '0');
        (*p)++;
        digits++;
    }
    *out = value;
    return digits >= 1 && digits <= 3;
}

/* Reads "c.s.d " at the start of text into reply->enhanced. */
static void parse_enhanced(smtp_reply *reply, const char *text,
                           const char *end)
{
    const char *p = text;
    int parts[3];

    if (!take_number(&p, end, &parts[0]) || p >= end || *p != '.'
        || (parts[0] != 2 && parts[0] != 4 && parts[0] != 5))
        return;
    p++;
    if (!take_number(&p, end, &parts[1]) || p >= end || *p != '.')
        return;
    p++;
    if (!take_number(&p, end, &parts[2]) || (p < end && *p != ' '))
        return;
    memcpy(reply->enhanced, parts, sizeof(parts));
    while (p < end && *p == ' ')
        p++;
    reply->text = p;
    reply->text_length = (size_t)(end - p);
}

/* Returns the code of the reply line from line to end (without its line
 * break), and in *final whether it ends the reply; 0 if it is no reply. */
static long line_code(const char *line, const char *end, bool *final)
{
    if (end - line < 3 || !is_digit(line[0]) || !is_digit(line[1])
        || !is_digit(line[2]) || (end - line > 3 && line[3] != ' '
                                  && line[3] != '-'))
        return 0;
    *final = end - line == 3 || line[3] == ' ';
    return (line[0] - '0') * 100 + (line[1] - '0') * 10 + (line[2] - '0');
}

/* Finds, from the end of the body, the final reply line whose code is
 * status, and the continuation lines before it. */
static void parse_reply(smtp_reply *reply, const outbox_response *response)
{
    const char *body = response->body;
    const char *end;

    memset(reply, 0, sizeof(*reply));
    if (body == NULL || response->body_size == 0 || response->status <= 0)
        return;
    end = body + response->body_size;
    while (end > body) {
        const char *line_end = end;
        const char *line;
        bool final = false;

        while (line_end > body
               && (line_end[-1] == '\r' || line_end[-1] == '\n'))
            line_end--;
        line = line_end;
        while (line > body && line[-1] != '\n')
            line--;
        if (line_code(line, line_end, &final) == response->status && final) {
            const char *first = line;

            reply->code = response->status;
            reply->text = line_end - line > 4 ? line + 4 : line_end;
            reply->text_length = (size_t)(line_end - reply->text);
            parse_enhanced(reply, reply->text, line_end);

            /* Earlier lines of the same reply end with "-" after the code. */
            while (first > body) {
                const char *previous = first - 1;
                bool previous_final = false;

                while (previous > body && previous[-1] != '\n')
                    previous--;
                if (line_code(previous, first, &previous_final) == 0
                    || previous_final)
                    break;
                first = previous;
            }
            reply->lines = first;
            reply->lines_length = (size_t)(line_end - first);
            return;
        }
        end = line;
    }
}

/* Sets kind, error kind and "SMTP <reply><hint>" as the error text. */
static void set_reply_result(outbox_result *result, outbox_result_kind kind,
                             const char *error_kind,
                             const outbox_response *response,
                             const smtp_reply *reply, const char *hint)
{
    char detail[DETAIL_MAX];

    outbox_result_init(result, kind);
    result->status = response->status;
    if (kind == OUTBOX_RESULT_MISCONFIGURED)
        result->counts_as_failure = false;
    if (reply->code == response->status) {
        outbox_response view;

        memset(&view, 0, sizeof(view));
        view.body = reply->lines;
        view.body_size = reply->lines_length;
        outbox__body_excerpt(detail, sizeof(detail), &view);
    } else
        snprintf(detail, sizeof(detail), "reply code %ld",
                 response->status);
    if (response->curl_code != CURLE_OK)
        outbox_error_set(&result->error, OUTBOX_EPROVIDER, error_kind,
                         "SMTP %s%s (curl error %d)", detail, hint,
                         (int)response->curl_code);
    else
        outbox_error_set(&result->error, OUTBOX_EPROVIDER, error_kind,
                         "SMTP %s%s", detail, hint);
}

/*
 * Stores the relay's queue id from the final reply: the word after
 * "queued as" (Postfix), else the reply text itself,
 * which names the id in the relay's own way ("OK <id> [Hostname=...]").
 */
static void store_queue_id(outbox_result *result, const smtp_reply *reply)
{
    const char *text = reply->text;
    size_t length = reply->text_length;
    char copy[OUTBOX_PROVIDER_ID_MAX];
    const char *queued;
    size_t n;

    if (text == NULL || length == 0)
        return;
    n = length < sizeof(copy) - 1 ? length : sizeof(copy) - 1;
    memcpy(copy, text, n);
    copy[n] = '\0';
    queued = strstr(copy, "queued as ");
    if (queued != NULL) {
        queued += strlen("queued as ");
        n = strcspn(queued, " \r\n");
        if (n > 0) {
            memmove(copy, queued, n);
            copy[n] = '\0';
        }
    }
    for (char *p = copy; *p != '\0'; p++) {
        if ((unsigned char)*p < ' ' || (unsigned char)*p > '~')
            *p = '?';
    }
    snprintf(result->provider_message_id, sizeof(result->provider_message_id),
             "%s", copy);
}

/* Returns true if the reply refuses our credentials. */
static bool is_auth_failure(long code, const smtp_reply *reply)
{
    static const int details[] = {8, 9, 11, 30, 57, 139};

    if (code == 530 || code == 534 || code == 535 || code == 538)
        return true;
    if (reply->enhanced[0] != 5 || reply->enhanced[1] != 7)
        return false;
    for (size_t i = 0; i < sizeof(details) / sizeof(details[0]); i++) {
        if (reply->enhanced[2] == details[i])
            return true;
    }
    return false;
}

static void classify_transient(outbox_result *result,
                               const outbox_response *response,
                               const smtp_reply *reply,
                               const outbox_smtp_delays *delays)
{
    long code = response->status;

    if (code == 450 || code == 451 || code == 452 || code == 454) {
        set_reply_result(result, OUTBOX_RESULT_RETRY, "rate_limited",
                         response, reply, "");
        result->counts_as_failure = false;
        result->retry_after = delays->throttle;
        return;
    }
    set_reply_result(result, OUTBOX_RESULT_RETRY, "provider_unavailable",
                     response, reply, "");
}

static void classify_permanent(outbox_result *result,
                               const outbox_response *response,
                               const smtp_reply *reply,
                               const outbox_smtp_delays *delays)
{
    const int *e = reply->enhanced;
    long code = response->status;

    if (e[0] == 5 && e[1] == 4 && e[2] == 5) {
        set_reply_result(result, OUTBOX_RESULT_RETRY, "quota_exceeded",
                         response, reply, "");
        result->counts_as_failure = false;
        result->retry_after = delays->quota;
    } else if ((e[1] == 3 && e[2] == 4) || (code == 552 && e[1] != 2)) {
        set_reply_result(result, OUTBOX_RESULT_FAILED, "message_too_large",
                         response, reply, "");
    } else if (e[1] == 1 && (e[2] == 7 || e[2] == 8)) {
        set_reply_result(result, OUTBOX_RESULT_FAILED, "invalid_sender",
                         response, reply, "");
    } else if (e[1] == 1) {
        set_reply_result(result, OUTBOX_RESULT_FAILED, "invalid_recipient",
                         response, reply, "");
    } else {
        set_reply_result(result, OUTBOX_RESULT_FAILED, "provider_rejected",
                         response, reply, "");
    }
}

/* Classifies a failed transfer that ended without a 4xx or 5xx reply. */
static void classify_transfer_failure(outbox_result *result,
                                      const outbox_response *response)
{
    const char *detail = response->curl_error;
    CURLcode code = response->curl_code;

    if (detail == NULL || detail[0] == '\0')
        detail = curl_easy_strerror(code);
    if (response->status == 354) {
        /* DATA was accepted and the message sent, in part or whole, but
         * no final reply came: the relay may have queued it. */
        outbox_result_init(result, OUTBOX_RESULT_UNKNOWN);
        result->status = response->status;
        outbox_error_set(&result->error, OUTBOX_EPROVIDER,
                         code == CURLE_OPERATION_TIMEDOUT
                             ? "timeout_after_data"
                             : "outcome_unknown",
                         "no reply to the end of DATA (curl error %d): %s; "
                         "the relay may have accepted the message",
                         (int)code, detail);
    } else if (code == CURLE_LOGIN_DENIED) {
        outbox_result_init(result, OUTBOX_RESULT_MISCONFIGURED);
        result->status = response->status;
        result->counts_as_failure = false;
        outbox_error_set(&result->error, OUTBOX_EPROVIDER, "provider_auth",
                         "login failed (curl error %d): %s; check username "
                         "and the password or OAuth2 token",
                         (int)code, detail);
    } else if (code == CURLE_USE_SSL_FAILED) {
        outbox_result_init(result, OUTBOX_RESULT_MISCONFIGURED);
        result->status = response->status;
        result->counts_as_failure = false;
        outbox_error_set(&result->error, OUTBOX_EPROVIDER, "provider_tls",
                         "the relay does not offer STARTTLS (curl error "
                         "%d): %s; use smtps:// or a relay with TLS",
                         (int)code, detail);
    } else if (code == CURLE_PEER_FAILED_VERIFICATION
               || code == CURLE_SSL_CACERT_BADFILE) {
        outbox_result_init(result, OUTBOX_RESULT_MISCONFIGURED);
        result->status = response->status;
        result->counts_as_failure = false;
        outbox_error_set(&result->error, OUTBOX_EPROVIDER, "provider_tls",
                         "the relay's certificate is not trusted (curl "
                         "error %d): %s; check the url's host name and "
                         "ca_file", (int)code, detail);
    } else {
        outbox__classify_common(result, response);
    }
}

void outbox__smtp_classify(outbox_result *result,
                           const outbox_response *response,
                           const outbox_smtp_delays *delays)
{
    long code = response->status;
    smtp_reply reply;
    int reply_class;

    parse_reply(&reply, response);
    reply_class = reply.code == code && reply.enhanced[0] != 0
                      ? reply.enhanced[0]
                      : (int)(code / 100);

    if (response->curl_code == CURLE_OK && code >= 200 && code <= 299) {
        outbox_result_init(result, OUTBOX_RESULT_SENT);
        result->status = code;
        if (reply.code == code)
            store_queue_id(result, &reply);
    } else if (code >= 400 && code <= 599
               && (is_auth_failure(code, &reply)
                   || response->curl_code == CURLE_LOGIN_DENIED)) {
        set_reply_result(result, OUTBOX_RESULT_MISCONFIGURED, "provider_auth",
                         response, &reply,
                         reply.enhanced[2] == 30 || reply.enhanced[2] == 139
                             ? "; basic authentication is turned off for "
                               "this account: use oauth2_token"
                             : "; check username and the password or "
                               "OAuth2 token");
    } else if (code >= 400 && code <= 599 && reply_class == 4) {
        classify_transient(result, response, &reply, delays);
    } else if (code >= 400 && code <= 599) {
        classify_permanent(result, response, &reply, delays);
    } else if (response->curl_code != CURLE_OK) {
        classify_transfer_failure(result, response);
    } else {
        /* libcurl reported success without a 2xx reply, which it should
         * never do; the relay may have the message. */
        set_reply_result(result, OUTBOX_RESULT_UNKNOWN, "provider_unexpected",
                         response, &reply, "");
    }
}
