"""End to end through Amazon SES v2's API: outboxd --drain against the npm
package aws-ses-v2-local on 127.0.0.1, whose store must match the row, and
against the mock provider with canned SES error responses.

tools/setup installs aws-ses-v2-local into tests/node. The peer checks
only that an AWS Authorization header is present, not the signature, and
it keeps neither EmailTags nor ConfigurationSetName. The tags are
therefore checked in the requests that the mock provider logs, and the
signature is checked by test_ses.c.
"""

import base64
import email
import email.policy
import json
import os
import re
import subprocess
import time
import urllib.request

from harness import (Mock, Outbox, check, check_equal, finish, run_guarded,
                     workdir)

SOURCE_DIR = os.environ.get("OUTBOX_SOURCE_DIR",
                            os.path.join(os.path.dirname(__file__), ".."))
PEER_CLI = os.path.join(SOURCE_DIR, "tests", "node", "node_modules",
                        "aws-ses-v2-local", "dist", "cli.js")
KEY_ID = "AKIDOUTBOXE2E"
SECRET = "e2e/Secret+Key-never-logged-0123456789"
FAST_RETRY = {"base_delay_seconds": 1, "max_delay_seconds": 2,
              "jitter": 0, "max_attempts": 3}

# Random-looking but fixed bytes, so a failure can be reproduced.
PDF = b"%PDF-1.4\n" + bytes((i * 7 + 3) % 256 for i in range(60000)) \
    + b"\n%%EOF\n"
PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4


