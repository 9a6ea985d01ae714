/*
 * test_events_sendgrid.c - SendGrid's event webhook. The parser runs on
 * batches in the documented shape: categories as string or array, custom
 * args at the top level, unknown events, missing fields and caps. The
 * ECDSA signature check runs with P-256 keys that the test makes.
 */
#include <stdlib.h>

#include <openssl/evp.h>
#include <openssl/sha.h>
#include <openssl/x509.h>

#include "check.h"
#include "events_internal.h"

/* 2025-03-05 09:50:00 UTC */
#define NOW 1741168200
#define MAX_AGE 600

/* ------------------------------------------------------------------ */
/* Parser                                                              */
/* ------------------------------------------------------------------ */

/* The batch of a real-world failure: category as string and as array,
 * a hard bounce and an event type that outboxd does not know. */
static const char mixed_batch[] =
    "[\n"
    " {\"email\":\"a.meier@example.org\",\"timestamp\":1741168800,"
    "\"event\":\"processed\",\n"
    "  \"category\":\"angebot\",\"sg_event_id\":\"ZXZ0LTAwMQ\",\n"
    "  \"sg_message_id\":\"Wq7xN2hQRkO9exampleAB.filterdrecv-5f6d-1-67C8-1\","
    "\"outbox_id\":\"301\",\n"
    "  \"smtp-id\":\"<Wq7xN2hQRkO9exampleAB@ismtpd.example.com>\"},\n"
    " {\"email\":\"a.meier@example.org\",\"timestamp\":1741168805,"
    "\"event\":\"delivered\",\n"
    "  \"category\":[\"angebot\",\"erp\"],\"sg_event_id\":\"ZXZ0LTAwMg\",\n"
    "  \"sg_message_id\":\"Wq7xN2hQRkO9exampleAB.filterdrecv-5f6d-1-67C8-1\","
    "\"outbox_id\":\"301\",\n"
    "  \"response\":\"250 2.0.0 OK queued\"},\n"
    " {\"email\":\"b.schulz@example.org\",\"timestamp\":1741168806,"
    "\"event\":\"bounce\",\"type\":\"bounce\",\n"
    "  \"status\":\"5.1.1\",\"reason\":\"550 5.1.1 mailbox does not exist\","
    "\"sg_event_id\":\"ZXZ0LTAwMw\",\n"
    "  \"sg_message_id\":\"Wq7xN2hQRkO9exampleAB.filterdrecv-5f6d-1-67C8-2\","
    "\"outbox_id\":\"301\"},\n"
    " {\"email\":\"chef@example.org\",\"timestamp\":1741168900,"
    "\"event\":\"some_future_event\",\n"
    "  \"sg_event_id\":\"ZXZ0LTAwNA\",\"outbox_id\":\"301\"}\n"
    "]";

static outbox_err parse(outbox_event_batch *batch, outbox_error *err,
                        const char *body)
{
    memset(err, 0, sizeof(*err));
    return outbox_events_parse_sendgrid(batch, err, body, strlen(body));
}

static void test_mixed_categories_batch(void)
{
    outbox_event_batch batch = {0};
    outbox_error err;
    outbox_event *events;

    CHECK_CASE("mixed categories batch");
    CHECK_INT(parse(&batch, &err, mixed_batch), OUTBOX_EOK);
    CHECK_INT(batch.count, 4);
    if (batch.count != 4) {
        outbox_event_batch_free(&batch);
        return;
    }
    events = batch.events;

    CHECK_INT(events[0].type, OUTBOX_EVENT_ACCEPTED);
    CHECK_INT(events[0].bounce, OUTBOX_BOUNCE_NONE);
    CHECK_STR(events[0].provider_event, "processed");
    CHECK_STR(events[0].event_id, "ZXZ0LTAwMQ");
    CHECK_INT(events[0].outbox_id, 301);
    CHECK_STR(events[0].provider_message_id, "Wq7xN2hQRkO9exampleAB");
    CHECK_STR(events[0].recipient, "a.meier@example.org");
    CHECK_INT(events[0].occurred_at, 1741168800);
    CHECK_STR(events[0].reason, NULL);
    CHECK_STR(events[0].tags, "[\"angebot\"]");

    CHECK_INT(events[1].type, OUTBOX_EVENT_DELIVERED);
    CHECK_STR(events[1].event_id, "ZXZ0LTAwMg");
    CHECK_STR(events[1].reason, "250 2.0.0 OK queued");
    CHECK_STR(events[1].tags, "[\"angebot\",\"erp\"]");
    CHECK_INT(events[1].occurred_at, 1741168805);

    CHECK_INT(events[2].type, OUTBOX_EVENT_BOUNCED);
    CHECK_INT(events[2].bounce, OUTBOX_BOUNCE_HARD);
    CHECK_STR(events[2].recipient, "b.schulz@example.org");
    CHECK_STR(events[2].reason, "550 5.1.1 mailbox does not exist");
    CHECK_STR(events[2].provider_message_id, "Wq7xN2hQRkO9exampleAB");
    CHECK_STR(events[2].tags, NULL);

    CHECK_INT(events[3].type, OUTBOX_EVENT_OTHER);
    CHECK_STR(events[3].provider_event, "some_future_event");
    CHECK_STR(events[3].event_id, "ZXZ0LTAwNA");
    CHECK_STR(events[3].provider_message_id, NULL);
    CHECK_STR(events[3].recipient, "chef@example.org");
    CHECK_INT(events[3].outbox_id, 301);
    CHECK_STR(events[3].raw,
              "{\"email\":\"chef@example.org\",\"timestamp\":1741168900,"
              "\"event\":\"some_future_event\",\"sg_event_id\":\"ZXZ0LTAwNA\","
              "\"outbox_id\":\"301\"}");
    outbox_event_batch_free(&batch);
    CHECK_INT(batch.count, 0);
    CHECK(batch.events == NULL);
}

