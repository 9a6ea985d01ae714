/*
 * test_events_mailgun.c - Mailgun's webhooks. The parser runs on JSON
 * bodies (event types, severities, ids, missing fields) and on the
 * rejected legacy form posts. The signature reader and the HMAC check run
 * with a signing key that the test sets, and the token cache rejects a
 * replayed request.
 */
#include <stdlib.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "check.h"
#include "events_internal.h"

/* 2025-03-05 10:00:00 UTC */
#define NOW 1741168800
#define MAX_AGE 600

static const char signing_key[] = "test-webhook-signing-key";

/* Writes the lowercase hex HMAC-SHA256 of timestamp || token into out. */
static void sign(char out[65], const char *key, const char *timestamp,
                 const char *token)
{
    unsigned char digest[32];
    unsigned int size = 0;
    char data[512];

    snprintf(data, sizeof(data), "%s%s", timestamp, token);
    HMAC(EVP_sha256(), key, (int)strlen(key), (const unsigned char *)data,
         strlen(data), digest, &size);
    for (unsigned int i = 0; i < size; i++)
        snprintf(out + 2 * i, 3, "%02x", digest[i]);
}

/*
 * Writes into out a webhook body in Mailgun's JSON shape for a failed
 * delivery: severity, event-data id and token vary, timestamp is NOW.
 */
static void make_failed_body(char *out, size_t size, const char *severity,
                             const char *id, const char *token)
{
    char timestamp[32];
    char signature[65];

    snprintf(timestamp, sizeof(timestamp), "%d", NOW);
    sign(signature, signing_key, timestamp, token);
    snprintf(out, size,
             "{\"signature\":{\"timestamp\":\"%s\",\"token\":\"%s\",\n"
             "  \"signature\":\"%s\"},\n"
             " \"event-data\":{\"id\":\"%s\",\"timestamp\":%d.53,"
             "\"event\":\"failed\",\n"
             "  \"severity\":\"%s\",\"reason\":\"bounce\","
             "\"recipient\":\"falsch@example.org\",\n"
             "  \"message\":{\"headers\":{\"message-id\":"
             "\"20250305100000.1.ABCDEF@mg.example.com\"}},\n"
             "  \"delivery-status\":{\"code\":550,\"message\":\"550 5.1.1 "
             "<falsch@example.org>: recipient rejected\"},\n"
             "  \"user-variables\":{\"outbox_id\":\"1301\"}}}",
             timestamp, token, signature, id, NOW, severity);
}

static outbox_err parse(outbox_event_batch *batch, outbox_error *err,
                        const char *body)
{
    memset(err, 0, sizeof(*err));
    return outbox_events_parse_mailgun(batch, err, body, strlen(body));
}

/* Reads the signature of body and checks it as the listener does. */
static outbox_err verify(outbox_error *err, const char *body, int64_t now)
{
    outbox_mailgun_signature signature;
    outbox_err rc;

    memset(err, 0, sizeof(*err));
    rc = outbox_mailgun_signature_read(&signature, err, body, strlen(body));
    if (rc != OUTBOX_EOK)
        return rc;
    return outbox_verify_mailgun(err, signing_key, signature.timestamp,
                                 signature.token, signature.signature, now,
                                 MAX_AGE);
}

static const char token_a[] =
    "9c1f0e5b7a3d4c2e8f6a1b0d9e8c7f6a5b4c3d2e1f0a9b8c7d";
static const char token_b[] =
    "1b2c3d4e5f60718293a4b5c6d7e8f9010a1b2c3d4e5f607182";

