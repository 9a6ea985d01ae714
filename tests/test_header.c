/*
 * test_header.c - header text: the line-break check, RFC 2047 encoding of
 * subjects (decoded back with OpenSSL to prove nothing was lost or split)
 * and the formatting of mailboxes.
 */
#include <stdlib.h>

#include <openssl/evp.h>

#include "check.h"
#include "internal.h"

#define PREFIX "=?UTF-8?B?"
#define SUFFIX "?="

/* Ten characters, to build words of a known length. */
#define X10 "xxxxxxxxxx"

typedef struct safe_case {
    const char *name;
    const char *value;
    bool safe;
} safe_case;

static const safe_case safe_cases[] = {
    {"plain ASCII", "Rechnung 4711", true},
    {"empty", "", true},
    {"UTF-8", "Rechnung für März", true},
    {"tab", "a\tb", true},
    {"CRLF", "Hallo\r\nBcc: x@example.net", false},
    {"LF", "Hallo\nBcc: x@example.net", false},
    {"CR", "Hallo\rBcc: x@example.net", false},
    {"invalid UTF-8", "M\xE4rz", false},
    {"NULL", NULL, false},
};

/* An input with the exact output that outbox_header_encode_text must give. */
typedef struct encode_case {
    const char *name;
    const char *text;
    const char *want;
} encode_case;

static const encode_case encode_cases[] = {
    {"ASCII passes through", "Rechnung 4711 vom 03.03.2025",
     "Rechnung 4711 vom 03.03.2025"},
    {"empty stays empty", "", ""},
    {"umlauts become one word", "Rechnung für März",
     "=?UTF-8?B?UmVjaG51bmcgZsO8ciBNw6Ryeg==?="},
    {"encoded-word literal is encoded",
     "=?UTF-8?Q?Hallo=0D=0ABcc:_sammler@example.net?=",
     "=?UTF-8?B?PT9VVEYtOD9RP0hhbGxvPTBEPTBBQmNjOl9zYW1tbGVyQGV4YW1wbGUu"
     "bmV0?=\r\n =?UTF-8?B?Pz0=?="},
    {"long ASCII passes unfolded",
     "Ihre Bestellung 4711 wurde versandt und wird in den naechsten Tagen "
     "bei Ihnen eintreffen, bitte pruefen Sie die Lieferung sorgfaeltig",
     "Ihre Bestellung 4711 wurde versandt und wird in den naechsten Tagen "
     "bei Ihnen eintreffen, bitte pruefen Sie die Lieferung sorgfaeltig"},
    {"77-character word passes",
     "Link: " X10 X10 X10 X10 X10 X10 X10 "xxxxxxx",
     "Link: " X10 X10 X10 X10 X10 X10 X10 "xxxxxxx"},
};

/* Inputs whose encoding is checked by decoding it again. */
static const char *const round_trip_texts[] = {
    "Rechnung für März",
    "Ihre Bestellung Nr. 4711 über 3 Paletten Größe XL ist unterwegs, "
    "Lieferung am Dienstag zwischen 8 und 12 Uhr, Grüße aus München",
    "ääääääääääääääääääääääääääääääääääääääääääääääääääääääääääääää",
    "請求書 4711 のお支払い期限は来週の月曜日です。ご確認ください。",
    "Danke 👍👍👍👍👍👍👍👍👍👍👍👍👍👍👍👍👍👍👍👍👍👍👍👍",
    "=?UTF-8?Q?Hallo=0D=0ABcc:_sammler@example.net?=",
    "a\tb",
    "Link: " X10 X10 X10 X10 X10 X10 X10 "xxxxxxxx",
};

typedef struct format_case {
    const char *name;
    const char *display_name;
    const char *email;
    const char *want;
} format_case;

static const format_case format_cases[] = {
    {"no name", NULL, "a@example.org", "a@example.org"},
    {"empty name", "", "a@example.org", "a@example.org"},
    {"atext name bare", "Anna Meier", "a@example.org",
     "Anna Meier <a@example.org>"},
    {"comma name quoted", "Meier, Anna", "a@example.org",
     "\"Meier, Anna\" <a@example.org>"},
    {"dot name quoted", "Dr. Anna Meier", "a@example.org",
     "\"Dr. Anna Meier\" <a@example.org>"},
    {"quote escaped", "Anna \"Anni\" Meier", "a@example.org",
     "\"Anna \\\"Anni\\\" Meier\" <a@example.org>"},
    {"backslash escaped", "Lager\\Nord", "lager@example.org",
     "\"Lager\\\\Nord\" <lager@example.org>"},
    {"address as name quoted", "info@example.org", "info@example.org",
     "\"info@example.org\" <info@example.org>"},
    {"UTF-8 name encoded", "Jürgen Müller", "j@example.org",
     "=?UTF-8?B?SsO8cmdlbiBNw7xsbGVy?= <j@example.org>"},
    {"encoded-word literal name encoded", "=?x?=", "a@example.org",
     "=?UTF-8?B?PT94Pz0=?= <a@example.org>"},
};