static void test_single_object_empty_truncated(void)
{
    outbox_event_batch batch = {0};
    outbox_error err;

    CHECK_CASE("single object is one event");
    CHECK_INT(parse(&batch, &err,
                    "{\"email\":\"a.meier@example.org\","
                    "\"timestamp\":1741168805,"
                    "\"event\":\"delivered\",\"sg_event_id\":\"ZXZ0LTAwMg\","
                    "\"outbox_id\":\"301\"}"),
              OUTBOX_EOK);
    CHECK_INT(batch.count, 1);
    if (batch.count == 1)
        CHECK_INT(batch.events[0].type, OUTBOX_EVENT_DELIVERED);
    outbox_event_batch_free(&batch);

    CHECK_CASE("empty array is no event");
    CHECK_INT(parse(&batch, &err, "[]"), OUTBOX_EOK);
    CHECK_INT(batch.count, 0);
    CHECK(batch.events == NULL);

    CHECK_CASE("truncated JSON fails");
    CHECK_INT(parse(&batch, &err, "[{\"email\":"), OUTBOX_EINVAL);
    CHECK_STR(err.kind, "invalid_payload");
    CHECK_CONTAINS(err.text, "not valid JSON");
    CHECK_INT(batch.count, 0);
    CHECK(batch.events == NULL);
}

typedef struct type_case {
    const char *json;
    outbox_event_type type;
    outbox_bounce_kind bounce;
} type_case;

static const type_case type_cases[] = {
    {"{\"event\":\"processed\"}", OUTBOX_EVENT_ACCEPTED, OUTBOX_BOUNCE_NONE},
    {"{\"event\":\"delivered\"}", OUTBOX_EVENT_DELIVERED, OUTBOX_BOUNCE_NONE},
    {"{\"event\":\"deferred\",\"response\":\"451 try later\","
     "\"attempt\":\"2\"}",
     OUTBOX_EVENT_DEFERRED, OUTBOX_BOUNCE_NONE},
    {"{\"event\":\"bounce\",\"type\":\"bounce\"}", OUTBOX_EVENT_BOUNCED,
     OUTBOX_BOUNCE_HARD},
    {"{\"event\":\"bounce\",\"type\":\"blocked\"}", OUTBOX_EVENT_BOUNCED,
     OUTBOX_BOUNCE_SOFT},
    {"{\"event\":\"bounce\"}", OUTBOX_EVENT_BOUNCED, OUTBOX_BOUNCE_SOFT},
    {"{\"event\":\"bounce\",\"type\":7}", OUTBOX_EVENT_BOUNCED,
     OUTBOX_BOUNCE_SOFT},
    {"{\"event\":\"dropped\",\"reason\":\"Bounced Address\"}",
     OUTBOX_EVENT_DROPPED, OUTBOX_BOUNCE_NONE},
    {"{\"event\":\"open\"}", OUTBOX_EVENT_OPENED, OUTBOX_BOUNCE_NONE},
    {"{\"event\":\"click\",\"url\":\"https://ex.com/\"}", OUTBOX_EVENT_CLICKED,
     OUTBOX_BOUNCE_NONE},
    {"{\"event\":\"spamreport\"}", OUTBOX_EVENT_COMPLAINED, OUTBOX_BOUNCE_NONE},
    {"{\"event\":\"unsubscribe\"}", OUTBOX_EVENT_UNSUBSCRIBED,
     OUTBOX_BOUNCE_NONE},
    {"{\"event\":\"group_unsubscribe\",\"asm_group_id\":1}",
     OUTBOX_EVENT_UNSUBSCRIBED, OUTBOX_BOUNCE_NONE},
    {"{\"event\":\"group_resubscribe\"}", OUTBOX_EVENT_OTHER,
     OUTBOX_BOUNCE_NONE},
    {"{\"event\":\"Delivered\"}", OUTBOX_EVENT_OTHER, OUTBOX_BOUNCE_NONE},
};

