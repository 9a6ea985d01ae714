/*
 * provider_mailgun.h - the pure parts of the Mailgun provider, exposed so
 * that tests can drive them without a server. Not installed.
 */
#ifndef OUTBOX_PROVIDER_MAILGUN_H
#define OUTBOX_PROVIDER_MAILGUN_H

#include "provider.h"

/*
 * Mailgun's cap on the o:, h: and v: fields of one message, in total.
 * NOTE: Mailgun documents "16 kB" without saying whether the field names
 * count; outboxd counts names and values against 16384 bytes.
 */
#define OUTBOX_MAILGUN_MAX_OPTION_BYTES 16384

/* Consecutive 404 responses after which the provider counts as
 * misconfigured (a wrong domain, region or base_url) and pauses. */
#define OUTBOX_MAILGUN_NOT_FOUND_PAUSE 3

/*
 * One field of the multipart/form-data request. data points either into
 * the message that the form was built from or into owned, so the form must
 * not outlive that message. File parts ("attachment", "inline") also have
 * a filename and a content type; other fields have neither.
 */
typedef struct outbox_mailgun_part {
    char *name;              /* "to", "h:Reply-To", "v:outbox_id", ... */
    const char *data;
    size_t size;
    const char *filename;    /* NULL for plain fields */
    const char *type;        /* NULL for plain fields */
    char *owned;             /* the value when built here, else NULL */
} outbox_mailgun_part;

/* The fields of one request, in the order they are sent. */
typedef struct outbox_mailgun_form {
    outbox_mailgun_part *parts;
    size_t count;
    size_t capacity;
    size_t option_bytes;     /* names and values of the h: and v: fields */
    size_t message_bytes;    /* every name and value, attachments raw */
} outbox_mailgun_form;

/*
 * Builds the form fields of POST /v3/{domain}/messages for message.
 * Fails with OUTBOX_ELIMIT and kind "limit_exceeded" when the h: and v:
 * fields are over OUTBOX_MAILGUN_MAX_OPTION_BYTES, and with kind
 * "message_too_large" when max_bytes is not 0 and message_bytes is over
 * it. A failure leaves form empty. Free form with
 * outbox__mailgun_form_free, before message.
 */
outbox_err outbox__mailgun_form_build(outbox_mailgun_form *form,
                                      outbox_error *err,
                                      const outbox_message *message,
                                      size_t max_bytes);

/* Frees what form owns and leaves it empty. */
void outbox__mailgun_form_free(outbox_mailgun_form *form);

/*
 * Builds the send URL, {base_url}/v3/{domain}/messages, from the keys
 * "base_url", "region" and "domain" of a provider's config. *out is
 * malloc'd. On a config error, err names the provider and the key.
 */
outbox_err outbox__mailgun_url(char **out, outbox_error *err,
                               const char *name, const struct cJSON *config);

/*
 * Classifies Mailgun's response to one send request. not_found_count is
 * the number of consecutive 404 responses of this provider, this one
 * included: below OUTBOX_MAILGUN_NOT_FOUND_PAUSE a 404 retries, from there
 * on it pauses the provider.
 */
void outbox__mailgun_classify(outbox_result *result,
                              const outbox_response *response,
                              int not_found_count);

#endif /* OUTBOX_PROVIDER_MAILGUN_H */
