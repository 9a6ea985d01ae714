/*
 * capture_server.h - a one-request HTTP server on 127.0.0.1 for the
 * provider suites: it keeps the raw request a provider's libcurl handle
 * sent and sends a fixed response, so a test can compare the bytes
 * on the wire with what the provider built.
 */
#ifndef OUTBOX_CAPTURE_SERVER_H
#define OUTBOX_CAPTURE_SERVER_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>

typedef struct capture_server {
    int listener;
    int port;                   /* the bound port on 127.0.0.1 */
    pthread_t thread;
    const char *response;       /* sent once the request is complete */
    char *request;              /* the request as received, NUL-terminated */
    size_t capacity;            /* bytes request may hold */
    size_t size;
} capture_server;

/* Listens on a free port and serves one request on a thread. capacity
 * caps the request kept. Returns false if the server cannot start. */
bool capture_server_start(capture_server *server, const char *response,
                          size_t capacity);

/* Waits for the request to be served and closes the socket; the request
 * stays readable until capture_server_free. */
void capture_server_stop(capture_server *server);

/* Frees the request; accepts a server that was never started. */
void capture_server_free(capture_server *server);

/* Returns the Content-Length of the request head in text, or 0. */
size_t capture_content_length(const char *text);

#endif /* OUTBOX_CAPTURE_SERVER_H */