static void test_event_types(void)
{
    for (size_t i = 0; i < sizeof(type_cases) / sizeof(type_cases[0]); i++) {
        outbox_event_batch batch = {0};
        outbox_error err;

        CHECK_CASE(type_cases[i].json);
        CHECK_INT(parse(&batch, &err, type_cases[i].json), OUTBOX_EOK);
        CHECK_INT(batch.count, 1);
        if (batch.count == 1) {
            CHECK_INT(batch.events[0].type, type_cases[i].type);
            CHECK_INT(batch.events[0].bounce, type_cases[i].bounce);
        }
        outbox_event_batch_free(&batch);
    }
}

typedef struct outbox_id_case {
    const char *json;
    int64_t outbox_id;
    const char *message_id;
} outbox_id_case;

/* Custom args come back as strings, but a number must match too. */
static const outbox_id_case outbox_id_cases[] = {
    {"{\"event\":\"open\",\"outbox_id\":\"1101\"}", 1101, NULL},
    {"{\"event\":\"open\",\"outbox_id\":1101}", 1101, NULL},
    {"{\"event\":\"open\","
     "\"sg_message_id\":\"Wq7xN2hQRkO9exampleAC.filterdrecv-1\"}",
     0, "Wq7xN2hQRkO9exampleAC"},
    {"{\"event\":\"open\",\"outbox_id\":\"999999\"}", 999999, NULL},
    {"{\"event\":\"open\",\"outbox_id\":\"abc\"}", 0, NULL},
    {"{\"event\":\"open\",\"outbox_id\":\"\"}", 0, NULL},
    {"{\"event\":\"open\",\"outbox_id\":\"-5\"}", 0, NULL},
    {"{\"event\":\"open\",\"outbox_id\":1.5}", 0, NULL},
    {"{\"event\":\"open\",\"outbox_id\":-5}", 0, NULL},
    {"{\"event\":\"open\",\"outbox_id\":1e300}", 0, NULL},
    {"{\"event\":\"open\",\"outbox_id\":\"9007199254740992\"}",
     9007199254740992, NULL},
    {"{\"event\":\"open\",\"outbox_id\":\"9007199254740993\"}", 0, NULL},
    {"{\"event\":\"open\",\"outbox_id\":\"12345678901234567\"}", 0, NULL},
    {"{\"event\":\"open\",\"outbox_id\":[\"7\"]}", 0, NULL},
    {"{\"event\":\"open\",\"sg_message_id\":\"NoSuffix\"}", 0, "NoSuffix"},
    {"{\"event\":\"open\",\"sg_message_id\":\".x\"}", 0, NULL},
    {"{\"event\":\"open\",\"sg_message_id\":\"\"}", 0, NULL},
};

static void test_outbox_id_and_message_id(void)
{
    for (size_t i = 0; i < sizeof(outbox_id_cases) / sizeof(outbox_id_cases[0]);
         i++) {
        outbox_event_batch batch = {0};
        outbox_error err;

        CHECK_CASE(outbox_id_cases[i].json);
        CHECK_INT(parse(&batch, &err, outbox_id_cases[i].json), OUTBOX_EOK);
        CHECK_INT(batch.count, 1);
        if (batch.count == 1) {
            CHECK_INT(batch.events[0].outbox_id,
                      outbox_id_cases[i].outbox_id);
            CHECK_STR(batch.events[0].provider_message_id,
                      outbox_id_cases[i].message_id);
        }
        outbox_event_batch_free(&batch);
    }
}

/* Returns "sha256:" and the hex SHA-256 of text, in a static buffer. */
static const char *hashed_id(const char *text)
{
    static char id[7 + 2 * SHA256_DIGEST_LENGTH + 1];
    unsigned char digest[SHA256_DIGEST_LENGTH];

    SHA256((const unsigned char *)text, strlen(text), digest);
    memcpy(id, "sha256:", 7);
    for (size_t i = 0; i < sizeof(digest); i++)
        snprintf(id + 7 + 2 * i, 3, "%02x", digest[i]);
    return id;
}

