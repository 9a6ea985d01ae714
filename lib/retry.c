/*
 * retry.c - when to try a message again, and when to give up.
 *
 * The policy, in words:
 *
 * - A delivery that failed for a reason that may pass (a network error, a
 *   timeout, HTTP 5xx, HTTP 429) moves the message to `retrying`, due again
 *   after a delay. Any other failure is permanent and is decided by the
 *   provider, not here.
 *
 * - The delay is exponential: base_delay * 2^(n-1) for the n-th counted
 *   failure, clamped to max_delay, then spread by +-jitter (0.2 means the
 *   delay is multiplied by a factor in [0.8, 1.2)) so that thousands of
 *   messages failed by one outage do not come back in the same second. The
 *   jittered delay is never below one second nor above max_delay.
 *
 * - When the provider names a delay (Retry-After, X-RateLimit-Reset), that
 *   delay is used instead of the backoff, without jitter, capped at
 *   max_retry_after. A cap that cut the provider's delay is reported so
 *   the caller can log it.
 *
 * - Times are stored in whole seconds, and "now" may be up to a second past
 *   the stored second. The next attempt is therefore due one second after
 *   the delay, so that no wait ends early.
 *
 * - Rate limits and pauses (counts_as_failure false: HTTP 429, a
 *   misconfigured provider) do not use up max_attempts: a long rate limit
 *   must not fail invoices that would go out an hour later.
 *
 * - A misconfigured provider (bad API key, unverified sender) rests for
 *   misconfigured_pause seconds and its messages wait as `queued`.
 *
 * - The message gives up (`failed`) when it has max_attempts counted
 *   failures, or when the next attempt would fall after created_at +
 *   max_age. Defaults: base 30 s, max delay 1 h, jitter 0.2, 8 attempts,
 *   max age 48 h, provider delays capped at 1 h, pause 5 min.
 */
#include <math.h>
#include <stdio.h>

#include "outbox.h"

void outbox_retry_policy_default(outbox_retry_policy *policy)
{
    policy->base_delay = 30;
    policy->max_delay = 3600;
    policy->jitter = 0.2;
    policy->max_attempts = 8;
    policy->max_age = 48 * 3600;
    policy->max_retry_after = 3600;
    policy->misconfigured_pause = 300;
}

/* Backoff for the n-th counted failure (n >= 1), before jitter. */
static int64_t backoff_delay(const outbox_retry_policy *policy, int n)
{
    int64_t delay = policy->base_delay > 0 ? policy->base_delay : 1;

    for (int i = 1; i < n && delay < policy->max_delay; i++)
        delay *= 2;
    if (delay > policy->max_delay)
        delay = policy->max_delay;
    return delay;
}

static int64_t apply_jitter(const outbox_retry_policy *policy, int64_t delay,
                            double random)
{
    double factor = 1.0 + policy->jitter * (2.0 * random - 1.0);
    int64_t jittered = (int64_t)llround((double)delay * factor);

    if (jittered < 1)
        jittered = 1;
    if (jittered > policy->max_delay)
        jittered = policy->max_delay;
    return jittered;
}

void outbox_retry_decide(outbox_retry_decision *decision,
                         const outbox_retry_policy *policy,
                         const outbox_result *result, int failures,
                         int64_t created_at, int64_t now, double random)
{
    int counted = failures + (result->counts_as_failure ? 1 : 0);
    int64_t delay;

    decision->give_up = false;
    decision->capped = false;
    decision->reason[0] = '\0';

    if (result->kind == OUTBOX_RESULT_MISCONFIGURED) {
        delay = policy->misconfigured_pause;
    } else if (result->retry_after >= 0) {
        delay = result->retry_after;
        if (delay > policy->max_retry_after) {
            delay = policy->max_retry_after;
            decision->capped = true;
        }
    } else {
        delay = apply_jitter(policy, backoff_delay(policy, counted > 0
                                                               ? counted
                                                               : 1),
                             random);
    }
    decision->next_attempt_at = now + delay + 1;

    if (result->counts_as_failure && counted >= policy->max_attempts) {
        decision->give_up = true;
        snprintf(decision->reason, sizeof(decision->reason),
                 "gave up after %d failed attempts", counted);
    } else if (decision->next_attempt_at > created_at + policy->max_age) {
        decision->give_up = true;
        snprintf(decision->reason, sizeof(decision->reason),
                 "gave up: the next attempt would be more than %lld hours "
                 "after the message was created",
                 (long long)(policy->max_age / 3600));
    }
}
