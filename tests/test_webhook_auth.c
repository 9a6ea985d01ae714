/*
 * test_webhook_auth.c - the request checks that several providers share:
 * basic auth credentials (Postmark) and the token cache that rejects a
 * replayed request (Mailgun).
 */
#include <stdlib.h>

#include "check.h"
#include "events_internal.h"

#define NOW 1741168800

/* Returns "Basic " and the base64 of credentials, in one of 8 static
 * buffers used in turn, so a table can hold several results. */
static const char *basic(const char *credentials)
{
    static char headers[8][512];
    static size_t next;
    char *header = headers[next++ % 8];
    char *encoded = outbox__base64((const unsigned char *)credentials,
                                   strlen(credentials), NULL);

    snprintf(header, sizeof(headers[0]), "Basic %s", encoded ? encoded : "");
    free(encoded);
    return header;
}

typedef struct basic_case {
    const char *name;
    const char *authorization;
    outbox_err rc;
    const char *text;
} basic_case;

static void test_basic_auth(void)
{
    const basic_case cases[] = {
        {"right credentials", basic("webhook:s3cret:with:colons"), OUTBOX_EOK,
         ""},
        {"lowercase scheme", "basic d2ViaG9vazpzM2NyZXQ6d2l0aDpjb2xvbnM=",
         OUTBOX_EOK, ""},
        {"wrong password", basic("webhook:s3cret:with:colon"), OUTBOX_EINVAL,
         "wrong basic auth username or password"},
        {"wrong username", basic("Webhook:s3cret:with:colons"), OUTBOX_EINVAL,
         "wrong basic auth"},
        {"no colon", basic("webhooks3cret:with:colons"), OUTBOX_EINVAL,
         "wrong basic auth"},
        {"empty credentials", "Basic ", OUTBOX_EINVAL, "wrong basic auth"},
        {"no header", NULL, OUTBOX_EINVAL, "no Authorization header"},
        {"bearer scheme", "Bearer d2ViaG9vazpzM2NyZXQ=", OUTBOX_EINVAL,
         "does not use the Basic scheme"},
        {"short header", "Bas", OUTBOX_EINVAL, "Basic scheme"},
        {"not base64", "Basic !!!!", OUTBOX_EINVAL, "not valid base64"},
        {"two spaces after scheme",
         "Basic  d2ViaG9vazpzM2NyZXQ6d2l0aDpjb2xvbnM=", OUTBOX_EOK, ""},
        {"space inside base64", "Basic d2ViaG9v azpzM2NyZXQ6d2l0aDpjb2xvbnM=",
         OUTBOX_EINVAL, "the Basic auth value is not valid base64"},
        {"base64 without padding", "Basic d2ViaG9vazpzM2NyZXQ6d2l0aDpjb2xvbnM",
         OUTBOX_EINVAL, "not valid base64"},
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        outbox_error err;

        CHECK_CASE(cases[i].name);
        memset(&err, 0, sizeof(err));
        CHECK_INT(outbox_verify_basic_auth(&err, cases[i].authorization,
                                           "webhook", "s3cret:with:colons"),
                  cases[i].rc);
        if (cases[i].rc != OUTBOX_EOK) {
            CHECK_STR(err.kind, "unauthenticated");
            CHECK_CONTAINS(err.text, cases[i].text);
            CHECK(strstr(err.text, "s3cret") == NULL);
        }
    }
}

static void test_basic_auth_config(void)
{
    outbox_error err;

    CHECK_CASE("username with a colon");
    memset(&err, 0, sizeof(err));
    CHECK_INT(outbox_verify_basic_auth(&err, basic("a:b:c"), "a:b", "c"),
              OUTBOX_ECONFIG);
    CHECK_STR(err.kind, "config");

    CHECK_CASE("empty password");
    CHECK_INT(outbox_verify_basic_auth(&err, basic("a:"), "a", ""),
              OUTBOX_ECONFIG);

    CHECK_CASE("no username");
    CHECK_INT(outbox_verify_basic_auth(&err, basic(":b"), NULL, "b"),
              OUTBOX_ECONFIG);
}

/* Offers token with a body no earlier request had, as a replay has. */
static bool add_request(outbox_token_cache *cache, const char *token,
                        int64_t now)
{
    static unsigned long requests;
    char body[32];
    int length = snprintf(body, sizeof(body), "request %lu", ++requests);

    return outbox_token_cache_add(cache, token, body, (size_t)length, now);
}

