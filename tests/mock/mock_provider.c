/*
 * mock_provider.c - a scripted HTTP/1.1 server on 127.0.0.1 that imitates
 * an email provider API (SendGrid's v3 mail/send responses) in
 * end-to-end tests and benchmarks.
 *
 * Requests are numbered from 1 in the order their parsing completes, across
 * all connections. Request n takes step n of --script, or the --default step
 * once the script is used up, and is written to --log as one JSON line.
 * Run with --help for the options and the step syntax.
 *
 * One libuv loop serves every connection, and llhttp parses the requests.
 * The parser pauses after each complete request until its response is
 * queued, so pipelined requests get their responses in order even when a
 * step delays one. A connection stops reading while it waits, which also
 * bounds the bytes buffered for it.
 */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <arpa/inet.h>

#include "mock.h"

static const char usage_text[] =
    "usage: mock_provider --port N --log FILE [--host 127.0.0.1]\n"
    "                     [--log-bodies] [--script SPEC] [--default STEP]\n"
    "                     [--port-file FILE] [--responses DIR]\n"
    "\n"
    "  --port N          TCP port on 127.0.0.1; 0 picks a free port\n"
    "  --host HOST       only 127.0.0.1 is accepted\n"
    "  --log FILE        JSON Lines request log, truncated at start\n"
    "  --log-bodies      also log each request body\n"
    "  --script SPEC     comma-separated steps, one per request in order\n"
    "  --default STEP    step for every request after the script "
    "(default 202)\n"
    "  --port-file FILE  file that receives the port number and a newline\n"
    "  --responses DIR   folder of canned responses for the steps @NAME\n"
    "\n"
    "Steps: 200 202 400 401 403 413 429 500 503 503:html close half hang,\n"
    "429:retry-after=S, 429:reset=S (both may be combined), @NAME (the\n"
    "answer in DIR/NAME), STATUS:close and @NAME:close (answer, then\n"
    "close), STATUS:big (a 1 MiB body), STATUS:headers=N (N more\n"
    "headers), and slow=MS:STEP, which responds as STEP after MS ms.\n";

struct options {
    int port;
    const char *log_path;
    const char *script;
    const char *default_step;
    const char *port_file;
    const char *responses_dir;
    bool log_bodies;
};

/* Frees what handle->data points to: the handle itself or its
 * connection. */
static void on_close_free_data(uv_handle_t *handle)
{
    free(handle->data);
}

/* Accepts a connection and closes it at once, so the client sees it end
 * instead of waiting in the listen backlog. */
static void reject_connection(struct server *s)
{
    uv_tcp_t *tcp = malloc(sizeof(*tcp));

    if (tcp == NULL || uv_tcp_init(s->loop, tcp) < 0) {
        fprintf(stderr, "mock_provider: out of memory for a connection\n");
        free(tcp);
        return;
    }
    tcp->data = tcp;
    if (uv_accept((uv_stream_t *)&s->listener, (uv_stream_t *)tcp) == 0)
        s->rejected_connections++;
    uv_close((uv_handle_t *)tcp, on_close_free_data);
}

static void on_connection(uv_stream_t *listener, int status)
{
    struct server *s = listener->data;
    struct conn *c;

    if (status < 0) {
        fprintf(stderr, "mock_provider: accept failed: %s\n",
                uv_strerror(status));
        return;
    }
    if (s->connection_count >= MOCK_MAX_CONNECTIONS) {
        if (s->rejected_connections == 0)
            fprintf(stderr, "mock_provider: %zu connections are open; "
                            "closing new ones until some end\n",
                    MOCK_MAX_CONNECTIONS);
        reject_connection(s);
        return;
    }
    c = calloc(1, sizeof(*c));
    if (c == NULL || uv_tcp_init(s->loop, &c->tcp) < 0) {
        fprintf(stderr, "mock_provider: out of memory for a connection\n");
        free(c);
        reject_connection(s);
        return;
    }
    c->tcp.data = c;
    if (uv_timer_init(s->loop, &c->timer) < 0) {
        uv_close((uv_handle_t *)&c->tcp, on_close_free_data);
        return;
    }

    c->server = s;
    c->next = s->connections;
    if (s->connections != NULL)
        s->connections->prev = c;
    s->connections = c;
    s->connection_count++;
    c->timer.data = c;
    c->open_handles = 2;
    llhttp_init(&c->parser, HTTP_REQUEST, &s->settings);
    c->parser.data = c;

    if (uv_accept(listener, (uv_stream_t *)&c->tcp) < 0) {
        conn_close(c);
        return;
    }
    uv_tcp_nodelay(&c->tcp, 1);
    conn_start_reading(c);
}

