/*
 * check.h - a small test harness: named cases, assertions that print what
 * was got and what was wanted, and a failure count that becomes the exit
 * status. Each suite is one executable that CTest runs with a timeout.
 */
#ifndef OUTBOX_CHECK_H
#define OUTBOX_CHECK_H

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

static int check_failures;
static const char *check_case = "";

#define CHECK_CASE(name) (check_case = (name))

#define CHECK_FAIL(...)                                                  \
    do {                                                                 \
        fprintf(stderr, "%s:%d: [%s] ", __FILE__, __LINE__, check_case); \
        fprintf(stderr, __VA_ARGS__);                                    \
        fputc('\n', stderr);                                             \
        check_failures++;                                                \
    } while (0)

#define CHECK(cond)                                                      \
    do {                                                                 \
        if (!(cond))                                                     \
            CHECK_FAIL("expected %s", #cond);                            \
    } while (0)

#define CHECK_INT(got, want)                                             \
    do {                                                                 \
        long long check_got_ = (long long)(got);                         \
        long long check_want_ = (long long)(want);                       \
        if (check_got_ != check_want_)                                   \
            CHECK_FAIL("%s: got %lld, want %lld", #got, check_got_,      \
                       check_want_);                                     \
    } while (0)

#define CHECK_STR(got, want)                                             \
    do {                                                                 \
        const char *check_got_ = (got);                                  \
        const char *check_want_ = (want);                                \
        if (check_got_ == NULL || check_want_ == NULL                    \
                ? check_got_ != check_want_                              \
                : strcmp(check_got_, check_want_) != 0)                  \
            CHECK_FAIL("%s: got \"%s\", want \"%s\"", #got,              \
                       check_got_ ? check_got_ : "(null)",               \
                       check_want_ ? check_want_ : "(null)");            \
    } while (0)

/* Passes if got contains want as a substring. */
#define CHECK_CONTAINS(got, want)                                        \
    do {                                                                 \
        const char *check_got_ = (got);                                  \
        const char *check_want_ = (want);                                \
        if (check_got_ == NULL || strstr(check_got_, check_want_) == NULL) \
            CHECK_FAIL("%s: got \"%s\", want it to contain \"%s\"", #got, \
                       check_got_ ? check_got_ : "(null)", check_want_); \
    } while (0)

#define CHECK_DONE()                                                     \
    do {                                                                 \
        if (check_failures)                                              \
            fprintf(stderr, "%d check(s) failed\n", check_failures);     \
        return check_failures ? 1 : 0;                                   \
    } while (0)

#endif /* OUTBOX_CHECK_H */
