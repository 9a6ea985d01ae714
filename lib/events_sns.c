/*
 * events_sns.c - Amazon SNS messages over HTTPS: reading the envelope,
 * checking where its signing certificate may come from, and checking its
 * signature.
 *
 * SNS signs a string built from some of the message's fields, one
 * "Name\nvalue\n" pair each, in this order (AWS SNS developer guide,
 * "Verifying the signatures of Amazon SNS messages"):
 *   Notification: Message, MessageId, Subject (if present), Timestamp,
 *                 TopicArn, Type
 *   SubscriptionConfirmation and UnsubscribeConfirmation: Message,
 *                 MessageId, SubscribeURL, Timestamp, Token, TopicArn, Type
 * The values are the JSON-decoded strings. SignatureVersion 1 signs that
 * string with RSA PKCS#1 v1.5 over SHA1, version 2 over SHA256. The
 * certificate is trusted only because it was fetched over HTTPS from an
 * SNS host, so outbox_sns_check_cert_url runs before any fetch.
 */
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "events_internal.h"

/* A signing certificate or subscription URL longer than this is rejected
 * unread. */
#define SNS_URL_MAX 2048

/* The string to sign is at most the body, which the listener caps; this
 * cap only stops a runaway. */
#define SNS_SIGNED_TEXT_MAX (64u * 1024u * 1024u)

typedef struct sns_field {
    const char *name;
    size_t offset;              /* of the char * in outbox_sns_message */
    bool required;
} sns_field;

#define SNS_FIELD(name, member, required) \
    {name, offsetof(outbox_sns_message, member), required}

/* Fields every SNS message carries; Message is read on its own. */
static const sns_field common_fields[] = {
    SNS_FIELD("MessageId", message_id, true),
    SNS_FIELD("TopicArn", topic_arn, true),
    SNS_FIELD("Subject", subject, false),
    SNS_FIELD("Timestamp", timestamp, true),
    SNS_FIELD("SignatureVersion", signature_version, true),
    SNS_FIELD("Signature", signature, true),
    SNS_FIELD("SigningCertURL", signing_cert_url, true),
};

static const sns_field confirmation_fields[] = {
    SNS_FIELD("Token", token, true),
    SNS_FIELD("SubscribeURL", subscribe_url, true),
};

static char **field_slot(outbox_sns_message *message, const sns_field *field)
{
    return (char **)(void *)((char *)message + field->offset);
}

static outbox_err read_type(outbox_sns_message *out, outbox_error *err,
                            const cJSON *json)
{
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(json, "Type");

    if (type == NULL) {
        /* With raw message delivery on, SNS posts the SES JSON bare, with
         * no envelope and so no signature. */
        if (cJSON_HasObjectItem(json, "notificationType")
            || cJSON_HasObjectItem(json, "eventType"))
            return outbox_error_set(err, OUTBOX_EINVAL,
                                    "sns_envelope_missing",
                                    "the body is an SES event without its "
                                    "SNS envelope; turn off raw message "
                                    "delivery on the SNS subscription");
        return outbox_error_set(err, OUTBOX_EINVAL, "invalid_sns_message",
                                "the SNS message has no Type");
    }
    if (!cJSON_IsString(type))
        return outbox_error_set(err, OUTBOX_EINVAL, "invalid_sns_message",
                                "the SNS Type is not a string");
    if (strcmp(type->valuestring, "Notification") == 0)
        out->type = OUTBOX_SNS_NOTIFICATION;
    else if (strcmp(type->valuestring, "SubscriptionConfirmation") == 0)
        out->type = OUTBOX_SNS_SUBSCRIPTION_CONFIRMATION;
    else if (strcmp(type->valuestring, "UnsubscribeConfirmation") == 0)
        out->type = OUTBOX_SNS_UNSUBSCRIBE_CONFIRMATION;
    else
        return outbox_error_set(err, OUTBOX_EINVAL, "invalid_sns_message",
                                "the SNS Type \"%.64s\" is unknown",
                                type->valuestring);
    return OUTBOX_EOK;
}

static outbox_err read_fields(outbox_sns_message *out, outbox_error *err,
                              const cJSON *json, const sns_field *fields,
                              size_t count)
{
    for (size_t i = 0; i < count; i++) {
        const cJSON *item =
            cJSON_GetObjectItemCaseSensitive(json, fields[i].name);
        outbox_err rc;

        /* SNS sends "Subject": null when the publisher set none. */
        if (item == NULL || cJSON_IsNull(item)) {
            if (!fields[i].required)
                continue;
            return outbox_error_set(err, OUTBOX_EINVAL, "invalid_sns_message",
                                    "the SNS message has no %s",
                                    fields[i].name);
        }
        if (!cJSON_IsString(item))
            return outbox_error_set(err, OUTBOX_EINVAL, "invalid_sns_message",
                                    "the SNS field %s is not a string",
                                    fields[i].name);
        rc = outbox__events_copy_id(field_slot(out, &fields[i]), err,
                                    fields[i].name, item->valuestring);
        if (rc != OUTBOX_EOK)
            return rc;
    }
    return OUTBOX_EOK;
}

