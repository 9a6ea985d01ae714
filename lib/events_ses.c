/*
 * events_ses.c - Amazon SES events, which SNS delivers as the Message of
 * a Notification.
 *
 * Message is a JSON string that contains the SES event, so it is parsed a
 * second time. A proxy may already have unwrapped it into an object, which
 * is read the same way. SES names the type in "notificationType"
 * (identity notifications) or in "eventType" (configuration-set event
 * publishing), and the rest of the event is the same in both.
 *
 * One SES event gives one outbox_event per recipient it names:
 *   Bounce           bounced, per bounce.bouncedRecipients; bounceType
 *                    Permanent is hard, Transient and Undetermined soft
 *   Complaint        complained, per complaint.complainedRecipients
 *   Delivery         delivered, per delivery.recipients
 *   DeliveryDelay    deferred, per deliveryDelay.delayedRecipients
 *   Send             accepted, per mail.destination
 *   Reject           dropped, per mail.destination
 *   Rendering Failure dropped, per mail.destination
 *   Open, Click      opened, clicked: SES does not say which recipient, so
 *                    one event, for the only address in mail.destination
 *                    or with no recipient when there are several
 *   Subscription     unsubscribed when newTopicPreferences.unsubscribeAll
 *                    is true, else other; recipient as for Open
 *   anything else    other, recipient as for Open
 * The outbox id comes from mail.tags.outbox_id (SES sends every tag as a
 * list of strings) and the provider message id from mail.messageId.
 *
 * The event id is the SNS MessageId, a colon and the recipient (just the
 * MessageId for an event without one). SNS keeps the MessageId when it
 * resends, so a resent notification gives the same ids, and the
 * recipients of one notification stay distinct events.
 *
 * Each event's raw JSON is the SES event, except that a type's own list
 * of recipients (bouncedRecipients and the like) keeps only the entry of
 * the event's recipient.
 */
#include <stdlib.h>
#include <string.h>

#include "events_internal.h"

typedef enum ses_recipients {
    SES_RECIPIENTS_LIST,        /* the type's own list of recipients */
    SES_RECIPIENTS_ALL,         /* every address in mail.destination */
    SES_RECIPIENTS_ONE,         /* the single destination, if only one */
} ses_recipients;

typedef struct ses_kind {
    const char *name;           /* notificationType or eventType */
    const char *object;         /* the key of the type's details */
    const char *list;           /* the recipients in it, for _LIST */
    ses_recipients recipients;
    outbox_event_type type;
} ses_kind;

static const ses_kind ses_kinds[] = {
    {"Bounce", "bounce", "bouncedRecipients", SES_RECIPIENTS_LIST,
     OUTBOX_EVENT_BOUNCED},
    {"Complaint", "complaint", "complainedRecipients", SES_RECIPIENTS_LIST,
     OUTBOX_EVENT_COMPLAINED},
    {"Delivery", "delivery", "recipients", SES_RECIPIENTS_LIST,
     OUTBOX_EVENT_DELIVERED},
    {"DeliveryDelay", "deliveryDelay", "delayedRecipients",
     SES_RECIPIENTS_LIST, OUTBOX_EVENT_DEFERRED},
    {"Send", "send", NULL, SES_RECIPIENTS_ALL, OUTBOX_EVENT_ACCEPTED},
    {"Reject", "reject", NULL, SES_RECIPIENTS_ALL, OUTBOX_EVENT_DROPPED},
    {"Rendering Failure", "failure", NULL, SES_RECIPIENTS_ALL,
     OUTBOX_EVENT_DROPPED},
    {"Open", "open", NULL, SES_RECIPIENTS_ONE, OUTBOX_EVENT_OPENED},
    {"Click", "click", NULL, SES_RECIPIENTS_ONE, OUTBOX_EVENT_CLICKED},
    {"Subscription", "subscription", NULL, SES_RECIPIENTS_ONE,
     OUTBOX_EVENT_OTHER},
};

