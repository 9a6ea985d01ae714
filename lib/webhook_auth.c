/*
 * webhook_auth.c - request checks that several providers share: basic
 * auth credentials, the timestamp window, and the cache of recently seen
 * tokens that rejects a replayed request.
 */
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/sha.h>

#include "events_internal.h"

/* Longest Authorization header that is decoded; real ones are short. */
#define BASIC_AUTH_MAX 4096

/* Digits of a unix time: 19 fit in an int64_t. */
#define TIMESTAMP_MAX_DIGITS 18

/* Largest token cache; each entry takes about 48 bytes. */
#define TOKEN_CACHE_MAX 10000000

outbox_err outbox__events_check_timestamp(outbox_error *err,
                                          const char *timestamp, int64_t now,
                                          int64_t max_age)
{
    size_t length;
    int64_t value = 0;
    int64_t age;

    if (timestamp == NULL || timestamp[0] == '\0')
        return outbox_error_set(err, OUTBOX_EINVAL,
                                OUTBOX_EVENTS_KIND_UNAUTHENTICATED,
                                "the request has no timestamp");
    length = strlen(timestamp);
    for (size_t i = 0; i < length; i++) {
        if (timestamp[i] < '0' || timestamp[i] > '9'
            || length > TIMESTAMP_MAX_DIGITS)
            return outbox_error_set(err, OUTBOX_EINVAL,
                                    OUTBOX_EVENTS_KIND_UNAUTHENTICATED,
                                    "invalid timestamp: expected unix "
                                    "seconds in decimal digits");
        value = value * 10 + (timestamp[i] - '0');
    }

    /* Both values are below 2^62, so the difference cannot overflow. */
    if (now < 0 || max_age < 0)
        return outbox_error_set(err, OUTBOX_EINVAL,
                                OUTBOX_EVENTS_KIND_UNAUTHENTICATED,
                                "invalid clock %lld or window %lld",
                                (long long)now, (long long)max_age);
    age = now > value ? now - value : value - now;
    if (age > max_age)
        return outbox_error_set(err, OUTBOX_EINVAL,
                                OUTBOX_EVENTS_KIND_UNAUTHENTICATED,
                                "stale timestamp %lld: %lld s %s now, "
                                "more than the %lld s allowed",
                                (long long)value, (long long)age,
                                value < now ? "before" : "after",
                                (long long)max_age);
    return OUTBOX_EOK;
}

/* ------------------------------------------------------------------ */
/* Basic auth                                                          */
/* ------------------------------------------------------------------ */

/* Hashes the n bytes at data into digest; false if OpenSSL fails. */
static bool sha256(unsigned char digest[SHA256_DIGEST_LENGTH],
                   const void *data, size_t n)
{
    return EVP_Digest(data, n, digest, NULL, EVP_sha256(), NULL) == 1;
}

/*
 * Compares credentials with the configured username:password through
 * their SHA-256 digests: CRYPTO_memcmp needs inputs of equal length, and
 * the digests have one, so the time taken does not reveal the length.
 */
static outbox_err compare_credentials(outbox_error *err,
                                      const unsigned char *given,
                                      size_t given_size, const char *username,
                                      const char *password)
{
    unsigned char given_digest[SHA256_DIGEST_LENGTH];
    unsigned char want_digest[SHA256_DIGEST_LENGTH];
    size_t username_size = strlen(username);
    size_t password_size = strlen(password);
    size_t want_size = username_size + 1 + password_size;
    char *want = malloc(want_size);
    bool hashed;

    if (want == NULL)
        return outbox_error_set(err, OUTBOX_ENOMEM, OUTBOX_EVENTS_KIND_NOMEM,
                                "out of memory checking credentials");
    memcpy(want, username, username_size);
    want[username_size] = ':';
    memcpy(want + username_size + 1, password, password_size);
    hashed = sha256(want_digest, want, want_size)
             && sha256(given_digest, given, given_size);
    OPENSSL_cleanse(want, want_size);
    free(want);
    if (!hashed)
        return outbox_error_set(err, OUTBOX_ENOMEM, OUTBOX_EVENTS_KIND_NOMEM,
                                "SHA-256 failed checking credentials");
    if (CRYPTO_memcmp(given_digest, want_digest, sizeof(want_digest)) != 0)
        return outbox_error_set(err, OUTBOX_EINVAL,
                                OUTBOX_EVENTS_KIND_UNAUTHENTICATED,
                                "wrong basic auth username or password");
    return OUTBOX_EOK;
}

