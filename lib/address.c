/*
 * address.c - parses the address lists that an ERP writes into the sender,
 * recipients, cc, bcc and reply_to columns.
 *
 * The grammar is the address list of RFC 5322 section 3.4, with these
 * choices:
 * - A semicolon separates addresses like a comma does, because Outlook
 *   users type semicolons and paste such lists into ERP fields.
 * - Empty entries between separators, such as after a trailing comma, are
 *   ignored, and so is an entry that contains only a comment.
 * - Comments in parentheses are dropped wherever they appear outside a
 *   quoted string, so `a@example.org (Anna)` yields a@example.org.
 * - Group syntax (`team: a@example.org;`) is rejected, because messages
 *   carry flat lists of mailboxes and an empty group would deliver to no
 *   recipient without an error.
 * - An unquoted display name may contain specials such as '@' or '.', as in
 *   `info@example.org <info@example.org>`, because many programs write names
 *   that way. The header formatter quotes such names on output.
 * - UTF-8 is accepted in display names, in the local part and in the domain
 *   (RFC 6532). An IDN domain is kept in UTF-8, not converted to Punycode.
 * - Domain literals (`a@[192.0.2.1]`) are rejected.
 *
 * Errors about the text have kind "invalid_address", and a list over
 * max_count has kind "limit_exceeded".
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

/*
 * Caps in bytes: a local part of 64 (RFC 5321 section 4.5.3.1.1), a label
 * of 63 and a domain of 253, the text form of the 255 octets of RFC 1035
 * section 2.3.4. NOTE: an IDN is measured in UTF-8 here, but DNS applies
 * the caps to its Punycode form, which can be longer, so a rare long IDN
 * label passes here and fails at delivery.
 */
#define LOCAL_PART_MAX 64
#define DOMAIN_MAX 253
#define LABEL_MAX 63

/* Bytes of an entry that an error text quotes before cutting it. */
#define EXCERPT_MAX 80

/* Size of the buffer that receives the description of a problem. */
#define PROBLEM_SIZE 160

typedef enum scan_status {
    SCAN_OK,
    SCAN_OPEN_QUOTE,
    SCAN_OPEN_COMMENT,
} scan_status;

static bool is_space(char c)
{
    return c == ' ' || c == '\t';
}

/* RFC 5322 atext: the characters of an unquoted local part or word. */
static bool is_atext(unsigned char c)
{
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
        || (c >= '0' && c <= '9'))
        return true;
    return c != '\0' && strchr("!#$%&'*+-/=?^_`{|}~", c) != NULL;
}

/* Writes the description of a problem into problem and returns false. */
static bool fail(char *problem, const char *format, ...)
    __attribute__((format(printf, 2, 3)));

static bool fail(char *problem, const char *format, ...)
{
    va_list args;

    va_start(args, format);
    vsnprintf(problem, PROBLEM_SIZE, format, args);
    va_end(args);
    return false;
}

/* Writes c for an error text: 'x' when printable, else its hex code. */
static void describe_char(char out[8], unsigned char c)
{
    if (c > 0x20 && c < 0x7F)
        snprintf(out, 8, "'%c'", c);
    else
        snprintf(out, 8, "0x%02X", c);
}

/*
 * Finds where the entry that starts at text[start] ends: at the next comma
 * or semicolon outside quoted strings and comments, or at the end of text.
 * Sets *content to true if the entry contains anything besides whitespace
 * and comments.
 */
static scan_status scan_entry(const char *text, size_t start, size_t *end,
                              bool *content)
{
    size_t i = start;
    size_t depth = 0;
    bool quoted = false;

    *content = false;
    for (; text[i] != '\0'; i++) {
        char c = text[i];

        if ((quoted || depth > 0) && c == '\\' && text[i + 1] != '\0') {
            i++;
        } else if (quoted) {
            quoted = c != '"';
        } else if (depth > 0) {
            if (c == '(')
                depth++;
            else if (c == ')')
                depth--;
        } else if (c == ',' || c == ';') {
            break;
        } else if (c == '(') {
            depth = 1;
        } else {
            quoted = c == '"';
            if (!is_space(c))
                *content = true;
        }
    }
    *end = i;
    if (quoted)
        return SCAN_OPEN_QUOTE;
    if (depth > 0)
        return SCAN_OPEN_COMMENT;
    return SCAN_OK;
}

