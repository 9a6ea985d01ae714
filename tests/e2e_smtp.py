"""End to end through a real SMTP server: aiosmtpd on 127.0.0.1 with
STARTTLS (a certificate made by openssl for this run) and AUTH. The
received message is parsed with Python's email package; refusals come from
the same server, scripted to reply with 4xx and 5xx codes."""

import atexit
import base64
import email
import email.policy
import json
import os
import subprocess
import time

from harness import Outbox, check, check_equal, finish, workdir

# aiosmtpd is Debian's python3-aiosmtpd, which the python3 that CMake finds
# (a pyenv build, say) may not see, so the server runs under Debian's.
PEER_PYTHON = "/usr/bin/python3"
PEER = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                    "smtp_peer.py")
USERNAME = "erp@example.com"
PASSWORD = "smtp-password-never-logged-5678"
TOKEN = "oauth2-token-never-logged-9012"
FAST_RETRY = {"base_delay_seconds": 1, "max_delay_seconds": 2,
              "jitter": 0, "max_attempts": 3}
PDF = b"%PDF-1.4\n" + bytes(range(256)) * 40 + b"\n%%EOF\n"


def make_certificate(directory):
    cert = os.path.join(directory, "relay.pem")
    key = os.path.join(directory, "relay.key")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048",
                    "-nodes", "-days", "2", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", key, "-out", cert],
                   check=True, capture_output=True, timeout=60)
    return cert, key


class Relay:
    """The SMTP server process and its log of commands."""

    def __init__(self, directory, script=None, auth_reply=None, token=None):
        self.cert, key = make_certificate(directory)
        self.log_path = os.path.join(directory, "relay.jsonl")
        port_file = os.path.join(directory, "relay.port")
        command = [PEER_PYTHON, PEER, "--port-file", port_file,
                   "--log", self.log_path, "--cert", self.cert,
                   "--key", key, "--username", USERNAME,
                   "--password", PASSWORD, "--token", token or TOKEN]
        if script is not None:
            command += ["--script", json.dumps(script)]
        if auth_reply is not None:
            command += ["--auth-reply", auth_reply]
        self.process = subprocess.Popen(command)
        # A test that raises skips its stop(), so the exit stops it too.
        atexit.register(self.stop)
        deadline = time.monotonic() + 20
        while not os.path.exists(port_file):
            if time.monotonic() > deadline or self.process.poll() is not None:
                raise RuntimeError("the SMTP peer did not start")
            time.sleep(0.05)
        with open(port_file) as f:
            self.port = int(f.read())
        self.url = f"smtp://127.0.0.1:{self.port}"

    def events(self, kind=None):
        if not os.path.exists(self.log_path):
            return []
        with open(self.log_path) as f:
            events = [json.loads(line) for line in f if line.strip()]
        return [e for e in events if kind is None or e["event"] == kind]

    def messages(self):
        """The accepted transactions, each message parsed."""
        parsed = []
        for event in self.events("data"):
            raw = base64.b64decode(event["content"])
            parsed.append((event, raw, email.message_from_bytes(
                raw, policy=email.policy.default)))
        return parsed

    def stop(self):
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)


def smtp(relay, **extra):
    provider = {"name": "relay", "type": "smtp", "url": relay.url,
                "username": USERNAME, "password": PASSWORD,
                "ca_file": relay.cert, "helo_name": "erp.example.com",
                "timeout_seconds": 10, "connect_timeout_seconds": 8}
    provider.update(extra)
    return provider


def invoice(outbox, number, **extra):
    columns = dict(sender="Buchhaltung <billing@example.com>",
                   recipients="kunde@example.org",
                   subject=f"Rechnung {number}",
                   body_text="Anbei Ihre Rechnung.",
                   reference=f"INV-{number}", message_key=f"inv-{number}")
    columns.update(extra)
    return outbox.insert(**columns)