static const ses_kind ses_unknown = {NULL, NULL, NULL, SES_RECIPIENTS_ONE,
                                     OUTBOX_EVENT_OTHER};

/* What every event of one SES notification shares. */
typedef struct ses_context {
    const ses_kind *kind;
    const char *name;           /* the type as SES wrote it */
    cJSON *ses;                 /* the whole SES event */
    cJSON *details;             /* the object named by kind->object */
    const char *sns_id;         /* SNS MessageId, or a derived id */
    const char *message_id;     /* mail.messageId */
    int64_t outbox_id;
    int64_t occurred_at;
    outbox_bounce_kind bounce;
    char *shared_raw;           /* the SES event as JSON, for every event */
    size_t raw_total;           /* bytes of raw JSON in the batch so far */
} ses_context;

/* Returns the value of the first of the keys that is a string in object,
 * or NULL. */
static const char *first_string_of(const cJSON *object, const char *key1,
                                   const char *key2, const char *key3)
{
    const char *value = outbox__events_string(object, key1);

    if (value == NULL && key2 != NULL)
        value = outbox__events_string(object, key2);
    if (value == NULL && key3 != NULL)
        value = outbox__events_string(object, key3);
    return value;
}

static outbox_err make_event_id(char **out, outbox_error *err,
                                const char *sns_id, const char *recipient)
{
    outbox_buf id;
    outbox_err rc;

    outbox__buf_init(&id, OUTBOX_EVENT_TEXT_MAX - 1);
    rc = outbox__buf_puts(&id, sns_id);
    if (rc == OUTBOX_EOK && recipient != NULL)
        rc = outbox__buf_printf(&id, ":%s", recipient);
    if (rc == OUTBOX_EOK)
        *out = outbox__buf_take(&id, NULL);
    outbox__buf_free(&id);
    if (rc == OUTBOX_ELIMIT)
        return outbox_error_set(err, rc, OUTBOX_EVENTS_KIND_LIMIT,
                                "the SES event id is over %d bytes",
                                OUTBOX_EVENT_TEXT_MAX - 1);
    if (rc != OUTBOX_EOK || *out == NULL)
        return outbox_error_set(err, OUTBOX_ENOMEM, OUTBOX_EVENTS_KIND_NOMEM,
                                "out of memory while reading events");
    return OUTBOX_EOK;
}

/*
 * Prints the raw JSON of the event for entry, one entry of the type's own
 * recipient list, which the caller has detached from details. The list in
 * the printed JSON contains entry alone, so that each event's JSON is about
 * its recipient and a long list is not copied into every event.
 */
static outbox_err print_listed_raw(char **out, outbox_error *err,
                                   ses_context *context, cJSON *entry)
{
    cJSON *single = cJSON_CreateArray();
    outbox_err rc;

    if (single == NULL || !cJSON_AddItemReferenceToArray(single, entry)
        || !cJSON_AddItemToObject(context->details, context->kind->list,
                                  single)) {
        cJSON_Delete(single);
        return outbox_error_set(err, OUTBOX_ENOMEM, OUTBOX_EVENTS_KIND_NOMEM,
                                "out of memory while reading events");
    }
    rc = outbox__events_print_json(out, err, context->ses);
    cJSON_Delete(cJSON_DetachItemViaPointer(context->details, single));
    return rc;
}

/* Sets event->raw: entry's own JSON when listed is set, else a copy of
 * the whole SES event. Counts it against OUTBOX_EVENTS_RAW_MAX. */
static outbox_err set_raw(outbox_event *event, outbox_error *err,
                          ses_context *context, cJSON *entry, bool listed)
{
    outbox_err rc = OUTBOX_EOK;
    size_t size;

    if (listed) {
        rc = print_listed_raw(&event->raw, err, context, entry);
    } else {
        event->raw = outbox__strdup(context->shared_raw);
        if (event->raw == NULL)
            rc = outbox_error_set(err, OUTBOX_ENOMEM, OUTBOX_EVENTS_KIND_NOMEM,
                                  "out of memory while reading events");
    }
    if (rc != OUTBOX_EOK)
        return rc;
    size = strlen(event->raw);
    if (size > OUTBOX_EVENTS_RAW_MAX - context->raw_total)
        return outbox_error_set(err, OUTBOX_ELIMIT, OUTBOX_EVENTS_KIND_LIMIT,
                                "the JSON of the SES events is over %u "
                                "bytes in total",
                                OUTBOX_EVENTS_RAW_MAX);
    context->raw_total += size;
    return OUTBOX_EOK;
}

