/*
 * test_smtp.c - the SMTP relay provider: the exact header fields and
 * envelope, and the exact message on the wire. That message goes through
 * libcurl to a small SMTP server on 127.0.0.1 that this test runs. Also
 * the checks before sending, the config keys, and the table of replies
 * and their classification.
 *
 * Messages are built by hand from static strings, so that each test
 * controls every field, and none of them is freed with outbox_message_free.
 */
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <cjson/cJSON.h>

#include "check.h"
#include "internal.h"
#include "provider_smtp.h"

/* 2025-03-05 10:10:00 UTC */
#define NOW 1741169400

static outbox_address full_to[] = {
    {"Meier, Anna", "a.meier@example.org"},
    {"J\xc3\xbcrgen Gro\xc3\x9f", "j.gross@example.org"},
};
static outbox_address full_cc[] = {{NULL, "einkauf@example.org"}};
static outbox_address full_bcc[] = {{NULL, "archiv@example.com"}};
static outbox_address full_reply_to[] = {{"Support", "help@example.com"}};
static outbox_field full_headers[] = {
    {"X-ERP-Ref", "R-4711"},
    {"List-Unsubscribe",
     "<https://example.com/unsubscribe/0123456789abcdef0123456789abcdef>, "
     "<mailto:unsubscribe@example.com?subject=unsubscribe>"},
};
static outbox_field full_metadata[] = {{"tenant", "t1"}};
static unsigned char pdf_bytes[] = "%PDF-1.4\n\x00\x01\xfe\xff\n%%EOF\n";
static unsigned char png_bytes[] = "\x89PNG\r\n\x1a\nxx";
static outbox_attachment full_attachments[] = {
    {"Rechnung f\xc3\xbcr M\xc3\xbcller.pdf", "application/pdf", NULL,
     pdf_bytes, sizeof(pdf_bytes) - 1},
    {"logo.png", "image/png", "logo@example.com", png_bytes,
     sizeof(png_bytes) - 1},
};

/* A message with every field set. */
static void init_full(outbox_message *m)
{
    memset(m, 0, sizeof(*m));
    m->id = 42;
    m->attempt = 1;
    m->provider = "relay";
    m->message_id = "outbox.42.0011223344556677@example.com";
    m->sender.name = "Buchhaltung";
    m->sender.email = "billing@example.com";
    m->to.items = full_to;
    m->to.count = 2;
    m->cc.items = full_cc;
    m->cc.count = 1;
    m->bcc.items = full_bcc;
    m->bcc.count = 1;
    m->reply_to.items = full_reply_to;
    m->reply_to.count = 1;
    m->subject = "Rechnung 4711 f\xc3\xbcr M\xc3\xbcller & S\xc3\xb6hne "
                 "\xe2\x80\x93 bitte bis Freitag \xc3\xbc" "berweisen";
    m->body_text = "Guten Tag,\nanbei die Rechnung.\n.\nGr\xc3\xbc\xc3\x9f"
                   "e";
    m->body_html = "<p>Guten Tag</p><img src=\"cid:logo@example.com\">";
    m->headers = full_headers;
    m->header_count = 2;
    m->metadata = full_metadata;
    m->metadata_count = 1;
    m->attachments = full_attachments;
    m->attachment_count = 2;
}

/* Joins the entries of list with CRLF, as libcurl sends them. */
static void join_list(char *out, size_t size, const struct curl_slist *list)
{
    size_t used = 0;

    out[0] = '\0';
    for (; list != NULL && used < size; list = list->next) {
        int n = snprintf(out + used, size - used, "%s\r\n", list->data);

        if (n < 0)
            break;
        used += (size_t)n;
    }
}

/*
 * The fields after Date. The first List-Unsubscribe line is longer than
 * 78 characters because a fold right after the colon would leave the
 * first line without a value.
 */
#define EXPECTED_FIELDS                                                  \
    "From: Buchhaltung <billing@example.com>\r\n"                         \
    "To: \"Meier, Anna\" <a.meier@example.org>, "                          \
    "=?UTF-8?B?SsO8cmdlbiBHcm/Dnw==?=\r\n"                                \
    " <j.gross@example.org>\r\n"                                          \
    "Cc: einkauf@example.org\r\n"                                         \
    "Reply-To: Support <help@example.com>\r\n"                            \
    "Subject: =?UTF-8?B?UmVjaG51bmcgNDcxMSBmw7xyIE3DvGxsZXIgJiBTw7ZobmUg"  \
    "4oCTIGJpdHRl?=\r\n"                                                  \
    " =?UTF-8?B?IGJpcyBGcmVpdGFnIMO8YmVyd2Vpc2Vu?=\r\n"                    \
    "Message-ID: <outbox.42.0011223344556677@example.com>\r\n"            \
    "X-Outbox-Id: 42\r\n"                                                 \
    "X-ERP-Ref: R-4711\r\n"                                               \
    "List-Unsubscribe: <https://example.com/unsubscribe/"                \
    "0123456789abcdef0123456789abcdef>,\r\n"                              \
    " <mailto:unsubscribe@example.com?subject=unsubscribe>\r\n"