static void test_permanent_failure(void)
{
    char body[2048];
    outbox_event_batch batch = {0};
    outbox_error err;
    outbox_event *event;

    CHECK_CASE("permanent failure");
    make_failed_body(body, sizeof(body), "permanent", "Zx81kQ2mTBexample01",
                     token_a);
    CHECK_INT(verify(&err, body, NOW + 30), OUTBOX_EOK);
    CHECK_INT(parse(&batch, &err, body), OUTBOX_EOK);
    CHECK_INT(batch.count, 1);
    if (batch.count != 1) {
        outbox_event_batch_free(&batch);
        return;
    }
    event = &batch.events[0];
    CHECK_INT(event->type, OUTBOX_EVENT_BOUNCED);
    CHECK_INT(event->bounce, OUTBOX_BOUNCE_HARD);
    CHECK_STR(event->provider_event, "failed");
    CHECK_STR(event->event_id, token_a);
    CHECK_INT(event->outbox_id, 1301);
    CHECK_STR(event->provider_message_id,
              "20250305100000.1.ABCDEF@mg.example.com");
    CHECK_STR(event->recipient, "falsch@example.org");
    CHECK_INT(event->occurred_at, NOW);
    CHECK_STR(event->reason,
              "550 5.1.1 <falsch@example.org>: recipient rejected");
    CHECK_STR(event->tags, NULL);
    CHECK_CONTAINS(event->raw, "{\"id\":\"Zx81kQ2mTBexample01\",");
    CHECK(strstr(event->raw, "signature") == NULL);
    outbox_event_batch_free(&batch);
}

static void test_temporary_failure(void)
{
    char body[2048];
    outbox_event_batch batch = {0};
    outbox_error err;

    CHECK_CASE("temporary failure");
    make_failed_body(body, sizeof(body), "temporary", "Zx81kQ2mTBexample02",
                     token_b);
    CHECK_INT(verify(&err, body, NOW), OUTBOX_EOK);
    CHECK_INT(parse(&batch, &err, body), OUTBOX_EOK);
    CHECK_INT(batch.count, 1);
    if (batch.count == 1) {
        CHECK_INT(batch.events[0].type, OUTBOX_EVENT_BOUNCED);
        CHECK_INT(batch.events[0].bounce, OUTBOX_BOUNCE_SOFT);
        CHECK_STR(batch.events[0].event_id, token_b);
    }
    outbox_event_batch_free(&batch);
}

typedef struct type_case {
    const char *event_data;
    outbox_event_type type;
    outbox_bounce_kind bounce;
} type_case;

static const type_case type_cases[] = {
    {"{\"event\":\"accepted\"}", OUTBOX_EVENT_ACCEPTED, OUTBOX_BOUNCE_NONE},
    {"{\"event\":\"delivered\"}", OUTBOX_EVENT_DELIVERED, OUTBOX_BOUNCE_NONE},
    {"{\"event\":\"failed\"}", OUTBOX_EVENT_BOUNCED, OUTBOX_BOUNCE_SOFT},
    {"{\"event\":\"failed\",\"severity\":\"permanent\","
     "\"reason\":\"suppress-bounce\"}",
     OUTBOX_EVENT_BOUNCED, OUTBOX_BOUNCE_HARD},
    {"{\"event\":\"failed\",\"severity\":\"Permanent\"}", OUTBOX_EVENT_BOUNCED,
     OUTBOX_BOUNCE_SOFT},
    {"{\"event\":\"rejected\",\"reject\":{\"reason\":\"x\"}}",
     OUTBOX_EVENT_DROPPED, OUTBOX_BOUNCE_NONE},
    {"{\"event\":\"opened\"}", OUTBOX_EVENT_OPENED, OUTBOX_BOUNCE_NONE},
    {"{\"event\":\"clicked\",\"url\":\"https://ex.com/\"}",
     OUTBOX_EVENT_CLICKED, OUTBOX_BOUNCE_NONE},
    {"{\"event\":\"unsubscribed\"}", OUTBOX_EVENT_UNSUBSCRIBED,
     OUTBOX_BOUNCE_NONE},
    {"{\"event\":\"complained\"}", OUTBOX_EVENT_COMPLAINED,
     OUTBOX_BOUNCE_NONE},
    {"{\"event\":\"stored\"}", OUTBOX_EVENT_OTHER, OUTBOX_BOUNCE_NONE},
    {"{\"event\":\"permanent_fail\"}", OUTBOX_EVENT_OTHER, OUTBOX_BOUNCE_NONE},
};

