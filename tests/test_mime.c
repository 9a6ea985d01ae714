/*
 * test_mime.c - the MIME writer behind the file provider: exact headers,
 * encoded words, quoted-printable and base64 bodies, multipart layouts,
 * folding and caps. Python's email package reads a written file back and
 * must find the same subject, names, texts and attachments.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "check.h"
#include "mime.h"

/* Passes if text is not NULL and does not contain needle. */
#define CHECK_ABSENT(text, needle)                                       \
    do {                                                                 \
        const char *check_text_ = (text);                                \
        if (check_text_ == NULL)                                         \
            CHECK_FAIL("%s is NULL", #text);                             \
        else if (strstr(check_text_, (needle)) != NULL)                  \
            CHECK_FAIL("%s contains \"%s\"", #text, (needle));           \
    } while (0)

/* Fri, 04 Dec 2026 19:27:58 UTC. */
#define DATE 1796412478

static outbox_address shop = {NULL, "shop@example.org"};
static outbox_address anna = {NULL, "anna@example.org"};
static outbox_address mueller = {"Müller, Anna", "anna.mueller@example.org"};
static outbox_address hidden = {"Audit Archive", "archive@example.org"};

/* A message with one recipient and a text body; cases change the rest. */
static outbox_message base_message(void)
{
    outbox_message m;

    memset(&m, 0, sizeof(m));
    m.id = 42;
    m.attempt = 1;
    m.message_id = "outbox-42.7f3a9c@example.org";
    m.sender = shop;
    m.to.items = &anna;
    m.to.count = 1;
    m.subject = "Invoice 7";
    m.body_text = "Hello Anna,\n\nyour invoice is attached.\n";
    return m;
}

/* Writes m and checks that it worked; returns the text or NULL. */
static char *write_message(const outbox_message *m, size_t *size)
{
    outbox_error err = {{0}, {0}};
    char *out = NULL;
    outbox_err rc = outbox__mime_write(&out, size, &err, m, DATE, "seed");

    CHECK_INT(rc, OUTBOX_EOK);
    if (rc != OUTBOX_EOK)
        fprintf(stderr, "  error %s: %s\n", err.kind, err.text);
    return out;
}

/* Returns the start of the body: the text after the first empty line. */
static const char *body_of(const char *text)
{
    const char *blank = strstr(text, "\r\n\r\n");

    return blank != NULL ? blank + 4 : "";
}

/* Checks that every line of text[0..n) ends with CRLF and is at most max
 * characters long. */
static void check_lines(const char *text, size_t n, size_t max)
{
    size_t start = 0;

    for (size_t i = 0; i < n; i++) {
        if (text[i] == '\n' && (i == 0 || text[i - 1] != '\r'))
            CHECK_FAIL("bare LF at offset %zu", i);
        if (text[i] != '\n')
            continue;
        if (i - 1 - start > max)
            CHECK_FAIL("line at offset %zu has %zu characters, max %zu",
                       start, i - 1 - start, max);
        start = i + 1;
    }
}

/* Decodes quoted-printable text into out (CRLF becomes LF); returns the
 * decoded length. */
static size_t decode_quoted_printable(char *out, const char *in)
{
    size_t n = 0;

    while (*in != '\0') {
        if (in[0] == '=' && in[1] == '\r' && in[2] == '\n') {
            in += 3;
        } else if (in[0] == '=') {
            char hex[3] = {in[1], in[2], 0};

            out[n++] = (char)strtol(hex, NULL, 16);
            in += 3;
        } else if (in[0] == '\r' && in[1] == '\n') {
            out[n++] = '\n';
            in += 2;
        } else {
            out[n++] = *in++;
        }
    }
    out[n] = '\0';
    return n;
}

static void sha256_hex(char out[65], const void *data, size_t n)
{
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int length = 0;

    EVP_Digest(data, n, digest, &length, EVP_sha256(), NULL);
    for (unsigned int i = 0; i < length && i < 32; i++)
        snprintf(out + 2 * i, 3, "%02x", digest[i]);
}

static void test_simple_text_exact(void)
{
    outbox_message m = base_message();
    size_t size = 0;
    char *out;

    CHECK_CASE("simple text message exact");
    out = write_message(&m, &size);
    CHECK_STR(out, "Date: Fri, 04 Dec 2026 19:27:58 +0000\r\n"
                   "From: shop@example.org\r\n"
                   "To: anna@example.org\r\n"
                   "Subject: Invoice 7\r\n"
                   "Message-ID: <outbox-42.7f3a9c@example.org>\r\n"
                   "MIME-Version: 1.0\r\n"
                   "Content-Type: text/plain; charset=UTF-8\r\n"
                   "Content-Transfer-Encoding: quoted-printable\r\n"
                   "\r\n"
                   "Hello Anna,\r\n"
                   "\r\n"
                   "your invoice is attached.\r\n");
    CHECK_INT(size, out ? strlen(out) : 0);
    free(out);
}

static void test_date_format(void)
{
    static const struct {
        int64_t date;
        const char *want;
    } cases[] = {
        {0, "Date: Thu, 01 Jan 1970 00:00:00 +0000\r\n"},
        {951782400, "Date: Tue, 29 Feb 2000 00:00:00 +0000\r\n"},
        {1719824703, "Date: Mon, 01 Jul 2024 09:05:03 +0000\r\n"},
    };
    outbox_message m = base_message();

    CHECK_CASE("date header format");
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *out = NULL;
        outbox_err rc = outbox__mime_write(&out, NULL, NULL, &m,
                                           cases[i].date, "seed");

        CHECK_INT(rc, OUTBOX_EOK);
        CHECK(out != NULL
              && strncmp(out, cases[i].want, strlen(cases[i].want)) == 0);
        free(out);
    }
}

static void test_encoded_subject_and_name(void)
{
    outbox_message m = base_message();
    char *out;
    const char *body;

    CHECK_CASE("subject and display name encoded");
    m.subject = "Rechnung für März 2026";
    m.to.items = &mueller;
    out = write_message(&m, NULL);
    if (out == NULL)
        return;
    CHECK_CONTAINS(out, "\r\nSubject: =?UTF-8?B?");
    CHECK_CONTAINS(out, "\r\nTo: =?UTF-8?B?");
    CHECK_CONTAINS(out, "?= <anna.mueller@example.org>\r\n");

    /* Headers hold ASCII only: the UTF-8 lives in encoded words. */
    body = body_of(out);
    for (const char *p = out; p < body; p++) {
        if ((unsigned char)*p >= 0x80) {
            CHECK_FAIL("non-ASCII byte in headers at offset %td", p - out);
            break;
        }
    }
    free(out);
}

static void test_bcc_never_written(void)
{
    outbox_message m = base_message();
    outbox_address cc = {"Bob Bauer", "bob@example.org"};
    char *out;

    CHECK_CASE("bcc never written");
    m.cc.items = &cc;
    m.cc.count = 1;
    m.bcc.items = &hidden;
    m.bcc.count = 1;
    out = write_message(&m, NULL);
    CHECK_CONTAINS(out, "\r\nCc: Bob Bauer <bob@example.org>\r\n");
    CHECK_ABSENT(out, "Bcc");
    CHECK_ABSENT(out, "bcc");
    CHECK_ABSENT(out, "archive@example.org");
    CHECK_ABSENT(out, "Audit Archive");
    free(out);
}

static void test_quoted_printable(void)
{
    static const char text[] =
        "A line that is much longer than seventy-six characters, so the "
        "encoder has to break it with soft line breaks, twice or more, "
        "before it ends here.\n"
        "1 + 1 = 2\n"
        "trailing space \n"
        "trailing tab\t\n"
        "Grüße\n"
        "================================================================"
        "=====\n"
        "no newline at the end ";
    outbox_message m = base_message();
    char decoded[sizeof(text) + 16];
    const char *body;
    char *out;
    size_t size = 0;

    CHECK_CASE("quoted-printable body");
    m.body_text = (char *)text;
    out = write_message(&m, &size);
    if (out == NULL)
        return;
    body = body_of(out);
    check_lines(body, strlen(body), 76);
    CHECK_CONTAINS(body, "1 + 1 =3D 2\r\n");
    CHECK_CONTAINS(body, "trailing space=20\r\n");
    CHECK_CONTAINS(body, "trailing tab=09\r\n");
    CHECK_CONTAINS(body, "Gr=C3=BC=C3=9Fe\r\n");
    CHECK_CONTAINS(body, "no newline at the end=20\r\n");
    CHECK_CONTAINS(body, "the encoder has =\r\nto break it");

    /* The top-level body ends with one CRLF that the text did not have. */
    decode_quoted_printable(decoded, body);
    CHECK_INT(strlen(decoded), strlen(text) + 1);
    CHECK(strncmp(decoded, text, strlen(text)) == 0);
    free(out);
}

static void test_quoted_printable_crlf(void)
{
    outbox_message m = base_message();
    char *out;

    CHECK_CASE("quoted-printable keeps CRLF");
    m.body_text = "one\r\ntwo\rthree\n";
    out = write_message(&m, NULL);
    CHECK_STR(out ? body_of(out) : NULL, "one\r\ntwo=0Dthree\r\n");
    free(out);
}

/* Fills content with the bytes 0..255 repeated. */
static unsigned char *make_pdf_bytes(size_t size)
{
    unsigned char *content = malloc(size);

    for (size_t i = 0; content != NULL && i < size; i++)
        content[i] = (unsigned char)(i % 256);
    return content;
}

static void test_attachment_multipart(void)
{
    outbox_message m = base_message();
    outbox_attachment pdf = {"invoice-7.pdf", "application/pdf", NULL, NULL,
                             3000};
    const char *part;
    char *out;
    size_t size = 0;

    CHECK_CASE("attachment in multipart/mixed");
    pdf.content = make_pdf_bytes(pdf.size);
    CHECK(pdf.content != NULL);
    m.attachments = &pdf;
    m.attachment_count = 1;
    out = write_message(&m, &size);
    if (out == NULL || pdf.content == NULL) {
        free(pdf.content);
        free(out);
        return;
    }
    check_lines(out, size, 78);
    CHECK_CONTAINS(out, "\r\nMIME-Version: 1.0\r\n"
                        "Content-Type: multipart/mixed; "
                        "boundary=\"=_outbox_73656564_0\"\r\n"
                        "\r\n--=_outbox_73656564_0\r\n"
                        "Content-Type: text/plain; charset=UTF-8\r\n");
    CHECK_CONTAINS(out, "\r\n--=_outbox_73656564_0\r\n"
                        "Content-Type: application/pdf; "
                        "name=\"invoice-7.pdf\"\r\n"
                        "Content-Transfer-Encoding: base64\r\n"
                        "Content-Disposition: attachment; "
                        "filename=\"invoice-7.pdf\"\r\n\r\n"
                        "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8gISIj"
                        "JCUmJygpKissLS4vMDEyMzQ1Njc4\r\n");
    CHECK(size > 40
          && strcmp(out + size - 27, "\r\n--=_outbox_73656564_0--\r\n") == 0);

    part = strstr(out, "Content-Transfer-Encoding: base64\r\n");
    if (part != NULL)
        check_lines(part, strlen(part), 76);
    free(pdf.content);
    free(out);
}

static void test_attachment_names(void)
{
    static const char long_name[] =
        "Übersicht der Rechnungen für März und April 2026, Kunde 10077.pdf";
    outbox_message m = base_message();
    outbox_attachment files[2] = {
        {"Übersicht März.pdf", "application/pdf", NULL,
         (unsigned char *)"%PDF", 4},
        {(char *)long_name, NULL, NULL, (unsigned char *)"%PDF", 4},
    };
    size_t size = 0;
    char *out;

    CHECK_CASE("non-ASCII attachment names");
    m.attachments = files;
    m.attachment_count = 2;
    out = write_message(&m, &size);
    if (out == NULL)
        return;
    check_lines(out, size, 78);
    CHECK_CONTAINS(out, "Content-Type: application/pdf; "
                        "name*=UTF-8''%C3%9Cbersicht%20M%C3%A4rz.pdf\r\n");
    CHECK_CONTAINS(out, "Content-Disposition: attachment;\r\n"
                        " filename*=UTF-8''%C3%9Cbersicht%20M%C3%A4rz.pdf");
    CHECK_CONTAINS(out, "Content-Type: application/octet-stream;\r\n"
                        " name*0*=UTF-8''%C3%9Cbersicht%20der%20Rechnungen");
    CHECK_CONTAINS(out, " filename*1*=");
    free(out);
}

static void test_inline_image_related(void)
{
    outbox_message m = base_message();
    outbox_attachment logo = {"logo.png", "image/png", "logo@example.org",
                              (unsigned char *)"\x89PNG", 4};
    char *out;

    CHECK_CASE("inline image in multipart/related");
    m.body_html = "<p>Hello <img src=\"cid:logo@example.org\"></p>\n";
    m.attachments = &logo;
    m.attachment_count = 1;
    out = write_message(&m, NULL);
    CHECK_CONTAINS(out, "Content-Type: multipart/related; "
                        "type=\"multipart/alternative\";\r\n"
                        " boundary=\"=_outbox_73656564_0\"\r\n");
    CHECK_CONTAINS(out, "\r\n--=_outbox_73656564_0\r\n"
                        "Content-Type: multipart/alternative; "
                        "boundary=\"=_outbox_73656564_1\"\r\n");
    CHECK_CONTAINS(out, "\r\n--=_outbox_73656564_1\r\n"
                        "Content-Type: text/html; charset=UTF-8\r\n");
    CHECK_CONTAINS(out, "<img src=3D\"cid:logo@example.org\">");
    CHECK_CONTAINS(out, "\r\n--=_outbox_73656564_1--\r\n"
                        "--=_outbox_73656564_0\r\n"
                        "Content-Type: image/png; name=\"logo.png\"\r\n"
                        "Content-Transfer-Encoding: base64\r\n"
                        "Content-Disposition: inline; "
                        "filename=\"logo.png\"\r\n"
                        "Content-ID: <logo@example.org>\r\n\r\n"
                        "iVBORw==\r\n--=_outbox_73656564_0--\r\n");
    CHECK_ABSENT(out, "multipart/mixed");
    free(out);
}

static void test_html_only(void)
{
    outbox_message m = base_message();
    char *out;

    CHECK_CASE("html body alone");
    m.body_text = NULL;
    m.body_html = "<p>Hi</p>";
    out = write_message(&m, NULL);
    CHECK_CONTAINS(out, "\r\nContent-Type: text/html; charset=UTF-8\r\n"
                        "Content-Transfer-Encoding: quoted-printable\r\n"
                        "\r\n<p>Hi</p>\r\n");
    CHECK_ABSENT(out, "multipart");
    free(out);
}

static void test_header_folding(void)
{
    static outbox_address many[8] = {
        {"Anna Meier", "anna.meier@example.org"},
        {"Bernd Schulz", "bernd.schulz@example.org"},
        {"Carla, Dr.", "carla@example.org"},
        {NULL, "dieter@example.org"},
        {"Emil Ötztal", "emil@example.org"},
        {"Frieda Kahlo-Lang", "frieda@example.org"},
        {NULL, "gerd.mit.einer.sehr.langen.adresse@example.org"},
        {"Hanna", "hanna@example.org"},
    };
    outbox_message m = base_message();
    const char *to;
    size_t size = 0;
    char *out;

    CHECK_CASE("long headers folded");
    m.subject = "Your order 2026-0042 has shipped and will arrive within "
                "the next three working days at the address you gave";
    m.to.items = many;
    m.to.count = 8;
    out = write_message(&m, &size);
    if (out == NULL)
        return;
    check_lines(out, size, 78);
    CHECK_CONTAINS(out, "\r\nSubject: Your order 2026-0042 has shipped and "
                        "will arrive within the next\r\n three working days "
                        "at the address you gave\r\n");

    /* Each fold in the To header comes after a comma. */
    to = strstr(out, "\r\nTo: ");
    for (const char *p = to; p != NULL && strncmp(p + 2, "Subject", 7) != 0;
         p = strstr(p + 2, "\r\n")) {
        if (p != to && p[-1] != ',')
            CHECK_FAIL("To folded after \"%.10s\"", p - 10);
    }
    CHECK_CONTAINS(out, "\"Carla, Dr.\" <carla@example.org>");
    free(out);
}

static void test_extra_headers(void)
{
    outbox_field headers[2] = {
        {"X-Invoice", "INV-7"},
        {"X-Kunde", "Müller GmbH"},
    };
    outbox_field bcc = {"BCC", "spy@example.org"};
    outbox_field broken = {"X Bad", "1"};
    outbox_message m = base_message();
    outbox_error err = {{0}, {0}};
    char *out = NULL;

    CHECK_CASE("extra headers");
    m.headers = headers;
    m.header_count = 2;
    out = write_message(&m, NULL);
    CHECK_CONTAINS(out, "\r\nMIME-Version: 1.0\r\nX-Invoice: INV-7\r\n"
                        "X-Kunde: =?UTF-8?B?TcO8bGxlciBHbWJI?=\r\n");
    free(out);

    m.headers = &bcc;
    m.header_count = 1;
    CHECK_INT(outbox__mime_write(&out, NULL, &err, &m, DATE, "seed"),
              OUTBOX_EINVAL);
    CHECK_STR(err.kind, "invalid_headers");
    CHECK(out == NULL);

    m.headers = &broken;
    CHECK_INT(outbox__mime_write(&out, NULL, &err, &m, DATE, "seed"),
              OUTBOX_EINVAL);
    CHECK_STR(err.kind, "invalid_headers");
}

static void test_header_encoder(void)
{
    char word[1200];
    char url[240];
    outbox_error err = {{0}, {0}};
    outbox_buf buf;

    CHECK_CASE("header without a fold point");
    memset(url, 'u', sizeof(url) - 1);
    url[sizeof(url) - 1] = '\0';
    outbox__buf_init(&buf, 1 << 20);
    CHECK_INT(outbox__mime_put_header(&buf, &err, "List-Unsubscribe", url),
              OUTBOX_EOK);
    CHECK_INT(buf.size, strlen("List-Unsubscribe: ") + strlen(url) + 2);
    outbox__buf_free(&buf);

    CHECK_CASE("header word over 998");
    memset(word, 'w', sizeof(word) - 1);
    word[sizeof(word) - 1] = '\0';
    CHECK_INT(outbox__mime_put_header(&buf, &err, "X-Token", word),
              OUTBOX_EINVAL);
    CHECK_STR(err.kind, "invalid_header_value");
    outbox__buf_free(&buf);

    /* Trailing spaces never become a continuation line of their own. */
    CHECK_CASE("header trailing whitespace");
    memset(url, 'x', 90);
    memcpy(url + 90, "                ", 16);
    url[106] = '\0';
    CHECK_INT(outbox__mime_put_header(&buf, &err, "X-Note", url),
              OUTBOX_EOK);
    CHECK_ABSENT(buf.data, "\r\n \r\n");
    CHECK_INT(buf.size, strlen("X-Note: ") + 106 + 2);
    outbox__buf_free(&buf);
}

/* 25 and 75 characters: a line of 75 and a soft break fill 76. */
#define A25 "aaaaaaaaaaaaaaaaaaaaaaaaa"
#define A75 A25 A25 A25

static void test_quoted_printable_lines(void)
{
    static const struct {
        const char *text;
        const char *want;
    } cases[] = {
        {A75 "a", A75 "=\r\na"},
        {A25 A25 "aaaaaaaaaaaaaaaaaaaaaaaa=",
         A25 A25 "aaaaaaaaaaaaaaaaaaaaaaaa=\r\n=3D"},
        {"tab\tinside", "tab\tinside"},
        {" ", "=20"},
        {"a \r\nb\t\n", "a=20\r\nb=09\r\n"},
        {"\x7f\x01", "=7F=01"},
        {"", ""},
    };

    CHECK_CASE("quoted-printable line table");
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        outbox_buf buf;

        outbox__buf_init(&buf, 1 << 20);
        CHECK_INT(outbox__mime_put_quoted_printable(&buf, cases[i].text),
                  OUTBOX_EOK);
        CHECK_STR(buf.data ? buf.data : "", cases[i].want);
        outbox__buf_free(&buf);
    }
}

