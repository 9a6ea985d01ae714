/*
 * provider.c - the provider registry: creating a provider from its config
 * object, the dispatchers of the public API, and reading secrets.
 *
 * A provider handle couples an ops table (provider.h) with the state that
 * the ops' create function built from one config object. The dispatchers
 * here only forward to the ops, so a new provider type needs one ops table
 * and one line in known_ops below. The helpers that read HTTP responses
 * are in provider_http.c.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <openssl/crypto.h>

#include "internal.h"
#include "provider.h"

/* Maximum length of a provider name, which appears in config, log lines
 * and table rows. */
#define PROVIDER_NAME_MAX 63

struct outbox_provider {
    const outbox_provider_ops *ops;
    void *state;
    char *name;
    const char *type;   /* ops->type: static */
};

static const outbox_provider_ops *const known_ops[] = {
    &outbox__sendgrid_ops,
    &outbox__mailgun_ops,
    &outbox__postmark_ops,
    &outbox__ses_ops,
    &outbox__smtp_ops,
    &outbox__file_ops,
};

#define KNOWN_OPS_COUNT (sizeof(known_ops) / sizeof(known_ops[0]))

/* ------------------------------------------------------------------ */
/* Registry                                                            */
/* ------------------------------------------------------------------ */

static bool provider_name_is_valid(const char *name)
{
    size_t length = strlen(name);

    if (length == 0 || length > PROVIDER_NAME_MAX)
        return false;
    for (size_t i = 0; i < length; i++) {
        char c = name[i];

        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
              || (c >= '0' && c <= '9') || c == '_' || c == '-'))
            return false;
    }
    return true;
}

/* Writes the known type names as "sendgrid, file" for error texts. */
static void format_known_types(char *out, size_t size)
{
    size_t used = 0;

    out[0] = '\0';
    for (size_t i = 0; i < KNOWN_OPS_COUNT && used < size; i++) {
        int n = snprintf(out + used, size - used, "%s%s", i ? ", " : "",
                         known_ops[i]->type);

        if (n < 0)
            break;
        used += (size_t)n;
    }
}

static const outbox_provider_ops *find_ops(const char *type)
{
    for (size_t i = 0; i < KNOWN_OPS_COUNT; i++) {
        if (strcmp(known_ops[i]->type, type) == 0)
            return known_ops[i];
    }
    return NULL;
}

/* Reads and checks "name". *name points into config. */
static outbox_err read_provider_name(const char **name, outbox_error *err,
                                     const cJSON *config)
{
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(config, "name");

    if (!cJSON_IsString(item) || item->valuestring[0] == '\0')
        return outbox_error_set(err, OUTBOX_ECONFIG, "config",
                                "provider entry: missing \"name\" (a "
                                "non-empty string)");
    if (!provider_name_is_valid(item->valuestring))
        return outbox_error_set(
            err, OUTBOX_ECONFIG, "config",
            "provider \"%.80s\": invalid \"name\": use 1 to %d letters, "
            "digits, \"_\" or \"-\"",
            item->valuestring, PROVIDER_NAME_MAX);
    *name = item->valuestring;
    return OUTBOX_EOK;
}

static bool provider_key_known(const outbox_provider_ops *ops,
                               const char *key)
{
    /* Keys starting with "webhook_" configure the daemon's webhook
     * listener, which checks them itself. */
    if (strcmp(key, "name") == 0 || strcmp(key, "type") == 0
        || strncmp(key, "webhook_", 8) == 0)
        return true;
    for (size_t i = 0; ops->keys != NULL && ops->keys[i] != NULL; i++) {
        if (strcmp(ops->keys[i], key) == 0)
            return true;
    }
    return false;
}

static outbox_err check_provider_keys(outbox_error *err, const char *name,
                                      const outbox_provider_ops *ops,
                                      const cJSON *config)
{
    const cJSON *item;

    cJSON_ArrayForEach(item, config)
    {
        if (!provider_key_known(ops, item->string))
            return outbox_error_set(err, OUTBOX_ECONFIG, "config",
                                    "provider \"%s\": unknown key \"%.80s\" "
                                    "for type %s",
                                    name, item->string, ops->type);
    }
    return OUTBOX_EOK;
}

