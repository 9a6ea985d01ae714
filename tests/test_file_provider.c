/*
 * test_file_provider.c - the file provider: folder creation, the .eml file
 * and its envelope lines, replacement on a second delivery, and the results
 * for a folder that cannot be written and for a message that cannot be
 * built.
 */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "outbox.h"

/* Passes if text is not NULL and does not contain needle. */
#define CHECK_ABSENT(text, needle)                                       \
    do {                                                                 \
        const char *check_text_ = (text);                                \
        if (check_text_ == NULL)                                         \
            CHECK_FAIL("%s is NULL", #text);                             \
        else if (strstr(check_text_, (needle)) != NULL)                  \
            CHECK_FAIL("%s contains \"%s\"", #text, (needle));           \
    } while (0)

static outbox_address shop = {"Shop", "shop@example.org"};
static outbox_address anna = {NULL, "anna@example.org"};
static outbox_address bob = {NULL, "bob@example.org"};
static outbox_address hidden = {NULL, "archive@example.org"};

static outbox_message base_message(void)
{
    outbox_message m;

    memset(&m, 0, sizeof(m));
    m.id = 42;
    m.attempt = 1;
    m.provider = "files";
    m.message_id = "outbox-42.7f3a9c@example.org";
    m.sender = shop;
    m.to.items = &anna;
    m.to.count = 1;
    m.cc.items = &bob;
    m.cc.count = 1;
    m.bcc.items = &hidden;
    m.bcc.count = 1;
    m.subject = "Invoice 7";
    m.body_text = "Hello Anna,\n";
    return m;
}

/* Reads a whole file into a NUL-terminated string, or returns NULL. */
static char *read_file(const char *path)
{
    FILE *file = fopen(path, "rb");
    char *text = calloc(1, 1 << 20);
    size_t size = 0;

    if (file != NULL && text != NULL)
        size = fread(text, 1, (1 << 20) - 1, file);
    if (file == NULL || text == NULL || ferror(file) || !feof(file)) {
        free(text);
        text = NULL;
    }
    if (text != NULL)
        text[size] = '\0';
    if (file != NULL)
        fclose(file);
    return text;
}

/* Counts the entries of folder, and those whose name ends in ".tmp". */
static size_t count_files(const char *folder, size_t *temporary)
{
    DIR *dir = opendir(folder);
    struct dirent *entry;
    size_t count = 0;

    *temporary = 0;
    if (dir == NULL)
        return 0;
    for (entry = readdir(dir); entry != NULL; entry = readdir(dir)) {
        size_t n = strlen(entry->d_name);

        if (strcmp(entry->d_name, ".") == 0 || strcmp(entry->d_name, "..") == 0)
            continue;
        count++;
        if (n > 4 && strcmp(entry->d_name + n - 4, ".tmp") == 0)
            (*temporary)++;
    }
    closedir(dir);
    return count;
}

static void test_deliver_writes_file(const char *root)
{
    static const char envelope[] =
        "X-Outbox-Envelope-From: shop@example.org\r\n"
        "X-Outbox-Envelope-To: anna@example.org, bob@example.org, "
        "archive@example.org\r\n"
        "Date: ";
    outbox_message m = base_message();
    outbox_provider *provider = NULL;
    outbox_error err = {{0}, {0}};
    outbox_result result;
    char folder[256], path[300];
    size_t temporary = 0;
    const char *headers;
    char *text;

    CHECK_CASE("deliver writes 42.eml");
    snprintf(folder, sizeof(folder), "%s/spool/outbox", root);
    CHECK_INT(outbox_provider_create_file(&provider, &err, "files", folder),
              OUTBOX_EOK);
    if (provider == NULL) {
        CHECK_FAIL("create failed: %s: %s", err.kind, err.text);
        return;
    }
    CHECK_STR(outbox_provider_type(provider), "file");
    CHECK(!outbox_provider_uses_curl(provider));

    outbox_provider_deliver(provider, &result, &m);
    CHECK_STR(outbox_result_kind_name(result.kind), "sent");
    CHECK_STR(result.provider_message_id, "42.eml");
    CHECK_STR(result.error.kind, "");
    CHECK_INT(count_files(folder, &temporary), 1);
    CHECK_INT(temporary, 0);

    snprintf(path, sizeof(path), "%s/42.eml", folder);
    text = read_file(path);
    CHECK(text != NULL
          && strncmp(text, envelope, strlen(envelope)) == 0);
    CHECK_CONTAINS(text, "\r\nFrom: Shop <shop@example.org>\r\n"
                         "To: anna@example.org\r\nCc: bob@example.org\r\n"
                         "Subject: Invoice 7\r\n");
    CHECK_CONTAINS(text, "\r\n\r\nHello Anna,\r\n");

    /* The envelope line is the only place where the Bcc address appears. */
    headers = text != NULL ? strstr(text, "\r\nDate: ") : NULL;
    CHECK_ABSENT(headers, "archive@example.org");
    CHECK_ABSENT(text, "Bcc");
    free(text);

    CHECK_CASE("second delivery replaces file");
    m.attempt = 2;
    m.subject = "Invoice 7, corrected";
    outbox_provider_deliver(provider, &result, &m);
    CHECK_STR(outbox_result_kind_name(result.kind), "sent");
    CHECK_STR(result.provider_message_id, "42.eml");
    CHECK_INT(count_files(folder, &temporary), 1);
    CHECK_INT(temporary, 0);
    text = read_file(path);
    CHECK_CONTAINS(text, "\r\nSubject: Invoice 7, corrected\r\n");
    free(text);

    unlink(path);
    rmdir(folder);
    snprintf(folder, sizeof(folder), "%s/spool", root);
    rmdir(folder);
    outbox_provider_free(provider);
}

static void test_envelope_folding(const char *root)
{
    static outbox_address many[6] = {
        {NULL, "buchhaltung.nord@example.org"},
        {NULL, "buchhaltung.sued@example.org"},
        {NULL, "controlling@example.org"},
        {NULL, "revision.extern@example.org"},
        {NULL, "archiv@example.org"},
        {NULL, "geschaeftsfuehrung@example.org"},
    };
    static const char want[] =
        "X-Outbox-Envelope-To: anna@example.org, bob@example.org,\r\n"
        " buchhaltung.nord@example.org, buchhaltung.sued@example.org,\r\n"
        " controlling@example.org, revision.extern@example.org, "
        "archiv@example.org,\r\n"
        " geschaeftsfuehrung@example.org\r\n"
        "Date: ";
    outbox_message m = base_message();
    outbox_provider *provider = NULL;
    outbox_error err = {{0}, {0}};
    outbox_result result;
    char folder[256], path[300];
    char *text;

    CHECK_CASE("envelope folds after commas");
    snprintf(folder, sizeof(folder), "%s/folded", root);
    CHECK_INT(outbox_provider_create_file(&provider, &err, "files", folder),
              OUTBOX_EOK);
    if (provider == NULL)
        return;
    m.id = 7;
    m.bcc.items = many;
    m.bcc.count = 6;
    outbox_provider_deliver(provider, &result, &m);
    CHECK_STR(result.provider_message_id, "7.eml");
    snprintf(path, sizeof(path), "%s/7.eml", folder);
    text = read_file(path);
    CHECK_CONTAINS(text, want);
    free(text);
    unlink(path);
    rmdir(folder);
    outbox_provider_free(provider);
}

static void test_unwritable_folder(const char *root)
{
    outbox_message m = base_message();
    outbox_provider *provider = NULL;
    outbox_error err = {{0}, {0}};
    outbox_result result;
    char folder[256];
    FILE *file;

    /* The folder is replaced by a regular file after create: a write
     * fails even for root, which chmod could not stop. */
    CHECK_CASE("unwritable folder gives retry");
    snprintf(folder, sizeof(folder), "%s/gone", root);
    CHECK_INT(outbox_provider_create_file(&provider, &err, "files", folder),
              OUTBOX_EOK);
    if (provider == NULL)
        return;
    CHECK_INT(rmdir(folder), 0);
    file = fopen(folder, "w");
    CHECK(file != NULL);
    if (file != NULL)
        fclose(file);

    outbox_provider_deliver(provider, &result, &m);
    CHECK_STR(outbox_result_kind_name(result.kind), "retry");
    CHECK_STR(result.error.kind, "io_error");
    CHECK_CONTAINS(result.error.text, "/gone/42-1.eml.tmp");
    CHECK_CONTAINS(result.error.text, "Not a directory");
    CHECK_STR(result.provider_message_id, "");
    unlink(folder);
    outbox_provider_free(provider);
}

static void test_build_error_fails(const char *root)
{
    outbox_message m = base_message();
    outbox_attachment bad = {"a.txt", "text/plain\r\nX-Evil: 1", NULL,
                             (unsigned char *)"a", 1};
    outbox_provider *provider = NULL;
    outbox_error err = {{0}, {0}};
    outbox_result result;
    size_t temporary = 0;
    char folder[256];

    CHECK_CASE("message build error fails");
    snprintf(folder, sizeof(folder), "%s/failed", root);
    CHECK_INT(outbox_provider_create_file(&provider, &err, "files", folder),
              OUTBOX_EOK);
    if (provider == NULL)
        return;
    m.attachments = &bad;
    m.attachment_count = 1;
    outbox_provider_deliver(provider, &result, &m);
    CHECK_STR(outbox_result_kind_name(result.kind), "failed");
    CHECK_STR(result.error.kind, "invalid_attachment");

    m = base_message();
    m.message_id = NULL;
    outbox_provider_deliver(provider, &result, &m);
    CHECK_STR(outbox_result_kind_name(result.kind), "failed");
    CHECK_STR(result.error.kind, "internal");
    CHECK_INT(count_files(folder, &temporary), 0);
    rmdir(folder);
    outbox_provider_free(provider);
}

/* The file provider cannot render a provider's template, so such a
 * message fails before a file is written. */
static void test_template_fails(const char *root)
{
    outbox_message m = base_message();
    outbox_provider *provider = NULL;
    outbox_error err = {{0}, {0}};
    outbox_result result;
    char folder[256];
    size_t temporary = 0;

    CHECK_CASE("template fails");
    snprintf(folder, sizeof(folder), "%s/templates", root);
    CHECK_INT(outbox_provider_create_file(&provider, &err, "files", folder),
              OUTBOX_EOK);
    if (provider == NULL) {
        CHECK_FAIL("create failed: %s: %s", err.kind, err.text);
        return;
    }
    m.template_name = "invoice";
    outbox_provider_deliver(provider, &result, &m);
    CHECK_STR(outbox_result_kind_name(result.kind), "failed");
    CHECK_STR(result.error.kind, "invalid_template");
    CHECK_STR(result.error.text,
              "template: provider \"files\" (type file) does not render "
              "templates; write body_text or body_html instead");
    CHECK_INT(count_files(folder, &temporary), 0);
    outbox_provider_free(provider);
    rmdir(folder);
}

static void test_config_errors(const char *root)
{
    outbox_provider *provider = NULL;
    outbox_error err = {{0}, {0}};
    char path[256];
    FILE *file;

    CHECK_CASE("missing folder");
    CHECK_INT(outbox_provider_create_file(&provider, &err, "files", NULL),
              OUTBOX_ECONFIG);
    CHECK_STR(err.kind, "config");
    CHECK_CONTAINS(err.text, "\"folder\"");
    CHECK(provider == NULL);
    CHECK_INT(outbox_provider_create_file(&provider, &err, "files", ""),
              OUTBOX_ECONFIG);
    CHECK(provider == NULL);

    CHECK_CASE("folder under a file");
    snprintf(path, sizeof(path), "%s/plain", root);
    file = fopen(path, "w");
    CHECK(file != NULL);
    if (file != NULL)
        fclose(file);
    snprintf(path, sizeof(path), "%s/plain/sub", root);
    CHECK_INT(outbox_provider_create_file(&provider, &err, "files", path),
              OUTBOX_ECONFIG);
    CHECK_STR(err.kind, "config");
    CHECK_CONTAINS(err.text, path);
    CHECK_CONTAINS(err.text, "Not a directory");
    CHECK(provider == NULL);
    snprintf(path, sizeof(path), "%s/plain", root);
    unlink(path);
}

int main(void)
{
    char root[] = "/tmp/outbox-file-XXXXXX";

    if (mkdtemp(root) == NULL) {
        perror("mkdtemp");
        return 1;
    }
    test_deliver_writes_file(root);
    test_envelope_folding(root);
    test_unwritable_folder(root);
    test_build_error_fails(root);
    test_template_fails(root);
    test_config_errors(root);
    if (rmdir(root) != 0)
        CHECK_FAIL("files left behind in %s", root);
    CHECK_DONE();
}
