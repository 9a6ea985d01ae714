"""End to end through Mailgun's Messages API on the mock provider, which
plays Mailgun with canned responses. The multipart/form-data request it
received is parsed with Python's email package, independently of libcurl,
and each field is compared with the row."""

import base64
import json
import time
from datetime import datetime, timezone
from email import policy
from email.parser import BytesParser

from harness import Mock, Outbox, check, check_equal, finish, workdir

MAILGUN_KEY = "key-mailgun-test-never-logged-5678"
DOMAIN = "mg.example.com"
FAST_RETRY = {"base_delay_seconds": 1, "max_delay_seconds": 2,
              "jitter": 0, "max_attempts": 5}

RESPONSES = {
    "ok": "200\nContent-Type: application/json\n\n"
          '{"id":"<20250305100000.{n}@mg.example.com>",'
          '"message":"Queued. Thank you."}',
    "bad_address": "400\nContent-Type: application/json\n\n"
                   '{"message":"\'to\' parameter is not a valid address. '
                   'please check documentation"}',
    "forbidden": "401\nContent-Type: text/plain\n\nForbidden",
    "not_found": "404\nContent-Type: application/json\n\n"
                 '{"message":"Domain not found: mg.example.com"}',
    "rate_120": "429\nContent-Type: application/json\nRetry-After: 120\n\n"
                '{"message":"Too many requests"}',
}

# A small PDF with bytes that are not UTF-8, a NUL and both line ends.
PDF = (b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\r\n" + bytes(range(256))
       + b"\n%%EOF\r\n")
PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR"


def mailgun(url, **extra):
    provider = {"name": "mailgun", "type": "mailgun", "domain": DOMAIN,
                "base_url": url, "api_key": MAILGUN_KEY,
                "timeout_seconds": 5, "connect_timeout_seconds": 2}
    provider.update(extra)
    return provider


def form_fields(request):
    """Returns the form fields of a logged request as a list of
    (name, filename, content type or None, value bytes)."""
    if "body_base64" in request:
        body = base64.b64decode(request["body_base64"])
    else:
        body = request["body"].encode()
    head = f"Content-Type: {request['headers']['content-type']}\r\n\r\n"
    message = BytesParser(policy=policy.HTTP).parsebytes(head.encode()
                                                         + body)
    check(message.is_multipart(), "the body is multipart")
    check_equal(message.get_content_type(), "multipart/form-data",
                "request content type")
    fields = []
    for part in message.iter_parts():
        check_equal(part.get_content_disposition(), "form-data",
                    "part disposition")
        fields.append((part.get_param("name", header="content-disposition"),
                       part.get_filename(), part["content-type"],
                       part.get_payload(decode=True)))
    return fields


def values(fields, name):
    """Returns the text values of every field called name."""
    return [value.decode() for n, _, _, value in fields if n == name]


def invoice(outbox, number, **extra):
    columns = dict(sender="Buchhaltung <billing@example.com>",
                   recipients="kunde@example.org",
                   subject=f"Rechnung {number}",
                   body_text="Anbei Ihre Rechnung.",
                   reference=f"INV-{number}", message_key=f"inv-{number}")
    columns.update(extra)
    return outbox.insert(**columns)


def check_secret_kept(outbox):
    check(MAILGUN_KEY not in outbox.log_text(), "API key never logged")
    dump = json.dumps(outbox.query("SELECT * FROM outbox")
                      + outbox.query("SELECT * FROM delivery_attempt"))
    check(MAILGUN_KEY not in dump, "API key not in the database")


