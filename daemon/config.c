/*
 * config.c - reads outboxd's JSON configuration.
 *
 * Every key is checked before the daemon starts: an unknown key, a wrong
 * type or a value out of range stops it with one line naming the key, so it
 * never runs half-configured. Provider objects are checked by liboutbox
 * when the daemon creates the providers.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"

/* A config file larger than this is certainly not a config file. */
#define CONFIG_MAX_BYTES (1024 * 1024)

typedef struct int_key {
    const char *name;
    int *value;
    int min;
    int max;
} int_key;

static const char *const known_keys[] = {
    "database", "default_provider", "providers", "concurrency",
    "claim_batch", "poll_interval_ms", "heartbeat_seconds",
    "lease_seconds", "shutdown_seconds", "busy_timeout_ms", "synchronous",
    "retry_unknown_outcome", "log_level", "retry", "webhooks", NULL};

static const char *const webhook_keys[] = {
    "listen", "port", "max_body_bytes", "max_connections",
    "read_timeout_seconds", "max_age_seconds", NULL};

static const char *const retry_keys[] = {
    "base_delay_seconds", "max_delay_seconds", "jitter", "max_attempts",
    "max_age_hours", "max_retry_after_seconds",
    "misconfigured_pause_seconds", NULL};

static bool key_known(const char *const *keys, const char *name)
{
    for (size_t i = 0; keys[i] != NULL; i++) {
        if (strcmp(keys[i], name) == 0)
            return true;
    }
    return false;
}

static outbox_err check_keys(outbox_error *err, const char *path,
                             const cJSON *object, const char *const *keys,
                             const char *where)
{
    const cJSON *item;

    cJSON_ArrayForEach(item, object)
    {
        if (!key_known(keys, item->string))
            return outbox_error_set(err, OUTBOX_ECONFIG, "config",
                                    "%s: unknown key \"%s%s\"", path, where,
                                    item->string);
    }
    return OUTBOX_EOK;
}

static outbox_err read_int(outbox_error *err, const char *path,
                           const cJSON *object, const int_key *key,
                           const char *where)
{
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(object, key->name);
    double value;

    if (item == NULL)
        return OUTBOX_EOK;
    value = item->valuedouble;

    /* The range check comes before the cast: casting a double outside the
     * range of long long is undefined behaviour. */
    if (!cJSON_IsNumber(item) || !(value >= key->min && value <= key->max)
        || value != (double)(long long)value)
        return outbox_error_set(err, OUTBOX_ECONFIG, "config",
                                "%s: \"%s%s\" must be a whole number from "
                                "%d to %d",
                                path, where, key->name, key->min, key->max);
    *key->value = (int)value;
    return OUTBOX_EOK;
}

static outbox_err read_string(outbox_error *err, const char *path,
                              const cJSON *object, const char *name,
                              char **value)
{
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(object, name);
    char *copy;

    if (item == NULL)
        return OUTBOX_EOK;
    if (!cJSON_IsString(item) || item->valuestring[0] == '\0')
        return outbox_error_set(err, OUTBOX_ECONFIG, "config",
                                "%s: \"%s\" must be a non-empty string", path,
                                name);
    copy = strdup(item->valuestring);
    if (copy == NULL)
        return outbox_error_set(err, OUTBOX_ENOMEM, "config",
                                "out of memory");
    free(*value);
    *value = copy;
    return OUTBOX_EOK;
}

static outbox_err read_retry(outboxd_config *config, outbox_error *err,
                             const char *path, const cJSON *retry)
{
    outbox_retry_policy *policy = &config->store.retry;
    int base = (int)policy->base_delay;
    int max_delay = (int)policy->max_delay;
    int attempts = policy->max_attempts;
    int age_hours = (int)(policy->max_age / 3600);
    int retry_after = (int)policy->max_retry_after;
    int pause = (int)policy->misconfigured_pause;
    const int_key keys[] = {
        {"base_delay_seconds", &base, 1, 86400},
        {"max_delay_seconds", &max_delay, 1, 7 * 86400},
        {"max_attempts", &attempts, 1, 1000},
        {"max_age_hours", &age_hours, 1, 24 * 365},
        {"max_retry_after_seconds", &retry_after, 1, 7 * 86400},
        {"misconfigured_pause_seconds", &pause, 1, 86400},
    };
    const cJSON *jitter = cJSON_GetObjectItemCaseSensitive(retry, "jitter");
    outbox_err rc;

    if (!cJSON_IsObject(retry))
        return outbox_error_set(err, OUTBOX_ECONFIG, "config",
                                "%s: \"retry\" must be an object", path);
    rc = check_keys(err, path, retry, retry_keys, "retry.");
    for (size_t i = 0; rc == OUTBOX_EOK && i < sizeof(keys) / sizeof(keys[0]);
         i++)
        rc = read_int(err, path, retry, &keys[i], "retry.");
    if (rc != OUTBOX_EOK)
        return rc;
    if (jitter != NULL) {
        if (!cJSON_IsNumber(jitter) || jitter->valuedouble < 0
            || jitter->valuedouble > 0.9)
            return outbox_error_set(err, OUTBOX_ECONFIG, "config",
                                    "%s: \"retry.jitter\" must be a number "
                                    "from 0 to 0.9",
                                    path);
        policy->jitter = jitter->valuedouble;
    }
    policy->base_delay = base;
    policy->max_delay = max_delay;
    policy->max_attempts = attempts;
    policy->max_age = (int64_t)age_hours * 3600;
    policy->max_retry_after = retry_after;
    policy->misconfigured_pause = pause;
    return OUTBOX_EOK;
}

