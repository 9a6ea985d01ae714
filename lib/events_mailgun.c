/*
 * events_mailgun.c - Mailgun's webhooks: the parser of its JSON body, the
 * reader of its "signature" object and the check of its HMAC.
 *
 * How events map:
 *   accepted, delivered             accepted, delivered
 *   failed, severity "permanent"    bounced, hard
 *   failed, severity "temporary"    bounced, soft (Mailgun retries)
 *   failed, another or no severity  bounced, soft (undetermined)
 *   rejected                        dropped (Mailgun never tried it)
 *   opened, clicked                 opened, clicked
 *   unsubscribed, complained        unsubscribed, complained
 *   anything else                   other, with Mailgun's name kept
 *
 * Fields: event-data.id is unique for one day only, so the event id is
 * the signature's token, which Mailgun makes new for every request and
 * which also serves against replays. A body without a token gets
 * "sha256:" and the hash of its event-data JSON. The outbox id comes
 * from user-variables.outbox_id (sent as v:outbox_id), and the message id
 * from message.headers.message-id, without angle brackets as it was
 * stored at send time. raw is the event-data object.
 *
 * Mailgun's legacy webhooks post form fields (urlencoded or multipart)
 * in place of JSON. They are rejected, and the error text asks ops to
 * switch the webhook to JSON in Mailgun's settings. Their signature and
 * fields differ from the JSON form's, and the current webhook pages of
 * Mailgun's documentation describe only the JSON form.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "events_internal.h"

#define SHA256_SIZE 32

typedef struct mailgun_mapping {
    const char *name;
    outbox_event_type type;
} mailgun_mapping;

static const mailgun_mapping mailgun_types[] = {
    {"accepted", OUTBOX_EVENT_ACCEPTED},
    {"delivered", OUTBOX_EVENT_DELIVERED},
    {"failed", OUTBOX_EVENT_BOUNCED},
    {"rejected", OUTBOX_EVENT_DROPPED},
    {"opened", OUTBOX_EVENT_OPENED},
    {"clicked", OUTBOX_EVENT_CLICKED},
    {"unsubscribed", OUTBOX_EVENT_UNSUBSCRIBED},
    {"complained", OUTBOX_EVENT_COMPLAINED},
};

static outbox_event_type mailgun_type(const char *name)
{
    for (size_t i = 0; i < sizeof(mailgun_types) / sizeof(mailgun_types[0]);
         i++) {
        if (strcmp(mailgun_types[i].name, name) == 0)
            return mailgun_types[i].type;
    }
    return OUTBOX_EVENT_OTHER;
}

/* Returns true if the body starts, after white space, with "{". A form
 * post of the legacy webhooks starts with a field name or a boundary. */
static bool looks_like_json_object(const char *body, size_t size)
{
    for (size_t i = 0; i < size; i++) {
        if (!isspace((unsigned char)body[i]))
            return body[i] == '{';
    }
    return false;
}

/* Parses body as the JSON object of a Mailgun webhook. Fills err with
 * kind and returns NULL if it is not one. */
static cJSON *parse_body(outbox_error *err, const char *body, size_t size,
                         const char *kind)
{
    cJSON *root;

    if (!looks_like_json_object(body, size)) {
        outbox_error_set(err, OUTBOX_EINVAL, kind,
                         "the Mailgun webhook body is not a JSON object; "
                         "legacy form-encoded webhooks are not supported: "
                         "set the webhook to send JSON in Mailgun's "
                         "settings");
        return NULL;
    }
    if (outbox__events_parse_json(&root, err, kind,
                                  "the Mailgun webhook body", body, size)
        != OUTBOX_EOK)
        return NULL;
    if (!cJSON_IsObject(root)) {
        cJSON_Delete(root);
        outbox_error_set(err, OUTBOX_EINVAL, kind,
                         "the Mailgun webhook body is not a JSON object");
        return NULL;
    }
    return root;
}