static void check_safe(const safe_case *c)
{
    CHECK_CASE(c->name);
    CHECK_INT(outbox_header_value_is_safe(c->value), c->safe);
}

static void check_encode(const encode_case *c)
{
    char *got;

    CHECK_CASE(c->name);
    got = outbox_header_encode_text(c->text);
    CHECK_STR(got, c->want);
    free(got);
}

/*
 * Decodes one encoded word of n characters and appends its bytes to out.
 * Returns false, after reporting why, if the word is malformed.
 */
static bool decode_word(const char *word, size_t n, char *out, size_t *size)
{
    size_t prefix = strlen(PREFIX);
    size_t suffix = strlen(SUFFIX);
    size_t base64 = n - prefix - suffix;
    unsigned char decoded[128];
    int length;

    if (n > 75) {
        CHECK_FAIL("word of %zu characters, want at most 75", n);
        return false;
    }
    if (n < prefix + suffix || strncmp(word, PREFIX, prefix) != 0
        || strncmp(word + n - suffix, SUFFIX, suffix) != 0) {
        CHECK_FAIL("word \"%.*s\" is not a B encoded word", (int)n, word);
        return false;
    }
    length = EVP_DecodeBlock(decoded, (const unsigned char *)word + prefix,
                             (int)base64);
    if (length < 0) {
        CHECK_FAIL("word \"%.*s\" is not base64", (int)n, word);
        return false;
    }
    /* EVP_DecodeBlock counts the zero bytes that padding stands for. */
    for (size_t i = base64; i > 0 && word[prefix + i - 1] == '='; i--)
        length--;
    if (!outbox__utf8_valid((const char *)decoded, (size_t)length))
        CHECK_FAIL("word \"%.*s\" splits a UTF-8 character", (int)n, word);
    memcpy(out + *size, decoded, (size_t)length);
    *size += (size_t)length;
    return true;
}

/* Encodes text, then decodes each word back and compares with text. */
static void check_round_trip(const char *text)
{
    char *encoded = outbox_header_encode_text(text);
    char decoded[1024];
    size_t size = 0;
    size_t words = 0;
    const char *word = encoded;

    CHECK_CASE(text);
    CHECK(encoded != NULL);
    if (encoded == NULL)
        return;
    for (;;) {
        const char *end = strstr(word, "\r\n ");
        size_t n = end != NULL ? (size_t)(end - word) : strlen(word);

        words++;
        if (!decode_word(word, n, decoded, &size))
            break;
        if (end == NULL)
            break;
        word = end + 3;
    }
    decoded[size] = '\0';
    CHECK_STR(decoded, text);
    if (strlen(text) > 45)
        CHECK(words > 1);
    free(encoded);
}

static void check_format(const format_case *c)
{
    outbox_address address;
    char *got;

    CHECK_CASE(c->name);
    address.name = (char *)c->display_name;
    address.email = (char *)c->email;
    got = outbox_header_format_address(&address);
    CHECK_STR(got, c->want);
    free(got);
}

static void check_format_null(void)
{
    outbox_address address = {NULL, NULL};

    CHECK_CASE("format without email");
    CHECK(outbox_header_format_address(&address) == NULL);
    CHECK(outbox_header_format_address(NULL) == NULL);
}

int main(void)
{
    for (size_t i = 0; i < sizeof(safe_cases) / sizeof(safe_cases[0]); i++)
        check_safe(&safe_cases[i]);
    for (size_t i = 0; i < sizeof(encode_cases) / sizeof(encode_cases[0]);
         i++)
        check_encode(&encode_cases[i]);
    for (size_t i = 0;
         i < sizeof(round_trip_texts) / sizeof(round_trip_texts[0]); i++)
        check_round_trip(round_trip_texts[i]);
    for (size_t i = 0; i < sizeof(format_cases) / sizeof(format_cases[0]);
         i++)
        check_format(&format_cases[i]);
    check_format_null();
    CHECK_DONE();
}