static outbox_err read_log_level(outboxd_config *config, outbox_error *err,
                                 const char *path, const cJSON *root)
{
    static const char *const names[] = {"error", "warn", "info", "debug"};
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(root, "log_level");

    if (item == NULL)
        return OUTBOX_EOK;
    for (size_t i = 0; cJSON_IsString(item) && i < 4; i++) {
        if (strcmp(item->valuestring, names[i]) == 0) {
            config->log_level = (outbox_log_level)(OUTBOX_LOG_ERROR + (int)i);
            return OUTBOX_EOK;
        }
    }
    return outbox_error_set(err, OUTBOX_ECONFIG, "config",
                            "%s: \"log_level\" must be \"error\", \"warn\", "
                            "\"info\" or \"debug\"",
                            path);
}

static void set_defaults(outboxd_config *config)
{
    memset(config, 0, sizeof(*config));
    outbox_store_options_default(&config->store);
    config->concurrency = 64;
    config->claim_batch = 256;
    config->poll_interval_ms = 10;
    config->heartbeat_seconds = 5;
    config->shutdown_seconds = 30;
    config->log_level = OUTBOX_LOG_INFO;
    config->webhooks.max_body_bytes = 5 << 20;
    config->webhooks.max_connections = 64;
    config->webhooks.read_timeout_seconds = 10;
    config->webhooks.max_age_seconds = 600;
}

static outbox_err read_providers(outboxd_config *config, outbox_error *err,
                                 const char *path, cJSON *root)
{
    cJSON *providers = cJSON_DetachItemFromObjectCaseSensitive(root,
                                                               "providers");
    const cJSON *item;
    size_t count = 0;

    if (providers == NULL) {
        providers = cJSON_Parse("[{\"name\":\"file\",\"type\":\"file\","
                                "\"folder\":\"outbox-mail\"}]");
        if (providers == NULL)
            return outbox_error_set(err, OUTBOX_ENOMEM, "config",
                                    "out of memory");
    }
    config->providers = providers;
    if (!cJSON_IsArray(providers) || cJSON_GetArraySize(providers) == 0)
        return outbox_error_set(err, OUTBOX_ECONFIG, "config",
                                "%s: \"providers\" must be a non-empty list "
                                "of provider objects",
                                path);
    cJSON_ArrayForEach(item, providers)
    {
        const cJSON *name = cJSON_GetObjectItemCaseSensitive(item, "name");
        const cJSON *other;

        count++;
        if (!cJSON_IsObject(item) || !cJSON_IsString(name))
            return outbox_error_set(err, OUTBOX_ECONFIG, "config",
                                    "%s: provider %zu must be an object with "
                                    "a string \"name\"",
                                    path, count);
        for (other = providers->child; other != item; other = other->next) {
            const cJSON *other_name =
                cJSON_GetObjectItemCaseSensitive(other, "name");

            if (strcmp(other_name->valuestring, name->valuestring) == 0)
                return outbox_error_set(err, OUTBOX_ECONFIG, "config",
                                        "%s: two providers are named \"%s\"",
                                        path, name->valuestring);
        }
    }
    return OUTBOX_EOK;
}