static void test_errors(void)
{
    outbox_message m = base_message();
    outbox_attachment bad_type = {"a.txt", "text/plain\r\nX-Evil: 1", NULL,
                                  (unsigned char *)"a", 1};
    outbox_attachment bad_id = {"a.png", "image/png", "<a@b>",
                                (unsigned char *)"a", 1};
    outbox_attachment nested = {"a.eml", "MULTIPART/mixed", NULL,
                                (unsigned char *)"a", 1};
    outbox_error err = {{0}, {0}};
    char *out = NULL;

    CHECK_CASE("missing message id");
    m.message_id = NULL;
    CHECK_INT(outbox__mime_write(&out, NULL, &err, &m, DATE, "seed"),
              OUTBOX_EINVAL);
    CHECK_STR(err.kind, "internal");
    CHECK(out == NULL);

    CHECK_CASE("invalid attachment headers");
    m = base_message();
    m.attachments = &bad_type;
    m.attachment_count = 1;
    CHECK_INT(outbox__mime_write(&out, NULL, &err, &m, DATE, "seed"),
              OUTBOX_EINVAL);
    CHECK_STR(err.kind, "invalid_attachment");
    m.attachments = &bad_id;
    CHECK_INT(outbox__mime_write(&out, NULL, &err, &m, DATE, "seed"),
              OUTBOX_EINVAL);
    CHECK_STR(err.kind, "invalid_attachment");
    m.attachments = &nested;
    CHECK_INT(outbox__mime_write(&out, NULL, &err, &m, DATE, "seed"),
              OUTBOX_EINVAL);
    CHECK_STR(err.kind, "invalid_attachment");
    CHECK_CONTAINS(err.text, "MULTIPART/mixed");
    CHECK(out == NULL);
}

