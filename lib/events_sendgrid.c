/*
 * events_sendgrid.c - SendGrid's event webhook: the parser of its JSON
 * array of events and the check of its ECDSA signature.
 *
 * How events map:
 *   processed                       accepted
 *   delivered, deferred             delivered, deferred
 *   bounce with type "bounce"       bounced, hard
 *   bounce with type "blocked"      bounced, soft (the receiving server
 *                                   refused it for now)
 *   bounce with another or no type  bounced, soft (undetermined)
 *   dropped                         dropped
 *   open, click                     opened, clicked
 *   spamreport                      complained
 *   unsubscribe, group_unsubscribe  unsubscribed
 *   anything else                   other, with SendGrid's name kept
 *
 * Fields: sg_event_id is the event id; an event without one gets
 * "sha256:" and the hash of its JSON. Custom args come back at the top
 * level of each event, so the outbox id is "outbox_id". sg_message_id is
 * X-Message-Id, a ".", and a suffix that SendGrid adds: the part before
 * the first "." is the id stored at send time. "category" is a string on
 * some events and an array on others; tags is always an array.
 */
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

#include "events_internal.h"

/* Base64 text longer than these is not a P-256 key or signature. */
#define SENDGRID_KEY_TEXT_MAX 1024
#define SENDGRID_SIGNATURE_TEXT_MAX 512

typedef struct sendgrid_mapping {
    const char *name;
    outbox_event_type type;
} sendgrid_mapping;

static const sendgrid_mapping sendgrid_types[] = {
    {"processed", OUTBOX_EVENT_ACCEPTED},
    {"delivered", OUTBOX_EVENT_DELIVERED},
    {"deferred", OUTBOX_EVENT_DEFERRED},
    {"bounce", OUTBOX_EVENT_BOUNCED},
    {"dropped", OUTBOX_EVENT_DROPPED},
    {"open", OUTBOX_EVENT_OPENED},
    {"click", OUTBOX_EVENT_CLICKED},
    {"spamreport", OUTBOX_EVENT_COMPLAINED},
    {"unsubscribe", OUTBOX_EVENT_UNSUBSCRIBED},
    {"group_unsubscribe", OUTBOX_EVENT_UNSUBSCRIBED},
};

static outbox_event_type sendgrid_type(const char *name)
{
    for (size_t i = 0; i < sizeof(sendgrid_types) / sizeof(sendgrid_types[0]);
         i++) {
        if (strcmp(sendgrid_types[i].name, name) == 0)
            return sendgrid_types[i].type;
    }
    return OUTBOX_EVENT_OTHER;
}

/* Copies sg_message_id up to its first "." into event. An empty id is
 * left NULL, so that it cannot match a row. */
static outbox_err set_message_id(outbox_event *event, outbox_error *err,
                                 const char *value)
{
    const char *dot;
    char *prefix;
    outbox_err rc;

    if (value == NULL || value[0] == '\0' || value[0] == '.')
        return OUTBOX_EOK;
    dot = strchr(value, '.');
    if (dot == NULL)
        return outbox__events_copy_id(&event->provider_message_id, err,
                                      "sg_message_id", value);
    prefix = outbox__strndup(value, (size_t)(dot - value));
    if (prefix == NULL)
        return outbox_error_set(err, OUTBOX_ENOMEM, OUTBOX_EVENTS_KIND_NOMEM,
                                "out of memory reading sg_message_id");
    rc = outbox__events_copy_id(&event->provider_message_id, err,
                                "sg_message_id", prefix);
    free(prefix);
    return rc;
}

/* Sets event->tags to "category" as an array of its strings. Another
 * type, or an array without strings, leaves tags NULL. */
static outbox_err set_tags(outbox_event *event, outbox_error *err,
                           const cJSON *category)
{
    cJSON *tags;
    const cJSON *item;
    bool added = true;
    outbox_err rc = OUTBOX_EOK;
    char *text = NULL;

    if (!cJSON_IsString(category) && !cJSON_IsArray(category))
        return OUTBOX_EOK;
    tags = cJSON_CreateArray();
    if (tags == NULL)
        return outbox_error_set(err, OUTBOX_ENOMEM, OUTBOX_EVENTS_KIND_NOMEM,
                                "out of memory reading category");
    if (cJSON_IsString(category)) {
        added = cJSON_AddItemToArray(tags,
                                     cJSON_CreateString(category->valuestring));
    } else {
        cJSON_ArrayForEach(item, category) {
            if (!cJSON_IsString(item))
                continue;
            added = cJSON_AddItemToArray(tags,
                                         cJSON_CreateString(item->valuestring));
            if (!added)
                break;
        }
    }
    if (!added)
        rc = outbox_error_set(err, OUTBOX_ENOMEM, OUTBOX_EVENTS_KIND_NOMEM,
                              "out of memory reading category");
    if (rc == OUTBOX_EOK && cJSON_GetArraySize(tags) > 0)
        rc = outbox__events_print_json(&text, err, tags);
    if (rc == OUTBOX_EOK && text != NULL)
        rc = outbox__events_copy_id(&event->tags, err, "category", text);
    free(text);
    cJSON_Delete(tags);
    return rc;
}

