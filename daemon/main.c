/*
 * main.c - outboxd's command line.
 */
#include <stdio.h>
#include <string.h>

#include <curl/curl.h>
#include <sqlite3.h>

#include "daemon.h"

static const char usage[] =
    "usage: outboxd [--config FILE] [--drain | --migrate | --check-config]\n"
    "\n"
    "Delivers the rows of the outbox table in an SQLite database.\n"
    "\n"
    "  --config FILE   read settings from the JSON file FILE; without it,\n"
    "                  use ./outbox.db and write mail into ./outbox-mail\n"
    "  --drain         exit once every due message is sent, failed,\n"
    "                  cancelled or held (exit 3 if a provider is paused)\n"
    "  --migrate       create or upgrade the database schema, then exit\n"
    "  --check-config  read the config and the providers, then exit\n"
    "  --help          show this text\n";

int main(int argc, char **argv)
{
    const char *config_path = NULL;
    bool drain = false;
    bool check_only = false;
    bool migrate_only = false;
    outboxd_config config;
    outbox_error err;
    int exit_code;

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--config") == 0 && i + 1 < argc) {
            config_path = argv[++i];
        } else if (strcmp(argv[i], "--drain") == 0) {
            drain = true;
        } else if (strcmp(argv[i], "--migrate") == 0) {
            migrate_only = true;
        } else if (strcmp(argv[i], "--check-config") == 0) {
            check_only = true;
        } else if (strcmp(argv[i], "--help") == 0) {
            fputs(usage, stdout);
            return 0;
        } else {
            fprintf(stderr, "outboxd: unknown argument \"%s\"\n%s", argv[i],
                    usage);
            return 2;
        }
    }

    if ((int)drain + (int)check_only + (int)migrate_only > 1) {
        fprintf(stderr, "outboxd: --drain, --migrate and --check-config "
                        "exclude each other\n%s",
                usage);
        return 2;
    }
    memset(&err, 0, sizeof(err));
    if (outboxd_config_load(&config, &err, config_path) != OUTBOX_EOK) {
        fprintf(stderr, "outboxd: %s\n", err.text);
        outboxd_config_free(&config);
        return 2;
    }
    /* SQLite counts every allocation under a global mutex for
     * sqlite3_status(), which outboxd never reads. The setting applies to
     * the whole process and only before SQLite is first used. */
    (void)sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        fprintf(stderr, "outboxd: libcurl initialisation failed\n");
        outboxd_config_free(&config);
        return 1;
    }
    if (check_only)
        exit_code = daemon_check(&config);
    else if (migrate_only)
        exit_code = daemon_migrate(&config);
    else
        exit_code = daemon_run(&config, drain);
    curl_global_cleanup();
    outboxd_config_free(&config);
    return exit_code;
}