static void test_header_fields(void)
{
    outbox_smtp_request *request = calloc(1, sizeof(*request));
    outbox_message message;
    outbox_error err = {{0}, {0}};
    char joined[4096];

    CHECK_CASE("header fields");
    init_full(&message);
    CHECK_INT(outbox__smtp_headers(request, &err, &message, NOW),
              OUTBOX_EOK);
    join_list(joined, sizeof(joined), request->headers);
    CHECK_STR(joined, "Date: Wed, 05 Mar 2025 10:10:00 +0000\r\n"
                      EXPECTED_FIELDS);
    CHECK(strstr(joined, "archiv@example.com") == NULL);
    CHECK(strstr(joined, "tenant") == NULL);
    outbox__smtp_request_free(request);
}

static void test_envelope(void)
{
    outbox_smtp_request *request = calloc(1, sizeof(*request));
    outbox_message message;
    outbox_error err = {{0}, {0}};
    char joined[1024];

    CHECK_CASE("envelope");
    init_full(&message);
    CHECK_INT(outbox__smtp_envelope(request, &err, &message), OUTBOX_EOK);
    CHECK_STR(request->mail_from, "<billing@example.com>");
    join_list(joined, sizeof(joined), request->recipients);
    CHECK_STR(joined, "<a.meier@example.org>\r\n<j.gross@example.org>\r\n"
                      "<einkauf@example.org>\r\n<archiv@example.com>\r\n");
    outbox__smtp_request_free(request);
}

static void test_header_errors(void)
{
    static const struct {
        const char *name;
        outbox_field header;
        const char *subject;
        const char *kind;
        const char *text;
    } cases[] = {
        {"reserved Bcc header", {"Bcc", "sammler@example.net"}, "Hi",
         "invalid_headers", "header Bcc is set from the message's columns"},
        {"reserved X-Outbox-Id", {"x-outbox-id", "7"}, "Hi",
         "invalid_headers", "header x-outbox-id is set"},
        {"header name with space", {"X ERP", "1"}, "Hi", "invalid_headers",
         "header name \"X ERP\" is invalid"},
        {"CR LF in header value", {"X-ERP-Ref", "R-1\r\nBcc: x@example.net"},
         "Hi", "invalid_header_value", "header X-ERP-Ref contains a line"},
        {"bare LF in subject", {"X-ERP-Ref", "R-1"},
         "Mahnung 3\nX-Priority: 1", "invalid_header_value",
         "header Subject contains a line break"},
        {"bare CR in subject", {"X-ERP-Ref", "R-1"},
         "Mahnung 3\rFrom: chef@example.com", "invalid_header_value",
         "header Subject contains a line break"},
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        outbox_smtp_request *request = calloc(1, sizeof(*request));
        outbox_message message;
        outbox_field header = cases[i].header;
        outbox_error err = {{0}, {0}};

        CHECK_CASE(cases[i].name);
        init_full(&message);
        message.headers = &header;
        message.header_count = 1;
        message.subject = (char *)cases[i].subject;
        CHECK_INT(outbox__smtp_headers(request, &err, &message, NOW),
                  OUTBOX_EINVAL);
        CHECK_STR(err.kind, cases[i].kind);
        CHECK_CONTAINS(err.text, cases[i].text);
        outbox__smtp_request_free(request);
    }
}

/* An already-encoded CR LF in the subject is literal text: it is encoded
 * again, so a reader shows it and no header line is added. */
static void test_encoded_subject_is_literal(void)
{
    outbox_smtp_request *request = calloc(1, sizeof(*request));
    outbox_message message;
    outbox_error err = {{0}, {0}};
    char joined[4096];

    CHECK_CASE("encoded word in subject is literal");
    init_full(&message);
    message.subject = "=?UTF-8?Q?Hallo=0D=0ABcc:_sammler@example.net?=";
    message.header_count = 0;
    CHECK_INT(outbox__smtp_headers(request, &err, &message, NOW),
              OUTBOX_EOK);
    join_list(joined, sizeof(joined), request->headers);
    CHECK_CONTAINS(joined, "Subject: =?UTF-8?B?PT9VVEYtOD9RP0hhbGxvPTBEPTBB"
                           "QmNjOl9zYW1tbGVyQGV4YW1wbGUubmV0?=\r\n"
                           " =?UTF-8?B?Pz0=?=\r\n");
    CHECK(strstr(joined, "\r\nBcc") == NULL);
    outbox__smtp_request_free(request);
}

/* ------------------------------------------------------------------ */
/* A small SMTP server on 127.0.0.1                                    */
/* ------------------------------------------------------------------ */

typedef struct sink {
    int listener;
    int port;
    pthread_t thread;
    char commands[2048];     /* every command line, CRLF after each */
    char data[16384];        /* the message after DATA, as received */
    size_t data_size;
} sink;

