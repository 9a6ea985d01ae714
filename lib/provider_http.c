/*
 * provider_http.c - what every HTTP provider shares when it reads a
 * response: results, response headers, Retry-After, body excerpts for
 * error texts, and the classification of responses that all APIs send
 * alike.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "internal.h"
#include "provider.h"

/* Maximum length of a body excerpt copied into an error text. */
#define EXCERPT_MAX 1024

/* ------------------------------------------------------------------ */
/* Results and responses                                               */
/* ------------------------------------------------------------------ */

void outbox_result_init(outbox_result *result, outbox_result_kind kind)
{
    memset(result, 0, sizeof(*result));
    result->kind = kind;
    result->retry_after = -1;
    result->counts_as_failure = true;
}

const char *outbox_result_kind_name(outbox_result_kind kind)
{
    switch (kind) {
    case OUTBOX_RESULT_SENT:
        return "sent";
    case OUTBOX_RESULT_RETRY:
        return "retry";
    case OUTBOX_RESULT_FAILED:
        return "failed";
    case OUTBOX_RESULT_MISCONFIGURED:
        return "misconfigured";
    case OUTBOX_RESULT_UNKNOWN:
        return "unknown";
    }
    return "unknown";
}

const char *outbox_response_header(const outbox_response *response,
                                   const char *name)
{
    for (size_t i = 0; i < response->header_count; i++) {
        const outbox_field *header = &response->headers[i];

        if (header->name != NULL && header->value != NULL
            && outbox__strcasecmp(header->name, name) == 0)
            return header->value;
    }
    return NULL;
}

/* Length of the UTF-8 sequence at s (at most n bytes), or 0 if invalid. */
static size_t utf8_sequence_length(const unsigned char *s, size_t n)
{
    size_t length;

    if (s[0] < 0x80)
        return 1;
    if (s[0] >= 0xC2 && s[0] <= 0xDF)
        length = 2;
    else if (s[0] >= 0xE0 && s[0] <= 0xEF)
        length = 3;
    else if (s[0] >= 0xF0 && s[0] <= 0xF4)
        length = 4;
    else
        return 0;
    if (length > n || !outbox__utf8_valid((const char *)s, length))
        return 0;
    return length;
}

/*
 * The excerpt is one line of valid UTF-8 because it ends up in log lines
 * and in a TEXT column. Runs of control characters and spaces become one
 * space, and bytes that are not UTF-8 become '?'. A cut ends in "...".
 */
void outbox__body_excerpt(char *text, size_t size,
                          const outbox_response *response)
{
    const unsigned char *body = (const unsigned char *)response->body;
    size_t limit;
    size_t used = 0;
    size_t i = 0;
    bool space = false;

    if (size == 0)
        return;
    text[0] = '\0';
    if (body == NULL)
        return;
    limit = size - 1 < EXCERPT_MAX ? size - 1 : EXCERPT_MAX;

    while (i < response->body_size) {
        size_t length = utf8_sequence_length(body + i,
                                             response->body_size - i);

        if (body[i] <= ' ' || body[i] == 0x7F) {
            space = used > 0;
            i++;
            continue;
        }
        if (used + (space ? 1 : 0) + (length ? length : 1) > limit)
            break;
        if (space)
            text[used++] = ' ';
        space = false;
        if (length == 0) {
            text[used++] = '?';
            i++;
        } else {
            memcpy(text + used, body + i, length);
            used += length;
            i += length;
        }
    }

    /* A cut is marked, after backing off to a character boundary to make
     * room for the mark. */
    if ((i < response->body_size || response->body_truncated) && limit >= 3) {
        if (used > limit - 3) {
            used = limit - 3;
            while (used > 0 && ((unsigned char)text[used] & 0xC0) == 0x80)
                used--;
        }
        memcpy(text + used, "...", 3);
        used += 3;
    }
    text[used] = '\0';
}

/* ------------------------------------------------------------------ */
/* Retry-After                                                         */
/* ------------------------------------------------------------------ */

static const char *const month_names[12] = {
    "Jan", "Feb", "Mar", "Apr", "May", "Jun",
    "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
};
static const char *const day_names[7] = {
    "Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun",
};
static const char *const day_names_long[7] = {
    "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday",
    "Sunday",
};

