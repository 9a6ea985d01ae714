/*
 * test_address.c - outbox_address_list_parse on the address lists that an
 * ERP writes: valid lists with the names and emails they yield, and
 * invalid lists with the error kind and text they give.
 */
#include <stdlib.h>

#include "check.h"
#include "outbox.h"

#define MAX_ITEMS 4

/* A list that parses: up to MAX_ITEMS expected names (NULL: no name). */
typedef struct valid_case {
    const char *name;
    const char *text;
    size_t count;
    const char *names[MAX_ITEMS];
    const char *emails[MAX_ITEMS];
} valid_case;

static const valid_case valid_cases[] = {
    {"bare address", "a@example.org", 1, {NULL}, {"a@example.org"}},
    {"name and angle address", "Anna Meier <a.meier@example.org>", 1,
     {"Anna Meier"}, {"a.meier@example.org"}},
    {"quoted name with comma", "\"Meier, Anna\" <a.meier@example.org>", 1,
     {"Meier, Anna"}, {"a.meier@example.org"}},
    {"quoted name with escaped quotes",
     "\"Anna \\\"Anni\\\" Meier\" <a@example.org>", 1,
     {"Anna \"Anni\" Meier"}, {"a@example.org"}},
    {"angle address without name", "<a@example.org>", 1, {NULL},
     {"a@example.org"}},
    {"plus addressing", "a+rechnung@example.org", 1, {NULL},
     {"a+rechnung@example.org"}},
    {"comment after address", "a@example.org (Anna in Sales)", 1, {NULL},
     {"a@example.org"}},
    {"comment in name", "Anna (Sales) Meier <a@example.org>", 1,
     {"Anna Meier"}, {"a@example.org"}},
    {"nested comment", "a@example.org (Anna (Sales))", 1, {NULL},
     {"a@example.org"}},
    {"comma separated",
     "\"Meier, Anna\" <a.meier@example.org>, b@example.org", 2,
     {"Meier, Anna", NULL}, {"a.meier@example.org", "b@example.org"}},
    {"semicolon separated", "a@example.org; b@example.org;c@example.org", 3,
     {NULL, NULL, NULL}, {"a@example.org", "b@example.org", "c@example.org"}},
    {"trailing comma and empty entries", " , a@example.org,, ;b@example.org, ",
     2, {NULL, NULL}, {"a@example.org", "b@example.org"}},
    {"whitespace trimmed", "  \tAnna   Meier   <  a@example.org >  ", 1,
     {"Anna Meier"}, {"a@example.org"}},
    {"case kept as written", "Kunde@Example.ORG", 1, {NULL},
     {"Kunde@Example.ORG"}},
    {"UTF-8 display name", "Jürgen Müller <j.mueller@example.org>", 1,
     {"Jürgen Müller"}, {"j.mueller@example.org"}},
    {"quoted UTF-8 display name", "\"Müller, Jürgen\" <j@example.org>", 1,
     {"Müller, Jürgen"}, {"j@example.org"}},
    {"IDN domain in UTF-8", "info@bücher-müller.de", 1, {NULL},
     {"info@bücher-müller.de"}},
    {"UTF-8 local part", "jürgen@example.org", 1, {NULL},
     {"jürgen@example.org"}},
    {"quoted local part", "\"anna meier\"@example.org", 1, {NULL},
     {"\"anna meier\"@example.org"}},
    {"quoted local part with at sign", "<\"a@b\"@example.org>", 1, {NULL},
     {"\"a@b\"@example.org"}},
    {"address as name", "info@example.org <info@example.org>", 1,
     {"info@example.org"}, {"info@example.org"}},
    {"empty quoted name", "\"\" <a@example.org>", 1, {NULL},
     {"a@example.org"}},
    {"comment-only entry skipped", "a@example.org, (nobody)", 1, {NULL},
     {"a@example.org"}},
    {"64-byte local part",
     "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
     "@example.org", 1, {NULL},
     {"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
      "@example.org"}},
    {"atext specials in local part", "o'brien!#$%&*=?^_`{|}~-@example.org",
     1, {NULL}, {"o'brien!#$%&*=?^_`{|}~-@example.org"}},
    {"subdomains and digits", "a@mail.1-2.example.co.uk", 1, {NULL},
     {"a@mail.1-2.example.co.uk"}},
};

/* A list that fails: the kind and a part of the text it must give. */
typedef struct invalid_case {
    const char *name;
    const char *text;
    size_t max_count;
    const char *kind;
    const char *text_part;
} invalid_case;