static void sink_send(int fd, const char *text)
{
    size_t n = strlen(text);

    while (n > 0) {
        ssize_t sent = send(fd, text, n, MSG_NOSIGNAL);

        if (sent <= 0)
            return;
        text += sent;
        n -= (size_t)sent;
    }
}

/* Reads one line up to LF into line; returns its length, 0 at the end. */
static size_t sink_line(int fd, char *line, size_t size)
{
    size_t used = 0;

    while (used + 1 < size) {
        struct pollfd p = {fd, POLLIN, 0};
        char c;

        if (poll(&p, 1, 10000) <= 0 || recv(fd, &c, 1, 0) != 1)
            break;
        line[used++] = c;
        if (c == '\n')
            break;
    }
    line[used] = '\0';
    return used;
}

static void *sink_main(void *argument)
{
    sink *s = argument;
    int fd = accept(s->listener, NULL, NULL);
    char line[1024];

    if (fd < 0)
        return NULL;
    sink_send(fd, "220 sink.test ESMTP\r\n");
    while (sink_line(fd, line, sizeof(line)) > 0) {
        strncat(s->commands, line,
                sizeof(s->commands) - strlen(s->commands) - 1);
        if (strncmp(line, "EHLO", 4) == 0) {
            sink_send(fd, "250-sink.test\r\n250 SIZE 10000000\r\n");
        } else if (strncmp(line, "DATA", 4) == 0) {
            sink_send(fd, "354 go ahead\r\n");
            while (sink_line(fd, line, sizeof(line)) > 0
                   && strcmp(line, ".\r\n") != 0) {
                size_t n = strlen(line);

                if (s->data_size + n < sizeof(s->data)) {
                    memcpy(s->data + s->data_size, line, n + 1);
                    s->data_size += n;
                }
            }
            sink_send(fd, "250 2.0.0 Ok: queued as 4F2x9K\r\n");
        } else if (strncmp(line, "QUIT", 4) == 0) {
            sink_send(fd, "221 2.0.0 Bye\r\n");
            break;
        } else {
            sink_send(fd, "250 2.1.0 Ok\r\n");
        }
    }
    close(fd);
    return NULL;
}

static bool sink_start(sink *s)
{
    struct sockaddr_in address;
    socklen_t length = sizeof(address);

    memset(s, 0, sizeof(*s));
    memset(&address, 0, sizeof(address));
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    s->listener = socket(AF_INET, SOCK_STREAM, 0);
    if (s->listener < 0
        || bind(s->listener, (struct sockaddr *)&address, sizeof(address))
        || listen(s->listener, 1)
        || getsockname(s->listener, (struct sockaddr *)&address, &length))
        return false;
    s->port = ntohs(address.sin_port);
    return pthread_create(&s->thread, NULL, sink_main, s) == 0;
}

static void sink_stop(sink *s)
{
    pthread_join(s->thread, NULL);
    close(s->listener);
}

/* Replaces each libcurl boundary (24 dashes and 16 to 22 random
 * characters) with "BOUNDARY" followed by its order of appearance. */
static void normalize_boundaries(char *text)
{
    char found[4][48];
    size_t count = 0;
    char *p;

    while ((p = strstr(text, "------------------------")) != NULL) {
        /* A delimiter line puts "--" before the boundary's own dashes. */
        while (p[24] == '-')
            p++;
        size_t n = 24 + strspn(p + 24, "0123456789abcdefABCDEFGHIJKLMNOPQ"
                                       "RSTUVWXYZghijklmnopqrstuvwxyz");
        char name[32];
        size_t k = 0;

        while (k < count && (strlen(found[k]) != n
                             || strncmp(found[k], p, n) != 0))
            k++;
        if (k == count && count < 4 && n < sizeof(found[0]))
            snprintf(found[count++], sizeof(found[0]), "%.*s", (int)n, p);
        snprintf(name, sizeof(name), "BOUNDARY%zu", k);
        memmove(p + strlen(name), p + n, strlen(p + n) + 1);
        memcpy(p, name, strlen(name));
    }
}

/* Creates a provider from a JSON config text. */
static outbox_provider *create_provider(const char *json, outbox_error *err)
{
    cJSON *config = cJSON_Parse(json);
    outbox_provider *provider = NULL;

    if (config == NULL)
        return NULL;
    if (outbox_provider_create(&provider, err, config, NULL) != OUTBOX_EOK)
        provider = NULL;
    cJSON_Delete(config);
    return provider;
}