/* Finds the ops for the "type" of provider name. */
static outbox_err read_provider_ops(const outbox_provider_ops **ops,
                                    outbox_error *err, const char *name,
                                    const cJSON *config)
{
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(config, "type");
    char known[128];

    format_known_types(known, sizeof(known));
    if (!cJSON_IsString(item))
        return outbox_error_set(err, OUTBOX_ECONFIG, "config",
                                "provider \"%s\": missing \"type\" (known: "
                                "%s)",
                                name, known);
    *ops = find_ops(item->valuestring);
    if (*ops == NULL)
        return outbox_error_set(err, OUTBOX_ECONFIG, "config",
                                "provider \"%s\": unknown type \"%.80s\" "
                                "(known: %s)",
                                name, item->valuestring, known);
    if ((*ops)->create == NULL)
        return outbox_error_set(err, OUTBOX_ECONFIG, "config",
                                "provider \"%s\": type \"%s\" is not "
                                "available in this build",
                                name, (*ops)->type);
    return OUTBOX_EOK;
}

outbox_err outbox_provider_create(outbox_provider **out, outbox_error *err,
                                  const struct cJSON *config,
                                  const outbox_logger *logger)
{
    const outbox_provider_ops *ops = NULL;
    outbox_provider *provider = NULL;
    const char *name = NULL;
    outbox_err rc;

    *out = NULL;
    if (!cJSON_IsObject(config))
        return outbox_error_set(err, OUTBOX_ECONFIG, "config",
                                "provider entry: expected a JSON object");
    rc = read_provider_name(&name, err, config);
    if (rc != OUTBOX_EOK)
        return rc;
    rc = read_provider_ops(&ops, err, name, config);
    if (rc == OUTBOX_EOK)
        rc = check_provider_keys(err, name, ops, config);
    if (rc != OUTBOX_EOK)
        return rc;

    provider = calloc(1, sizeof(*provider));
    if (provider == NULL)
        goto nomem;
    provider->ops = ops;
    provider->type = ops->type;
    provider->name = outbox__strdup(name);
    if (provider->name == NULL)
        goto nomem;

    rc = ops->create(&provider->state, err, provider->name, config, logger);
    if (rc != OUTBOX_EOK) {
        /* create leaves nothing behind on failure, so state stays NULL. */
        provider->state = NULL;
        goto cleanup;
    }
    *out = provider;
    return OUTBOX_EOK;

nomem:
    rc = outbox_error_set(err, OUTBOX_ENOMEM, "internal",
                          "provider \"%s\": out of memory", name);
cleanup:
    outbox_provider_free(provider);
    return rc;
}

outbox_err outbox_provider_create_file(outbox_provider **out,
                                       outbox_error *err, const char *name,
                                       const char *folder)
{
    cJSON *config = cJSON_CreateObject();
    outbox_err rc;

    *out = NULL;
    if (config == NULL)
        goto nomem;

    /* A NULL name or folder leaves its key out, so the same checks as for
     * a config file report it. */
    if (name != NULL && cJSON_AddStringToObject(config, "name", name) == NULL)
        goto nomem;
    if (cJSON_AddStringToObject(config, "type", "file") == NULL)
        goto nomem;
    if (folder != NULL
        && cJSON_AddStringToObject(config, "folder", folder) == NULL)
        goto nomem;

    rc = outbox_provider_create(out, err, config, NULL);
    cJSON_Delete(config);
    return rc;

nomem:
    cJSON_Delete(config);
    return outbox_error_set(err, OUTBOX_ENOMEM, "internal",
                            "file provider: out of memory");
}

void outbox_provider_free(outbox_provider *provider)
{
    if (provider == NULL)
        return;
    if (provider->state != NULL && provider->ops->destroy != NULL)
        provider->ops->destroy(provider->state);
    free(provider->name);
    free(provider);
}

const char *outbox_provider_name(const outbox_provider *provider)
{
    return provider->name;
}

const char *outbox_provider_type(const outbox_provider *provider)
{
    return provider->type;
}

bool outbox_provider_uses_curl(const outbox_provider *provider)
{
    return provider->ops->prepare != NULL;
}

/* Fails a message that names a template when the provider cannot render
 * one, so a provider never gets a message without a body. */
static outbox_err check_template(const outbox_provider *provider,
                                 outbox_error *err,
                                 const outbox_message *message)
{
    if (message->template_name == NULL || provider->ops->renders_templates)
        return OUTBOX_EOK;
    return outbox_error_set(err, OUTBOX_EINVAL, "invalid_template",
                            "template: provider \"%s\" (type %s) does not "
                            "render templates; write body_text or body_html "
                            "instead", provider->name, provider->type);
}

outbox_err outbox_provider_prepare(const outbox_provider *provider,
                                   void **request, outbox_error *err,
                                   CURL *easy, const outbox_message *message)
{
    outbox_err rc;

    *request = NULL;
    rc = check_template(provider, err, message);
    if (rc != OUTBOX_EOK)
        return rc;
    if (provider->ops->prepare == NULL)
        return outbox_error_set(err, OUTBOX_EINVAL, "internal",
                                "provider \"%s\" (type %s) does not send "
                                "through libcurl",
                                provider->name, provider->type);
    return provider->ops->prepare(provider->state, request, err, easy,
                                  message);
}