/*
 * Copies the n bytes at s without their comments. Each comment becomes one
 * space, so that `Anna(Sales)Meier` does not turn into one word. The caller
 * has checked with scan_entry that every quote and comment is closed.
 */
static char *strip_comments(const char *s, size_t n)
{
    char *out = malloc(n + 1);
    size_t length = 0;
    size_t depth = 0;
    bool quoted = false;

    if (out == NULL)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];

        if (depth > 0) {
            if (c == '\\' && i + 1 < n)
                i++;
            else if (c == '(')
                depth++;
            else if (c == ')')
                depth--;
            if (depth == 0)
                out[length++] = ' ';
            continue;
        }
        if (c == '(' && !quoted) {
            depth = 1;
            continue;
        }
        out[length++] = c;
        if (quoted && c == '\\' && i + 1 < n)
            out[length++] = s[++i];
        else if (c == '"')
            quoted = !quoted;
    }
    out[length] = '\0';
    return out;
}

/* Removes leading and trailing whitespace from s in place. */
static char *trim(char *s)
{
    size_t n;

    while (is_space(*s))
        s++;
    n = strlen(s);
    while (n > 0 && is_space(s[n - 1]))
        n--;
    s[n] = '\0';
    return s;
}

/* Returns the first c in s that is outside a quoted string, or NULL. */
static char *find_unquoted(char *s, char c)
{
    bool quoted = false;

    for (; *s != '\0'; s++) {
        if (quoted && *s == '\\' && s[1] != '\0')
            s++;
        else if (*s == '"')
            quoted = !quoted;
        else if (!quoted && *s == c)
            return s;
    }
    return NULL;
}

/* Returns the quote that closes the quoted string at s[0], or NULL. */
static char *find_closing_quote(char *s)
{
    for (s++; *s != '\0'; s++) {
        if (*s == '\\' && s[1] != '\0')
            s++;
        else if (*s == '"')
            return s;
    }
    return NULL;
}

/* Rejects line breaks, other control characters and invalid UTF-8. */
static bool check_raw(const char *raw, size_t n, char *problem)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)raw[i];

        if (c == '\r' || c == '\n')
            return fail(problem, "contains a line break (CR or LF)");
        if ((c < 0x20 && c != '\t') || c == 0x7F)
            return fail(problem, "contains the control character 0x%02X", c);
    }
    if (!outbox__utf8_valid(raw, n))
        return fail(problem, "is not valid UTF-8");
    return true;
}

/* Checks a dot-atom local part: atext or UTF-8, dots only between. */
static bool check_dot_atom(const char *local, size_t n, char *problem)
{
    char shown[8];

    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)local[i];

        if (c == '.') {
            if (i == 0 || i == n - 1 || local[i - 1] == '.')
                return fail(problem, "has a dot at the start or end of "
                                     "the local part, or two dots in a row");
        } else if (!is_atext(c) && c < 0x80) {
            describe_char(shown, c);
            return fail(problem, "has the character %s in the local part, "
                                 "which is allowed only in quotes", shown);
        }
    }
    return true;
}

/*
 * Checks a quoted local part such as `"anna meier"`: printable ASCII, UTF-8
 * and backslash pairs between the quotes. local spans both quotes.
 */
static bool check_quoted_local(const char *local, size_t n, char *problem)
{
    char shown[8];

    if (n <= 2)
        return fail(problem, "has an empty local part");
    for (size_t i = 1; i + 1 < n; i++) {
        unsigned char c = (unsigned char)local[i];

        if (c == '\\')
            c = (unsigned char)local[++i];
        if (c < 0x20 || c == 0x7F) {
            describe_char(shown, c);
            return fail(problem, "has the character %s in the local part",
                        shown);
        }
    }
    return true;
}