/*
 * Adds one event for recipient. entry is the recipient's own item in the
 * list it came from: an object with its status and diagnostic, or a
 * string. listed is set when that list is the type's own.
 */
static outbox_err add_event(outbox_event_batch *batch, outbox_error *err,
                            ses_context *context, const char *recipient,
                            cJSON *entry, bool listed)
{
    const cJSON *details = context->details;
    const char *reason;
    outbox_event *event;
    outbox_err rc;

    rc = outbox__events_append(&event, err, batch);
    if (rc != OUTBOX_EOK)
        return rc;
    event->type = context->kind->type;
    event->bounce = context->bounce;
    event->outbox_id = context->outbox_id;
    event->occurred_at = context->occurred_at;

    /* The recipient's own diagnostic is the most precise reason. Without
     * one, the type's SMTP response, reason or feedback type is used. */
    reason = first_string_of(entry, "diagnosticCode", "status", NULL);
    if (reason == NULL)
        reason = first_string_of(details, "smtpResponse", "reason",
                                 "errorMessage");
    if (reason == NULL)
        reason = first_string_of(details, "bounceSubType",
                                 "complaintFeedbackType", "delayType");

    rc = outbox__events_copy_id(&event->provider_event, err, "eventType",
                                context->name);
    if (rc == OUTBOX_EOK)
        rc = make_event_id(&event->event_id, err, context->sns_id,
                           recipient);
    if (rc == OUTBOX_EOK)
        rc = outbox__events_copy_id(&event->provider_message_id, err,
                                    "mail.messageId", context->message_id);
    if (rc == OUTBOX_EOK)
        rc = outbox__events_copy_id(&event->recipient, err, "recipient",
                                    recipient);
    if (rc == OUTBOX_EOK)
        rc = outbox__events_copy_text(&event->reason, err, "reason", reason);
    if (rc == OUTBOX_EOK)
        rc = set_raw(event, err, context, entry, listed);
    return rc;
}

/* Adds one event per entry of list: an address string, or an object whose
 * emailAddress is the address. listed is set for the type's own list. */
static outbox_err add_listed(outbox_event_batch *batch, outbox_error *err,
                             ses_context *context, cJSON *list, bool listed)
{
    cJSON *entry;

    if (list != NULL && !cJSON_IsArray(list))
        return outbox_error_set(err, OUTBOX_EINVAL, "invalid_ses_event",
                                "the SES recipient list is not an array");
    cJSON_ArrayForEach(entry, list) {
        const char *address =
            cJSON_IsString(entry)
                ? entry->valuestring
                : outbox__events_string(entry, "emailAddress");
        outbox_err rc;

        if (address == NULL)
            return outbox_error_set(err, OUTBOX_EINVAL, "invalid_ses_event",
                                    "an SES recipient has no emailAddress");
        rc = add_event(batch, err, context, address, entry, listed);
        if (rc != OUTBOX_EOK)
            return rc;
    }
    return OUTBOX_EOK;
}

