"""End to end with no config at all: outboxd uses ./outbox.db and writes each
message as an .eml file into ./outbox-mail, which Python's email package
(an independent MIME parser) must read back exactly."""

import email
import email.policy
import os
import sqlite3
import subprocess

from harness import OUTBOXD, check, check_equal, finish, workdir

PDF = bytes(range(256)) * 40 + b"%%EOF"


def run(directory, *args):
    return subprocess.run([OUTBOXD, *args], cwd=directory,
                          capture_output=True, text=True, timeout=60)


def test_default_config_writes_eml():
    directory = workdir()
    check_equal(run(directory, "--migrate").returncode, 0, "migrate")
    db = sqlite3.connect(os.path.join(directory, "outbox.db"))
    cursor = db.execute(
        "INSERT INTO outbox (sender, recipients, cc, bcc, subject, "
        "body_text, body_html, reference) VALUES (?,?,?,?,?,?,?,?)",
        ('"Müller, Anna" <billing@example.com>',
         '"Meier, Hans" <h.meier@example.org>, kunde+rechnung@example.org',
         "einkauf@example.org", "archiv@example.com",
         "Rechnung für März 2026 – Nr. 42",
         "Guten Tag,\nanbei die Rechnung.\n", "<p>Guten Tag</p>", "INV-42"))
    row_id = cursor.lastrowid
    db.execute("INSERT INTO outbox_attachment (outbox_id, filename, "
               "content_type, content) VALUES (?,?,?,?)",
               (row_id, "Rechnung-42.pdf", "application/pdf", PDF))
    db.commit()

    result = run(directory, "--drain")
    check_equal(result.returncode, 0, f"drain exit code ({result.stderr})")
    row = db.execute("SELECT status, provider_message_id, message_id "
                     "FROM outbox WHERE id = ?", (row_id,)).fetchone()
    db.close()
    check_equal(row[0], "sent", "status")
    check_equal(row[1], f"{row_id}.eml", "provider_message_id")

    path = os.path.join(directory, "outbox-mail", f"{row_id}.eml")
    check(os.path.exists(path), f"{path} exists")
    if not os.path.exists(path):
        return
    with open(path, "rb") as f:
        raw = f.read()
    message = email.message_from_bytes(raw, policy=email.policy.default)
    check_equal(str(message["Subject"]), "Rechnung für März 2026 – Nr. 42",
                "subject")
    sender = message["From"].addresses[0]
    check_equal(sender.display_name, "Müller, Anna", "from display name")
    check_equal(sender.addr_spec, "billing@example.com", "from address")
    to = [(a.display_name, a.addr_spec) for a in message["To"].addresses]
    check_equal(to, [("Meier, Hans", "h.meier@example.org"),
                     ("", "kunde+rechnung@example.org")], "to")
    check_equal(message["Message-ID"], f"<{row[2]}>", "Message-ID")
    check(message["Date"] is not None, "Date header")
    check(message["Bcc"] is None, "no Bcc header")
    showing_bcc = [name for name, value in message.items()
                   if "archiv@example.com" in str(value)]
    check_equal(showing_bcc, ["X-Outbox-Envelope-To"],
                "headers naming the bcc address")
    body = message.get_body(preferencelist=("plain",))
    check_equal(body.get_content().replace("\r\n", "\n"),
                "Guten Tag,\nanbei die Rechnung.\n", "text body")
    html = message.get_body(preferencelist=("html",))
    check_equal(html.get_content().strip(), "<p>Guten Tag</p>", "html body")
    attachments = list(message.iter_attachments())
    check_equal(len(attachments), 1, "attachments")
    if attachments:
        check_equal(attachments[0].get_filename(), "Rechnung-42.pdf",
                    "attachment filename")
        check_equal(attachments[0].get_content(), PDF, "attachment bytes")
    for line in raw.split(b"\r\n"):
        check(len(line) <= 998, "no line longer than 998 bytes")


test_default_config_writes_eml()
finish()