static void test_event_types(void)
{
    for (size_t i = 0; i < sizeof(type_cases) / sizeof(type_cases[0]); i++) {
        outbox_event_batch batch = {0};
        outbox_error err;
        char body[512];

        CHECK_CASE(type_cases[i].event_data);
        snprintf(body, sizeof(body),
                 "{\"signature\":{\"token\":\"t%zu\"},\"event-data\":%s}", i,
                 type_cases[i].event_data);
        CHECK_INT(parse(&batch, &err, body), OUTBOX_EOK);
        CHECK_INT(batch.count, 1);
        if (batch.count == 1) {
            char want_id[16];

            snprintf(want_id, sizeof(want_id), "t%zu", i);
            CHECK_INT(batch.events[0].type, type_cases[i].type);
            CHECK_INT(batch.events[0].bounce, type_cases[i].bounce);
            CHECK_STR(batch.events[0].event_id, want_id);
            CHECK_STR(batch.events[0].raw, type_cases[i].event_data);
        }
        outbox_event_batch_free(&batch);
    }
}

typedef struct field_case {
    const char *event_data;
    int64_t outbox_id;
    const char *message_id;
    const char *reason;
    const char *tags;
} field_case;

static const field_case field_cases[] = {
    {"{\"event\":\"delivered\",\"message\":{\"headers\":{\"message-id\":"
     "\"<20250305100000.1.ABCDEF@mg.example.com>\"}}}",
     0, "20250305100000.1.ABCDEF@mg.example.com", NULL, NULL},
    {"{\"event\":\"delivered\",\"message\":{\"headers\":{\"message-id\":"
     "\"<>\"}}}",
     0, NULL, NULL, NULL},
    {"{\"event\":\"delivered\",\"message\":{\"headers\":{\"message-id\":"
     "\"\"}}}",
     0, NULL, NULL, NULL},
    {"{\"event\":\"delivered\",\"message\":{\"headers\":{\"message-id\":"
     "\"<a@b\"}}}",
     0, "<a@b", NULL, NULL},
    {"{\"event\":\"delivered\",\"user-variables\":{\"outbox_id\":1301}}", 1301,
     NULL, NULL, NULL},
    {"{\"event\":\"delivered\",\"user-variables\":{\"outbox_id\":\"x\"}}", 0,
     NULL, NULL, NULL},
    {"{\"event\":\"delivered\",\"user-variables\":\"outbox_id\"}", 0, NULL,
     NULL, NULL},
    {"{\"event\":\"failed\",\"reason\":\"generic\",\"delivery-status\":"
     "{\"description\":\"No MX for example.invalid\",\"message\":\"\"}}",
     0, NULL, "No MX for example.invalid", NULL},
    {"{\"event\":\"failed\",\"reason\":\"suppress-bounce\"}", 0, NULL,
     "suppress-bounce", NULL},
    {"{\"event\":\"delivered\",\"tags\":[\"invoice\",\"erp\"]}", 0, NULL, NULL,
     "[\"invoice\",\"erp\"]"},
    {"{\"event\":\"delivered\",\"tags\":[\"invoice\",3]}", 0, NULL, NULL,
     NULL},
    {"{\"event\":\"delivered\",\"tags\":[]}", 0, NULL, NULL, NULL},
};

static void test_fields(void)
{
    for (size_t i = 0; i < sizeof(field_cases) / sizeof(field_cases[0]);
         i++) {
        const field_case *c = &field_cases[i];
        outbox_event_batch batch = {0};
        outbox_error err;
        char body[512];

        CHECK_CASE(c->event_data);
        snprintf(body, sizeof(body), "{\"event-data\":%s}", c->event_data);
        CHECK_INT(parse(&batch, &err, body), OUTBOX_EOK);
        CHECK_INT(batch.count, 1);
        if (batch.count == 1) {
            CHECK_INT(batch.events[0].outbox_id, c->outbox_id);
            CHECK_STR(batch.events[0].provider_message_id, c->message_id);
            CHECK_STR(batch.events[0].reason, c->reason);
            CHECK_STR(batch.events[0].tags, c->tags);
        }
        outbox_event_batch_free(&batch);
    }
}