static outbox_err check_default_provider(outboxd_config *config,
                                         outbox_error *err, const char *path)
{
    const cJSON *item;

    if (config->default_provider == NULL) {
        if (cJSON_GetArraySize(config->providers) > 1)
            return outbox_error_set(err, OUTBOX_ECONFIG, "config",
                                    "%s: \"default_provider\" is required "
                                    "when more than one provider is "
                                    "configured",
                                    path);
        item = cJSON_GetObjectItemCaseSensitive(config->providers->child,
                                                "name");
        config->default_provider = strdup(item->valuestring);
        if (config->default_provider == NULL)
            return outbox_error_set(err, OUTBOX_ENOMEM, "config",
                                    "out of memory");
        return OUTBOX_EOK;
    }
    cJSON_ArrayForEach(item, config->providers)
    {
        const cJSON *name = cJSON_GetObjectItemCaseSensitive(item, "name");

        if (strcmp(name->valuestring, config->default_provider) == 0)
            return OUTBOX_EOK;
    }
    return outbox_error_set(err, OUTBOX_ECONFIG, "config",
                            "%s: \"default_provider\" \"%s\" is not one of "
                            "the configured providers",
                            path, config->default_provider);
}

static outbox_err read_numbers(outboxd_config *config, outbox_error *err,
                               const char *path, const cJSON *root)
{
    int lease = (int)config->store.lease_seconds;
    const int_key keys[] = {
        {"concurrency", &config->concurrency, 1, 4096},
        {"claim_batch", &config->claim_batch, 1, 4096},
        {"poll_interval_ms", &config->poll_interval_ms, 1, 60000},
        {"heartbeat_seconds", &config->heartbeat_seconds, 1, 3600},
        {"lease_seconds", &lease, 3, 86400},
        {"shutdown_seconds", &config->shutdown_seconds, 0, 3600},
        {"busy_timeout_ms", &config->store.busy_timeout_ms, 10, 600000},
    };
    outbox_err rc = OUTBOX_EOK;

    for (size_t i = 0; rc == OUTBOX_EOK && i < sizeof(keys) / sizeof(keys[0]);
         i++)
        rc = read_int(err, path, root, &keys[i], "");
    if (rc != OUTBOX_EOK)
        return rc;
    config->store.lease_seconds = lease;

    /* The lease is renewed at every heartbeat; it must survive a missed
     * renewal or two, or a busy daemon would lose its own rows. */
    if (config->store.lease_seconds < 3 * config->heartbeat_seconds)
        return outbox_error_set(err, OUTBOX_ECONFIG, "config",
                                "%s: \"lease_seconds\" (%d) must be at least "
                                "3 times \"heartbeat_seconds\" (%d)",
                                path, lease, config->heartbeat_seconds);
    return OUTBOX_EOK;
}

/* Reads the "webhooks" object. Binding to anything but a loopback
 * address is a choice the config states, never a default. */
static outbox_err read_webhooks(outboxd_config *config, outbox_error *err,
                                const char *path, const cJSON *object)
{
    outboxd_webhooks *webhooks = &config->webhooks;
    const int_key keys[] = {
        {"port", &webhooks->port, 0, 65535},
        {"max_body_bytes", &webhooks->max_body_bytes, 1024, 64 << 20},
        {"max_connections", &webhooks->max_connections, 1, 10000},
        {"read_timeout_seconds", &webhooks->read_timeout_seconds, 1, 300},
        {"max_age_seconds", &webhooks->max_age_seconds, 10, 86400},
    };
    outbox_err rc;

    if (!cJSON_IsObject(object))
        return outbox_error_set(err, OUTBOX_ECONFIG, "config",
                                "%s: \"webhooks\" must be an object", path);
    rc = check_keys(err, path, object, webhook_keys, "webhooks.");
    if (rc == OUTBOX_EOK
        && cJSON_GetObjectItemCaseSensitive(object, "port") == NULL)
        rc = outbox_error_set(err, OUTBOX_ECONFIG, "config",
                              "%s: \"webhooks.port\" is missing; set the "
                              "port the providers post to", path);
    for (size_t i = 0; rc == OUTBOX_EOK && i < sizeof(keys) / sizeof(keys[0]);
         i++)
        rc = read_int(err, path, object, &keys[i], "webhooks.");
    if (rc == OUTBOX_EOK)
        rc = read_string(err, path, object, "listen", &webhooks->listen);
    if (rc == OUTBOX_EOK && webhooks->listen == NULL) {
        webhooks->listen = strdup("127.0.0.1");
        if (webhooks->listen == NULL)
            rc = outbox_error_set(err, OUTBOX_ENOMEM, "config",
                                  "out of memory");
    }
    webhooks->enabled = rc == OUTBOX_EOK;
    return rc;
}

