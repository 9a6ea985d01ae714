/*
 * fuzz_events_check.h - checks that every webhook parser's result must
 * pass, shared by the fuzz_events_* targets. A broken rule aborts, which
 * libFuzzer reports as a finding.
 */
#ifndef OUTBOX_FUZZ_EVENTS_CHECK_H
#define OUTBOX_FUZZ_EVENTS_CHECK_H

#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "outbox_events.h"

static void fuzz_require(bool condition)
{
    if (!condition)
        abort();
}

/* Text goes into TEXT columns: valid UTF-8 below OUTBOX_EVENT_TEXT_MAX. */
static void fuzz_check_text(const char *text, bool required)
{
    size_t length;

    if (text == NULL) {
        fuzz_require(!required);
        return;
    }
    length = strlen(text);
    fuzz_require(length < OUTBOX_EVENT_TEXT_MAX);
    fuzz_require(outbox__utf8_valid(text, length));
}

/*
 * A failed parse leaves the batch empty and names the problem. A
 * successful one gives at most OUTBOX_EVENTS_MAX events, each of a known
 * type, with a bounce kind only on bounces, an event id, the provider's
 * own type, checked texts and its raw JSON object.
 */
static void fuzz_check_batch(const outbox_event_batch *batch, outbox_err rc,
                             const outbox_error *err)
{
    if (rc != OUTBOX_EOK) {
        fuzz_require(batch->count == 0 && batch->events == NULL);
        fuzz_require(err->kind[0] != '\0' && err->text[0] != '\0');
        return;
    }
    fuzz_require(batch->count <= OUTBOX_EVENTS_MAX);
    for (size_t i = 0; i < batch->count; i++) {
        const outbox_event *event = &batch->events[i];

        fuzz_require(event->type <= OUTBOX_EVENT_RESUBSCRIBED);
        fuzz_require((event->bounce != OUTBOX_BOUNCE_NONE)
                     == (event->type == OUTBOX_EVENT_BOUNCED));
        fuzz_require(event->outbox_id >= 0 && event->occurred_at >= 0);
        fuzz_check_text(event->event_id, true);
        fuzz_check_text(event->provider_event, true);
        fuzz_check_text(event->provider_message_id, false);
        fuzz_check_text(event->recipient, false);
        fuzz_check_text(event->reason, false);
        fuzz_check_text(event->tags, false);
        fuzz_require(event->raw != NULL && event->raw[0] == '{');
        fuzz_require(outbox__utf8_valid(event->raw, strlen(event->raw)));
    }
}

#endif /* OUTBOX_FUZZ_EVENTS_CHECK_H */