def test_done_means():
    """A PDF, a non-ASCII subject and a display name with a comma arrive
    intact; bcc is an envelope recipient and never a header."""
    directory = workdir()
    relay = Relay(directory)
    outbox = Outbox(directory, [smtp(relay)])
    subject = "Rechnung Nr. 4711 für Müller & Söhne – Überfällig ✓"
    row_id = invoice(
        outbox, 4711, subject=subject,
        recipients='"Meier, Anna" <a.meier@example.org>, '
                   'Jürgen Groß <j.gross@example.org>',
        cc="einkauf@example.org", bcc="archiv@example.com",
        reply_to="Support <help@example.com>",
        body_text="Guten Tag,\nanbei die Rechnung.\n.\nGrüße",
        body_html="<p>Guten Tag,</p><p>anbei die <b>Rechnung</b>.</p>"
                  "<img src=\"cid:logo@example.com\">",
        headers='{"X-ERP-Ref": "R-4711"}', metadata='{"tenant": "t1"}')
    outbox.attach(row_id, "Rechnung 4711.pdf", "application/pdf", PDF)
    outbox.attach(row_id, "logo.png", "image/png", b"\x89PNG\r\n\x1a\nxx",
                  content_id="logo@example.com")
    check_equal(outbox.drain(), 0, "drain exit code")

    row = outbox.row(row_id)
    check_equal(row["status"], "sent", "status")
    check_equal(row["provider_message_id"], "Q1", "relay queue id stored")
    messages = relay.messages()
    check_equal(len(messages), 1, "transactions")
    event, raw, message = messages[0]
    check_equal(event["mail_from"], "billing@example.com", "MAIL FROM")
    check_equal(sorted(event["rcpt_tos"]),
                ["a.meier@example.org", "archiv@example.com",
                 "einkauf@example.org", "j.gross@example.org"],
                "RCPT TO, bcc included")
    mail = relay.events("mail")[0]
    check(mail["tls"], "STARTTLS was used")
    check_equal(mail["login"], USERNAME, "AUTH login")

    check_equal(str(message["Subject"]), subject, "subject decoded")
    check_equal(message["Message-ID"], f"<{row['message_id']}>",
                "Message-ID matches the stored one")
    check(message["Date"] is not None, "Date header present")
    to = message["To"].addresses
    check_equal([(a.display_name, a.addr_spec) for a in to],
                [("Meier, Anna", "a.meier@example.org"),
                 ("Jürgen Groß", "j.gross@example.org")], "To")
    check_equal(message["Cc"].addresses[0].addr_spec, "einkauf@example.org",
                "Cc")
    check_equal(message["Reply-To"].addresses[0].addr_spec,
                "help@example.com", "Reply-To")
    check_equal(message["From"].addresses[0].display_name, "Buchhaltung",
                "From name")
    check_equal(message["X-ERP-Ref"], "R-4711", "extra header")
    check_equal(message["X-Outbox-Id"], str(row_id), "outbox id header")
    check(message["Bcc"] is None, "no Bcc header")
    check(b"archiv@example.com" not in raw, "bcc address not in DATA")
    check(b"tenant" not in raw, "metadata not in DATA")
    for line in raw.split(b"\r\n"):
        check(len(line) <= 998, f"line of {len(line)} bytes")

    text = message.get_body(preferencelist=("plain",)).get_content()
    check_equal(text.replace("\r\n", "\n"),
                "Guten Tag,\nanbei die Rechnung.\n.\nGrüße", "text body")
    html = message.get_body(preferencelist=("html",)).get_content()
    check("<b>Rechnung</b>" in html, "html body")
    attachments = {part.get_filename(): part
                   for part in message.iter_attachments()}
    check_equal(sorted(attachments), ["Rechnung 4711.pdf"], "attachments")
    pdf = attachments.get("Rechnung 4711.pdf")
    check(pdf is not None and pdf.get_content() == PDF,
          "PDF arrives byte for byte")
    images = [p for p in message.walk() if p["Content-ID"]]
    check_equal(len(images), 1, "inline images")
    if images:
        check_equal(images[0]["Content-ID"], "<logo@example.com>",
                    "Content-ID")
        check_equal(images[0].get_content(), b"\x89PNG\r\n\x1a\nxx",
                    "inline image bytes")
    check(PASSWORD not in outbox.log_text(), "password never logged")
    relay.stop()


def test_throttled_then_accepted():
    """450 to MAIL FROM and 454 after DATA: retry as rate_limited without
    using up an attempt, then sent."""
    directory = workdir()
    relay = Relay(directory, script=[
        {"mail": "450 4.7.1 Too many requests, slow down"},
        {"data": "454 Throttling failure: Maximum sending rate exceeded."}])
    outbox = Outbox(directory, [smtp(relay, throttle_retry_seconds=1)],
                    concurrency=1, retry=FAST_RETRY)
    ids = [invoice(outbox, n) for n in (411, 412)]
    check_equal(outbox.drain(), 0, "drain exit code")
    errors = []
    for row_id in ids:
        check_equal(outbox.row(row_id)["status"], "sent", f"row {row_id}")
        attempts = outbox.attempts(row_id)
        check_equal([a["outcome"] for a in attempts], ["retry", "sent"],
                    f"row {row_id} attempt outcomes")
        check_equal(attempts[0]["error_kind"], "rate_limited",
                    f"row {row_id} first attempt kind")
        check_equal(attempts[0]["counted"], 0, "rate limit not counted")
        errors.append(attempts[0]["error"])
    # The curl error code after DATA differs between libcurl versions.
    errors = [e.split(" (curl error")[0] for e in errors]
    check_equal(sorted(errors), [
        "SMTP 450 4.7.1 Too many requests, slow down",
        "SMTP 454 Throttling failure: Maximum sending rate exceeded."],
        "provider text as received")
    check_equal(len(relay.events("data")), 3, "one DATA per attempt past "
                "MAIL FROM")
    relay.stop()