static outbox_bounce_kind bounce_kind(const cJSON *object)
{
    const char *type = outbox__events_string(object, "type");

    if (type != NULL && strcmp(type, "bounce") == 0)
        return OUTBOX_BOUNCE_HARD;
    return OUTBOX_BOUNCE_SOFT;
}

/* Fills event from one event object of the array. */
static outbox_err read_event(outbox_event *event, outbox_error *err,
                             const cJSON *object)
{
    const char *name = outbox__events_string(object, "event");
    const char *reason = outbox__events_string(object, "reason");
    const char *event_id = outbox__events_string(object, "sg_event_id");
    outbox_err rc;

    event->type = sendgrid_type(name);
    event->bounce = event->type == OUTBOX_EVENT_BOUNCED ? bounce_kind(object)
                                                        : OUTBOX_BOUNCE_NONE;
    event->outbox_id = outbox__events_outbox_id(
        cJSON_GetObjectItemCaseSensitive(object, "outbox_id"));
    outbox__events_unix_time(
        &event->occurred_at,
        cJSON_GetObjectItemCaseSensitive(object, "timestamp"));

    /* Bounces and drops give a reason; deliveries and deferrals give the
     * receiving server's response instead. */
    if (reason == NULL)
        reason = outbox__events_string(object, "response");

    rc = outbox__events_copy_id(&event->provider_event, err, "event", name);
    if (rc == OUTBOX_EOK)
        rc = outbox__events_copy_id(&event->recipient, err, "email",
                                    outbox__events_string(object, "email"));
    if (rc == OUTBOX_EOK)
        rc = set_message_id(event, err,
                            outbox__events_string(object, "sg_message_id"));
    if (rc == OUTBOX_EOK)
        rc = outbox__events_copy_text(&event->reason, err, "reason", reason);
    if (rc == OUTBOX_EOK)
        rc = set_tags(event, err,
                      cJSON_GetObjectItemCaseSensitive(object, "category"));
    if (rc == OUTBOX_EOK)
        rc = outbox__events_print_json(&event->raw, err, object);
    if (rc == OUTBOX_EOK && event_id != NULL && event_id[0] != '\0')
        rc = outbox__events_copy_id(&event->event_id, err, "sg_event_id",
                                    event_id);
    else if (rc == OUTBOX_EOK)
        rc = outbox__events_sha256_id(&event->event_id, err, event->raw,
                                      strlen(event->raw));
    return rc;
}

/* Puts "SendGrid event <index>: " before the text in err, so that the
 * text names the event as well as its field. */
static outbox_err name_event(outbox_error *err, outbox_err rc, size_t index)
{
    outbox_error detail;

    if (err == NULL)
        return rc;
    detail = *err;
    return outbox_error_set(err, rc, detail.kind, "SendGrid event %zu: %s",
                            index, detail.text);
}

/* Reads each event object of events (an array, or one object) into
 * batch. Fills err on failure. */
static outbox_err read_events(outbox_event_batch *batch, outbox_error *err,
                              const cJSON *events)
{
    const cJSON *object = cJSON_IsArray(events) ? events->child : events;
    size_t index = 0;

    for (; object != NULL; object = object->next, index++) {
        outbox_event *event;
        outbox_err rc;

        if (!cJSON_IsObject(object)
            || outbox__events_string(object, "event") == NULL)
            return outbox_error_set(err, OUTBOX_EINVAL,
                                    OUTBOX_EVENTS_KIND_INVALID,
                                    "SendGrid event %zu is not an object "
                                    "with a string \"event\"", index);
        rc = outbox__events_append(&event, err, batch);
        if (rc == OUTBOX_EOK)
            rc = read_event(event, err, object);
        if (rc != OUTBOX_EOK)
            return name_event(err, rc, index);

        /* A lone object is one event, not a list. */
        if (!cJSON_IsArray(events))
            break;
    }
    return OUTBOX_EOK;
}

outbox_err outbox_events_parse_sendgrid(outbox_event_batch *batch,
                                        outbox_error *err, const char *body,
                                        size_t size)
{
    cJSON *root;
    outbox_err rc;

    batch->events = NULL;
    batch->count = 0;
    rc = outbox__events_parse_json(&root, err, OUTBOX_EVENTS_KIND_INVALID,
                                   "the SendGrid webhook body", body, size);
    if (rc != OUTBOX_EOK)
        return rc;
    if (!cJSON_IsArray(root) && !cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return outbox_error_set(err, OUTBOX_EINVAL,
                                OUTBOX_EVENTS_KIND_INVALID,
                                "the SendGrid webhook body is not a JSON "
                                "array of events");
    }
    if (cJSON_IsArray(root) && cJSON_GetArraySize(root) > OUTBOX_EVENTS_MAX)
        rc = outbox_error_set(err, OUTBOX_ELIMIT, OUTBOX_EVENTS_KIND_LIMIT,
                              "the SendGrid webhook has more than %d events",
                              OUTBOX_EVENTS_MAX);
    else
        rc = read_events(batch, err, root);
    cJSON_Delete(root);
    if (rc != OUTBOX_EOK)
        outbox_event_batch_free(batch);
    return rc;
}