outbox_err outboxd_config_parse(outboxd_config *config, outbox_error *err,
                                const char *text, const char *path)
{
    cJSON *root = cJSON_Parse(text);
    const cJSON *item;
    outbox_err rc;

    set_defaults(config);
    if (text[strspn(text, " \t\r\n")] == '\0') {
        cJSON_Delete(root);
        return outbox_error_set(err, OUTBOX_ECONFIG, "config",
                                "%s: the file is empty; write a JSON object "
                                "such as {\"database\": \"outbox.db\"}",
                                path);
    }
    if (!cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return outbox_error_set(err, OUTBOX_ECONFIG, "config",
                                "%s: not a JSON object (invalid JSON near "
                                "\"%.20s\")",
                                path,
                                cJSON_GetErrorPtr() ? cJSON_GetErrorPtr()
                                                    : "");
    }
    rc = check_keys(err, path, root, known_keys, "");
    if (rc == OUTBOX_EOK)
        rc = read_string(err, path, root, "database", &config->database);
    if (rc == OUTBOX_EOK)
        rc = read_string(err, path, root, "default_provider",
                         &config->default_provider);
    if (rc == OUTBOX_EOK)
        rc = read_string(err, path, root, "synchronous",
                         &config->synchronous);
    if (rc == OUTBOX_EOK)
        rc = read_numbers(config, err, path, root);
    if (rc == OUTBOX_EOK)
        rc = read_log_level(config, err, path, root);
    item = cJSON_GetObjectItemCaseSensitive(root, "retry_unknown_outcome");
    if (rc == OUTBOX_EOK && item != NULL) {
        if (!cJSON_IsBool(item))
            rc = outbox_error_set(err, OUTBOX_ECONFIG, "config",
                                  "%s: \"retry_unknown_outcome\" must be "
                                  "true or false",
                                  path);
        config->store.retry_unknown = cJSON_IsTrue(item);
    }
    item = cJSON_GetObjectItemCaseSensitive(root, "retry");
    if (rc == OUTBOX_EOK && item != NULL)
        rc = read_retry(config, err, path, item);
    item = cJSON_GetObjectItemCaseSensitive(root, "webhooks");
    if (rc == OUTBOX_EOK && item != NULL)
        rc = read_webhooks(config, err, path, item);
    if (rc == OUTBOX_EOK)
        rc = read_providers(config, err, path, root);
    if (rc == OUTBOX_EOK)
        rc = check_default_provider(config, err, path);
    if (rc == OUTBOX_EOK && config->database == NULL) {
        config->database = strdup("outbox.db");
        if (config->database == NULL)
            rc = outbox_error_set(err, OUTBOX_ENOMEM, "config",
                                  "out of memory");
    }
    if (config->synchronous != NULL)
        config->store.synchronous = config->synchronous;
    cJSON_Delete(root);
    return rc;
}

static outbox_err read_file(char **text, outbox_error *err, const char *path)
{
    FILE *file = fopen(path, "rb");
    size_t size = 0;
    char *buffer;

    *text = NULL;
    if (file == NULL)
        return outbox_error_set(err, OUTBOX_ECONFIG, "config",
                                "%s: cannot read config file: %s", path,
                                strerror(errno));
    buffer = malloc(CONFIG_MAX_BYTES + 1);
    if (buffer == NULL) {
        fclose(file);
        return outbox_error_set(err, OUTBOX_ENOMEM, "config",
                                "out of memory");
    }
    size = fread(buffer, 1, CONFIG_MAX_BYTES + 1, file);
    fclose(file);
    if (size > CONFIG_MAX_BYTES) {
        free(buffer);
        return outbox_error_set(err, OUTBOX_ECONFIG, "config",
                                "%s: config file is larger than %d bytes",
                                path, CONFIG_MAX_BYTES);
    }
    buffer[size] = '\0';
    *text = buffer;
    return OUTBOX_EOK;
}

outbox_err outboxd_config_load(outboxd_config *config, outbox_error *err,
                               const char *path)
{
    char *text = NULL;
    outbox_err rc;

    if (path == NULL)
        return outboxd_config_parse(config, err, "{}", "(defaults)");
    rc = read_file(&text, err, path);
    if (rc != OUTBOX_EOK) {
        set_defaults(config);
        return rc;
    }
    rc = outboxd_config_parse(config, err, text, path);
    free(text);
    return rc;
}

void outboxd_config_free(outboxd_config *config)
{
    free(config->database);
    free(config->default_provider);
    free(config->synchronous);
    free(config->webhooks.listen);
    cJSON_Delete(config->providers);
    memset(config, 0, sizeof(*config));
}