/* Closes a handle during a failed start. No connection exists yet, so every
 * open handle is embedded in struct server and needs no close callback. */
static void close_any_handle(uv_handle_t *handle, void *arg)
{
    (void)arg;
    if (!uv_is_closing(handle))
        uv_close(handle, NULL);
}

static void server_stop(struct server *s)
{
    uv_close((uv_handle_t *)&s->listener, NULL);
    uv_close((uv_handle_t *)&s->flush_timer, NULL);
    uv_close((uv_handle_t *)&s->sigterm, NULL);
    uv_close((uv_handle_t *)&s->sigint, NULL);
    uv_close((uv_handle_t *)&s->sigusr1, NULL);
    for (struct conn *c = s->connections; c != NULL; c = c->next)
        conn_close(c);
}

static void on_signal(uv_signal_t *handle, int signum)
{
    struct server *s = handle->data;

    if (signum == SIGUSR1) {
        log_flush(s);
        return;
    }
    server_stop(s);
}

static void on_flush_timer(uv_timer_t *timer)
{
    log_flush(timer->data);
}

/* Writes "PORT\n" to a temporary file and renames it over path, so that a
 * reader never sees a partial file. */
static int write_port_file(const char *path, int port)
{
    size_t size = strlen(path) + 32;
    char *tmp = malloc(size);
    FILE *f;
    int rc = -1;

    if (tmp == NULL) {
        fprintf(stderr, "mock_provider: out of memory\n");
        return -1;
    }
    snprintf(tmp, size, "%s.tmp.%ld", path, (long)getpid());
    f = fopen(tmp, "w");
    if (f == NULL) {
        fprintf(stderr, "mock_provider: creating %s failed: %s\n", tmp,
                strerror(errno));
        goto cleanup;
    }
    if (fprintf(f, "%d\n", port) < 0 || fclose(f) != 0) {
        fprintf(stderr, "mock_provider: writing %s failed: %s\n", tmp,
                strerror(errno));
        unlink(tmp);
        goto cleanup;
    }
    if (rename(tmp, path) != 0) {
        fprintf(stderr, "mock_provider: renaming %s to %s failed: %s\n", tmp,
                path, strerror(errno));
        unlink(tmp);
        goto cleanup;
    }
    rc = 0;

cleanup:
    free(tmp);
    return rc;
}

/* Stores one option that takes a value. Returns -1 after printing an
 * error. */
static int set_option(struct options *opts, const char *name,
                      const char *value)
{
    static const char *const names[] = {"--port", "--host", "--log",
                                        "--script", "--default",
                                        "--port-file", "--responses"};
    bool known = false;
    long port;

    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        known = known || strcmp(name, names[i]) == 0;
    if (!known) {
        fprintf(stderr, "mock_provider: unknown option '%s'\n", name);
        return -1;
    }
    if (value == NULL) {
        fprintf(stderr, "mock_provider: %s: missing value\n", name);
        return -1;
    }

    if (strcmp(name, "--port") == 0) {
        if (parse_number(value, value + strlen(value), 65535, &port) != 0) {
            fprintf(stderr, "mock_provider: --port: invalid port '%s'; "
                            "expected 0 to 65535\n", value);
            return -1;
        }
        opts->port = (int)port;
    } else if (strcmp(name, "--host") == 0) {
        if (strcmp(value, "127.0.0.1") != 0) {
            fprintf(stderr, "mock_provider: --host: invalid host '%s'; "
                            "only 127.0.0.1 is supported\n", value);
            return -1;
        }
    } else if (strcmp(name, "--log") == 0) {
        opts->log_path = value;
    } else if (strcmp(name, "--script") == 0) {
        opts->script = value;
    } else if (strcmp(name, "--default") == 0) {
        opts->default_step = value;
    } else if (strcmp(name, "--responses") == 0) {
        opts->responses_dir = value;
    } else {
        opts->port_file = value;
    }
    return 0;
}

