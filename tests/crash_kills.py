"""Kills outboxd with SIGKILL at random moments while it delivers a few
thousand messages, restarts it each time, and checks that nothing was lost
and nothing was sent twice without the database saying so.

Usage: python3 tests/crash_kills.py [--messages N] [--kills K]
(CTest runs it with small numbers; the defaults take a few minutes.)
"""

import argparse
import json
import random
import signal
import subprocess
import sys
import time

from harness import (Mock, Outbox, check, check_equal, finish, sendgrid,
                     workdir)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=3000)
    parser.add_argument("--kills", type=int, default=60)
    parser.add_argument("--seed", type=int, default=None)
    args = parser.parse_args()
    seed = args.seed if args.seed is not None else int(time.time())
    rng = random.Random(seed)
    print(f"seed {seed}")

    directory = workdir()
    # Slow responses keep requests in flight, so that kills find some.
    mock = Mock(directory, default="slow=100:202")
    outbox = Outbox(directory, [sendgrid(mock.url)], concurrency=16,
                    claim_batch=8, lease_seconds=3, heartbeat_seconds=1,
                    log_level="warn")
    db = outbox.connect()
    db.execute("BEGIN")
    for n in range(args.messages):
        db.execute("INSERT INTO outbox (sender, recipients, subject, "
                   "body_text) VALUES (?, ?, ?, ?)",
                   ("Billing <billing@example.com>",
                    f"customer{n}@example.org", f"Invoice {n}", "text"))
    db.commit()
    db.close()

    # Some kills land at named points (right after a claim commit, right
    # after an outcome commit); the rest at random times.
    faults = [None, None, None, "crash_after_claim", "crash_after_record"]
    kills = 0
    while kills < args.kills:
        fault = rng.choice(faults)
        env = {"OUTBOXD_FAULT": fault} if fault else None
        process = outbox.start("--drain", env=env)
        try:
            code = process.wait(timeout=rng.uniform(0.05, 0.6))
        except subprocess.TimeoutExpired:
            process.send_signal(signal.SIGKILL)
            code = process.wait()
        if code == 0:
            break  # drained before the kill
        kills += 1
    check(kills >= args.kills // 2,
          f"{kills} kills happened before the queue drained")
    check_equal(outbox.drain(timeout=300), 0, "final drain exit code")

    requests = mock.requests()
    received = {}
    for request in requests:
        body = json.loads(request["body"])
        outbox_id = int(body["personalizations"][0]["custom_args"]
                        ["outbox_id"])
        received[outbox_id] = received.get(outbox_id, 0) + 1

    rows = outbox.query("SELECT id, status, attempts FROM outbox")
    counts = {}
    for row in rows:
        counts[row["status"]] = counts.get(row["status"], 0) + 1
    duplicates = {i: n for i, n in received.items() if n > 1}
    for row in rows:
        check(row["status"] in ("sent", "failed", "held"),
              f"row {row['id']} ends {row['status']}")
        if row["status"] == "sent":
            check_equal(received.get(row["id"], 0), 1,
                        f"requests for sent row {row['id']}")
    by_id = {row["id"]: row for row in rows}
    for outbox_id, n in duplicates.items():
        row = by_id.get(outbox_id)
        attempts = outbox.attempts(outbox_id)
        explained = (row is not None and
                     (row["status"] == "held" or
                      sum(1 for a in attempts
                          if a["outcome"] in ("unknown", "retry")
                          or a["error_kind"] == "resent") >= n - 1))
        check(explained, f"duplicate for row {outbox_id} ({n} requests) is "
                         f"in the database: {row}, {attempts}")
    print(f"messages {args.messages}, kills {kills}, "
          f"sent {counts.get('sent', 0)}, held {counts.get('held', 0)}, "
          f"failed {counts.get('failed', 0)}, requests {len(requests)}, "
          f"duplicates {len(duplicates)}")
    mock.stop()
    finish()


if __name__ == "__main__":
    sys.exit(main())
