/*
 * provider_file.c - the file provider: writes each message as a complete
 * RFC 5322 .eml file into a folder, so outboxd runs without an account at
 * any email provider.
 *
 * Message 42 becomes "<folder>/42.eml". It is first written as
 * "42-<attempt>.eml.tmp", flushed with fsync and then renamed, so a reader
 * of the folder never finds a partial message, and a second delivery of the
 * same id replaces the first file. Files are created with mode 0600
 * because they contain whole messages.
 *
 * Two envelope lines come before the message headers, as in a local mail
 * spool: X-Outbox-Envelope-From with the sender's address, and
 * X-Outbox-Envelope-To with every to, cc and bcc address. That header is
 * the only place where Bcc recipients appear. This is acceptable because
 * the folder is a local spool for testing, and no recipient reads it.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "internal.h"
#include "mime.h"
#include "provider.h"

/* Maximum length of the folder path. The file names add at most 40
 * characters to it. */
#define FOLDER_MAX 4000

typedef struct file_provider {
    char *folder;
} file_provider;

/*
 * Creates folder and its missing parents, as mkdir -p does. Returns 0, or
 * the errno value of the step that failed.
 */
static int make_folder(const char *folder)
{
    char *path = outbox__strdup(folder);
    struct stat info;
    int error = 0;

    if (path == NULL)
        return ENOMEM;

    /* Each prefix that ends before a '/' is a parent to create first. */
    for (char *p = path + 1; error == 0; p++) {
        char saved = *p;

        if (saved != '/' && saved != '\0')
            continue;
        *p = '\0';
        if (mkdir(path, 0777) != 0 && errno != EEXIST)
            error = errno;
        *p = saved;
        if (saved == '\0')
            break;
    }
    free(path);
    if (error == 0 && stat(folder, &info) != 0)
        error = errno;
    if (error == 0 && !S_ISDIR(info.st_mode))
        error = ENOTDIR;
    return error;
}

static outbox_err file_create(void **state, outbox_error *err,
                              const char *name, const cJSON *config,
                              const outbox_logger *logger)
{
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(config, "folder");
    file_provider *provider;
    char reason[256];
    int error;

    (void)logger;
    *state = NULL;
    if (!cJSON_IsString(item) || item->valuestring[0] == '\0')
        return outbox_error_set(err, OUTBOX_ECONFIG, "config",
                                "provider \"%s\": missing \"folder\" (the "
                                "folder that receives the .eml files)",
                                name);
    if (strlen(item->valuestring) > FOLDER_MAX)
        return outbox_error_set(err, OUTBOX_ECONFIG, "config",
                                "provider \"%s\": \"folder\" is longer "
                                "than %d bytes", name, FOLDER_MAX);
    error = make_folder(item->valuestring);
    if (error != 0) {
        outbox__describe_errno(reason, sizeof(reason), error);
        return outbox_error_set(err, OUTBOX_ECONFIG, "config",
                                "provider \"%s\": cannot create folder "
                                "\"%s\": %s",
                                name, item->valuestring, reason);
    }

    provider = calloc(1, sizeof(*provider));
    if (provider != NULL)
        provider->folder = outbox__strdup(item->valuestring);
    if (provider == NULL || provider->folder == NULL) {
        free(provider);
        return outbox_error_set(err, OUTBOX_ENOMEM, "internal",
                                "provider \"%s\": out of memory", name);
    }
    *state = provider;
    return OUTBOX_EOK;
}

static void file_destroy(void *state)
{
    file_provider *provider = state;

    if (provider == NULL)
        return;
    free(provider->folder);
    free(provider);
}

/*
 * Writes the two envelope header lines that precede the message. The
 * address list folds after a comma, so that no line passes 78 characters,
 * counting the comma that may follow its last address.
 */
static outbox_err write_envelope(outbox_buf *envelope, outbox_error *err,
                                 const outbox_message *message)
{
    const outbox_address_list *lists[] = {&message->to, &message->cc,
                                          &message->bcc};
    size_t column = strlen("X-Outbox-Envelope-To:");
    bool first = true;
    outbox_err rc;

    rc = outbox__buf_printf(envelope,
                            "X-Outbox-Envelope-From: %s\r\n"
                            "X-Outbox-Envelope-To:",
                            message->sender.email);
    for (size_t i = 0; i < 3; i++) {
        for (size_t k = 0; k < lists[i]->count && rc == OUTBOX_EOK; k++) {
            const char *email = lists[i]->items[k].email;
            const char *separator = ", ";

            /* mime.c never writes Bcc addresses, so this line is the
             * first header they reach and the place to check them. */
            if (!outbox_header_value_is_safe(email))
                return outbox_error_set(err, OUTBOX_EINVAL,
                                        "invalid_recipients",
                                        "message %" PRId64 " has a "
                                        "recipient that is missing or holds "
                                        "a line break", message->id);
            if (first) {
                separator = " ";
                column += 1;
            } else if (column + strlen(", ,") + strlen(email) > 78) {
                separator = ",\r\n ";
                column = 1;
            } else {
                column += 2;
            }
            first = false;
            rc = outbox__buf_puts(envelope, separator);
            if (rc == OUTBOX_EOK)
                rc = outbox__buf_puts(envelope, email);
            column += strlen(email);
        }
    }
    if (rc == OUTBOX_EOK)
        rc = outbox__buf_puts(envelope, "\r\n");
    if (rc == OUTBOX_ELIMIT)
        outbox_error_set(err, rc, "message_too_large",
                         "the envelope of message %" PRId64 " is larger "
                         "than %zu MiB", message->id,
                         OUTBOX_MIME_MAX_SIZE >> 20);
    else if (rc != OUTBOX_EOK)
        outbox_error_set(err, rc, "internal",
                         "out of memory while writing message %" PRId64,
                         message->id);
    return rc;
}