void outbox_provider_release(const outbox_provider *provider, void *request)
{
    if (request != NULL && provider->ops->release != NULL)
        provider->ops->release(request);
}

void outbox_provider_classify(const outbox_provider *provider,
                              outbox_result *result,
                              const outbox_response *response)
{
    if (provider->ops->classify == NULL) {
        outbox_result_init(result, OUTBOX_RESULT_MISCONFIGURED);
        result->status = response->status;
        outbox_error_set(&result->error, OUTBOX_EINVAL, "internal",
                         "provider \"%s\" (type %s) cannot classify HTTP "
                         "responses",
                         provider->name, provider->type);
        return;
    }
    provider->ops->classify(provider->state, result, response);
}

void outbox_provider_deliver(const outbox_provider *provider,
                             outbox_result *result,
                             const outbox_message *message)
{
    if (provider->ops->deliver == NULL) {
        outbox_result_init(result, OUTBOX_RESULT_MISCONFIGURED);
        outbox_error_set(&result->error, OUTBOX_EINVAL, "internal",
                         "provider \"%s\" (type %s) sends through libcurl, "
                         "not by local delivery",
                         provider->name, provider->type);
        return;
    }
    outbox_result_init(result, OUTBOX_RESULT_FAILED);
    if (check_template(provider, &result->error, message) != OUTBOX_EOK)
        return;
    provider->ops->deliver(provider->state, result, message);
}

/* ------------------------------------------------------------------ */
/* Secrets                                                             */
/* ------------------------------------------------------------------ */

/* Reads the secret from the variable named by config[key_env]. */
static outbox_err read_secret_env(char **out, outbox_error *err,
                                  const char *name, const cJSON *item,
                                  const char *key, const char *key_env)
{
    const char *value;

    if (!cJSON_IsString(item) || item->valuestring[0] == '\0')
        return outbox_error_set(err, OUTBOX_ECONFIG, "config",
                                "provider \"%s\": \"%s\" must name an "
                                "environment variable; or set \"%s\"",
                                name, key_env, key);

    /* The error names the variable but never quotes its value. */
    value = getenv(item->valuestring);
    if (value == NULL || value[0] == '\0')
        return outbox_error_set(err, OUTBOX_ECONFIG, "config",
                                "provider \"%s\": environment variable %.80s "
                                "(from \"%s\") is not set or is empty",
                                name, item->valuestring, key_env);
    *out = outbox__strdup(value);
    if (*out == NULL)
        return outbox_error_set(err, OUTBOX_ENOMEM, "internal",
                                "provider \"%s\": out of memory", name);
    return OUTBOX_EOK;
}

outbox_err outbox__provider_secret(char **out, outbox_error *err,
                                   const char *name,
                                   const struct cJSON *config,
                                   const char *key, const char *key_env)
{
    const cJSON *direct = cJSON_GetObjectItemCaseSensitive(config, key);
    const cJSON *from_env = cJSON_GetObjectItemCaseSensitive(config, key_env);

    *out = NULL;
    if (direct == NULL && from_env == NULL)
        return outbox_error_set(err, OUTBOX_ECONFIG, "config",
                                "provider \"%s\": missing \"%s\" or \"%s\"",
                                name, key, key_env);
    if (direct == NULL)
        return read_secret_env(out, err, name, from_env, key, key_env);

    if (!cJSON_IsString(direct) || direct->valuestring[0] == '\0')
        return outbox_error_set(err, OUTBOX_ECONFIG, "config",
                                "provider \"%s\": \"%s\" must be a non-empty "
                                "string; or set \"%s\" instead",
                                name, key, key_env);
    *out = outbox__strdup(direct->valuestring);
    if (*out == NULL)
        return outbox_error_set(err, OUTBOX_ENOMEM, "internal",
                                "provider \"%s\": out of memory", name);
    return OUTBOX_EOK;
}

/* ------------------------------------------------------------------ */
/* Config helpers                                                      */
/* ------------------------------------------------------------------ */