/* Without a token, the id is derived from the event, the same each time. */
static void test_missing_token(void)
{
    static const char body[] =
        "{\"event-data\":{\"event\":\"opened\",\"id\":\"abc\"}}";
    outbox_event_batch batch = {0};
    outbox_event_batch again = {0};
    outbox_error err;

    CHECK_CASE("missing token");
    CHECK_INT(parse(&batch, &err, body), OUTBOX_EOK);
    CHECK_INT(parse(&again, &err, body), OUTBOX_EOK);
    if (batch.count == 1 && again.count == 1) {
        CHECK_INT(strlen(batch.events[0].event_id), 7 + 64);
        CHECK_CONTAINS(batch.events[0].event_id, "sha256:");
        CHECK_STR(batch.events[0].event_id, again.events[0].event_id);
        CHECK_INT(batch.events[0].occurred_at, 0);
        CHECK_STR(batch.events[0].recipient, NULL);
    }
    outbox_event_batch_free(&batch);
    outbox_event_batch_free(&again);
}

typedef struct invalid_case {
    const char *body;
    const char *text;
} invalid_case;

static const invalid_case invalid_cases[] = {
    /* The legacy webhooks: form-urlencoded, then multipart. */
    {"event=delivered&recipient=falsch%40example.org&Message-Id="
     "%3C20250305100000.1.ABCDEF%40mg.example.com%3E&timestamp=1741168800"
     "&token=abc&signature=def&outbox_id=1301",
     "legacy form-encoded webhooks are not supported"},
    {"--boundary\r\nContent-Disposition: form-data; name=\"event\"\r\n\r\n"
     "bounced\r\n--boundary--\r\n",
     "legacy form-encoded webhooks are not supported"},
    {"", "legacy form-encoded"},
    {"[{\"event-data\":{\"event\":\"failed\"}}]", "legacy form-encoded"},
    {"{\"event-data\":{\"event\":\"failed\"}", "is not valid JSON"},
    {"{\"event-data\":{\"event\":\"failed\"}} {}",
     "has bytes after its JSON value"},
    {"{\"event-data\":{\"event\":\"f\xc3\"}}", "is not UTF-8 text"},
    {"{\"signature\":{\"token\":\"abc\"}}", "no \"event-data\""},
    {"{\"event-data\":[]}", "no \"event-data\""},
    {"{\"event-data\":{\"severity\":\"permanent\"}}", "no \"event-data\""},
    {"{\"event-data\":{\"event\":null}}", "no \"event-data\""},
};

static void test_invalid_bodies(void)
{
    for (size_t i = 0; i < sizeof(invalid_cases) / sizeof(invalid_cases[0]);
         i++) {
        outbox_event_batch batch = {0};
        outbox_error err;

        CHECK_CASE(invalid_cases[i].body);
        CHECK_INT(parse(&batch, &err, invalid_cases[i].body), OUTBOX_EINVAL);
        CHECK_STR(err.kind, "invalid_payload");
        CHECK_CONTAINS(err.text, invalid_cases[i].text);
        CHECK_INT(batch.count, 0);
        CHECK(batch.events == NULL);
    }
}