static void test_missing_optional_fields(void)
{
    static const char body[] =
        "[{\"event\":\"delivered\"},"
        "{\"event\":\"delivered\",\"sg_event_id\":\"\"}]";
    outbox_event_batch batch = {0};
    outbox_event_batch again = {0};
    outbox_error err;

    CHECK_CASE("missing optional fields");
    CHECK_INT(parse(&batch, &err, body), OUTBOX_EOK);
    CHECK_INT(batch.count, 2);
    if (batch.count == 2) {
        outbox_event *event = &batch.events[0];

        CHECK_INT(event->type, OUTBOX_EVENT_DELIVERED);
        CHECK_INT(event->outbox_id, 0);
        CHECK_INT(event->occurred_at, 0);
        CHECK_STR(event->recipient, NULL);
        CHECK_STR(event->provider_message_id, NULL);
        CHECK_STR(event->reason, NULL);
        CHECK_STR(event->tags, NULL);
        CHECK_STR(event->raw, "{\"event\":\"delivered\"}");
        CHECK_STR(event->event_id, hashed_id("{\"event\":\"delivered\"}"));
        CHECK_STR(batch.events[1].event_id,
                  hashed_id("{\"event\":\"delivered\",\"sg_event_id\":\"\"}"));
    }

    CHECK_CASE("derived id is stable");
    CHECK_INT(parse(&again, &err, body), OUTBOX_EOK);
    if (batch.count == 2 && again.count == 2)
        CHECK_STR(again.events[0].event_id, batch.events[0].event_id);
    outbox_event_batch_free(&batch);
    outbox_event_batch_free(&again);
}

static void test_wrong_types_are_ignored(void)
{
    outbox_event_batch batch = {0};
    outbox_error err;

    CHECK_CASE("fields of the wrong type");
    CHECK_INT(parse(&batch, &err,
                    "[{\"event\":\"bounce\",\"email\":5,\"timestamp\":\"x\","
                    "\"sg_message_id\":{},\"reason\":[1],\"category\":7,"
                    "\"sg_event_id\":null}]"),
              OUTBOX_EOK);
    CHECK_INT(batch.count, 1);
    if (batch.count == 1) {
        CHECK_STR(batch.events[0].recipient, NULL);
        CHECK_INT(batch.events[0].occurred_at, 0);
        CHECK_STR(batch.events[0].provider_message_id, NULL);
        CHECK_STR(batch.events[0].reason, NULL);
        CHECK_STR(batch.events[0].tags, NULL);
        CHECK_CONTAINS(batch.events[0].event_id, "sha256:");
    }
    outbox_event_batch_free(&batch);

    CHECK_CASE("times out of range");
    CHECK_INT(parse(&batch, &err,
                    "[{\"event\":\"open\",\"timestamp\":-1},"
                    "{\"event\":\"open\",\"timestamp\":1e300},"
                    "{\"event\":\"open\",\"timestamp\":1741168805.9}]"),
              OUTBOX_EOK);
    CHECK_INT(batch.count, 3);
    if (batch.count == 3) {
        CHECK_INT(batch.events[0].occurred_at, 0);
        CHECK_INT(batch.events[1].occurred_at, 0);
        CHECK_INT(batch.events[2].occurred_at, 1741168805);
    }
    outbox_event_batch_free(&batch);

    CHECK_CASE("category array without strings");
    CHECK_INT(parse(&batch, &err,
                    "[{\"event\":\"open\",\"category\":[1,\"a\",null]},"
                    "{\"event\":\"open\",\"category\":[]}]"),
              OUTBOX_EOK);
    CHECK_INT(batch.count, 2);
    if (batch.count == 2) {
        CHECK_STR(batch.events[0].tags, "[\"a\"]");
        CHECK_STR(batch.events[1].tags, NULL);
    }
    outbox_event_batch_free(&batch);
}

typedef struct invalid_case {
    const char *body;
    size_t size;              /* 0: strlen(body) */
    outbox_err rc;
    const char *text;
} invalid_case;

static const invalid_case invalid_cases[] = {
    {"", 0, OUTBOX_EINVAL, "not valid JSON"},
    {"[1]", 0, OUTBOX_EINVAL, "event 0 is not an object"},
    {"[{\"event\":\"open\"},\"x\"]", 0, OUTBOX_EINVAL, "event 1 is not"},
    {"[{\"email\":\"a@x.io\"}]", 0, OUTBOX_EINVAL, "string \"event\""},
    {"[{\"event\":5}]", 0, OUTBOX_EINVAL, "string \"event\""},
    {"\"events\"", 0, OUTBOX_EINVAL, "not a JSON array"},
    {"[{\"event\":\"open\",\"email\":\"\xff\"}]", 0, OUTBOX_EINVAL,
     "not UTF-8"},
    {"[{\"event\":\"open\"}]\0[]", 20, OUTBOX_EINVAL, "not UTF-8"},
    {"[{\"event\":\"open\"}] x", 0, OUTBOX_EINVAL, "not valid JSON"},
};

