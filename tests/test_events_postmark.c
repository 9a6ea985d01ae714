/*
 * test_events_postmark.c - Postmark webhooks: each RecordType, the table
 * of bounce TypeCodes, keys in other casings, event ids with and without
 * Postmark's ID, and bodies that are rejected.
 */
#include <stdlib.h>

#include "check.h"
#include "events_internal.h"
#include "internal.h"

#define PM_ID "0a129aee-e1cd-480d-b08d-4f48548ff48d"

/* 2025-03-05 11:00:00 UTC */
#define T_11 1741172400

/* The spam complaint of the Postmark complaint case, as Postmark sends
 * it. */
static const char spam_complaint[] =
    "{\"RecordType\":\"SpamComplaint\",\"MessageStream\":\"outbound\","
    "\"ID\":4242424242,\"Type\":\"SpamComplaint\",\"TypeCode\":512,"
    "\"Name\":\"Spam complaint\",\"Tag\":\"bestellung\","
    "\"MessageID\":\"" PM_ID "\",\"Metadata\":{\"outbox_id\":\"102\"},"
    "\"ServerID\":23,\"Description\":\"Recipient reported the message as "
    "spam.\",\"Details\":\"\",\"Email\":\"einkauf@example.org\","
    "\"From\":\"billing@example.com\",\"BouncedAt\":\"2025-03-05T11:00:00Z\","
    "\"Inactive\":true,\"CanActivate\":false,\"Subject\":\"Bestellung 4711\"}";

typedef struct want_event {
    outbox_event_type type;
    outbox_bounce_kind bounce;
    const char *provider_event;
    const char *event_id;       /* NULL: a "sha256:" id */
    const char *recipient;
    const char *reason;
    int64_t outbox_id;
    int64_t occurred_at;
} want_event;

static void check_event(const outbox_event *got, const want_event *want)
{
    CHECK_STR(outbox_event_type_name(got->type),
              outbox_event_type_name(want->type));
    CHECK_STR(outbox_bounce_kind_name(got->bounce),
              outbox_bounce_kind_name(want->bounce));
    CHECK_STR(got->provider_event, want->provider_event);
    if (want->event_id != NULL) {
        CHECK_STR(got->event_id, want->event_id);
    } else {
        CHECK_CONTAINS(got->event_id, "sha256:");
        CHECK_INT(strlen(got->event_id), strlen("sha256:") + 64);
    }
    CHECK_STR(got->recipient, want->recipient);
    CHECK_STR(got->reason, want->reason);
    CHECK_INT(got->outbox_id, want->outbox_id);
    CHECK_INT(got->occurred_at, want->occurred_at);
    CHECK_STR(got->provider_message_id, PM_ID);
    CHECK(got->raw != NULL);
    if (got->raw != NULL)
        CHECK(got->raw[0] == '{');
}

