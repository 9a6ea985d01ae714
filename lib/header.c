/*
 * header.c - makes text fit for email headers: the check for line breaks,
 * RFC 2047 encoded words for subjects and display names, and the mailbox
 * form `name <email>`.
 *
 * Text that is not plain printable ASCII becomes a series of "B" encoded
 * words (`=?UTF-8?B?...?=`) that together hold the whole text. Encoding
 * the whole text, not only its non-ASCII words, keeps the rules simple: a
 * decoder ignores the folding whitespace between adjacent encoded words,
 * so the decoded text equals the input byte for byte.
 */
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "internal.h"

/* RFC 2047 section 2: an encoded word is at most 75 characters long. */
#define WORD_PREFIX "=?UTF-8?B?"
#define WORD_SUFFIX "?="

/*
 * Input bytes per encoded word. 45 bytes make 60 base64 characters, and
 * with the 12 characters of prefix and suffix the word is 72 long. The
 * next multiple of 3, 48 bytes, would make a word of 76.
 */
#define WORD_BYTES 45

/*
 * Maximum length of a run of non-space characters in plain text. Such a
 * word still fits a folded line of 78 characters (RFC 5322 section 2.1.1)
 * after the leading space, so a caller can fold plain text at its spaces.
 */
#define PLAIN_WORD_MAX 77

/* Separator between encoded words: a fold, so each word starts a line. */
#define WORD_SEPARATOR "\r\n "

bool outbox_header_value_is_safe(const char *value)
{
    if (value == NULL)
        return false;
    if (strpbrk(value, "\r\n") != NULL)
        return false;
    return outbox__utf8_valid(value, strlen(value));
}

/*
 * Returns true if text is printable ASCII without "=?". A receiver would
 * try to decode "=?" as the start of an encoded word, so text containing it
 * is encoded even when it is plain ASCII.
 */
static bool is_plain_ascii(const char *text)
{
    for (const char *p = text; *p != '\0'; p++) {
        unsigned char c = (unsigned char)*p;

        if (c < 0x20 || c > 0x7E)
            return false;
    }
    return strstr(text, "=?") == NULL;
}

/* Returns true if text has a word longer than PLAIN_WORD_MAX characters. */
static bool has_long_word(const char *text)
{
    size_t run = 0;

    for (const char *p = text; *p != '\0'; p++) {
        run = *p == ' ' ? 0 : run + 1;
        if (run > PLAIN_WORD_MAX)
            return true;
    }
    return false;
}

/*
 * Returns how many of the n bytes at text go into the next encoded word:
 * at most WORD_BYTES, and never a part of a UTF-8 character. Text that is
 * not UTF-8 is cut at WORD_BYTES.
 */
static size_t next_word_size(const unsigned char *text, size_t n)
{
    size_t size = n < WORD_BYTES ? n : WORD_BYTES;

    if (size == n)
        return size;
    /* Step back while the byte after the cut continues a character. */
    for (size_t back = 0; back < 4 && size > back; back++) {
        if ((text[size - back] & 0xC0) != 0x80)
            return size - back;
    }
    return size;
}

/* Appends text as encoded words to buf. */
static outbox_err append_encoded_words(outbox_buf *buf, const char *text)
{
    const unsigned char *bytes = (const unsigned char *)text;
    size_t n = strlen(text);
    size_t offset = 0;
    outbox_err rc = OUTBOX_EOK;

    while (rc == OUTBOX_EOK && offset < n) {
        unsigned char base64[4 * (WORD_BYTES / 3) + 1];
        size_t size = next_word_size(bytes + offset, n - offset);
        int length = EVP_EncodeBlock(base64, bytes + offset, (int)size);

        if (offset > 0)
            rc = outbox__buf_puts(buf, WORD_SEPARATOR);
        if (rc == OUTBOX_EOK)
            rc = outbox__buf_puts(buf, WORD_PREFIX);
        if (rc == OUTBOX_EOK)
            rc = outbox__buf_append(buf, base64, (size_t)length);
        if (rc == OUTBOX_EOK)
            rc = outbox__buf_puts(buf, WORD_SUFFIX);
        offset += size;
    }
    return rc;
}

/*
 * Plain text, meaning printable ASCII without "=?" and with no word longer
 * than 77 characters, is returned unchanged and unfolded, however long it
 * is: the caller may fold it at its spaces. Any other text is encoded
 * whole. A NULL text is taken as "".
 */
char *outbox_header_encode_text(const char *text)
{
    outbox_buf buf;
    char *result = NULL;

    if (text == NULL)
        text = "";
    if (is_plain_ascii(text) && !has_long_word(text))
        return outbox__strdup(text);

    outbox__buf_init(&buf, SIZE_MAX);
    if (append_encoded_words(&buf, text) == OUTBOX_EOK)
        result = outbox__buf_take(&buf, NULL);
    outbox__buf_free(&buf);
    return result;
}

/* RFC 5322 atext, the characters of a word that needs no quotes. */
static bool is_atext(unsigned char c)
{
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
        || (c >= '0' && c <= '9'))
        return true;
    return c != '\0' && strchr("!#$%&'*+-/=?^_`{|}~", c) != NULL;
}

/* Returns true if a display name may be written without quotes. */
static bool is_bare_phrase(const char *name)
{
    for (const char *p = name; *p != '\0'; p++) {
        if (*p != ' ' && !is_atext((unsigned char)*p))
            return false;
    }
    return true;
}

/* Appends name as a display name: bare, quoted or as encoded words. */
static outbox_err append_display_name(outbox_buf *buf, const char *name)
{
    outbox_err rc = OUTBOX_EOK;

    if (!is_plain_ascii(name))
        return append_encoded_words(buf, name);
    if (is_bare_phrase(name))
        return outbox__buf_puts(buf, name);

    rc = outbox__buf_puts(buf, "\"");
    for (const char *p = name; rc == OUTBOX_EOK && *p != '\0'; p++) {
        if (*p == '"' || *p == '\\')
            rc = outbox__buf_puts(buf, "\\");
        if (rc == OUTBOX_EOK)
            rc = outbox__buf_append(buf, p, 1);
    }
    if (rc == OUTBOX_EOK)
        rc = outbox__buf_puts(buf, "\"");
    return rc;
}

/*
 * The email is written as stored. An address with UTF-8 in it reaches its
 * receiver only through a transport that supports SMTPUTF8 (RFC 6531).
 * Returns NULL when address or its email is NULL.
 */
char *outbox_header_format_address(const outbox_address *address)
{
    outbox_buf buf;
    outbox_err rc;
    char *result = NULL;

    if (address == NULL || address->email == NULL)
        return NULL;
    if (address->name == NULL
        || address->name[strspn(address->name, " ")] == '\0')
        return outbox__strdup(address->email);

    outbox__buf_init(&buf, SIZE_MAX);
    rc = append_display_name(&buf, address->name);
    if (rc == OUTBOX_EOK)
        rc = outbox__buf_printf(&buf, " <%s>", address->email);
    if (rc == OUTBOX_EOK)
        result = outbox__buf_take(&buf, NULL);
    outbox__buf_free(&buf);
    return result;
}