static void test_invalid_bodies(void)
{
    for (size_t i = 0; i < sizeof(invalid_cases) / sizeof(invalid_cases[0]);
         i++) {
        const invalid_case *c = &invalid_cases[i];
        outbox_event_batch batch = {0};
        outbox_error err;
        size_t size = c->size ? c->size : strlen(c->body);

        CHECK_CASE(c->body);
        memset(&err, 0, sizeof(err));
        CHECK_INT(outbox_events_parse_sendgrid(&batch, &err, c->body, size),
                  c->rc);
        CHECK_STR(err.kind, "invalid_payload");
        CHECK_CONTAINS(err.text, c->text);
        CHECK_INT(batch.count, 0);
        CHECK(batch.events == NULL);
    }
}

/* Returns a malloc'd JSON array of count events of about 500 bytes. */
static char *make_batch(size_t count, const char *separator)
{
    outbox_buf buf;

    outbox__buf_init(&buf, 64u * 1024 * 1024);
    outbox__buf_puts(&buf, "[");
    for (size_t i = 0; i < count; i++) {
        outbox__buf_printf(&buf,
                           "%s{\"email\":\"r%zu@example.org\",\"timestamp\":"
                           "%zu,\"event\":\"delivered\",\"sg_event_id\":"
                           "\"ev-%zu\",\"sg_message_id\":\"msg%zu.filter\","
                           "\"outbox_id\":\"%zu\",\"response\":\"250 OK "
                           "%0400zu\"}",
                           i == 0 ? "" : separator, i, 1741168800 + i, i, i,
                           i + 1, i);
    }
    outbox__buf_puts(&buf, "]\r\n");
    return outbox__buf_take(&buf, NULL);
}

/* Returns a malloc'd JSON array of count minimal open events. */
static char *make_open_batch(size_t count)
{
    outbox_buf buf;

    outbox__buf_init(&buf, 1024u * 1024);
    outbox__buf_puts(&buf, "[");
    for (size_t i = 0; i < count; i++)
        outbox__buf_puts(&buf, i == 0 ? "{\"event\":\"open\"}"
                                      : ",{\"event\":\"open\"}");
    outbox__buf_puts(&buf, "]");
    return outbox__buf_take(&buf, NULL);
}

static void test_large_batches(void)
{
    outbox_event_batch batch = {0};
    outbox_error err;
    char *body = make_batch(2000, ",\r\n");
    char *over;

    CHECK_CASE("batch of 2000 events");
    CHECK(strlen(body) > 1000000);
    CHECK_INT(parse(&batch, &err, body), OUTBOX_EOK);
    CHECK_INT(batch.count, 2000);
    if (batch.count == 2000) {
        CHECK_STR(batch.events[1999].event_id, "ev-1999");
        CHECK_STR(batch.events[1999].recipient, "r1999@example.org");
        CHECK_STR(batch.events[1999].provider_message_id, "msg1999");
        CHECK_INT(batch.events[1999].outbox_id, 2000);
        CHECK_INT(batch.events[1999].occurred_at, 1741168800 + 1999);
    }
    outbox_event_batch_free(&batch);
    free(body);

    CHECK_CASE("batch over the event cap");
    over = make_open_batch(OUTBOX_EVENTS_MAX + 1);
    CHECK_INT(parse(&batch, &err, over), OUTBOX_ELIMIT);
    CHECK_STR(err.kind, "limit_exceeded");
    CHECK_CONTAINS(err.text, "more than 10000 events");
    CHECK_INT(batch.count, 0);
    free(over);

    CHECK_CASE("batch at the event cap");
    over = make_open_batch(OUTBOX_EVENTS_MAX);
    CHECK_INT(parse(&batch, &err, over), OUTBOX_EOK);
    CHECK_INT(batch.count, OUTBOX_EVENTS_MAX);
    outbox_event_batch_free(&batch);
    free(over);
}

/* Returns a malloc'd event whose field key contains length bytes of the
 * 2-byte character "é" (an odd length ends with a single "x"). */
static char *event_with_long_field(const char *key, size_t length)
{
    outbox_buf buf;

    outbox__buf_init(&buf, 1024u * 1024);
    outbox__buf_printf(&buf, "[{\"event\":\"bounce\",\"%s\":\"", key);
    for (size_t i = 0; i + 1 < length; i += 2)
        outbox__buf_puts(&buf, "\xc3\xa9");
    if (length % 2 == 1)
        outbox__buf_puts(&buf, "x");
    outbox__buf_puts(&buf, "\"}]");
    return outbox__buf_take(&buf, NULL);
}

