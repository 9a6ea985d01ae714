/*
 * fuzz_config.c - libFuzzer target for outboxd's config parser.
 *
 * The input, up to its first NUL, is the text of a config file. A config
 * that parses must be complete enough to start the daemon: a database
 * path, a non-empty provider list that contains the default provider, and
 * a lease of at least 3 heartbeats. A config that fails must fill the
 * error text. Both must free without leaks.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Prints the problem and aborts, so libFuzzer saves the input. */
static _Noreturn void fail(const char *problem)
{
    fprintf(stderr, "fuzz_config: %s\n", problem);
    abort();
}

/* Returns true if a provider in config->providers is called name. */
static bool has_provider(const outboxd_config *config, const char *name)
{
    const cJSON *item;

    cJSON_ArrayForEach(item, config->providers)
    {
        const cJSON *item_name =
            cJSON_GetObjectItemCaseSensitive(item, "name");

        if (cJSON_IsString(item_name)
            && strcmp(item_name->valuestring, name) == 0)
            return true;
    }
    return false;
}

/* Checks what the daemon relies on after a successful parse. */
static void check_parsed(const outboxd_config *config)
{
    if (config->database == NULL || config->database[0] == '\0')
        fail("parsed config has no database path");
    if (!cJSON_IsArray(config->providers)
        || cJSON_GetArraySize(config->providers) == 0)
        fail("parsed config has no providers");
    if (config->default_provider == NULL
        || !has_provider(config, config->default_provider))
        fail("default provider is not one of the providers");
    if (config->concurrency < 1 || config->claim_batch < 1
        || config->poll_interval_ms < 1 || config->heartbeat_seconds < 1)
        fail("a count or interval is below 1");
    if (config->store.lease_seconds < 3 * (int64_t)config->heartbeat_seconds)
        fail("lease is shorter than 3 heartbeats");
    if (config->synchronous != NULL
        && config->store.synchronous != config->synchronous)
        fail("store options do not point at the parsed synchronous mode");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    outboxd_config config;
    outbox_error err;
    outbox_err rc;
    char *text = malloc(size + 1);

    if (text == NULL)
        return 0;
    memcpy(text, data, size);
    text[size] = '\0';

    memset(&err, 0, sizeof(err));
    rc = outboxd_config_parse(&config, &err, text, "fuzz.json");
    if (rc == OUTBOX_EOK)
        check_parsed(&config);
    else if (err.text[0] == '\0')
        fail("failed parse left the error text empty");

    outboxd_config_free(&config);
    free(text);
    return 0;
}
