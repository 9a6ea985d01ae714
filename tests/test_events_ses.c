/*
 * test_events_ses.c - Amazon SES events through SNS: reading the SNS
 * envelope, the signing certificate URL check, the RSA signature check
 * with a certificate made in the test, the timestamp window, and the SES
 * events that a Notification carries.
 */
#include <stdlib.h>

#include <cjson/cJSON.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "check.h"
#include "events_internal.h"
#include "internal.h"

/* 2025-03-05 10:10:00 UTC */
#define NOW 1741169400

#define SNS_ID "6f1d2c3b-0000-4000-8000-000000000001"
#define TOPIC "arn:aws:sns:eu-central-1:123456789012:erp-ses-events"
#define SES_ID "0102018e-1111-2222-3333-444444444444-000000"
#define CERT_URL \
    "https://sns.eu-central-1.amazonaws.com/SimpleNotificationService-test.pem"

/* ------------------------------------------------------------------ */
/* A self-signed certificate and signing made in the test              */
/* ------------------------------------------------------------------ */

typedef struct test_signer {
    EVP_PKEY *key;
    char *cert_pem;
    size_t cert_size;
} test_signer;

/* Makes an RSA key and a self-signed certificate for it, as PEM. */
static bool signer_create(test_signer *signer)
{
    X509 *cert = X509_new();
    X509_NAME *name;
    BIO *bio = BIO_new(BIO_s_mem());
    char *pem = NULL;
    long size;
    bool ok = false;

    memset(signer, 0, sizeof(*signer));
    signer->key = EVP_RSA_gen(2048);
    if (cert == NULL || bio == NULL || signer->key == NULL)
        goto cleanup;
    name = X509_get_subject_name(cert);
    if (X509_set_version(cert, 2) != 1
        || ASN1_INTEGER_set(X509_get_serialNumber(cert), 1) != 1
        || X509_gmtime_adj(X509_getm_notBefore(cert), 0) == NULL
        || X509_gmtime_adj(X509_getm_notAfter(cert), 3600) == NULL
        || X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                                      (const unsigned char *)"sns-test", -1,
                                      -1, 0)
               != 1
        || X509_set_issuer_name(cert, name) != 1
        || X509_set_pubkey(cert, signer->key) != 1
        || X509_sign(cert, signer->key, EVP_sha256()) == 0
        || PEM_write_bio_X509(bio, cert) != 1)
        goto cleanup;
    size = BIO_get_mem_data(bio, &pem);
    signer->cert_pem = outbox__strndup(pem, (size_t)size);
    signer->cert_size = (size_t)size;
    ok = signer->cert_pem != NULL;

cleanup:
    BIO_free(bio);
    X509_free(cert);
    return ok;
}

static void signer_free(test_signer *signer)
{
    EVP_PKEY_free(signer->key);
    free(signer->cert_pem);
}

/* Returns the base64 RSA PKCS#1 v1.5 signature of text (malloc'd). */
static char *sign_text(const test_signer *signer, const EVP_MD *digest,
                       const char *text)
{
    EVP_MD_CTX *context = EVP_MD_CTX_new();
    unsigned char signature[512];
    size_t size = sizeof(signature);
    char *encoded = NULL;

    if (context != NULL
        && EVP_DigestSignInit(context, NULL, digest, NULL, signer->key) == 1
        && EVP_DigestSign(context, signature, &size,
                          (const unsigned char *)text, strlen(text))
               == 1)
        encoded = outbox__base64(signature, size, NULL);
    EVP_MD_CTX_free(context);
    return encoded;
}

/* ------------------------------------------------------------------ */
/* SNS envelope                                                        */
/* ------------------------------------------------------------------ */

#define SNS_TIME "2025-03-05T09:00:03.000Z"
#define TOKEN "2336412f37fb687f5d51e6e2425aexample"
#define SUBSCRIBE_URL                                                     \
    "https://sns.eu-central-1.amazonaws.com/?Action=ConfirmSubscription" \
    "&TopicArn=" TOPIC "&Token=" TOKEN
#define NOTICE "Line one\nLine \"two\" \xc3\xa4"

/* The fields of one SNS message that a test signs and posts. */
typedef struct sns_fields {
    const char *type;
    const char *message;
    const char *subject;        /* NULL: no Subject */
    const char *version;
    const char *signature;
} sns_fields;

/* Builds the JSON body of an SNS message (malloc'd), with Token and
 * SubscribeURL for confirmations. */
static char *sns_body(const sns_fields *fields)
{
    cJSON *json = cJSON_CreateObject();
    char *body;

    cJSON_AddStringToObject(json, "Type", fields->type);
    cJSON_AddStringToObject(json, "MessageId", SNS_ID);
    if (strcmp(fields->type, "Notification") != 0) {
        cJSON_AddStringToObject(json, "Token", TOKEN);
        cJSON_AddStringToObject(json, "SubscribeURL", SUBSCRIBE_URL);
    }
    cJSON_AddStringToObject(json, "TopicArn", TOPIC);
    if (fields->subject != NULL)
        cJSON_AddStringToObject(json, "Subject", fields->subject);
    cJSON_AddStringToObject(json, "Message", fields->message);
    cJSON_AddStringToObject(json, "Timestamp", SNS_TIME);
    cJSON_AddStringToObject(json, "SignatureVersion", fields->version);
    cJSON_AddStringToObject(json, "Signature", fields->signature);
    cJSON_AddStringToObject(json, "SigningCertURL", CERT_URL);
    cJSON_AddStringToObject(json, "UnsubscribeURL",
                            "https://sns.eu-central-1.amazonaws.com/"
                            "?Action=Unsubscribe");
    body = cJSON_PrintUnformatted(json);
    cJSON_Delete(json);
    return body;
}