def test_invoice_arrives_intact():
    """A PDF attachment, a non-ASCII subject and a display name with a
    comma arrive intact, with every other field of the row."""
    directory = workdir()
    mock = Mock(directory, default="@ok", responses=RESPONSES)
    outbox = Outbox(directory, [mailgun(mock.url)])
    subject = "Rechnung 42 \u2013 M\u00fcller & S\u00f6hne, M\u00e4rz"
    row_id = invoice(
        outbox, 42, sender="\"Beispiel GmbH, Buchhaltung\" "
                           "<billing@example.com>",
        recipients="\"Meier, Anna\" <anna.meier@example.org>, "
                   "J\u00fcrgen Gro\u00df <j.gross@example.de>",
        cc="einkauf@example.org", bcc="archiv@example.com",
        reply_to="Support <help@example.com>", subject=subject,
        body_text="Guten Tag,\nanbei Rechnung 42.",
        body_html="<p>Guten Tag</p><img src=\"cid:logo\">",
        headers=json.dumps({"X-ERP-Document": "INV-42"}),
        metadata=json.dumps({"customer": 1017, "storno": False}))
    outbox.attach(row_id, "Rechnung-42.pdf", "application/pdf", PDF)
    outbox.attach(row_id, "logo.png", "image/png", PNG, content_id="logo")
    check_equal(outbox.drain(), 0, "drain exit code")

    row = outbox.row(row_id)
    check_equal(row["status"], "sent", "status")
    check_equal(row["provider_message_id"],
                "20250305100000.1@mg.example.com", "id without <>")
    attempts = outbox.attempts(row_id)
    check_equal([a["status_code"] for a in attempts], [200], "status codes")

    requests = mock.requests()
    check_equal(len(requests), 1, "requests made")
    request = requests[0]
    check_equal(request["path"], f"/v3/{DOMAIN}/messages", "path")
    credentials = base64.b64encode(f"api:{MAILGUN_KEY}".encode()).decode()
    check_equal(request["headers"].get("authorization"),
                f"Basic {credentials}", "authorization header")
    fields = form_fields(request)
    plain = [(n, v.decode()) for n, f, t, v in fields if f is None]
    check(all(t is None for _, f, t, _ in fields if f is None),
          "plain fields carry no content type")
    check_equal(plain, [
        ("from", "\"Beispiel GmbH, Buchhaltung\" <billing@example.com>"),
        ("to", "\"Meier, Anna\" <anna.meier@example.org>"),
        ("to", "J\u00fcrgen Gro\u00df <j.gross@example.de>"),
        ("cc", "einkauf@example.org"),
        ("bcc", "archiv@example.com"),
        ("subject", subject),
        ("text", "Guten Tag,\nanbei Rechnung 42."),
        ("html", "<p>Guten Tag</p><img src=\"cid:logo\">"),
        ("h:Reply-To", "Support <help@example.com>"),
        ("h:X-ERP-Document", "INV-42"),
        ("h:Message-Id", f"<{row['message_id']}>"),
        ("v:outbox_id", str(row_id)),
        ("v:customer", "1017"),
        ("v:storno", "false"),
    ], "plain fields")
    files = [(n, f, t, v) for n, f, t, v in fields if f is not None]
    check_equal(files, [
        ("attachment", "Rechnung-42.pdf", "application/pdf", PDF),
        ("inline", "logo", "image/png", PNG),
    ], "file parts")
    check_secret_kept(outbox)
    mock.stop()


def test_one_request_for_to_cc_bcc():
    """To, Cc and Bcc go out in one request, each address once."""
    directory = workdir()
    mock = Mock(directory, default="@ok", responses=RESPONSES)
    outbox = Outbox(directory, [mailgun(mock.url)])
    row_id = invoice(outbox, 304,
                     recipients="a.meier@example.org, b.schulz@example.org",
                     cc="einkauf@example.org, lager@example.org, "
                        "chef@example.org, A.Meier@example.org",
                     bcc="archiv@example.com", subject="Angebot 2025-117")
    check_equal(outbox.drain(), 0, "drain exit code")
    requests = mock.requests()
    check_equal(len(requests), 1, "one request for the row")
    fields = form_fields(requests[0]) if requests else []
    check_equal(values(fields, "to"),
                ["a.meier@example.org", "b.schulz@example.org"], "to")
    check_equal(values(fields, "cc"), ["einkauf@example.org",
                                       "lager@example.org",
                                       "chef@example.org"], "cc")
    check_equal(values(fields, "bcc"), ["archiv@example.com"], "bcc")
    row = outbox.row(row_id)
    check_equal(row["status"], "sent", "status")
    check_equal(row["provider_message_id"],
                "20250305100000.1@mg.example.com", "one provider id")
    mock.stop()