static void test_field_caps(void)
{
    outbox_buf buf;
    outbox_event_batch batch = {0};
    outbox_error err;
    char *body;

    CHECK_CASE("token over the cap fails");
    outbox__buf_init(&buf, 65536);
    outbox__buf_puts(&buf, "{\"signature\":{\"token\":\"");
    for (size_t i = 0; i < OUTBOX_EVENT_TEXT_MAX; i++)
        outbox__buf_puts(&buf, "a");
    outbox__buf_puts(&buf, "\"},\"event-data\":{\"event\":\"opened\"}}");
    body = outbox__buf_take(&buf, NULL);
    CHECK_INT(parse(&batch, &err, body), OUTBOX_ELIMIT);
    CHECK_STR(err.kind, "limit_exceeded");
    CHECK_INT(batch.count, 0);
    free(body);

    CHECK_CASE("long delivery message is cut");
    outbox__buf_init(&buf, 65536);
    outbox__buf_puts(&buf, "{\"event-data\":{\"event\":\"failed\","
                           "\"delivery-status\":{\"message\":\"");
    for (size_t i = 0; i < 2 * OUTBOX_EVENT_TEXT_MAX; i++)
        outbox__buf_puts(&buf, "m");
    outbox__buf_puts(&buf, "\"}}}");
    body = outbox__buf_take(&buf, NULL);
    CHECK_INT(parse(&batch, &err, body), OUTBOX_EOK);
    if (batch.count == 1)
        CHECK_INT(strlen(batch.events[0].reason), OUTBOX_EVENT_TEXT_MAX - 1);
    outbox_event_batch_free(&batch);
    free(body);
}

/* ------------------------------------------------------------------ */
/* Signature                                                           */
/* ------------------------------------------------------------------ */

typedef struct signature_read_case {
    const char *body;
    outbox_err rc;
    const char *text;
} signature_read_case;

static const signature_read_case signature_read_cases[] = {
    {"{\"signature\":{\"timestamp\":\"1741168800\",\"token\":\"abc\","
     "\"signature\":\"def\"},\"event-data\":{}}",
     OUTBOX_EOK, ""},
    /* A signed body without event-data still reads: the parser, which
     * runs after the check, rejects it. */
    {"{\"signature\":{\"timestamp\":\"1741168800\",\"token\":\"abc\","
     "\"signature\":\"def\"}}",
     OUTBOX_EOK, ""},
    {"{\"signature\":{\"timestamp\":\"1741168800\",\"token\":\"abc\","
     "\"signature\":[\"abc\"]}}",
     OUTBOX_EINVAL, "signature.signature of the Mailgun webhook is missing"},
    {"{\"signature\":{\"timestamp\":1741168800,\"token\":\"abc\","
     "\"signature\":\"def\"}}",
     OUTBOX_EINVAL, "signature.timestamp"},
    {"{\"signature\":{\"timestamp\":\"1741168800\",\"token\":\"\","
     "\"signature\":\"def\"}}",
     OUTBOX_EINVAL, "signature.token"},
    {"{\"signature\":\"abc\"}", OUTBOX_EINVAL, "signature.timestamp"},
    {"{\"event-data\":{\"event\":\"failed\"}}", OUTBOX_EINVAL,
     "signature.timestamp"},
    {"timestamp=1741168800&token=abc&signature=def", OUTBOX_EINVAL,
     "legacy form-encoded"},
    {"{\"signature\":", OUTBOX_EINVAL, "is not valid JSON"},
};

static void test_signature_read(void)
{
    for (size_t i = 0;
         i < sizeof(signature_read_cases) / sizeof(signature_read_cases[0]);
         i++) {
        const signature_read_case *c = &signature_read_cases[i];
        outbox_mailgun_signature signature;
        outbox_error err;

        CHECK_CASE(c->body);
        memset(&err, 0, sizeof(err));
        CHECK_INT(outbox_mailgun_signature_read(&signature, &err, c->body,
                                                strlen(c->body)),
                  c->rc);
        if (c->rc == OUTBOX_EOK) {
            CHECK_STR(signature.timestamp, "1741168800");
            CHECK_STR(signature.token, "abc");
            CHECK_STR(signature.signature, "def");
        } else {
            CHECK_STR(err.kind, "unauthenticated");
            CHECK_CONTAINS(err.text, c->text);
            CHECK_STR(signature.token, "");
        }
    }
}