/*
 * Reads Message, which SNS sends as a string. A Message that a proxy
 * unwrapped into an object is printed back to JSON so that the parse
 * works, but such a message no longer matches its signature.
 */
static outbox_err read_message(outbox_sns_message *out, outbox_error *err,
                               const cJSON *json)
{
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(json, "Message");

    if (cJSON_IsString(item)) {
        out->message = outbox__strdup(item->valuestring);
        if (out->message == NULL)
            return outbox_error_set(err, OUTBOX_ENOMEM,
                                    OUTBOX_EVENTS_KIND_NOMEM,
                                    "out of memory while reading SNS");
        return OUTBOX_EOK;
    }
    if (cJSON_IsObject(item))
        return outbox__events_print_json(&out->message, err, item);
    return outbox_error_set(err, OUTBOX_EINVAL, "invalid_sns_message",
                            item == NULL ? "the SNS message has no Message"
                                         : "the SNS Message is not a string");
}

outbox_err outbox_sns_parse(outbox_sns_message *out, outbox_error *err,
                            const char *body, size_t size)
{
    cJSON *json = NULL;
    outbox_err rc;

    memset(out, 0, sizeof(*out));
    rc = outbox__events_parse_json(&json, err,
                                   OUTBOX_EVENTS_KIND_INVALID_JSON,
                                   "the SNS message", body, size);
    if (rc != OUTBOX_EOK)
        return rc;
    if (!cJSON_IsObject(json)) {
        rc = outbox_error_set(err, OUTBOX_EINVAL, "invalid_sns_message",
                              "the SNS message is not a JSON object");
        goto cleanup;
    }
    rc = read_type(out, err, json);
    if (rc == OUTBOX_EOK)
        rc = read_fields(out, err, json, common_fields,
                         sizeof(common_fields) / sizeof(common_fields[0]));
    if (rc == OUTBOX_EOK && out->type != OUTBOX_SNS_NOTIFICATION)
        rc = read_fields(out, err, json, confirmation_fields,
                         sizeof(confirmation_fields)
                             / sizeof(confirmation_fields[0]));
    if (rc == OUTBOX_EOK)
        rc = read_message(out, err, json);

cleanup:
    cJSON_Delete(json);
    if (rc != OUTBOX_EOK)
        outbox_sns_message_free(out);
    return rc;
}

void outbox_sns_message_free(outbox_sns_message *message)
{
    if (message == NULL)
        return;
    free(message->message_id);
    free(message->topic_arn);
    free(message->subject);
    free(message->message);
    free(message->timestamp);
    free(message->token);
    free(message->subscribe_url);
    free(message->signature_version);
    free(message->signature);
    free(message->signing_cert_url);
    memset(message, 0, sizeof(*message));
}

static bool is_region_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
           || (c >= '0' && c <= '9') || c == '-';
}

/*
 * Returns true if the n bytes at host are sns.<region>.amazonaws.com or
 * the same under .com.cn, where region is at least three letters, digits
 * or hyphens. Any other label before or after, as in
 * sns.us-east-1.amazonaws.com.evil.example, fails.
 */
static bool is_sns_host(const char *host, size_t n)
{
    static const char prefix[] = "sns.";
    static const char *const suffixes[] = {".amazonaws.com",
                                           ".amazonaws.com.cn"};

    if (n < sizeof(prefix) - 1 || memcmp(host, prefix, sizeof(prefix) - 1))
        return false;
    for (size_t s = 0; s < sizeof(suffixes) / sizeof(suffixes[0]); s++) {
        size_t suffix = strlen(suffixes[s]);
        size_t region = n - (sizeof(prefix) - 1);
        bool valid = true;

        if (region < suffix + 3
            || memcmp(host + n - suffix, suffixes[s], suffix) != 0)
            continue;
        region -= suffix;
        for (size_t i = 0; i < region; i++)
            valid = valid && is_region_char(host[sizeof(prefix) - 1 + i]);
        if (valid)
            return true;
    }
    return false;
}

static bool is_path_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
           || (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.'
           || c == '~' || c == '/';
}