static void test_text_caps(void)
{
    outbox_event_batch batch = {0};
    outbox_error err;
    char *body;

    CHECK_CASE("long reason is cut at a character");
    body = event_with_long_field("reason", 6000);
    CHECK_INT(parse(&batch, &err, body), OUTBOX_EOK);
    CHECK_INT(batch.count, 1);
    if (batch.count == 1) {
        CHECK_INT(strlen(batch.events[0].reason), OUTBOX_EVENT_TEXT_MAX - 2);
        CHECK(outbox__utf8_valid(batch.events[0].reason,
                                 strlen(batch.events[0].reason)));
        CHECK(strlen(batch.events[0].raw) > 6000);
    }
    outbox_event_batch_free(&batch);
    free(body);

    CHECK_CASE("reason at the cap is whole");
    body = event_with_long_field("reason", OUTBOX_EVENT_TEXT_MAX - 1);
    CHECK_INT(parse(&batch, &err, body), OUTBOX_EOK);
    if (batch.count == 1)
        CHECK_INT(strlen(batch.events[0].reason), OUTBOX_EVENT_TEXT_MAX - 1);
    outbox_event_batch_free(&batch);
    free(body);

    CHECK_CASE("long address fails");
    body = event_with_long_field("email", OUTBOX_EVENT_TEXT_MAX);
    CHECK_INT(parse(&batch, &err, body), OUTBOX_ELIMIT);
    CHECK_STR(err.kind, "limit_exceeded");
    CHECK_CONTAINS(err.text,
                   "SendGrid event 0: email is 4096 bytes long, over the "
                   "maximum of 4095");
    CHECK_INT(batch.count, 0);
    free(body);

    CHECK_CASE("long event id fails");
    body = event_with_long_field("sg_event_id", 5000);
    CHECK_INT(parse(&batch, &err, body), OUTBOX_ELIMIT);
    CHECK_INT(batch.count, 0);
    free(body);
}

/* ------------------------------------------------------------------ */
/* Signature                                                           */
/* ------------------------------------------------------------------ */

/* The two events of a signed request, with the CR LF that SendGrid puts
 * between and after events. */
static const char signed_body[] =
    "[{\"email\":\"a.meier@example.org\",\"event\":\"delivered\","
    "\"sg_event_id\":\"c2lnLTE\",\"timestamp\":1741168805,"
    "\"outbox_id\":\"301\"},\r\n"
    "{\"email\":\"b.schulz@example.org\",\"event\":\"open\","
    "\"sg_event_id\":\"c2lnLTI\",\"timestamp\":1741168900,"
    "\"outbox_id\":\"301\"}]\r\n";

/* The same events, pretty-printed: the same JSON, other bytes. */
static const char pretty_body[] =
    "[\n  {\"email\": \"a.meier@example.org\", \"event\": \"delivered\",\n"
    "   \"sg_event_id\": \"c2lnLTE\", \"timestamp\": 1741168805,\n"
    "   \"outbox_id\": \"301\"},\n"
    "  {\"email\": \"b.schulz@example.org\", \"event\": \"open\",\n"
    "   \"sg_event_id\": \"c2lnLTI\", \"timestamp\": 1741168900,\n"
    "   \"outbox_id\": \"301\"}\n]\n";

static EVP_PKEY *make_key(const char *curve)
{
    return EVP_PKEY_Q_keygen(NULL, NULL, "EC", curve);
}

/* Returns the malloc'd base64 DER SubjectPublicKeyInfo of key. */
static char *public_key_b64(EVP_PKEY *key)
{
    unsigned char *der = NULL;
    int size = i2d_PUBKEY(key, &der);
    char *text;

    if (size <= 0)
        return NULL;
    text = outbox__base64(der, (size_t)size, NULL);
    OPENSSL_free(der);
    return text;
}

/* Returns the malloc'd base64 of the DER ECDSA signature of timestamp
 * followed by body. flip, if not 0, is XORed into the middle byte of the
 * signature. */
static char *sign(EVP_PKEY *key, const char *timestamp, const char *body,
                  size_t size, unsigned char flip)
{
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    unsigned char signature[256];
    size_t signature_size = sizeof(signature);
    char *text = NULL;

    if (ctx != NULL
        && EVP_DigestSignInit(ctx, NULL, EVP_sha256(), NULL, key) == 1
        && EVP_DigestSignUpdate(ctx, timestamp, strlen(timestamp)) == 1
        && EVP_DigestSignUpdate(ctx, body, size) == 1
        && EVP_DigestSignFinal(ctx, signature, &signature_size) == 1) {
        signature[signature_size / 2] ^= flip;
        text = outbox__base64(signature, signature_size, NULL);
    }
    EVP_MD_CTX_free(ctx);
    return text;
}