outbox_err outbox_verify_basic_auth(outbox_error *err,
                                    const char *authorization,
                                    const char *username,
                                    const char *password)
{
    static const char scheme[] = "basic ";
    const char *credentials;
    unsigned char *decoded;
    size_t decoded_size = 0;
    outbox_err rc;

    /* RFC 7617 forbids a colon in the user-id: the first one ends it. */
    if (username == NULL || username[0] == '\0' || password == NULL
        || password[0] == '\0' || strchr(username, ':') != NULL)
        return outbox_error_set(err, OUTBOX_ECONFIG, "config",
                                "basic auth needs a username without \":\" "
                                "and a password, both non-empty");
    if (authorization == NULL)
        return outbox_error_set(err, OUTBOX_EINVAL,
                                OUTBOX_EVENTS_KIND_UNAUTHENTICATED,
                                "the request has no Authorization header");

    /* The scheme name is case-insensitive (RFC 7235). */
    if (strlen(authorization) < sizeof(scheme) - 1) {
        credentials = NULL;
    } else {
        char head[sizeof(scheme)];

        memcpy(head, authorization, sizeof(scheme) - 1);
        head[sizeof(scheme) - 1] = '\0';
        credentials = outbox__strcasecmp(head, scheme) == 0
                          ? authorization + sizeof(scheme) - 1
                          : NULL;
    }
    if (credentials == NULL)
        return outbox_error_set(err, OUTBOX_EINVAL,
                                OUTBOX_EVENTS_KIND_UNAUTHENTICATED,
                                "the Authorization header does not use the "
                                "Basic scheme");

    /* RFC 7235 puts one or more spaces between the scheme and the
     * credentials, which are base64 with no white space in them. */
    while (*credentials == ' ')
        credentials++;
    rc = outbox__events_base64_decode(&decoded, &decoded_size, err,
                                      OUTBOX_EVENTS_KIND_UNAUTHENTICATED,
                                      "the Basic auth value", credentials,
                                      BASIC_AUTH_MAX);
    if (rc != OUTBOX_EOK)
        return rc;
    rc = compare_credentials(err, decoded, decoded_size, username, password);
    OPENSSL_cleanse(decoded, decoded_size);
    free(decoded);
    return rc;
}

/* ------------------------------------------------------------------ */
/* Token cache                                                         */
/* ------------------------------------------------------------------ */

/*
 * The cache keeps the SHA-256 of each token, so an entry has a fixed size
 * whatever the token's length. Entries live in a ring in the order they
 * were added: the oldest is at head, and it goes first when the ring is
 * full or when it is older than max_age. A hash table of chains over the
 * same entries finds a token in constant time.
 */
#define NO_ENTRY SIZE_MAX

typedef struct token_entry {
    unsigned char digest[SHA256_DIGEST_LENGTH];
    unsigned char body_digest[SHA256_DIGEST_LENGTH];
    int64_t seen_at;
    size_t next;               /* next entry in the same bucket */
} token_entry;

struct outbox_token_cache {
    token_entry *entries;      /* the ring, capacity entries */
    size_t capacity;
    size_t head;               /* the oldest entry */
    size_t count;
    size_t *buckets;           /* first entry of each chain */
    size_t bucket_mask;        /* bucket count - 1, a power of two - 1 */
    int64_t max_age;
};