class SesPeer:
    """aws-ses-v2-local started on 127.0.0.1 with a port of its own."""

    def __init__(self):
        if not os.path.exists(PEER_CLI):
            raise RuntimeError(f"{PEER_CLI} is missing: run tools/setup, "
                               f"which installs tests/node with npm ci")
        self.process = subprocess.Popen(
            ["node", PEER_CLI, "--host", "127.0.0.1", "--port", "0"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        deadline = time.time() + 30
        self.url = None
        while self.url is None:
            line = self.process.stdout.readline()
            if not line or time.time() > deadline:
                self.process.kill()
                raise RuntimeError("aws-ses-v2-local did not start")
            found = re.search(r"server running at http://[^:]+:(\d+)", line)
            if found:
                self.url = f"http://127.0.0.1:{found.group(1)}"

    def emails(self):
        with urllib.request.urlopen(f"{self.url}/store", timeout=10) as f:
            return json.load(f)["emails"]

    def stop(self):
        self.process.terminate()
        self.process.wait(timeout=10)


def ses(url, name="ses", **extra):
    provider = {"name": name, "type": "ses", "region": "eu-central-1",
                "base_url": url, "access_key_id": KEY_ID,
                "secret_access_key": SECRET, "timeout_seconds": 10,
                "connect_timeout_seconds": 2}
    provider.update(extra)
    return provider


def parse_addresses(text):
    """Reads an address header value with Python's email package, which
    decodes RFC 2047 display names; returns [(name, address)]."""
    message = email.message_from_string(f"To: {text}\n\n",
                                        policy=email.policy.default)
    return [(a.display_name, a.addr_spec) for a in message["To"].addresses]


def decode_header_value(text):
    message = email.message_from_string(f"X: {text}\n\n",
                                        policy=email.policy.default)
    return str(message["X"])


def invoice(outbox, number, **extra):
    columns = dict(sender='"Beispiel GmbH, Buchhaltung" <billing@example.com>',
                   recipients='"Meier, Anna" <a.meier@example.org>',
                   subject=f"Rechnung {number} – März ✓",
                   body_text="Guten Tag,\nanbei die Rechnung.\n",
                   reference=f"INV-{number}", provider="ses")
    columns.update(extra)
    return outbox.insert(**columns)


def check_done_means_message(stored):
    """The message with a PDF, a non-ASCII subject and a display name
    with a comma, as the peer stored it from Simple content."""
    check_equal(parse_addresses(stored["from"]),
                [("Beispiel GmbH, Buchhaltung", "billing@example.com")],
                "from")
    destination = stored["destination"]
    to = [parse_addresses(a)[0] for a in destination["to"]]
    check_equal(to, [("Meier, Anna", "a.meier@example.org"),
                     ("Jürgen Groß", "j.gross@example.de")], "to")
    check_equal(destination["cc"], ["einkauf@example.org"], "cc")
    check_equal(destination["bcc"], ["archiv@example.com"], "bcc")
    check_equal(stored["replyTo"], ["Support <help@example.com>"],
                "reply-to")
    check_equal(stored["subject"], "Rechnung 4711 – März ✓", "subject")
    check_equal(stored["body"]["text"], "Guten Tag,\nanbei die Rechnung.\n",
                "text body")
    check_equal(stored["body"]["html"], '<p>Guten Tag</p><img src="cid:logo">',
                "html body")

    attachments = {a["filename"]: a for a in stored["attachments"]}
    pdf = attachments.get("Rechnung-4711.pdf", {})
    check_equal(base64.b64decode(pdf.get("content", "")), PDF, "PDF bytes")
    check_equal(pdf.get("contentType"), "application/pdf", "PDF type")
    check_equal(pdf.get("contentDisposition"), "ATTACHMENT", "PDF placement")
    logo = attachments.get("logo.png", {})
    check_equal(base64.b64decode(logo.get("content", "")), PNG, "PNG bytes")
    check_equal((logo.get("contentDisposition"), logo.get("contentId")),
                ("INLINE", "logo"), "inline image")

    headers = {h["name"]: h["value"] for h in stored.get("headers") or []}
    check_equal(headers.get("List-Unsubscribe"), "<https://example.com/u/1>",
                "List-Unsubscribe")
    check_equal(decode_header_value(headers.get("X-Kostenstelle", "")),
                "Küche 4", "non-ASCII header, decoded")
    check(all(v.isascii() for v in headers.values()),
          f"header values are ASCII: {headers}")


def test_message_arrives_intact():
    """A PDF attachment, a non-ASCII subject and a display name with a
    comma, with cc, bcc, reply-to, an inline image and extra headers:
    aws-ses-v2-local stores all of it as the row has it."""
    directory = workdir()
    peer = SesPeer()
    outbox = Outbox(directory, [ses(peer.url)])
    row_id = invoice(
        outbox, 4711,
        recipients='"Meier, Anna" <a.meier@example.org>, '
                   'Jürgen Groß <j.gross@example.de>',
        cc="einkauf@example.org", bcc="archiv@example.com",
        reply_to="Support <help@example.com>",
        subject="Rechnung 4711 – März ✓",
        body_html='<p>Guten Tag</p><img src="cid:logo">',
        headers=json.dumps({"List-Unsubscribe": "<https://example.com/u/1>",
                            "X-Kostenstelle": "Küche 4"}),
        metadata=json.dumps({"belegnr": 4711}))
    outbox.attach(row_id, "Rechnung-4711.pdf", "application/pdf", PDF)
    outbox.attach(row_id, "logo.png", "image/png", PNG, content_id="logo")
    check_equal(outbox.drain(), 0, "drain exit code")

    emails = peer.emails()
    check_equal(len(emails), 1, "messages stored by the peer")
    row = outbox.row(row_id)
    check_equal(row["status"], "sent", "status")
    check_equal(row["attempts"], 1, "attempts")
    if emails:
        check_equal(row["provider_message_id"], emails[0]["messageId"],
                    "provider_message_id is the peer's MessageId")
        check_done_means_message(emails[0])
    attempts = outbox.attempts(row_id)
    check_equal([(a["outcome"], a["status_code"]) for a in attempts],
                [("sent", 200)], "attempt history")
    check(SECRET not in outbox.log_text(), "secret key never logged")
    peer.stop()


def test_raw_message_arrives_intact():
    """More than 15 extra headers: Raw MIME content, which the peer parses
    with mailparser. Bcc goes in Destination only, never in the MIME."""
    directory = workdir()
    peer = SesPeer()
    outbox = Outbox(directory, [ses(peer.url)])
    headers = {f"X-Erp-Feld-{i}": f"Wert {i}" for i in range(16)}
    row_id = invoice(outbox, 4712, cc="einkauf@example.org",
                     bcc="archiv@example.com",
                     headers=json.dumps(headers))
    outbox.attach(row_id, "Rechnung-4712.pdf", "application/pdf", PDF)
    check_equal(outbox.drain(), 0, "drain exit code")

    emails = peer.emails()
    check_equal(len(emails), 1, "messages stored by the peer")
    row = outbox.row(row_id)
    check_equal(row["status"], "sent", "status")
    if not emails:
        peer.stop()
        return
    stored = emails[0]
    check_equal(row["provider_message_id"], stored["messageId"],
                "provider_message_id")
    check_equal(parse_addresses(stored["from"]),
                [("Beispiel GmbH, Buchhaltung", "billing@example.com")],
                "from, parsed from the MIME")
    check_equal(parse_addresses(stored["destination"]["to"][0]),
                [("Meier, Anna", "a.meier@example.org")], "to")
    check_equal(stored["destination"]["cc"], ["einkauf@example.org"], "cc")
    # The peer reads Raw recipients from the MIME headers only, where Bcc
    # never appears; SES takes them from Destination.
    check_equal(stored["destination"]["bcc"], [], "no Bcc in the MIME")
    check_equal(stored["subject"], "Rechnung 4712 – März ✓", "subject")
    check_equal(stored["body"]["text"].strip(), "Guten Tag,\nanbei die "
                "Rechnung.", "text body")
    pdf = [a for a in stored["attachments"]
           if a.get("filename") == "Rechnung-4712.pdf"]
    check_equal(len(pdf), 1, "PDF attachment")
    if pdf:
        check_equal(base64.b64decode(pdf[0]["content"]), PDF, "PDF bytes")
    peer.stop()


def test_one_request_for_to_cc_bcc():
    """To, Cc and Bcc go out in one SendEmail call."""
    directory = workdir()
    peer = SesPeer()
    outbox = Outbox(directory, [ses(peer.url)])
    row_id = invoice(outbox, 303,
                     recipients="a.meier@example.org, b.schulz@example.org",
                     cc="einkauf@example.org, lager@example.org, "
                        "chef@example.org",
                     bcc="archiv@example.com", subject="Angebot 2025-117")
    check_equal(outbox.drain(), 0, "drain exit code")
    emails = peer.emails()
    check_equal(len(emails), 1, "one SendEmail call")
    if emails:
        destination = emails[0]["destination"]
        check_equal([len(destination[k]) for k in ("to", "cc", "bcc")],
                    [2, 3, 1], "To 2 / Cc 3 / Bcc 1")
    check_equal(outbox.row(row_id)["status"], "sent", "status")
    peer.stop()


def test_credentials_from_environment():
    """Without credential keys, the standard AWS variables sign."""
    directory = workdir()
    peer = SesPeer()
    provider = ses(peer.url)
    del provider["access_key_id"]
    del provider["secret_access_key"]
    outbox = Outbox(directory, [provider])
    row_id = invoice(outbox, 90)
    env = {"AWS_ACCESS_KEY_ID": KEY_ID, "AWS_SECRET_ACCESS_KEY": SECRET,
           "AWS_SESSION_TOKEN": "e2e-session-token"}
    check_equal(outbox.drain(env=env), 0, "drain exit code")
    check_equal(outbox.row(row_id)["status"], "sent", "status")
    check_equal(len(peer.emails()), 1, "messages stored by the peer")
    check("e2e-session-token" not in outbox.log_text(),
          "session token never logged")
    peer.stop()


CANNED = {
    "ok": ("200", "Content-Type: application/json",
           '{"MessageId":"0102018e-0000-4000-8000-{n}-000000"}'),
    "rate": ("429", "Content-Type: application/json\n"
                    "x-amzn-ErrorType: TooManyRequestsException",
             '{"message":"Maximum sending rate exceeded."}'),
    "quota": ("400", "Content-Type: application/json\n"
                     "x-amzn-ErrorType: ThrottlingException",
              '{"message":"Daily message quota exceeded."}'),
    "paused": ("400", "Content-Type: application/json\n"
                      "x-amzn-ErrorType: SendingPausedException",
               '{"message":"Sending is paused for this account."}'),
    "rejected": ("400", "Content-Type: application/json\n"
                        "x-amzn-ErrorType: MessageRejected",
                 '{"message":"Email address is not verified. The following '
                 'identities failed the check in region EU-CENTRAL-1: '
                 'billing@example.com"}'),
    "length": ("400", "Content-Type: application/json\n"
                      "x-amzn-ErrorType: BadRequestException",
               '{"message":"Message length is more than 41943040 bytes '
               'long: \'43046806\'."}'),
}


def canned_mock(directory, script="", default="@ok"):
    responses = os.path.join(directory, "responses")
    os.makedirs(responses, exist_ok=True)
    for name, (status, headers, body) in CANNED.items():
        with open(os.path.join(responses, name), "w") as f:
            f.write(f"{status}\n{headers}\n\n{body}")
    return Mock(directory, script=script, default=default,
                extra=["--responses", responses])


def test_throttling_and_quota():
    """Rows 401-410: three accepted, three rate limited, two over the daily
    quota, then accepted. No row fails, each has one accepted request, and
    no request follows a 429 within a second."""
    directory = workdir()
    mock = canned_mock(directory, script="@ok,@ok,@ok,@rate,@rate,@rate,"
                                         "@quota,@quota")
    outbox = Outbox(directory, [ses(mock.url, quota_retry_seconds=2)],
                    concurrency=1, claim_batch=1,
                    retry=dict(FAST_RETRY, max_attempts=1))
    ids = [invoice(outbox, 400 + n) for n in range(1, 11)]
    check_equal(outbox.drain(timeout=120), 0, "drain exit code")

    requests = mock.requests()
    check_equal(len(requests), 15, "requests made")
    gaps = 0
    for i, request in enumerate(requests):
        check_equal(request["path"], "/v2/email/outbound-emails", "path")
        check(request["headers"].get("authorization", "").startswith(
            f"AWS4-HMAC-SHA256 Credential={KEY_ID}/"),
            f"request {i + 1} is signed with SigV4")
        if request["answer"] == "@rate" and i + 1 < len(requests):
            gap = requests[i + 1]["received_at"] - request["received_at"]
            check(gap >= 1.0, f"no request within 1 s of a 429: {gap:.2f}s")
            gaps += 1
        # The quota pauses the provider for quota_retry_seconds (2 s).
        if request["answer"] == "@quota" and i + 1 < len(requests):
            gap = requests[i + 1]["received_at"] - request["received_at"]
            check(gap >= 2.0, f"no request within 2 s of a spent quota: "
                              f"{gap:.2f}s")
            gaps += 1
    check_equal(gaps, 5, "throttle responses followed by a request")

    kinds = []
    for row_id in ids:
        row = outbox.row(row_id)
        check_equal(row["status"], "sent", f"row {row_id} status")
        attempts = outbox.attempts(row_id)
        outcomes = [a["outcome"] for a in attempts]
        check_equal(outcomes.count("sent"), 1, f"row {row_id} accepted once")
        for attempt in attempts:
            if attempt["outcome"] == "retry":
                kinds.append(attempt["error_kind"])
                check(attempt["error"] in (
                    "HTTP 429 TooManyRequestsException: Maximum sending "
                    "rate exceeded.",
                    "HTTP 400 ThrottlingException: Daily message quota "
                    "exceeded."), f"error text: {attempt['error']}")
    check_equal(sorted(kinds), ["quota_exceeded"] * 2 + ["rate_limited"] * 3,
                "throttled attempts")
    ids_stored = {outbox.row(i)["provider_message_id"] for i in ids}
    check_equal(len(ids_stored), 10, "a MessageId per row")
    mock.stop()


def test_quota_waits_configured_delay():
    """A daily quota response keeps the row in retry for
    quota_retry_seconds, without using up an attempt."""
    directory = workdir()
    mock = canned_mock(directory, default="@quota")
    outbox = Outbox(directory, [ses(mock.url)],
                    retry=dict(FAST_RETRY, max_attempts=1))
    row_id = invoice(outbox, 407)
    process = outbox.start()
    deadline = time.time() + 20
    while time.time() < deadline and not outbox.attempts(row_id):
        time.sleep(0.2)
    time.sleep(0.5)
    process.terminate()
    process.wait(timeout=10)
    row = outbox.row(row_id)
    check_equal(row["status"], "retrying", "status")
    check_equal(row["last_error_kind"], "quota_exceeded", "error kind")
    check_equal(row["last_error"], "HTTP 400 ThrottlingException: Daily "
                "message quota exceeded.", "error text as received")
    delay = outbox.query("SELECT strftime('%s', next_attempt_at) - "
                         "strftime('%s', 'now') AS d FROM outbox "
                         "WHERE id = ?", row_id)[0]["d"]
    check(delay is not None and delay >= 590,
          f"next attempt at least 10 min away: {delay}s")
    mock.stop()


def test_rejected_and_paused():
    """MessageRejected fails the row with SES's text; SendingPaused pauses
    the provider and keeps the rows queued."""
    directory = workdir()
    mock = canned_mock(directory, default="@rejected")
    outbox = Outbox(directory, [ses(mock.url)], retry=FAST_RETRY)
    row_id = invoice(outbox, 20)
    check_equal(outbox.drain(), 0, "drain exit code")
    row = outbox.row(row_id)
    check_equal(row["status"], "failed", "rejected status")
    check_equal(row["last_error_kind"], "provider_rejected", "error kind")
    check("HTTP 400 MessageRejected: Email address is not verified."
          in (row["last_error"] or ""), f"last_error: {row['last_error']}")
    mock.stop()

    directory = workdir()
    mock = canned_mock(directory, default="@paused")
    outbox = Outbox(directory, [ses(mock.url)], concurrency=1,
                    retry=FAST_RETRY)
    ids = [invoice(outbox, n) for n in range(21, 24)]
    check_equal(outbox.drain(), 3, "drain exit code of a paused provider")
    check_equal(len(mock.requests()), 1, "requests before the pause")
    for row_id in ids:
        check_equal(outbox.row(row_id)["status"], "queued",
                    f"row {row_id} status")
    check_equal(outbox.row(ids[0])["last_error_kind"], "sending_paused",
                "error kind")
    mock.stop()


def test_tags_and_request_shape():
    """EmailTags carry the outbox id and the metadata; the configuration
    set is named. The peer does not keep these, so the mock's log shows
    them."""
    directory = workdir()
    mock = canned_mock(directory)
    outbox = Outbox(directory, [ses(mock.url, configuration_set="erp")])
    row_id = invoice(outbox, 1101, metadata=json.dumps(
        {"belegnr": 4711, "kunde": "Müller & Söhne"}))
    check_equal(outbox.drain(), 0, "drain exit code")
    requests = mock.requests()
    check_equal(len(requests), 1, "requests made")
    body = json.loads(requests[0]["body"]) if requests else {}
    tags = body.get("EmailTags", [])
    check_equal(tags[:2], [{"Name": "outbox_id", "Value": str(row_id)},
                           {"Name": "belegnr", "Value": "4711"}], "tags")
    encoded = [t["Value"] for t in tags if t["Name"] == "kunde_b64"]
    check_equal([base64.urlsafe_b64decode(v + "=" * (-len(v) % 4)).decode()
                 for v in encoded], ["Müller & Söhne"], "base64url tag")
    check_equal(body.get("ConfigurationSetName"), "erp", "configuration set")
    row = outbox.row(row_id)
    check_equal(row["provider_message_id"],
                "0102018e-0000-4000-8000-1-000000", "provider_message_id")
    mock.stop()


def test_size_caps():
    """Over 40 MiB once encoded: failed before any request. With the check
    off, SES's "Message length" response fails the row the same way."""
    directory = workdir()
    mock = canned_mock(directory, default="@length")
    outbox = Outbox(directory, [ses(mock.url),
                                ses(mock.url, name="ses_unchecked",
                                    max_message_bytes=0)],
                    default_provider="ses")
    big = invoice(outbox, 805)
    outbox.attach(big, "scan_30MiB.pdf", "application/pdf",
                  os.urandom(30 * 1024 * 1024))
    unchecked = invoice(outbox, 806, provider="ses_unchecked")
    outbox.attach(unchecked, "scan.pdf", "application/pdf", PDF)
    check_equal(outbox.drain(timeout=120), 0, "drain exit code")

    row = outbox.row(big)
    check_equal(row["status"], "failed", "status before sending")
    check_equal(row["last_error_kind"], "message_too_large", "error kind")
    check("bytes encoded" in (row["last_error"] or "")
          and "over the SES cap of 41943040 bytes" in row["last_error"],
          f"error names size and cap: {row['last_error']}")
    row = outbox.row(unchecked)
    check_equal(row["status"], "failed", "status from the response")
    check_equal(row["last_error_kind"], "message_too_large", "error kind")
    requests = mock.requests()
    check_equal(len(requests), 1, "only the unchecked row made a request")
    mock.stop()


def test_large_attachment_accepted():
    """24 MiB of attachment: Simple content sends it base64-encoded once,
    so the request stays under 40 MB, and SES's 200 makes the row sent."""
    directory = workdir()
    mock = canned_mock(directory)
    outbox = Outbox(directory, [ses(mock.url)])
    row_id = invoice(outbox, 802)
    scan = os.urandom(24 * 1024 * 1024)
    outbox.attach(row_id, "scan_24MiB.pdf", "application/pdf", scan)
    check_equal(outbox.drain(timeout=120), 0, "drain exit code")
    row = outbox.row(row_id)
    check_equal(row["status"], "sent", "status")
    requests = mock.requests()
    check_equal(len(requests), 1, "requests made")
    if requests:
        length = int(requests[0]["headers"].get("content-length", "0"))
        check(33554432 < length < 40000000,
              f"request body of {length} bytes is under 40 MB")
        body = json.loads(requests[0]["body"])
        attachment = body["Content"]["Simple"]["Attachments"][0]
        check(base64.b64decode(attachment["RawContent"]) == scan,
              "attachment bytes arrive intact")
    mock.stop()


def test_template_rendered_by_peer():
    """aws-ses-v2-local renders a stored template with the row's
    template_data, and keeps the row's attachment and header."""
    directory = workdir()
    peer = SesPeer()
    template = {"TemplateName": "invoice-v2", "TemplateContent": {
        "Subject": "Rechnung {{invoice}} – März",
        "Text": "Summe {{total}} für {{kunde}}",
        "Html": "<p>{{invoice}}: {{#each items}}{{sku}} {{/each}}</p>"}}
    request = urllib.request.Request(
        f"{peer.url}/v2/email/templates", data=json.dumps(template).encode(),
        headers={"Content-Type": "application/json",
                 "Authorization": "AWS4-HMAC-SHA256 Credential=e2e"})
    with urllib.request.urlopen(request, timeout=10) as f:
        check_equal(f.status, 200, "template created")
    outbox = Outbox(directory, [ses(peer.url)])
    data = {"invoice": "RE-4711", "total": "119.00", "kunde": "Müller",
            "items": [{"sku": "A-1"}, {"sku": "B-2"}]}
    row_id = invoice(outbox, 1211, body_text=None, subject=None,
                     template="invoice-v2", template_data=json.dumps(data),
                     headers=json.dumps({"X-Kostenstelle": "Küche 4"}))
    outbox.attach(row_id, "Rechnung-4711.pdf", "application/pdf", PDF)
    check_equal(outbox.drain(), 0, "drain exit code")

    emails = peer.emails()
    check_equal(len(emails), 1, "messages stored by the peer")
    row = outbox.row(row_id)
    check_equal(row["status"], "sent", "status")
    if emails:
        stored = emails[0]
        check_equal(row["provider_message_id"], stored["messageId"],
                    "provider_message_id is the peer's MessageId")
        check_equal(parse_addresses(stored["from"]),
                    [("Beispiel GmbH, Buchhaltung", "billing@example.com")],
                    "from")
        check_equal(stored["subject"], "Rechnung RE-4711 – März",
                    "rendered subject")
        check_equal(stored["body"], {"text": "Summe 119.00 für Müller",
                                     "html": "<p>RE-4711: A-1 B-2 </p>"},
                    "rendered bodies")
        check_equal([(a["filename"], base64.b64decode(a["content"]))
                     for a in stored["attachments"]],
                    [("Rechnung-4711.pdf", PDF)], "attachment")
        headers = {h["name"]: h["value"] for h in stored.get("headers") or []}
        check_equal(decode_header_value(headers.get("X-Kostenstelle", "")),
                    "Küche 4", "header, decoded")
    peer.stop()


def test_template():
    """A row that names a template goes out as Template content with its
    data as a JSON string, its header and its attachment. A row with more
    headers than Template content can carry fails before any request."""
    directory = workdir()
    mock = canned_mock(directory)
    outbox = Outbox(directory, [ses(mock.url)], concurrency=1,
                    claim_batch=1)
    data = {"invoice": "RE-4711", "total": 12.5, "kunde": "Müller"}
    row_id = invoice(outbox, 1201, body_text=None, subject=None,
                     template="invoice-v2", template_data=json.dumps(data),
                     headers=json.dumps({"X-ERP-Document": "RE-4711"}))
    outbox.attach(row_id, "rechnung.pdf", "application/pdf", PDF)
    bare = invoice(outbox, 1202, body_text=None, template="welcome")
    crowded = invoice(outbox, 1203, body_text=None, template="invoice-v2",
                      headers=json.dumps({f"X-Extra-{i}": "v"
                                          for i in range(16)}))
    check_equal(outbox.drain(), 0, "drain exit code")

    requests = mock.requests()
    check_equal(len(requests), 2, "requests made")
    bodies = [json.loads(r["body"]) for r in requests]
    content = bodies[0].get("Content", {}) if bodies else {}
    check_equal(list(content), ["Template"], "content type")
    template = content.get("Template", {})
    attachments = template.pop("Attachments", [])
    data_text = template.pop("TemplateData", "{}")
    check_equal(json.loads(data_text), data, "TemplateData")
    check_equal(template, {
        "TemplateName": "invoice-v2",
        "Headers": [{"Name": "X-ERP-Document", "Value": "RE-4711"}]},
        "Template content")
    check_equal([(a.get("FileName"), base64.b64decode(a.get("RawContent")))
                 for a in attachments], [("rechnung.pdf", PDF)],
                "attachment")
    second = bodies[1].get("Content", {}) if len(bodies) > 1 else {}
    check_equal(second, {"Template": {"TemplateName": "welcome",
                                      "TemplateData": "{}"}},
                "template without data")
    check_equal([outbox.row(i)["status"] for i in (row_id, bare)],
                ["sent", "sent"], "statuses")
    row = outbox.row(crowded)
    check_equal(row["status"], "failed", "crowded row status")
    check_equal(row["last_error_kind"], "invalid_template", "error kind")
    check_equal(row["last_error"],
                'template "invoice-v2": SES Template content cannot carry '
                'more than 15 extra headers; send the row with body_text '
                'or body_html instead', "last_error")
    mock.stop()


for test in (test_message_arrives_intact, test_raw_message_arrives_intact,
             test_one_request_for_to_cc_bcc,
             test_credentials_from_environment, test_throttling_and_quota,
             test_quota_waits_configured_delay, test_rejected_and_paused,
             test_tags_and_request_shape, test_size_caps,
             test_large_attachment_accepted, test_template,
             test_template_rendered_by_peer):
    run_guarded(test)
finish()