/* Checks one label of a domain: letters, digits, hyphens or UTF-8. */
static bool check_label(const char *label, size_t n, char *problem)
{
    char shown[8];

    if (n == 0)
        return fail(problem, "has an empty label in the domain");
    if (n > LABEL_MAX)
        return fail(problem, "has a domain label of %zu bytes, more than the "
                             "maximum of %d", n, LABEL_MAX);
    if (label[0] == '-' || label[n - 1] == '-')
        return fail(problem,
                    "has a domain label that starts or ends with a hyphen");
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)label[i];
        bool ascii_ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
                        || (c >= '0' && c <= '9') || c == '-';

        if (!ascii_ok && c < 0x80) {
            describe_char(shown, c);
            return fail(problem, "has the character %s in the domain", shown);
        }
    }
    return true;
}

static bool check_domain(const char *domain, char *problem)
{
    size_t size = strlen(domain);
    const char *label = domain;

    if (size == 0)
        return fail(problem, "has an empty domain");
    if (domain[0] == '[')
        return fail(problem, "has a domain literal in brackets, which is "
                             "not supported");
    if (size > DOMAIN_MAX)
        return fail(problem, "has a domain of %zu bytes, more than the "
                             "maximum of %d", size, DOMAIN_MAX);
    if (strchr(domain, '.') == NULL)
        return fail(problem, "has a domain without a dot");
    for (;;) {
        size_t n = strcspn(label, ".");

        if (!check_label(label, n, problem))
            return false;
        if (label[n] == '\0')
            return true;
        label += n + 1;
    }
}

/* Checks an addr-spec (local-part@domain) without angle brackets. */
static bool check_addr_spec(char *spec, char *problem)
{
    char *at;
    size_t local_size;

    if (spec[0] == '"') {
        /* A quoted local part may contain '@' and spaces: skip past it. */
        char *close = find_closing_quote(spec);

        at = close != NULL ? close + 1 : NULL;
        if (at != NULL && *at != '@' && strchr(at, '@') != NULL)
            return fail(problem, "has text between the quoted local part "
                                 "and the @");
        if (at != NULL && *at != '@')
            at = NULL;
    } else {
        at = strchr(spec, '@');
        if (at != NULL && strpbrk(spec, " \t") != NULL)
            return fail(problem, "contains a space outside quotes (a missing "
                                 "comma, or a name without <> around the "
                                 "address?)");
    }
    if (at == NULL)
        return fail(problem, "has no @");
    if (strchr(at + 1, '@') != NULL)
        return fail(problem, "has more than one @");

    local_size = (size_t)(at - spec);
    if (local_size == 0)
        return fail(problem, "has nothing before the @");
    if (local_size > LOCAL_PART_MAX)
        return fail(problem, "has a local part of %zu bytes, more than the "
                             "maximum of %d", local_size, LOCAL_PART_MAX);
    if (spec[0] == '"' ? !check_quoted_local(spec, local_size, problem)
                       : !check_dot_atom(spec, local_size, problem))
        return false;
    return check_domain(at + 1, problem);
}

/*
 * Turns a display-name phrase into its text: quotes and backslashes are
 * removed, and whitespace outside quotes shrinks to one space. *name is
 * NULL when the phrase is empty.
 */
static outbox_err make_name(char **name, const char *phrase)
{
    size_t n = strlen(phrase);
    size_t length = 0;
    bool quoted = false;
    char *out = malloc(n + 1);
    char *start;

    *name = NULL;
    if (out == NULL)
        return OUTBOX_ENOMEM;
    for (size_t i = 0; i < n; i++) {
        char c = phrase[i];

        if (c == '"') {
            quoted = !quoted;
        } else if (quoted && c == '\\' && i + 1 < n) {
            out[length++] = phrase[++i];
        } else if (!quoted && is_space(c)) {
            if (length > 0 && out[length - 1] != ' ')
                out[length++] = ' ';
        } else {
            out[length++] = c;
        }
    }
    out[length] = '\0';
    start = trim(out);
    if (start[0] == '\0') {
        free(out);
        return OUTBOX_EOK;
    }
    memmove(out, start, strlen(start) + 1);
    *name = out;
    return OUTBOX_EOK;
}

