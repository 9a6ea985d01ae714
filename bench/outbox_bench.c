/*
 * outbox_bench.c - end-to-end throughput of outboxd.
 *
 * Fills a fresh database with N messages (2 KB text bodies), starts the
 * mock provider on 127.0.0.1, runs `outboxd --drain` against it with the
 * SendGrid provider, and prints messages per second (from the start of
 * outboxd to its exit, with every status written back) and outboxd's peak
 * resident memory. It is a program, not a test: it prints figures and
 * checks only that every row ended `sent` with the provider's message id.
 *
 * usage: outbox_bench [--messages N] [--concurrency C] [--claim-batch B]
 *                     [--outboxd PATH] [--mock PATH] [--dir DIR]
 *                     [--synchronous FULL|NORMAL]
 */
#include <errno.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

typedef struct bench_options {
    long messages;
    long concurrency;
    long claim_batch;
    const char *outboxd;
    const char *mock;
    const char *dir;
    const char *synchronous;
} bench_options;

static double now_seconds(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int run_sql(sqlite3 *db, const char *sql)
{
    char *message = NULL;

    if (sqlite3_exec(db, sql, NULL, NULL, &message) != SQLITE_OK) {
        fprintf(stderr, "outbox_bench: SQL failed: %s\n", message);
        sqlite3_free(message);
        return -1;
    }
    return 0;
}

/* Inserts the messages in transactions of 10,000 rows, as a month-end
 * batch job of an ERP would. */
static int fill(const char *path, long messages)
{
    static const char sql[] =
        "INSERT INTO outbox (sender, recipients, subject, body_text, "
        "reference) VALUES ('Billing <billing@example.com>', "
        "'customer' || ?1 || '@example.org', 'Invoice ' || ?1, ?2, "
        "'INV-' || ?1)";
    char body[2049];
    sqlite3 *db = NULL;
    sqlite3_stmt *stmt = NULL;
    int rc = -1;

    for (size_t i = 0; i < sizeof(body) - 1; i++)
        body[i] = (i % 73 == 72) ? '\n' : (char)('a' + i % 26);
    body[sizeof(body) - 1] = '\0';
    if (sqlite3_open(path, &db) != SQLITE_OK
        || sqlite3_prepare_v2(db, sql, -1, &stmt, NULL) != SQLITE_OK)
        goto cleanup;
    for (long i = 0; i < messages; i++) {
        if (i % 10000 == 0 && run_sql(db, i ? "COMMIT; BEGIN" : "BEGIN"))
            goto cleanup;
        sqlite3_bind_int64(stmt, 1, i + 1);
        sqlite3_bind_text(stmt, 2, body, -1, SQLITE_STATIC);
        if (sqlite3_step(stmt) != SQLITE_DONE)
            goto cleanup;
        sqlite3_reset(stmt);
    }
    rc = run_sql(db, "COMMIT");

cleanup:
    if (rc != 0)
        fprintf(stderr, "outbox_bench: filling %s failed: %s\n", path,
                db ? sqlite3_errmsg(db) : "out of memory");
    sqlite3_finalize(stmt);
    sqlite3_close(db);
    return rc;
}

static long count_sent(const char *path)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *stmt = NULL;
    long sent = -1;

    if (sqlite3_open(path, &db) == SQLITE_OK
        && sqlite3_prepare_v2(db,
                              "SELECT count(*) FROM outbox "
                              "WHERE status = 'sent' "
                              "AND provider_message_id IS NOT NULL",
                              -1, &stmt, NULL)
               == SQLITE_OK
        && sqlite3_step(stmt) == SQLITE_ROW)
        sent = (long)sqlite3_column_int64(stmt, 0);
    sqlite3_finalize(stmt);
    sqlite3_close(db);
    return sent;
}

static pid_t spawn(char *const argv[], const char *log_path)
{
    pid_t pid;

    fflush(stdout);
    pid = fork();

    if (pid == 0) {
        FILE *log = log_path ? freopen(log_path, "w", stderr) : NULL;

        (void)log;
        if (log_path != NULL && freopen("/dev/null", "w", stdout) == NULL)
            _exit(127);
        execv(argv[0], argv);
        fprintf(stderr, "outbox_bench: cannot run %s: %s\n", argv[0],
                strerror(errno));
        _exit(127);
    }
    return pid;
}

static int read_port(const char *path, double timeout)
{
    double deadline = now_seconds() + timeout;
    int port = 0;

    while (now_seconds() < deadline) {
        FILE *file = fopen(path, "r");

        if (file != NULL) {
            int fields = fscanf(file, "%d", &port);

            fclose(file);
            if (fields == 1 && port > 0)
                return port;
        }
        usleep(20000);
    }
    return -1;
}