/* Writes all n bytes of data to fd. Returns 0 or the errno value. */
static int write_all(int fd, const char *data, size_t n)
{
    while (n > 0) {
        ssize_t written = write(fd, data, n);

        if (written < 0 && errno == EINTR)
            continue;
        if (written < 0)
            return errno;
        data += written;
        n -= (size_t)written;
    }
    return 0;
}

/*
 * Writes envelope and then mime to temporary, flushes it to disk and
 * closes it. Returns 0 or the errno value of the step that failed.
 */
static int write_temporary(const char *temporary, const outbox_buf *envelope,
                           const char *mime, size_t mime_size)
{
    int fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    int error;

    if (fd < 0)
        return errno;
    error = write_all(fd, envelope->data, envelope->size);
    if (error == 0)
        error = write_all(fd, mime, mime_size);
    if (error == 0 && fsync(fd) != 0)
        error = errno;
    if (close(fd) != 0 && error == 0)
        error = errno;
    return error;
}

/*
 * Flushes the folder itself, so that the rename that made the file
 * visible survives a crash. Returns 0 or the errno value.
 */
static int sync_folder(const char *folder)
{
    int fd = open(folder, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    int error = 0;

    if (fd < 0)
        return errno;
    if (fsync(fd) != 0)
        error = errno;
    close(fd);
    return error;
}

/*
 * Stores the file: writes the temporary file, renames it to its final
 * name and flushes the folder. Fills result with RETRY and kind
 * "io_error", naming the path, when a step fails.
 */
static void store_file(outbox_result *result, const file_provider *provider,
                       const outbox_message *message,
                       const outbox_buf *envelope, const char *mime,
                       size_t mime_size)
{
    char temporary[FOLDER_MAX + 64];
    char path[FOLDER_MAX + 64];
    char reason[256];
    int error;

    snprintf(temporary, sizeof(temporary), "%s/%" PRId64 "-%d.eml.tmp",
             provider->folder, message->id, message->attempt);
    snprintf(path, sizeof(path), "%s/%" PRId64 ".eml", provider->folder,
             message->id);
    outbox_result_init(result, OUTBOX_RESULT_RETRY);

    error = write_temporary(temporary, envelope, mime, mime_size);
    if (error != 0) {
        outbox__describe_errno(reason, sizeof(reason), error);
        unlink(temporary);
        outbox_error_set(&result->error, OUTBOX_EIO, "io_error",
                         "cannot write %s: %s", temporary, reason);
        return;
    }
    if (rename(temporary, path) != 0) {
        outbox__describe_errno(reason, sizeof(reason), errno);
        unlink(temporary);
        outbox_error_set(&result->error, OUTBOX_EIO, "io_error",
                         "cannot rename %s to %s: %s", temporary, path,
                         reason);
        return;
    }
    error = sync_folder(provider->folder);
    if (error != 0) {
        outbox__describe_errno(reason, sizeof(reason), error);
        outbox_error_set(&result->error, OUTBOX_EIO, "io_error",
                         "cannot flush folder %s after writing %s: %s",
                         provider->folder, path, reason);
        return;
    }

    outbox_result_init(result, OUTBOX_RESULT_SENT);
    snprintf(result->provider_message_id, sizeof(result->provider_message_id),
             "%" PRId64 ".eml", message->id);
}

static void file_deliver(void *state, outbox_result *result,
                         const outbox_message *message)
{
    const file_provider *provider = state;
    outbox_buf envelope;
    outbox_error error;
    char seed[64];
    char *mime = NULL;
    size_t mime_size = 0;
    outbox_err rc;

    /* Boundaries are safe whatever the seed (see mime.c), so the message's
     * id and attempt serve as the seed and no random source can fail. */
    snprintf(seed, sizeof(seed), "%" PRId64 "-%d", message->id,
             message->attempt);
    memset(&error, 0, sizeof(error));
    outbox__buf_init(&envelope, OUTBOX_MIME_MAX_SIZE);

    rc = outbox__mime_write(&mime, &mime_size, &error, message,
                            (int64_t)time(NULL), seed);
    if (rc == OUTBOX_EOK)
        rc = write_envelope(&envelope, &error, message);

    /* Running out of memory is no fault of the message, so it is retried.
     * Any other failure to build the file is permanent. */
    if (rc != OUTBOX_EOK) {
        outbox_result_init(result, rc == OUTBOX_ENOMEM ? OUTBOX_RESULT_RETRY
                                                       : OUTBOX_RESULT_FAILED);
        result->error = error;
    } else {
        store_file(result, provider, message, &envelope, mime, mime_size);
    }
    free(mime);
    outbox__buf_free(&envelope);
}

static const char *const file_keys[] = {"folder", NULL};

const outbox_provider_ops outbox__file_ops = {
    .type = "file",
    .keys = file_keys,
    .create = file_create,
    .destroy = file_destroy,
    .deliver = file_deliver,
};
