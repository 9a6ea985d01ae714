/*
 * providers.c - the configured providers in the loop: creating them from
 * the config, finding one by name, and pausing one after a
 * misconfiguration or a rate limit.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "daemon.h"
#include "webhook.h"

provider_slot *providers_find(daemon_state *d, const char *name)
{
    for (size_t i = 0; i < d->provider_count; i++) {
        if (strcmp(outbox_provider_name(d->providers[i].provider), name) == 0)
            return &d->providers[i];
    }
    return NULL;
}

const char **providers_paused(daemon_state *d, size_t *count,
                               bool stalled_only)
{
    const char **names = calloc(d->provider_count + 1, sizeof(*names));
    int64_t now = (int64_t)time(NULL);

    *count = 0;
    for (size_t i = 0; names != NULL && i < d->provider_count; i++) {
        provider_slot *slot = &d->providers[i];

        if (slot->paused_until == 0)
            continue;
        if (slot->paused_until <= now) {
            outbox_log(&d->logger, OUTBOX_LOG_INFO,
                       "provider=%s resumed after pause",
                       outbox_provider_name(slot->provider));
            slot->paused_until = 0;
            slot->misconfigured = false;
            continue;
        }
        if (!stalled_only || slot->misconfigured)
            names[(*count)++] = outbox_provider_name(slot->provider);
    }
    return names;
}

void providers_pause(daemon_state *d, provider_slot *slot,
                     const outbox_result *result)
{
    const outbox_retry_policy *policy = &d->config->store.retry;
    int64_t now = (int64_t)time(NULL);
    int64_t delay;
    bool misconfigured = result->kind == OUTBOX_RESULT_MISCONFIGURED;
    char quoted[OUTBOX_LOG_QUOTED_SIZE];

    if (misconfigured) {
        delay = policy->misconfigured_pause;
    } else if (strcmp(result->error.kind, "rate_limited") == 0
               || strcmp(result->error.kind, "quota_exceeded") == 0) {
        /* One second more than asked, as in the retry policy: times here
         * are whole seconds, and the pause must not end early. A spent
         * daily quota pauses the provider as a rate limit does, so the
         * other rows do not each spend a request to learn it. */
        delay = result->retry_after > 0 ? result->retry_after : 0;
        if (delay > policy->max_retry_after)
            delay = policy->max_retry_after;
        delay += 1;
    } else {
        return;
    }
    if (now + delay <= slot->paused_until)
        return;
    slot->paused_until = now + delay;
    slot->misconfigured = slot->misconfigured || misconfigured;
    snprintf(slot->pause_reason, sizeof(slot->pause_reason), "%s",
             result->error.text);
    outbox_log(&d->logger, misconfigured ? OUTBOX_LOG_ERROR : OUTBOX_LOG_WARN,
               "provider=%s paused_for=%llds kind=%s error=%s",
               outbox_provider_name(slot->provider), (long long)delay,
               result->error.kind,
               outbox_log_quote(quoted, sizeof(quoted), result->error.text));
}

/* Checks the providers' webhook keys, which the listener reads again when
 * it starts, so a wrong one stops the daemon like any config error. */
static outbox_err check_webhooks(daemon_state *d, outbox_error *err)
{
    webhook_endpoints endpoints;
    outbox_err rc = webhook_endpoints_load(&endpoints, err,
                                           d->config->providers,
                                           d->config->webhooks.max_age_seconds);

    webhook_endpoints_free(&endpoints);
    return rc;
}

outbox_err providers_create(daemon_state *d, outbox_error *err)
{
    const cJSON *item;
    size_t count = (size_t)cJSON_GetArraySize(d->config->providers);

    d->providers = calloc(count, sizeof(*d->providers));
    d->provider_names = calloc(count, sizeof(*d->provider_names));
    if (d->providers == NULL || d->provider_names == NULL)
        return outbox_error_set(err, OUTBOX_ENOMEM, "config",
                                "out of memory");
    cJSON_ArrayForEach(item, d->config->providers)
    {
        provider_slot *slot = &d->providers[d->provider_count];
        outbox_err rc = outbox_provider_create(&slot->provider, err, item,
                                               &d->logger);

        if (rc != OUTBOX_EOK)
            return rc;
        d->provider_names[d->provider_count++] =
            outbox_provider_name(slot->provider);
        outbox_log(&d->logger, OUTBOX_LOG_INFO,
                   "provider=%s type=%s ready",
                   outbox_provider_name(slot->provider),
                   outbox_provider_type(slot->provider));
    }
    return check_webhooks(d, err);
}

void providers_free(daemon_state *d)
{
    for (size_t i = 0; i < d->provider_count; i++)
        outbox_provider_free(d->providers[i].provider);
    free(d->providers);
    free(d->provider_names);
}

int daemon_check(outboxd_config *config)
{
    daemon_state d;
    outbox_error err;
    int exit_code = 0;

    memset(&d, 0, sizeof(d));
    memset(&err, 0, sizeof(err));
    d.config = config;
    d.logger.fn = daemon_log_line;
    d.logger.context = config;
    d.logger.max_level = (int)config->log_level;
    if (providers_create(&d, &err) != OUTBOX_EOK) {
        outbox_log(&d.logger, OUTBOX_LOG_ERROR, "invalid config: %s",
                   err.text);
        exit_code = 2;
    }
    providers_free(&d);
    return exit_code;
}
