/*
 * fuzz_events_sendgrid.c - libFuzzer target for the parser of SendGrid's
 * event webhook.
 *
 * The input is the raw request body. A body that parses must give at most
 * OUTBOX_EVENTS_MAX events. Each has an event id, its raw JSON, a known
 * type, and a bounce kind only if it is a bounce. Its text fields are
 * valid UTF-8 below OUTBOX_EVENT_TEXT_MAX bytes, because they go into
 * TEXT columns. A body that fails must leave the batch empty and name
 * the problem.
 */
#include <stdint.h>
#include <string.h>

#include "fuzz_events_check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    outbox_event_batch batch = {NULL, 0};
    outbox_error err = {{0}, {0}};
    outbox_err rc;

    rc = outbox_events_parse_sendgrid(&batch, &err, (const char *)data, size);
    fuzz_check_batch(&batch, rc, &err);
    outbox_event_batch_free(&batch);
    return 0;
}