/* Parses a run of ASCII digits. Fails if it is empty or over INT64_MAX. */
static bool parse_digits(int64_t *out, const char *text, size_t length)
{
    int64_t value = 0;

    if (length == 0)
        return false;
    for (size_t i = 0; i < length; i++) {
        if (text[i] < '0' || text[i] > '9')
            return false;
        if (value > (INT64_MAX - (text[i] - '0')) / 10)
            return false;
        value = value * 10 + (text[i] - '0');
    }
    *out = value;
    return true;
}

/* Consumes literal at *p. */
static bool take_literal(const char **p, const char *literal)
{
    size_t length = strlen(literal);

    if (strncmp(*p, literal, length) != 0)
        return false;
    *p += length;
    return true;
}

/* Consumes exactly count digits. */
static bool take_number(const char **p, size_t count, int *out)
{
    int value = 0;

    for (size_t i = 0; i < count; i++) {
        char c = (*p)[i];

        if (c < '0' || c > '9')
            return false;
        value = value * 10 + (c - '0');
    }
    *p += count;
    *out = value;
    return true;
}

/* Consumes a day of the month as asctime writes it: "06" or " 6". */
static bool take_padded_day(const char **p, int *out)
{
    if ((*p)[0] == ' ') {
        *p += 1;
        return take_number(p, 1, out);
    }
    return take_number(p, 2, out);
}

/* Consumes one of names and returns its index, or -1 if none matches. */
static int take_name(const char **p, const char *const *names, size_t count)
{
    for (size_t i = 0; i < count; i++) {
        if (take_literal(p, names[i]))
            return (int)i;
    }
    return -1;
}

/* Consumes "HH:MM:SS". */
static bool take_time(const char **p, struct tm *tm)
{
    return take_number(p, 2, &tm->tm_hour) && take_literal(p, ":")
           && take_number(p, 2, &tm->tm_min) && take_literal(p, ":")
           && take_number(p, 2, &tm->tm_sec);
}

/*
 * The three HTTP date forms of RFC 9110 (section 5.6.7), which are
 * case-sensitive and always in GMT:
 *   IMF-fixdate  Sun, 06 Nov 1994 08:49:37 GMT
 *   RFC 850      Sunday, 06-Nov-94 08:49:37 GMT
 *   asctime      Sun Nov  6 08:49:37 1994
 */
static bool parse_imf_fixdate(const char *p, struct tm *tm)
{
    if (take_name(&p, day_names, 7) < 0 || !take_literal(&p, ", ")
        || !take_number(&p, 2, &tm->tm_mday) || !take_literal(&p, " "))
        return false;
    tm->tm_mon = take_name(&p, month_names, 12);
    return tm->tm_mon >= 0 && take_literal(&p, " ")
           && take_number(&p, 4, &tm->tm_year) && take_literal(&p, " ")
           && take_time(&p, tm) && take_literal(&p, " GMT") && *p == '\0';
}

static bool parse_rfc850_date(const char *p, struct tm *tm)
{
    if (take_name(&p, day_names_long, 7) < 0 || !take_literal(&p, ", ")
        || !take_number(&p, 2, &tm->tm_mday) || !take_literal(&p, "-"))
        return false;
    tm->tm_mon = take_name(&p, month_names, 12);
    return tm->tm_mon >= 0 && take_literal(&p, "-")
           && take_number(&p, 2, &tm->tm_year) && take_literal(&p, " ")
           && take_time(&p, tm) && take_literal(&p, " GMT") && *p == '\0';
}

static bool parse_asctime_date(const char *p, struct tm *tm)
{
    if (take_name(&p, day_names, 7) < 0 || !take_literal(&p, " "))
        return false;
    tm->tm_mon = take_name(&p, month_names, 12);
    return tm->tm_mon >= 0 && take_literal(&p, " ")
           && take_padded_day(&p, &tm->tm_mday) && take_literal(&p, " ")
           && take_time(&p, tm) && take_literal(&p, " ")
           && take_number(&p, 4, &tm->tm_year) && *p == '\0';
}

/*
 * A two-digit year is read as the year with those last digits that is at
 * most 50 years after now, as RFC 9110 requires of recipients.
 */
static int expand_two_digit_year(int year, int64_t now)
{
    time_t seconds = (time_t)now;
    struct tm today;
    int current;
    int candidate;

    if (gmtime_r(&seconds, &today) == NULL)
        return 1900 + year;
    current = today.tm_year + 1900;
    candidate = current - current % 100 + year;
    if (candidate > current + 50)
        candidate -= 100;
    else if (candidate + 100 <= current + 50)
        candidate += 100;
    return candidate;
}