static void test_size_cap(void)
{
    outbox_message m = base_message();
    outbox_attachment big = {"big.bin", "application/octet-stream", NULL,
                             NULL, 50u * 1024 * 1024};
    outbox_error err = {{0}, {0}};
    char *out = NULL;

    CHECK_CASE("64 MiB cap");
    big.content = calloc(1, big.size);
    CHECK(big.content != NULL);
    if (big.content == NULL)
        return;
    m.attachments = &big;
    m.attachment_count = 1;
    CHECK_INT(outbox__mime_write(&out, NULL, &err, &m, DATE, "seed"),
              OUTBOX_ELIMIT);
    CHECK_STR(err.kind, "message_too_large");
    CHECK(out == NULL);

    /* 40 MiB become 54.7 MiB of base64 lines with their CRLFs, under the
     * cap. */
    m.attachments[0].size = 40u * 1024 * 1024;
    CHECK_INT(outbox__mime_write(&out, NULL, &err, &m, DATE, "seed"),
              OUTBOX_EOK);
    free(out);
    free(big.content);
}

/*
 * Reads an .eml file with Python's email package (policy default) and
 * prints what it found, one line per fact. Python returns text parts with
 * the CRLF line ends of the file, the canonical form of MIME text (RFC 2046
 * section 4.1.1), so the script turns them into LF before the digest.
 */
