/*
 * test_log.c - log field values: escaping of quotes, backslashes and
 * control bytes, and cutting text that does not fit.
 */
#include <stdlib.h>

#include "check.h"
#include "outbox.h"

static void test_escapes(void)
{
    static const struct {
        const char *name;
        const char *text;
        const char *want;
    } cases[] = {
        {"plain text", "no such user", "\"no such user\""},
        {"NULL", NULL, "\"\""},
        {"empty", "", "\"\""},
        {"quotes", "address 1 \"a@example\" has a domain without a dot",
         "\"address 1 \\\"a@example\\\" has a domain without a dot\""},
        {"backslash", "C:\\mail", "\"C:\\\\mail\""},
        {"CR LF and tab", "HTTP 400:\r\n\tbad", "\"HTTP 400:\\r\\n\\tbad\""},
        {"other control bytes", "a\x01z\x1b\x7f", "\"a\\x01z\\x1b\\x7f\""},
        {"UTF-8 unchanged", "Gr\xc3\xbc\xc3\x9f" "e", "\"Gr\xc3\xbc\xc3\x9f" "e\""},
        {"JSON from a provider", "{\"errors\":[{\"message\":\"bad\"}]}",
         "\"{\\\"errors\\\":[{\\\"message\\\":\\\"bad\\\"}]}\""},
    };
    char out[OUTBOX_LOG_QUOTED_SIZE];

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        CHECK_CASE(cases[i].name);
        CHECK_STR(outbox_log_quote(out, sizeof(out), cases[i].text),
                  cases[i].want);
    }
}

static void test_cuts(void)
{
    static const struct {
        const char *name;
        size_t size;
        const char *text;
        const char *want;
    } cases[] = {
        {"fits exactly", 8, "abcde", "\"abcde\""},
        {"one byte too long", 8, "abcdef", "\"ab...\""},
        {"cut with room to spare", 10, "abcdefghij", "\"abcd...\""},
        {"escape kept whole", 9, "ab\"cdef", "\"ab...\""},
        {"UTF-8 character kept whole", 10, "abc\xc3\xbcxxxxx",
         "\"abc...\""},
        {"three-byte character kept whole", 10, "ab\xe2\x82\xac" "xxxxx",
         "\"ab...\""},
        {"size below 8", 7, "abc", ""},
    };
    char out[16];

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        CHECK_CASE(cases[i].name);
        memset(out, 'Z', sizeof(out));
        CHECK_STR(outbox_log_quote(out, cases[i].size, cases[i].text),
                  cases[i].want);
        CHECK_INT(out[cases[i].size], 'Z');
    }
}

static void test_long_error_text(void)
{
    char text[OUTBOX_ERROR_TEXT_MAX];
    char out[OUTBOX_LOG_QUOTED_SIZE];
    size_t length;

    CHECK_CASE("an error text of the maximum length");
    memset(text, '"', sizeof(text) - 1);
    text[sizeof(text) - 1] = '\0';
    outbox_log_quote(out, sizeof(out), text);
    length = strlen(out);
    CHECK(length < sizeof(out));
    CHECK_INT(length % 2, 1);
    CHECK_STR(out + length - 4, "...\"");
    CHECK_INT(out[length - 5], '"');
    CHECK_INT(out[length - 6], '\\');
}

int main(void)
{
    test_escapes();
    test_cuts();
    test_long_error_text();
    CHECK_DONE();
}
