/*
 * internal.h - helpers shared by the modules of liboutbox. Not installed.
 *
 * Names here carry the outbox__ prefix: they are internal and may change.
 */
#ifndef OUTBOX_INTERNAL_H
#define OUTBOX_INTERNAL_H

#include <stdarg.h>

#include "outbox.h"

/* Copies s with malloc; returns NULL for NULL s or when out of memory. */
char *outbox__strdup(const char *s);

/* Copies the first n bytes of s and adds a NUL; NULL when out of memory. */
char *outbox__strndup(const char *s, size_t n);

/* ASCII-only case-insensitive comparison, independent of the locale. */
int outbox__strcasecmp(const char *a, const char *b);

/* The same, of at most the first n bytes. */
int outbox__strncasecmp(const char *a, const char *b, size_t n);

/* Returns true if the n bytes at s are valid UTF-8 and hold no NUL. */
bool outbox__utf8_valid(const char *s, size_t n);

/*
 * A growable byte buffer with a cap. Appending past the cap fails with
 * OUTBOX_ELIMIT and leaves the content as it was; data is always
 * NUL-terminated once anything was appended.
 */
typedef struct outbox_buf {
    char *data;
    size_t size;
    size_t capacity;
    size_t cap;
} outbox_buf;

void outbox__buf_init(outbox_buf *buf, size_t cap);
void outbox__buf_free(outbox_buf *buf);
outbox_err outbox__buf_append(outbox_buf *buf, const void *data, size_t n);
outbox_err outbox__buf_puts(outbox_buf *buf, const char *s);
outbox_err outbox__buf_printf(outbox_buf *buf, const char *format, ...)
    __attribute__((format(printf, 2, 3)));

/* Hands the content over to the caller (who frees it) and empties buf. */
char *outbox__buf_take(outbox_buf *buf, size_t *size);

/*
 * Base64 of n bytes (RFC 4648, no line breaks). Returns a malloc'd
 * NUL-terminated string, or NULL when out of memory or n is too large.
 */
char *outbox__base64(const unsigned char *data, size_t n, size_t *out_size);

/* Size of the base64 text of n bytes, without line breaks. */
size_t outbox__base64_size(size_t n);

/* Fills out with n random bytes from OpenSSL; false if that fails. */
bool outbox__random_bytes(unsigned char *out, size_t n);

/* Writes the text for errno value error into out, whatever the thread. */
void outbox__describe_errno(char *out, size_t size, int error);

/*
 * Converts a UTC calendar time to unix seconds. month runs from 1 to 12,
 * and second may be 60 (a leap second). Returns false for a field out of
 * range, 30 February included.
 */
bool outbox__utc_seconds(int64_t *out, int year, int month, int day,
                         int hour, int minute, int second);

#endif /* OUTBOX_INTERNAL_H */
