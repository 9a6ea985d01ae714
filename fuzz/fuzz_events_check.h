/*
 * fuzz_events_check.h - checks that every webhook parser's result must
 * pass, shared by the fuzz_events_* targets. A broken rule aborts, which
 * libFuzzer reports as a finding.
 */
#ifndef OUTBOX_FUZZ_EVENTS_CHECK_H
#define OUTBOX_FUZZ_EVENTS_CHECK_H

#include <stdlib.h>
#include <string.h>

#include "outbox_events.h"

static void fuzz_require(bool condition)
{
    if (!condition)
        abort();
}

/* A failed parse leaves the batch empty; a successful one gives events
 * with an id, a raw JSON object, capped texts and a bounce kind only on
 * bounces. */
static void fuzz_check_batch(const outbox_event_batch *batch, outbox_err rc,
                             const outbox_error *err)
{
    if (rc != OUTBOX_EOK) {
        fuzz_require(batch->count == 0 && batch->events == NULL);
        fuzz_require(err->kind[0] != '\0');
        return;
    }
    fuzz_require(batch->count <= OUTBOX_EVENTS_MAX);
    for (size_t i = 0; i < batch->count; i++) {
        const outbox_event *event = &batch->events[i];

        fuzz_require(event->type <= OUTBOX_EVENT_UNSUBSCRIBED);
        fuzz_require(event->event_id != NULL);
        fuzz_require(strlen(event->event_id) < OUTBOX_EVENT_TEXT_MAX);
        fuzz_require(event->raw != NULL && event->raw[0] == '{');
        fuzz_require(event->outbox_id >= 0);
        fuzz_require((event->bounce != OUTBOX_BOUNCE_NONE)
                     == (event->type == OUTBOX_EVENT_BOUNCED));
        fuzz_require(event->reason == NULL
                     || strlen(event->reason) < OUTBOX_EVENT_TEXT_MAX);
        fuzz_require(event->recipient == NULL
                     || strlen(event->recipient) < OUTBOX_EVENT_TEXT_MAX);
        fuzz_require(event->provider_message_id == NULL
                     || strlen(event->provider_message_id)
                            < OUTBOX_EVENT_TEXT_MAX);
    }
}

#endif /* OUTBOX_FUZZ_EVENTS_CHECK_H */
