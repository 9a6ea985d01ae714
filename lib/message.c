/*
 * message.c - checks an outbox row and builds the message that providers
 * send. Also defines the default caps on a message.
 *
 * The checks run in this order, so that a row with several faults reports
 * the one that matters most: line breaks and invalid UTF-8 in header text
 * (an address column with CRLF is a header injection attempt before it is
 * a bad address), then the caps, the bodies, the addresses, the headers
 * and metadata columns, and the attachments. The first fault ends the
 * build.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "message_internal.h"

/*
 * The defaults are generous for ERP mail (invoices, reminders, order
 * confirmations). The subject cap of 2000 bytes fits 1000 two-byte
 * characters such as umlauts, far more than a mail client shows. The
 * message cap stays below what base64 makes of it: 40 MiB of attachments
 * become about 54 MiB on the wire.
 */
void outbox_limits_default(outbox_limits *limits)
{
    limits->max_recipients = 1000;
    limits->max_address_text = 64 * 1024;
    limits->max_subject = 2000;
    limits->max_body = 25 * 1024 * 1024;
    limits->max_headers = 50;
    limits->max_header_value = 2000;
    limits->max_metadata = 50;
    limits->max_attachments = 100;
    limits->max_message = 40 * 1024 * 1024;
    limits->max_template_data = 256 * 1024;
}

outbox_err outbox__message_fail_nomem(outbox_error *err, const char *field)
{
    return outbox_error_set(err, OUTBOX_ENOMEM, "out_of_memory",
                            "%s: out of memory", field);
}

static outbox_err fail_limit(outbox_error *err, const char *field,
                             size_t size, size_t cap)
{
    return outbox_error_set(err, OUTBOX_ELIMIT, "limit_exceeded",
                            "%s: is %zu bytes long, more than the maximum "
                            "of %zu", field, size, cap);
}

outbox_err outbox__message_copy_text(char **out, outbox_error *err,
                                     const char *field, const char *text)
{
    *out = NULL;
    if (text == NULL)
        return OUTBOX_EOK;
    *out = outbox__strdup(text);
    return *out != NULL ? OUTBOX_EOK : outbox__message_fail_nomem(err, field);
}

/* Checks the text columns of row for line breaks and invalid UTF-8. */
static outbox_err check_row_text(outbox_error *err, const outbox_row *row)
{
    const struct {
        const char *field;
        const char *text;
    } columns[] = {
        {"sender", row->sender},   {"recipients", row->recipients},
        {"cc", row->cc},           {"bcc", row->bcc},
        {"reply_to", row->reply_to}, {"subject", row->subject},
        {"message_id", row->message_id},
    };
    outbox_err rc = OUTBOX_EOK;

    for (size_t i = 0; i < sizeof(columns) / sizeof(columns[0]); i++) {
        rc = outbox__message_check_header_text(err, columns[i].field, "",
                                               columns[i].text);
        if (rc != OUTBOX_EOK)
            return rc;
    }

    /* These two never reach a header, but logs and provider requests
     * carry them as text. */
    if (row->message_key != NULL
        && !outbox__utf8_valid(row->message_key, strlen(row->message_key)))
        return outbox_error_set(err, OUTBOX_EINVAL, "invalid_text",
                                "message_key: is not valid UTF-8");
    if (row->reference != NULL
        && !outbox__utf8_valid(row->reference, strlen(row->reference)))
        return outbox_error_set(err, OUTBOX_EINVAL, "invalid_text",
                                "reference: is not valid UTF-8");
    return OUTBOX_EOK;
}

/* Adds b to *total, saturating at SIZE_MAX. */
static void add_size(size_t *total, size_t b)
{
    *total = *total > SIZE_MAX - b ? SIZE_MAX : *total + b;
}