/* Parses the command line into opts. Returns 0, 1 after --help, or -1
 * after printing an error. */
static int parse_options(int argc, char **argv, struct options *opts)
{
    *opts = (struct options){.port = -1, .script = "", .default_step = "202"};
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            fputs(usage_text, stdout);
            return 1;
        }
        if (strcmp(argv[i], "--log-bodies") == 0) {
            opts->log_bodies = true;
            continue;
        }
        if (set_option(opts, argv[i], i + 1 < argc ? argv[i + 1] : NULL) != 0)
            goto usage;
        i++;
    }

    if (opts->port < 0 || opts->log_path == NULL) {
        fprintf(stderr, "mock_provider: --port and --log are required\n");
        goto usage;
    }
    if (strchr(opts->default_step, ',') != NULL) {
        fprintf(stderr, "mock_provider: --default: expected one step, got "
                        "'%s'\n", opts->default_step);
        goto usage;
    }
    return 0;

usage:
    fprintf(stderr, "Run 'mock_provider --help' for the options.\n");
    return -1;
}

/* Parses --script and --default. Returns -1 after printing an error. */
static int server_load_steps(struct server *s, const struct options *opts)
{
    set_responses_dir(opts->responses_dir);
    if (parse_script(opts->script, &s->script, &s->script_len) != 0)
        return -1;
    if (parse_step(opts->default_step, &s->default_step) != 0) {
        fprintf(stderr, "mock_provider: --default: invalid step '%s'\n",
                opts->default_step);
        return -1;
    }
    return 0;
}

/* Opens the log and sets up the parser callbacks. Returns -1 after
 * printing an error. */
static int server_configure(struct server *s, const struct options *opts)
{
    s->log_bodies = opts->log_bodies;
    s->log_path = opts->log_path;
    s->log = fopen(opts->log_path, "w");
    if (s->log == NULL) {
        fprintf(stderr, "mock_provider: opening log %s failed: %s\n",
                opts->log_path, strerror(errno));
        return -1;
    }
    s->log_buffer = malloc(MOCK_LOG_BUFFER_BYTES);
    if (s->log_buffer == NULL ||
        setvbuf(s->log, s->log_buffer, _IOFBF, MOCK_LOG_BUFFER_BYTES) != 0) {
        fprintf(stderr, "mock_provider: out of memory for the log buffer\n");
        return -1;
    }

    llhttp_settings_init(&s->settings);
    s->settings.on_message_begin = on_message_begin;
    s->settings.on_url = on_url;
    s->settings.on_header_field = on_header_field;
    s->settings.on_header_field_complete = on_header_field_complete;
    s->settings.on_header_value = on_header_value;
    s->settings.on_headers_complete = on_headers_complete;
    s->settings.on_body = on_body;
    s->settings.on_message_complete = on_message_complete;
    return 0;
}

/* Binds 127.0.0.1:port and listens, and stores the bound port in *bound.
 * Returns -1 after printing an error. */