static void test_sns_parse_notification(void)
{
    static const char body[] =
        "{\"Type\":\"Notification\",\"MessageId\":\"" SNS_ID "\","
        "\"TopicArn\":\"" TOPIC "\",\"Subject\":null,"
        "\"Message\":\"{\\\"notificationType\\\":\\\"Bounce\\\"}\","
        "\"Timestamp\":\"" SNS_TIME "\",\"SignatureVersion\":\"1\","
        "\"Signature\":\"c2ln\",\"SigningCertURL\":\"" CERT_URL "\","
        "\"UnsubscribeURL\":\"https://sns.eu-central-1.amazonaws.com/\"}";
    outbox_sns_message message;
    outbox_error err = {{0}, {0}};

    CHECK_CASE("sns parse notification");
    CHECK_INT(outbox_sns_parse(&message, &err, body, strlen(body)),
              OUTBOX_EOK);
    CHECK_INT(message.type, OUTBOX_SNS_NOTIFICATION);
    CHECK_STR(message.message_id, SNS_ID);
    CHECK_STR(message.topic_arn, TOPIC);
    CHECK_STR(message.subject, NULL);
    CHECK_STR(message.message, "{\"notificationType\":\"Bounce\"}");
    CHECK_STR(message.timestamp, SNS_TIME);
    CHECK_STR(message.token, NULL);
    CHECK_STR(message.subscribe_url, NULL);
    CHECK_STR(message.signature_version, "1");
    CHECK_STR(message.signature, "c2ln");
    CHECK_STR(message.signing_cert_url, CERT_URL);
    outbox_sns_message_free(&message);
    outbox_sns_message_free(&message);
}

static void test_sns_parse_confirmation(void)
{
    sns_fields fields = {"SubscriptionConfirmation", "confirm please", NULL,
                         "1", "c2ln"};
    char *body = sns_body(&fields);
    outbox_sns_message message;
    outbox_error err = {{0}, {0}};

    CHECK_CASE("sns parse confirmation");
    CHECK_INT(outbox_sns_parse(&message, &err, body, strlen(body)),
              OUTBOX_EOK);
    CHECK_INT(message.type, OUTBOX_SNS_SUBSCRIPTION_CONFIRMATION);
    CHECK_STR(message.token, TOKEN);
    CHECK_STR(message.subscribe_url, SUBSCRIBE_URL);
    CHECK_STR(message.message, "confirm please");
    outbox_sns_message_free(&message);
    free(body);
}

/* Bodies that outbox_sns_parse rejects, with the kind and a word of the
 * text that it must give. */
static void test_sns_parse_rejects(void)
{
    static const struct {
        const char *name;
        const char *body;
        const char *kind;
        const char *text;
    } cases[] = {
        {"raw delivery",
         "{\"notificationType\":\"Bounce\",\"bounce\":{}}",
         "sns_envelope_missing", "raw message delivery"},
        {"no type", "{\"MessageId\":\"x\"}", "invalid_sns_message", "Type"},
        {"unknown type", "{\"Type\":\"Hello\"}", "invalid_sns_message",
         "Hello"},
        {"no signature",
         "{\"Type\":\"Notification\",\"MessageId\":\"m\",\"TopicArn\":\"t\","
         "\"Message\":\"x\",\"Timestamp\":\"t\",\"SignatureVersion\":\"1\","
         "\"SigningCertURL\":\"u\"}",
         "invalid_sns_message", "Signature"},
        {"confirmation without token",
         "{\"Type\":\"SubscriptionConfirmation\",\"MessageId\":\"m\","
         "\"TopicArn\":\"t\",\"Message\":\"x\",\"Timestamp\":\"t\","
         "\"SignatureVersion\":\"1\",\"Signature\":\"s\","
         "\"SigningCertURL\":\"u\",\"SubscribeURL\":\"u\"}",
         "invalid_sns_message", "Token"},
        {"number field",
         "{\"Type\":\"Notification\",\"MessageId\":7}",
         "invalid_sns_message", "MessageId"},
        {"array", "[]", "invalid_sns_message", "object"},
        {"truncated", "{\"Type\":\"Notif", "invalid_json", "JSON"},
        {"trailing bytes", "{\"Type\":\"Notification\"} x", "invalid_json",
         "after"},
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        outbox_sns_message message;
        outbox_error err = {{0}, {0}};

        CHECK_CASE(cases[i].name);
        CHECK_INT(outbox_sns_parse(&message, &err, cases[i].body,
                                   strlen(cases[i].body)),
                  OUTBOX_EINVAL);
        CHECK_STR(err.kind, cases[i].kind);
        CHECK_CONTAINS(err.text, cases[i].text);
        CHECK_STR(message.message_id, NULL);
    }
}

static void test_sns_cert_url(void)
{
    static const struct {
        const char *url;
        bool valid;
    } cases[] = {
        {CERT_URL, true},
        {"https://sns.us-east-1.amazonaws.com/SimpleNotificationService-"
         "01d088a6f77103d0fe307c0069e40ed6.pem",
         true},
        {"https://sns.cn-north-1.amazonaws.com.cn/a.pem", true},
        {"http://sns.eu-central-1.amazonaws.com/x.pem", false},
        {"https://certs.example.com/x.pem", false},
        {"https://sns.us-east-1.amazonaws.com.evil.example/x.pem", false},
        {"https://sns.us-east-1.amazonaws.com.cn.evil.example/x.pem", false},
        {"https://evil.example/sns.us-east-1.amazonaws.com/x.pem", false},
        {"https://sns.us-east-1.amazonaws.com@evil.example/x.pem", false},
        {"https://evil.example@sns.us-east-1.amazonaws.com/x.pem", false},
        {"https://sns.us-east-1.amazonaws.com:8443/x.pem", false},
        {"https://sns.us-east-1.amazonaws.com/x.pem?x=1", false},
        {"https://sns.us-east-1.amazonaws.com/x.pem#a", false},
        {"https://sns.us-east-1.amazonaws.com/x.txt", false},
        {"https://sns.us-east-1.amazonaws.com/x.pem.txt", false},
        {"https://sns.us-east-1.amazonaws.com", false},
        {"https://sns.us-east-1.amazonaws.com/", false},
        {"https://sns.ab.amazonaws.com/x.pem", false},
        {"https://sns.a.b.amazonaws.com/x.pem", false},
        {"https://xsns.us-east-1.amazonaws.com/x.pem", false},
        {"https://sns.us-east-1.amazonaws.community/x.pem", false},
        {"HTTPS://sns.us-east-1.amazonaws.com/x.pem", false},
        {"", false},
    };
    outbox_error err = {{0}, {0}};

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        CHECK_CASE(cases[i].url);
        memset(&err, 0, sizeof(err));
        CHECK_INT(outbox_sns_check_cert_url(&err, cases[i].url),
                  cases[i].valid ? OUTBOX_EOK : OUTBOX_EINVAL);
        if (!cases[i].valid)
            CHECK_STR(err.kind, "unauthenticated");
    }
    CHECK_CASE("cert url null");
    CHECK_INT(outbox_sns_check_cert_url(&err, NULL), OUTBOX_EINVAL);
}

