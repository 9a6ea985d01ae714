/*
 * fuzz_header.c - libFuzzer target for the header value check and the
 * RFC 2047 encoder.
 *
 * The input, up to its first NUL, is a subject line. The encoder must
 * return it unchanged only when it is printable ASCII without "=?", and
 * otherwise as "B" encoded words of at most 75 characters joined by
 * CRLF SP. This target decodes those words with its own decoder and aborts
 * unless they give back the input byte for byte. For valid UTF-8 input it
 * also checks that no word splits a character, which RFC 2047 section 5
 * forbids.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define WORD_PREFIX "=?UTF-8?B?"
#define WORD_SUFFIX "?="
#define WORD_SEPARATOR "\r\n "
#define PREFIX_LENGTH (sizeof(WORD_PREFIX) - 1)
#define SUFFIX_LENGTH (sizeof(WORD_SUFFIX) - 1)
#define SEPARATOR_LENGTH (sizeof(WORD_SEPARATOR) - 1)

/* RFC 2047 section 2: an encoded word is at most 75 characters long. */
#define WORD_MAX 75

static const char base64_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=";

/* Prints the problem and aborts, so libFuzzer saves the input. */
static _Noreturn void fail(const char *problem, const char *detail)
{
    fprintf(stderr, "fuzz_header: %s: %.200s\n", problem, detail);
    abort();
}

/* Returns true if text is printable ASCII and contains no "=?". */
static bool is_plain_ascii(const char *text)
{
    for (const char *p = text; *p != '\0'; p++) {
        unsigned char c = (unsigned char)*p;

        if (c < 0x20 || c > 0x7E)
            return false;
    }
    return strstr(text, "=?") == NULL;
}

/*
 * Decodes the base64 text of one word, length bytes at base64, into out
 * and returns the number of bytes. EVP_DecodeBlock counts the bytes that
 * stand for "=" padding, so they are subtracted here.
 */
static size_t decode_base64(unsigned char *out, const char *base64,
                            size_t length)
{
    size_t padding = 0;
    int decoded;

    if (length == 0 || length % 4 != 0)
        fail("base64 length is not a positive multiple of 4", base64);
    if (strspn(base64, base64_alphabet) < length)
        fail("word contains a character outside base64", base64);
    decoded = EVP_DecodeBlock(out, (const unsigned char *)base64,
                              (int)length);
    if (decoded < 0)
        fail("EVP_DecodeBlock rejected the base64 of a word", base64);
    while (padding < 2 && base64[length - 1 - padding] == '=')
        padding++;
    return (size_t)decoded - padding;
}

/*
 * Decodes encoded, a series of encoded words joined by CRLF SP, into out
 * (room for strlen(encoded) bytes) and returns the number of bytes. When
 * whole_characters is true, each word must decode to valid UTF-8 by
 * itself.
 */
static size_t decode_words(unsigned char *out, const char *encoded,
                           bool whole_characters)
{
    const char *word = encoded;
    size_t size = 0;

    for (;;) {
        const char *base64 = word + PREFIX_LENGTH;
        const char *suffix;
        size_t chunk;

        if (strncmp(word, WORD_PREFIX, PREFIX_LENGTH) != 0)
            fail("word does not start with " WORD_PREFIX, word);
        suffix = strstr(base64, WORD_SUFFIX);
        if (suffix == NULL)
            fail("word has no closing " WORD_SUFFIX, word);
        if ((size_t)(suffix - word) + SUFFIX_LENGTH > WORD_MAX)
            fail("word is longer than 75 characters", word);

        chunk = decode_base64(out + size, base64, (size_t)(suffix - base64));
        if (whole_characters
            && !outbox__utf8_valid((const char *)out + size, chunk))
            fail("word splits a UTF-8 character", word);
        size += chunk;

        word = suffix + SUFFIX_LENGTH;
        if (*word == '\0')
            return size;
        if (strncmp(word, WORD_SEPARATOR, SEPARATOR_LENGTH) != 0)
            fail("words are not separated by CRLF SP", word);
        word += SEPARATOR_LENGTH;
    }
}

/* Checks that encoded is text itself or the encoded words of text. */
static void check_encoding(const char *text, const char *encoded, bool safe)
{
    size_t text_size = strlen(text);
    unsigned char *decoded;
    size_t decoded_size;

    if (strncmp(encoded, WORD_PREFIX, PREFIX_LENGTH) != 0) {
        if (strcmp(encoded, text) != 0)
            fail("unencoded output differs from the input", encoded);
        if (!is_plain_ascii(text))
            fail("text that is not plain ASCII was left unencoded", text);
        return;
    }

    /* Base64 makes 3 bytes of 4 characters, so the decoded text is
     * shorter than the encoded one. */
    decoded = malloc(strlen(encoded) + 1);
    if (decoded == NULL)
        return;
    decoded_size = decode_words(decoded, encoded, safe);
    if (decoded_size != text_size || memcmp(decoded, text, text_size) != 0)
        fail("decoded words differ from the input", encoded);
    free(decoded);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 1);
    char *encoded;
    bool safe;

    if (text == NULL)
        return 0;
    memcpy(text, data, size);
    text[size] = '\0';

    safe = outbox_header_value_is_safe(text);

    /* The library returns NULL only when malloc fails, and ASan aborts
     * on a failed malloc before that could happen. */
    encoded = outbox_header_encode_text(text);
    if (encoded == NULL)
        fail("outbox_header_encode_text returned NULL", text);
    check_encoding(text, encoded, safe);

    free(encoded);
    free(text);
    return 0;
}
