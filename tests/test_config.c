/*
 * test_config.c - outboxd's config file: defaults, values, and one clear
 * error for each kind of mistake.
 */
#include "check.h"
#include "config.h"

static void defaults(void)
{
    outboxd_config config;
    outbox_error err;

    CHECK_CASE("no config file gives the defaults");
    CHECK_INT(outboxd_config_load(&config, &err, NULL), OUTBOX_EOK);
    CHECK_STR(config.database, "outbox.db");
    CHECK_STR(config.default_provider, "file");
    CHECK_INT(config.concurrency, 64);
    CHECK_INT(config.store.lease_seconds, 120);
    CHECK_STR(config.store.synchronous, "FULL");
    CHECK_INT(cJSON_GetArraySize(config.providers), 1);
    outboxd_config_free(&config);
}

static void values(void)
{
    static const char text[] =
        "{\"database\": \"/var/lib/erp/outbox.db\", \"concurrency\": 8,"
        " \"default_provider\": \"sg\", \"synchronous\": \"NORMAL\","
        " \"log_level\": \"debug\", \"retry_unknown_outcome\": true,"
        " \"retry\": {\"max_attempts\": 3, \"jitter\": 0, "
        "             \"max_age_hours\": 2},"
        " \"providers\": [{\"name\": \"sg\", \"type\": \"sendgrid\"},"
        "                {\"name\": \"disk\", \"type\": \"file\"}]}";
    outboxd_config config;
    outbox_error err;

    CHECK_CASE("values are read");
    CHECK_INT(outboxd_config_parse(&config, &err, text, "test.json"),
              OUTBOX_EOK);
    CHECK_STR(config.database, "/var/lib/erp/outbox.db");
    CHECK_INT(config.concurrency, 8);
    CHECK_STR(config.default_provider, "sg");
    CHECK_STR(config.store.synchronous, "NORMAL");
    CHECK_INT(config.log_level, OUTBOX_LOG_DEBUG);
    CHECK(config.store.retry_unknown);
    CHECK_INT(config.store.retry.max_attempts, 3);
    CHECK_INT(config.store.retry.max_age, 7200);
    CHECK(config.store.retry.jitter == 0);
    outboxd_config_free(&config);
}

static void errors(void)
{
    static const struct {
        const char *name;
        const char *text;
        const char *want;
    } cases[] = {
        {"not JSON", "{\"database\": ", "not a JSON object"},
        {"not an object", "[1, 2]", "not a JSON object"},
        {"empty file", " \n", "the file is empty"},
        {"unknown key", "{\"databse\": \"x.db\"}", "unknown key \"databse\""},
        {"unknown retry key", "{\"retry\": {\"max_tries\": 3}}",
         "unknown key \"retry.max_tries\""},
        {"concurrency zero", "{\"concurrency\": 0}",
         "\"concurrency\" must be a whole number from 1 to 4096"},
        {"concurrency text", "{\"concurrency\": \"8\"}",
         "\"concurrency\" must be a whole number"},
        {"huge number", "{\"concurrency\": 1e300}",
         "\"concurrency\" must be a whole number"},
        {"not a number", "{\"retry\": {\"max_attempts\": -1e999}}",
         "\"retry.max_attempts\" must be a whole number"},
        {"fraction", "{\"heartbeat_seconds\": 1.5}",
         "\"heartbeat_seconds\" must be a whole number"},
        {"empty database", "{\"database\": \"\"}",
         "\"database\" must be a non-empty string"},
        {"lease too short", "{\"lease_seconds\": 10, \"heartbeat_seconds\": 5}",
         "\"lease_seconds\" (10) must be at least 3 times"},
        {"bad log level", "{\"log_level\": \"verbose\"}", "\"log_level\" must be"},
        {"bad bool", "{\"retry_unknown_outcome\": 1}",
         "\"retry_unknown_outcome\" must be true or false"},
        {"bad jitter", "{\"retry\": {\"jitter\": 2}}", "\"retry.jitter\""},
        {"providers not a list", "{\"providers\": {}}",
         "\"providers\" must be a non-empty list"},
        {"empty providers", "{\"providers\": []}",
         "\"providers\" must be a non-empty list"},
        {"provider without name", "{\"providers\": [{\"type\": \"file\"}]}",
         "provider 1 must be an object with a string \"name\""},
        {"two providers one name",
         "{\"default_provider\": \"a\", \"providers\": [{\"name\": \"a\"}, "
         "{\"name\": \"a\"}]}",
         "two providers are named \"a\""},
        {"default missing with two",
         "{\"providers\": [{\"name\": \"a\"}, {\"name\": \"b\"}]}",
         "\"default_provider\" is required"},
        {"default not configured",
         "{\"default_provider\": \"c\", \"providers\": [{\"name\": \"a\"}]}",
         "\"default_provider\" \"c\" is not one of"},
        {"webhooks without port", "{\"webhooks\": {\"listen\": \"::1\"}}",
         "\"webhooks.port\" is missing"},
        {"unknown webhooks key", "{\"webhooks\": {\"port\": 1, \"adress\": 1}}",
         "unknown key \"webhooks.adress\""},
        {"webhooks port too big", "{\"webhooks\": {\"port\": 70000}}",
         "\"webhooks.port\" must be a whole number from 0 to 65535"},
        {"webhooks body cap too small",
         "{\"webhooks\": {\"port\": 1, \"max_body_bytes\": 10}}",
         "\"webhooks.max_body_bytes\" must be a whole number"},
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        outboxd_config config;
        outbox_error err;

        CHECK_CASE(cases[i].name);
        memset(&err, 0, sizeof(err));
        CHECK_INT(outboxd_config_parse(&config, &err, cases[i].text,
                                       "bad.json"),
                  OUTBOX_ECONFIG);
        CHECK_CONTAINS(err.text, "bad.json: ");
        CHECK_CONTAINS(err.text, cases[i].want);
        outboxd_config_free(&config);
    }
}

static void webhooks(void)
{
    static const char text[] =
        "{\"webhooks\": {\"port\": 8025, \"max_connections\": 8}}";
    outboxd_config config;
    outbox_error err;

    CHECK_CASE("webhooks: defaults and values");
    CHECK_INT(outboxd_config_parse(&config, &err, text, "test.json"),
              OUTBOX_EOK);
    CHECK(config.webhooks.enabled);
    CHECK_STR(config.webhooks.listen, "127.0.0.1");
    CHECK_INT(config.webhooks.port, 8025);
    CHECK_INT(config.webhooks.max_connections, 8);
    CHECK_INT(config.webhooks.max_body_bytes, 5 << 20);
    CHECK_INT(config.webhooks.read_timeout_seconds, 10);
    CHECK_INT(config.webhooks.max_age_seconds, 600);
    outboxd_config_free(&config);

    CHECK_CASE("webhooks: off without the object");
    CHECK_INT(outboxd_config_parse(&config, &err, "{}", "test.json"),
              OUTBOX_EOK);
    CHECK(!config.webhooks.enabled);
    outboxd_config_free(&config);
}

static void missing_file(void)
{
    outboxd_config config;
    outbox_error err;

    CHECK_CASE("a missing file names the path and the reason");
    CHECK_INT(outboxd_config_load(&config, &err, "/nonexistent/outboxd.json"),
              OUTBOX_ECONFIG);
    CHECK_CONTAINS(err.text, "/nonexistent/outboxd.json: cannot read config "
                             "file: No such file or directory");
    outboxd_config_free(&config);
}

int main(void)
{
    defaults();
    values();
    errors();
    webhooks();
    missing_file();
    CHECK_DONE();
}