static void test_signature_field_cap(void)
{
    outbox_mailgun_signature signature;
    outbox_error err;
    char body[1024];
    char token[OUTBOX_MAILGUN_FIELD_MAX + 1];

    CHECK_CASE("token at the field cap fails");
    memset(token, 'a', OUTBOX_MAILGUN_FIELD_MAX);
    token[OUTBOX_MAILGUN_FIELD_MAX] = '\0';
    snprintf(body, sizeof(body),
             "{\"signature\":{\"timestamp\":\"1\",\"token\":\"%s\","
             "\"signature\":\"x\"}}",
             token);
    CHECK_INT(outbox_mailgun_signature_read(&signature, &err, body,
                                            strlen(body)),
              OUTBOX_EINVAL);
    CHECK_CONTAINS(err.text, "signature.token");

    CHECK_CASE("token under the field cap reads");
    token[OUTBOX_MAILGUN_FIELD_MAX - 1] = '\0';
    snprintf(body, sizeof(body),
             "{\"signature\":{\"timestamp\":\"1\",\"token\":\"%s\","
             "\"signature\":\"x\"}}",
             token);
    CHECK_INT(outbox_mailgun_signature_read(&signature, &err, body,
                                            strlen(body)),
              OUTBOX_EOK);
    CHECK_INT(strlen(signature.token), OUTBOX_MAILGUN_FIELD_MAX - 1);
}

static void test_hmac(void)
{
    char timestamp[32];
    char old[32];
    char signature[65];
    char old_signature[65];
    char upper[65];
    char flipped[65];
    outbox_error err;

    snprintf(timestamp, sizeof(timestamp), "%d", NOW);
    snprintf(old, sizeof(old), "%d", NOW - 7200);
    sign(signature, signing_key, timestamp, token_a);
    sign(old_signature, signing_key, old, token_a);

    CHECK_CASE("valid HMAC passes");
    CHECK_INT(outbox_verify_mailgun(&err, signing_key, timestamp, token_a,
                                    signature, NOW, MAX_AGE),
              OUTBOX_EOK);

    CHECK_CASE("uppercase hex passes");
    for (size_t i = 0; i < 65; i++)
        upper[i] = (char)(signature[i] >= 'a' && signature[i] <= 'f'
                              ? signature[i] - 'a' + 'A'
                              : signature[i]);
    CHECK_INT(outbox_verify_mailgun(&err, signing_key, timestamp, token_a,
                                    upper, NOW, MAX_AGE),
              OUTBOX_EOK);

    CHECK_CASE("one flipped hex digit fails");
    memcpy(flipped, signature, sizeof(flipped));
    flipped[10] = flipped[10] == '0' ? '1' : '0';
    memset(&err, 0, sizeof(err));
    CHECK_INT(outbox_verify_mailgun(&err, signing_key, timestamp, token_a,
                                    flipped, NOW, MAX_AGE),
              OUTBOX_EINVAL);
    CHECK_STR(err.kind, "unauthenticated");
    CHECK_CONTAINS(err.text, "does not match");

    CHECK_CASE("other token fails");
    CHECK_INT(outbox_verify_mailgun(&err, signing_key, timestamp, token_b,
                                    signature, NOW, MAX_AGE),
              OUTBOX_EINVAL);
    CHECK_CONTAINS(err.text, "does not match");

    CHECK_CASE("other key fails");
    CHECK_INT(outbox_verify_mailgun(&err, "another-key", timestamp, token_a,
                                    signature, NOW, MAX_AGE),
              OUTBOX_EINVAL);

    CHECK_CASE("old timestamp fails");
    memset(&err, 0, sizeof(err));
    CHECK_INT(outbox_verify_mailgun(&err, signing_key, old, token_a,
                                    old_signature, NOW, MAX_AGE),
              OUTBOX_EINVAL);
    CHECK_STR(err.kind, "unauthenticated");
    CHECK_CONTAINS(err.text, "stale timestamp");

    CHECK_CASE("old timestamp in a wide window passes");
    CHECK_INT(outbox_verify_mailgun(&err, signing_key, old, token_a,
                                    old_signature, NOW, 7200),
              OUTBOX_EOK);

    CHECK_CASE("short signature fails");
    CHECK_INT(outbox_verify_mailgun(&err, signing_key, timestamp, token_a,
                                    "abc", NOW, MAX_AGE),
              OUTBOX_EINVAL);
    CHECK_CONTAINS(err.text, "64 hex digits");

    CHECK_CASE("signature with a non-hex digit fails");
    memcpy(flipped, signature, sizeof(flipped));
    flipped[0] = 'g';
    CHECK_INT(outbox_verify_mailgun(&err, signing_key, timestamp, token_a,
                                    flipped, NOW, MAX_AGE),
              OUTBOX_EINVAL);
    CHECK_CONTAINS(err.text, "64 hex digits");

    CHECK_CASE("missing fields fail");
    CHECK_INT(outbox_verify_mailgun(&err, signing_key, timestamp, NULL,
                                    signature, NOW, MAX_AGE),
              OUTBOX_EINVAL);
    CHECK_CONTAINS(err.text, "no token");
    CHECK_INT(outbox_verify_mailgun(&err, signing_key, NULL, token_a,
                                    signature, NOW, MAX_AGE),
              OUTBOX_EINVAL);
    CHECK_CONTAINS(err.text, "no timestamp");
    CHECK_INT(outbox_verify_mailgun(&err, signing_key, timestamp, token_a,
                                    NULL, NOW, MAX_AGE),
              OUTBOX_EINVAL);

    CHECK_CASE("empty key is a config error");
    memset(&err, 0, sizeof(err));
    CHECK_INT(outbox_verify_mailgun(&err, "", timestamp, token_a, signature,
                                    NOW, MAX_AGE),
              OUTBOX_ECONFIG);
    CHECK_STR(err.kind, "config");
}