static void test_sns_subscribe_url(void)
{
    static const struct {
        const char *url;
        bool valid;
    } cases[] = {
        {"https://sns.eu-central-1.amazonaws.com/?Action=ConfirmSubscription"
         "&TopicArn=arn:aws:sns:eu-central-1:123456789012:outbox-events"
         "&Token=2336412f37fb687f5d51e6e2425c464de",
         true},
        {"https://sns.cn-north-1.amazonaws.com.cn/?Action=Confirm", true},
        {"http://sns.eu-central-1.amazonaws.com/?Action=Confirm", false},
        {"https://sns.evil.s3.amazonaws.com/?Action=Confirm", false},
        {"https://sns.eu-central-1.amazonaws.com.evil.example/?A=1", false},
        {"https://sns.eu-central-1.amazonaws.com:8443/?A=1", false},
        {"https://evil.example@sns.eu-central-1.amazonaws.com/?A=1", false},
        {"https://sns.eu-central-1.amazonaws.com?A=1", false},
        {"https://sns.eu-central-1.amazonaws.com/?A=1 2", false},
        {"https://sns.eu-central-1.amazonaws.com/?A=\r\nX: 1", false},
        {"https://127.0.0.1/?Action=ConfirmSubscription", false},
        {"", false},
    };
    outbox_error err = {{0}, {0}};

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        CHECK_CASE(cases[i].url);
        memset(&err, 0, sizeof(err));
        CHECK_INT(outbox_sns_check_subscribe_url(&err, cases[i].url),
                  cases[i].valid ? OUTBOX_EOK : OUTBOX_EINVAL);
        if (!cases[i].valid)
            CHECK_STR(err.kind, "unauthenticated");
    }
    CHECK_CASE("subscribe url null");
    CHECK_INT(outbox_sns_check_subscribe_url(&err, NULL), OUTBOX_EINVAL);
}

/* ------------------------------------------------------------------ */
/* SNS signatures                                                      */
/* ------------------------------------------------------------------ */

/* Strings to sign, written out by hand from the AWS documentation so that
 * they check the library's own construction. */
#define SIGNED_NOTIFICATION                                           \
    "Message\n" NOTICE "\nMessageId\n" SNS_ID "\nTimestamp\n" SNS_TIME \
    "\nTopicArn\n" TOPIC "\nType\nNotification\n"
#define SIGNED_NOTIFICATION_SUBJECT                                   \
    "Message\n" NOTICE "\nMessageId\n" SNS_ID "\nSubject\nBounce report" \
    "\nTimestamp\n" SNS_TIME "\nTopicArn\n" TOPIC "\nType\nNotification\n"
#define SIGNED_CONFIRMATION(type)                                     \
    "Message\nconfirm please\nMessageId\n" SNS_ID "\nSubscribeURL\n"  \
    SUBSCRIBE_URL "\nTimestamp\n" SNS_TIME "\nToken\n" TOKEN          \
    "\nTopicArn\n" TOPIC "\nType\n" type "\n"

/* Signs text, posts it as an SNS message with fields, and returns what
 * outbox_sns_verify returns for it. */
static outbox_err sign_and_verify(const test_signer *signer,
                                  const test_signer *checker,
                                  sns_fields fields, const EVP_MD *digest,
                                  const char *text, bool flip,
                                  outbox_error *err)
{
    char *signature = sign_text(signer, digest, text);
    char *body;
    outbox_sns_message message;
    outbox_err rc;

    if (signature == NULL)
        return OUTBOX_ENOMEM;

    /* Flipping one bit of the first base64 character keeps it valid
     * base64 but changes the first signature byte. */
    if (flip)
        signature[0] = signature[0] == 'A' ? 'B' : 'A';
    fields.signature = signature;
    body = sns_body(&fields);
    rc = outbox_sns_parse(&message, err, body, strlen(body));
    if (rc == OUTBOX_EOK)
        rc = outbox_sns_verify(err, &message, checker->cert_pem,
                               checker->cert_size);
    outbox_sns_message_free(&message);
    free(body);
    free(signature);
    return rc;
}

static void test_sns_verify(const test_signer *signer,
                            const test_signer *other)
{
    static const struct {
        const char *name;
        sns_fields fields;
        bool sha256;
        const char *text;
        bool flip;
        bool other_cert;
        outbox_err want;
    } cases[] = {
        {"v1 notification",
         {"Notification", NOTICE, NULL, "1", NULL}, false,
         SIGNED_NOTIFICATION, false, false, OUTBOX_EOK},
        {"v2 notification",
         {"Notification", NOTICE, NULL, "2", NULL}, true,
         SIGNED_NOTIFICATION, false, false, OUTBOX_EOK},
        {"v1 notification with subject",
         {"Notification", NOTICE, "Bounce report", "1", NULL}, false,
         SIGNED_NOTIFICATION_SUBJECT, false, false, OUTBOX_EOK},
        {"v1 subscription confirmation",
         {"SubscriptionConfirmation", "confirm please", NULL, "1", NULL},
         false, SIGNED_CONFIRMATION("SubscriptionConfirmation"), false,
         false, OUTBOX_EOK},
        {"v2 unsubscribe confirmation",
         {"UnsubscribeConfirmation", "confirm please", NULL, "2", NULL},
         true, SIGNED_CONFIRMATION("UnsubscribeConfirmation"), false, false,
         OUTBOX_EOK},
        {"flipped signature byte",
         {"Notification", NOTICE, NULL, "1", NULL}, false,
         SIGNED_NOTIFICATION, true, false, OUTBOX_EINVAL},
        {"flipped signature byte v2",
         {"Notification", NOTICE, NULL, "2", NULL}, true,
         SIGNED_NOTIFICATION, true, false, OUTBOX_EINVAL},
        {"message changed after signing",
         {"Notification", NOTICE "!", NULL, "1", NULL}, false,
         SIGNED_NOTIFICATION, false, false, OUTBOX_EINVAL},
        {"subject added after signing",
         {"Notification", NOTICE, "Bounce report", "1", NULL}, false,
         SIGNED_NOTIFICATION, false, false, OUTBOX_EINVAL},
        {"v1 signed with sha256",
         {"Notification", NOTICE, NULL, "1", NULL}, true,
         SIGNED_NOTIFICATION, false, false, OUTBOX_EINVAL},
        {"v2 signed with sha1",
         {"Notification", NOTICE, NULL, "2", NULL}, false,
         SIGNED_NOTIFICATION, false, false, OUTBOX_EINVAL},
        {"version 3",
         {"Notification", NOTICE, NULL, "3", NULL}, true,
         SIGNED_NOTIFICATION, false, false, OUTBOX_EINVAL},
        {"another certificate",
         {"Notification", NOTICE, NULL, "1", NULL}, false,
         SIGNED_NOTIFICATION, false, true, OUTBOX_EINVAL},
        {"confirmation type changed",
         {"UnsubscribeConfirmation", "confirm please", NULL, "1", NULL},
         false, SIGNED_CONFIRMATION("SubscriptionConfirmation"), false,
         false, OUTBOX_EINVAL},
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        outbox_error err = {{0}, {0}};

        CHECK_CASE(cases[i].name);
        CHECK_INT(sign_and_verify(signer, cases[i].other_cert ? other
                                                              : signer,
                                  cases[i].fields,
                                  cases[i].sha256 ? EVP_sha256()
                                                  : EVP_sha1(),
                                  cases[i].text, cases[i].flip, &err),
                  cases[i].want);
        if (cases[i].want != OUTBOX_EOK)
            CHECK_STR(err.kind, "unauthenticated");
    }
}