static const char expected_wire[] =
    "Content-Type: multipart/mixed; boundary=BOUNDARY0\r\n"
    "Mime-Version: 1.0\r\n"
    "Date: <date>\r\n"
    EXPECTED_FIELDS
    "\r\n"
    "--BOUNDARY0\r\n"
    "Content-Type: multipart/related; type=\"multipart/alternative\"; "
    "boundary=BOUNDARY1\r\n"
    "\r\n"
    "--BOUNDARY1\r\n"
    "Content-Type: multipart/alternative; boundary=BOUNDARY2\r\n"
    "\r\n"
    "--BOUNDARY2\r\n"
    "Content-Type: text/plain; charset=UTF-8\r\n"
    "Content-Transfer-Encoding: quoted-printable\r\n"
    "\r\n"
    "Guten Tag,\r\n"
    "anbei die Rechnung.\r\n"
    "..\r\n"
    "Gr=C3=BC=C3=9Fe\r\n"
    "--BOUNDARY2\r\n"
    "Content-Type: text/html; charset=UTF-8\r\n"
    "Content-Transfer-Encoding: quoted-printable\r\n"
    "\r\n"
    "<p>Guten Tag</p><img src=3D\"cid:logo@example.com\">\r\n"
    "--BOUNDARY2--\r\n"
    "\r\n"
    "--BOUNDARY1\r\n"
    "Content-Type: image/png; name=\"logo.png\"\r\n"
    "Content-Transfer-Encoding: base64\r\n"
    "Content-Disposition: inline; filename=\"logo.png\"\r\n"
    "Content-ID: <logo@example.com>\r\n"
    "\r\n"
    "iVBORw0KGgp4eA==\r\n"
    "--BOUNDARY1--\r\n"
    "\r\n"
    "--BOUNDARY0\r\n"
    "Content-Type: application/pdf; "
    "name*=UTF-8''Rechnung%20f%C3%BCr%20M%C3%BCller.pdf\r\n"
    "Content-Transfer-Encoding: base64\r\n"
    "Content-Disposition: attachment; "
    "filename*=UTF-8''Rechnung%20f%C3%BCr%20M%C3%BCller.pdf\r\n"
    "\r\n"
    "JVBERi0xLjQKAAH+/wolJUVPRgo=\r\n"
    "--BOUNDARY0--\r\n";

/* Sends the full message to the sink and compares every byte of DATA,
 * with the boundaries and the date replaced by placeholders. */
static void test_message_on_wire(void)
{
    outbox_provider *provider;
    outbox_message message;
    outbox_result result;
    outbox_error err = {{0}, {0}};
    char config[512];
    char *date;
    char *end;
    sink s;

    CHECK_CASE("message on the wire");
    if (!sink_start(&s)) {
        CHECK_FAIL("cannot start the SMTP server");
        return;
    }
    snprintf(config, sizeof(config),
             "{\"name\": \"relay\", \"type\": \"smtp\", \"url\": "
             "\"smtp://127.0.0.1:%d\", \"helo_name\": \"erp.example.com\", "
             "\"insecure_plaintext_local_relay\": true, "
             "\"timeout_seconds\": 10}", s.port);
    provider = create_provider(config, &err);
    CHECK_STR(err.text, "");
    if (provider == NULL) {
        close(s.listener);
        return;
    }
    init_full(&message);
    outbox_provider_deliver(provider, &result, &message);
    outbox_provider_free(provider);
    sink_stop(&s);

    CHECK_STR(outbox_result_kind_name(result.kind), "sent");
    CHECK_INT(result.status, 250);
    CHECK_STR(result.provider_message_id, "4F2x9K");
    CHECK_STR(s.commands,
              "EHLO erp.example.com\r\n"
              "MAIL FROM:<billing@example.com>\r\n"
              "RCPT TO:<a.meier@example.org>\r\n"
              "RCPT TO:<j.gross@example.org>\r\n"
              "RCPT TO:<einkauf@example.org>\r\n"
              "RCPT TO:<archiv@example.com>\r\n"
              "DATA\r\n"
              "QUIT\r\n");

    /* The date is the time of sending, so only its place is compared. */
    date = strstr(s.data, "\r\nDate: ");
    end = date != NULL ? strstr(date + 2, "\r\n") : NULL;
    if (date != NULL && end != NULL)
        memmove(date + 14, end, strlen(end) + 1);
    if (date != NULL)
        memcpy(date + 8, "<date>", 6);
    normalize_boundaries(s.data);
    CHECK_STR(s.data, expected_wire);
}

/* ------------------------------------------------------------------ */
/* Checks before sending                                               */
/* ------------------------------------------------------------------ */

/* Delivers to a port where nothing listens: a check that fails before
 * the connection decides the result. */
static void deliver_unsent(outbox_result *result, const char *extra_config,
                           const outbox_message *message)
{
    outbox_provider *provider;
    outbox_error err = {{0}, {0}};
    char config[512];

    snprintf(config, sizeof(config),
             "{\"name\": \"relay\", \"type\": \"smtp\", \"url\": "
             "\"smtp://127.0.0.1:9\", \"connect_timeout_seconds\": 1%s}",
             extra_config);
    provider = create_provider(config, &err);
    CHECK_STR(err.text, "");
    if (provider == NULL)
        return;
    outbox_provider_deliver(provider, result, message);
    outbox_provider_free(provider);
}

