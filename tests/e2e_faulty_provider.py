"""End to end: a provider that responds with a mix of 503, 500, 429 with
Retry-After, timeouts, dropped connections and half-written responses,
then recovers. Every message ends sent by exactly one accepted request, and
its attempt history shows each failure with its reason."""

import json
import re

from harness import (Mock, Outbox, check, check_equal, finish, sendgrid,
                     workdir)

FAULTS = ["503", "500", "429:retry-after=4", "slow=2500:202", "close",
          "half", "503:html"]
ROWS = 30
REASONS = {"provider_unavailable", "rate_limited", "timeout", "network"}


def outbox_id(request):
    body = json.loads(request["body"])
    return int(body["personalizations"][0]["custom_args"]["outbox_id"])


def test_faulty_then_recovers():
    directory = workdir()
    script = ",".join(FAULTS * 3)
    mock = Mock(directory, script=script)
    outbox = Outbox(directory, [sendgrid(mock.url, timeout_seconds=1)],
                    concurrency=4, claim_batch=4,
                    retry={"base_delay_seconds": 1, "max_delay_seconds": 2,
                           "jitter": 0, "max_attempts": 10})
    ids = [outbox.insert(sender="Billing <billing@example.com>",
                         recipients=f"customer{n}@example.org",
                         subject=f"Invoice {n}", body_text="text")
           for n in range(ROWS)]
    check_equal(outbox.drain(timeout=150), 0, "drain exit code")

    requests = mock.requests()
    accepted = {}
    per_row = {}
    for request in requests:
        row_id = outbox_id(request)
        per_row.setdefault(row_id, []).append(request)
        if request["answer"] == "202":
            accepted[row_id] = accepted.get(row_id, 0) + 1

    failures_seen = 0
    for row_id in ids:
        row = outbox.row(row_id)
        attempts = outbox.attempts(row_id)
        check_equal(row["status"], "sent", f"row {row_id} status")
        check_equal(accepted.get(row_id, 0), 1,
                    f"row {row_id}: accepted requests")
        # libcurl's own resend on a new connection is noted in the text.
        resent = sum(int(m.group(1)) - 1 for a in attempts
                     for m in [re.search(r"sent the request (\d+) times",
                                         a["error"] or "")] if m)
        check_equal(len(per_row.get(row_id, [])), len(attempts) + resent,
                    f"row {row_id}: requests against attempt rows")
        for attempt in attempts[:-1]:
            failures_seen += 1
            check_equal(attempt["outcome"], "retry",
                        f"row {row_id} attempt {attempt['attempt']} outcome")
            check(attempt["error_kind"] in REASONS,
                  f"row {row_id} attempt {attempt['attempt']} kind "
                  f"{attempt['error_kind']}")
            check(attempt["error"], f"row {row_id} attempt has error text")
        check_equal(attempts[-1]["outcome"] if attempts else None, "sent",
                    f"row {row_id} last attempt")

        # A 429 asked for 4 s, longer than the backoff (at most 2 s plus
        # 1): the next request for that row waited for it.
        times = [r["received_at"] for r in per_row.get(row_id, [])]
        answers = [r["answer"] for r in per_row.get(row_id, [])]
        for i, answer in enumerate(answers[:-1]):
            if answer.startswith("429"):
                check(times[i + 1] - times[i] >= 4.0,
                      f"row {row_id}: waited after 429: "
                      f"{times[i + 1] - times[i]:.2f}s")
    check(failures_seen >= len(FAULTS) * 2,
          f"failures recorded in attempt rows: {failures_seen}")
    print(f"rows {ROWS}, requests {len(requests)}, failed attempts "
          f"{failures_seen}")
    mock.stop()


test_faulty_then_recovers()
finish()