/* Checks the caps that a row's sizes alone decide. */
static outbox_err check_row_sizes(outbox_error *err, const outbox_row *row,
                                  const outbox_limits *limits)
{
    const char *const names[] = {"sender", "recipients", "cc", "bcc",
                                 "reply_to"};
    const char *const columns[] = {row->sender, row->recipients, row->cc,
                                   row->bcc, row->reply_to};
    size_t total = 0;

    for (size_t i = 0; i < sizeof(columns) / sizeof(columns[0]); i++) {
        size_t size = columns[i] != NULL ? strlen(columns[i]) : 0;

        if (size > limits->max_address_text)
            return fail_limit(err, names[i], size, limits->max_address_text);
    }
    if (row->subject != NULL && strlen(row->subject) > limits->max_subject)
        return fail_limit(err, "subject", strlen(row->subject),
                          limits->max_subject);
    if (row->body_text != NULL && row->body_text_size > limits->max_body)
        return fail_limit(err, "body_text", row->body_text_size,
                          limits->max_body);
    if (row->body_html != NULL && row->body_html_size > limits->max_body)
        return fail_limit(err, "body_html", row->body_html_size,
                          limits->max_body);
    if (row->attachment_count > limits->max_attachments)
        return outbox_error_set(
            err, OUTBOX_ELIMIT, "limit_exceeded",
            "attachments: has %zu entries, more than the maximum of %zu",
            row->attachment_count, limits->max_attachments);

    add_size(&total, row->body_text != NULL ? row->body_text_size : 0);
    add_size(&total, row->body_html != NULL ? row->body_html_size : 0);
    for (size_t i = 0; i < row->attachment_count; i++)
        add_size(&total, row->attachments[i].size);
    if (total > limits->max_message)
        return outbox_error_set(
            err, OUTBOX_ELIMIT, "limit_exceeded",
            "message: bodies and attachments have %zu bytes, more than the "
            "maximum of %zu", total, limits->max_message);
    return OUTBOX_EOK;
}

/* Copies a body of size bytes. An empty body stays NULL, meaning absent. */
static outbox_err copy_body(char **out, outbox_error *err, const char *field,
                            const char *body, size_t size)
{
    *out = NULL;
    if (body == NULL || size == 0)
        return OUTBOX_EOK;
    if (memchr(body, '\0', size) != NULL)
        return outbox_error_set(err, OUTBOX_EINVAL, "invalid_text",
                                "%s: contains a NUL byte", field);
    if (!outbox__utf8_valid(body, size))
        return outbox_error_set(err, OUTBOX_EINVAL, "invalid_text",
                                "%s: is not valid UTF-8", field);
    *out = outbox__strndup(body, size);
    return *out != NULL ? OUTBOX_EOK : outbox__message_fail_nomem(err, field);
}

/* Copies the columns that need no parsing (ids, keys, subject, bodies)
 * and the template, and checks that the message has something to send. */
static outbox_err copy_columns(outbox_message *message, outbox_error *err,
                               const outbox_row *row,
                               const outbox_limits *limits)
{
    outbox_err rc;

    message->id = row->id;
    message->attempt = row->attempt;
    message->created_at = row->created_at;
    rc = outbox__message_copy_text(&message->message_key, err, "message_key",
                                   row->message_key);
    if (rc == OUTBOX_EOK)
        rc = outbox__message_copy_text(&message->reference, err, "reference",
                                       row->reference);
    if (rc == OUTBOX_EOK)
        rc = outbox__message_copy_text(&message->provider, err, "provider",
                                       row->provider);
    if (rc == OUTBOX_EOK)
        rc = outbox__message_copy_text(&message->message_id, err,
                                       "message_id", row->message_id);
    if (rc == OUTBOX_EOK)
        rc = outbox__message_copy_text(&message->subject, err, "subject",
                                       row->subject != NULL ? row->subject
                                                            : "");
    if (rc == OUTBOX_EOK)
        rc = copy_body(&message->body_text, err, "body_text", row->body_text,
                       row->body_text_size);
    if (rc == OUTBOX_EOK)
        rc = copy_body(&message->body_html, err, "body_html", row->body_html,
                       row->body_html_size);
    if (rc == OUTBOX_EOK)
        rc = outbox__message_build_template(message, err, row, limits);
    if (rc == OUTBOX_EOK && message->body_text == NULL
        && message->body_html == NULL && message->template_name == NULL)
        rc = outbox_error_set(err, OUTBOX_EINVAL, "missing_body",
                              "body_text and body_html: both are missing or "
                              "empty, but a message needs at least one body "
                              "or a template");
    return rc;
}

