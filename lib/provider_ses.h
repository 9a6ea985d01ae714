/*
 * provider_ses.h - the pure parts of the Amazon SES v2 provider, exposed so
 * that tests can drive them without a server. Not installed.
 */
#ifndef OUTBOX_PROVIDER_SES_H
#define OUTBOX_PROVIDER_SES_H

#include "provider.h"

/* SES v2 caps on one message. */
#define OUTBOX_SES_MAX_RECIPIENTS 50
#define OUTBOX_SES_MAX_HEADERS 15
#define OUTBOX_SES_MAX_HEADER_NAME 126
#define OUTBOX_SES_MAX_HEADER_VALUE 870
#define OUTBOX_SES_MAX_FILENAME 255
#define OUTBOX_SES_MAX_CONTENT_ID 78
#define OUTBOX_SES_MAX_TAG 256
#define OUTBOX_SES_MAX_TEMPLATE_DATA 262144

/* 40 MiB: the cap that SES v2 states in its "Message length is more than
 * 41943040 bytes long" error. */
#define OUTBOX_SES_DEFAULT_MAX_MESSAGE 41943040

/* What the request body needs besides the message. */
typedef struct outbox_ses_body_options {
    const char *configuration_set;  /* NULL sends none */
    size_t max_message_bytes;       /* 0 turns the size check off */
    int64_t date;                   /* Date header of Raw content */
} outbox_ses_body_options;

/*
 * Builds the JSON body of POST /v2/email/outbound-emails for message.
 * *json is malloc'd (free it with cJSON_free) and *size is its length
 * without the NUL.
 *
 * The content is Simple when SES's Simple content can carry the message:
 * a non-empty subject without "=?", at most OUTBOX_SES_MAX_HEADERS extra
 * headers whose values fit OUTBOX_SES_MAX_HEADER_VALUE once RFC
 * 2047-encoded, and attachment names and Content-IDs within SES's
 * lengths. Otherwise it is Raw: the RFC 5322 message from
 * outbox__mime_write, in base64.
 *
 * A message with a template gets Template content instead: TemplateName,
 * TemplateData (the template_data text, or "{}"), and the extra headers
 * and attachments under the same limits as Simple content. The row's
 * subject and bodies are not sent, because the template has its own. A
 * message whose headers or attachments do not fit fails with kind
 * "invalid_template", since Raw content cannot name a template.
 *
 * EmailTags carry the outbox id as "outbox_id", then the metadata. SES
 * accepts only [A-Za-z0-9_-] in tag names and values, so a value with any
 * other character is sent base64url-encoded (RFC 4648 section 5, without
 * padding) under the key with "_b64" appended. A pair that still does not
 * fit is left out, and logger gets a warning that names the key.
 *
 * Fails with kind "message_too_large" when the encoded message is over
 * options->max_message_bytes, and with "limit_exceeded" when to, cc and
 * bcc together have more than OUTBOX_SES_MAX_RECIPIENTS addresses or
 * template_data has more than OUTBOX_SES_MAX_TEMPLATE_DATA bytes. These
 * are checked before anything is built.
 */
outbox_err outbox__ses_body(char **json, size_t *size, outbox_error *err,
                            const outbox_message *message,
                            const outbox_ses_body_options *options,
                            const outbox_logger *logger);

/*
 * Classifies SES's response to one SendEmail request. quota_delay is the
 * wait in seconds after "Daily message quota exceeded" and after
 * LimitExceeded.
 */
void outbox__ses_classify(outbox_result *result,
                          const outbox_response *response,
                          int64_t quota_delay);

/* The parts below are shared by the provider's files. */

/*
 * Adds root["EmailTags"]: the outbox id, then the metadata as
 * outbox__ses_body describes (provider_ses_tags.c). Returns false only
 * when out of memory.
 */
bool outbox__ses_add_tags(struct cJSON *root, const outbox_message *message,
                          const outbox_logger *logger);

/*
 * Reads the credentials of provider name (provider_ses_credentials.c):
 * *userpwd receives "<key id>:<secret>" for CURLOPT_USERPWD, and
 * *token_header "X-Amz-Security-Token: <token>", or NULL without a
 * session token. Both are malloc'd secrets to free with
 * outbox__ses_free_secret. On failure both are NULL and err names the
 * missing or invalid key.
 */
outbox_err outbox__ses_read_credentials(char **userpwd, char **token_header,
                                        outbox_error *err, const char *name,
                                        const struct cJSON *config);

/* Frees a secret after overwriting it. Accepts NULL. */
void outbox__ses_free_secret(char *secret);

#endif /* OUTBOX_PROVIDER_SES_H */
