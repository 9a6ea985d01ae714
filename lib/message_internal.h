/*
 * message_internal.h - what message.c and message_fields.c share. Not
 * installed.
 */
#ifndef OUTBOX_MESSAGE_INTERNAL_H
#define OUTBOX_MESSAGE_INTERNAL_H

#include "internal.h"

/* Sets err to OUTBOX_ENOMEM with kind "out_of_memory" for field. */
outbox_err outbox__message_fail_nomem(outbox_error *err, const char *field);

/* Copies text, which may be NULL, into *out. */
outbox_err outbox__message_copy_text(char **out, outbox_error *err,
                                     const char *field, const char *text);

/*
 * Checks text bound for a header: CR or LF gives "invalid_header_value",
 * invalid UTF-8 gives "invalid_text". what describes the text after the
 * field, such as "the value of \"X-Tag\""; it may be "".
 */
outbox_err outbox__message_check_header_text(outbox_error *err,
                                             const char *field,
                                             const char *what,
                                             const char *text);

/*
 * Parses the headers column of row, a JSON object or NULL, into
 * message->headers. Names that outboxd sets itself are rejected.
 */
outbox_err outbox__message_build_headers(outbox_message *message,
                                         outbox_error *err,
                                         const outbox_row *row,
                                         const outbox_limits *limits);

/*
 * Parses the metadata column of row, a JSON object or NULL, into
 * message->metadata. Numbers and booleans become their JSON text.
 */
outbox_err outbox__message_build_metadata(outbox_message *message,
                                          outbox_error *err,
                                          const outbox_row *row,
                                          const outbox_limits *limits);

/*
 * Checks and copies the attachments of row into message. A missing or
 * empty content type becomes application/octet-stream.
 */
outbox_err outbox__message_copy_attachments(outbox_message *message,
                                            outbox_error *err,
                                            const outbox_row *row);

/*
 * Checks the template and template_data columns and copies them into
 * message. The name is 1 to OUTBOX_TEMPLATE_NAME_MAX bytes of visible
 * ASCII, and the data a JSON object of at most limits->max_template_data
 * bytes that needs a template.
 */
outbox_err outbox__message_build_template(outbox_message *message,
                                          outbox_error *err,
                                          const outbox_row *row,
                                          const outbox_limits *limits);

#endif /* OUTBOX_MESSAGE_INTERNAL_H */
