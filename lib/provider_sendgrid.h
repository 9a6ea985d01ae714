/*
 * provider_sendgrid.h - the pure parts of the SendGrid provider, exposed so
 * that tests can drive them without a server. Not installed.
 */
#ifndef OUTBOX_PROVIDER_SENDGRID_H
#define OUTBOX_PROVIDER_SENDGRID_H

#include "provider.h"

/*
 * Builds the JSON body of POST /v3/mail/send for message. *json is
 * malloc'd (free it with cJSON_free) and *size is its length without the
 * NUL. When max_bytes is not 0 and the encoded message (bodies, subject,
 * extra headers and base64 attachments) is larger, nothing is built and
 * the call fails with OUTBOX_ELIMIT and kind "message_too_large". Metadata
 * keys that SendGrid's event webhook would overwrite are sent with an
 * "erp_" prefix, and logger gets a warning that names each one.
 */
outbox_err outbox__sendgrid_body(char **json, size_t *size, outbox_error *err,
                                 const outbox_message *message,
                                 const outbox_logger *logger,
                                 size_t max_bytes);

/* Classifies SendGrid's response to one mail send request. */
void outbox__sendgrid_classify(outbox_result *result,
                               const outbox_response *response);

#endif /* OUTBOX_PROVIDER_SENDGRID_H */
