/*
 * provider_ses_tags.c - the EmailTags of an SES v2 SendEmail request: the
 * outbox id, which SES events carry back, and the row's metadata.
 *
 * SES accepts tag names and values of 1 to 256 characters from
 * [A-Za-z0-9_-]. A metadata value with other characters goes
 * base64url-encoded under "<key>_b64", and a pair that still does not fit
 * is left out with a warning.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "internal.h"
#include "provider_ses.h"

#define TAG_ENCODED_SUFFIX "_b64"

/* Returns true if text is 1 to OUTBOX_SES_MAX_TAG of [A-Za-z0-9_-]. */
static bool tag_text_fits(const char *text)
{
    size_t length = strlen(text);

    if (length == 0 || length > OUTBOX_SES_MAX_TAG)
        return false;
    for (size_t i = 0; i < length; i++) {
        char c = text[i];

        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
              || (c >= '0' && c <= '9') || c == '_' || c == '-'))
            return false;
    }
    return true;
}

/* Returns text as base64url without padding, malloc'd, or NULL. */
static char *base64url(const char *text)
{
    char *encoded = outbox__base64((const unsigned char *)text, strlen(text),
                                   NULL);
    size_t used = 0;

    if (encoded == NULL)
        return NULL;
    for (size_t i = 0; encoded[i] != '\0'; i++) {
        if (encoded[i] == '=')
            break;
        encoded[used++] = encoded[i] == '+'   ? '-'
                          : encoded[i] == '/' ? '_'
                                              : encoded[i];
    }
    encoded[used] = '\0';
    return encoded;
}

static bool tag_exists(const cJSON *tags, const char *name)
{
    const cJSON *tag;

    cJSON_ArrayForEach(tag, tags)
    {
        const cJSON *item = cJSON_GetObjectItemCaseSensitive(tag, "Name");

        if (cJSON_IsString(item) && strcmp(item->valuestring, name) == 0)
            return true;
    }
    return false;
}

static bool add_tag(cJSON *tags, const char *name, const char *value)
{
    cJSON *tag = cJSON_CreateObject();

    if (tag == NULL || !cJSON_AddItemToArray(tags, tag)) {
        cJSON_Delete(tag);
        return false;
    }
    return cJSON_AddStringToObject(tag, "Name", name) != NULL
           && cJSON_AddStringToObject(tag, "Value", value) != NULL;
}

/* Copies text for a log line, with '?' for each control character. */
static void copy_printable(char *out, size_t size, const char *text)
{
    size_t used = 0;

    for (; text != NULL && text[used] != '\0' && used + 1 < size; used++) {
        unsigned char c = (unsigned char)text[used];

        out[used] = c < ' ' || c == 0x7F ? '?' : (char)c;
    }
    out[used] = '\0';
}

/* Adds one metadata pair as a tag, base64url-encoding a value that SES
 * would reject. Returns false only when out of memory. */
static bool add_metadata_tag(cJSON *tags, const outbox_field *field,
                             const outbox_message *message,
                             const outbox_logger *logger)
{
    const char *value = field->value != NULL ? field->value : "";
    char name[OUTBOX_SES_MAX_TAG + sizeof(TAG_ENCODED_SUFFIX)];
    char *encoded = NULL;
    bool ok = true;

    if (field->name == NULL || !tag_text_fits(field->name)) {
        copy_printable(name, sizeof(name), field->name);
        outbox_log(logger, OUTBOX_LOG_WARN,
                   "id=%" PRId64 " metadata key \"%.64s\" is not sent as an "
                   "SES tag: tag names allow only A-Z, a-z, 0-9, \"_\" and "
                   "\"-\", up to 256 characters",
                   message->id, name);
        return true;
    }
    snprintf(name, sizeof(name), "%s", field->name);
    if (!tag_text_fits(value)) {
        encoded = base64url(value);
        if (encoded == NULL)
            return false;
        snprintf(name, sizeof(name), "%s%s", field->name,
                 TAG_ENCODED_SUFFIX);
        value = encoded;
    }
    if (!tag_text_fits(name) || !tag_text_fits(value))
        outbox_log(logger, OUTBOX_LOG_WARN,
                   "id=%" PRId64 " metadata key \"%.64s\" is not sent as an "
                   "SES tag: its value is empty or longer than an SES tag "
                   "allows once encoded",
                   message->id, field->name);
    else if (tag_exists(tags, name))
        outbox_log(logger, OUTBOX_LOG_WARN,
                   "id=%" PRId64 " metadata key \"%.64s\" gives the SES tag "
                   "\"%.64s\" a second time; the later value is not sent",
                   message->id, field->name, name);
    else
        ok = add_tag(tags, name, value);
    free(encoded);
    return ok;
}

bool outbox__ses_add_tags(cJSON *root, const outbox_message *message,
                          const outbox_logger *logger)
{
    cJSON *tags = cJSON_AddArrayToObject(root, "EmailTags");
    char id[24];

    if (tags == NULL)
        return false;
    snprintf(id, sizeof(id), "%" PRId64, message->id);
    if (!add_tag(tags, "outbox_id", id))
        return false;
    for (size_t i = 0; i < message->metadata_count; i++) {
        if (!add_metadata_tag(tags, &message->metadata[i], message, logger))
            return false;
    }
    return true;
}