static void test_record_types(void)
{
    static const struct {
        const char *name;
        const char *body;
        want_event want;
    } cases[] = {
        {"spam complaint", spam_complaint,
         {OUTBOX_EVENT_COMPLAINED, OUTBOX_BOUNCE_NONE, "SpamComplaint",
          "SpamComplaint:4242424242", "einkauf@example.org",
          "Recipient reported the message as spam.", 102, T_11}},
        {"hard bounce",
         "{\"RecordType\":\"Bounce\",\"ID\":42,\"Type\":\"HardBounce\","
         "\"TypeCode\":1,\"MessageID\":\"" PM_ID "\",\"Description\":\"The "
         "server was unable to deliver your message.\",\"Details\":\"smtp;"
         "550 5.1.1 unknown user\",\"Email\":\"falsch@example.org\","
         "\"BouncedAt\":\"2025-03-05T11:00:00.1234567Z\",\"Metadata\":"
         "{\"outbox_id\":\"102\"}}",
         {OUTBOX_EVENT_BOUNCED, OUTBOX_BOUNCE_HARD, "Bounce", "Bounce:42",
          "falsch@example.org", "smtp;550 5.1.1 unknown user", 102, T_11}},
        {"soft bounce",
         "{\"RecordType\":\"Bounce\",\"ID\":43,\"Type\":\"SoftBounce\","
         "\"TypeCode\":4096,\"MessageID\":\"" PM_ID "\",\"Description\":"
         "\"Mailbox full\",\"Details\":\"\",\"Email\":\"voll@example.org\","
         "\"BouncedAt\":\"2025-03-05T12:00:00+01:00\"}",
         {OUTBOX_EVENT_BOUNCED, OUTBOX_BOUNCE_SOFT, "Bounce", "Bounce:43",
          "voll@example.org", "Mailbox full", 0, T_11}},
        {"delivery",
         "{\"RecordType\":\"Delivery\",\"ServerID\":23,\"MessageStream\":"
         "\"outbound\",\"MessageID\":\"" PM_ID "\",\"Recipient\":"
         "\"kunde@example.org\",\"Tag\":\"\",\"DeliveredAt\":"
         "\"2025-03-05T06:00:00.000-05:00\",\"Details\":\"Test delivery "
         "webhook details\",\"Metadata\":{\"outbox_id\":102}}",
         {OUTBOX_EVENT_DELIVERED, OUTBOX_BOUNCE_NONE, "Delivery", NULL,
          "kunde@example.org", "Test delivery webhook details", 102, T_11}},
        {"open",
         "{\"RecordType\":\"Open\",\"MessageID\":\"" PM_ID "\","
         "\"Recipient\":\"kunde@example.org\",\"ReceivedAt\":"
         "\"2025-03-05T11:00:00Z\",\"FirstOpen\":true}",
         {OUTBOX_EVENT_OPENED, OUTBOX_BOUNCE_NONE, "Open", NULL,
          "kunde@example.org", NULL, 0, T_11}},
        {"click",
         "{\"RecordType\":\"Click\",\"MessageID\":\"" PM_ID "\","
         "\"Recipient\":\"kunde@example.org\",\"ReceivedAt\":"
         "\"2025-03-05T11:00:00Z\",\"OriginalLink\":\"https://example.com\"}",
         {OUTBOX_EVENT_CLICKED, OUTBOX_BOUNCE_NONE, "Click", NULL,
          "kunde@example.org", NULL, 0, T_11}},
        {"subscription change suppressed",
         "{\"RecordType\":\"SubscriptionChange\",\"MessageID\":\"" PM_ID
         "\",\"ServerID\":23,\"ChangedAt\":\"2025-03-05T11:00:00Z\","
         "\"Recipient\":\"weg@example.org\",\"Origin\":\"Recipient\","
         "\"SuppressSending\":true,\"SuppressionReason\":"
         "\"ManualSuppression\",\"Metadata\":{\"outbox_id\":\"102\"}}",
         {OUTBOX_EVENT_UNSUBSCRIBED, OUTBOX_BOUNCE_NONE,
          "SubscriptionChange", NULL, "weg@example.org",
          "ManualSuppression", 102, T_11}},
        {"subscription change reactivated",
         "{\"RecordType\":\"SubscriptionChange\",\"MessageID\":\"" PM_ID
         "\",\"ChangedAt\":\"2025-03-05T11:00:00Z\",\"Recipient\":"
         "\"weg@example.org\",\"SuppressSending\":false,"
         "\"SuppressionReason\":null}",
         {OUTBOX_EVENT_RESUBSCRIBED, OUTBOX_BOUNCE_NONE,
          "SubscriptionChange", NULL, "weg@example.org", NULL, 0, T_11}},
        {"unknown record type",
         "{\"RecordType\":\"Foo\",\"MessageID\":\"" PM_ID "\","
         "\"Recipient\":\"kunde@example.org\",\"ID\":\"abc\"}",
         {OUTBOX_EVENT_OTHER, OUTBOX_BOUNCE_NONE, "Foo", "Foo:abc",
          "kunde@example.org", NULL, 0, 0}},
        {"keys in other casing",
         "{\"recordtype\":\"Delivery\",\"MessageId\":\"" PM_ID "\","
         "\"RECIPIENT\":\"kunde@example.org\",\"deliveredAt\":"
         "\"2025-03-05T11:00:00Z\",\"metadata\":{\"OUTBOX_ID\":\"102\"}}",
         {OUTBOX_EVENT_DELIVERED, OUTBOX_BOUNCE_NONE, "Delivery", NULL,
          "kunde@example.org", NULL, 102, T_11}},
        {"bounce without type code or time",
         "{\"RecordType\":\"Bounce\",\"ID\":44,\"MessageID\":\"" PM_ID
         "\",\"Email\":\"x@example.org\"}",
         {OUTBOX_EVENT_BOUNCED, OUTBOX_BOUNCE_SOFT, "Bounce", "Bounce:44",
          "x@example.org", NULL, 0, 0}},
        {"outbox id not a number",
         "{\"RecordType\":\"Open\",\"MessageID\":\"" PM_ID "\","
         "\"Recipient\":\"kunde@example.org\",\"Metadata\":{\"outbox_id\":"
         "\"-5\"}}",
         {OUTBOX_EVENT_OPENED, OUTBOX_BOUNCE_NONE, "Open", NULL,
          "kunde@example.org", NULL, 0, 0}},
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        outbox_event_batch batch = {NULL, 0};
        outbox_error err = {{0}, {0}};

        CHECK_CASE(cases[i].name);
        CHECK_INT(outbox_events_parse_postmark(&batch, &err, cases[i].body,
                                               strlen(cases[i].body)),
                  OUTBOX_EOK);
        CHECK_INT(batch.count, 1);
        if (batch.count == 1)
            check_event(&batch.events[0], &cases[i].want);
        outbox_event_batch_free(&batch);
    }
}