outbox_err outbox__provider_whole_number(double *out, outbox_error *err,
                                         const char *name,
                                         const cJSON *config,
                                         const char *key, double fallback,
                                         double min, double max)
{
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(config, key);
    double value;

    *out = fallback;
    if (item == NULL)
        return OUTBOX_EOK;
    value = cJSON_IsNumber(item) ? item->valuedouble : -1.0;
    if (!cJSON_IsNumber(item) || value < min || value > max
        || value != (double)(long long)value)
        return outbox_error_set(err, OUTBOX_ECONFIG, "config",
                                "provider \"%s\": invalid \"%s\": expected "
                                "a whole number from %.0f to %.0f",
                                name, key, min, max);
    *out = value;
    return OUTBOX_EOK;
}

bool outbox__starts_with_ignoring_case(const char *text, const char *prefix)
{
    for (; *prefix != '\0'; text++, prefix++) {
        char a = *text;
        char b = *prefix;

        if (a >= 'A' && a <= 'Z')
            a = (char)(a - 'A' + 'a');
        if (b >= 'A' && b <= 'Z')
            b = (char)(b - 'A' + 'a');
        if (a != b)
            return false;
    }
    return true;
}

bool outbox__provider_url_valid(const char *url)
{
    const char *host;

    if (outbox__starts_with_ignoring_case(url, "https://"))
        host = url + 8;
    else if (outbox__starts_with_ignoring_case(url, "http://"))
        host = url + 7;
    else
        return false;
    if (*host == '\0' || *host == '/')
        return false;
    for (const char *p = url; *p != '\0'; p++) {
        if (*p <= ' ' || *p >= 0x7F || *p == '?' || *p == '#')
            return false;
    }
    return true;
}

/* Caps on the numbers of provider config: one day for a timeout, and the
 * largest whole number a JSON double represents exactly. */
#define PROVIDER_MAX_SECONDS 86400
#define PROVIDER_MAX_NUMBER 9007199254740992.0

outbox_err outbox__provider_http_settings(outbox_http_settings *out,
                                          outbox_error *err, const char *name,
                                          const cJSON *config)
{
    double timeout;
    double connect_timeout;
    double max_message;
    outbox_err rc;

    rc = outbox__provider_whole_number(&timeout, err, name, config,
                                       "timeout_seconds",
                                       (double)out->timeout, 1,
                                       PROVIDER_MAX_SECONDS);
    if (rc == OUTBOX_EOK)
        rc = outbox__provider_whole_number(&connect_timeout, err, name,
                                           config, "connect_timeout_seconds",
                                           (double)out->connect_timeout, 1,
                                           PROVIDER_MAX_SECONDS);
    if (rc == OUTBOX_EOK)
        rc = outbox__provider_whole_number(&max_message, err, name, config,
                                           "max_message_bytes",
                                           (double)out->max_message_bytes, 0,
                                           PROVIDER_MAX_NUMBER);
    if (rc != OUTBOX_EOK)
        return rc;
    out->timeout = (long)timeout;
    out->connect_timeout = (long)connect_timeout;
    out->max_message_bytes = (size_t)max_message;
    return OUTBOX_EOK;
}

outbox_err outbox__provider_header_secret(char **out, outbox_error *err,
                                          const char *name,
                                          const cJSON *config,
                                          const char *what)
{
    outbox_err rc = outbox__provider_secret(out, err, name, config,
                                            "api_key", "api_key_env");
    size_t length;

    if (rc != OUTBOX_EOK)
        return rc;
    length = strlen(*out);
    for (size_t i = 0; i < length; i++) {
        if ((*out)[i] <= ' ' || (*out)[i] >= 0x7F) {
            OPENSSL_cleanse(*out, length);
            free(*out);
            *out = NULL;
            return outbox_error_set(err, OUTBOX_ECONFIG, "config",
                                    "provider \"%s\": %s contains a space, "
                                    "a control character or a non-ASCII "
                                    "character; check \"api_key\" or the "
                                    "variable named by \"api_key_env\"",
                                    name, what);
        }
    }
    return OUTBOX_EOK;
}

outbox_err outbox__provider_header_line(char **line, outbox_error *err,
                                        const char *name,
                                        const cJSON *config,
                                        const char *prefix, const char *what)
{
    size_t prefix_length = strlen(prefix);
    char *secret = NULL;
    size_t length;
    outbox_err rc;

    *line = NULL;
    rc = outbox__provider_header_secret(&secret, err, name, config, what);
    if (rc != OUTBOX_EOK)
        return rc;
    length = strlen(secret);
    *line = malloc(prefix_length + length + 1);
    if (*line != NULL) {
        memcpy(*line, prefix, prefix_length);
        memcpy(*line + prefix_length, secret, length + 1);
    } else {
        rc = outbox_error_set(err, OUTBOX_ENOMEM, "config", "out of memory");
    }
    OPENSSL_cleanse(secret, length);
    free(secret);
    return rc;
}