static void test_too_large(void)
{
    outbox_message message;
    outbox_result result;

    CHECK_CASE("over max_message_bytes");
    init_full(&message);
    deliver_unsent(&result, ", \"max_message_bytes\": 1000", &message);
    CHECK_STR(outbox_result_kind_name(result.kind), "failed");
    CHECK_STR(result.error.kind, "message_too_large");
    CHECK_CONTAINS(result.error.text, "message 42 is about ");
    CHECK_CONTAINS(result.error.text, "bytes once encoded; provider "
                                      "\"relay\" accepts at most 1000 "
                                      "(max_message_bytes)");
}

static void test_too_many_recipients(void)
{
    outbox_message message;
    outbox_result result;

    CHECK_CASE("over max_recipients");
    init_full(&message);
    deliver_unsent(&result, ", \"max_recipients\": 3", &message);
    CHECK_STR(outbox_result_kind_name(result.kind), "failed");
    CHECK_STR(result.error.kind, "too_many_recipients");
    CHECK_STR(result.error.text, "message 42 has 4 recipients; provider "
                                 "\"relay\" sends at most 3 in one "
                                 "transaction (max_recipients)");
}

static void test_no_relay_retries(void)
{
    outbox_message message;
    outbox_result result;

    CHECK_CASE("connection refused");
    init_full(&message);
    deliver_unsent(&result, "", &message);
    CHECK_STR(outbox_result_kind_name(result.kind), "retry");
    CHECK_STR(result.error.kind, "network");
    CHECK_CONTAINS(result.error.text, "request failed (curl error 7)");
}

/* ------------------------------------------------------------------ */
/* Config                                                              */
/* ------------------------------------------------------------------ */

static void test_config_errors(void)
{
    static const struct {
        const char *name;
        const char *json;
        const char *text;
    } cases[] = {
        {"missing url", "{}", "provider \"relay\": missing \"url\""},
        {"https url", "{\"url\": \"https://127.0.0.1\"}",
         "invalid \"url\": expected smtp://host:587 or smtps://host:465"},
        {"url with a path", "{\"url\": \"smtp://127.0.0.1:25/x\"}",
         "invalid \"url\""},
        {"url with a user", "{\"url\": \"smtp://u@127.0.0.1:25\"}",
         "invalid \"url\""},
        {"unknown key",
         "{\"url\": \"smtp://127.0.0.1\", \"base_url\": \"x\"}",
         "unknown key \"base_url\" for type smtp"},
        {"plaintext to a remote relay",
         "{\"url\": \"smtp://smtp.example.com:25\", "
         "\"insecure_plaintext_local_relay\": true}",
         "\"insecure_plaintext_local_relay\" is allowed only for a relay "
         "on localhost"},
        {"plaintext to 127.x.example.com",
         "{\"url\": \"smtp://127.0.0.1.example.com:25\", "
         "\"insecure_plaintext_local_relay\": true}",
         "is allowed only for a relay on localhost"},
        {"username without a secret",
         "{\"url\": \"smtp://127.0.0.1\", \"username\": \"u\"}",
         "\"username\" goes with \"password\" or \"oauth2_token\""},
        {"password without a username",
         "{\"url\": \"smtp://127.0.0.1\", \"password\": \"p\"}",
         "\"username\" goes with"},
        {"password and token",
         "{\"url\": \"smtp://127.0.0.1\", \"username\": \"u\", "
         "\"password\": \"p\", \"oauth2_token\": \"t\"}",
         "set a password or an OAuth2 token, not both"},
        {"unset password variable",
         "{\"url\": \"smtp://127.0.0.1\", \"username\": \"u\", "
         "\"password_env\": \"OUTBOX_TEST_UNSET_VARIABLE\"}",
         "environment variable OUTBOX_TEST_UNSET_VARIABLE (from "
         "\"password_env\") is not set"},
        {"helo with a slash",
         "{\"url\": \"smtp://127.0.0.1\", \"helo_name\": \"a/b\"}",
         "invalid \"helo_name\""},
        {"missing ca_file",
         "{\"url\": \"smtp://127.0.0.1\", \"ca_file\": "
         "\"/nonexistent/ca.pem\"}",
         "\"ca_file\" /nonexistent/ca.pem cannot be read"},
        {"timeout zero", "{\"url\": \"smtp://127.0.0.1\", "
                         "\"timeout_seconds\": 0}",
         "invalid \"timeout_seconds\": expected a whole number from 1"},
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        cJSON *config = cJSON_Parse(cases[i].json);
        outbox_provider *provider = NULL;
        outbox_error err = {{0}, {0}};

        CHECK_CASE(cases[i].name);
        cJSON_AddStringToObject(config, "name", "relay");
        cJSON_AddStringToObject(config, "type", "smtp");
        CHECK_INT(outbox_provider_create(&provider, &err, config, NULL),
                  OUTBOX_ECONFIG);
        CHECK(provider == NULL);
        CHECK_CONTAINS(err.text, cases[i].text);
        cJSON_Delete(config);
    }
}

