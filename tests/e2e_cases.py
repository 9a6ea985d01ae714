"""End to end: failures seen in other email queues, replayed against
outboxd and SendGrid's API on a mock provider."""

import calendar
import json
import time

from harness import (Mock, Outbox, check, check_equal, finish, sendgrid,
                     wait_for, workdir)

ROW = dict(sender="Buchhaltung <billing@example.com>",
           recipients="kunde@example.org", subject="Rechnung",
           body_text="Anbei Ihre Rechnung.")


def test_two_daemons_never_share_a_row():
    """Two daemons on one database drain 10,000 rows together: 10,000
    requests, no outbox id twice, one attempt each."""
    directory = workdir()
    count = 10000
    mock = Mock(directory, default="202")
    outbox = Outbox(directory, [sendgrid(mock.url)], concurrency=32,
                    claim_batch=16, log_level="warn")
    db = outbox.connect()
    db.executemany("INSERT INTO outbox (sender, recipients, subject, "
                   "body_text) VALUES (?, ?, ?, ?)",
                   [(ROW["sender"], f"test+{n}@example.org", ROW["subject"],
                     ROW["body_text"]) for n in range(count)])
    db.commit()
    db.close()
    first = outbox.start("--drain")
    second = outbox.start("--drain")
    check_equal(first.wait(timeout=150), 0, "first daemon exit code")
    check_equal(second.wait(timeout=150), 0, "second daemon exit code")

    sent_ids = [json.loads(r["body"])["personalizations"][0]["custom_args"]
                ["outbox_id"] for r in mock.requests()]
    check_equal(len(sent_ids), count, "requests made")
    check_equal(len(set(sent_ids)), count, "distinct outbox ids")
    rows = outbox.query("SELECT status, attempts, count(*) AS n FROM outbox "
                        "GROUP BY status, attempts")
    check_equal(rows, [{"status": "sent", "attempts": 1, "n": count}],
                "every row sent after one attempt")
    print(f"two daemons: {count} rows, {len(sent_ids)} requests, "
          f"{len(sent_ids) - len(set(sent_ids))} duplicates")
    mock.stop()


def test_lease_renewed_during_slow_transfer():
    """A lease of 3 s and a provider that takes 7 s: the lease is renewed,
    so the row is sent once and never taken over."""
    directory = workdir()
    mock = Mock(directory, script="slow=7000:202")
    outbox = Outbox(directory, [sendgrid(mock.url, timeout_seconds=20)],
                    lease_seconds=3, heartbeat_seconds=1)
    row_id = outbox.insert(**ROW)
    first = outbox.start("--drain")
    time.sleep(1)
    second = outbox.start("--drain")
    check_equal(first.wait(timeout=60), 0, "first daemon exit code")
    check_equal(second.wait(timeout=60), 0, "second daemon exit code")
    check_equal(len(mock.requests()), 1, "requests made")
    row = outbox.row(row_id)
    check_equal(row["status"], "sent", "status")
    check_equal(row["attempts"], 1, "attempts")
    mock.stop()


def test_rate_limit_reset_header():
    """SendGrid's 429 names its reset time in X-RateLimit-Reset: the next
    attempt waits for it and the row is then sent."""
    directory = workdir()
    mock = Mock(directory, script="429:reset=3,202")
    outbox = Outbox(directory, [sendgrid(mock.url)])
    row_id = outbox.insert(**ROW)
    check_equal(outbox.drain(), 0, "drain exit code")
    requests = mock.requests()
    check_equal(len(requests), 2, "requests made")
    if len(requests) == 2:
        gap = requests[1]["received_at"] - requests[0]["received_at"]
        check(gap >= 2.0, f"the retry waited for the reset: {gap:.2f}s")
    attempts = outbox.attempts(row_id)
    check_equal([a["error_kind"] for a in attempts], ["rate_limited", None],
                "attempt error kinds")
    check_equal(outbox.row(row_id)["status"], "sent", "status")
    mock.stop()


def test_too_large_for_sendgrid():
    """A 24 MiB attachment is over SendGrid's 30 MB once base64-encoded: the
    row fails before any request, and the error gives both sizes."""
    directory = workdir()
    mock = Mock(directory)
    outbox = Outbox(directory, [sendgrid(mock.url)])
    row_id = outbox.insert(**ROW)
    outbox.attach(row_id, "scan.pdf", "application/pdf",
                  bytes(24 * 1024 * 1024))
    check_equal(outbox.drain(), 0, "drain exit code")
    row = outbox.row(row_id)
    check_equal(row["status"], "failed", "status")
    check_equal(row["last_error_kind"], "message_too_large", "error kind")
    check("30000000" in (row["last_error"] or ""),
          f"last_error names the cap: {row['last_error']}")
    check_equal(len(mock.requests()), 0, "requests made")
    mock.stop()


def test_long_retry_after_is_capped():
    """A Retry-After of ten days waits the configured maximum (1 h) instead,
    and the log names the cap. Meanwhile another provider's rows go out: a
    provider's rate limit pauses that provider only."""
    directory = workdir()
    mock = Mock(directory, script="429:retry-after=864000")
    outbox = Outbox(directory, [sendgrid(mock.url),
                                {"name": "files", "type": "file",
                                 "folder": f"{directory}/mail"}],
                    default_provider="sendgrid")
    limited = outbox.insert(**ROW)
    daemon = outbox.start()
    wait_for(lambda: outbox.row(limited)["status"] == "retrying", 10,
             "the rate-limited row to wait")
    files = [outbox.insert(provider="files", **ROW) for _ in range(5)]
    started = time.time()
    wait_for(lambda: all(outbox.row(i)["status"] == "sent" for i in files),
             10, "the other provider's rows")
    check(time.time() - started < 5,
          f"the other provider's rows went out in "
          f"{time.time() - started:.1f} s")

    row = outbox.row(limited)
    due = calendar.timegm(time.strptime(row["next_attempt_at"],
                                        "%Y-%m-%d %H:%M:%S"))
    check(3590 <= due - started <= 3610,
          f"next attempt in about an hour: {due - started:.0f} s")
    check_equal(row["last_error_kind"], "rate_limited", "error kind")
    check_equal(len(mock.requests()), 1, "requests to the limited provider")
    daemon.terminate()
    check_equal(daemon.wait(timeout=30), 0, "outboxd exit code")
    check("retry_after=864000s capped_to=3600s" in outbox.log_text(),
          "the log names the cap")
    mock.stop()


test_two_daemons_never_share_a_row()
test_lease_renewed_during_slow_transfer()
test_rate_limit_reset_header()
test_too_large_for_sendgrid()
test_long_retry_after_is_capped()
finish()
