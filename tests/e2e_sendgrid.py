"""End to end through SendGrid's API on a mock provider: what each response
does to the row, the attempt history and the requests that were made."""

import base64
import json
import time

from harness import (API_KEY, Mock, Outbox, check, check_equal, finish,
                     sendgrid, workdir)

FAST_RETRY = {"base_delay_seconds": 1, "max_delay_seconds": 2,
              "jitter": 0, "max_attempts": 3}


def invoice(outbox, number, **extra):
    columns = dict(sender="Buchhaltung <billing@example.com>",
                   recipients="kunde@example.org",
                   subject=f"Rechnung {number}",
                   body_text="Anbei Ihre Rechnung.",
                   reference=f"INV-{number}", message_key=f"inv-{number}")
    columns.update(extra)
    return outbox.insert(**columns)


def test_accepted():
    """202: the row is sent with the provider's id, one request each."""
    directory = workdir()
    mock = Mock(directory)
    outbox = Outbox(directory, [sendgrid(mock.url)])
    ids = [invoice(outbox, n) for n in (1, 2, 3)]
    check_equal(outbox.drain(), 0, "drain exit code")

    requests = mock.requests()
    check_equal(len(requests), 3, "requests made")
    seen_ids = set()
    for request in requests:
        check_equal(request["method"], "POST", "method")
        check_equal(request["path"], "/v3/mail/send", "path")
        check_equal(request["headers"].get("authorization"),
                    f"Bearer {API_KEY}", "authorization header")
        body = json.loads(request["body"])
        seen_ids.add(body["personalizations"][0]["custom_args"]["outbox_id"])
        check_equal(body["from"], {"email": "billing@example.com",
                                   "name": "Buchhaltung"}, "from")
    check_equal(seen_ids, {str(i) for i in ids}, "outbox ids sent")

    provider_ids = set()
    for row_id in ids:
        row = outbox.row(row_id)
        check_equal(row["status"], "sent", f"row {row_id} status")
        check_equal(row["attempts"], 1, f"row {row_id} attempts")
        check(row["sent_at"] is not None, f"row {row_id} sent_at is set")
        check(row["message_id"] is not None, f"row {row_id} message_id")
        provider_ids.add(row["provider_message_id"])
        attempts = outbox.attempts(row_id)
        check_equal(len(attempts), 1, f"row {row_id} attempt rows")
        check_equal(attempts[0]["outcome"], "sent", "attempt outcome")
        check_equal(attempts[0]["status_code"], 202, "attempt status code")
    check_equal(provider_ids, {"mock-1", "mock-2", "mock-3"},
                "provider message ids")

    status = outbox.query("SELECT status, provider_message_id "
                          "FROM delivery_status WHERE reference = 'INV-2'")
    check_equal(status[0]["status"], "sent", "delivery_status for INV-2")
    check(API_KEY not in outbox.log_text(), "API key never logged")
    mock.stop()


def test_invoice_arrives_intact():
    """A PDF attachment, a non-ASCII subject and display names with a
    comma reach SendGrid unchanged."""
    directory = workdir()
    mock = Mock(directory)
    outbox = Outbox(directory, [sendgrid(mock.url)])
    pdf = b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n" + bytes(range(256)) + b"\n%%EOF\n"
    row_id = invoice(outbox, 42,
                     sender='"Muster GmbH, Buchhaltung" <billing@example.com>',
                     recipients='"Meier, Anna" <anna.meier@example.org>',
                     subject="Rechnung für März – Nr. 42")
    outbox.attach(row_id, "Rechnung 42.pdf", "application/pdf", pdf)
    check_equal(outbox.drain(), 0, "drain exit code")

    requests = mock.requests()
    check_equal(len(requests), 1, "requests made")
    body = json.loads(requests[0]["body"]) if requests else {}
    check_equal(body.get("subject"), "Rechnung für März – Nr. 42", "subject")
    check_equal(body.get("from"), {"email": "billing@example.com",
                                   "name": "Muster GmbH, Buchhaltung"},
                "from")
    check_equal(body.get("personalizations", [{}])[0].get("to"),
                [{"email": "anna.meier@example.org",
                  "name": '"Meier, Anna"'}],
                "to, the name quoted as SendGrid requires for a comma")
    attachments = body.get("attachments", [])
    check_equal(len(attachments), 1, "attachments")
    if attachments:
        check_equal(attachments[0]["filename"], "Rechnung 42.pdf", "filename")
        check_equal(attachments[0]["type"], "application/pdf", "type")
        check_equal(base64.b64decode(attachments[0]["content"]), pdf,
                    "PDF bytes")
    check_equal(outbox.row(row_id)["status"], "sent", "status")
    mock.stop()


