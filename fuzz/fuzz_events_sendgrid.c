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
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "outbox_events.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_text(const char *text, bool required)
{
    size_t length;

    if (text == NULL) {
        if (required)
            abort();
        return;
    }
    length = strlen(text);
    if (length >= OUTBOX_EVENT_TEXT_MAX || !outbox__utf8_valid(text, length))
        abort();
}

static void check_event(const outbox_event *event)
{
    if (event->type > OUTBOX_EVENT_UNSUBSCRIBED)
        abort();
    if ((event->type == OUTBOX_EVENT_BOUNCED)
        != (event->bounce != OUTBOX_BOUNCE_NONE))
        abort();
    if (event->outbox_id < 0 || event->occurred_at < 0)
        abort();
    check_text(event->provider_event, true);
    check_text(event->event_id, true);
    check_text(event->provider_message_id, false);
    check_text(event->recipient, false);
    check_text(event->reason, false);
    check_text(event->tags, false);
    if (event->raw == NULL
        || !outbox__utf8_valid(event->raw, strlen(event->raw)))
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    outbox_event_batch batch = {NULL, 0};
    outbox_error err = {{0}, {0}};
    outbox_err rc;

    rc = outbox_events_parse_sendgrid(&batch, &err, (const char *)data, size);
    if (rc == OUTBOX_EOK) {
        if (batch.count > OUTBOX_EVENTS_MAX)
            abort();
        for (size_t i = 0; i < batch.count; i++)
            check_event(&batch.events[i]);
    } else if (batch.count != 0 || batch.events != NULL || err.kind[0] == '\0'
               || err.text[0] == '\0') {
        abort();
    }
    outbox_event_batch_free(&batch);
    return 0;
}