static int parse_options(bench_options *options, int argc, char **argv)
{
    options->messages = 100000;
    options->concurrency = 64;
    options->claim_batch = 256;
    options->outboxd = "./outboxd";
    options->mock = "./tests/mock_provider";
    options->dir = NULL;
    options->synchronous = "FULL";
    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--messages") == 0)
            options->messages = strtol(argv[i + 1], NULL, 10);
        else if (strcmp(argv[i], "--concurrency") == 0)
            options->concurrency = strtol(argv[i + 1], NULL, 10);
        else if (strcmp(argv[i], "--claim-batch") == 0)
            options->claim_batch = strtol(argv[i + 1], NULL, 10);
        else if (strcmp(argv[i], "--outboxd") == 0)
            options->outboxd = argv[i + 1];
        else if (strcmp(argv[i], "--mock") == 0)
            options->mock = argv[i + 1];
        else if (strcmp(argv[i], "--dir") == 0)
            options->dir = argv[i + 1];
        else if (strcmp(argv[i], "--synchronous") == 0)
            options->synchronous = argv[i + 1];
        else
            return -1;
    }
    if ((argc - 1) % 2 != 0 || options->messages < 1
        || options->concurrency < 1 || options->claim_batch < 1)
        return -1;
    return 0;
}

int main(int argc, char **argv)
{
    bench_options options;
    char dir_template[] = "/tmp/outbox-bench-XXXXXX";
    char database[512], config[512], port_file[512], mock_log[512];
    char daemon_log[512], port_text[16];
    const char *dir;
    struct rusage usage;
    pid_t mock_pid, daemon_pid;
    double started, elapsed;
    int status = 0;
    int port;
    long sent;
    FILE *file;

    if (parse_options(&options, argc, argv) != 0) {
        fprintf(stderr, "usage: outbox_bench [--messages N] [--concurrency C]"
                        " [--claim-batch B] [--outboxd PATH] [--mock PATH]"
                        " [--dir DIR] [--synchronous FULL|NORMAL]\n");
        return 2;
    }
    dir = options.dir ? options.dir : mkdtemp(dir_template);
    if (dir == NULL) {
        perror("outbox_bench: mkdtemp");
        return 1;
    }
    snprintf(database, sizeof(database), "%s/bench.db", dir);
    snprintf(config, sizeof(config), "%s/outboxd.json", dir);
    snprintf(port_file, sizeof(port_file), "%s/mock.port", dir);
    snprintf(mock_log, sizeof(mock_log), "%s/mock.jsonl", dir);
    snprintf(daemon_log, sizeof(daemon_log), "%s/outboxd.log", dir);

    {
        char *mock_argv[] = {(char *)options.mock, "--port", "0",
                             "--port-file", port_file, "--log", mock_log,
                             NULL};

        mock_pid = spawn(mock_argv, "/dev/null");
    }
    port = read_port(port_file, 10);
    if (port < 0) {
        fprintf(stderr, "outbox_bench: mock provider did not start\n");
        kill(mock_pid, SIGTERM);
        return 1;
    }
    snprintf(port_text, sizeof(port_text), "%d", port);
    file = fopen(config, "w");
    if (file == NULL) {
        perror("outbox_bench: config");
        kill(mock_pid, SIGTERM);
        return 1;
    }
    fprintf(file,
            "{\"database\": \"%s\", \"concurrency\": %ld,\n"
            " \"claim_batch\": %ld,\n"
            " \"synchronous\": \"%s\", \"log_level\": \"warn\",\n"
            " \"providers\": [{\"name\": \"sendgrid\", \"type\": "
            "\"sendgrid\",\n"
            "   \"base_url\": \"http://127.0.0.1:%s\", \"api_key\": "
            "\"bench-key\"}]}\n",
            database, options.concurrency, options.claim_batch,
            options.synchronous, port_text);
    fclose(file);

    {
        char *migrate_argv[] = {(char *)options.outboxd, "--config", config,
                                "--migrate", NULL};

        waitpid(spawn(migrate_argv, daemon_log), &status, 0);
    }
    if (status != 0 || fill(database, options.messages) != 0) {
        fprintf(stderr, "outbox_bench: setup failed (see %s)\n", daemon_log);
        kill(mock_pid, SIGTERM);
        return 1;
    }
    printf("filled %ld messages with 2 KB bodies into %s\n", options.messages,
           database);

    started = now_seconds();
    {
        char *drain_argv[] = {(char *)options.outboxd, "--config", config,
                              "--drain", NULL};

        daemon_pid = spawn(drain_argv, daemon_log);
    }
    wait4(daemon_pid, &status, 0, &usage);
    elapsed = now_seconds() - started;
    kill(mock_pid, SIGTERM);
    waitpid(mock_pid, NULL, 0);

    sent = count_sent(database);
    printf("outboxd exit status: %d\n", WIFEXITED(status) ?
                                            WEXITSTATUS(status) : -1);
    printf("messages sent:       %ld of %ld\n", sent, options.messages);
    printf("elapsed:             %.2f s\n", elapsed);
    printf("throughput:          %.0f messages/s (status written back)\n",
           (double)sent / elapsed);
    printf("outboxd peak RSS:    %.1f MiB\n", (double)usage.ru_maxrss / 1024);
    printf("outboxd CPU:         %.2f s user, %.2f s system\n",
           (double)usage.ru_utime.tv_sec
               + (double)usage.ru_utime.tv_usec / 1e6,
           (double)usage.ru_stime.tv_sec
               + (double)usage.ru_stime.tv_usec / 1e6);
    return sent == options.messages && WIFEXITED(status)
                   && WEXITSTATUS(status) == 0
               ? 0
               : 1;
}
