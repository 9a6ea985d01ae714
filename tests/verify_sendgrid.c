/*
 * verify_sendgrid.c - runs outbox_verify_sendgrid on a body read from a
 * file, for the test that compares it with SendGrid's own verifier.
 *
 * Usage: verify_sendgrid PUBLIC_KEY_B64 SIGNATURE_B64 TIMESTAMP BODY_FILE
 *                        NOW MAX_AGE
 * Prints "valid" and exits 0, or prints "invalid: " and the error and
 * exits 1. Exits 2 on a usage or file error.
 */
#include <stdio.h>
#include <stdlib.h>

#include "outbox_events.h"

/* The listener's body cap is below this; the test sends far less. */
#define MAX_BODY (16 * 1024 * 1024)

/* Reads the file at path into a malloc'd buffer. */
static char *read_file(const char *path, size_t *size)
{
    FILE *file = fopen(path, "rb");
    char *data = malloc(MAX_BODY);

    *size = 0;
    if (file == NULL || data == NULL) {
        if (file != NULL)
            fclose(file);
        free(data);
        return NULL;
    }
    *size = fread(data, 1, MAX_BODY, file);
    if (ferror(file) || !feof(file)) {
        free(data);
        data = NULL;
    }
    fclose(file);
    return data;
}

int main(int argc, char **argv)
{
    outbox_error err = {{0}, {0}};
    size_t size;
    char *body;
    outbox_err rc;

    if (argc != 7) {
        fprintf(stderr, "usage: verify_sendgrid PUBLIC_KEY_B64 SIGNATURE_B64 "
                        "TIMESTAMP BODY_FILE NOW MAX_AGE\n");
        return 2;
    }
    body = read_file(argv[4], &size);
    if (body == NULL) {
        fprintf(stderr, "verify_sendgrid: cannot read %s\n", argv[4]);
        return 2;
    }
    rc = outbox_verify_sendgrid(&err, argv[1], argv[2], argv[3], body, size,
                                strtoll(argv[5], NULL, 10),
                                strtoll(argv[6], NULL, 10));
    free(body);
    if (rc != OUTBOX_EOK) {
        printf("invalid: %s: %s\n", err.kind, err.text);
        return 1;
    }
    printf("valid\n");
    return 0;
}