/* Returns true if an address column has only separators and whitespace. */
static bool is_blank(const char *text)
{
    return text == NULL || text[strspn(text, " \t,;")] == '\0';
}

/*
 * Parses an address column into list and labels its errors with kind.
 * The parser gets no count cap because the recipient cap applies after
 * repeats are removed. The byte cap on the column bounds the work instead.
 */
static outbox_err parse_column(outbox_address_list *list, outbox_error *err,
                               const char *field, const char *kind,
                               const char *text, bool required)
{
    outbox_err rc;

    if (is_blank(text)) {
        if (!required)
            return OUTBOX_EOK;
        return outbox_error_set(err, OUTBOX_EINVAL, kind,
                                "%s: is missing or empty, but an address "
                                "is required", field);
    }
    rc = outbox_address_list_parse(list, err, field, text, SIZE_MAX);
    if (rc == OUTBOX_EINVAL && err != NULL)
        snprintf(err->kind, sizeof(err->kind), "%s", kind);
    return rc;
}

static outbox_err parse_sender(outbox_message *message, outbox_error *err,
                               const char *text)
{
    outbox_address_list list = {NULL, 0};
    outbox_err rc = parse_column(&list, err, "sender", "invalid_sender", text,
                                 true);

    if (rc != OUTBOX_EOK)
        return rc;
    if (list.count != 1) {
        rc = outbox_error_set(err, OUTBOX_EINVAL, "invalid_sender",
                              "sender: has %zu addresses, but exactly one is "
                              "required", list.count);
        outbox_address_list_clear(&list);
        return rc;
    }
    message->sender = list.items[0];
    free(list.items);
    return OUTBOX_EOK;
}

/*
 * A set of email addresses that compares them without regard to ASCII
 * case: open addressing over borrowed pointers, at most half full.
 */
typedef struct email_set {
    const char **slots;
    size_t mask;
} email_set;

/* FNV-1a over the address with ASCII letters in lower case. */
static uint64_t hash_email(const char *email)
{
    uint64_t hash = UINT64_C(14695981039346656037);

    for (const unsigned char *p = (const unsigned char *)email; *p != '\0';
         p++) {
        unsigned char c = *p;

        if (c >= 'A' && c <= 'Z')
            c = (unsigned char)(c + ('a' - 'A'));
        hash = (hash ^ c) * UINT64_C(1099511628211);
    }
    return hash;
}

/* Adds email to set; returns false if the set already has it. */
static bool email_set_add(email_set *set, const char *email)
{
    size_t i = (size_t)hash_email(email) & set->mask;

    while (set->slots[i] != NULL) {
        if (outbox__strcasecmp(set->slots[i], email) == 0)
            return false;
        i = (i + 1) & set->mask;
    }
    set->slots[i] = email;
    return true;
}

/*
 * Removes repeated addresses from to, cc and bcc, in that order, so that
 * an address keeps its first place. A hash set keeps this linear, because
 * a 64 KiB column can hold thousands of addresses.
 */
static outbox_err remove_repeats(outbox_message *message, outbox_error *err)
{
    outbox_address_list *lists[] = {&message->to, &message->cc,
                                    &message->bcc};
    size_t total = outbox_message_recipient_count(message);
    size_t size = 16;
    email_set set;

    while (size / 2 < total)
        size *= 2;
    set.slots = calloc(size, sizeof(*set.slots));
    if (set.slots == NULL)
        return outbox__message_fail_nomem(err, "recipients");
    set.mask = size - 1;

    for (size_t l = 0; l < sizeof(lists) / sizeof(lists[0]); l++) {
        outbox_address_list *list = lists[l];
        size_t kept_count = 0;

        for (size_t i = 0; i < list->count; i++) {
            outbox_address address = list->items[i];

            if (email_set_add(&set, address.email)) {
                list->items[kept_count++] = address;
            } else {
                free(address.name);
                free(address.email);
            }
        }
        list->count = kept_count;
    }
    free(set.slots);
    return OUTBOX_EOK;
}