static void test_signature(void)
{
    EVP_PKEY *key = make_key("P-256");
    EVP_PKEY *other = make_key("P-256");
    EVP_PKEY *p384 = make_key("P-384");
    char *public_key = public_key_b64(key);
    char *other_key = public_key_b64(other);
    char *p384_key = public_key_b64(p384);
    char timestamp[32];
    char old[32];
    char future[32];
    size_t size = strlen(signed_body);
    char *signature;
    char *flipped;
    char *old_signature;
    char *future_signature;
    char *body_copy;
    outbox_error err;

    if (public_key == NULL || other_key == NULL || p384_key == NULL) {
        CHECK_FAIL("could not make the test keys");
        return;
    }
    snprintf(timestamp, sizeof(timestamp), "%d", NOW);
    snprintf(old, sizeof(old), "%d", NOW - 7200);
    snprintf(future, sizeof(future), "%d", NOW + MAX_AGE + 1);
    signature = sign(key, timestamp, signed_body, size, 0);
    flipped = sign(key, timestamp, signed_body, size, 0x01);
    old_signature = sign(key, old, signed_body, size, 0);
    future_signature = sign(key, future, signed_body, size, 0);

    CHECK_CASE("valid signature passes");
    CHECK_INT(outbox_verify_sendgrid(&err, public_key, signature, timestamp,
                                     signed_body, size, NOW, MAX_AGE),
              OUTBOX_EOK);

    CHECK_CASE("window edge passes");
    CHECK_INT(outbox_verify_sendgrid(&err, public_key, signature, timestamp,
                                     signed_body, size, NOW + MAX_AGE, MAX_AGE),
              OUTBOX_EOK);

    CHECK_CASE("pretty-printed body fails");
    memset(&err, 0, sizeof(err));
    CHECK_INT(outbox_verify_sendgrid(&err, public_key, signature, timestamp,
                                     pretty_body, strlen(pretty_body), NOW,
                                     MAX_AGE),
              OUTBOX_EINVAL);
    CHECK_STR(err.kind, "unauthenticated");
    CHECK_CONTAINS(err.text, "does not match");

    CHECK_CASE("body without the last CR LF fails");
    CHECK_INT(outbox_verify_sendgrid(&err, public_key, signature, timestamp,
                                     signed_body, size - 2, NOW, MAX_AGE),
              OUTBOX_EINVAL);

    CHECK_CASE("one flipped body byte fails");
    body_copy = outbox__strdup(signed_body);
    if (body_copy != NULL) {
        body_copy[40] ^= 0x01;
        CHECK_INT(outbox_verify_sendgrid(&err, public_key, signature,
                                         timestamp, body_copy, size, NOW,
                                         MAX_AGE),
                  OUTBOX_EINVAL);
        CHECK_STR(err.kind, "unauthenticated");
        free(body_copy);
    }

    CHECK_CASE("one flipped signature byte fails");
    CHECK_INT(outbox_verify_sendgrid(&err, public_key, flipped, timestamp,
                                     signed_body, size, NOW, MAX_AGE),
              OUTBOX_EINVAL);
    CHECK_STR(err.kind, "unauthenticated");

    CHECK_CASE("other timestamp fails");
    CHECK_INT(outbox_verify_sendgrid(&err, public_key, signature, old,
                                     signed_body, size, NOW, 86400),
              OUTBOX_EINVAL);
    CHECK_CONTAINS(err.text, "does not match");

    CHECK_CASE("old timestamp fails");
    memset(&err, 0, sizeof(err));
    CHECK_INT(outbox_verify_sendgrid(&err, public_key, old_signature, old,
                                     signed_body, size, NOW, MAX_AGE),
              OUTBOX_EINVAL);
    CHECK_STR(err.kind, "unauthenticated");
    CHECK_CONTAINS(err.text, "stale timestamp 1741161000: 7200 s before now");

    CHECK_CASE("future timestamp fails");
    CHECK_INT(outbox_verify_sendgrid(&err, public_key, future_signature,
                                     future, signed_body, size, NOW, MAX_AGE),
              OUTBOX_EINVAL);
    CHECK_CONTAINS(err.text, "stale timestamp");

    CHECK_CASE("missing signature fails");
    CHECK_INT(outbox_verify_sendgrid(&err, public_key, NULL, timestamp,
                                     signed_body, size, NOW, MAX_AGE),
              OUTBOX_EINVAL);
    CHECK_CONTAINS(err.text, "no signature");

    CHECK_CASE("missing timestamp fails");
    CHECK_INT(outbox_verify_sendgrid(&err, public_key, signature, NULL,
                                     signed_body, size, NOW, MAX_AGE),
              OUTBOX_EINVAL);
    CHECK_CONTAINS(err.text, "no timestamp");

    CHECK_CASE("timestamp with a sign fails");
    CHECK_INT(outbox_verify_sendgrid(&err, public_key, signature, "+1741168200",
                                     signed_body, size, NOW, MAX_AGE),
              OUTBOX_EINVAL);
    CHECK_CONTAINS(err.text, "invalid timestamp");

    CHECK_CASE("signature not base64 fails");
    CHECK_INT(outbox_verify_sendgrid(&err, public_key, "!!not base64!!",
                                     timestamp, signed_body, size, NOW,
                                     MAX_AGE),
              OUTBOX_EINVAL);
    CHECK_STR(err.kind, "unauthenticated");

    CHECK_CASE("signature of garbage bytes fails");
    CHECK_INT(outbox_verify_sendgrid(&err, public_key, "AAAA", timestamp,
                                     signed_body, size, NOW, MAX_AGE),
              OUTBOX_EINVAL);
    CHECK_STR(err.kind, "unauthenticated");

    CHECK_CASE("other key fails");
    CHECK_INT(outbox_verify_sendgrid(&err, other_key, signature, timestamp,
                                     signed_body, size, NOW, MAX_AGE),
              OUTBOX_EINVAL);
    CHECK_STR(err.kind, "unauthenticated");

    CHECK_CASE("P-384 key is a config error");
    memset(&err, 0, sizeof(err));
    CHECK_INT(outbox_verify_sendgrid(&err, p384_key, signature, timestamp,
                                     signed_body, size, NOW, MAX_AGE),
              OUTBOX_ECONFIG);
    CHECK_STR(err.kind, "config");

    CHECK_CASE("garbage key is a config error");
    CHECK_INT(outbox_verify_sendgrid(&err, "bm90IGEga2V5", signature,
                                     timestamp, signed_body, size, NOW,
                                     MAX_AGE),
              OUTBOX_ECONFIG);
    CHECK_INT(outbox_verify_sendgrid(&err, NULL, signature, timestamp,
                                     signed_body, size, NOW, MAX_AGE),
              OUTBOX_ECONFIG);

    /* The key is one line of base64, as SendGrid shows it: white space
     * inside it is a configuration error, not skipped. */
    CHECK_CASE("key with a line break is a config error");
    {
        size_t length = strlen(public_key);
        char *broken = malloc(length + 2);

        if (broken != NULL) {
            memcpy(broken, public_key, 40);
            broken[40] = '\n';
            memcpy(broken + 41, public_key + 40, length - 40 + 1);
            CHECK_INT(outbox_verify_sendgrid(&err, broken, signature,
                                             timestamp, signed_body, size,
                                             NOW, MAX_AGE),
                      OUTBOX_ECONFIG);
            free(broken);
        }
    }

    free(signature);
    free(flipped);
    free(old_signature);
    free(future_signature);
    free(public_key);
    free(other_key);
    free(p384_key);
    EVP_PKEY_free(key);
    EVP_PKEY_free(other);
    EVP_PKEY_free(p384);
}

