/*
 * fuzz_postmark_classify.c - libFuzzer target for the classification of
 * Postmark's responses.
 *
 * The input is decoded as response_input.h describes. Because the body's
 * ErrorCode picks among several kinds for a 4xx, the checks are the rules
 * that hold for every body. A 2xx is sent; a transfer error, 429 and 5xx
 * retry; a 3xx is misconfigured. A pause or a rate limit never uses up an
 * attempt. Every string in the result must be NUL-terminated, error.kind
 * and error.text valid UTF-8, and a provider message id printable ASCII
 * without spaces.
 */
#include <stdint.h>
#include <string.h>

#include "provider_postmark.h"
#include "response_input.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Returns true if id is a NUL-terminated run of printable ASCII without
 * spaces, possibly empty. */
static bool is_token(const char *id, size_t size)
{
    const char *end = memchr(id, '\0', size);

    if (end == NULL)
        return false;
    for (const char *p = id; p < end; p++) {
        if (*p <= ' ' || *p >= 0x7F)
            return false;
    }
    return true;
}

/* Checks the kind against the rules that hold whatever the body is. */
static void check_kind(const outbox_result *result,
                       const outbox_response *response)
{
    long status = response->status;
    outbox_result_kind kind = result->kind;

    if (kind < OUTBOX_RESULT_SENT || kind > OUTBOX_RESULT_UNKNOWN)
        fuzz_fail("result kind is not an outbox_result_kind", status);
    if (status >= 200 && status <= 299) {
        if (kind != OUTBOX_RESULT_SENT)
            fuzz_fail("a 2xx response is not sent", status);
    } else if (response->curl_code != CURLE_OK || status == 429
               || (status >= 500 && status <= 599)) {
        if (kind != OUTBOX_RESULT_RETRY)
            fuzz_fail("a transfer error, 429 or 5xx is not a retry", status);
    } else if (status >= 300 && status <= 399) {
        if (kind != OUTBOX_RESULT_MISCONFIGURED)
            fuzz_fail("a 3xx response is not misconfigured", status);
    } else if (status >= 400 && status <= 499) {
        if (kind == OUTBOX_RESULT_SENT || kind == OUTBOX_RESULT_UNKNOWN)
            fuzz_fail("a 4xx response is sent or unknown", status);
    } else if (kind != OUTBOX_RESULT_UNKNOWN) {
        fuzz_fail("an unexpected status is not unknown", status);
    }
}

static void check_result(const outbox_result *result,
                         const outbox_response *response)
{
    long status = response->status;

    check_kind(result, response);
    if (result->kind == OUTBOX_RESULT_MISCONFIGURED
        && result->counts_as_failure)
        fuzz_fail("a pause uses up an attempt", status);
    fuzz_check_error_texts(result, status);
    if (strcmp(result->error.kind, "rate_limited") == 0
        && result->counts_as_failure)
        fuzz_fail("a rate limit uses up an attempt", status);
    if (!is_token(result->provider_message_id,
                  sizeof(result->provider_message_id)))
        fuzz_fail("provider_message_id is not a printable token", status);
    if (result->kind != OUTBOX_RESULT_SENT
        && result->provider_message_id[0] != '\0')
        fuzz_fail("a result other than sent has a provider_message_id", status);
    if (result->retry_after < -1)
        fuzz_fail("retry_after is below -1", status);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_classify_input(data, size, outbox__postmark_classify, check_result);
    return 0;
}