/* A signature that is not base64, and a certificate that is not PEM, fail
 * as unauthenticated, never as a crash. */
static void test_sns_verify_malformed(const test_signer *signer)
{
    static const char pem_garbage[] = "-----BEGIN CERTIFICATE-----\nAAAA\n";
    sns_fields fields = {"Notification", NOTICE, NULL, "1", "not base64!"};
    char *body = sns_body(&fields);
    outbox_sns_message message;
    outbox_error err = {{0}, {0}};

    CHECK_CASE("signature not base64");
    CHECK_INT(outbox_sns_parse(&message, &err, body, strlen(body)),
              OUTBOX_EOK);
    CHECK_INT(outbox_sns_verify(&err, &message, signer->cert_pem,
                                signer->cert_size),
              OUTBOX_EINVAL);
    CHECK_STR(err.kind, "unauthenticated");
    CHECK_CONTAINS(err.text, "base64");

    CHECK_CASE("certificate not pem");
    free(message.signature);
    message.signature = outbox__strdup("c2lnbmF0dXJl");
    memset(&err, 0, sizeof(err));
    CHECK_INT(outbox_sns_verify(&err, &message, pem_garbage,
                                strlen(pem_garbage)),
              OUTBOX_EINVAL);
    CHECK_STR(err.kind, "unauthenticated");
    CHECK_CONTAINS(err.text, "certificate");
    outbox_sns_message_free(&message);
    free(body);
}

static void test_sns_timestamp(void)
{
    static const struct {
        const char *name;
        const char *timestamp;
        outbox_err want;
    } cases[] = {
        {"timestamp now", "2025-03-05T10:10:00.000Z", OUTBOX_EOK},
        {"timestamp 9 min old", "2025-03-05T10:01:00.000Z", OUTBOX_EOK},
        {"timestamp 2 h old", "2025-03-05T08:10:00.000Z", OUTBOX_EINVAL},
        {"timestamp 11 min ahead", "2025-03-05T10:21:00Z", OUTBOX_EINVAL},
        {"timestamp with offset", "2025-03-05T11:10:00+01:00", OUTBOX_EOK},
        {"timestamp not iso", "05.03.2025 10:10", OUTBOX_EINVAL},
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        outbox_sns_message message;
        outbox_error err = {{0}, {0}};

        CHECK_CASE(cases[i].name);
        memset(&message, 0, sizeof(message));
        message.timestamp = (char *)cases[i].timestamp;
        CHECK_INT(outbox_sns_check_timestamp(&err, &message, NOW, 600),
                  cases[i].want);
        if (cases[i].want != OUTBOX_EOK)
            CHECK_STR(err.kind, "unauthenticated");
    }
}

/* ------------------------------------------------------------------ */
/* SES events                                                          */
/* ------------------------------------------------------------------ */

/* 2025-03-05 09:00:00, :02 and 09:30:00 UTC */
#define T_MAIL 1741165200
#define T_BOUNCE 1741165202
#define T_COMPLAINT 1741167000

#define MAIL_TWO                                                        \
    "\"mail\":{\"timestamp\":\"2025-03-05T09:00:00.000Z\","             \
    "\"messageId\":\"" SES_ID "\",\"source\":\"billing@example.com\"," \
    "\"destination\":[\"gibtsnicht@example.org\",\"kunde@example.org\"]"
#define MAIL_ONE                                                        \
    "\"mail\":{\"timestamp\":\"2025-03-05T09:00:00.000Z\","             \
    "\"messageId\":\"" SES_ID "\",\"destination\":[\"kunde@example.org\"]"
#define TAGS_1201 ",\"tags\":{\"outbox_id\":[\"1201\"]}"

/* The identity notification of the SES bounce case, as SES sends it. */
#define SES_BOUNCE_A                                                      \
    "{\"notificationType\":\"Bounce\",\"bounce\":{\"bounceType\":"       \
    "\"Permanent\",\"bounceSubType\":\"General\",\"bouncedRecipients\":" \
    "[{\"emailAddress\":\"gibtsnicht@example.org\",\"action\":"          \
    "\"failed\",\"status\":\"5.1.1\",\"diagnosticCode\":"                \
    "\"smtp; 550 5.1.1 no such mailbox\"}],\"timestamp\":"               \
    "\"2025-03-05T09:00:02.000Z\",\"feedbackId\":"                       \
    "\"0102018e-aaaa-bbbb-cccc-000000000001-000000\"}," MAIL_TWO "}}"

/* Wraps the SES JSON ses in an SNS Notification, as a JSON string in
 * Message, or as the object itself when as_object is set. */
