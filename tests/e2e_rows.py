"""End to end: what outboxd does with the rows an ERP writes, good and bad,
scheduled, cancelled and prioritised."""

import json
import re
import sqlite3

from harness import (Mock, Outbox, check, check_equal, finish, sendgrid,
                     workdir)

GOOD = dict(sender="Buchhaltung <billing@example.com>",
            recipients="kunde@example.org", subject="Rechnung",
            body_text="Anbei Ihre Rechnung.")


def row_with(**changes):
    columns = dict(GOOD)
    columns.update(changes)
    return {k: v for k, v in columns.items() if v is not None}


# (name, columns, expected last_error_kind, text that last_error contains)
BAD_ROWS = [
    ("empty sender", row_with(sender=""), "invalid_sender", "sender"),
    ("no sender", row_with(sender=None), "invalid_sender", "sender"),
    ("CRLF in subject", row_with(subject="Mahnung 3\r\nBcc: sammler@example.net"),
     "invalid_header_value", "subject"),
    ("bare LF in subject", row_with(subject="Mahnung 3\nX-Priority: 1"),
     "invalid_header_value", "subject"),
    ("bare CR in subject", row_with(subject="Mahnung 3\rFrom: chef@example.com"),
     "invalid_header_value", "subject"),
    ("CRLF in recipients",
     row_with(recipients="kunde@example.org\r\nBcc: sammler@example.net"),
     "invalid_header_value", "recipients"),
    ("CRLF in sender",
     row_with(sender="Buchhaltung <billing@example.com>\r\n"
                     "Reply-To: x@example.net"),
     "invalid_header_value", "sender"),
    ("CRLF in header value",
     row_with(headers=json.dumps({"X-ERP-Ref": "R-1\r\nBcc: "
                                               "sammler@example.net"})),
     "invalid_header_value", "X-ERP-Ref"),
    ("NUL in subject", row_with(subject="Mahnung\x00 3"),
     "invalid_header_value", "subject"),
    ("invalid recipient", row_with(recipients="kunde@@example.org"),
     "invalid_recipients", "recipients"),
    ("empty recipients", row_with(recipients=""), "invalid_recipients",
     "recipients"),
    ("headers not JSON", row_with(headers='{"X-A": '), "invalid_headers",
     "headers"),
    ("headers an array", row_with(headers='["X-A"]'), "invalid_headers",
     "headers"),
    ("metadata not an object", row_with(metadata='"text"'),
     "invalid_metadata", "metadata"),
    ("no body", row_with(body_text=None), "missing_body", "body"),
    ("unknown provider", row_with(provider="sparkpost"),
     "provider_not_configured", "sparkpost"),
    ("send_after not a date", row_with(send_after="next tuesday"),
     "invalid_send_after", "send_after"),
    ("send_after a number", row_with(send_after=1735689600),
     "invalid_send_after", "send_after"),
    ("local part over 64 bytes", row_with(recipients="a" * 65 + "@example.org"),
     "invalid_recipients", "recipients"),
    ("1001 recipients",
     row_with(recipients=", ".join(f"r{n}@example.org" for n in range(1001))),
     "limit_exceeded", "recipients"),
    ("30 MB body", row_with(body_text="x" * (30 * 1024 * 1024)),
     "limit_exceeded", "body_text"),
    ("NUL in body", row_with(body_text="Anbei\x00 Ihre Rechnung"),
     "invalid_text", "body_text"),
    ("headers with a number", row_with(headers='{"X-Count": 3}'),
     "invalid_headers", "X-Count"),
    ("reserved header", row_with(headers='{"Bcc": "x@example.net"}'),
     "invalid_headers", "Bcc"),
    ("LF in header name", row_with(headers=json.dumps({"X-A\nB": "1"})),
     "invalid_headers", '"X-A?B" is not a valid header name'),
]