/* The same signed request posted twice: the check passes both times, and
 * the token cache rejects the second. */
static void test_replay(void)
{
    char body[2048];
    outbox_mailgun_signature signature;
    outbox_token_cache *cache = NULL;
    outbox_error err;

    CHECK_CASE("replayed request");
    make_failed_body(body, sizeof(body), "permanent", "Zx81kQ2mTBexample01",
                     token_a);
    CHECK_INT(outbox_token_cache_create(&cache, 1000, MAX_AGE), OUTBOX_EOK);
    if (cache == NULL)
        return;
    CHECK_INT(verify(&err, body, NOW), OUTBOX_EOK);
    CHECK_INT(outbox_mailgun_signature_read(&signature, &err, body,
                                            strlen(body)),
              OUTBOX_EOK);
    CHECK(outbox_token_cache_add(cache, signature.token, body, strlen(body),
                                 NOW));

    CHECK_CASE("the same request resent");
    CHECK_INT(verify(&err, body, NOW + 60), OUTBOX_EOK);
    CHECK(outbox_token_cache_add(cache, signature.token, body, strlen(body),
                                 NOW + 60));

    CHECK_CASE("the token replayed with another event");
    make_failed_body(body, sizeof(body), "permanent", "Zx81kQ2mTBexample99",
                     token_a);
    CHECK_INT(verify(&err, body, NOW + 60), OUTBOX_EOK);
    CHECK(!outbox_token_cache_add(cache, signature.token, body, strlen(body),
                                  NOW + 60));
    outbox_token_cache_free(cache);
}

int main(void)
{
    test_permanent_failure();
    test_temporary_failure();
    test_event_types();
    test_fields();
    test_missing_token();
    test_invalid_bodies();
    test_field_caps();
    test_signature_read();
    test_signature_field_cap();
    test_hmac();
    test_replay();
    CHECK_DONE();
}
