/*
 * events_postmark.c - Postmark webhooks: one JSON object per request,
 * whose RecordType names what happened.
 *
 * Keys are matched without regard to case, because Postmark's own SDKs
 * spell some of them differently ("MessageID" and "MessageId"); values
 * such as RecordType are compared the same way.
 *
 *   Bounce              bounced, or what bounce_types below says for its
 *                       TypeCode; recipient Email, time BouncedAt
 *   SpamComplaint       complained; recipient Email, time BouncedAt
 *   Delivery            delivered; recipient Recipient, time DeliveredAt
 *   Open, Click         opened, clicked; recipient Recipient, time
 *                       ReceivedAt
 *   SubscriptionChange  unsubscribed when SuppressSending is true, else
 *                       resubscribed (the address was reactivated);
 *                       recipient Recipient, time ChangedAt
 *   anything else       other, with Recipient or Email when present
 * The outbox id comes from Metadata.outbox_id and the provider message id
 * from MessageID. The event id is RecordType, a colon and Postmark's ID,
 * because Postmark numbers bounces and complaints in one series per
 * record type. Delivery, Open, Click and SubscriptionChange carry no ID,
 * so theirs is "sha256:" and the hash of the body as sent: a resent
 * webhook has the same bytes and so the same id.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "events_internal.h"

/*
 * What each Postmark bounce TypeCode means for outboxd. Hard means the
 * address is suppressed, so only codes that say the address itself is
 * gone or switched off by Postmark are hard. Codes about the sender, the
 * content, or a temporary state are soft. Codes that do not say the
 * message failed (auto-replies, subscribe requests, tests) are other.
 */
typedef struct bounce_type {
    int code;
    const char *name;
    outbox_event_type type;
    outbox_bounce_kind bounce;
} bounce_type;

#define HARD OUTBOX_EVENT_BOUNCED, OUTBOX_BOUNCE_HARD
#define SOFT OUTBOX_EVENT_BOUNCED, OUTBOX_BOUNCE_SOFT
#define NOT_BOUNCED(type) type, OUTBOX_BOUNCE_NONE

static const bounce_type bounce_types[] = {
    {1, "HardBounce", HARD},
    {2, "Transient", SOFT},
    {16, "Unsubscribe", NOT_BOUNCED(OUTBOX_EVENT_UNSUBSCRIBED)},
    {32, "Subscribe", NOT_BOUNCED(OUTBOX_EVENT_OTHER)},
    {64, "AutoResponder", NOT_BOUNCED(OUTBOX_EVENT_OTHER)},
    {128, "AddressChange", NOT_BOUNCED(OUTBOX_EVENT_OTHER)},
    {256, "DnsError", SOFT},
    {512, "SpamNotification", SOFT},
    {1024, "OpenRelayTest", NOT_BOUNCED(OUTBOX_EVENT_OTHER)},
    {2048, "Unknown", SOFT},
    {4096, "SoftBounce", SOFT},
    {8192, "VirusNotification", SOFT},
    {16384, "ChallengeVerification", SOFT},
    {100000, "BadEmailAddress", HARD},
    {100001, "SpamComplaint", NOT_BOUNCED(OUTBOX_EVENT_COMPLAINED)},
    {100002, "ManuallyDeactivated", HARD},
    {100003, "Unconfirmed", SOFT},
    {100006, "Blocked", SOFT},
    {100007, "SMTPApiError", SOFT},
    {100008, "InboundError", NOT_BOUNCED(OUTBOX_EVENT_OTHER)},
    {100009, "DMARCPolicy", SOFT},
    {100010, "TemplateRenderingFailed", NOT_BOUNCED(OUTBOX_EVENT_DROPPED)},
};

/* A TypeCode outside the table is taken as a soft bounce, because the
 * message failed but nothing shows that the address is gone. */
static const bounce_type bounce_unknown = {0, NULL, SOFT};

#undef HARD
#undef SOFT
#undef NOT_BOUNCED