def test_rejected():
    """400: the message fails with Mailgun's text; no retry."""
    directory = workdir()
    mock = Mock(directory, default="@bad_address", responses=RESPONSES)
    outbox = Outbox(directory, [mailgun(mock.url)], retry=FAST_RETRY)
    row_id = invoice(outbox, 10)
    check_equal(outbox.drain(), 0, "drain exit code")
    row = outbox.row(row_id)
    check_equal(row["status"], "failed", "status")
    check_equal(row["last_error_kind"], "provider_validation", "error kind")
    check_equal(row["last_error"], "HTTP 400: 'to' parameter is not a "
                "valid address. please check documentation", "last_error")
    check_equal(len(mock.requests()), 1, "requests made")
    mock.stop()


def test_bad_key_pauses_provider():
    """401: every message stays queued; the drain stops with exit code 3."""
    directory = workdir()
    mock = Mock(directory, default="@forbidden", responses=RESPONSES)
    outbox = Outbox(directory, [mailgun(mock.url)], concurrency=1,
                    retry=FAST_RETRY)
    ids = [invoice(outbox, n) for n in range(20, 24)]
    check_equal(outbox.drain(), 3, "drain exit code")
    check_equal(len(mock.requests()), 1, "requests before the pause")
    for row_id in ids:
        check_equal(outbox.row(row_id)["status"], "queued",
                    f"row {row_id} status")
    first = outbox.row(ids[0])
    check_equal(first["last_error_kind"], "provider_auth", "error kind")
    check_equal(first["last_error"],
                "HTTP 401: Forbidden; check the API key and \"region\"",
                "last_error")
    check_secret_kept(outbox)
    mock.stop()


def test_not_found_pauses_after_three():
    """404 retries twice; the third 404 in a row pauses the provider."""
    directory = workdir()
    mock = Mock(directory, default="@not_found", responses=RESPONSES)
    outbox = Outbox(directory, [mailgun(mock.url)], concurrency=1,
                    retry=FAST_RETRY)
    row_id = invoice(outbox, 30)
    check_equal(outbox.drain(), 3, "drain exit code")
    check_equal(len(mock.requests()), 3, "requests made")
    attempts = outbox.attempts(row_id)
    check_equal([a["outcome"] for a in attempts],
                ["retry", "retry", "misconfigured"], "attempt outcomes")
    check_equal([a["error_kind"] for a in attempts],
                ["provider_not_found"] * 3, "attempt error kinds")
    row = outbox.row(row_id)
    check_equal(row["status"], "queued", "status while paused")
    check("check \"domain\", \"region\" and \"base_url\""
          in row["last_error"], f"last_error: {row['last_error']}")
    mock.stop()


def parse_time(text):
    return datetime.strptime(text, "%Y-%m-%d %H:%M:%S").replace(
        tzinfo=timezone.utc).timestamp()


def test_rate_limited_waits_retry_after():
    """429 with Retry-After: 120: the next attempt is 120 s later, and the
    attempt does not count toward max_attempts."""
    directory = workdir()
    mock = Mock(directory, default="@rate_120", responses=RESPONSES)
    outbox = Outbox(directory, [mailgun(mock.url)], retry=FAST_RETRY)
    row_id = invoice(outbox, 502)
    daemon = outbox.start()
    deadline = time.monotonic() + 60
    while (time.monotonic() < deadline
           and outbox.row(row_id)["status"] != "retrying"):
        time.sleep(0.05)
    daemon.terminate()
    check_equal(daemon.wait(timeout=30), 0, "outboxd exit code")

    row = outbox.row(row_id)
    attempts = outbox.attempts(row_id)
    check_equal(row["status"], "retrying", "status")
    check_equal(row["last_error_kind"], "rate_limited", "error kind")
    check_equal(len(attempts), 1, "attempt rows")
    if attempts and row["next_attempt_at"]:
        wait = (parse_time(row["next_attempt_at"])
                - parse_time(attempts[0]["finished_at"]))
        check(119 <= wait <= 121, f"next attempt after {wait} s")
        check_equal(attempts[0]["counted"], 0, "429 not counted")
    check_equal(len(mock.requests()), 1, "requests made")
    mock.stop()