def test_unknown_recipient_fails():
    """550 5.1.1 to RCPT TO: failed at once, no DATA, no retry."""
    directory = workdir()
    relay = Relay(directory, script=[
        {"rcpt": "550 5.1.1 <weg@example.org>: Recipient address "
                 "rejected: User unknown"}])
    outbox = Outbox(directory, [smtp(relay)], retry=FAST_RETRY)
    row_id = invoice(outbox, 1, recipients="weg@example.org")
    check_equal(outbox.drain(), 0, "drain exit code")
    row = outbox.row(row_id)
    check_equal(row["status"], "failed", "status")
    check_equal(row["last_error_kind"], "invalid_recipient", "error kind")
    check_equal(row["last_error"],
                "SMTP 550 5.1.1 <weg@example.org>: Recipient address "
                "rejected: User unknown (curl error 55)", "error text")
    check_equal(row["attempts"], 1, "attempts")
    check_equal(relay.events("data"), [], "no DATA")
    relay.stop()


def test_bad_password_pauses_provider():
    """535 5.7.8: misconfigured; every row stays queued, drain exits 3."""
    directory = workdir()
    relay = Relay(directory)
    outbox = Outbox(directory, [smtp(relay, password="wrong-password")],
                    concurrency=1, retry=FAST_RETRY)
    ids = [invoice(outbox, n) for n in (1, 2, 3)]
    check_equal(outbox.drain(), 3, "drain exit code")
    for row_id in ids:
        check_equal(outbox.row(row_id)["status"], "queued",
                    f"row {row_id} status")
    first = outbox.row(ids[0])
    check_equal(first["last_error_kind"], "provider_auth", "error kind")
    check("535 5.7.8" in (first["last_error"] or ""),
          f"error text: {first['last_error']}")
    check_equal(relay.events("mail"), [], "no MAIL FROM")
    check("wrong-password" not in outbox.log_text(), "password not logged")
    relay.stop()


def test_basic_auth_turned_off():
    """550 5.7.30 to AUTH (Office 365 without basic auth): misconfigured,
    with a hint to use an OAuth2 token."""
    directory = workdir()
    relay = Relay(directory, auth_reply="550 5.7.30 Basic authentication "
                                        "is not supported for Client "
                                        "Submission.")
    outbox = Outbox(directory, [smtp(relay)], concurrency=1,
                    retry=FAST_RETRY)
    row_id = invoice(outbox, 1)
    check_equal(outbox.drain(), 3, "drain exit code")
    row = outbox.row(row_id)
    check_equal(row["status"], "queued", "status")
    check_equal(row["last_error_kind"], "provider_auth", "error kind")
    check("use oauth2_token" in (row["last_error"] or ""),
          f"error text: {row['last_error']}")
    relay.stop()


def test_oauth2_token():
    """XOAUTH2 with the token from an environment variable."""
    directory = workdir()
    relay = Relay(directory)
    provider = smtp(relay, oauth2_token_env="RELAY_TOKEN")
    del provider["password"]
    outbox = Outbox(directory, [provider])
    row_id = invoice(outbox, 1)
    check_equal(outbox.drain(env={"RELAY_TOKEN": TOKEN}), 0,
                "drain exit code")
    check_equal(outbox.row(row_id)["status"], "sent", "status")
    auth = relay.events("auth")
    check_equal([(a["mechanism"], a["user"], a["ok"]) for a in auth],
                [("XOAUTH2", USERNAME, True)], "AUTH XOAUTH2")
    check(TOKEN not in outbox.log_text(), "token never logged")
    relay.stop()


def test_silence_after_data_is_unknown():
    """No reply to the end of DATA: the relay may have the message, so the
    row is held as unknown and not sent again."""
    directory = workdir()
    relay = Relay(directory, script=[{"data_silence": True}])
    outbox = Outbox(directory, [smtp(relay, timeout_seconds=3)],
                    retry=FAST_RETRY)
    row_id = invoice(outbox, 903)
    outbox.drain()
    row = outbox.row(row_id)
    check_equal(row["status"], "held", "status")
    check_equal(row["last_error_kind"], "timeout_after_data", "error kind")
    check_equal(len(relay.events("data")), 1, "DATA sent once")
    relay.stop()