static const bounce_type *find_bounce_type(const cJSON *record)
{
    const cJSON *code = cJSON_GetObjectItem(record, "TypeCode");
    const cJSON *name = cJSON_GetObjectItem(record, "Type");
    size_t count = sizeof(bounce_types) / sizeof(bounce_types[0]);

    for (size_t i = 0; i < count && cJSON_IsNumber(code); i++) {
        if ((double)bounce_types[i].code == code->valuedouble)
            return &bounce_types[i];
    }
    for (size_t i = 0; i < count && cJSON_IsString(name); i++) {
        if (outbox__strcasecmp(bounce_types[i].name, name->valuestring) == 0)
            return &bounce_types[i];
    }
    return &bounce_unknown;
}

static const char *string_of(const cJSON *object, const char *key)
{
    const cJSON *item = cJSON_GetObjectItem(object, key);

    return cJSON_IsString(item) ? item->valuestring : NULL;
}

/* Returns the value of key unless it is missing or empty. */
static const char *text_of(const cJSON *object, const char *key)
{
    const char *value = string_of(object, key);

    return value != NULL && value[0] != '\0' ? value : NULL;
}

/* The fields that differ between record types. */
typedef struct record_fields {
    const char *recipient;
    const char *time;
    const char *reason;
} record_fields;

static void read_by_record_type(outbox_event *event, record_fields *fields,
                                const cJSON *record, const char *record_type)
{
    if (outbox__strcasecmp(record_type, "Bounce") == 0
        || outbox__strcasecmp(record_type, "SpamComplaint") == 0) {
        const bounce_type *bounce = find_bounce_type(record);

        event->type = bounce->type;
        event->bounce = bounce->bounce;
        if (outbox__strcasecmp(record_type, "SpamComplaint") == 0) {
            event->type = OUTBOX_EVENT_COMPLAINED;
            event->bounce = OUTBOX_BOUNCE_NONE;
        }
        fields->recipient = string_of(record, "Email");
        fields->time = string_of(record, "BouncedAt");
        fields->reason = text_of(record, "Details");
        if (fields->reason == NULL)
            fields->reason = text_of(record, "Description");
    } else if (outbox__strcasecmp(record_type, "Delivery") == 0) {
        event->type = OUTBOX_EVENT_DELIVERED;
        fields->time = string_of(record, "DeliveredAt");
        fields->reason = text_of(record, "Details");
    } else if (outbox__strcasecmp(record_type, "Open") == 0) {
        event->type = OUTBOX_EVENT_OPENED;
        fields->time = string_of(record, "ReceivedAt");
    } else if (outbox__strcasecmp(record_type, "Click") == 0) {
        event->type = OUTBOX_EVENT_CLICKED;
        fields->time = string_of(record, "ReceivedAt");
    } else if (outbox__strcasecmp(record_type, "SubscriptionChange") == 0) {
        event->type =
            cJSON_IsTrue(cJSON_GetObjectItem(record, "SuppressSending"))
                ? OUTBOX_EVENT_UNSUBSCRIBED
                : OUTBOX_EVENT_RESUBSCRIBED;
        fields->time = string_of(record, "ChangedAt");
        fields->reason = text_of(record, "SuppressionReason");
    } else {
        event->type = OUTBOX_EVENT_OTHER;
    }
    if (fields->recipient == NULL)
        fields->recipient = string_of(record, "Recipient");
    if (fields->recipient == NULL)
        fields->recipient = string_of(record, "Email");
}