/* Copies message-id without the angle brackets that some Mailgun ids
 * carry into event. An empty id is left NULL, so that it cannot match a
 * row. */
static outbox_err set_message_id(outbox_event *event, outbox_error *err,
                                 const char *value)
{
    static const char field[] = "message.headers.message-id";
    size_t length;
    char *bare;
    outbox_err rc;

    if (value == NULL || value[0] == '\0' || strcmp(value, "<>") == 0)
        return OUTBOX_EOK;
    length = strlen(value);
    if (length < 2 || value[0] != '<' || value[length - 1] != '>')
        return outbox__events_copy_id(&event->provider_message_id, err,
                                      field, value);
    bare = outbox__strndup(value + 1, length - 2);
    if (bare == NULL)
        return outbox_error_set(err, OUTBOX_ENOMEM, OUTBOX_EVENTS_KIND_NOMEM,
                                "out of memory reading %s", field);
    rc = outbox__events_copy_id(&event->provider_message_id, err, field,
                                bare);
    free(bare);
    return rc;
}

/* Sets event->tags to the strings of the "tags" array, if any. */
static outbox_err set_tags(outbox_event *event, outbox_error *err,
                           const cJSON *tags)
{
    const cJSON *item;
    char *text;
    outbox_err rc;

    if (!cJSON_IsArray(tags) || cJSON_GetArraySize(tags) == 0)
        return OUTBOX_EOK;
    cJSON_ArrayForEach(item, tags) {
        if (!cJSON_IsString(item))
            return OUTBOX_EOK;
    }
    rc = outbox__events_print_json(&text, err, tags);
    if (rc != OUTBOX_EOK)
        return rc;
    rc = outbox__events_copy_id(&event->tags, err, "tags", text);
    free(text);
    return rc;
}

static outbox_bounce_kind bounce_kind(const cJSON *data)
{
    const char *severity = outbox__events_string(data, "severity");

    if (severity != NULL && strcmp(severity, "permanent") == 0)
        return OUTBOX_BOUNCE_HARD;
    return OUTBOX_BOUNCE_SOFT;
}

/* The most specific reason: the receiving server's message, then
 * Mailgun's description, then Mailgun's one-word reason. */
static const char *reason_of(const cJSON *data)
{
    const cJSON *status =
        cJSON_GetObjectItemCaseSensitive(data, "delivery-status");
    const char *text = outbox__events_string(status, "message");

    if (text == NULL || text[0] == '\0')
        text = outbox__events_string(status, "description");
    if (text == NULL || text[0] == '\0')
        text = outbox__events_string(data, "reason");
    return text;
}

/* Fills event from the event-data object and the signature's token. */
static outbox_err read_event(outbox_event *event, outbox_error *err,
                             const cJSON *data, const char *token)
{
    const char *name = outbox__events_string(data, "event");
    const cJSON *message = cJSON_GetObjectItemCaseSensitive(data, "message");
    const cJSON *headers =
        cJSON_GetObjectItemCaseSensitive(message, "headers");
    const cJSON *variables =
        cJSON_GetObjectItemCaseSensitive(data, "user-variables");
    outbox_err rc;

    event->type = mailgun_type(name);
    event->bounce = event->type == OUTBOX_EVENT_BOUNCED ? bounce_kind(data)
                                                        : OUTBOX_BOUNCE_NONE;
    event->outbox_id = outbox__events_outbox_id(
        cJSON_GetObjectItemCaseSensitive(variables, "outbox_id"));
    outbox__events_unix_time(
        &event->occurred_at,
        cJSON_GetObjectItemCaseSensitive(data, "timestamp"));

    rc = outbox__events_copy_id(&event->provider_event, err, "event", name);
    if (rc == OUTBOX_EOK)
        rc = outbox__events_copy_id(&event->recipient, err, "recipient",
                                    outbox__events_string(data, "recipient"));
    if (rc == OUTBOX_EOK)
        rc = set_message_id(event, err,
                            outbox__events_string(headers, "message-id"));
    if (rc == OUTBOX_EOK)
        rc = outbox__events_copy_text(&event->reason, err, "reason",
                                      reason_of(data));
    if (rc == OUTBOX_EOK)
        rc = set_tags(event, err,
                      cJSON_GetObjectItemCaseSensitive(data, "tags"));
    if (rc == OUTBOX_EOK)
        rc = outbox__events_print_json(&event->raw, err, data);
    if (rc == OUTBOX_EOK && token != NULL && token[0] != '\0')
        rc = outbox__events_copy_id(&event->event_id, err, "signature.token",
                                    token);
    else if (rc == OUTBOX_EOK)
        rc = outbox__events_sha256_id(&event->event_id, err, event->raw,
                                      strlen(event->raw));
    return rc;
}

