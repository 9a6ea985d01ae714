/*
 * events.c - what every webhook parser shares: the names of event types
 * and bounce kinds, and freeing a batch.
 */
#include <stdlib.h>

#include "outbox_events.h"

const char *outbox_event_type_name(outbox_event_type type)
{
    switch (type) {
    case OUTBOX_EVENT_ACCEPTED: return "accepted";
    case OUTBOX_EVENT_DELIVERED: return "delivered";
    case OUTBOX_EVENT_DEFERRED: return "deferred";
    case OUTBOX_EVENT_BOUNCED: return "bounced";
    case OUTBOX_EVENT_COMPLAINED: return "complained";
    case OUTBOX_EVENT_DROPPED: return "dropped";
    case OUTBOX_EVENT_OPENED: return "opened";
    case OUTBOX_EVENT_CLICKED: return "clicked";
    case OUTBOX_EVENT_UNSUBSCRIBED: return "unsubscribed";
    case OUTBOX_EVENT_OTHER: break;
    }
    return "other";
}

const char *outbox_bounce_kind_name(outbox_bounce_kind kind)
{
    switch (kind) {
    case OUTBOX_BOUNCE_HARD: return "hard";
    case OUTBOX_BOUNCE_SOFT: return "soft";
    case OUTBOX_BOUNCE_NONE: break;
    }
    return NULL;
}

void outbox_event_batch_free(outbox_event_batch *batch)
{
    for (size_t i = 0; i < batch->count; i++) {
        outbox_event *event = &batch->events[i];

        free(event->provider_event);
        free(event->event_id);
        free(event->provider_message_id);
        free(event->recipient);
        free(event->reason);
        free(event->raw);
    }
    free(batch->events);
    batch->events = NULL;
    batch->count = 0;
}