static void test_token_cache_resend(void)
{
    static const char body[] = "{\"event-data\":{\"id\":\"ev-1\"}}";
    static const char other[] = "{\"event-data\":{\"id\":\"ev-2\"}}";
    outbox_token_cache *cache = NULL;

    CHECK_CASE("token cache takes a resend, not a replay");
    CHECK_INT(outbox_token_cache_create(&cache, 100, 600), OUTBOX_EOK);
    if (cache == NULL)
        return;
    CHECK(outbox_token_cache_add(cache, "token-1", body, strlen(body), NOW));
    CHECK(outbox_token_cache_add(cache, "token-1", body, strlen(body),
                                 NOW + 60));
    CHECK(!outbox_token_cache_add(cache, "token-1", other, strlen(other),
                                  NOW + 60));
    CHECK(!outbox_token_cache_add(cache, "token-1", body, strlen(body) - 1,
                                  NOW + 60));
    CHECK(outbox_token_cache_add(cache, "token-2", other, strlen(other),
                                 NOW + 61));
    outbox_token_cache_free(cache);
}

static void test_token_cache_replay_and_age(void)
{
    outbox_token_cache *cache = NULL;

    CHECK_CASE("token cache replay and age");
    CHECK_INT(outbox_token_cache_create(&cache, 100, 600), OUTBOX_EOK);
    if (cache == NULL)
        return;
    CHECK(add_request(cache, "token-1", NOW));
    CHECK(!add_request(cache, "token-1", NOW));
    CHECK(add_request(cache, "token-2", NOW + 1));
    CHECK(!add_request(cache, "token-1", NOW + 600));
    CHECK(add_request(cache, "token-1", NOW + 601));
    CHECK(!add_request(cache, "token-2", NOW + 601));
    CHECK(add_request(cache, "token-2", NOW + 602));
    CHECK(add_request(cache, "", NOW + 602));
    CHECK(!add_request(cache, "", NOW + 602));
    CHECK(!add_request(cache, NULL, NOW + 602));
    outbox_token_cache_free(cache);
}

static void test_token_cache_full(void)
{
    outbox_token_cache *cache = NULL;
    char token[32];

    CHECK_CASE("token cache drops the oldest");
    CHECK_INT(outbox_token_cache_create(&cache, 3, 600), OUTBOX_EOK);
    if (cache == NULL)
        return;
    CHECK(add_request(cache, "a", NOW));
    CHECK(add_request(cache, "b", NOW));
    CHECK(add_request(cache, "c", NOW));
    CHECK(!add_request(cache, "a", NOW));
    CHECK(add_request(cache, "d", NOW));
    CHECK(!add_request(cache, "b", NOW));
    CHECK(!add_request(cache, "c", NOW));
    CHECK(!add_request(cache, "d", NOW));
    CHECK(add_request(cache, "a", NOW));
    outbox_token_cache_free(cache);

    /* Many tokens through a cache of 1000: the last 1000 are replays and
     * the ones before are forgotten. */
    CHECK_CASE("token cache of 1000");
    CHECK_INT(outbox_token_cache_create(&cache, 1000, 600), OUTBOX_EOK);
    if (cache == NULL)
        return;
    for (int i = 0; i < 5000; i++) {
        snprintf(token, sizeof(token), "token-%d", i);
        if (!add_request(cache, token, NOW + i / 100))
            CHECK_FAIL("%s was taken for a replay", token);
    }
    for (int i = 4000; i < 5000; i++) {
        snprintf(token, sizeof(token), "token-%d", i);
        if (add_request(cache, token, NOW + 50))
            CHECK_FAIL("%s was not found", token);
    }
    snprintf(token, sizeof(token), "token-%d", 3999);
    CHECK(add_request(cache, token, NOW + 50));
    outbox_token_cache_free(cache);
}

static void test_token_cache_create(void)
{
    outbox_token_cache *cache = (outbox_token_cache *)&cache;

    CHECK_CASE("token cache create rejects bad sizes");
    CHECK_INT(outbox_token_cache_create(&cache, 0, 600), OUTBOX_EINVAL);
    CHECK(cache == NULL);
    CHECK_INT(outbox_token_cache_create(&cache, 10, -1), OUTBOX_EINVAL);
    CHECK_INT(outbox_token_cache_create(&cache, (size_t)1 << 40, 600),
              OUTBOX_EINVAL);
    outbox_token_cache_free(NULL);
}

int main(void)
{
    test_basic_auth();
    test_basic_auth_config();
    test_token_cache_resend();
    test_token_cache_replay_and_age();
    test_token_cache_full();
    test_token_cache_create();
    CHECK_DONE();
}