static outbox_err add_events(outbox_event_batch *batch, outbox_error *err,
                             ses_context *context, cJSON *mail)
{
    cJSON *destination = cJSON_GetObjectItemCaseSensitive(mail, "destination");
    cJSON *list;
    outbox_err rc;

    switch (context->kind->recipients) {
    case SES_RECIPIENTS_LIST:
        /* The list stays detached while each entry is printed alone, and
         * is freed here: the tree is only deleted after this. */
        list = cJSON_DetachItemFromObjectCaseSensitive(context->details,
                                                       context->kind->list);
        rc = add_listed(batch, err, context, list, true);
        cJSON_Delete(list);
        return rc;
    case SES_RECIPIENTS_ALL:
        return add_listed(batch, err, context, destination, false);
    case SES_RECIPIENTS_ONE:
        break;
    }
    if (cJSON_GetArraySize(destination) == 1
        && cJSON_IsString(cJSON_GetArrayItem(destination, 0)))
        return add_event(batch, err, context,
                         cJSON_GetArrayItem(destination, 0)->valuestring,
                         NULL, false);
    return add_event(batch, err, context, NULL, NULL, false);
}

static const ses_kind *find_kind(const char *name)
{
    for (size_t i = 0; i < sizeof(ses_kinds) / sizeof(ses_kinds[0]); i++) {
        if (strcmp(ses_kinds[i].name, name) == 0)
            return &ses_kinds[i];
    }
    return &ses_unknown;
}

static bool is_unsubscribe_all(const cJSON *details)
{
    const cJSON *preferences =
        cJSON_GetObjectItemCaseSensitive(details, "newTopicPreferences");

    return cJSON_IsTrue(
        cJSON_GetObjectItemCaseSensitive(preferences, "unsubscribeAll"));
}

/* Reads the outbox id from mail.tags.outbox_id, a list of strings. */
static int64_t read_outbox_id(const cJSON *mail)
{
    const cJSON *tags = cJSON_GetObjectItemCaseSensitive(mail, "tags");
    const cJSON *values = cJSON_GetObjectItemCaseSensitive(tags, "outbox_id");

    if (cJSON_IsArray(values))
        return outbox__events_outbox_id(cJSON_GetArrayItem(values, 0));
    return outbox__events_outbox_id(values);
}

/* Parses the SES event ses into batch; sns_id names the notification. */
static outbox_err parse_ses_event(outbox_event_batch *batch,
                                  outbox_error *err, cJSON *ses,
                                  const char *sns_id)
{
    cJSON *mail = cJSON_GetObjectItemCaseSensitive(ses, "mail");
    ses_context context;
    outbox_err rc;

    memset(&context, 0, sizeof(context));
    context.name = first_string_of(ses, "eventType", "notificationType",
                                   NULL);
    if (!cJSON_IsObject(ses) || context.name == NULL)
        return outbox_error_set(err, OUTBOX_EINVAL, "invalid_ses_event",
                                "the SES event has no eventType or "
                                "notificationType");
    context.kind = find_kind(context.name);
    context.ses = ses;
    if (context.kind->object != NULL)
        context.details = cJSON_GetObjectItemCaseSensitive(
            ses, context.kind->object);
    if (context.kind->type == OUTBOX_EVENT_BOUNCED) {
        const char *type =
            outbox__events_string(context.details, "bounceType");

        context.bounce = type != NULL && strcmp(type, "Permanent") == 0
                             ? OUTBOX_BOUNCE_HARD
                             : OUTBOX_BOUNCE_SOFT;
    }
    if (context.kind->object != NULL
        && strcmp(context.kind->object, "subscription") == 0
        && is_unsubscribe_all(context.details)) {
        static const ses_kind unsubscribed = {
            "Subscription", "subscription", NULL, SES_RECIPIENTS_ONE,
            OUTBOX_EVENT_UNSUBSCRIBED};

        context.kind = &unsubscribed;
    }
    if (!outbox__events_iso_time(
            &context.occurred_at,
            outbox__events_string(context.details, "timestamp")))
        outbox__events_iso_time(&context.occurred_at,
                                outbox__events_string(mail, "timestamp"));
    context.sns_id = sns_id;
    context.message_id = outbox__events_string(mail, "messageId");
    context.outbox_id = read_outbox_id(mail);

    if (context.kind->recipients != SES_RECIPIENTS_LIST) {
        rc = outbox__events_print_json(&context.shared_raw, err, ses);
        if (rc != OUTBOX_EOK)
            return rc;
    }
    rc = add_events(batch, err, &context, mail);
    free(context.shared_raw);
    return rc;
}