outbox_err outbox_sns_check_cert_url(outbox_error *err, const char *url)
{
    static const char scheme[] = "https://";
    const char *host;
    const char *path;
    size_t length;

    if (url == NULL)
        return outbox_error_set(err, OUTBOX_EINVAL,
                                OUTBOX_EVENTS_KIND_UNAUTHENTICATED,
                                "the SNS message has no SigningCertURL");
    length = strlen(url);
    if (length > SNS_URL_MAX
        || strncmp(url, scheme, sizeof(scheme) - 1) != 0)
        return outbox_error_set(err, OUTBOX_EINVAL,
                                OUTBOX_EVENTS_KIND_UNAUTHENTICATED,
                                "the SigningCertURL is not an https URL");

    /* The host ends at the path. A port, user info, query or fragment
     * never appears in SNS's URLs, so any of them fails the check below. */
    host = url + sizeof(scheme) - 1;
    path = strchr(host, '/');
    if (path == NULL || !is_sns_host(host, (size_t)(path - host)))
        return outbox_error_set(err, OUTBOX_EINVAL,
                                OUTBOX_EVENTS_KIND_UNAUTHENTICATED,
                                "the SigningCertURL host is not "
                                "sns.<region>.amazonaws.com");
    length = strlen(path);
    for (size_t i = 0; i < length; i++) {
        if (!is_path_char(path[i]))
            return outbox_error_set(err, OUTBOX_EINVAL,
                                    OUTBOX_EVENTS_KIND_UNAUTHENTICATED,
                                    "the SigningCertURL path has a "
                                    "character outside letters, digits "
                                    "and -._~/");
    }
    if (length < 5 || strcmp(path + length - 4, ".pem") != 0)
        return outbox_error_set(err, OUTBOX_EINVAL,
                                OUTBOX_EVENTS_KIND_UNAUTHENTICATED,
                                "the SigningCertURL path does not end in "
                                ".pem");
    return OUTBOX_EOK;
}

outbox_err outbox_sns_check_subscribe_url(outbox_error *err, const char *url)
{
    static const char scheme[] = "https://";
    const char *host;
    const char *path;

    if (url == NULL || strlen(url) > SNS_URL_MAX
        || strncmp(url, scheme, sizeof(scheme) - 1) != 0)
        return outbox_error_set(err, OUTBOX_EINVAL,
                                OUTBOX_EVENTS_KIND_UNAUTHENTICATED,
                                "the SubscribeURL is missing or not an "
                                "https URL");
    host = url + sizeof(scheme) - 1;
    path = strchr(host, '/');
    if (path == NULL || !is_sns_host(host, (size_t)(path - host)))
        return outbox_error_set(err, OUTBOX_EINVAL,
                                OUTBOX_EVENTS_KIND_UNAUTHENTICATED,
                                "the SubscribeURL host is not "
                                "sns.<region>.amazonaws.com");
    for (const char *p = path; *p != '\0'; p++) {
        if (*p <= ' ' || *p > '~')
            return outbox_error_set(err, OUTBOX_EINVAL,
                                    OUTBOX_EVENTS_KIND_UNAUTHENTICATED,
                                    "the SubscribeURL has a space, a "
                                    "control or a non-ASCII character");
    }
    return OUTBOX_EOK;
}

static outbox_err append_pair(outbox_buf *text, const char *name,
                              const char *value)
{
    outbox_err rc;

    if (value == NULL)
        return OUTBOX_EOK;
    rc = outbox__buf_puts(text, name);
    if (rc == OUTBOX_EOK)
        rc = outbox__buf_append(text, "\n", 1);
    if (rc == OUTBOX_EOK)
        rc = outbox__buf_puts(text, value);
    if (rc == OUTBOX_EOK)
        rc = outbox__buf_append(text, "\n", 1);
    return rc;
}

/* Builds the string that SNS signs for message's type (see the top of this
 * file). */
static outbox_err build_string_to_sign(outbox_buf *text,
                                       const outbox_sns_message *message)
{
    bool notification = message->type == OUTBOX_SNS_NOTIFICATION;
    const char *type = notification ? "Notification"
                       : message->type == OUTBOX_SNS_SUBSCRIPTION_CONFIRMATION
                           ? "SubscriptionConfirmation"
                           : "UnsubscribeConfirmation";
    outbox_err rc;

    rc = append_pair(text, "Message", message->message);
    if (rc == OUTBOX_EOK)
        rc = append_pair(text, "MessageId", message->message_id);
    if (rc == OUTBOX_EOK && notification)
        rc = append_pair(text, "Subject", message->subject);
    if (rc == OUTBOX_EOK && !notification)
        rc = append_pair(text, "SubscribeURL", message->subscribe_url);
    if (rc == OUTBOX_EOK)
        rc = append_pair(text, "Timestamp", message->timestamp);
    if (rc == OUTBOX_EOK && !notification)
        rc = append_pair(text, "Token", message->token);
    if (rc == OUTBOX_EOK)
        rc = append_pair(text, "TopicArn", message->topic_arn);
    if (rc == OUTBOX_EOK)
        rc = append_pair(text, "Type", type);
    return rc;
}

