/*
 * log.c - outboxd's log lines: one per event on standard error, as
 * "2026-12-04T19:27:58Z info id=42 ...". A service manager (systemd,
 * a container runtime) collects them.
 */
#include <stdio.h>
#include <time.h>

#include "daemon.h"

void daemon_log_line(void *context, outbox_log_level level,
                     const char *line)
{
    static const char *const names[] = {"error", "warn", "info", "debug"};
    const outboxd_config *config = context;
    char stamp[32];
    time_t now = time(NULL);
    struct tm tm;

    if (config != NULL && level > config->log_level)
        return;
    gmtime_r(&now, &tm);
    strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%SZ", &tm);
    fprintf(stderr, "%s %s %s\n", stamp, names[level - OUTBOX_LOG_ERROR],
            line);
}