/* Every TypeCode of a Bounce record, by number and by name alone. */
static void test_bounce_type_codes(void)
{
    static const struct {
        int code;
        const char *name;
        outbox_event_type type;
        outbox_bounce_kind bounce;
    } cases[] = {
        {1, "HardBounce", OUTBOX_EVENT_BOUNCED, OUTBOX_BOUNCE_HARD},
        {2, "Transient", OUTBOX_EVENT_BOUNCED, OUTBOX_BOUNCE_SOFT},
        {16, "Unsubscribe", OUTBOX_EVENT_UNSUBSCRIBED, OUTBOX_BOUNCE_NONE},
        {32, "Subscribe", OUTBOX_EVENT_OTHER, OUTBOX_BOUNCE_NONE},
        {64, "AutoResponder", OUTBOX_EVENT_OTHER, OUTBOX_BOUNCE_NONE},
        {128, "AddressChange", OUTBOX_EVENT_OTHER, OUTBOX_BOUNCE_NONE},
        {256, "DnsError", OUTBOX_EVENT_BOUNCED, OUTBOX_BOUNCE_SOFT},
        {512, "SpamNotification", OUTBOX_EVENT_BOUNCED, OUTBOX_BOUNCE_SOFT},
        {1024, "OpenRelayTest", OUTBOX_EVENT_OTHER, OUTBOX_BOUNCE_NONE},
        {2048, "Unknown", OUTBOX_EVENT_BOUNCED, OUTBOX_BOUNCE_SOFT},
        {4096, "SoftBounce", OUTBOX_EVENT_BOUNCED, OUTBOX_BOUNCE_SOFT},
        {8192, "VirusNotification", OUTBOX_EVENT_BOUNCED,
         OUTBOX_BOUNCE_SOFT},
        {16384, "ChallengeVerification", OUTBOX_EVENT_BOUNCED,
         OUTBOX_BOUNCE_SOFT},
        {100000, "BadEmailAddress", OUTBOX_EVENT_BOUNCED,
         OUTBOX_BOUNCE_HARD},
        {100001, "SpamComplaint", OUTBOX_EVENT_COMPLAINED,
         OUTBOX_BOUNCE_NONE},
        {100002, "ManuallyDeactivated", OUTBOX_EVENT_BOUNCED,
         OUTBOX_BOUNCE_HARD},
        {100003, "Unconfirmed", OUTBOX_EVENT_BOUNCED, OUTBOX_BOUNCE_SOFT},
        {100006, "Blocked", OUTBOX_EVENT_BOUNCED, OUTBOX_BOUNCE_SOFT},
        {100007, "SMTPApiError", OUTBOX_EVENT_BOUNCED, OUTBOX_BOUNCE_SOFT},
        {100008, "InboundError", OUTBOX_EVENT_OTHER, OUTBOX_BOUNCE_NONE},
        {100009, "DMARCPolicy", OUTBOX_EVENT_BOUNCED, OUTBOX_BOUNCE_SOFT},
        {100010, "TemplateRenderingFailed", OUTBOX_EVENT_DROPPED,
         OUTBOX_BOUNCE_NONE},
        {777, "SomethingNew", OUTBOX_EVENT_BOUNCED, OUTBOX_BOUNCE_SOFT},
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char by_code[256];
        char by_name[256];
        const char *bodies[2] = {by_code, by_name};

        snprintf(by_code, sizeof(by_code),
                 "{\"RecordType\":\"Bounce\",\"ID\":1,\"TypeCode\":%d,"
                 "\"Type\":\"Other\",\"Email\":\"a@x.io\"}",
                 cases[i].code);
        snprintf(by_name, sizeof(by_name),
                 "{\"RecordType\":\"Bounce\",\"ID\":1,\"Type\":\"%s\","
                 "\"Email\":\"a@x.io\"}",
                 cases[i].name);
        for (size_t k = 0; k < 2; k++) {
            outbox_event_batch batch = {NULL, 0};
            outbox_error err = {{0}, {0}};

            CHECK_CASE(cases[i].name);
            CHECK_INT(outbox_events_parse_postmark(&batch, &err, bodies[k],
                                                   strlen(bodies[k])),
                      OUTBOX_EOK);
            if (batch.count == 1) {
                CHECK_STR(outbox_event_type_name(batch.events[0].type),
                          outbox_event_type_name(cases[i].type));
                CHECK_STR(outbox_bounce_kind_name(batch.events[0].bounce),
                          outbox_bounce_kind_name(cases[i].bounce));
            }
            outbox_event_batch_free(&batch);
        }
    }
}

