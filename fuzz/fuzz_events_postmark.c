/*
 * fuzz_events_postmark.c - libFuzzer target for Postmark webhooks. The
 * input is one webhook body; the event batch must pass fuzz_check_batch,
 * and a successful parse gives exactly one event.
 */
#include <stdint.h>

#include "fuzz_events_check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    outbox_event_batch batch = {NULL, 0};
    outbox_error err = {{0}, {0}};
    outbox_err rc;

    rc = outbox_events_parse_postmark(&batch, &err, (const char *)data,
                                      size);
    fuzz_check_batch(&batch, rc, &err);
    fuzz_require(rc != OUTBOX_EOK || batch.count == 1);
    outbox_event_batch_free(&batch);
    return 0;
}
