/*
 * fuzz_events_mailgun.c - libFuzzer target for the parser of Mailgun's
 * webhooks and the reader of their signature object.
 *
 * The input is the raw request body. A body that parses must give exactly
 * one event. It has an event id, its raw JSON, a known type, and a bounce
 * kind only if it is a bounce. Its text fields are valid UTF-8 below
 * OUTBOX_EVENT_TEXT_MAX bytes, because they go into TEXT columns. A body
 * that fails must leave the batch empty and name the problem. A signature
 * object that reads goes through the HMAC check, which must reject it,
 * because the fuzzer cannot forge an HMAC.
 */
#include <stdint.h>
#include <string.h>

#include "fuzz_events_check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_signature(const char *body, size_t size)
{
    outbox_mailgun_signature signature;
    outbox_error err = {{0}, {0}};
    outbox_err rc;

    rc = outbox_mailgun_signature_read(&signature, &err, body, size);
    if (rc != OUTBOX_EOK) {
        if (signature.token[0] != '\0' || strcmp(err.kind, "unauthenticated"))
            abort();
        return;
    }
    if (signature.timestamp[0] == '\0' || signature.token[0] == '\0'
        || signature.signature[0] == '\0')
        abort();

    /* A fixed clock and a wide window let the fuzzer reach the HMAC. */
    rc = outbox_verify_mailgun(&err, "fuzz-signing-key", signature.timestamp,
                               signature.token, signature.signature,
                               1700000000, 1000000000);
    if (rc != OUTBOX_EINVAL || strcmp(err.kind, "unauthenticated") != 0)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    outbox_event_batch batch = {NULL, 0};
    outbox_error err = {{0}, {0}};
    outbox_err rc;

    rc = outbox_events_parse_mailgun(&batch, &err, (const char *)data, size);
    fuzz_check_batch(&batch, rc, &err);
    fuzz_require(rc != OUTBOX_EOK || batch.count == 1);
    outbox_event_batch_free(&batch);
    check_signature((const char *)data, size);
    return 0;
}