def test_retry_then_sent():
    """503 retries, then the next response is accepted."""
    directory = workdir()
    mock = Mock(directory, script="503", default="@ok", responses=RESPONSES)
    outbox = Outbox(directory, [mailgun(mock.url)], retry=FAST_RETRY)
    row_id = invoice(outbox, 40)
    check_equal(outbox.drain(), 0, "drain exit code")
    attempts = outbox.attempts(row_id)
    check_equal([a["error_kind"] for a in attempts],
                ["provider_unavailable", None], "error kinds")
    row = outbox.row(row_id)
    check_equal(row["status"], "sent", "status")
    check_equal(row["provider_message_id"],
                "20250305100000.2@mg.example.com", "id of the second request")
    mock.stop()


def test_resend_rewinds_the_form():
    """A reused connection that closes without a response makes libcurl
    send the request again: the form is read again from its start."""
    directory = workdir()
    mock = Mock(directory, script="@ok,close", default="@ok",
                responses=RESPONSES)
    outbox = Outbox(directory, [mailgun(mock.url)], concurrency=1,
                    claim_batch=1)
    first = invoice(outbox, 45)
    second = invoice(outbox, 46)
    outbox.attach(second, "Rechnung-46.pdf", "application/pdf", PDF)
    check_equal(outbox.drain(), 0, "drain exit code")
    requests = mock.requests()
    check_equal(len(requests), 3, "requests the mock saw")
    check_equal(outbox.row(first)["status"], "sent", "first row status")
    row = outbox.row(second)
    check_equal(row["status"], "sent", "second row status")
    check_equal(outbox.attempts(second)[0]["error_kind"], "resent",
                "attempt error kind")
    if len(requests) == 3:
        check_equal(requests[2].get("body_base64"),
                    requests[1].get("body_base64"), "resent body")
        fields = form_fields(requests[2])
        check_equal(values(fields, "v:outbox_id"), [str(second)],
                    "outbox id of the resent request")
        check_equal([v for n, _, _, v in fields if n == "attachment"],
                    [PDF], "attachment of the resent request")
    mock.stop()