def test_bad_rows_fail_alone():
    """Each bad row fails with a reason naming the field; the good rows
    around them are sent; nothing injected reaches the provider."""
    directory = workdir()
    mock = Mock(directory)
    outbox = Outbox(directory, [sendgrid(mock.url)])
    first_good = outbox.insert(**GOOD)
    bad_ids = [(outbox.insert(**columns), name, kind, text)
               for name, columns, kind, text in BAD_ROWS]
    last_good = outbox.insert(**row_with(
        subject="=?UTF-8?Q?Hallo=0D=0ABcc:_sammler@example.net?="))
    attachment_row = outbox.insert(**GOOD)
    outbox.attach(attachment_row, "rechnung.pdf\r\nContent-Type: text/html",
                  "application/pdf", b"%PDF-1.4")
    unnamed_row = outbox.insert(**GOOD)
    outbox.attach(unnamed_row, None, "application/pdf", b"%PDF-1.4")
    # What readfile() in the sqlite3 shell gives for a missing file.
    missing_file_row = outbox.insert(**GOOD)
    outbox.attach(missing_file_row, "invoice-42.pdf", "application/pdf", None)
    db = outbox.connect()
    invalid_utf8_row = db.execute(
        "INSERT INTO outbox (sender, recipients, subject, body_text) "
        "VALUES (?, ?, CAST(x'52656368c3' AS TEXT), ?)",
        (GOOD["sender"], GOOD["recipients"], GOOD["body_text"])).lastrowid
    db.commit()
    db.close()
    check_equal(outbox.drain(), 0, "drain exit code")

    for row_id, name, kind, text in bad_ids:
        row = outbox.row(row_id)
        check_equal(row["status"], "failed", f"{name}: status")
        check_equal(row["last_error_kind"], kind, f"{name}: error kind")
        check(text in (row["last_error"] or ""),
              f"{name}: last_error {row['last_error']!r} names {text!r}")
        check_equal(row["attempts"], 1, f"{name}: attempts")
        check_equal(row["next_attempt_at"], None, f"{name}: next_attempt_at")
    check_equal(outbox.row(attachment_row)["last_error_kind"],
                "invalid_header_value", "CRLF in attachment filename")
    row = outbox.row(missing_file_row)
    check_equal((row["status"], row["last_error_kind"]),
                ("failed", "invalid_attachment"),
                "attachment with NULL content")
    check_equal(row["last_error"], "attachment 1: content is empty (NULL or "
                "0 bytes); check the file the ERP attached",
                "attachment with NULL content: last_error")
    check_equal((row["attempts"], row["next_attempt_at"]), (1, None),
                "attachment with NULL content: no retry")
    check_equal(outbox.row(unnamed_row)["last_error_kind"],
                "invalid_attachment", "attachment without a filename")
    kind = outbox.query("SELECT last_error_kind FROM outbox WHERE id = ?",
                        invalid_utf8_row)
    check_equal(kind, [{"last_error_kind": "invalid_text"}],
                "invalid UTF-8 in the subject")

    check_equal(outbox.row(first_good)["status"], "sent", "good row status")
    check_equal(outbox.row(last_good)["status"], "sent",
                "literal encoded-word subject status")
    requests = mock.requests()
    check_equal(len(requests), 2, "requests made (good rows only)")
    for request in requests:
        check("sammler@example.net" not in request["body"]
              or "=?UTF-8?Q?Hallo" in request["body"],
              "no injected address reaches the provider")
    literal = [json.loads(r["body"]) for r in requests
               if "Hallo" in r["body"]]
    check(literal and literal[0]["subject"]
          == "=?UTF-8?Q?Hallo=0D=0ABcc:_sammler@example.net?=",
          "the literal subject goes out as text")
    stuck = outbox.query("SELECT id FROM outbox_stuck")
    check_equal(stuck, [], "failed rows are not stuck")

    # Error texts quote the bad value, and the log escapes those quotes,
    # so each event stays one line that key=value parsers can split.
    log_lines = outbox.log_text().splitlines()
    for line in log_lines:
        check(re.match(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ ", line),
              f"log line starts with a timestamp: {line!r}")
    check(any('error="recipients: address 1 \\"kunde@@example.org\\"'
              in line for line in log_lines),
          "invalid recipient: quotes escaped in the log line")
    check(any(re.search(r' attempt=1 provider="sparkpost" key=- '
                        r'status=failed kind=provider_not_configured ', line)
              for line in log_lines),
          "unknown provider: the log line names attempt and provider")
    mock.stop()


def test_unusual_rows_are_sent():
    """Valid but unusual input goes out as written."""
    directory = workdir()
    mock = Mock(directory)
    outbox = Outbox(directory, [sendgrid(mock.url)])
    thousand = ", ".join(f"r{n}@example.org" for n in range(1000))
    rows = {
        "comma in quotes": row_with(
            recipients='"Meier, Anna" <a.meier@example.org>'),
        "non-ASCII": row_with(sender="Jürgen Müller <j.mueller@example.com>",
                              subject="Mahnung für Zoë – 3. Stufe"),
        "plus address": row_with(recipients="kunde+rechnung@example.org"),
        "IDN domain": row_with(recipients="info@bücher.example"),
        "1000 recipients": row_with(recipients=thousand),
        "semicolons": row_with(recipients="a@example.org; b@example.org;"),
    }
    ids = {name: outbox.insert(**columns) for name, columns in rows.items()}
    check_equal(outbox.drain(), 0, "drain exit code")
    bodies = {}
    for request in mock.requests():
        body = json.loads(request["body"])
        bodies[int(body["personalizations"][0]["custom_args"]
                   ["outbox_id"])] = body
    for name, row_id in ids.items():
        check_equal(outbox.row(row_id)["status"], "sent", f"{name}: status")
    to = lambda name: bodies.get(ids[name], {}).get(  # noqa: E731
        "personalizations", [{}])[0].get("to")
    # SendGrid splits recipient names at commas unless they are quoted.
    check_equal(to("comma in quotes"),
                [{"email": "a.meier@example.org", "name": '"Meier, Anna"'}],
                "display name with a comma")
    non_ascii = bodies.get(ids["non-ASCII"], {})
    check_equal(non_ascii.get("subject"), "Mahnung für Zoë – 3. Stufe",
                "non-ASCII subject")
    check_equal(non_ascii.get("from"), {"email": "j.mueller@example.com",
                                        "name": "Jürgen Müller"},
                "non-ASCII sender name")
    check_equal(to("plus address"), [{"email": "kunde+rechnung@example.org"}],
                "plus address")
    check_equal(to("IDN domain"), [{"email": "info@bücher.example"}],
                "IDN domain")
    check_equal(len(to("1000 recipients") or []), 1000, "1000 recipients")
    check_equal([a["email"] for a in to("semicolons") or []],
                ["a@example.org", "b@example.org"], "semicolon separators")
    mock.stop()


def test_unique_message_key():
    """A second insert with the same message_key fails in the ERP."""
    directory = workdir()
    outbox = Outbox(directory, [sendgrid("http://127.0.0.1:9")])
    outbox.insert(**row_with(message_key="INV-42"))
    try:
        outbox.insert(**row_with(message_key="INV-42"))
        check(False, "second insert with the same message_key succeeded")
    except sqlite3.IntegrityError:
        pass


def test_schedule_cancel_priority():
    """send_after in the future waits; cancelled rows are never sent;
    higher priority goes first."""
    directory = workdir()
    mock = Mock(directory)
    outbox = Outbox(directory, [sendgrid(mock.url)], concurrency=1,
                    claim_batch=1)
    later = outbox.insert(**row_with(send_after="2999-01-01T00:00:00Z"))
    cancelled = outbox.insert(**row_with(status="cancelled"))
    low = outbox.insert(**row_with(subject="low", priority=0))
    high = outbox.insert(**row_with(subject="high", priority=5))
    past = outbox.insert(**row_with(subject="past",
                                    send_after="2020-01-01 10:00:00+02:00"))
    check_equal(outbox.drain(), 0, "drain exit code")

    check_equal(outbox.row(later)["status"], "queued", "future row waits")
    check_equal(outbox.row(later)["next_attempt_at"], "2999-01-01 00:00:00",
                "next_attempt_at from send_after")
    check_equal(outbox.row(cancelled)["status"], "cancelled",
                "cancelled row stays")
    check_equal(outbox.row(past)["status"], "sent", "past send_after sent")
    subjects = [json.loads(r["body"])["subject"] for r in mock.requests()]
    check_equal(subjects[:1], ["high"], "highest priority first")
    check_equal(sorted(subjects), ["high", "low", "past"], "rows sent")
    mock.stop()


def test_stuck_view_reasons():
    """outbox_stuck names held rows, expired leases, rows due too long and
    a missing daemon."""
    directory = workdir()
    outbox = Outbox(directory, [sendgrid("http://127.0.0.1:9")])
    held = outbox.insert(**GOOD)
    expired = outbox.insert(**GOOD)
    late = outbox.insert(**GOOD)
    db = outbox.connect()
    db.execute("UPDATE outbox SET status = 'held', last_error = 'x' "
               "WHERE id = ?", (held,))
    db.execute("UPDATE outbox SET status = 'sending', lease_owner = 'gone', "
               "lease_until = datetime('now', '-1 minute') WHERE id = ?",
               (expired,))
    db.execute("UPDATE outbox SET next_attempt_at = "
               "datetime('now', '-30 minutes') WHERE id = ?", (late,))
    db.commit()
    reasons = {r["id"]: r["reason"] for r in
               db.execute("SELECT id, reason FROM outbox_stuck")}
    check(reasons.get(held, "").startswith("held"), f"held: {reasons}")
    check(reasons.get(expired, "").startswith("lease expired"),
          f"lease expired: {reasons}")
    check("no daemon heartbeat" in reasons.get(late, ""),
          f"no heartbeat: {reasons}")

    db.execute("INSERT INTO daemon_heartbeat VALUES ('me', datetime('now'), "
               "datetime('now'))")
    db.commit()
    reasons = {r["id"]: r["reason"] for r in
               db.execute("SELECT id, reason FROM outbox_stuck")}
    check("more than 10 minutes" in reasons.get(late, ""),
          f"due too long: {reasons}")
    db.close()


test_bad_rows_fail_alone()
test_unusual_rows_are_sent()
test_unique_message_key()
test_schedule_cancel_priority()
test_stuck_view_reasons()
finish()