/* A webhook without ID gets the hash of its body: the same body gives the
 * same id, and another body another id. */
static void test_derived_event_id(void)
{
    static const char first[] =
        "{\"RecordType\":\"Delivery\",\"MessageID\":\"" PM_ID "\","
        "\"Recipient\":\"kunde@example.org\"}";
    static const char second[] =
        "{\"RecordType\":\"Delivery\",\"MessageID\":\"" PM_ID "\","
        "\"Recipient\":\"andere@example.org\"}";
    const char *bodies[3] = {first, first, second};
    char *ids[3] = {NULL, NULL, NULL};

    CHECK_CASE("derived event id");
    for (size_t i = 0; i < 3; i++) {
        outbox_event_batch batch = {NULL, 0};
        outbox_error err = {{0}, {0}};

        CHECK_INT(outbox_events_parse_postmark(&batch, &err, bodies[i],
                                               strlen(bodies[i])),
                  OUTBOX_EOK);
        if (batch.count == 1)
            ids[i] = outbox__strdup(batch.events[0].event_id);
        outbox_event_batch_free(&batch);
    }
    for (size_t i = 0; i < 3; i++)
        CHECK(ids[i] != NULL);
    if (ids[0] != NULL && ids[1] != NULL && ids[2] != NULL) {
        CHECK_STR(ids[0], ids[1]);
        CHECK(strcmp(ids[0], ids[2]) != 0);
    }
    for (size_t i = 0; i < 3; i++)
        free(ids[i]);
}

static void test_rejects(void)
{
    static const struct {
        const char *name;
        const char *body;
        outbox_err want;
        const char *kind;
    } cases[] = {
        {"array", "[{\"RecordType\":\"Delivery\"}]", OUTBOX_EINVAL,
         "invalid_postmark_event"},
        {"no record type", "{\"MessageID\":\"x\"}", OUTBOX_EINVAL,
         "invalid_postmark_event"},
        {"record type a number", "{\"RecordType\":7}", OUTBOX_EINVAL,
         "invalid_postmark_event"},
        {"empty record type", "{\"RecordType\":\"\"}", OUTBOX_EINVAL,
         "invalid_postmark_event"},
        {"truncated", "{\"RecordType\":\"Bou", OUTBOX_EINVAL,
         "invalid_json"},
        {"two objects", "{\"RecordType\":\"Open\"}{}", OUTBOX_EINVAL,
         "invalid_json"},
        {"empty", "", OUTBOX_EINVAL, "invalid_json"},
        {"not UTF-8", "{\"RecordType\":\"Open\",\"Recipient\":\"\xff\"}",
         OUTBOX_EINVAL, "invalid_json"},
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        outbox_event_batch batch = {NULL, 0};
        outbox_error err = {{0}, {0}};

        CHECK_CASE(cases[i].name);
        CHECK_INT(outbox_events_parse_postmark(&batch, &err, cases[i].body,
                                               strlen(cases[i].body)),
                  cases[i].want);
        CHECK_STR(err.kind, cases[i].kind);
        CHECK_INT(batch.count, 0);
        CHECK(batch.events == NULL);
    }
}

