/*
 * sns_verify_tool.c - checks SNS messages with outbox_sns_verify, for the
 * cross-check against the npm package sns-validator
 * (tests/node/sns_crosscheck.py).
 *
 * Usage: sns_verify_tool CERT.pem MESSAGE.json...
 * Prints one line per message: "valid", or "invalid <kind>: <text>". The
 * certificate URL check is left out, because the messages name a server
 * on 127.0.0.1.
 */
#include <stdio.h>
#include <stdlib.h>

#include "outbox_events.h"

/* Files larger than this are not SNS messages. */
#define MAX_FILE (1024 * 1024)

static char *read_file(const char *path, size_t *size)
{
    FILE *file = fopen(path, "rb");
    char *data = malloc(MAX_FILE + 1);

    *size = 0;
    if (file == NULL || data == NULL) {
        if (file != NULL)
            fclose(file);
        free(data);
        return NULL;
    }
    *size = fread(data, 1, MAX_FILE, file);
    data[*size] = '\0';
    fclose(file);
    return data;
}

int main(int argc, char **argv)
{
    char *cert;
    size_t cert_size;

    if (argc < 3) {
        fprintf(stderr, "usage: sns_verify_tool CERT.pem MESSAGE.json...\n");
        return 2;
    }
    cert = read_file(argv[1], &cert_size);
    if (cert == NULL) {
        fprintf(stderr, "sns_verify_tool: cannot read the certificate %s\n",
                argv[1]);
        return 2;
    }
    for (int i = 2; i < argc; i++) {
        size_t size;
        char *body = read_file(argv[i], &size);
        outbox_sns_message message;
        outbox_error err = {{0}, {0}};
        outbox_err rc = OUTBOX_EIO;

        if (body != NULL)
            rc = outbox_sns_parse(&message, &err, body, size);
        if (rc == OUTBOX_EOK) {
            rc = outbox_sns_verify(&err, &message, cert, cert_size);
            outbox_sns_message_free(&message);
        }
        if (rc == OUTBOX_EOK)
            printf("valid\n");
        else
            printf("invalid %s: %s\n", err.kind, err.text);
        free(body);
    }
    free(cert);
    return 0;
}
