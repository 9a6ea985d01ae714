"""End to end: crashes, stops and locks never lose a message and never send
one twice without the database saying so."""

import signal
import sqlite3
import threading
import time

from harness import (Mock, Outbox, check, check_equal, finish, run_guarded,
                     sendgrid, workdir)

ROW = dict(sender="Buchhaltung <billing@example.com>",
           recipients="kunde@example.org", subject="Rechnung R-2025-0815",
           body_text="Anbei Ihre Rechnung.")
SHORT_LEASE = dict(lease_seconds=3, heartbeat_seconds=1)


def test_crash_after_claim_requeues():
    """Killed after the claim, before any request: the row goes back to
    work once the lease expires and is sent exactly once."""
    directory = workdir()
    mock = Mock(directory)
    outbox = Outbox(directory, [sendgrid(mock.url)], **SHORT_LEASE)
    row_id = outbox.insert(**ROW)
    code = outbox.drain(env={"OUTBOXD_FAULT": "crash_after_claim"})
    check_equal(code, -signal.SIGKILL, "outboxd died at the fault point")
    row = outbox.row(row_id)
    check_equal(row["status"], "sending", "status after the crash")
    check_equal(outbox.attempts(row_id), [], "no attempt row opened")
    check_equal(len(mock.requests()), 0, "requests before restart")

    # Leases are stored to the second: 3 s, plus up to 1 s of rounding.
    time.sleep(4.5)
    stuck = outbox.query("SELECT reason FROM outbox_stuck WHERE id = ?",
                         row_id)
    check(stuck and stuck[0]["reason"].startswith("lease expired"),
          f"outbox_stuck shows the expired lease: {stuck}")
    check_equal(outbox.drain(), 0, "drain after restart")
    row = outbox.row(row_id)
    check_equal(row["status"], "sent", "status after restart")
    check_equal(row["provider_message_id"], "mock-1", "provider id")
    check_equal(len(mock.requests()), 1, "requests in total")
    check_equal(outbox.query("SELECT id FROM outbox_stuck"), [],
                "nothing stuck at the end")
    mock.stop()


def test_crash_after_provider_ok_holds():
    """Killed after the provider accepted, before the status was written:
    the row becomes held with outcome_unknown and is not sent again."""
    directory = workdir()
    mock = Mock(directory)
    outbox = Outbox(directory, [sendgrid(mock.url)], **SHORT_LEASE)
    row_id = outbox.insert(**ROW)
    code = outbox.drain(env={"OUTBOXD_FAULT": "crash_after_provider_ok"})
    check_equal(code, -signal.SIGKILL, "outboxd died at the fault point")
    check_equal(len(mock.requests()), 1, "requests before restart")

    time.sleep(3.5)
    check_equal(outbox.drain(), 0, "drain after restart")
    row = outbox.row(row_id)
    check_equal(row["status"], "held", "status after restart")
    check_equal(row["last_error_kind"], "outcome_unknown", "error kind")
    attempts = outbox.attempts(row_id)
    check_equal([a["outcome"] for a in attempts], ["unknown"],
                "attempt outcome")
    stuck = outbox.query("SELECT reason FROM outbox_stuck WHERE id = ?",
                         row_id)
    check(stuck and stuck[0]["reason"].startswith("held"),
          f"outbox_stuck lists the held row: {stuck}")
    check_equal(len(mock.requests()), 1, "requests in total")
    mock.stop()


def test_locked_database_keeps_result():
    """An ERP transaction holds the write lock while the response arrives:
    the daemon waits and records it; one request, row sent."""
    directory = workdir()
    mock = Mock(directory, script="slow=1500:202")
    outbox = Outbox(directory, [sendgrid(mock.url)], busy_timeout_ms=500)
    row_id = outbox.insert(**ROW)
    process = outbox.start("--drain")

    # Take the lock once the request is out, and hold it for 4 s.
    deadline = time.time() + 10
    while not outbox.attempts(row_id):
        check(time.time() < deadline, "row was dispatched")
        if time.time() > deadline:
            break
        time.sleep(0.05)
    blocker = sqlite3.connect(outbox.database, timeout=5,
                              isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")
    time.sleep(4)
    check_equal(process.poll(), None, "daemon still running under the lock")
    blocker.execute("COMMIT")
    blocker.close()

    check_equal(process.wait(timeout=30), 0, "drain exit code")
    row = outbox.row(row_id)
    check_equal(row["status"], "sent", "status")
    check_equal(row["provider_message_id"], "mock-1", "provider id")
    check_equal(len(mock.requests()), 1, "requests in total")
    check("database locked" in outbox.log_text(),
          "the wait for the lock is logged")
    mock.stop()


def test_sigterm_finishes_in_flight():
    """SIGTERM during deliveries: they finish and are recorded, no lease is
    left, exit code 0, and a restart sends the rest."""
    directory = workdir()
    mock = Mock(directory, default="slow=1000:202")
    outbox = Outbox(directory, [sendgrid(mock.url)], concurrency=4,
                    claim_batch=4)
    ids = [outbox.insert(**ROW) for _ in range(12)]
    process = outbox.start()
    time.sleep(0.5)
    process.send_signal(signal.SIGTERM)
    check_equal(process.wait(timeout=30), 0, "exit code after SIGTERM")

    sending = outbox.query("SELECT id FROM outbox WHERE status = 'sending'")
    check_equal(sending, [], "no row left in sending")
    sent = outbox.query("SELECT id FROM outbox WHERE status = 'sent'")
    check_equal(len(sent), len(mock.requests()),
                "every request made before the stop is recorded as sent")
    check(0 < len(sent) < len(ids), f"stopped part way: {len(sent)} sent")
    check_equal(outbox.query("SELECT owner FROM daemon_heartbeat"), [],
                "heartbeat removed on a clean stop")

    check_equal(outbox.drain(), 0, "drain after restart")
    statuses = {outbox.row(i)["status"] for i in ids}
    check_equal(statuses, {"sent"}, "all rows sent after restart")
    check_equal(len(mock.requests()), len(ids), "one request per row")
    mock.stop()


def test_failed_sync_sends_nothing():
    """The log of dispatches cannot be synced to disk: no request leaves,
    and the rows go back to the queue unchanged, with no attempt row."""
    directory = workdir()
    mock = Mock(directory)
    outbox = Outbox(directory, [sendgrid(mock.url)])
    ids = [outbox.insert(**ROW) for _ in range(3)]
    process = outbox.start(env={"OUTBOXD_FAULT": "sync_fails"})
    time.sleep(1.5)
    process.send_signal(signal.SIGTERM)
    check_equal(process.wait(timeout=30), 0, "exit code after SIGTERM")

    check_equal(len(mock.requests()), 0, "requests")
    for row_id in ids:
        row = outbox.row(row_id)
        check_equal((row["status"], row["attempts"]), ("queued", 0),
                    f"row {row_id} after the failed sync")
        check_equal(outbox.attempts(row_id), [], f"row {row_id} attempts")
    log = outbox.log_text()
    check("3 claimed messages given back unsent: syncing the write-ahead "
          "log to disk failed" in log, "the failed sync is logged")
    check("claims resume in 5000 ms" in log, "the pause is logged")
    mock.stop()


threads = []
for test in (test_failed_sync_sends_nothing,
             test_crash_after_claim_requeues,
             test_crash_after_provider_ok_holds,
             test_locked_database_keeps_result,
             test_sigterm_finishes_in_flight):
    thread = threading.Thread(target=run_guarded, args=(test,))
    thread.start()
    threads.append(thread)
for thread in threads:
    thread.join()
finish()