def test_silence_after_rcpt_retries():
    """No reply to RCPT TO: no message went over, so the attempt is a
    timeout to retry, and the next transaction delivers it once."""
    directory = workdir()
    relay = Relay(directory, script=[{"rcpt_silence": True}])
    outbox = Outbox(directory, [smtp(relay, timeout_seconds=3)],
                    retry=FAST_RETRY)
    row_id = invoice(outbox, 902)
    started = time.monotonic()
    check_equal(outbox.drain(), 0, "drain exit code")
    elapsed = time.monotonic() - started
    row = outbox.row(row_id)
    check_equal(row["status"], "sent", "status")
    attempts = outbox.attempts(row_id)
    check_equal([(a["outcome"], a["error_kind"]) for a in attempts],
                [("retry", "timeout"), ("sent", None)], "attempts")
    check(attempts and "timed out" in (attempts[0]["error"] or ""),
          f"libcurl's text in the attempt: {attempts[:1]}")
    check(3 <= elapsed < 15, f"the timeout took about 3 s: {elapsed:.1f} s")
    check_equal(len(relay.events("data")), 1, "DATA sent once")
    relay.stop()


def test_checks_before_sending():
    """A line break in the subject and a message over max_message_bytes
    fail before any SMTP session."""
    directory = workdir()
    relay = Relay(directory)
    outbox = Outbox(directory, [smtp(relay, max_message_bytes=5000)])
    injected = invoice(outbox, 1501,
                       subject="Mahnung 3\r\nBcc: sammler@example.net")
    large = invoice(outbox, 2)
    outbox.attach(large, "scan.pdf", "application/pdf", PDF)
    check_equal(outbox.drain(), 0, "drain exit code")
    row = outbox.row(injected)
    check_equal(row["status"], "failed", "injected status")
    check_equal(row["last_error_kind"], "invalid_header_value", "kind")
    row = outbox.row(large)
    check_equal(row["status"], "failed", "large status")
    check_equal(row["last_error_kind"], "message_too_large", "kind")
    check("at most 5000 (max_message_bytes)" in (row["last_error"] or ""),
          f"error text names the limit: {row['last_error']}")
    check_equal(relay.events(), [], "no SMTP session")
    relay.stop()


def test_one_transaction_for_to_cc_bcc():
    """Two to, three cc and one bcc: one MAIL FROM, six RCPT TO, one DATA,
    and the bcc address nowhere in DATA."""
    directory = workdir()
    relay = Relay(directory)
    outbox = Outbox(directory, [smtp(relay)])
    row_id = invoice(outbox, 302,
                     recipients="a.meier@example.org, b.schulz@example.org",
                     cc="einkauf@example.org, lager@example.org, "
                        "chef@example.org",
                     bcc="archiv@example.com", subject="Angebot 2025-117")
    check_equal(outbox.drain(), 0, "drain exit code")
    check_equal(outbox.row(row_id)["status"], "sent", "status")
    check_equal(len(relay.events("mail")), 1, "MAIL FROM commands")
    check_equal(len(relay.events("rcpt")), 6, "RCPT TO commands")
    messages = relay.messages()
    check_equal(len(messages), 1, "DATA commands")
    if messages:
        event, raw, message = messages[0]
        check_equal(len(message["To"].addresses), 2, "To addresses")
        check_equal(len(message["Cc"].addresses), 3, "Cc addresses")
        check(message["Bcc"] is None, "no Bcc header")
        check(b"archiv@example.com" not in raw, "bcc address not in DATA")
    relay.stop()


def test_encoded_word_subject_is_literal():
    """A subject that looks like an encoded CR LF is sent as literal text,
    with one RCPT TO and no Bcc header."""
    directory = workdir()
    relay = Relay(directory)
    outbox = Outbox(directory, [smtp(relay)])
    subject = "=?UTF-8?Q?Hallo=0D=0ABcc:_sammler@example.net?="
    row_id = invoice(outbox, 1509, subject=subject)
    check_equal(outbox.drain(), 0, "drain exit code")
    check_equal(outbox.row(row_id)["status"], "sent", "status")
    check_equal(len(relay.events("rcpt")), 1, "RCPT TO commands")
    messages = relay.messages()
    check_equal(len(messages), 1, "DATA commands")
    if messages:
        message = messages[0][2]
        check_equal(str(message["Subject"]), subject, "subject as written")
        check(message["Bcc"] is None, "no Bcc header")
    relay.stop()


def main():
    test_done_means()
    test_one_transaction_for_to_cc_bcc()
    test_throttled_then_accepted()
    test_unknown_recipient_fails()
    test_bad_password_pauses_provider()
    test_basic_auth_turned_off()
    test_oauth2_token()
    test_silence_after_data_is_unknown()
    test_silence_after_rcpt_retries()
    test_checks_before_sending()
    test_encoded_word_subject_is_literal()
    finish()


if __name__ == "__main__":
    main()
