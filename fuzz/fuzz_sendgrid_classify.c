/*
 * fuzz_sendgrid_classify.c - libFuzzer target for the classification of
 * SendGrid's responses.
 *
 * The input is decoded as response_input.h describes. The result must be a
 * valid kind that matches the status table in provider_sendgrid.c, and every
 * string in it must be NUL-terminated. error.kind and error.text must also be
 * valid UTF-8, because they are stored in TEXT columns.
 */
#include <stdint.h>
#include <string.h>

#include "provider_sendgrid.h"
#include "response_input.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The kind that the table at the top of provider_sendgrid.c gives. */
static outbox_result_kind expected_kind(const outbox_response *response)
{
    long status = response->status;

    if (status >= 200 && status <= 299)
        return OUTBOX_RESULT_SENT;
    if (response->curl_code != CURLE_OK || status == 429
        || (status >= 500 && status <= 599))
        return OUTBOX_RESULT_RETRY;
    if (status == 401 || status == 403 || (status >= 300 && status <= 399))
        return OUTBOX_RESULT_MISCONFIGURED;
    if (status >= 400 && status <= 499)
        return OUTBOX_RESULT_FAILED;
    return OUTBOX_RESULT_UNKNOWN;
}

static void check_result(const outbox_result *result,
                         const outbox_response *response)
{
    long status = response->status;

    if (result->kind < OUTBOX_RESULT_SENT
        || result->kind > OUTBOX_RESULT_UNKNOWN)
        fuzz_fail("result kind is not an outbox_result_kind", status);
    if (result->kind != expected_kind(response))
        fuzz_fail("result kind does not match the status table", status);
    fuzz_check_error_texts(result, status);
    if (memchr(result->provider_message_id, '\0',
               sizeof(result->provider_message_id))
        == NULL)
        fuzz_fail("provider_message_id is not NUL-terminated", status);
    if (result->retry_after < -1)
        fuzz_fail("retry_after is below -1", status);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_classify_input(data, size, outbox__sendgrid_classify, check_result);
    return 0;
}