static const char read_back_script[] =
    "import email, email.policy, hashlib, sys\n"
    "with open(sys.argv[1], 'rb') as f:\n"
    "    msg = email.message_from_binary_file(f, policy=email.policy.default)\n"
    "lines = ['subject=' + str(msg['subject'])]\n"
    "for field in ('to', 'cc'):\n"
    "    for a in msg[field].addresses:\n"
    "        lines.append(field + '=' + a.display_name + '|' + a.addr_spec)\n"
    "lines.append('bcc=' + str(msg['bcc']))\n"
    "defects = sum(len(value.defects) for _, value in msg.items())\n"
    "for part in msg.walk():\n"
    "    defects += len(part.defects)\n"
    "    if part.is_multipart():\n"
    "        continue\n"
    "    data = part.get_payload(decode=True)\n"
    "    if part.get_content_maintype() == 'text':\n"
    "        data = data.replace(b'\\r\\n', b'\\n')\n"
    "    lines.append('part=%s|%s|%s|%s' % (part.get_content_type(),\n"
    "        part.get_filename() or '', part.get('Content-ID', ''),\n"
    "        hashlib.sha256(data).hexdigest()))\n"
    "lines.append('defects=%d' % defects)\n"
    "sys.stdout.buffer.write(('\\n'.join(lines) + '\\n').encode('utf-8'))\n";