/* Parses an HTTP date into unix seconds without the C locale's help. */
static bool parse_http_date(int64_t *out, const char *text, int64_t now)
{
    struct tm tm;

    memset(&tm, 0, sizeof(tm));
    if (!parse_imf_fixdate(text, &tm) && !parse_asctime_date(text, &tm)) {
        memset(&tm, 0, sizeof(tm));
        if (!parse_rfc850_date(text, &tm))
            return false;
        tm.tm_year = expand_two_digit_year(tm.tm_year, now);
    }
    return outbox__utc_seconds(out, tm.tm_year, tm.tm_mon + 1, tm.tm_mday,
                               tm.tm_hour, tm.tm_min, tm.tm_sec);
}

int64_t outbox_parse_retry_after(const char *value, int64_t now)
{
    char text[64];
    size_t start = 0;
    size_t end;
    int64_t result;

    if (value == NULL)
        return -1;
    end = strlen(value);
    while (start < end && (value[start] == ' ' || value[start] == '\t'))
        start++;
    while (end > start && (value[end - 1] == ' ' || value[end - 1] == '\t'))
        end--;

    /* A number too large for int64_t is treated as malformed. */
    if (value[start] >= '0' && value[start] <= '9')
        return parse_digits(&result, value + start, end - start) ? result
                                                                 : -1;

    if (end - start >= sizeof(text))
        return -1;
    memcpy(text, value + start, end - start);
    text[end - start] = '\0';
    if (!parse_http_date(&result, text, now))
        return -1;
    return result > now ? result - now : 0;
}

/* ------------------------------------------------------------------ */
/* Classification shared by HTTP providers                             */
/* ------------------------------------------------------------------ */

/* Reads X-RateLimit-Reset (unix seconds) as a delay of at least 1 s.
 * Read as a Retry-After relative to time 0, the value gives those unix
 * seconds back. */
static int64_t rate_limit_reset_delay(const outbox_response *response)
{
    const char *value = outbox_response_header(response, "X-RateLimit-Reset");
    int64_t reset = outbox_parse_retry_after(value, 0);

    if (reset < 0)
        return -1;
    return reset - response->now > 1 ? reset - response->now : 1;
}

static void set_http_error(outbox_result *result, const char *kind,
                           const outbox_response *response)
{
    /* Room for "HTTP nnn: " in front of the excerpt. */
    char excerpt[OUTBOX_ERROR_TEXT_MAX - 32];

    outbox__body_excerpt(excerpt, sizeof(excerpt), response);
    outbox_error_set(&result->error, OUTBOX_EPROVIDER, kind, "HTTP %ld: %s",
                     response->status,
                     excerpt[0] != '\0' ? excerpt : "(empty body)");
}

static void classify_transfer_error(outbox_result *result,
                                    const outbox_response *response)
{
    const char *detail = response->curl_error;

    if (detail == NULL || detail[0] == '\0')
        detail = curl_easy_strerror(response->curl_code);
    outbox_result_init(result, OUTBOX_RESULT_RETRY);
    result->status = response->status;
    if (response->curl_code == CURLE_OPERATION_TIMEDOUT)
        outbox_error_set(&result->error, OUTBOX_EPROVIDER, "timeout",
                         "request timed out (curl error %d): %s",
                         (int)response->curl_code, detail);
    else
        outbox_error_set(&result->error, OUTBOX_EPROVIDER, "network",
                         "request failed (curl error %d): %s",
                         (int)response->curl_code, detail);
}

bool outbox__classify_common(outbox_result *result,
                             const outbox_response *response)
{
    const char *retry_after;

    if (response->curl_code != CURLE_OK) {
        classify_transfer_error(result, response);
        return true;
    }
    if (response->status != 429
        && (response->status < 500 || response->status > 599))
        return false;

    outbox_result_init(result, OUTBOX_RESULT_RETRY);
    result->status = response->status;
    retry_after = outbox_response_header(response, "Retry-After");
    if (retry_after != NULL)
        result->retry_after = outbox_parse_retry_after(retry_after,
                                                       response->now);
    if (response->status == 429) {
        /* A rate limit is the provider pacing us, not a fault of the
         * message, so it must not use up the message's attempts. */
        result->counts_as_failure = false;
        if (result->retry_after < 0)
            result->retry_after = rate_limit_reset_delay(response);
        set_http_error(result, "rate_limited", response);
    } else {
        set_http_error(result, "provider_unavailable", response);
    }
    return true;
}