static const invalid_case invalid_cases[] = {
    {"two at signs", "a@example.org, kunde@@example.org", 10,
     "invalid_address",
     "recipients: address 2 \"kunde@@example.org\" has more than one @"},
    {"missing at sign", "kunde.example.org", 10, "invalid_address",
     "address 1 \"kunde.example.org\" has no @"},
    {"empty domain", "kunde@", 10, "invalid_address", "has an empty domain"},
    {"nothing before at", "@example.org", 10, "invalid_address",
     "has nothing before the @"},
    {"65-byte local part",
     "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
     "@example.org", 10, "invalid_address",
     "has a local part of 65 bytes, more than the maximum of 64"},
    {"CRLF in list", "a@example.org\r\nBcc: x@example.net", 10,
     "invalid_address", "address 1 \"a@example.org??Bcc: x@example.net\" "
                        "contains a line break"},
    {"LF in comment-only entry", "a@example.org, (x\ny)", 10,
     "invalid_address", "address 2 \"(x?y)\" contains a line break"},
    {"group syntax", "Einkauf: a@example.org, b@example.org;", 10,
     "invalid_address", "uses group syntax"},
    {"unterminated quote", "\"Meier, Anna <a@example.org>", 10,
     "invalid_address", "has an unterminated quoted string"},
    {"quote ending in a backslash", "\"Meier \\", 10,
     "invalid_address", "has an unterminated quoted string"},
    {"comment ending in a backslash", "a@example.org (Anna \\", 10,
     "invalid_address", "has an unterminated comment"},
    {"unterminated angle bracket", "Anna <a@example.org", 10,
     "invalid_address", "has a < without a closing >"},
    {"unterminated comment", "a@example.org (Anna", 10, "invalid_address",
     "has an unterminated comment"},
    {"empty list", "  , ; ", 10, "invalid_address",
     "recipients: contains no address"},
    {"empty string", "", 10, "invalid_address", "contains no address"},
    {"too many addresses", "a@example.org, b@example.org, c@example.org", 2,
     "limit_exceeded",
     "recipients: has 3 addresses, more than the maximum of 2"},
    {"invalid UTF-8", "J\xFCrgen <j@example.org>", 10, "invalid_address",
     "address 1 \"J?rgen <j@example.org>\" is not valid UTF-8"},
    {"domain without dot", "a@localhost", 10, "invalid_address",
     "has a domain without a dot"},
    {"empty domain label", "a@example..org", 10, "invalid_address",
     "has an empty label in the domain"},
    {"trailing dot in domain", "a@example.org.", 10, "invalid_address",
     "has an empty label in the domain"},
    {"hyphen at label start", "a@-example.org", 10, "invalid_address",
     "starts or ends with a hyphen"},
    {"underscore in domain", "a@ex_ample.org", 10, "invalid_address",
     "has the character '_' in the domain"},
    {"64-byte domain label",
     "a@aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.org",
     10, "invalid_address",
     "has a domain label of 64 bytes, more than the maximum of 63"},
    {"double dot in local part", "a..b@example.org", 10, "invalid_address",
     "two dots in a row"},
    {"space in bare address", "Anna Meier a@example.org", 10,
     "invalid_address", "contains a space outside quotes"},
    {"text after angle address", "<a@example.org> b@example.org", 10,
     "invalid_address", "has text after the closing >"},
    {"empty angle brackets", "Anna <>", 10, "invalid_address",
     "has no address between < and >"},
    {"domain literal", "a@[192.0.2.1]", 10, "invalid_address",
     "domain literal"},
    {"backslash in local part", "a\\b@example.org", 10, "invalid_address",
     "has the character '\\' in the local part, which is allowed only in "
     "quotes"},
    {"control character", "a\x01@example.org", 10, "invalid_address",
     "contains the control character 0x01"},
};

static void check_valid(const valid_case *c)
{
    outbox_address_list list;
    outbox_error err = {"", ""};
    outbox_err rc;

    CHECK_CASE(c->name);
    rc = outbox_address_list_parse(&list, &err, "recipients", c->text, 10);
    CHECK_INT(rc, OUTBOX_EOK);
    if (rc != OUTBOX_EOK) {
        CHECK_FAIL("error: %s: %s", err.kind, err.text);
        return;
    }
    CHECK_INT(list.count, c->count);
    for (size_t i = 0; i < list.count && i < c->count; i++) {
        CHECK_STR(list.items[i].name, c->names[i]);
        CHECK_STR(list.items[i].email, c->emails[i]);
    }
    outbox_address_list_clear(&list);
    CHECK(list.items == NULL);
    CHECK_INT(list.count, 0);
}

static void check_invalid(const invalid_case *c)
{
    outbox_address_list list;
    outbox_error err = {"", ""};
    outbox_err rc;

    CHECK_CASE(c->name);
    rc = outbox_address_list_parse(&list, &err, "recipients", c->text,
                                   c->max_count);
    CHECK(rc != OUTBOX_EOK);
    CHECK_STR(err.kind, c->kind);
    CHECK_CONTAINS(err.text, c->text_part);
    CHECK_INT(list.count, 0);
    CHECK(list.items == NULL);
}

/* An error text quotes at most about 80 bytes of a long address. */
static void check_long_address_excerpt(void)
{
    char text[400];
    outbox_address_list list;
    outbox_error err = {"", ""};

    CHECK_CASE("long address cut in error text");
    memset(text, 'x', 300);
    strcpy(text + 300, "@@example.org");
    CHECK_INT(outbox_address_list_parse(&list, &err, "cc", text, 10),
              OUTBOX_EINVAL);
    CHECK_CONTAINS(err.text, "xxx...\" has more than one @");
    CHECK(strlen(err.text) < 160);
}

static void check_null_text(void)
{
    outbox_address_list list;
    outbox_error err = {"", ""};

    CHECK_CASE("NULL text is an empty list");
    CHECK_INT(outbox_address_list_parse(&list, &err, "cc", NULL, 10),
              OUTBOX_EINVAL);
    CHECK_STR(err.text, "cc: contains no address");
    outbox_address_list_clear(NULL);
}

int main(void)
{
    for (size_t i = 0; i < sizeof(valid_cases) / sizeof(valid_cases[0]); i++)
        check_valid(&valid_cases[i]);
    for (size_t i = 0; i < sizeof(invalid_cases) / sizeof(invalid_cases[0]);
         i++)
        check_invalid(&invalid_cases[i]);
    check_long_address_excerpt();
    check_null_text();
    CHECK_DONE();
}