outbox_err outbox_events_parse_mailgun(outbox_event_batch *batch,
                                       outbox_error *err, const char *body,
                                       size_t size)
{
    cJSON *root;
    const cJSON *data;
    const cJSON *signature;
    outbox_event *event;
    outbox_err rc;

    batch->events = NULL;
    batch->count = 0;
    root = parse_body(err, body, size, OUTBOX_EVENTS_KIND_INVALID);
    if (root == NULL)
        return OUTBOX_EINVAL;
    data = cJSON_GetObjectItemCaseSensitive(root, "event-data");
    signature = cJSON_GetObjectItemCaseSensitive(root, "signature");
    if (!cJSON_IsObject(data)
        || outbox__events_string(data, "event") == NULL) {
        cJSON_Delete(root);
        return outbox_error_set(err, OUTBOX_EINVAL,
                                OUTBOX_EVENTS_KIND_INVALID,
                                "the Mailgun webhook has no \"event-data\" "
                                "object with a string \"event\"");
    }

    rc = outbox__events_append(&event, err, batch);
    if (rc == OUTBOX_EOK)
        rc = read_event(event, err, data,
                        outbox__events_string(signature, "token"));
    cJSON_Delete(root);
    if (rc != OUTBOX_EOK)
        outbox_event_batch_free(batch);
    return rc;
}

/* ------------------------------------------------------------------ */
/* Signature                                                           */
/* ------------------------------------------------------------------ */

/* Copies the string member key of signature into out. */
static outbox_err copy_signature_field(outbox_error *err, char *out,
                                       const cJSON *signature,
                                       const char *key)
{
    const char *value = outbox__events_string(signature, key);

    if (value == NULL || value[0] == '\0'
        || strlen(value) >= OUTBOX_MAILGUN_FIELD_MAX)
        return outbox_error_set(err, OUTBOX_EINVAL,
                                OUTBOX_EVENTS_KIND_UNAUTHENTICATED,
                                "signature.%s of the Mailgun webhook is "
                                "missing, not a string, or %d bytes or "
                                "longer", key, OUTBOX_MAILGUN_FIELD_MAX);
    memcpy(out, value, strlen(value) + 1);
    return OUTBOX_EOK;
}

outbox_err outbox_mailgun_signature_read(outbox_mailgun_signature *out,
                                         outbox_error *err, const char *body,
                                         size_t size)
{
    cJSON *root;
    const cJSON *signature;
    outbox_err rc;

    memset(out, 0, sizeof(*out));
    root = parse_body(err, body, size, OUTBOX_EVENTS_KIND_UNAUTHENTICATED);
    if (root == NULL)
        return OUTBOX_EINVAL;
    signature = cJSON_GetObjectItemCaseSensitive(root, "signature");
    rc = copy_signature_field(err, out->timestamp, signature, "timestamp");
    if (rc == OUTBOX_EOK)
        rc = copy_signature_field(err, out->token, signature, "token");
    if (rc == OUTBOX_EOK)
        rc = copy_signature_field(err, out->signature, signature,
                                  "signature");
    cJSON_Delete(root);
    if (rc != OUTBOX_EOK)
        memset(out, 0, sizeof(*out));
    return rc;
}

