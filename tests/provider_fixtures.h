/*
 * provider_fixtures.h - what the HTTP provider suites share: a capture of
 * warning log lines, a libcurl write callback that drops the response
 * body, a minimal message and a message with every address list, body,
 * header and attachment set.
 *
 * The messages point into static arrays, so no suite may free them with
 * outbox_message_free. The functions are static inline, so a suite that
 * does not call one gets no unused-function warning.
 */
#ifndef OUTBOX_PROVIDER_FIXTURES_H
#define OUTBOX_PROVIDER_FIXTURES_H

#include <stdio.h>
#include <string.h>

#include "internal.h"

typedef struct log_capture {
    int warnings;
    char text[2048];
} log_capture;

/* Collects warning lines, separated by newlines. */
static inline void capture_log(void *context, outbox_log_level level,
                               const char *line)
{
    log_capture *capture = context;
    size_t used = strlen(capture->text);

    if (level != OUTBOX_LOG_WARN)
        return;
    capture->warnings++;
    snprintf(capture->text + used, sizeof(capture->text) - used, "%s\n",
             line);
}

/* Drops the response body, which libcurl would print to stdout. */
static inline size_t discard_body(char *data, size_t size, size_t count,
                                  void *context)
{
    (void)data;
    (void)context;
    return size * count;
}

static outbox_address minimal_to[] = {{NULL, "a@x.io"}};

/* Sets message to the smallest message that every provider accepts: a
 * sender, one recipient, a subject and a text body. */
static inline void init_minimal_message(outbox_message *message,
                                        char *provider)
{
    memset(message, 0, sizeof(*message));
    message->id = 42;
    message->attempt = 1;
    message->provider = provider;
    message->sender.email = "no-reply@ex.com";
    message->to.items = minimal_to;
    message->to.count = 1;
    message->subject = "Hi";
    message->body_text = "Hello";
}

static outbox_address full_to[] = {
    {"Meier, Anna", "a.meier@example.org"},
    {"J\xc3\xbcrgen Gro\xc3\x9f", "j.gross@example.de"},
};
static outbox_address full_cc[] = {{NULL, "cc@example.org"}};
static outbox_address full_bcc[] = {{"Archiv", "archive@ex.com"}};
static outbox_address full_reply_to[] = {
    {"Support", "help@ex.com"},
    {NULL, "billing@ex.com"},
};
static outbox_field full_headers[] = {
    {"List-Unsubscribe", "<https://ex.com/u/1>"},
    {"X-Campaign", "q1"},
};
static unsigned char pdf_bytes[] = "%PDF-1";
static unsigned char png_bytes[] = {0x89, 0x50, 0x4E, 0x47};
static outbox_attachment full_attachments[] = {
    {"rechnung.pdf", "application/pdf", NULL, pdf_bytes, 6},
    {"logo.png", "image/png", "logo", png_bytes, 4},
};

/* Sets message to id 1101 with every address list, both bodies, two
 * headers and two attachments. It has no metadata, because each provider
 * maps metadata its own way. Each suite sets its own. */
static inline void init_full_message(outbox_message *message,
                                     char *provider)
{
    memset(message, 0, sizeof(*message));
    message->id = 1101;
    message->attempt = 1;
    message->provider = provider;
    message->message_id = "1101.k3j2@ex.com";
    message->sender.name = "Beispiel GmbH, Buchhaltung";
    message->sender.email = "billing@ex.com";
    message->to.items = full_to;
    message->to.count = 2;
    message->cc.items = full_cc;
    message->cc.count = 1;
    message->bcc.items = full_bcc;
    message->bcc.count = 1;
    message->reply_to.items = full_reply_to;
    message->reply_to.count = 2;
    message->subject = "Rechnung 4711 \xe2\x80\x93 M\xc3\xa4rz";
    message->body_text = "Guten Tag,\n\"Anhang\" siehe unten.";
    message->body_html = "<p>Guten Tag</p><img src=\"cid:logo\">";
    message->headers = full_headers;
    message->header_count = 2;
    message->attachments = full_attachments;
    message->attachment_count = 2;
}

#endif /* OUTBOX_PROVIDER_FIXTURES_H */
