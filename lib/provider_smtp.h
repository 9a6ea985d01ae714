/*
 * provider_smtp.h - the pure parts of the SMTP relay provider, exposed so
 * that tests can drive them without a server. Not installed.
 */
#ifndef OUTBOX_PROVIDER_SMTP_H
#define OUTBOX_PROVIDER_SMTP_H

#include "provider.h"

/* One body or attachment that libcurl reads through a callback, so the
 * bytes are not copied into the MIME tree. */
typedef struct outbox_smtp_source {
    const char *data;
    size_t size;
    size_t offset;
} outbox_smtp_source;

/* What one SMTP transaction needs until it ends. */
typedef struct outbox_smtp_request {
    char *mail_from;               /* "<sender@example.com>" */
    struct curl_slist *recipients; /* "<a@example.org>": to, cc and bcc */
    struct curl_slist *headers;    /* top-level header fields */
    curl_mime *mime;
    char **texts;                  /* bodies with CRLF line breaks */
    size_t text_count;
    outbox_smtp_source *sources;   /* one per text body and attachment */
    size_t source_count;
} outbox_smtp_request;

/*
 * Fills request->mail_from and request->recipients: the envelope sender
 * and every to, cc and bcc address, for one MAIL FROM and one RCPT TO per
 * address in a single transaction.
 */
outbox_err outbox__smtp_envelope(outbox_smtp_request *request,
                                 outbox_error *err,
                                 const outbox_message *message);

/*
 * Fills request->headers with the top-level header fields of message:
 * Date (from date, unix seconds), From, To, Cc, Reply-To, Subject,
 * Message-ID, X-Outbox-Id and the extra headers. Non-ASCII text becomes
 * RFC 2047 encoded words and long fields are folded (an entry may hold
 * CRLF SP). Bcc addresses and metadata are never written.
 */
outbox_err outbox__smtp_headers(outbox_smtp_request *request,
                                outbox_error *err,
                                const outbox_message *message, int64_t date);

/*
 * Builds request->mime on easy: multipart/mixed holding the body (text,
 * multipart/alternative, or multipart/related with inline images) and then
 * the attachments in base64. The parts read the message's bytes, so
 * message must outlive the transfer.
 */
outbox_err outbox__smtp_mime(outbox_smtp_request *request, outbox_error *err,
                             CURL *easy, const outbox_message *message);

/*
 * Returns an estimate of the message's size on the wire: the headers,
 * the bodies in quoted-printable, the attachments in base64 lines, and
 * room for the MIME part headers.
 */
size_t outbox__smtp_estimated_size(const outbox_smtp_request *request,
                                   const outbox_message *message);

/* Frees what request owns, and request itself. Accepts NULL. */
void outbox__smtp_request_free(outbox_smtp_request *request);

/*
 * Delays for the SMTP replies that ask to wait: throttle for a rate limit
 * (450, 451, 452, 454), quota for a daily limit (5.4.5).
 */
typedef struct outbox_smtp_delays {
    int64_t throttle;
    int64_t quota;
} outbox_smtp_delays;

/*
 * Classifies the end of one SMTP transaction. response->status is the
 * reply code that libcurl reports last, and response->body contains the
 * session's reply lines in order.
 */
void outbox__smtp_classify(outbox_result *result,
                           const outbox_response *response,
                           const outbox_smtp_delays *delays);

#endif /* OUTBOX_PROVIDER_SMTP_H */