static void test_config_accepted(void)
{
    static const char *const configs[] = {
        "{\"url\": \"smtp://127.0.0.1:587\"}",
        "{\"url\": \"SMTPS://127.0.0.1:465/\", \"username\": \"u\", "
        "\"oauth2_token\": \"t\", \"helo_name\": \"erp.example.com\"}",
        "{\"url\": \"smtp://localhost:25\", "
        "\"insecure_plaintext_local_relay\": true}",
        "{\"url\": \"smtp://[::1]:25\", "
        "\"insecure_plaintext_local_relay\": true}",
    };

    for (size_t i = 0; i < sizeof(configs) / sizeof(configs[0]); i++) {
        cJSON *config = cJSON_Parse(configs[i]);
        outbox_provider *provider = NULL;
        outbox_error err = {{0}, {0}};

        CHECK_CASE(configs[i]);
        cJSON_AddStringToObject(config, "name", "relay");
        cJSON_AddStringToObject(config, "type", "smtp");
        CHECK_INT(outbox_provider_create(&provider, &err, config, NULL),
                  OUTBOX_EOK);
        CHECK_STR(err.text, "");
        CHECK(provider != NULL);
        if (provider != NULL)
            CHECK(!outbox_provider_uses_curl(provider));
        outbox_provider_free(provider);
        cJSON_Delete(config);
    }
}

/* ------------------------------------------------------------------ */
/* Classification                                                      */
/* ------------------------------------------------------------------ */

typedef struct classify_case {
    const char *name;
    CURLcode curl_code;
    const char *curl_error;
    long status;
    const char *replies;       /* every reply line of the session */
    outbox_result_kind kind;
    const char *error_kind;
    int64_t retry_after;
    bool counts_as_failure;
    const char *provider_id;
    const char *text;          /* the error text, whole */
} classify_case;

#define EHLO "220 relay ESMTP\r\n250-relay\r\n250 AUTH PLAIN LOGIN\r\n"
#define AUTHED EHLO "235 2.7.0 Authentication successful\r\n"
#define DATA_SENT AUTHED "250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n354 go ahead\r\n"