static char *ses_body(const char *ses, bool as_object)
{
    cJSON *json = cJSON_CreateObject();
    char *body;

    cJSON_AddStringToObject(json, "Type", "Notification");
    cJSON_AddStringToObject(json, "MessageId", SNS_ID);
    cJSON_AddStringToObject(json, "TopicArn", TOPIC);
    if (as_object)
        cJSON_AddItemToObject(json, "Message", cJSON_Parse(ses));
    else
        cJSON_AddStringToObject(json, "Message", ses);
    cJSON_AddStringToObject(json, "Timestamp", SNS_TIME);
    cJSON_AddStringToObject(json, "SignatureVersion", "1");
    cJSON_AddStringToObject(json, "Signature", "c2ln");
    cJSON_AddStringToObject(json, "SigningCertURL", CERT_URL);
    body = cJSON_PrintUnformatted(json);
    cJSON_Delete(json);
    return body;
}

typedef struct want_event {
    outbox_event_type type;
    outbox_bounce_kind bounce;
    const char *provider_event;
    const char *recipient;
    const char *reason;
    int64_t outbox_id;
    int64_t occurred_at;
} want_event;

/* Checks one parsed SES event against want; every SES event here comes
 * from message SES_ID in notification SNS_ID. */
static void check_ses_event(const outbox_event *got, const want_event *want)
{
    char id[256];

    snprintf(id, sizeof(id), "%s%s%s", SNS_ID, want->recipient ? ":" : "",
             want->recipient ? want->recipient : "");
    CHECK_STR(outbox_event_type_name(got->type),
              outbox_event_type_name(want->type));
    CHECK_STR(outbox_bounce_kind_name(got->bounce),
              outbox_bounce_kind_name(want->bounce));
    CHECK_STR(got->provider_event, want->provider_event);
    CHECK_STR(got->recipient, want->recipient);
    CHECK_STR(got->reason, want->reason);
    CHECK_INT(got->outbox_id, want->outbox_id);
    CHECK_INT(got->occurred_at, want->occurred_at);
    CHECK_STR(got->event_id, id);
    CHECK_STR(got->provider_message_id, SES_ID);
    CHECK(got->raw != NULL);
    if (got->raw != NULL)
        CHECK(got->raw[0] == '{');
}

static const want_event bounce_a = {
    OUTBOX_EVENT_BOUNCED, OUTBOX_BOUNCE_HARD, "Bounce",
    "gibtsnicht@example.org", "smtp; 550 5.1.1 no such mailbox", 0,
    T_BOUNCE};

/* The bounce case: Message is a JSON string; a proxy may have unwrapped
 * it into an object, which is read the same way. */
static void test_ses_bounce_message_shapes(void)
{
    for (int as_object = 0; as_object <= 1; as_object++) {
        char *body = ses_body(SES_BOUNCE_A, as_object);
        outbox_event_batch batch = {NULL, 0};
        outbox_error err = {{0}, {0}};

        CHECK_CASE(as_object ? "ses message as object"
                             : "ses message as string");
        CHECK_INT(outbox_events_parse_ses(&batch, &err, body, strlen(body)),
                  OUTBOX_EOK);
        CHECK_INT(batch.count, 1);
        if (batch.count == 1) {
            check_ses_event(&batch.events[0], &bounce_a);
            CHECK_CONTAINS(batch.events[0].raw,
                           "\"notificationType\":\"Bounce\"");
        }
        outbox_event_batch_free(&batch);
        CHECK_INT(batch.count, 0);
        free(body);
    }
}

#define MAX_WANT 3

