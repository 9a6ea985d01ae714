/*
 * provider_ses_credentials.c - the AWS credentials of an SES provider: an
 * access key id and a secret access key, and optionally a session token,
 * from config or from the standard AWS environment variables.
 *
 * AWS_SESSION_TOKEN applies only when the key id and the secret also come
 * from AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, so that a key from
 * config is never paired with another identity's token. Secrets are
 * overwritten before they are freed and never appear in an error text.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <openssl/crypto.h>

#include "internal.h"
#include "provider_ses.h"

/* Credentials that read_credentials builds. Both strings are secrets. */
typedef struct credentials {
    const char *name;       /* the provider's name, for error texts */
    char *userpwd;
    char *token_header;
} credentials;

void outbox__ses_free_secret(char *secret)
{
    if (secret == NULL)
        return;
    OPENSSL_cleanse(secret, strlen(secret));
    free(secret);
}

/*
 * Reads one credential: from config[key] or the variable named by
 * config[key_env] when config has either, else from the standard
 * variable default_env. *out stays NULL when none gives a value.
 */
static outbox_err read_credential(char **out, bool *from_default,
                                  outbox_error *err, const char *name,
                                  const cJSON *config, const char *key,
                                  const char *default_env)
{
    char key_env[48];
    const char *value;

    *out = NULL;
    *from_default = false;
    snprintf(key_env, sizeof(key_env), "%s_env", key);
    if (cJSON_GetObjectItemCaseSensitive(config, key) != NULL
        || cJSON_GetObjectItemCaseSensitive(config, key_env) != NULL)
        return outbox__provider_secret(out, err, name, config, key,
                                       key_env);
    value = getenv(default_env);
    if (value == NULL || value[0] == '\0')
        return OUTBOX_EOK;
    *from_default = true;
    *out = outbox__strdup(value);
    return *out != NULL ? OUTBOX_EOK : OUTBOX_ENOMEM;
}

/* Returns true if secret is printable ASCII without spaces, and without
 * a colon when no_colon is set. */
static bool secret_is_clean(const char *secret, bool no_colon)
{
    for (const char *p = secret; *p != '\0'; p++) {
        if (*p <= ' ' || *p >= 0x7F || (no_colon && *p == ':'))
            return false;
    }
    return true;
}

static outbox_err missing_credential(outbox_error *err, const char *name,
                                     const char *key, const char *env)
{
    return outbox_error_set(err, OUTBOX_ECONFIG, "config",
                            "provider \"%s\": missing \"%s\" or \"%s_env\", "
                            "and the environment variable %s is not set",
                            name, key, key, env);
}

static outbox_err invalid_credential(outbox_error *err, const char *name,
                                     const char *key)
{
    return outbox_error_set(err, OUTBOX_ECONFIG, "config",
                            "provider \"%s\": the %s contains a space, a "
                            "control character, a non-ASCII character or "
                            "(in the key id) a colon; check the value",
                            name, key);
}

/* Builds "<key id>:<secret>" for CURLOPT_USERPWD. */
static outbox_err join_userpwd(credentials *state, const char *id,
                               const char *secret)
{
    size_t id_length = strlen(id);
    size_t secret_length = strlen(secret);

    state->userpwd = malloc(id_length + secret_length + 2);
    if (state->userpwd == NULL)
        return OUTBOX_ENOMEM;
    memcpy(state->userpwd, id, id_length);
    state->userpwd[id_length] = ':';
    memcpy(state->userpwd + id_length + 1, secret, secret_length + 1);
    return OUTBOX_EOK;
}

static outbox_err read_session_token(credentials *state, outbox_error *err,
                                     const cJSON *config, bool defaults)
{
    static const char prefix[] = "X-Amz-Security-Token: ";
    char *token = NULL;
    bool from_default = false;
    outbox_err rc;

    rc = read_credential(&token, &from_default, err, state->name, config,
                         "session_token", "AWS_SESSION_TOKEN");
    if (rc != OUTBOX_EOK || token == NULL || (from_default && !defaults)) {
        outbox__ses_free_secret(token);
        return rc;
    }
    if (!secret_is_clean(token, false)) {
        outbox__ses_free_secret(token);
        return invalid_credential(err, state->name, "session token");
    }
    state->token_header = malloc(sizeof(prefix) + strlen(token));
    if (state->token_header != NULL)
        sprintf(state->token_header, "%s%s", prefix, token);
    outbox__ses_free_secret(token);
    return state->token_header != NULL ? OUTBOX_EOK : OUTBOX_ENOMEM;
}

static outbox_err read_credentials(credentials *state, outbox_error *err,
                                   const cJSON *config)
{
    char *id = NULL;
    char *secret = NULL;
    bool id_default = false;
    bool secret_default = false;
    outbox_err rc;

    rc = read_credential(&id, &id_default, err, state->name, config,
                         "access_key_id", "AWS_ACCESS_KEY_ID");
    if (rc == OUTBOX_EOK)
        rc = read_credential(&secret, &secret_default, err, state->name,
                             config, "secret_access_key",
                             "AWS_SECRET_ACCESS_KEY");
    if (rc != OUTBOX_EOK)
        goto cleanup;
    if (id == NULL)
        rc = missing_credential(err, state->name, "access_key_id",
                                "AWS_ACCESS_KEY_ID");
    else if (secret == NULL)
        rc = missing_credential(err, state->name, "secret_access_key",
                                "AWS_SECRET_ACCESS_KEY");
    else if (!secret_is_clean(id, true))
        rc = invalid_credential(err, state->name, "access key id");
    else if (!secret_is_clean(secret, false))
        rc = invalid_credential(err, state->name, "secret access key");
    else
        rc = join_userpwd(state, id, secret);
    if (rc == OUTBOX_EOK)
        rc = read_session_token(state, err, config,
                                id_default && secret_default);

cleanup:
    outbox__ses_free_secret(id);
    outbox__ses_free_secret(secret);
    return rc;
}

outbox_err outbox__ses_read_credentials(char **userpwd, char **token_header,
                                        outbox_error *err, const char *name,
                                        const cJSON *config)
{
    credentials state = {name, NULL, NULL};
    outbox_err rc = read_credentials(&state, err, config);

    *userpwd = NULL;
    *token_header = NULL;
    if (rc != OUTBOX_EOK) {
        outbox__ses_free_secret(state.userpwd);
        outbox__ses_free_secret(state.token_header);
        return rc;
    }
    *userpwd = state.userpwd;
    *token_header = state.token_header;
    return OUTBOX_EOK;
}
