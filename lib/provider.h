/*
 * provider.h - the interface every provider implements. Not installed.
 *
 * A provider uses neither SQLite nor libuv. A network provider sets up a
 * libcurl easy handle from a message (prepare) and turns the response into
 * an outbox_result (classify). A local provider delivers in one blocking
 * call (deliver). Each provider file keeps its pure parts (request body,
 * response classification) callable on their own, so tests can drive them
 * with tables and no server.
 */
#ifndef OUTBOX_PROVIDER_H
#define OUTBOX_PROVIDER_H

#include "outbox.h"

typedef struct outbox_provider_ops {
    const char *type;

    /* Every key the provider's config object may have, besides "name" and
     * "type", ending with NULL. Any other key is a config error, so a
     * misspelled "base_url" cannot fall back to the production URL. */
    const char *const *keys;

    /* True if prepare or deliver handles a message's template; for the
     * others the registry fails such messages before prepare runs. */
    bool renders_templates;

    /* Reads the provider's keys from config; name is already checked. */
    outbox_err (*create)(void **state, outbox_error *err, const char *name,
                         const struct cJSON *config,
                         const outbox_logger *logger);
    void (*destroy)(void *state);

    /* Network providers set these three; local ones leave them NULL. */
    outbox_err (*prepare)(void *state, void **request, outbox_error *err,
                          CURL *easy, const outbox_message *message);
    void (*release)(void *request);
    void (*classify)(void *state, outbox_result *result,
                     const outbox_response *response);

    /* Local providers set this one. */
    void (*deliver)(void *state, outbox_result *result,
                    const outbox_message *message);
} outbox_provider_ops;

extern const outbox_provider_ops outbox__sendgrid_ops;
extern const outbox_provider_ops outbox__mailgun_ops;
extern const outbox_provider_ops outbox__ses_ops;
extern const outbox_provider_ops outbox__file_ops;
extern const outbox_provider_ops outbox__postmark_ops;
extern const outbox_provider_ops outbox__smtp_ops;

/*
 * Reads a provider's secret: config[key] if present, else the environment
 * variable named by config[key_env]. *out is malloc'd. Fails with an error
 * naming the provider and both keys when neither gives a non-empty value.
 */
outbox_err outbox__provider_secret(char **out, outbox_error *err,
                                   const char *name,
                                   const struct cJSON *config,
                                   const char *key, const char *key_env);

/*
 * Classifies what every HTTP provider treats alike: a transfer that got no
 * response (retry, kind "network" or "timeout"), 429 (retry, kind
 * "rate_limited", honouring Retry-After) and 5xx (retry, kind
 * "provider_unavailable"). Returns true if it filled result.
 */
bool outbox__classify_common(outbox_result *result,
                             const outbox_response *response);

/*
 * Reads config[key] as a whole number in [min, max] into *out, or fallback
 * when the key is absent. Fails with an error naming the provider, the key
 * and the range.
 */
outbox_err outbox__provider_whole_number(double *out, outbox_error *err,
                                         const char *name,
                                         const struct cJSON *config,
                                         const char *key, double fallback,
                                         double min, double max);

/* The settings that every HTTP provider reads the same way. */
typedef struct outbox_http_settings {
    long timeout;               /* timeout_seconds */
    long connect_timeout;       /* connect_timeout_seconds */
    size_t max_message_bytes;   /* max_message_bytes */
} outbox_http_settings;

/*
 * Reads timeout_seconds and connect_timeout_seconds (1 s to 1 day) and
 * max_message_bytes into *out; *out starts as the provider's defaults.
 */
outbox_err outbox__provider_http_settings(outbox_http_settings *out,
                                          outbox_error *err, const char *name,
                                          const struct cJSON *config);

/*
 * Reads the secret as outbox__provider_secret does, and fails unless it is
 * printable ASCII without spaces, so that it cannot end a header line.
 * what names the secret in the error ("the API key").
 */
outbox_err outbox__provider_header_secret(char **out, outbox_error *err,
                                          const char *name,
                                          const struct cJSON *config,
                                          const char *what);

/*
 * Reads the secret as outbox__provider_header_secret does and returns in
 * *line the header line prefix followed by the secret ("Authorization:
 * Bearer <key>"), malloc'd. The secret's own copy is wiped.
 */
outbox_err outbox__provider_header_line(char **line, outbox_error *err,
                                        const char *name,
                                        const struct cJSON *config,
                                        const char *prefix, const char *what);

/* True if url is http(s)://host... (scheme in any case) in printable
 * ASCII. A query or a fragment is rejected because it would end up before
 * the provider's path. */
bool outbox__provider_url_valid(const char *url);

/* True if text starts with prefix, compared without regard to ASCII
 * case. */
bool outbox__starts_with_ignoring_case(const char *text, const char *prefix);

/* Copies up to 1 KB of a response body into text, for last_error. */
void outbox__body_excerpt(char *text, size_t size,
                          const outbox_response *response);

#endif /* OUTBOX_PROVIDER_H */
