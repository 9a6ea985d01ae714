"""End to end: the bridge between libuv and libcurl's multi interface
under load, first on kept-alive connections, then with a provider that
closes every connection after its response."""

import json
import os
import time

from harness import Mock, Outbox, check, check_equal, finish, sendgrid, \
    workdir

KEPT_ALIVE = 1000
CLOSED = 200


def open_descriptors(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


def insert_rows(outbox, first, count, body="Your invoice is attached."):
    db = outbox.connect()
    db.executemany("INSERT INTO outbox (sender, recipients, subject, "
                   "body_text) VALUES (?, ?, ?, ?)",
                   [("billing@example.com", f"customer+{n}@example.org",
                     f"Invoice {n}", body)
                    for n in range(first, first + count)])
    db.commit()
    db.close()


def wait_until_sent(outbox, count, timeout):
    """Waits until count rows are sent; returns the seconds it took."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        sent = outbox.query("SELECT count(*) AS n FROM outbox "
                            "WHERE status = 'sent'")[0]["n"]
        if sent >= count:
            return time.monotonic() - start
        time.sleep(0.05)
    raise AssertionError(f"{count} rows not sent within {timeout} s")


def test_connection_churn():
    """1,000 rows over kept-alive connections, then 200 rows whose
    responses all close the connection: every row is sent once, nothing
    fails on a reused descriptor, and outboxd ends with the descriptors
    it started with."""
    directory = workdir()
    mock = Mock(directory, script=",".join(["202"] * KEPT_ALIVE),
                default="202:close")
    outbox = Outbox(directory, [sendgrid(mock.url)], concurrency=50,
                    log_level="warn")
    daemon = outbox.start()
    time.sleep(0.5)
    baseline = open_descriptors(daemon.pid)

    insert_rows(outbox, 0, KEPT_ALIVE)
    kept_alive_seconds = wait_until_sent(outbox, KEPT_ALIVE, 30)
    insert_rows(outbox, KEPT_ALIVE, CLOSED)
    wait_until_sent(outbox, KEPT_ALIVE + CLOSED, 30)
    # Closed connections leave libcurl's cache when it next looks at them,
    # which a quiet daemon may take a moment to do.
    deadline = time.monotonic() + 5
    while (open_descriptors(daemon.pid) != baseline
           and time.monotonic() < deadline):
        time.sleep(0.1)
    descriptors = open_descriptors(daemon.pid)
    daemon.terminate()
    check_equal(daemon.wait(timeout=30), 0, "outboxd exit code")

    requests = mock.requests()
    sent_ids = [json.loads(r["body"])["personalizations"][0]["custom_args"]
                ["outbox_id"] for r in requests]
    total = KEPT_ALIVE + CLOSED
    check_equal(len(requests), total, "requests the mock received")
    check_equal(len(set(sent_ids)), total, "distinct outbox ids")
    check_equal(sum(1 for r in requests if r["answer"] == "202:close"),
                CLOSED, "responses that closed the connection")
    rows = outbox.query("SELECT status, attempts, last_error, count(*) AS n "
                        "FROM outbox GROUP BY status, attempts, last_error")
    check_equal(rows, [{"status": "sent", "attempts": 1, "last_error": None,
                        "n": total}], "every row sent after one attempt")
    failed_attempts = outbox.query("SELECT count(*) AS n FROM "
                                   "delivery_attempt WHERE outcome != 'sent'")
    check_equal(failed_attempts[0]["n"], 0, "attempts that did not succeed")
    check(kept_alive_seconds < 30, f"the first {KEPT_ALIVE} rows took "
          f"{kept_alive_seconds:.1f} s")
    check_equal(descriptors, baseline, "open descriptors after the churn")
    print(f"churn: {total} rows sent, first {KEPT_ALIVE} in "
          f"{kept_alive_seconds:.2f} s, descriptors {baseline} before and "
          f"{descriptors} after")
    mock.stop()


def test_log_checkpointed():
    """The write-ahead log is copied back into the database while outboxd
    works, so it stays short under a steady load. A checkpoint run by
    another connection while the store writes would copy the log but
    never let it start over."""
    directory = workdir()
    mock = Mock(directory)
    outbox = Outbox(directory, [sendgrid(mock.url)], concurrency=50,
                    log_level="warn")
    # 3 KB bodies: each claim and each outcome rewrites a page per row, so
    # 5,000 messages write about 15,000 frames. The store checkpoints every
    # 4,000.
    insert_rows(outbox, 0, 5000, body="x" * 3000)
    outbox.query("PRAGMA wal_checkpoint(TRUNCATE)")
    daemon = outbox.start()
    wait_until_sent(outbox, 5000, 60)
    log = outbox.query("PRAGMA wal_checkpoint(PASSIVE)")[0]["log"]
    daemon.terminate()
    check_equal(daemon.wait(timeout=30), 0, "outboxd exit code")
    check(0 <= log < 6000, f"frames in the log after 5,000 messages: {log}")
    print(f"log: {log} frames after 5,000 messages")
    mock.stop()


test_connection_churn()
test_log_checkpointed()
finish()