static bool write_file(const char *path, const void *data, size_t size)
{
    FILE *file = fopen(path, "wb");
    bool ok = file != NULL && fwrite(data, 1, size, file) == size;

    if (file != NULL && fclose(file) != 0)
        ok = false;
    return ok;
}

/* Runs the read-back script on path; returns its output or NULL. */
static char *run_python(const char *script, const char *path)
{
    char command[512];
    char *output = calloc(1, 65536);
    size_t used = 0;
    FILE *pipe;
    int status;

    if (output == NULL)
        return NULL;
    snprintf(command, sizeof(command), "python3 '%s' '%s' 2>&1", script,
             path);
    pipe = popen(command, "r");
    if (pipe == NULL) {
        free(output);
        return NULL;
    }
    used = fread(output, 1, 65535, pipe);
    output[used] = '\0';
    status = pclose(pipe);
    if (status != 0) {
        CHECK_FAIL("python3 exited with status %d:\n%s", status, output);
        free(output);
        return NULL;
    }
    return output;
}

/* Appends "part=type|filename|cid|sha256" for data to expected. */
static void expect_part(char *expected, size_t size, const char *type,
                        const char *filename, const char *cid,
                        const void *data, size_t n)
{
    char digest[65] = {0};
    size_t used = strlen(expected);

    sha256_hex(digest, data, n);
    snprintf(expected + used, size - used, "part=%s|%s|%s|%s\n", type,
             filename, cid, digest);
}