static int server_listen(struct server *s, int port, int *bound)
{
    struct sockaddr_in addr;
    struct sockaddr_storage name;
    int name_len = (int)sizeof(name);
    int rc;

    rc = uv_tcp_init(s->loop, &s->listener);
    s->listener.data = s;
    if (rc == 0)
        rc = uv_ip4_addr("127.0.0.1", port, &addr);
    if (rc == 0)
        rc = uv_tcp_bind(&s->listener, (const struct sockaddr *)&addr, 0);
    if (rc == 0)
        rc = uv_listen((uv_stream_t *)&s->listener, SOMAXCONN, on_connection);
    if (rc == 0)
        rc = uv_tcp_getsockname(&s->listener, (struct sockaddr *)&name,
                                &name_len);
    if (rc != 0) {
        fprintf(stderr, "mock_provider: listening on 127.0.0.1:%d failed: "
                        "%s%s\n", port, uv_strerror(rc),
                rc == UV_EADDRINUSE ? "; use another --port, or 0" : "");
        return -1;
    }
    *bound = ntohs(((struct sockaddr_in *)&name)->sin_port);
    return 0;
}

/* Starts the flush timer and the signal handlers. */
static int server_start_handles(struct server *s)
{
    uv_signal_t *signals[] = {&s->sigterm, &s->sigint, &s->sigusr1};
    const int numbers[] = {SIGTERM, SIGINT, SIGUSR1};
    int rc;

    rc = uv_timer_init(s->loop, &s->flush_timer);
    s->flush_timer.data = s;
    if (rc == 0)
        rc = uv_timer_start(&s->flush_timer, on_flush_timer,
                            MOCK_LOG_FLUSH_MS, MOCK_LOG_FLUSH_MS);
    for (size_t i = 0; rc == 0 && i < 3; i++) {
        rc = uv_signal_init(s->loop, signals[i]);
        signals[i]->data = s;
        if (rc == 0)
            rc = uv_signal_start(signals[i], on_signal, numbers[i]);
    }
    if (rc != 0)
        fprintf(stderr, "mock_provider: starting the event loop failed: %s\n",
                uv_strerror(rc));
    return rc;
}

static int server_close(struct server *s)
{
    int rc = 0;

    for (size_t i = 0; i < s->script_len; i++)
        free_step(&s->script[i]);
    free(s->script);
    free_step(&s->default_step);
    if (s->log != NULL) {
        s->log_dirty = true;
        log_flush(s);
        if (fclose(s->log) != 0 || s->log_failed) {
            fprintf(stderr, "mock_provider: writing log %s failed, so it "
                            "may be missing lines\n", s->log_path);
            rc = -1;
        }
    }
    free(s->log_buffer);
    if (s->rejected_connections > 0)
        fprintf(stderr, "mock_provider: closed %" PRIu64 " connections at "
                        "accept, over the limit of %zu or out of memory\n",
                s->rejected_connections, MOCK_MAX_CONNECTIONS);
    free(s);
    return rc;
}

int main(int argc, char **argv)
{
    struct options opts;
    struct server *s;
    int port = 0;
    int rc;

    rc = parse_options(argc, argv, &opts);
    if (rc != 0)
        return rc > 0 ? 0 : 2;

    /* Writes to a client that has gone must fail with EPIPE instead of
     * killing the server. */
    signal(SIGPIPE, SIG_IGN);

    s = calloc(1, sizeof(*s));
    if (s == NULL) {
        fprintf(stderr, "mock_provider: out of memory\n");
        return 1;
    }
    s->loop = uv_default_loop();

    /* An invalid step is a usage error like an invalid option. */
    if (server_load_steps(s, &opts) != 0) {
        rc = 2;
    } else if (server_configure(s, &opts) != 0 ||
               server_listen(s, opts.port, &port) != 0 ||
               (opts.port_file != NULL &&
                write_port_file(opts.port_file, port) != 0) ||
               server_start_handles(s) != 0) {
        rc = 1;
    }
    if (rc != 0) {
        uv_walk(s->loop, close_any_handle, NULL);
        uv_run(s->loop, UV_RUN_DEFAULT);
        uv_loop_close(s->loop);
        server_close(s);
        return rc;
    }

    printf("listening 127.0.0.1:%d\n", port);
    fflush(stdout);
    uv_run(s->loop, UV_RUN_DEFAULT);
    uv_loop_close(s->loop);
    return server_close(s) == 0 ? 0 : 1;
}
