/*
 * test_retry.c - the retry schedule: backoff, jitter, provider delays, caps
 * and giving up.
 */
#include "check.h"
#include "outbox.h"

#define T0 1767225600 /* 2026-01-01 00:00:00 UTC */

static outbox_result retry_result(int64_t retry_after, bool counts)
{
    outbox_result result;

    outbox_result_init(&result, OUTBOX_RESULT_RETRY);
    result.retry_after = retry_after;
    result.counts_as_failure = counts;
    return result;
}

static void backoff_without_jitter(void)
{
    /* failures before this one, then the expected wait in seconds: base 30
     * doubling, capped at 3600, plus the one second of rounding. */
    static const struct {
        int failures;
        int64_t wait;
    } cases[] = {
        {0, 31},   {1, 61},   {2, 121},   {3, 241},
        {4, 481},  {5, 961},  {6, 1921},  {7, 3601},
    };
    outbox_retry_policy policy;
    outbox_result result = retry_result(-1, true);

    CHECK_CASE("backoff without jitter");
    outbox_retry_policy_default(&policy);
    policy.jitter = 0;
    policy.max_attempts = 100;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        outbox_retry_decision decision;

        outbox_retry_decide(&decision, &policy, &result, cases[i].failures,
                            T0, T0, 0.5);
        CHECK_INT(decision.next_attempt_at - T0, cases[i].wait);
        CHECK(!decision.give_up);
    }
}

static void jitter_bounds(void)
{
    outbox_retry_policy policy;
    outbox_result result = retry_result(-1, true);
    outbox_retry_decision low;
    outbox_retry_decision high;

    CHECK_CASE("jitter spreads the delay by 20%");
    outbox_retry_policy_default(&policy);
    /* Third failure: 120 s before jitter. */
    outbox_retry_decide(&low, &policy, &result, 2, T0, T0, 0.0);
    outbox_retry_decide(&high, &policy, &result, 2, T0, T0, 0.999999);
    CHECK_INT(low.next_attempt_at - T0, 96 + 1);
    CHECK_INT(high.next_attempt_at - T0, 144 + 1);

    CHECK_CASE("jitter never passes max_delay");
    outbox_retry_decide(&high, &policy, &result, 20, T0, T0, 0.999999);
    CHECK_INT(high.next_attempt_at - T0, 3600 + 1);
}

static void provider_delay(void)
{
    outbox_retry_policy policy;
    outbox_result asked = retry_result(120, false);
    outbox_result too_long = retry_result(864000, false);
    outbox_retry_decision decision;

    outbox_retry_policy_default(&policy);

    CHECK_CASE("Retry-After is used as given");
    outbox_retry_decide(&decision, &policy, &asked, 0, T0, T0, 0.9);
    CHECK_INT(decision.next_attempt_at - T0, 121);
    CHECK(!decision.capped);

    CHECK_CASE("Retry-After is capped at max_retry_after");
    outbox_retry_decide(&decision, &policy, &too_long, 0, T0, T0, 0.9);
    CHECK_INT(decision.next_attempt_at - T0, 3601);
    CHECK(decision.capped);
    CHECK(!decision.give_up);
}

static void giving_up(void)
{
    outbox_retry_policy policy;
    outbox_result counted = retry_result(-1, true);
    outbox_result rate_limited = retry_result(5, false);
    outbox_retry_decision decision;

    outbox_retry_policy_default(&policy);

    CHECK_CASE("the 8th counted failure gives up");
    outbox_retry_decide(&decision, &policy, &counted, 7, T0, T0, 0.5);
    CHECK(decision.give_up);
    CHECK_CONTAINS(decision.reason, "8 failed attempts");

    CHECK_CASE("the 7th counted failure retries");
    outbox_retry_decide(&decision, &policy, &counted, 6, T0, T0, 0.5);
    CHECK(!decision.give_up);

    CHECK_CASE("rate limits never use up max_attempts");
    outbox_retry_decide(&decision, &policy, &rate_limited, 50, T0, T0, 0.5);
    CHECK(!decision.give_up);
    CHECK_INT(decision.next_attempt_at - T0, 6);

    CHECK_CASE("a message older than max_age gives up");
    outbox_retry_decide(&decision, &policy, &rate_limited, 0,
                        T0 - 48 * 3600 + 3, T0, 0.5);
    CHECK(decision.give_up);
    CHECK_CONTAINS(decision.reason, "48 hours");
}

static void misconfigured_pause(void)
{
    outbox_retry_policy policy;
    outbox_result result;
    outbox_retry_decision decision;

    CHECK_CASE("a misconfigured provider rests for the pause");
    outbox_retry_policy_default(&policy);
    outbox_result_init(&result, OUTBOX_RESULT_MISCONFIGURED);
    result.counts_as_failure = false;
    outbox_retry_decide(&decision, &policy, &result, 3, T0, T0, 0.5);
    CHECK(!decision.give_up);
    CHECK_INT(decision.next_attempt_at - T0, 301);
}

int main(void)
{
    backoff_without_jitter();
    jitter_bounds();
    provider_delay();
    giving_up();
    misconfigured_pause();
    CHECK_DONE();
}