/*
 * Splits a comment-free entry into its display-name phrase and addr-spec,
 * both pointing into entry, which is modified. *phrase is NULL when the
 * entry has no angle brackets.
 */
static bool split_entry(char *entry, char **phrase, char **spec,
                        char *problem)
{
    char *open = find_unquoted(entry, '<');
    char *close;

    *phrase = NULL;
    *spec = entry;
    if (find_unquoted(entry, ':') != NULL)
        return fail(problem, "uses group syntax (name: addresses;), which is "
                             "not supported");
    if (find_unquoted(entry, ')') != NULL)
        return fail(problem, "has a ) without a matching (");
    if (open == NULL) {
        if (find_unquoted(entry, '>') == NULL)
            return true;
        return fail(problem, "has a > without a matching <");
    }

    close = find_unquoted(open + 1, '>');
    if (close == NULL)
        return fail(problem, "has a < without a closing >");
    *open = '\0';
    *close = '\0';
    if (find_unquoted(entry, '>') != NULL)
        return fail(problem, "has a > without a matching <");
    if (trim(close + 1)[0] != '\0')
        return fail(problem, "has text after the closing >");
    *phrase = entry;
    *spec = trim(open + 1);
    if ((*spec)[0] == '\0')
        return fail(problem, "has no address between < and >");
    return true;
}

/*
 * Parses the n bytes at raw, one entry of the list, into address. Returns
 * OUTBOX_EINVAL with the reason in problem, or OUTBOX_ENOMEM.
 */
static outbox_err parse_entry(outbox_address *address, char *problem,
                              const char *raw, size_t n, scan_status status)
{
    char *copy = NULL;
    char *phrase;
    char *spec;
    outbox_err rc = OUTBOX_EINVAL;

    if (!check_raw(raw, n, problem))
        goto cleanup;
    if (status != SCAN_OK) {
        snprintf(problem, PROBLEM_SIZE, "has an unterminated %s",
                 status == SCAN_OPEN_QUOTE ? "quoted string" : "comment");
        goto cleanup;
    }

    rc = OUTBOX_ENOMEM;
    copy = strip_comments(raw, n);
    if (copy == NULL)
        goto cleanup;
    rc = OUTBOX_EINVAL;
    if (!split_entry(trim(copy), &phrase, &spec, problem)
        || !check_addr_spec(spec, problem))
        goto cleanup;

    rc = OUTBOX_ENOMEM;
    address->email = outbox__strdup(spec);
    if (address->email == NULL)
        goto cleanup;
    rc = phrase != NULL ? make_name(&address->name, phrase) : OUTBOX_EOK;

cleanup:
    free(copy);
    return rc;
}

/*
 * Writes at most EXCERPT_MAX bytes of an entry into out for an error text.
 * A cut falls between UTF-8 characters and is marked "...", and control
 * characters become '?' so the text cannot break a log line.
 */
static void make_excerpt(char out[EXCERPT_MAX + 4], const char *raw,
                         size_t n)
{
    size_t length;
    bool valid;

    while (n > 0 && is_space(*raw)) {
        raw++;
        n--;
    }
    while (n > 0 && is_space(raw[n - 1]))
        n--;
    length = n;
    if (length > EXCERPT_MAX) {
        length = EXCERPT_MAX;
        while (length > 0 && ((unsigned char)raw[length] & 0xC0) == 0x80)
            length--;
    }
    valid = outbox__utf8_valid(raw, length);
    for (size_t i = 0; i < length; i++) {
        unsigned char c = (unsigned char)raw[i];

        out[i] = (c < 0x20 || c == 0x7F || (c >= 0x80 && !valid)) ? '?'
                                                                   : (char)c;
    }
    strcpy(out + length, length < n ? "..." : "");
}

/*
 * Returns true if a span between separators is an entry to parse. A span
 * of only whitespace and comments is skipped, unless it contains a fault
 * that must not pass unseen, such as a line break inside a comment.
 */
static bool is_entry(const char *raw, size_t n, bool content,
                     scan_status status)
{
    char problem[PROBLEM_SIZE];

    return content || status != SCAN_OK || !check_raw(raw, n, problem);
}