/* SES events in both type fields, and what each gives. */
static void test_ses_event_table(void)
{
    static const struct {
        const char *name;
        const char *ses;
        size_t count;
        want_event want[MAX_WANT];
    } cases[] = {
        {"complaint via event publishing",
         "{\"eventType\":\"Complaint\",\"complaint\":{\"complainedRecipients"
         "\":[{\"emailAddress\":\"kunde@example.org\"}],"
         "\"complaintFeedbackType\":\"abuse\",\"timestamp\":"
         "\"2025-03-05T09:30:00.000Z\",\"feedbackId\":\"f2\"}," MAIL_TWO
         TAGS_1201 "}}",
         1,
         {{OUTBOX_EVENT_COMPLAINED, OUTBOX_BOUNCE_NONE, "Complaint",
           "kunde@example.org", "abuse", 1201, T_COMPLAINT}}},
        {"transient bounce of two",
         "{\"eventType\":\"Bounce\",\"bounce\":{\"bounceType\":\"Transient\","
         "\"bounceSubType\":\"MailboxFull\",\"bouncedRecipients\":["
         "{\"emailAddress\":\"gibtsnicht@example.org\",\"status\":\"4.2.2\"},"
         "{\"emailAddress\":\"kunde@example.org\"}],"
         "\"timestamp\":\"2025-03-05T09:00:02Z\"}," MAIL_TWO TAGS_1201 "}}",
         2,
         {{OUTBOX_EVENT_BOUNCED, OUTBOX_BOUNCE_SOFT, "Bounce",
           "gibtsnicht@example.org", "4.2.2", 1201, T_BOUNCE},
          {OUTBOX_EVENT_BOUNCED, OUTBOX_BOUNCE_SOFT, "Bounce",
           "kunde@example.org", "MailboxFull", 1201, T_BOUNCE}}},
        {"undetermined bounce",
         "{\"notificationType\":\"Bounce\",\"bounce\":{\"bounceType\":"
         "\"Undetermined\",\"bouncedRecipients\":[{\"emailAddress\":"
         "\"kunde@example.org\"}]}," MAIL_ONE "}}",
         1,
         {{OUTBOX_EVENT_BOUNCED, OUTBOX_BOUNCE_SOFT, "Bounce",
           "kunde@example.org", NULL, 0, T_MAIL}}},
        {"delivery to two",
         "{\"notificationType\":\"Delivery\",\"delivery\":{\"timestamp\":"
         "\"2025-03-05T09:30:00.000Z\",\"recipients\":["
         "\"gibtsnicht@example.org\",\"kunde@example.org\"],"
         "\"smtpResponse\":\"250 2.6.0 Message received\"}," MAIL_TWO "}}",
         2,
         {{OUTBOX_EVENT_DELIVERED, OUTBOX_BOUNCE_NONE, "Delivery",
           "gibtsnicht@example.org", "250 2.6.0 Message received", 0,
           T_COMPLAINT},
          {OUTBOX_EVENT_DELIVERED, OUTBOX_BOUNCE_NONE, "Delivery",
           "kunde@example.org", "250 2.6.0 Message received", 0,
           T_COMPLAINT}}},
        {"delivery delay",
         "{\"eventType\":\"DeliveryDelay\",\"deliveryDelay\":{\"delayType\":"
         "\"TransientCommunicationFailure\",\"delayedRecipients\":[{"
         "\"emailAddress\":\"kunde@example.org\",\"status\":\"4.4.1\","
         "\"diagnosticCode\":\"smtp; 421 4.4.1 try later\"}],"
         "\"timestamp\":\"2025-03-05T09:30:00.000Z\"}," MAIL_ONE "}}",
         1,
         {{OUTBOX_EVENT_DEFERRED, OUTBOX_BOUNCE_NONE, "DeliveryDelay",
           "kunde@example.org", "smtp; 421 4.4.1 try later", 0,
           T_COMPLAINT}}},
        {"reject",
         "{\"eventType\":\"Reject\",\"reject\":{\"reason\":\"Bad content\"},"
         MAIL_TWO TAGS_1201 "}}",
         2,
         {{OUTBOX_EVENT_DROPPED, OUTBOX_BOUNCE_NONE, "Reject",
           "gibtsnicht@example.org", "Bad content", 1201, T_MAIL},
          {OUTBOX_EVENT_DROPPED, OUTBOX_BOUNCE_NONE, "Reject",
           "kunde@example.org", "Bad content", 1201, T_MAIL}}},
        {"send",
         "{\"eventType\":\"Send\",\"send\":{}," MAIL_ONE TAGS_1201 "}}",
         1,
         {{OUTBOX_EVENT_ACCEPTED, OUTBOX_BOUNCE_NONE, "Send",
           "kunde@example.org", NULL, 1201, T_MAIL}}},
        {"rendering failure",
         "{\"eventType\":\"Rendering Failure\",\"failure\":{\"errorMessage"
         "\":\"Attribute 'name' is not present\",\"templateName\":\"t\"},"
         MAIL_ONE "}}",
         1,
         {{OUTBOX_EVENT_DROPPED, OUTBOX_BOUNCE_NONE, "Rendering Failure",
           "kunde@example.org", "Attribute 'name' is not present", 0,
           T_MAIL}}},
        {"open with one destination",
         "{\"eventType\":\"Open\",\"open\":{\"timestamp\":"
         "\"2025-03-05T09:30:00.000Z\",\"ipAddress\":\"192.0.2.1\"},"
         MAIL_ONE "}}",
         1,
         {{OUTBOX_EVENT_OPENED, OUTBOX_BOUNCE_NONE, "Open",
           "kunde@example.org", NULL, 0, T_COMPLAINT}}},
        {"click with two destinations",
         "{\"eventType\":\"Click\",\"click\":{\"timestamp\":"
         "\"2025-03-05T09:30:00.000Z\",\"link\":\"https://example.com/\"},"
         MAIL_TWO "}}",
         1,
         {{OUTBOX_EVENT_CLICKED, OUTBOX_BOUNCE_NONE, "Click", NULL, NULL,
           0, T_COMPLAINT}}},
        {"subscription unsubscribe all",
         "{\"eventType\":\"Subscription\",\"subscription\":{\"contactList\":"
         "\"news\",\"timestamp\":\"2025-03-05T09:30:00.000Z\","
         "\"newTopicPreferences\":{\"unsubscribeAll\":true}}," MAIL_ONE "}}",
         1,
         {{OUTBOX_EVENT_UNSUBSCRIBED, OUTBOX_BOUNCE_NONE, "Subscription",
           "kunde@example.org", NULL, 0, T_COMPLAINT}}},
        {"subscription change of topics",
         "{\"eventType\":\"Subscription\",\"subscription\":{"
         "\"newTopicPreferences\":{\"unsubscribeAll\":false}}," MAIL_ONE
         "}}",
         1,
         {{OUTBOX_EVENT_OTHER, OUTBOX_BOUNCE_NONE, "Subscription",
           "kunde@example.org", NULL, 0, T_MAIL}}},
        {"unknown event type",
         "{\"eventType\":\"Teleport\",\"teleport\":{\"to\":\"mars\"},"
         MAIL_ONE TAGS_1201 "}}",
         1,
         {{OUTBOX_EVENT_OTHER, OUTBOX_BOUNCE_NONE, "Teleport",
           "kunde@example.org", NULL, 1201, T_MAIL}}},
        {"outbox id tag not a number",
         "{\"eventType\":\"Send\"," MAIL_ONE
         ",\"tags\":{\"outbox_id\":[\"12a\"]}}}",
         1,
         {{OUTBOX_EVENT_ACCEPTED, OUTBOX_BOUNCE_NONE, "Send",
           "kunde@example.org", NULL, 0, T_MAIL}}},
        {"bounce without recipients",
         "{\"notificationType\":\"Bounce\",\"bounce\":{\"bounceType\":"
         "\"Permanent\"}," MAIL_ONE "}}",
         0,
         {{OUTBOX_EVENT_OTHER, OUTBOX_BOUNCE_NONE, NULL, NULL, NULL, 0,
           0}}},
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *body = ses_body(cases[i].ses, false);
        outbox_event_batch batch = {NULL, 0};
        outbox_error err = {{0}, {0}};

        CHECK_CASE(cases[i].name);
        CHECK_INT(outbox_events_parse_ses(&batch, &err, body, strlen(body)),
                  OUTBOX_EOK);
        CHECK_INT(batch.count, cases[i].count);
        for (size_t k = 0; k < batch.count && k < cases[i].count; k++)
            check_ses_event(&batch.events[k], &cases[i].want[k]);
        outbox_event_batch_free(&batch);
        free(body);
    }
}