def test_too_large():
    """A 20 MiB attachment passes the 25 MB cap, and Mailgun's nginx
    responds 413 with HTML: failed, message_too_large, the page cut to
    1 KB. Under a lower max_message_bytes, the row fails before any
    request."""
    directory = workdir()
    mock = Mock(directory, default="413", responses=RESPONSES)
    outbox = Outbox(directory, [mailgun(mock.url)])
    scan = bytes(range(256)) * (20 * 1024 * 1024 // 256)
    row_id = invoice(outbox, 804)
    outbox.attach(row_id, "scan_20MiB.pdf", "application/pdf", scan)
    check_equal(outbox.drain(), 0, "drain exit code")
    row = outbox.row(row_id)
    check_equal(row["status"], "failed", "status")
    check_equal(row["last_error_kind"], "message_too_large", "error kind")
    check(row["last_error"].startswith("HTTP 413: <html>"),
          f"last_error: {row['last_error'][:80]}")
    check(len(row["last_error"].encode()) <= 1024, "last_error up to 1 KB")
    requests = mock.requests()
    check_equal(len(requests), 1, "requests made")
    if requests:
        check(int(requests[0]["headers"]["content-length"]) > len(scan),
              "the whole attachment was sent")
    mock.stop()

    directory = workdir()
    mock = Mock(directory, default="@ok", responses=RESPONSES)
    outbox = Outbox(directory, [mailgun(mock.url,
                                        max_message_bytes=1000000)])
    row_id = invoice(outbox, 805)
    outbox.attach(row_id, "scan_1MiB.pdf", "application/pdf",
                  scan[:1024 * 1024])
    check_equal(outbox.drain(), 0, "drain exit code")
    row = outbox.row(row_id)
    check_equal(row["status"], "failed", "status")
    check_equal(row["last_error_kind"], "message_too_large", "error kind")
    check("over the Mailgun cap of 1000000 bytes" in row["last_error"],
          f"last_error: {row['last_error']}")
    check_equal(len(mock.requests()), 0, "no request")
    mock.stop()


def test_line_break_in_subject():
    """CR LF in the subject fails the row before any request."""
    directory = workdir()
    mock = Mock(directory, default="@ok", responses=RESPONSES)
    outbox = Outbox(directory, [mailgun(mock.url)])
    row_id = invoice(outbox, 1501,
                     subject="Mahnung 3\r\nBcc: sammler@example.net")
    check_equal(outbox.drain(), 0, "drain exit code")
    row = outbox.row(row_id)
    check_equal(row["status"], "failed", "status")
    check_equal(row["last_error_kind"], "invalid_header_value", "error kind")
    check_equal(len(mock.requests()), 0, "no request")
    mock.stop()


def test_template():
    """A row that names a template sends the template field and its data
    as t:variables, without text or html; the attachment goes with it."""
    directory = workdir()
    mock = Mock(directory, default="@ok", responses=RESPONSES)
    outbox = Outbox(directory, [mailgun(mock.url)], concurrency=1,
                    claim_batch=1)
    data = {"invoice": "RE-4711", "total": 12.5, "kunde": "M\u00fcller"}
    data_text = json.dumps(data, ensure_ascii=False)
    row_id = invoice(outbox, 1201, body_text=None, subject=None,
                     template="invoice-reminder", template_data=data_text)
    outbox.attach(row_id, "Rechnung-42.pdf", "application/pdf", PDF)
    titled = invoice(outbox, 1202, body_text=None, template="welcome")
    check_equal(outbox.drain(), 0, "drain exit code")

    requests = mock.requests()
    check_equal(len(requests), 2, "requests made")
    fields = form_fields(requests[0]) if requests else []
    check_equal([(n, f, t) for n, f, t, _ in fields], [
        ("from", None, None), ("to", None, None),
        ("template", None, None), ("t:variables", None, None),
        ("h:Message-Id", None, None), ("v:outbox_id", None, None),
        ("attachment", "Rechnung-42.pdf", "application/pdf")],
        "field names")
    check_equal(values(fields, "template"), ["invoice-reminder"], "template")
    check_equal(values(fields, "t:variables"), [data_text], "t:variables")
    check_equal([v for n, _, _, v in fields if n == "attachment"], [PDF],
                "attachment bytes")

    second = form_fields(requests[1]) if len(requests) > 1 else []
    check_equal(values(second, "subject"), ["Rechnung 1202"],
                "subject of the row")
    check_equal(values(second, "template"), ["welcome"], "second template")
    check_equal([n for n, _, _, _ in second if n in ("text", "html",
                                                     "t:variables")],
                [], "no text, html or t:variables")
    check_equal([outbox.row(i)["status"] for i in (row_id, titled)],
                ["sent", "sent"], "statuses")
    mock.stop()


test_invoice_arrives_intact()
test_template()
test_one_request_for_to_cc_bcc()
test_rejected()
test_bad_key_pauses_provider()
test_not_found_pauses_after_three()
test_rate_limited_waits_retry_after()
test_retry_then_sent()
test_resend_rewinds_the_form()
test_too_large()
test_line_break_in_subject()
finish()
