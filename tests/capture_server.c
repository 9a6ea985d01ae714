/*
 * capture_server.c - the one-request HTTP server of capture_server.h.
 */
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "capture_server.h"

size_t capture_content_length(const char *text)
{
    const char *p = strstr(text, "Content-Length:");

    return p != NULL ? (size_t)strtoul(p + 15, NULL, 10) : 0;
}

/* True once the head and as many body bytes as it announces arrived. */
static bool request_complete(const capture_server *server)
{
    const char *end = strstr(server->request, "\r\n\r\n");

    return end != NULL
           && server->size >= (size_t)(end + 4 - server->request)
                                  + capture_content_length(server->request);
}

/* Accepts one connection, reads one request and sends the response. */
static void *serve_one_request(void *context)
{
    capture_server *server = context;
    struct pollfd ready = {server->listener, POLLIN, 0};
    int client;

    if (poll(&ready, 1, 10000) != 1)
        return NULL;
    client = accept(server->listener, NULL, NULL);
    if (client < 0)
        return NULL;
    while (server->size < server->capacity) {
        ssize_t n = recv(client, server->request + server->size,
                         server->capacity - server->size, 0);

        if (n <= 0)
            break;
        server->size += (size_t)n;
        server->request[server->size] = '\0';
        if (request_complete(server))
            break;
    }
    if (send(client, server->response, strlen(server->response), 0) < 0)
        server->size = 0;
    close(client);
    return NULL;
}

bool capture_server_start(capture_server *server, const char *response,
                          size_t capacity)
{
    struct sockaddr_in address;
    socklen_t length = sizeof(address);

    memset(server, 0, sizeof(*server));
    server->listener = -1;
    server->response = response;
    server->capacity = capacity;
    server->request = calloc(capacity + 1, 1);
    if (server->request == NULL)
        return false;
    memset(&address, 0, sizeof(address));
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    server->listener = socket(AF_INET, SOCK_STREAM, 0);
    if (server->listener < 0
        || bind(server->listener, (struct sockaddr *)&address,
                sizeof(address)) != 0
        || listen(server->listener, 1) != 0
        || getsockname(server->listener, (struct sockaddr *)&address,
                       &length) != 0)
        return false;
    server->port = ntohs(address.sin_port);
    return pthread_create(&server->thread, NULL, serve_one_request, server)
           == 0;
}

void capture_server_stop(capture_server *server)
{
    pthread_join(server->thread, NULL);
    close(server->listener);
    server->listener = -1;
}

void capture_server_free(capture_server *server)
{
    if (server->request == NULL)
        return;     /* never started */
    if (server->listener >= 0)
        close(server->listener);
    free(server->request);
    server->request = NULL;
}