def test_rejected():
    """400: the message fails with the provider's text; no retry."""
    directory = workdir()
    mock = Mock(directory, script="400")
    outbox = Outbox(directory, [sendgrid(mock.url)], retry=FAST_RETRY)
    row_id = invoice(outbox, 10)
    check_equal(outbox.drain(), 0, "drain exit code")
    row = outbox.row(row_id)
    check_equal(row["status"], "failed", "status")
    check_equal(row["last_error_kind"], "provider_validation", "error kind")
    check("from: The from email does not contain a valid address."
          in (row["last_error"] or ""), f"last_error: {row['last_error']}")
    check_equal(len(mock.requests()), 1, "requests made")
    check_equal(outbox.attempts(row_id)[0]["status_code"], 400, "status code")
    mock.stop()


def test_bad_key_pauses_provider():
    """401: every message stays queued; the drain stops with exit code 3."""
    directory = workdir()
    mock = Mock(directory, default="401")
    outbox = Outbox(directory, [sendgrid(mock.url)], concurrency=1,
                    retry=FAST_RETRY)
    ids = [invoice(outbox, n) for n in range(20, 25)]
    check_equal(outbox.drain(), 3, "drain exit code")
    check_equal(len(mock.requests()), 1, "requests before the pause")
    for row_id in ids:
        row = outbox.row(row_id)
        check_equal(row["status"], "queued", f"row {row_id} status")
    first = outbox.row(ids[0])
    check_equal(first["last_error_kind"], "provider_auth", "error kind")
    stuck = outbox.query("SELECT reason FROM outbox_stuck WHERE id = ?",
                         ids[0])
    check(stuck and "paused" in stuck[0]["reason"],
          f"outbox_stuck shows the pause: {stuck}")
    check(API_KEY not in outbox.log_text(), "API key never logged")
    mock.stop()


def test_rate_limited_then_accepted():
    """429 with Retry-After: the next attempt waits, and 429 does not count
    toward max_attempts."""
    directory = workdir()
    mock = Mock(directory, script="429:retry-after=2,429:retry-after=1,"
                                  "429:retry-after=1,202")
    outbox = Outbox(directory, [sendgrid(mock.url)],
                    retry=dict(FAST_RETRY, max_attempts=1))
    row_id = invoice(outbox, 30)
    check_equal(outbox.drain(), 0, "drain exit code")
    row = outbox.row(row_id)
    check_equal(row["status"], "sent", "status")
    check_equal(row["attempts"], 4, "attempts")
    requests = mock.requests()
    check_equal(len(requests), 4, "requests made")
    if len(requests) == 4:
        gap = requests[1]["received_at"] - requests[0]["received_at"]
        check(gap >= 1.9, f"second request waited for Retry-After: {gap:.2f}s")
    kinds = [a["error_kind"] for a in outbox.attempts(row_id)]
    check_equal(kinds, ["rate_limited"] * 3 + [None], "attempt error kinds")
    mock.stop()


def test_server_errors_retry_with_backoff():
    """A dropped connection and 503 retry; after the last attempt, failed."""
    directory = workdir()
    mock = Mock(directory, script="close,503,202")
    outbox = Outbox(directory, [sendgrid(mock.url)], retry=FAST_RETRY)
    sent_id = invoice(outbox, 40)
    check_equal(outbox.drain(), 0, "drain exit code")
    attempts = outbox.attempts(sent_id)
    check_equal([a["outcome"] for a in attempts], ["retry", "retry", "sent"],
                "attempt outcomes")
    check_equal([a["error_kind"] for a in attempts],
                ["network", "provider_unavailable", None], "error kinds")
    check_equal(outbox.row(sent_id)["status"], "sent", "status")
    mock.stop()

    directory = workdir()
    mock = Mock(directory, default="503")
    outbox = Outbox(directory, [sendgrid(mock.url)], retry=FAST_RETRY)
    failed_id = invoice(outbox, 41)
    started = time.time()
    check_equal(outbox.drain(), 0, "drain exit code")
    elapsed = time.time() - started
    row = outbox.row(failed_id)
    check_equal(row["status"], "failed", "status after max_attempts")
    check_equal(row["last_error_kind"], "retries_exhausted", "error kind")
    check_equal(row["attempts"], 3, "attempts")
    check_equal(len(mock.requests()), 3, "requests made")
    # Backoff 1 s then 2 s, without jitter.
    check(elapsed >= 3.0, f"backoff waited 1 s + 2 s: {elapsed:.1f}s")
    mock.stop()


def test_resend_on_reused_connection_recorded():
    """A reused connection that closes without a response makes libcurl send
    the request again: the attempt row records it."""
    directory = workdir()
    mock = Mock(directory, script="202,close,202")
    outbox = Outbox(directory, [sendgrid(mock.url)], concurrency=1,
                    claim_batch=1)
    first = invoice(outbox, 45)
    second = invoice(outbox, 46)
    check_equal(outbox.drain(), 0, "drain exit code")
    check_equal(len(mock.requests()), 3, "requests the mock saw")
    check_equal(outbox.row(first)["status"], "sent", "first row status")
    row = outbox.row(second)
    check_equal(row["status"], "sent", "second row status")
    attempts = outbox.attempts(second)
    check_equal(len(attempts), 1, "one attempt")
    check_equal(attempts[0]["error_kind"], "resent", "attempt error kind")
    check("2 times" in (attempts[0]["error"] or ""),
          f"attempt error text: {attempts[0]['error']}")
    mock.stop()