static const classify_case classify_cases[] = {
    {"250 queued as (Postfix)", CURLE_OK, "", 250,
     DATA_SENT "250 2.0.0 Ok: queued as 4F2x9K\r\n", OUTBOX_RESULT_SENT,
     "", -1, true, "4F2x9K", ""},
    {"250 Office 365 form", CURLE_OK, "", 250,
     DATA_SENT "250 2.0.0 OK <A1B2@PR3P.eurprd.outlook.com> [Hostname=PR3P]"
               "\r\n",
     OUTBOX_RESULT_SENT, "", -1, true,
     "OK <A1B2@PR3P.eurprd.outlook.com> [Hostname=PR3P]", ""},
    {"250 Google form", CURLE_OK, "", 250,
     DATA_SENT "250 2.0.0 OK  1741169400 a1-20020a.123 - gsmtp\r\n",
     OUTBOX_RESULT_SENT, "", -1, true, "OK  1741169400 a1-20020a.123 - gsmtp",
     ""},
    {"535 bad credentials", CURLE_LOGIN_DENIED, "Login denied", 535,
     EHLO "535 5.7.8 Error: authentication failed\r\n221 2.0.0 Bye\r\n",
     OUTBOX_RESULT_MISCONFIGURED, "provider_auth", -1, false, "",
     "SMTP 535 5.7.8 Error: authentication failed; check username and the "
     "password or OAuth2 token (curl error 67)"},
    {"535 5.7.139 Office 365 auth disabled", CURLE_LOGIN_DENIED,
     "Login denied", 535,
     EHLO "535 5.7.139 Authentication unsuccessful, SmtpClientAuthentication "
          "is disabled for the Tenant.\r\n",
     OUTBOX_RESULT_MISCONFIGURED, "provider_auth", -1, false, "",
     "SMTP 535 5.7.139 Authentication unsuccessful, SmtpClientAuthentication "
     "is disabled for the Tenant.; basic authentication is turned off for "
     "this account: use oauth2_token (curl error 67)"},
    {"550 5.7.30 basic auth off", CURLE_LOGIN_DENIED, "Login denied", 550,
     EHLO "550 5.7.30 Basic authentication is not supported for Client "
          "Submission.\r\n",
     OUTBOX_RESULT_MISCONFIGURED, "provider_auth", -1, false, "",
     "SMTP 550 5.7.30 Basic authentication is not supported for Client "
     "Submission.; basic authentication is turned off for this account: use "
     "oauth2_token (curl error 67)"},
    {"530 authentication required", CURLE_SEND_ERROR, "", 530,
     EHLO "530 5.7.0 Authentication required\r\n",
     OUTBOX_RESULT_MISCONFIGURED, "provider_auth", -1, false, "",
     "SMTP 530 5.7.0 Authentication required; check username and the "
     "password or OAuth2 token (curl error 55)"},
    {"login denied without a reply code", CURLE_LOGIN_DENIED,
     "No known authentication mechanisms supported", 250, EHLO,
     OUTBOX_RESULT_MISCONFIGURED, "provider_auth", -1, false, "",
     "login failed (curl error 67): No known authentication mechanisms "
     "supported; check username and the password or OAuth2 token"},
    {"450 to MAIL FROM (throttle)", CURLE_SEND_ERROR, "", 450,
     AUTHED "450 4.7.1 Too many requests, slow down\r\n",
     OUTBOX_RESULT_RETRY, "rate_limited", 60, false, "",
     "SMTP 450 4.7.1 Too many requests, slow down (curl error 55)"},
    {"454 after DATA (SES throttle)", CURLE_WEIRD_SERVER_REPLY, "", 454,
     DATA_SENT "454 Throttling failure: Maximum sending rate exceeded.\r\n",
     OUTBOX_RESULT_RETRY, "rate_limited", 60, false, "",
     "SMTP 454 Throttling failure: Maximum sending rate exceeded. (curl "
     "error 8)"},
    {"451 local error", CURLE_SEND_ERROR, "", 451,
     AUTHED "451 4.3.0 Error: queue file write error\r\n",
     OUTBOX_RESULT_RETRY, "rate_limited", 60, false, "",
     "SMTP 451 4.3.0 Error: queue file write error (curl error 55)"},
    {"452 too many recipients", CURLE_SEND_ERROR, "", 452,
     AUTHED "250 2.1.0 Ok\r\n452 4.5.3 Error: too many recipients\r\n",
     OUTBOX_RESULT_RETRY, "rate_limited", 60, false, "",
     "SMTP 452 4.5.3 Error: too many recipients (curl error 55)"},
    {"450 4.2.1 Google peak deferral", CURLE_SEND_ERROR, "", 450,
     AUTHED "450-4.2.1 The user you are trying to contact is receiving\r\n"
            "450 4.2.1 mail at a rate that prevents delivery.\r\n",
     OUTBOX_RESULT_RETRY, "rate_limited", 60, false, "",
     "SMTP 450-4.2.1 The user you are trying to contact is receiving 450 "
     "4.2.1 mail at a rate that prevents delivery. (curl error 55)"},
    {"421 closing", CURLE_SEND_ERROR, "", 421,
     AUTHED "421 4.3.2 Service shutting down\r\n",
     OUTBOX_RESULT_RETRY, "provider_unavailable", -1, true, "",
     "SMTP 421 4.3.2 Service shutting down (curl error 55)"},
    {"550 5.4.5 Google daily limit", CURLE_SEND_ERROR, "", 550,
     AUTHED "550 5.4.5 Daily SMTP relay limit exceeded for user.\r\n",
     OUTBOX_RESULT_RETRY, "quota_exceeded", 3600, false, "",
     "SMTP 550 5.4.5 Daily SMTP relay limit exceeded for user. (curl error "
     "55)"},
    {"550 5.1.1 unknown user", CURLE_SEND_ERROR, "", 550,
     AUTHED "250 2.1.0 Ok\r\n550 5.1.1 <x@example.org>: Recipient address "
            "rejected: User unknown\r\n",
     OUTBOX_RESULT_FAILED, "invalid_recipient", -1, true, "",
     "SMTP 550 5.1.1 <x@example.org>: Recipient address rejected: User "
     "unknown (curl error 55)"},
    {"553 5.1.8 bad sender domain", CURLE_SEND_ERROR, "", 553,
     AUTHED "553 5.1.8 <a@nowhere.invalid>: Sender address rejected: "
            "Domain not found\r\n",
     OUTBOX_RESULT_FAILED, "invalid_sender", -1, true, "",
     "SMTP 553 5.1.8 <a@nowhere.invalid>: Sender address rejected: Domain "
     "not found (curl error 55)"},
    {"552 5.3.4 too big", CURLE_SEND_ERROR, "", 552,
     AUTHED "552 5.3.4 Message size exceeds fixed limit\r\n",
     OUTBOX_RESULT_FAILED, "message_too_large", -1, true, "",
     "SMTP 552 5.3.4 Message size exceeds fixed limit (curl error 55)"},
    {"552 without enhanced code", CURLE_WEIRD_SERVER_REPLY, "", 552,
     DATA_SENT "552 Message size exceeds maximum permitted\r\n",
     OUTBOX_RESULT_FAILED, "message_too_large", -1, true, "",
     "SMTP 552 Message size exceeds maximum permitted (curl error 8)"},
    {"552 5.2.2 mailbox full", CURLE_SEND_ERROR, "", 552,
     AUTHED "250 2.1.0 Ok\r\n552 5.2.2 Mailbox full\r\n",
     OUTBOX_RESULT_FAILED, "provider_rejected", -1, true, "",
     "SMTP 552 5.2.2 Mailbox full (curl error 55)"},
    {"554 5.7.1 relay denied", CURLE_SEND_ERROR, "", 554,
     AUTHED "250 2.1.0 Ok\r\n554 5.7.1 <x@example.org>: Relay access "
            "denied\r\n",
     OUTBOX_RESULT_FAILED, "provider_rejected", -1, true, "",
     "SMTP 554 5.7.1 <x@example.org>: Relay access denied (curl error 55)"},
    {"554 after DATA, spam", CURLE_WEIRD_SERVER_REPLY, "", 554,
     DATA_SENT "554 5.6.0 Message rejected as spam\r\n",
     OUTBOX_RESULT_FAILED, "provider_rejected", -1, true, "",
     "SMTP 554 5.6.0 Message rejected as spam (curl error 8)"},
    {"550 with enhanced class 4 wins", CURLE_SEND_ERROR, "", 550,
     AUTHED "550 4.2.0 Try again later\r\n",
     OUTBOX_RESULT_RETRY, "provider_unavailable", -1, true, "",
     "SMTP 550 4.2.0 Try again later (curl error 55)"},
    {"reply to QUIT after the refusal", CURLE_SEND_ERROR, "", 550,
     AUTHED "550 5.7.1 Sender blocked\r\n221 2.0.0 Bye\r\n",
     OUTBOX_RESULT_FAILED, "provider_rejected", -1, true, "",
     "SMTP 550 5.7.1 Sender blocked (curl error 55)"},
    {"silence after DATA", CURLE_OPERATION_TIMEDOUT,
     "server response timeout", 354, DATA_SENT, OUTBOX_RESULT_UNKNOWN,
     "timeout_after_data", -1, true, "",
     "no reply to the end of DATA (curl error 28): server response timeout; "
     "the relay may have accepted the message"},
    {"connection lost after DATA", CURLE_RECV_ERROR,
     "Connection reset by peer", 354, DATA_SENT, OUTBOX_RESULT_UNKNOWN,
     "outcome_unknown", -1, true, "",
     "no reply to the end of DATA (curl error 56): Connection reset by peer; "
     "the relay may have accepted the message"},
    {"silence after MAIL FROM", CURLE_OPERATION_TIMEDOUT,
     "Operation timed out after 20000 milliseconds", 250,
     AUTHED "250 2.1.0 Ok\r\n", OUTBOX_RESULT_RETRY, "timeout", -1, true, "",
     "request timed out (curl error 28): Operation timed out after 20000 "
     "milliseconds"},
    {"connection refused", CURLE_COULDNT_CONNECT,
     "Failed to connect to 127.0.0.1 port 25: Connection refused", 0, "",
     OUTBOX_RESULT_RETRY, "network", -1, true, "",
     "request failed (curl error 7): Failed to connect to 127.0.0.1 port 25: "
     "Connection refused"},
    {"no STARTTLS offered", CURLE_USE_SSL_FAILED,
     "STARTTLS not supported.", 250, EHLO, OUTBOX_RESULT_MISCONFIGURED,
     "provider_tls", -1, false, "",
     "the relay does not offer STARTTLS (curl error 64): STARTTLS not "
     "supported.; use smtps:// or a relay with TLS"},
    {"certificate not trusted", CURLE_PEER_FAILED_VERIFICATION,
     "SSL certificate problem: self-signed certificate", 220,
     "220 relay ESMTP\r\n", OUTBOX_RESULT_MISCONFIGURED, "provider_tls", -1,
     false, "",
     "the relay's certificate is not trusted (curl error 60): SSL "
     "certificate problem: self-signed certificate; check the url's host "
     "name and ca_file"},
};