/* Decodes 64 hex digits, of either case, into digest. */
static bool decode_hex(unsigned char digest[SHA256_SIZE], const char *hex)
{
    if (strlen(hex) != 2 * SHA256_SIZE)
        return false;
    for (size_t i = 0; i < 2 * SHA256_SIZE; i++) {
        int c = (unsigned char)hex[i];
        int nibble;

        if (c >= '0' && c <= '9')
            nibble = c - '0';
        else if (c >= 'a' && c <= 'f')
            nibble = c - 'a' + 10;
        else if (c >= 'A' && c <= 'F')
            nibble = c - 'A' + 10;
        else
            return false;
        if (i % 2 == 0)
            digest[i / 2] = (unsigned char)(nibble << 4);
        else
            digest[i / 2] = (unsigned char)(digest[i / 2] | nibble);
    }
    return true;
}

outbox_err outbox_verify_mailgun(outbox_error *err, const char *signing_key,
                                 const char *timestamp, const char *token,
                                 const char *signature_hex, int64_t now,
                                 int64_t max_age)
{
    unsigned char given[SHA256_SIZE];
    unsigned char want[SHA256_SIZE];
    unsigned int want_size = 0;
    size_t key_size;
    outbox_buf data;
    outbox_err rc;

    if (signing_key == NULL || signing_key[0] == '\0')
        return outbox_error_set(err, OUTBOX_ECONFIG, "config",
                                "the Mailgun webhook signing key is empty");
    if (token == NULL || token[0] == '\0')
        return outbox_error_set(err, OUTBOX_EINVAL,
                                OUTBOX_EVENTS_KIND_UNAUTHENTICATED,
                                "the request has no token");
    if (signature_hex == NULL || !decode_hex(given, signature_hex))
        return outbox_error_set(err, OUTBOX_EINVAL,
                                OUTBOX_EVENTS_KIND_UNAUTHENTICATED,
                                "the signature is not 64 hex digits");
    rc = outbox__events_check_timestamp(err, timestamp, now, max_age);
    if (rc != OUTBOX_EOK)
        return rc;

    /* The signed data is the timestamp followed by the token, with no
     * separator. */
    outbox__buf_init(&data, 2 * OUTBOX_MAILGUN_FIELD_MAX);
    rc = outbox__buf_puts(&data, timestamp);
    if (rc == OUTBOX_EOK)
        rc = outbox__buf_puts(&data, token);
    if (rc == OUTBOX_ELIMIT) {
        outbox__buf_free(&data);
        return outbox_error_set(err, OUTBOX_EINVAL,
                                OUTBOX_EVENTS_KIND_UNAUTHENTICATED,
                                "the token is longer than %d bytes",
                                OUTBOX_MAILGUN_FIELD_MAX);
    }
    key_size = strlen(signing_key);
    if (rc == OUTBOX_EOK
        && (key_size > INT32_MAX
            || HMAC(EVP_sha256(), signing_key, (int)key_size,
                    (const unsigned char *)data.data, data.size, want,
                    &want_size)
                   == NULL
            || want_size != SHA256_SIZE))
        rc = OUTBOX_ENOMEM;
    outbox__buf_free(&data);
    if (rc != OUTBOX_EOK)
        return outbox_error_set(err, rc, OUTBOX_EVENTS_KIND_NOMEM,
                                "HMAC-SHA256 failed checking the Mailgun "
                                "signature");
    if (CRYPTO_memcmp(given, want, sizeof(want)) != 0)
        return outbox_error_set(err, OUTBOX_EINVAL,
                                OUTBOX_EVENTS_KIND_UNAUTHENTICATED,
                                "the signature does not match the timestamp "
                                "and token");
    return OUTBOX_EOK;
}