static void test_python_read_back(void)
{
    static const char text[] =
        "Sehr geehrte Frau Müller,\n\nanbei die Rechnung für März 2026 "
        "über 1.234,56 EUR. Bitte überweisen Sie den Betrag = Summe aller "
        "Positionen innerhalb von 14 Tagen. \n\nMit freundlichen Grüßen\n";
    static const char html[] =
        "<p>Sehr geehrte Frau Müller,</p>\n<img src=\"cid:logo@example.org\">"
        "\n";
    static const char long_name[] =
        "Übersicht der Rechnungen für März und April 2026, Kunde 10077.pdf";
    outbox_address cc = {"Bob Bauer", "bob@example.org"};
    outbox_address to[2] = {{"Müller, Anna", "anna.mueller@example.org"},
                            {NULL, "anna@example.org"}};
    outbox_attachment files[3] = {
        {"logo.png", "image/png", "logo@example.org",
         (unsigned char *)"\x89PNG\r\n\x1a\n", 8},
        {"invoice-7.pdf", "application/pdf", NULL, NULL, 5000},
        {(char *)long_name, "application/pdf", NULL,
         (unsigned char *)"%PDF-1.7\n", 9},
    };
    char dir[] = "/tmp/outbox-mime-XXXXXX";
    char eml[64], script[64], expected[4096];
    outbox_message m = base_message();
    char *out = NULL;
    char *got = NULL;
    size_t size = 0;

    CHECK_CASE("python read back");
    if (system("command -v python3 >/dev/null 2>&1") != 0) {
        CHECK_FAIL("python3 is not on PATH; install it to run the read "
                   "back by Python's email package");
        return;
    }
    files[1].content = make_pdf_bytes(files[1].size);
    if (files[1].content == NULL || mkdtemp(dir) == NULL) {
        CHECK_FAIL("cannot set up the read back: out of memory or no /tmp");
        free(files[1].content);
        return;
    }
    snprintf(eml, sizeof(eml), "%s/message.eml", dir);
    snprintf(script, sizeof(script), "%s/read_back.py", dir);

    m.subject = "Rechnung für März 2026";
    m.to.items = to;
    m.to.count = 2;
    m.cc.items = &cc;
    m.cc.count = 1;
    m.bcc.items = &hidden;
    m.bcc.count = 1;
    m.body_text = (char *)text;
    m.body_html = (char *)html;
    m.attachments = files;
    m.attachment_count = 3;
    out = write_message(&m, &size);

    if (out != NULL && write_file(eml, out, size)
        && write_file(script, read_back_script, strlen(read_back_script)))
        got = run_python(script, eml);
    snprintf(expected, sizeof(expected),
             "subject=Rechnung für März 2026\n"
             "to=Müller, Anna|anna.mueller@example.org\n"
             "to=|anna@example.org\n"
             "cc=Bob Bauer|bob@example.org\n"
             "bcc=None\n");
    expect_part(expected, sizeof(expected), "text/plain", "", "", text,
                strlen(text));
    expect_part(expected, sizeof(expected), "text/html", "", "", html,
                strlen(html));
    expect_part(expected, sizeof(expected), "image/png", "logo.png",
                "<logo@example.org>", files[0].content, files[0].size);
    expect_part(expected, sizeof(expected), "application/pdf",
                "invoice-7.pdf", "", files[1].content, files[1].size);
    expect_part(expected, sizeof(expected), "application/pdf", long_name,
                "", files[2].content, files[2].size);
    strcat(expected, "defects=0\n");
    CHECK_STR(got, expected);

    unlink(eml);
    unlink(script);
    rmdir(dir);
    free(got);
    free(out);
    free(files[1].content);
}

int main(void)
{
    test_simple_text_exact();
    test_date_format();
    test_encoded_subject_and_name();
    test_bcc_never_written();
    test_quoted_printable();
    test_quoted_printable_crlf();
    test_attachment_multipart();
    test_attachment_names();
    test_inline_image_related();
    test_html_only();
    test_header_folding();
    test_extra_headers();
    test_header_encoder();
    test_quoted_printable_lines();
    test_errors();
    test_size_cap();
    test_python_read_back();
    CHECK_DONE();
}