static void run_classify_case(const classify_case *c)
{
    static const outbox_smtp_delays delays = {60, 3600};
    outbox_response response;
    outbox_result result;

    memset(&response, 0, sizeof(response));
    response.curl_code = c->curl_code;
    response.curl_error = c->curl_error;
    response.status = c->status;
    response.body = c->replies;
    response.body_size = strlen(c->replies);
    response.now = NOW;

    CHECK_CASE(c->name);
    memset(&result, 0x5A, sizeof(result));
    outbox__smtp_classify(&result, &response, &delays);
    CHECK_STR(outbox_result_kind_name(result.kind),
              outbox_result_kind_name(c->kind));
    CHECK_STR(result.error.kind, c->error_kind);
    CHECK_INT(result.retry_after, c->retry_after);
    CHECK_INT(result.counts_as_failure, c->counts_as_failure);
    CHECK_INT(result.status, c->status);
    CHECK_STR(result.provider_message_id, c->provider_id);
    CHECK_STR(result.error.text, c->text);
}

static void test_classify_table(void)
{
    size_t count = sizeof(classify_cases) / sizeof(classify_cases[0]);

    for (size_t i = 0; i < count; i++)
        run_classify_case(&classify_cases[i]);
}

int main(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
    test_header_fields();
    test_envelope();
    test_header_errors();
    test_encoded_subject_is_literal();
    test_message_on_wire();
    test_too_large();
    test_too_many_recipients();
    test_no_relay_retries();
    test_config_errors();
    test_config_accepted();
    test_classify_table();
    curl_global_cleanup();
    CHECK_DONE();
}
