/*
 * test_webhook_endpoints.c - the webhook keys of provider objects: which
 * providers get an endpoint, and one clear error for each mistake.
 */
#include <stdlib.h>

#include "check.h"
#include "webhook.h"

static void endpoints_from_config(void)
{
    static const char text[] =
        "[{\"name\": \"sg\", \"type\": \"sendgrid\", \"api_key\": \"k\","
        "  \"webhook_public_key\": \"MFkw\"},"
        " {\"name\": \"mg\", \"type\": \"mailgun\", \"domain\": \"d\","
        "  \"webhook_signing_key_env\": \"OUTBOX_TEST_MAILGUN_KEY\"},"
        " {\"name\": \"pm\", \"type\": \"postmark\","
        "  \"webhook_insecure_skip_verification\": true,"
        "  \"webhook_allow_from\": [\"3.134.147.250\", \"::1\"]},"
        " {\"name\": \"disk\", \"type\": \"file\", \"folder\": \"x\"}]";
    cJSON *providers = cJSON_Parse(text);
    webhook_endpoints endpoints;
    outbox_error err = {{0}, {0}};

    CHECK_CASE("endpoints for providers with webhook keys");
    setenv("OUTBOX_TEST_MAILGUN_KEY", "signing-key", 1);
    CHECK_INT(webhook_endpoints_load(&endpoints, &err, providers, 600),
              OUTBOX_EOK);
    CHECK_INT(endpoints.count, 3);
    if (endpoints.count == 3) {
        CHECK_STR(endpoints.items[0].path, "/webhooks/sg");
        CHECK_STR(endpoints.items[0].secret, "MFkw");
        CHECK_STR(endpoints.items[1].type, "mailgun");
        CHECK_STR(endpoints.items[1].secret, "signing-key");
        CHECK(endpoints.items[1].tokens != NULL);
        CHECK(endpoints.items[2].insecure);
        CHECK(endpoints.items[2].secret == NULL);
        CHECK_INT(endpoints.items[2].allow_from_count, 2);
        CHECK_STR(endpoints.items[2].allow_from[1], "::1");
    }
    CHECK(webhook_find(&endpoints, "/webhooks/mg") == &endpoints.items[1]);
    CHECK(webhook_find(&endpoints, "/webhooks/disk") == NULL);
    webhook_endpoints_free(&endpoints);
    unsetenv("OUTBOX_TEST_MAILGUN_KEY");
    cJSON_Delete(providers);
}

static void errors(void)
{
    static const struct {
        const char *name;
        const char *text;
        const char *want;
    } cases[] = {
        {"key of another type",
         "[{\"name\": \"sg\", \"type\": \"sendgrid\", "
         "  \"webhook_signing_key\": \"k\"}]",
         "provider \"sg\": unknown key \"webhook_signing_key\" for a "
         "sendgrid webhook"},
        {"type without webhooks",
         "[{\"name\": \"disk\", \"type\": \"file\", "
         "  \"webhook_public_key\": \"k\"}]",
         "provider \"disk\": type file takes no webhook keys"},
        {"secret missing",
         "[{\"name\": \"mg\", \"type\": \"mailgun\", "
         "  \"webhook_signing_key_env\": \"OUTBOX_TEST_UNSET\"}]",
         "provider \"mg\": the webhook needs \"webhook_signing_key\", or "
         "\"webhook_signing_key_env\" naming a set environment variable"},
        {"postmark user missing",
         "[{\"name\": \"pm\", \"type\": \"postmark\", "
         "  \"webhook_password\": \"p\"}]",
         "provider \"pm\": the webhook needs \"webhook_username\""},
        {"allow_from not an address",
         "[{\"name\": \"pm\", \"type\": \"postmark\", "
         "  \"webhook_insecure_skip_verification\": true, "
         "  \"webhook_allow_from\": [\"10.0.0.1\", \"postmark.com\"]}]",
         "provider \"pm\": \"webhook_allow_from\" entry 2 is not an IP "
         "address"},
        {"insecure not a bool",
         "[{\"name\": \"pm\", \"type\": \"postmark\", "
         "  \"webhook_insecure_skip_verification\": \"yes\"}]",
         "provider \"pm\": \"webhook_insecure_skip_verification\" must be "
         "true or false"},
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        cJSON *providers = cJSON_Parse(cases[i].text);
        webhook_endpoints endpoints;
        outbox_error err = {{0}, {0}};

        CHECK_CASE(cases[i].name);
        unsetenv("OUTBOX_TEST_UNSET");
        CHECK_INT(webhook_endpoints_load(&endpoints, &err, providers, 600),
                  OUTBOX_ECONFIG);
        CHECK_STR(err.text, cases[i].want);
        CHECK_INT(endpoints.count, 0);
        cJSON_Delete(providers);
    }
}

int main(void)
{
    endpoints_from_config();
    errors();
    CHECK_DONE();
}
