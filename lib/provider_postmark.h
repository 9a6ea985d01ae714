/*
 * provider_postmark.h - the pure parts of the Postmark provider, exposed so
 * that tests can drive them without a server. Not installed.
 */
#ifndef OUTBOX_PROVIDER_POSTMARK_H
#define OUTBOX_PROVIDER_POSTMARK_H

#include "provider.h"

/* Postmark's cap on recipients of one message: To, Cc and Bcc together.
 * NOTE: Postmark documents 50 recipients per message. Whether it counts
 * each field or all three together is not confirmed, so the stricter
 * reading applies. */
#define OUTBOX_POSTMARK_MAX_RECIPIENTS 50

/*
 * Builds the JSON body of POST /email for message, sent into stream (the
 * MessageStream). A message with a template gets the body of POST
 * /email/withTemplate instead: TemplateId when the template is digits
 * without a leading zero, else TemplateAlias, and TemplateModel.
 * *json is malloc'd (free it with cJSON_free) and *size is its length
 * without the NUL. Nothing is built, and the call fails with
 * OUTBOX_ELIMIT, when the message has more than
 * OUTBOX_POSTMARK_MAX_RECIPIENTS recipients (kind "limit_exceeded") or,
 * with max_bytes not 0, when its encoded size (bodies, subject, template
 * data, extra headers and base64 attachments) is over max_bytes (kind
 * "message_too_large"). A message without a To recipient, or without
 * both a body and a template, fails with OUTBOX_EINVAL. A metadata key
 * "outbox_id" is sent as "erp_outbox_id", and logger gets a warning that
 * names it.
 */
outbox_err outbox__postmark_body(char **json, size_t *size, outbox_error *err,
                                 const outbox_message *message,
                                 const char *stream,
                                 const outbox_logger *logger,
                                 size_t max_bytes);

/* Classifies Postmark's response to one POST /email request. */
void outbox__postmark_classify(outbox_result *result,
                               const outbox_response *response);

#endif /* OUTBOX_PROVIDER_POSTMARK_H */