static outbox_err build_addresses(outbox_message *message, outbox_error *err,
                                  const outbox_row *row,
                                  const outbox_limits *limits)
{
    outbox_err rc = parse_sender(message, err, row->sender);
    size_t count;

    if (rc == OUTBOX_EOK)
        rc = parse_column(&message->to, err, "recipients",
                          "invalid_recipients", row->recipients, true);
    if (rc == OUTBOX_EOK)
        rc = parse_column(&message->cc, err, "cc", "invalid_cc", row->cc,
                          false);
    if (rc == OUTBOX_EOK)
        rc = parse_column(&message->bcc, err, "bcc", "invalid_bcc", row->bcc,
                          false);
    if (rc == OUTBOX_EOK)
        rc = parse_column(&message->reply_to, err, "reply_to",
                          "invalid_reply_to", row->reply_to, false);
    if (rc == OUTBOX_EOK)
        rc = remove_repeats(message, err);
    if (rc != OUTBOX_EOK)
        return rc;

    count = outbox_message_recipient_count(message);
    if (count > limits->max_recipients)
        return outbox_error_set(
            err, OUTBOX_ELIMIT, "limit_exceeded",
            "recipients: to, cc and bcc have %zu addresses, more than the "
            "maximum of %zu", count, limits->max_recipients);
    return OUTBOX_EOK;
}

outbox_err outbox_message_build(outbox_message **out, outbox_error *err,
                                const outbox_row *row,
                                const outbox_limits *limits)
{
    outbox_limits defaults;
    outbox_message *message = NULL;
    outbox_err rc;

    if (out == NULL || row == NULL
        || (row->attachment_count > 0 && row->attachments == NULL))
        return outbox_error_set(err, OUTBOX_EINVAL, "internal",
                                "message: outbox_message_build needs an "
                                "output, a row, and the row's attachments");
    *out = NULL;
    if (limits == NULL) {
        outbox_limits_default(&defaults);
        limits = &defaults;
    }

    rc = check_row_text(err, row);
    if (rc == OUTBOX_EOK)
        rc = check_row_sizes(err, row, limits);
    if (rc != OUTBOX_EOK)
        goto cleanup;

    message = calloc(1, sizeof(*message));
    if (message == NULL) {
        rc = outbox__message_fail_nomem(err, "message");
        goto cleanup;
    }
    rc = copy_columns(message, err, row, limits);
    if (rc == OUTBOX_EOK)
        rc = build_addresses(message, err, row, limits);
    if (rc == OUTBOX_EOK)
        rc = outbox__message_build_headers(message, err, row, limits);
    if (rc == OUTBOX_EOK)
        rc = outbox__message_build_metadata(message, err, row, limits);
    if (rc == OUTBOX_EOK)
        rc = outbox__message_copy_attachments(message, err, row);
    if (rc == OUTBOX_EOK) {
        *out = message;
        message = NULL;
    }

cleanup:
    outbox_message_free(message);
    return rc;
}

static void free_fields(outbox_field *fields, size_t count)
{
    for (size_t i = 0; i < count; i++) {
        free(fields[i].name);
        free(fields[i].value);
    }
    free(fields);
}

void outbox_message_free(outbox_message *message)
{
    if (message == NULL)
        return;
    free(message->message_key);
    free(message->reference);
    free(message->provider);
    free(message->message_id);
    free(message->sender.name);
    free(message->sender.email);
    outbox_address_list_clear(&message->to);
    outbox_address_list_clear(&message->cc);
    outbox_address_list_clear(&message->bcc);
    outbox_address_list_clear(&message->reply_to);
    free(message->subject);
    free(message->body_text);
    free(message->body_html);
    free(message->template_name);
    free(message->template_data);
    free_fields(message->headers, message->header_count);
    free_fields(message->metadata, message->metadata_count);
    for (size_t i = 0; i < message->attachment_count; i++) {
        free(message->attachments[i].filename);
        free(message->attachments[i].content_type);
        free(message->attachments[i].content_id);
        free(message->attachments[i].content);
    }
    free(message->attachments);
    free(message);
}

size_t outbox_message_recipient_count(const outbox_message *message)
{
    if (message == NULL)
        return 0;
    return message->to.count + message->cc.count + message->bcc.count;
}