/* A signed request of 2000 events, over 1 MB, verifies and parses. */
static void test_signed_large_batch(void)
{
    EVP_PKEY *key = make_key("P-256");
    char *public_key = public_key_b64(key);
    char *body = make_batch(2000, ",\r\n");
    char *signature = sign(key, "1741168200", body, strlen(body), 0);
    outbox_event_batch batch = {0};
    outbox_error err;

    CHECK_CASE("signed batch of 2000 events");
    CHECK_INT(outbox_verify_sendgrid(&err, public_key, signature,
                                     "1741168200", body, strlen(body), NOW,
                                     MAX_AGE),
              OUTBOX_EOK);
    CHECK_INT(parse(&batch, &err, body), OUTBOX_EOK);
    CHECK_INT(batch.count, 2000);
    outbox_event_batch_free(&batch);
    free(signature);
    free(body);
    free(public_key);
    EVP_PKEY_free(key);
}

int main(void)
{
    test_mixed_categories_batch();
    test_single_object_empty_truncated();
    test_event_types();
    test_outbox_id_and_message_id();
    test_missing_optional_fields();
    test_wrong_types_are_ignored();
    test_invalid_bodies();
    test_large_batches();
    test_text_caps();
    test_signature();
    test_signed_large_batch();
    CHECK_DONE();
}