/* Reads the RSA public key of the PEM certificate; NULL if it has none. */
static EVP_PKEY *read_rsa_key(const char *cert_pem, size_t cert_size)
{
    BIO *bio;
    X509 *cert;
    EVP_PKEY *key = NULL;

    if (cert_size > INT32_MAX)
        return NULL;
    bio = BIO_new_mem_buf(cert_pem, (int)cert_size);
    if (bio == NULL)
        return NULL;
    cert = PEM_read_bio_X509(bio, NULL, NULL, NULL);
    BIO_free(bio);
    if (cert == NULL)
        return NULL;
    key = X509_get_pubkey(cert);
    X509_free(cert);
    if (key != NULL && EVP_PKEY_get_base_id(key) != EVP_PKEY_RSA) {
        EVP_PKEY_free(key);
        key = NULL;
    }
    return key;
}

outbox_err outbox_sns_verify(outbox_error *err,
                             const outbox_sns_message *message,
                             const char *cert_pem, size_t cert_size)
{
    const EVP_MD *digest = NULL;
    outbox_buf text;
    unsigned char *signature = NULL;
    size_t signature_size = 0;
    EVP_PKEY *key = NULL;
    EVP_MD_CTX *context = NULL;
    outbox_err rc;

    outbox__buf_init(&text, SNS_SIGNED_TEXT_MAX);
    if (message->signature_version != NULL
        && strcmp(message->signature_version, "1") == 0)
        digest = EVP_sha1();
    else if (message->signature_version != NULL
             && strcmp(message->signature_version, "2") == 0)
        digest = EVP_sha256();
    if (digest == NULL || message->signature == NULL) {
        rc = outbox_error_set(err, OUTBOX_EINVAL,
                              OUTBOX_EVENTS_KIND_UNAUTHENTICATED,
                              "the SNS SignatureVersion is not 1 or 2");
        goto cleanup;
    }
    rc = outbox__events_base64_decode(&signature, &signature_size, err,
                                      OUTBOX_EVENTS_KIND_UNAUTHENTICATED,
                                      "the SNS Signature", message->signature,
                                      OUTBOX_EVENT_TEXT_MAX);
    if (rc != OUTBOX_EOK)
        goto cleanup;
    key = read_rsa_key(cert_pem, cert_size);
    if (key == NULL) {
        rc = outbox_error_set(err, OUTBOX_EINVAL,
                              OUTBOX_EVENTS_KIND_UNAUTHENTICATED,
                              "the signing certificate is not a PEM "
                              "certificate with an RSA key");
        goto cleanup;
    }
    rc = build_string_to_sign(&text, message);
    if (rc != OUTBOX_EOK) {
        rc = outbox_error_set(err, rc, OUTBOX_EVENTS_KIND_LIMIT,
                              "the SNS message is too large to verify");
        goto cleanup;
    }

    /* EVP_DigestVerify uses PKCS#1 v1.5 padding for an RSA key by
     * default. */
    context = EVP_MD_CTX_new();
    if (context == NULL
        || EVP_DigestVerifyInit(context, NULL, digest, NULL, key) != 1) {
        rc = outbox_error_set(err, OUTBOX_ENOMEM, "internal",
                              "OpenSSL could not set up the RSA check");
        goto cleanup;
    }
    if (EVP_DigestVerify(context, signature, signature_size,
                         (const unsigned char *)text.data, text.size)
        != 1) {
        rc = outbox_error_set(err, OUTBOX_EINVAL,
                              OUTBOX_EVENTS_KIND_UNAUTHENTICATED,
                              "the SNS signature does not match the "
                              "message");
        goto cleanup;
    }
    rc = OUTBOX_EOK;

cleanup:
    /* A failed check leaves OpenSSL's error queue filled; empty it so that
     * a later, unrelated OpenSSL call on this thread does not report it. */
    if (rc != OUTBOX_EOK)
        ERR_clear_error();
    EVP_MD_CTX_free(context);
    EVP_PKEY_free(key);
    free(signature);
    outbox__buf_free(&text);
    return rc;
}

outbox_err outbox_sns_check_timestamp(outbox_error *err,
                                      const outbox_sns_message *message,
                                      int64_t now, int64_t max_age)
{
    int64_t sent = 0;

    if (!outbox__events_iso_time(&sent, message->timestamp))
        return outbox_error_set(err, OUTBOX_EINVAL,
                                OUTBOX_EVENTS_KIND_UNAUTHENTICATED,
                                "the SNS Timestamp is not an ISO 8601 "
                                "time");
    if (sent < now - max_age || sent > now + max_age)
        return outbox_error_set(err, OUTBOX_EINVAL,
                                OUTBOX_EVENTS_KIND_UNAUTHENTICATED,
                                "the SNS Timestamp is more than %lld s "
                                "away from now (stale_timestamp)",
                                (long long)max_age);
    return OUTBOX_EOK;
}