/* Counts the entries from text[pos] to the end. */
static size_t count_entries(const char *text, size_t pos)
{
    size_t count = 0;

    for (;;) {
        size_t end;
        bool content;
        scan_status status = scan_entry(text, pos, &end, &content);

        if (is_entry(text + pos, end - pos, content, status))
            count++;
        if (text[end] == '\0')
            return count;
        pos = end + 1;
    }
}

/* Appends the n bytes at raw, entry number index, to list. */
static outbox_err add_entry(outbox_address_list *list, size_t *capacity,
                            outbox_error *err, const char *field,
                            size_t index, const char *raw, size_t n,
                            scan_status status)
{
    char problem[PROBLEM_SIZE];
    char excerpt[EXCERPT_MAX + 4];
    outbox_address *item;
    outbox_err rc;

    if (list->count == *capacity) {
        size_t grown = *capacity ? *capacity * 2 : 4;
        outbox_address *items;

        if (grown > SIZE_MAX / sizeof(*items))
            return outbox_error_set(err, OUTBOX_ENOMEM, "out_of_memory",
                                    "%s: too many addresses", field);
        items = realloc(list->items, grown * sizeof(*items));
        if (items == NULL)
            return outbox_error_set(err, OUTBOX_ENOMEM, "out_of_memory",
                                    "%s: out of memory", field);
        list->items = items;
        *capacity = grown;
    }

    /* The entry counts from here, so that clearing the list frees it. */
    item = &list->items[list->count++];
    item->name = NULL;
    item->email = NULL;
    rc = parse_entry(item, problem, raw, n, status);
    if (rc == OUTBOX_ENOMEM)
        return outbox_error_set(err, rc, "out_of_memory",
                                "%s: out of memory", field);
    if (rc != OUTBOX_EOK) {
        make_excerpt(excerpt, raw, n);
        return outbox_error_set(err, rc, "invalid_address",
                                "%s: address %zu \"%s\" %s", field, index,
                                excerpt, problem);
    }
    return OUTBOX_EOK;
}

outbox_err outbox_address_list_parse(outbox_address_list *out,
                                     outbox_error *err, const char *field,
                                     const char *text, size_t max_count)
{
    outbox_address_list list = {NULL, 0};
    size_t capacity = 0;
    size_t pos = 0;
    size_t index = 0;
    outbox_err rc = OUTBOX_EOK;

    if (field == NULL)
        field = "address";
    if (out == NULL)
        return outbox_error_set(err, OUTBOX_EINVAL, "internal",
                                "%s: no list to parse into", field);
    out->items = NULL;
    out->count = 0;
    if (text == NULL)
        text = "";

    for (;;) {
        size_t end;
        bool content;
        scan_status status = scan_entry(text, pos, &end, &content);

        if (is_entry(text + pos, end - pos, content, status)) {
            index++;
            if (index > max_count) {
                rc = outbox_error_set(
                    err, OUTBOX_ELIMIT, "limit_exceeded",
                    "%s: has %zu addresses, more than the maximum of %zu",
                    field, index - 1 + count_entries(text, pos), max_count);
                goto cleanup;
            }
            rc = add_entry(&list, &capacity, err, field, index, text + pos,
                           end - pos, status);
            if (rc != OUTBOX_EOK)
                goto cleanup;
        }
        if (text[end] == '\0')
            break;
        pos = end + 1;
    }

    if (index == 0) {
        rc = outbox_error_set(err, OUTBOX_EINVAL, "invalid_address",
                              "%s: contains no address", field);
        goto cleanup;
    }
    *out = list;
    list.items = NULL;
    list.count = 0;

cleanup:
    outbox_address_list_clear(&list);
    return rc;
}

void outbox_address_list_clear(outbox_address_list *list)
{
    if (list == NULL)
        return;
    for (size_t i = 0; i < list->count; i++) {
        free(list->items[i].name);
        free(list->items[i].email);
    }
    free(list->items);
    list->items = NULL;
    list->count = 0;
}
