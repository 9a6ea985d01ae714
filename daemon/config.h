/*
 * config.h - outboxd's configuration file.
 */
#ifndef OUTBOXD_CONFIG_H
#define OUTBOXD_CONFIG_H

#include <cjson/cJSON.h>

#include "outbox.h"

/* The webhook listener; enabled only by a "webhooks" object in config. */
typedef struct outboxd_webhooks {
    bool enabled;
    char *listen;                /* address to bind; 127.0.0.1 by default */
    int port;                    /* 0 picks a free port, which is logged */
    int max_body_bytes;          /* a larger request gets 413 */
    int max_connections;         /* further connections are closed at once */
    int read_timeout_seconds;    /* a request must arrive within this */
    int max_age_seconds;         /* signed timestamps older than this fail */
} outboxd_webhooks;

typedef struct outboxd_config {
    char *database;              /* path of the SQLite file */
    char *default_provider;      /* name used for rows whose provider is NULL */
    cJSON *providers;            /* the "providers" array, owned */
    int concurrency;             /* deliveries in flight at once */
    int claim_batch;             /* rows claimed per transaction, at most */
    int poll_interval_ms;        /* how often an idle daemon looks for rows */
    int heartbeat_seconds;       /* heartbeat, lease renewal and upkeep */
    int shutdown_seconds;        /* how long a stop waits for deliveries */
    outbox_log_level log_level;
    outbox_store_options store;  /* owner is filled in by the daemon */
    char *synchronous;           /* storage for store.synchronous */
    outboxd_webhooks webhooks;
} outboxd_config;

/*
 * Reads the config file at path, or the defaults when path is NULL: the
 * database outbox.db in the current folder and one provider "file" writing
 * into ./outbox-mail. On failure err->text is one line naming the file,
 * the key and the problem.
 */
outbox_err outboxd_config_load(outboxd_config *config, outbox_error *err,
                               const char *path);

/* Parses config text; path is used only in error messages. */
outbox_err outboxd_config_parse(outboxd_config *config, outbox_error *err,
                                const char *text, const char *path);

void outboxd_config_free(outboxd_config *config);

#endif /* OUTBOXD_CONFIG_H */