/* A long Details text is cut; a long MessageID rejects the body. */
static void test_text_caps(void)
{
    size_t size = 2 * OUTBOX_EVENT_TEXT_MAX + 256;
    char *body = malloc(size);
    outbox_event_batch batch = {NULL, 0};
    outbox_error err = {{0}, {0}};
    int used;

    if (body == NULL)
        return;
    used = snprintf(body, size, "{\"RecordType\":\"Bounce\",\"ID\":1,"
                                "\"Email\":\"a@x.io\",\"Details\":\"");
    memset(body + used, 'd', OUTBOX_EVENT_TEXT_MAX + 10);
    snprintf(body + used + OUTBOX_EVENT_TEXT_MAX + 10, 16, "\"}");

    CHECK_CASE("long details cut");
    CHECK_INT(outbox_events_parse_postmark(&batch, &err, body, strlen(body)),
              OUTBOX_EOK);
    if (batch.count == 1)
        CHECK_INT(strlen(batch.events[0].reason), OUTBOX_EVENT_TEXT_MAX - 1);
    outbox_event_batch_free(&batch);

    CHECK_CASE("message id at the cap kept");
    used = snprintf(body, size, "{\"RecordType\":\"Open\",\"MessageID\":\"");
    memset(body + used, 'm', OUTBOX_EVENT_TEXT_MAX - 1);
    snprintf(body + used + OUTBOX_EVENT_TEXT_MAX - 1, 16, "\"}");
    CHECK_INT(outbox_events_parse_postmark(&batch, &err, body, strlen(body)),
              OUTBOX_EOK);
    if (batch.count == 1)
        CHECK_INT(strlen(batch.events[0].provider_message_id),
                  OUTBOX_EVENT_TEXT_MAX - 1);
    outbox_event_batch_free(&batch);

    CHECK_CASE("message id one over the cap rejected");
    used = snprintf(body, size, "{\"RecordType\":\"Open\",\"MessageID\":\"");
    memset(body + used, 'm', OUTBOX_EVENT_TEXT_MAX);
    snprintf(body + used + OUTBOX_EVENT_TEXT_MAX, 16, "\"}");
    CHECK_INT(outbox_events_parse_postmark(&batch, &err, body, strlen(body)),
              OUTBOX_ELIMIT);
    CHECK_STR(err.kind, "limit_exceeded");
    CHECK_CONTAINS(err.text, "MessageID is 4096 bytes long");
    CHECK_INT(batch.count, 0);
    free(body);
}

static void test_type_names(void)
{
    CHECK_CASE("type names");
    CHECK_STR(outbox_event_type_name(OUTBOX_EVENT_OTHER), "other");
    CHECK_STR(outbox_event_type_name(OUTBOX_EVENT_ACCEPTED), "accepted");
    CHECK_STR(outbox_event_type_name(OUTBOX_EVENT_COMPLAINED), "complained");
    CHECK_STR(outbox_event_type_name(OUTBOX_EVENT_UNSUBSCRIBED),
              "unsubscribed");
    CHECK_STR(outbox_event_type_name(OUTBOX_EVENT_RESUBSCRIBED),
              "resubscribed");
    CHECK_STR(outbox_event_type_name((outbox_event_type)99), "other");
    CHECK_STR(outbox_bounce_kind_name(OUTBOX_BOUNCE_NONE), NULL);
    CHECK_STR(outbox_bounce_kind_name(OUTBOX_BOUNCE_HARD), "hard");
    CHECK_STR(outbox_bounce_kind_name(OUTBOX_BOUNCE_SOFT), "soft");
    outbox_event_batch_free(NULL);
}

static void test_iso_times(void)
{
    static const struct {
        const char *text;
        bool valid;
        int64_t seconds;
    } cases[] = {
        {"2025-03-05T11:00:00Z", true, T_11},
        {"2025-03-05T12:00:00+01:00", true, T_11},
        {"2025-03-05T06:00:00.000-05:00", true, T_11},
        {"2024-02-29T00:00:00Z", true, 1709164800},
        {"2025-02-29T00:00:00Z", false, 0},
        {"2025-02-30T11:00:00Z", false, 0},
        {"2025-03-05T25:00:00Z", false, 0},
        {"2025-03-05T11:00:00", false, 0},
        {"2025-03-05 11:00:00Z", false, 0},
        {"1970-01-01T00:00:00Z", true, 0},
        {"1970-01-01T00:30:00+01:00", false, 0},
        {"1012-03-05T06:00:00.000-05:00", false, 0},
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        int64_t seconds = -1;
        bool valid;

        CHECK_CASE(cases[i].text);
        valid = outbox__events_iso_time(&seconds, cases[i].text);
        CHECK_INT(valid, cases[i].valid);
        CHECK_INT(seconds, cases[i].seconds);
    }
}

int main(void)
{
    test_record_types();
    test_bounce_type_codes();
    test_derived_event_id();
    test_rejects();
    test_text_caps();
    test_type_names();
    test_iso_times();
    CHECK_DONE();
}