outbox_err outbox_token_cache_create(outbox_token_cache **out,
                                     size_t capacity, int64_t max_age)
{
    outbox_token_cache *cache;
    size_t bucket_count = 1;

    *out = NULL;
    if (capacity == 0 || capacity > TOKEN_CACHE_MAX || max_age < 0)
        return OUTBOX_EINVAL;
    while (bucket_count < capacity)
        bucket_count *= 2;
    cache = calloc(1, sizeof(*cache));
    if (cache == NULL)
        return OUTBOX_ENOMEM;
    cache->entries = calloc(capacity, sizeof(*cache->entries));
    cache->buckets = malloc(bucket_count * sizeof(*cache->buckets));
    if (cache->entries == NULL || cache->buckets == NULL) {
        outbox_token_cache_free(cache);
        return OUTBOX_ENOMEM;
    }
    for (size_t i = 0; i < bucket_count; i++)
        cache->buckets[i] = NO_ENTRY;
    cache->capacity = capacity;
    cache->bucket_mask = bucket_count - 1;
    cache->max_age = max_age;
    *out = cache;
    return OUTBOX_EOK;
}

void outbox_token_cache_free(outbox_token_cache *cache)
{
    if (cache == NULL)
        return;
    free(cache->entries);
    free(cache->buckets);
    free(cache);
}

/* The digest is uniform, so its first bytes make a good bucket index. */
static size_t bucket_of(const outbox_token_cache *cache,
                        const unsigned char *digest)
{
    size_t index = 0;

    memcpy(&index, digest, sizeof(index));
    return index & cache->bucket_mask;
}

/* Removes the oldest entry from its chain and from the ring. */
static void drop_oldest(outbox_token_cache *cache)
{
    size_t victim = cache->head;
    size_t *link = &cache->buckets[bucket_of(cache,
                                             cache->entries[victim].digest)];

    while (*link != victim)
        link = &cache->entries[*link].next;
    *link = cache->entries[victim].next;
    cache->head = (cache->head + 1) % cache->capacity;
    cache->count--;
}

static bool is_expired(const outbox_token_cache *cache,
                       const token_entry *entry, int64_t now)
{
    return now - entry->seen_at > cache->max_age;
}

bool outbox_token_cache_add(outbox_token_cache *cache, const char *token,
                            const void *body, size_t size, int64_t now)
{
    unsigned char digest[SHA256_DIGEST_LENGTH];
    unsigned char body_digest[SHA256_DIGEST_LENGTH];
    size_t bucket;
    size_t slot;

    /* A failed hash rejects the request, and the provider sends it again. */
    if (token == NULL || !sha256(digest, token, strlen(token))
        || !sha256(body_digest, body, size))
        return false;

    /* Entries were added in time order, unless the clock stepped back:
     * then an expired entry may wait behind a newer one a little longer. */
    while (cache->count > 0
           && is_expired(cache, &cache->entries[cache->head], now))
        drop_oldest(cache);

    bucket = bucket_of(cache, digest);
    for (size_t i = cache->buckets[bucket]; i != NO_ENTRY;
         i = cache->entries[i].next) {
        const token_entry *entry = &cache->entries[i];

        /* The provider resends a request whose response it did not get,
         * byte for byte. Its events are stored already, and the store
         * ignores them the second time. */
        if (memcmp(entry->digest, digest, sizeof(digest)) == 0
            && !is_expired(cache, entry, now))
            return memcmp(entry->body_digest, body_digest,
                          sizeof(body_digest))
                   == 0;
    }

    if (cache->count == cache->capacity)
        drop_oldest(cache);
    slot = (cache->head + cache->count) % cache->capacity;
    memcpy(cache->entries[slot].digest, digest, sizeof(digest));
    memcpy(cache->entries[slot].body_digest, body_digest,
           sizeof(body_digest));
    cache->entries[slot].seen_at = now;
    cache->entries[slot].next = cache->buckets[bucket];
    cache->buckets[bucket] = slot;
    cache->count++;
    return true;
}