/* Bodies that outbox_events_parse_ses rejects; the batch stays empty. */
static void test_ses_rejects(void)
{
    static const struct {
        const char *name;
        const char *body;
        outbox_err want;
        const char *kind;
    } cases[] = {
        {"raw delivery", SES_BOUNCE_A, OUTBOX_EINVAL,
         "sns_envelope_missing"},
        {"subscription confirmation",
         "{\"Type\":\"SubscriptionConfirmation\",\"Message\":\"x\"}",
         OUTBOX_EINVAL, "sns_not_notification"},
        {"truncated body", "{\"Type\":\"Notification\",\"Mess",
         OUTBOX_EINVAL, "invalid_json"},
        {"empty body", "", OUTBOX_EINVAL, "invalid_json"},
        {"body not UTF-8", "{\"Type\":\"Notification\",\"Subject\":\"\xc3\"}",
         OUTBOX_EINVAL, "invalid_json"},
        {"truncated message",
         "{\"Type\":\"Notification\",\"Message\":\"{\\\"eventType\\\":\"}",
         OUTBOX_EINVAL, "invalid_json"},
        {"message without type",
         "{\"Type\":\"Notification\",\"Message\":\"{\\\"mail\\\":{}}\"}",
         OUTBOX_EINVAL, "invalid_ses_event"},
        {"message a number", "{\"Type\":\"Notification\",\"Message\":7}",
         OUTBOX_EINVAL, "invalid_sns_message"},
        {"recipients not a list",
         "{\"Type\":\"Notification\",\"Message\":\"{\\\"eventType\\\":"
         "\\\"Delivery\\\",\\\"delivery\\\":{\\\"recipients\\\":7}}\"}",
         OUTBOX_EINVAL, "invalid_ses_event"},
        {"recipient without address",
         "{\"Type\":\"Notification\",\"Message\":\"{\\\"eventType\\\":"
         "\\\"Delivery\\\",\\\"delivery\\\":{\\\"recipients\\\":[\\\"a@x.io"
         "\\\",{}]}}\"}",
         OUTBOX_EINVAL, "invalid_ses_event"},
        {"array body", "[]", OUTBOX_EINVAL, "invalid_sns_message"},
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        outbox_event_batch batch = {NULL, 0};
        outbox_error err = {{0}, {0}};

        CHECK_CASE(cases[i].name);
        CHECK_INT(outbox_events_parse_ses(&batch, &err, cases[i].body,
                                          strlen(cases[i].body)),
                  cases[i].want);
        CHECK_STR(err.kind, cases[i].kind);
        CHECK_INT(batch.count, 0);
        CHECK(batch.events == NULL);
    }
}

/* The first message after event publishing is turned on is plain text,
 * and an event without "mail" or an SNS MessageId still parses. */
static void test_ses_optional_parts(void)
{
    static const char notice[] =
        "{\"Type\":\"Notification\",\"MessageId\":\"n1\",\"Message\":"
        "\"Successfully validated SNS topic for Amazon SES event "
        "publishing.\"}";
    static const char bare[] =
        "{\"Type\":\"Notification\",\"Message\":\"{\\\"eventType\\\":"
        "\\\"Delivery\\\",\\\"delivery\\\":{\\\"recipients\\\":"
        "[\\\"a@x.io\\\"]}}\"}";
    outbox_event_batch batch = {NULL, 0};
    outbox_error err = {{0}, {0}};
    char *first_id = NULL;

    CHECK_CASE("ses text notice");
    CHECK_INT(outbox_events_parse_ses(&batch, &err, notice, strlen(notice)),
              OUTBOX_EOK);
    CHECK_INT(batch.count, 0);

    CHECK_CASE("ses event without mail or message id");
    CHECK_INT(outbox_events_parse_ses(&batch, &err, bare, strlen(bare)),
              OUTBOX_EOK);
    CHECK_INT(batch.count, 1);
    if (batch.count == 1) {
        CHECK_STR(batch.events[0].recipient, "a@x.io");
        CHECK_STR(batch.events[0].provider_message_id, NULL);
        CHECK_STR(batch.events[0].reason, NULL);
        CHECK_INT(batch.events[0].outbox_id, 0);
        CHECK_INT(batch.events[0].occurred_at, 0);
        CHECK_CONTAINS(batch.events[0].event_id, "sha256:");
        CHECK_CONTAINS(batch.events[0].event_id, ":a@x.io");
        CHECK_INT(strlen(batch.events[0].event_id),
                  strlen("sha256:") + 64 + strlen(":a@x.io"));
        first_id = outbox__strdup(batch.events[0].event_id);
    }
    outbox_event_batch_free(&batch);

    CHECK_CASE("ses derived id repeats");
    CHECK_INT(outbox_events_parse_ses(&batch, &err, bare, strlen(bare)),
              OUTBOX_EOK);
    if (batch.count == 1)
        CHECK_STR(batch.events[0].event_id, first_id);
    outbox_event_batch_free(&batch);
    free(first_id);
}

/* Builds an SES Delivery event for count recipients r0@x.io, r1@x.io and
 * so on, wrapped in SNS. */
static char *delivery_for(size_t count)
{
    outbox_buf ses;
    char *body = NULL;

    outbox__buf_init(&ses, SIZE_MAX);
    outbox__buf_puts(&ses, "{\"eventType\":\"Delivery\",\"delivery\":"
                           "{\"recipients\":[");
    for (size_t i = 0; i < count; i++)
        outbox__buf_printf(&ses, "%s\"r%zu@x.io\"", i ? "," : "", i);
    if (outbox__buf_puts(&ses, "]}," MAIL_ONE "}}") == OUTBOX_EOK)
        body = ses_body(ses.data, false);
    outbox__buf_free(&ses);
    return body;
}

static void test_ses_batch_caps(void)
{
    char *body = delivery_for(500);
    outbox_event_batch batch = {NULL, 0};
    outbox_error err = {{0}, {0}};

    CHECK_CASE("ses 500 recipients");
    CHECK_INT(outbox_events_parse_ses(&batch, &err, body, strlen(body)),
              OUTBOX_EOK);
    CHECK_INT(batch.count, 500);
    if (batch.count == 500) {
        CHECK_STR(batch.events[0].recipient, "r0@x.io");
        CHECK_STR(batch.events[499].recipient, "r499@x.io");
        CHECK_STR(batch.events[499].event_id, SNS_ID ":r499@x.io");
    }
    outbox_event_batch_free(&batch);
    free(body);

    CHECK_CASE("ses over the event cap");
    body = delivery_for(OUTBOX_EVENTS_MAX + 1);
    CHECK_INT(outbox_events_parse_ses(&batch, &err, body, strlen(body)),
              OUTBOX_ELIMIT);
    CHECK_STR(err.kind, "limit_exceeded");
    CHECK_INT(batch.count, 0);
    free(body);
}

