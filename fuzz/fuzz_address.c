/*
 * fuzz_address.c - libFuzzer target for the address list parser and the
 * mailbox formatter.
 *
 * The input is one address-list column as the ERP would write it. The
 * column name and the cap on addresses vary with the input size, so every
 * corpus entry also exercises the error texts that name the column and the
 * "too many addresses" path. A parsed address must format to a header
 * value whose only line breaks are folds, an error text must be valid UTF-8 because it
 * is stored in a TEXT column, and every allocation must be freed.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* NULL makes the parser fall back to the name "address". */
static const char *const field_names[] = {
    "sender", "recipients", "cc", "bcc", "reply_to", NULL,
};

#define FIELD_COUNT (sizeof(field_names) / sizeof(field_names[0]))

/* Caps on the address count: a single sender, a small list and the
 * default max_recipients (0 stands for it). */
static const size_t max_counts[] = {1, 3, 0};

#define MAX_COUNT_COUNT (sizeof(max_counts) / sizeof(max_counts[0]))

/* Prints the problem and aborts, so libFuzzer saves the input. */
static _Noreturn void fail(const char *problem, const char *detail)
{
    fprintf(stderr, "fuzz_address: %s: %.200s\n", problem,
            detail != NULL ? detail : "(null)");
    abort();
}

/*
 * Returns true if formatted can follow "To: " in a header: valid UTF-8, and
 * every CR or LF belongs to a fold "CRLF SP" between encoded words, so no
 * line of it can start a new header field.
 */
static bool is_folded_header_value(const char *formatted)
{
    for (const char *p = formatted; *p != '\0'; p++) {
        if (*p == '\n')
            return false;
        if (*p == '\r') {
            if (strncmp(p, "\r\n ", 3) != 0)
                return false;
            p += 2;
        }
    }
    return outbox__utf8_valid(formatted, strlen(formatted));
}

/* Checks one parsed address and the header form of it. */
static void check_address(const outbox_address *address)
{
    char *formatted;

    if (address->email == NULL || address->email[0] == '\0')
        fail("parsed address has no email", address->name);
    if (!outbox_header_value_is_safe(address->email))
        fail("email is not a safe header value", address->email);
    if (address->name != NULL && !outbox_header_value_is_safe(address->name))
        fail("display name is not a safe header value", address->name);

    /* The library returns NULL only when malloc fails, and ASan aborts
     * on a failed malloc before that could happen. */
    formatted = outbox_header_format_address(address);
    if (formatted == NULL)
        fail("outbox_header_format_address returned NULL", address->email);
    if (!is_folded_header_value(formatted))
        fail("formatted address has a line break outside a fold, or "
             "invalid UTF-8", formatted);
    if (strstr(formatted, address->email) == NULL)
        fail("formatted address lost the email", formatted);
    free(formatted);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *field = field_names[size % FIELD_COUNT];
    size_t max_count = max_counts[(size / FIELD_COUNT) % MAX_COUNT_COUNT];
    outbox_address_list list = {NULL, 0};
    outbox_error err;
    outbox_limits limits;
    outbox_err rc;
    char *text = malloc(size + 1);

    if (text == NULL)
        return 0;
    memcpy(text, data, size);
    text[size] = '\0';
    if (max_count == 0) {
        outbox_limits_default(&limits);
        max_count = limits.max_recipients;
    }

    memset(&err, 0, sizeof(err));
    rc = outbox_address_list_parse(&list, &err, field, text, max_count);
    if (rc == OUTBOX_EOK) {
        if (list.count == 0 || list.count > max_count)
            fail("parse succeeded with a wrong address count", text);
        for (size_t i = 0; i < list.count; i++)
            check_address(&list.items[i]);
    } else {
        if (list.items != NULL || list.count != 0)
            fail("failed parse left entries in the list", err.text);
        if (err.kind[0] == '\0' || err.text[0] == '\0')
            fail("failed parse left the error empty", text);
        if (!outbox__utf8_valid(err.text, strlen(err.text)))
            fail("error text is not valid UTF-8", err.text);
    }

    outbox_address_list_clear(&list);
    free(text);
    return 0;
}