/* Returns true if text starts, after white space, like a JSON object or
 * array, so that a parse failure means a broken event, not a notice. */
static bool looks_like_json(const char *text)
{
    while (*text == ' ' || *text == '\t' || *text == '\r' || *text == '\n')
        text++;
    return *text == '{' || *text == '[';
}

/*
 * Checks that envelope is an SNS Notification. Raw message delivery posts
 * the SES JSON bare. Confirmations are not events, and they fail here so
 * that a listener that does not handle them cannot return 200 and lose
 * them.
 */
static outbox_err check_envelope(outbox_error *err, const cJSON *envelope)
{
    const char *type = outbox__events_string(envelope, "Type");

    if (!cJSON_IsObject(envelope))
        return outbox_error_set(err, OUTBOX_EINVAL, "invalid_sns_message",
                                "the SNS message is not a JSON object");
    if (type == NULL
        && (cJSON_HasObjectItem(envelope, "notificationType")
            || cJSON_HasObjectItem(envelope, "eventType")))
        return outbox_error_set(err, OUTBOX_EINVAL, "sns_envelope_missing",
                                "the body is an SES event without its SNS "
                                "envelope; turn off raw message delivery "
                                "on the SNS subscription");
    if (type == NULL)
        return outbox_error_set(err, OUTBOX_EINVAL, "invalid_sns_message",
                                "the SNS message has no Type");
    if (strcmp(type, "Notification") != 0)
        return outbox_error_set(err, OUTBOX_EINVAL, "sns_not_notification",
                                "the SNS message is a %.40s, not a "
                                "Notification",
                                type);
    return OUTBOX_EOK;
}

outbox_err outbox_events_parse_ses(outbox_event_batch *batch,
                                   outbox_error *err, const char *body,
                                   size_t size)
{
    cJSON *envelope = NULL;
    cJSON *parsed = NULL;
    cJSON *message;
    const char *sns_id;
    char *derived_id = NULL;
    outbox_err rc;

    rc = outbox__events_parse_json(&envelope, err,
                                   OUTBOX_EVENTS_KIND_INVALID_JSON,
                                   "the SNS webhook body", body, size);
    if (rc == OUTBOX_EOK)
        rc = check_envelope(err, envelope);
    if (rc != OUTBOX_EOK)
        goto cleanup;

    /* The first Message after event publishing is turned on may be plain
     * text ("Successfully validated SNS topic ..."): no event in it. */
    message = cJSON_GetObjectItemCaseSensitive(envelope, "Message");
    if (cJSON_IsString(message)) {
        parsed = cJSON_ParseWithOpts(message->valuestring, NULL, true);
        if (parsed == NULL && !looks_like_json(message->valuestring))
            goto cleanup;
        if (parsed == NULL) {
            rc = outbox_error_set(err, OUTBOX_EINVAL,
                                  OUTBOX_EVENTS_KIND_INVALID_JSON,
                                  "the SNS Message is not valid JSON");
            goto cleanup;
        }
        message = parsed;
    } else if (!cJSON_IsObject(message)) {
        rc = outbox_error_set(err, OUTBOX_EINVAL, "invalid_sns_message",
                              "the SNS message has no Message");
        goto cleanup;
    }

    /* SNS always sends a MessageId. Without one, the hash of the body is
     * used instead, so that a resent body still gives the same ids. */
    sns_id = outbox__events_string(envelope, "MessageId");
    if (sns_id == NULL) {
        rc = outbox__events_sha256_id(&derived_id, err, body, size);
        if (rc != OUTBOX_EOK)
            goto cleanup;
        sns_id = derived_id;
    }
    rc = parse_ses_event(batch, err, message, sns_id);

cleanup:
    if (rc != OUTBOX_EOK)
        outbox_event_batch_free(batch);
    free(derived_id);
    cJSON_Delete(parsed);
    cJSON_Delete(envelope);
    return rc;
}
