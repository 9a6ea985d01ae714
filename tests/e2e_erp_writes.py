"""End to end: while outboxd drains at full speed, an ERP inserts 10,000
rows in small transactions with an ordinary busy timeout (5 s). None of its
inserts may fail with "database is locked"; the insert latency percentiles
are printed."""

import sqlite3
import sys
import threading
import time

from harness import (Mock, Outbox, check, check_equal, finish, sendgrid,
                     workdir)

INSERTS = int(sys.argv[1]) if len(sys.argv) > 1 else 10000
BACKLOG = 5000


def insert_rows(database, count, latencies, errors):
    db = sqlite3.connect(database, timeout=5, isolation_level=None)
    n = 0
    while n < count:
        batch = 1 + n % 3  # transactions of one to three rows
        started = time.perf_counter()
        try:
            db.execute("BEGIN")
            for _ in range(batch):
                db.execute("INSERT INTO outbox (sender, recipients, subject,"
                           " body_text, reference) VALUES (?, ?, ?, ?, ?)",
                           ("Billing <billing@example.com>",
                            f"erp{n}@example.org", f"Invoice {n}", "text",
                            f"ERP-{n}"))
                n += 1
            db.execute("COMMIT")
        except sqlite3.OperationalError as error:
            errors.append(str(error))
            db.execute("ROLLBACK")
        latencies.append(time.perf_counter() - started)
    db.close()


def percentile(values, fraction):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def test_erp_inserts_never_locked_out():
    directory = workdir()
    mock = Mock(directory)
    outbox = Outbox(directory, [sendgrid(mock.url)], log_level="warn")
    db = outbox.connect()
    db.execute("BEGIN")
    for n in range(BACKLOG):
        db.execute("INSERT INTO outbox (sender, recipients, subject, "
                   "body_text) VALUES (?, ?, ?, ?)",
                   ("Billing <billing@example.com>",
                    f"backlog{n}@example.org", f"Invoice {n}", "x" * 2048))
    db.commit()
    db.close()

    latencies, errors = [], []
    daemon = outbox.start()
    writer = threading.Thread(target=insert_rows,
                              args=(outbox.database, INSERTS, latencies,
                                    errors))
    writer.start()
    writer.join()
    daemon.terminate()
    check_equal(daemon.wait(timeout=60), 0, "daemon exit code")
    check_equal(errors[:3], [], "insert errors")
    check_equal(outbox.drain(timeout=120), 0, "drain exit code")
    total = outbox.query("SELECT count(*) AS n FROM outbox "
                         "WHERE status = 'sent'")[0]["n"]
    check_equal(total, BACKLOG + INSERTS, "rows sent in the end")
    ms = [1000 * s for s in latencies]
    print(f"ERP transactions {len(ms)}, inserts {INSERTS}, errors "
          f"{len(errors)}; latency ms p50 {percentile(ms, 0.50):.1f}, "
          f"p95 {percentile(ms, 0.95):.1f}, p99 {percentile(ms, 0.99):.1f}, "
          f"max {max(ms):.1f}")
    mock.stop()


test_erp_inserts_never_locked_out()
finish()