/* A long diagnostic is cut on a character boundary; a long address makes
 * the body fail, because a cut address would name someone else. */
static void test_ses_text_caps(void)
{
    char *ses = malloc(3 * OUTBOX_EVENT_TEXT_MAX);
    char *body;
    outbox_event_batch batch = {NULL, 0};
    outbox_error err = {{0}, {0}};
    int used;

    if (ses == NULL)
        return;

    /* "x" and then two-byte characters, so that byte 4096 falls inside
     * one of them. */
    used = snprintf(ses, 256, "{\"eventType\":\"Bounce\",\"bounce\":{"
                             "\"bouncedRecipients\":[{\"emailAddress\":"
                             "\"a@x.io\",\"diagnosticCode\":\"x");
    for (int i = 0; i < OUTBOX_EVENT_TEXT_MAX; i += 2)
        used += snprintf(ses + used, 3, "\xc3\xa4");
    snprintf(ses + used, 256, "\"}]}," MAIL_ONE "}}");
    body = ses_body(ses, false);

    CHECK_CASE("ses long diagnostic cut");
    CHECK_INT(outbox_events_parse_ses(&batch, &err, body, strlen(body)),
              OUTBOX_EOK);
    CHECK_INT(batch.count, 1);
    if (batch.count == 1) {
        CHECK_INT(strlen(batch.events[0].reason), OUTBOX_EVENT_TEXT_MAX - 1);
        CHECK(outbox__utf8_valid(batch.events[0].reason,
                                 strlen(batch.events[0].reason)));
    }
    outbox_event_batch_free(&batch);
    free(body);

    CHECK_CASE("ses long address rejected");
    used = snprintf(ses, 256, "{\"eventType\":\"Send\",\"mail\":{"
                             "\"destination\":[\"");
    memset(ses + used, 'a', OUTBOX_EVENT_TEXT_MAX);
    snprintf(ses + used + OUTBOX_EVENT_TEXT_MAX, 256, "@x.io\"]}}");
    body = ses_body(ses, false);
    CHECK_INT(outbox_events_parse_ses(&batch, &err, body, strlen(body)),
              OUTBOX_ELIMIT);
    CHECK_STR(err.kind, "limit_exceeded");
    CHECK_INT(batch.count, 0);
    free(body);
    free(ses);
}

/* An event of a type with its own recipient list keeps only its own
 * entry of that list in its raw JSON. */
static void test_ses_raw_per_recipient(void)
{
    static const char ses[] =
        "{\"eventType\":\"Bounce\",\"bounce\":{\"bounceType\":\"Transient\","
        "\"bouncedRecipients\":[{\"emailAddress\":\"a@x.io\",\"status\":"
        "\"4.2.2\"},{\"emailAddress\":\"b@x.io\"}]}," MAIL_ONE "}}";
    char *body = ses_body(ses, false);
    outbox_event_batch batch = {NULL, 0};
    outbox_error err = {{0}, {0}};

    CHECK_CASE("ses raw per recipient");
    CHECK_INT(outbox_events_parse_ses(&batch, &err, body, strlen(body)),
              OUTBOX_EOK);
    CHECK_INT(batch.count, 2);
    if (batch.count == 2) {
        CHECK_STR(batch.events[0].raw,
                  "{\"eventType\":\"Bounce\",\"bounce\":{\"bounceType\":"
                  "\"Transient\",\"bouncedRecipients\":[{\"emailAddress\":"
                  "\"a@x.io\",\"status\":\"4.2.2\"}]},"
                  "\"mail\":{\"timestamp\":\"2025-03-05T09:00:00.000Z\","
                  "\"messageId\":\"" SES_ID "\",\"destination\":"
                  "[\"kunde@example.org\"]}}");
        CHECK_CONTAINS(batch.events[1].raw,
                       "\"bouncedRecipients\":[{\"emailAddress\":"
                       "\"b@x.io\"}]}");
    }
    outbox_event_batch_free(&batch);
    free(body);
}

/* A Send to many long addresses copies the whole event into each of its
 * events, so the total of raw JSON reaches its cap. */
static void test_ses_raw_cap(void)
{
    outbox_buf ses;
    char *body = NULL;
    char local[1001];
    outbox_event_batch batch = {NULL, 0};
    outbox_error err = {{0}, {0}};

    memset(local, 'a', sizeof(local) - 1);
    local[sizeof(local) - 1] = '\0';
    outbox__buf_init(&ses, SIZE_MAX);
    outbox__buf_puts(&ses, "{\"eventType\":\"Send\",\"mail\":{"
                           "\"destination\":[");
    for (int i = 0; i < 300; i++)
        outbox__buf_printf(&ses, "%s\"%s%d@x.io\"", i ? "," : "", local, i);
    if (outbox__buf_puts(&ses, "]}}") == OUTBOX_EOK)
        body = ses_body(ses.data, false);
    outbox__buf_free(&ses);

    CHECK_CASE("ses raw json cap");
    CHECK(body != NULL);
    if (body == NULL)
        return;
    CHECK_INT(outbox_events_parse_ses(&batch, &err, body, strlen(body)),
              OUTBOX_ELIMIT);
    CHECK_STR(err.kind, "limit_exceeded");
    CHECK_CONTAINS(err.text, "in total");
    CHECK_INT(batch.count, 0);
    free(body);
}

int main(void)
{
    test_signer signer;
    test_signer other;

    test_sns_parse_notification();
    test_sns_parse_confirmation();
    test_sns_parse_rejects();
    test_sns_cert_url();
    test_sns_subscribe_url();
    test_sns_timestamp();
    CHECK_CASE("make test certificates");
    CHECK(signer_create(&signer));
    CHECK(signer_create(&other));
    if (signer.cert_pem != NULL && other.cert_pem != NULL) {
        test_sns_verify(&signer, &other);
        test_sns_verify_malformed(&signer);
    }
    signer_free(&signer);
    signer_free(&other);

    test_ses_bounce_message_shapes();
    test_ses_event_table();
    test_ses_rejects();
    test_ses_optional_parts();
    test_ses_batch_caps();
    test_ses_text_caps();
    test_ses_raw_per_recipient();
    test_ses_raw_cap();
    CHECK_DONE();
}