/* Sets event_id from RecordType and ID, or from the hash of the body. */
static outbox_err make_event_id(outbox_event *event, outbox_error *err,
                                const cJSON *record, const char *record_type,
                                const char *body, size_t size)
{
    const cJSON *id = cJSON_GetObjectItem(record, "ID");
    const char *id_text = NULL;
    char number[32];
    outbox_buf text;
    outbox_err rc;

    /* A double represents every integer up to 2^53 exactly. */
    if (cJSON_IsNumber(id) && id->valuedouble >= 0
        && id->valuedouble <= 9007199254740992.0
        && id->valuedouble == (double)(int64_t)id->valuedouble) {
        snprintf(number, sizeof(number), "%lld",
                 (long long)id->valuedouble);
        id_text = number;
    } else if (cJSON_IsString(id) && id->valuestring[0] != '\0') {
        id_text = id->valuestring;
    }
    if (id_text == NULL)
        return outbox__events_sha256_id(&event->event_id, err, body, size);

    outbox__buf_init(&text, OUTBOX_EVENT_TEXT_MAX - 1);
    rc = outbox__buf_printf(&text, "%s:%s", record_type, id_text);
    if (rc == OUTBOX_EOK)
        event->event_id = outbox__buf_take(&text, NULL);
    outbox__buf_free(&text);
    if (rc == OUTBOX_ELIMIT)
        return outbox_error_set(err, rc, OUTBOX_EVENTS_KIND_LIMIT,
                                "the Postmark RecordType and ID are over %d "
                                "bytes",
                                OUTBOX_EVENT_TEXT_MAX - 1);
    if (rc != OUTBOX_EOK || event->event_id == NULL)
        return outbox_error_set(err, OUTBOX_ENOMEM, OUTBOX_EVENTS_KIND_NOMEM,
                                "out of memory while reading events");
    return OUTBOX_EOK;
}

/* Fills event from record; the batch owns it, and frees it on failure. */
static outbox_err read_record(outbox_event *event, outbox_error *err,
                              const cJSON *record, const char *record_type,
                              const char *body, size_t size)
{
    const cJSON *metadata = cJSON_GetObjectItem(record, "Metadata");
    record_fields fields = {NULL, NULL, NULL};
    outbox_err rc;

    read_by_record_type(event, &fields, record, record_type);
    event->outbox_id =
        outbox__events_outbox_id(cJSON_GetObjectItem(metadata, "outbox_id"));
    if (!outbox__events_iso_time(&event->occurred_at, fields.time))
        event->occurred_at = 0;

    rc = outbox__events_copy_id(&event->provider_event, err, "RecordType",
                                record_type);
    if (rc == OUTBOX_EOK)
        rc = make_event_id(event, err, record, record_type, body, size);
    if (rc == OUTBOX_EOK)
        rc = outbox__events_copy_id(&event->provider_message_id, err,
                                    "MessageID",
                                    string_of(record, "MessageID"));
    if (rc == OUTBOX_EOK)
        rc = outbox__events_copy_id(&event->recipient, err, "recipient",
                                    fields.recipient);
    if (rc == OUTBOX_EOK)
        rc = outbox__events_copy_text(&event->reason, err, "reason",
                                      fields.reason);
    if (rc == OUTBOX_EOK)
        rc = outbox__events_print_json(&event->raw, err, record);
    return rc;
}

outbox_err outbox_events_parse_postmark(outbox_event_batch *batch,
                                        outbox_error *err, const char *body,
                                        size_t size)
{
    cJSON *record = NULL;
    const char *record_type;
    outbox_event *event;
    outbox_err rc;

    rc = outbox__events_parse_json(&record, err,
                                   OUTBOX_EVENTS_KIND_INVALID_JSON,
                                   "the Postmark webhook body", body, size);
    if (rc != OUTBOX_EOK)
        return rc;
    record_type = string_of(record, "RecordType");
    if (!cJSON_IsObject(record)) {
        rc = outbox_error_set(err, OUTBOX_EINVAL, "invalid_postmark_event",
                              "the Postmark webhook body is not a JSON "
                              "object");
    } else if (record_type == NULL || record_type[0] == '\0') {
        rc = outbox_error_set(err, OUTBOX_EINVAL, "invalid_postmark_event",
                              "the Postmark webhook has no RecordType");
    } else {
        rc = outbox__events_append(&event, err, batch);
        if (rc == OUTBOX_EOK)
            rc = read_record(event, err, record, record_type, body, size);
    }
    if (rc != OUTBOX_EOK)
        outbox_event_batch_free(batch);
    cJSON_Delete(record);
    return rc;
}