def test_timeout_retries():
    """A provider that does not respond in time: retry, then sent."""
    directory = workdir()
    mock = Mock(directory, script="slow=3000:202,202")
    outbox = Outbox(directory, [sendgrid(mock.url, timeout_seconds=1)],
                    retry=FAST_RETRY)
    row_id = invoice(outbox, 50)
    check_equal(outbox.drain(), 0, "drain exit code")
    attempts = outbox.attempts(row_id)
    check_equal([a["error_kind"] for a in attempts], ["timeout", None],
                "error kinds")
    check_equal(outbox.row(row_id)["status"], "sent", "status")
    mock.stop()


def test_metadata_as_strings():
    """Metadata values reach custom_args as strings; keys that SendGrid's
    events override are prefixed."""
    directory = workdir()
    mock = Mock(directory)
    outbox = Outbox(directory, [sendgrid(mock.url)])
    row_id = invoice(outbox, 1101, metadata=json.dumps(
        {"belegnr": 4711, "event": "mahnung",
         "email": "intern@example.com"}))
    check_equal(outbox.drain(), 0, "drain exit code")
    body = json.loads(mock.requests()[0]["body"])
    custom_args = body["personalizations"][0]["custom_args"]
    check_equal(custom_args, {"outbox_id": str(row_id), "belegnr": "4711",
                              "erp_event": "mahnung",
                              "erp_email": "intern@example.com"},
                "custom_args")
    check_equal(outbox.row(row_id)["status"], "sent", "status")
    mock.stop()


def test_one_request_for_to_cc_bcc():
    """To, Cc and Bcc go out in one request, each address once."""
    directory = workdir()
    mock = Mock(directory)
    outbox = Outbox(directory, [sendgrid(mock.url)])
    first = invoice(outbox, 301,
                    recipients="a.meier@example.org, b.schulz@example.org",
                    cc="einkauf@example.org, lager@example.org, "
                       "chef@example.org",
                    bcc="archiv@example.com", subject="Angebot 2025-117")
    second = invoice(outbox, 306,
                     recipients="a.meier@example.org, Einkauf@Example.org",
                     cc="einkauf@example.org, lager@example.org",
                     subject="Angebot 2025-118")
    check_equal(outbox.drain(), 0, "drain exit code")
    bodies = {json.loads(r["body"])["personalizations"][0]["custom_args"]
              ["outbox_id"]: json.loads(r["body"]) for r in mock.requests()}
    check_equal(len(bodies), 2, "one request per row")
    one = bodies.get(str(first), {}).get("personalizations", [{}])[0]
    check_equal(len(one.get("to", [])), 2, "to count")
    check_equal(len(one.get("cc", [])), 3, "cc count")
    check_equal(one.get("bcc"), [{"email": "archiv@example.com"}], "bcc")
    two = bodies.get(str(second), {}).get("personalizations", [{}])[0]
    check_equal([a["email"] for a in two.get("to", [])],
                ["a.meier@example.org", "Einkauf@Example.org"], "to, deduped")
    check_equal([a["email"] for a in two.get("cc", [])],
                ["lager@example.org"], "cc without the repeat")
    mock.stop()


def test_dynamic_template():
    """A row that names a template and no body goes out with template_id
    and dynamic_template_data; the file provider fails such a row."""
    directory = workdir()
    mock = Mock(directory)
    outbox = Outbox(directory, [sendgrid(mock.url),
                                {"name": "files", "type": "file",
                                 "folder": f"{directory}/mail"}],
                    default_provider="sendgrid")
    data = {"invoice": "RE-4711", "total": 12.5, "items": [{"sku": "A-1"}]}
    row_id = invoice(outbox, 1201, body_text=None, subject=None,
                     template="d-13b8f94f", template_data=json.dumps(data))
    file_row = invoice(outbox, 1202, provider="files", template="invoice")
    check_equal(outbox.drain(), 0, "drain exit code")
    requests = mock.requests()
    check_equal(len(requests), 1, "requests")
    body = json.loads(requests[0]["body"]) if requests else {}
    check_equal(body.get("template_id"), "d-13b8f94f", "template_id")
    check_equal(body.get("personalizations", [{}])[0]
                .get("dynamic_template_data"), data, "dynamic_template_data")
    check("content" not in body and "subject" not in body,
          f"no content and no subject in {body}")
    check_equal(outbox.row(row_id)["status"], "sent", "template row status")
    failed = outbox.row(file_row)
    check_equal(failed["status"], "failed", "file row status")
    check_equal(failed["last_error"],
                "template: provider \"files\" (type file) does not render "
                "templates; write body_text or body_html instead",
                "file row last_error")
    mock.stop()


test_accepted()
test_invoice_arrives_intact()
test_dynamic_template()
test_rejected()
test_bad_key_pauses_provider()
test_rate_limited_then_accepted()
test_server_errors_retry_with_backoff()
test_resend_on_reused_connection_recorded()
test_timeout_retries()
test_metadata_as_strings()
test_one_request_for_to_cc_bcc()
finish()