/* ------------------------------------------------------------------ */
/* Signature                                                           */
/* ------------------------------------------------------------------ */

/* Reads the configured verification key: base64 DER SubjectPublicKeyInfo
 * of a P-256 key. Returns NULL if it is anything else. */
static EVP_PKEY *read_public_key(const char *public_key_b64)
{
    unsigned char *der;
    const unsigned char *cursor;
    size_t der_size = 0;
    EVP_PKEY *key;
    char group[32];

    if (public_key_b64 == NULL)
        return NULL;
    /* The caller reports any failure as a configuration error, so the
     * decoder's own error text is not needed. */
    if (outbox__events_base64_decode(&der, &der_size, NULL, "config",
                                     "the SendGrid verification key",
                                     public_key_b64, SENDGRID_KEY_TEXT_MAX)
        != OUTBOX_EOK)
        return NULL;
    cursor = der;
    key = d2i_PUBKEY(NULL, &cursor, (long)der_size);

    /* Trailing bytes after the key mean the text was not one key. */
    if (key != NULL && cursor != der + der_size) {
        EVP_PKEY_free(key);
        key = NULL;
    }
    free(der);
    if (key != NULL
        && (!EVP_PKEY_is_a(key, "EC")
            || EVP_PKEY_get_group_name(key, group, sizeof(group), NULL) != 1
            || strcmp(group, "prime256v1") != 0)) {
        EVP_PKEY_free(key);
        key = NULL;
    }
    return key;
}

/* Returns 1 if signature is key's ECDSA signature of timestamp || body,
 * 0 if not, and -1 if OpenSSL failed. */
static int verify_digest(EVP_PKEY *key, const unsigned char *signature,
                         size_t signature_size, const char *timestamp,
                         const char *body, size_t size)
{
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    int result = -1;

    if (ctx == NULL)
        return -1;
    if (EVP_DigestVerifyInit(ctx, NULL, EVP_sha256(), NULL, key) == 1
        && EVP_DigestVerifyUpdate(ctx, timestamp, strlen(timestamp)) == 1
        && EVP_DigestVerifyUpdate(ctx, body, size) == 1)
        result = EVP_DigestVerifyFinal(ctx, signature, signature_size) == 1;
    EVP_MD_CTX_free(ctx);
    return result;
}

outbox_err outbox_verify_sendgrid(outbox_error *err,
                                  const char *public_key_b64,
                                  const char *signature_b64,
                                  const char *timestamp, const char *body,
                                  size_t size, int64_t now, int64_t max_age)
{
    EVP_PKEY *key;
    unsigned char *signature;
    size_t signature_size = 0;
    outbox_err rc;
    int verified;

    key = read_public_key(public_key_b64);
    if (key == NULL) {
        ERR_clear_error();
        return outbox_error_set(err, OUTBOX_ECONFIG, "config",
                                "the SendGrid verification key is not the "
                                "base64 DER of a P-256 public key");
    }
    if (signature_b64 == NULL || signature_b64[0] == '\0') {
        EVP_PKEY_free(key);
        return outbox_error_set(err, OUTBOX_EINVAL,
                                OUTBOX_EVENTS_KIND_UNAUTHENTICATED,
                                "the request has no signature");
    }
    rc = outbox__events_check_timestamp(err, timestamp, now, max_age);
    if (rc != OUTBOX_EOK) {
        EVP_PKEY_free(key);
        return rc;
    }
    rc = outbox__events_base64_decode(&signature, &signature_size, err,
                                      OUTBOX_EVENTS_KIND_UNAUTHENTICATED,
                                      "the signature", signature_b64,
                                      SENDGRID_SIGNATURE_TEXT_MAX);
    if (rc != OUTBOX_EOK) {
        EVP_PKEY_free(key);
        return rc;
    }
    verified = verify_digest(key, signature, signature_size, timestamp, body,
                             size);
    free(signature);
    EVP_PKEY_free(key);

    /* A rejected signature leaves OpenSSL errors queued on this thread,
     * where a later TLS call would find them. */
    ERR_clear_error();
    if (verified < 0)
        return outbox_error_set(err, OUTBOX_ENOMEM, OUTBOX_EVENTS_KIND_NOMEM,
                                "OpenSSL failed to check the signature");
    if (verified == 0)
        return outbox_error_set(err, OUTBOX_EINVAL,
                                OUTBOX_EVENTS_KIND_UNAUTHENTICATED,
                                "the signature does not match the body");
    return OUTBOX_EOK;
}
