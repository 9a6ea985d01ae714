"""End to end through Postmark's email API, imitated by the mock provider
with canned responses: what each response does to the row, the attempt
history and the requests that were made."""

import base64
import json
import os
import subprocess

from harness import (API_KEY, OUTBOXD, Mock, Outbox, check, check_equal,
                     finish, workdir)

FAST_RETRY = {"base_delay_seconds": 1, "max_delay_seconds": 2,
              "jitter": 0, "max_attempts": 3}


def canned(status, body, content_type="application/json", headers=()):
    lines = [str(status), f"Content-Type: {content_type}"]
    lines += list(headers)
    return "\n".join(lines) + "\n\n" + body


RESPONSES = {
    "ok": canned(200, '{"To":"kunde@example.org","SubmittedAt":'
                      '"2025-03-05T10:00:00Z","MessageID":"pm-{n}",'
                      '"ErrorCode":0,"Message":"OK"}'),
    "inactive": canned(422, '{"ErrorCode":406,"Message":"Recipient marked '
                            'inactive: bounced-before@example.org."}'),
    "metadata": canned(422, '{"ErrorCode":300,"Message":"Metadata key '
                            '\'erp_document_reference_nr\' is longer than '
                            'allowed."}'),
    "skipped": canned(200, '{"To":"ok@example.org, inactive@example.org",'
                           '"SubmittedAt":"2025-03-05T10:00:00Z",'
                           '"MessageID":'
                           '"b7bc2f4a-e38e-4336-af7d-e6c392c2f817",'
                           '"ErrorCode":0,"Message":"Message accepted; '
                           'inactive recipients skipped: '
                           'inactive@example.org"}'),
    "maintenance": canned(503, "<html>maintenance</html>", "text/html"),
    "token": canned(401, '{"ErrorCode":10,"Message":"Missing or invalid '
                         'server token."}'),
    "sender": canned(422, '{"ErrorCode":400,"Message":"The \'From\' '
                          'address you supplied is not a Sender '
                          'Signature on your account."}'),
    "edge": canned(403, "<html><head><title>403 Forbidden</title></head>"
                        "<body>Request blocked.</body></html>",
                   "text/html"),
    "rate": canned(429, '{"ErrorCode":429,"Message":"Rate limit '
                        'exceeded."}', headers=["Retry-After: 2"]),
}

PDF = (b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<< /Type /Catalog >>\nendobj\n"
       + bytes(range(256)) * 20 + b"\n%%EOF\n")
PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(200))


def postmark(url, name="postmark", **extra):
    provider = {"name": name, "type": "postmark", "base_url": url,
                "api_key": API_KEY, "timeout_seconds": 5,
                "connect_timeout_seconds": 2}
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


def bodies_by_outbox_id(mock):
    bodies = {}
    for request in mock.requests():
        body = json.loads(request["body"])
        bodies.setdefault(body["Metadata"]["outbox_id"], []).append(body)
    return bodies


def test_invoice_arrives_intact():
    """A PDF, an inline image, a non-ASCII subject and a display name with
    a comma reach Postmark exactly as the row contains them."""
    directory = workdir()
    mock = Mock(directory, default="@ok", responses=RESPONSES)
    outbox = Outbox(directory, [postmark(mock.url)])
    subject = "Rechnung 42 f\u00fcr M\u00e4rz \u2013 \u00dcbersicht"
    row_id = invoice(outbox, 42, subject=subject,
                     sender="\"Beispiel GmbH, Buchhaltung\" "
                            "<billing@example.com>",
                     recipients="\"Meier, Anna\" <anna.meier@example.org>",
                     cc="J\u00fcrgen Gro\u00df <einkauf@example.org>",
                     bcc="archiv@example.com",
                     reply_to="Support <help@example.com>",
                     body_html="<p>Rechnung 42</p><img src=\"cid:logo\">",
                     headers=json.dumps({"X-ERP-Document": "INV-42"}),
                     metadata=json.dumps({"customer": 1017}))
    outbox.attach(row_id, "invoice-42.pdf", "application/pdf", PDF)
    outbox.attach(row_id, "logo.png", "image/png", PNG, content_id="logo")
    check_equal(outbox.drain(), 0, "drain exit code")

    requests = mock.requests()
    check_equal(len(requests), 1, "requests made")
    request = requests[0]
    check_equal(request["method"], "POST", "method")
    check_equal(request["path"], "/email", "path")
    check_equal(request["headers"].get("content-type"), "application/json",
                "content type")
    body = json.loads(request["body"])
    row = outbox.row(row_id)
    attachments = body.pop("Attachments", [])
    check_equal(body, {
        "From": "\"Beispiel GmbH, Buchhaltung\" <billing@example.com>",
        "To": "\"Meier, Anna\" <anna.meier@example.org>",
        "Cc": "J\u00fcrgen Gro\u00df <einkauf@example.org>",
        "Bcc": "archiv@example.com",
        "ReplyTo": "Support <help@example.com>",
        "Subject": subject,
        "TextBody": "Anbei Ihre Rechnung.",
        "HtmlBody": "<p>Rechnung 42</p><img src=\"cid:logo\">",
        "Headers": [{"Name": "X-ERP-Document", "Value": "INV-42"},
                    {"Name": "Message-ID",
                     "Value": f"<{row['message_id']}>"}],
        "Metadata": {"outbox_id": str(row_id), "customer": "1017"},
        "MessageStream": "outbound"}, "request body without attachments")
    check_equal(len(attachments), 2, "attachments")
    if len(attachments) == 2:
        pdf, png = attachments
        check_equal(base64.b64decode(pdf["Content"]), PDF, "PDF bytes")
        check_equal({k: v for k, v in pdf.items() if k != "Content"},
                    {"Name": "invoice-42.pdf",
                     "ContentType": "application/pdf"}, "PDF fields")
        check_equal(base64.b64decode(png["Content"]), PNG, "image bytes")
        check_equal({k: v for k, v in png.items() if k != "Content"},
                    {"Name": "logo.png", "ContentType": "image/png",
                     "ContentID": "cid:logo"}, "image fields")

    check_equal(row["status"], "sent", "status")
    check_equal(row["attempts"], 1, "attempts")
    check_equal(row["provider_message_id"], "pm-1", "provider message id")
    attempts = outbox.attempts(row_id)
    check_equal([(a["outcome"], a["status_code"]) for a in attempts],
                [("sent", 200)], "attempt history")
    check(API_KEY not in outbox.log_text(), "server token never logged")
    mock.stop()


def test_error_codes():
    """Postmark's ErrorCodes: an inactive recipient and an invalid request
    fail the row, a partial acceptance is sent, a maintenance page
    retries, and an address outboxd rejects never reaches Postmark."""
    directory = workdir()
    mock = Mock(directory, script="@inactive,@metadata,@skipped,"
                                  "@maintenance,@ok",
                default="@ok", responses=RESPONSES)
    outbox = Outbox(directory, [postmark(mock.url)], concurrency=1,
                    claim_batch=1, retry=FAST_RETRY)
    inactive = invoice(outbox, 701,
                       recipients="bounced-before@example.org")
    invalid = invoice(outbox, 702, recipients="kunde@@example.org")
    metadata = invoice(outbox, 703, metadata=json.dumps(
        {"erp_document_reference_nr": "RE-2025-000703"}))
    skipped = invoice(outbox, 704,
                      recipients="ok@example.org, inactive@example.org")
    maintenance = invoice(outbox, 705)
    check_equal(outbox.drain(), 0, "drain exit code")

    bodies = bodies_by_outbox_id(mock)
    check_equal({key: len(value) for key, value in bodies.items()},
                {str(inactive): 1, str(metadata): 1, str(skipped): 1,
                 str(maintenance): 2}, "requests per row")

    row = outbox.row(inactive)
    check_equal((row["status"], row["last_error_kind"], row["attempts"]),
                ("failed", "inactive_recipient", 1), "row 701")
    check_equal(row["last_error"], "HTTP 422: ErrorCode 406: Recipient "
                "marked inactive: bounced-before@example.org.",
                "row 701 error")
    check_equal(row["next_attempt_at"], None, "row 701 is not retried")
    check_equal(outbox.query("SELECT address, reason, outbox_id FROM "
                             "suppression ORDER BY address"),
                [{"address": "bounced-before@example.org",
                  "reason": "inactive_recipient", "outbox_id": inactive},
                 {"address": "inactive@example.org",
                  "reason": "inactive_recipient", "outbox_id": skipped}],
                "the addresses Postmark reports inactive are suppressed")

    row = outbox.row(invalid)
    check_equal((row["status"], row["last_error_kind"]),
                ("failed", "invalid_recipients"), "row 702")

    row = outbox.row(metadata)
    check_equal((row["status"], row["last_error_kind"]),
                ("failed", "provider_validation"), "row 703")
    check("Metadata key 'erp_document_reference_nr' is longer than allowed."
          in (row["last_error"] or ""), f"row 703 error: {row['last_error']}")
    check_equal(row["provider_message_id"], None, "row 703 has no id")

    row = outbox.row(skipped)
    check_equal((row["status"], row["provider_message_id"]),
                ("sent", "b7bc2f4a-e38e-4336-af7d-e6c392c2f817"), "row 704")
    check_equal(bodies.get(str(skipped), [{}])[0].get("To"),
                "ok@example.org, inactive@example.org", "row 704 To")
    attempts = outbox.attempts(skipped)
    check_equal(len(attempts), 1, "row 704 attempts")
    check("inactive recipients skipped: inactive@example.org"
          in (attempts[0]["error"] or ""),
          f"row 704 keeps Postmark's note: {attempts[0]['error']}")
    recipients = outbox.query("SELECT recipient, status FROM "
                              "delivery_recipient WHERE outbox_id = ? "
                              "ORDER BY recipient", skipped)
    check_equal([(r["recipient"], r["status"]) for r in recipients],
                [("inactive@example.org", "suppressed"),
                 ("ok@example.org", "sent")],
                "row 704's recipients: the skipped one is suppressed")

    row = outbox.row(maintenance)
    check_equal(row["status"], "sent", "row 705 status")
    attempts = outbox.attempts(maintenance)
    check_equal([(a["outcome"], a["error_kind"], a["status_code"])
                 for a in attempts],
                [("retry", "provider_unavailable", 503),
                 ("sent", None, 200)], "row 705 attempts")
    check_equal(attempts[0]["error"] if attempts else None,
                "HTTP 503: <html>maintenance</html>", "row 705 error")
    mock.stop()


def test_bad_token_pauses_provider():
    """ErrorCode 10: every message stays queued, and the drain stops with
    exit code 3."""
    directory = workdir()
    mock = Mock(directory, default="@token", responses=RESPONSES)
    outbox = Outbox(directory, [postmark(mock.url)], concurrency=1,
                    retry=FAST_RETRY)
    ids = [invoice(outbox, n) for n in range(706, 710)]
    check_equal(outbox.drain(), 3, "drain exit code")
    check_equal(len(mock.requests()), 1, "requests before the pause")
    for row_id in ids:
        check_equal(outbox.row(row_id)["status"], "queued",
                    f"row {row_id} status")
    first = outbox.row(ids[0])
    check_equal(first["last_error_kind"], "provider_auth", "error kind")
    check_equal(first["attempts"], 1, "attempts")
    stuck = outbox.query("SELECT reason FROM outbox_stuck WHERE id = ?",
                         ids[0])
    check(stuck and "paused" in stuck[0]["reason"],
          f"outbox_stuck shows the pause: {stuck}")
    check(API_KEY not in outbox.log_text(), "server token never logged")
    mock.stop()


def test_sender_signature_pauses_provider():
    """ErrorCode 400: no sender signature for From pauses the provider."""
    directory = workdir()
    mock = Mock(directory, default="@sender", responses=RESPONSES)
    outbox = Outbox(directory, [postmark(mock.url)], retry=FAST_RETRY)
    row_id = invoice(outbox, 710)
    check_equal(outbox.drain(), 3, "drain exit code")
    row = outbox.row(row_id)
    check_equal((row["status"], row["last_error_kind"]),
                ("queued", "provider_forbidden"), "row status and kind")
    mock.stop()


def test_rate_limit_and_edge_block_retry():
    """429 waits for Retry-After without using up an attempt. A 403 page
    from the edge retries and counts."""
    directory = workdir()
    mock = Mock(directory, script="@rate,@edge,@ok", default="@ok",
                responses=RESPONSES)
    outbox = Outbox(directory, [postmark(mock.url)],
                    retry=dict(FAST_RETRY, max_attempts=2))
    row_id = invoice(outbox, 503)
    check_equal(outbox.drain(), 0, "drain exit code")
    requests = mock.requests()
    check_equal(len(requests), 3, "requests made")
    if len(requests) == 3:
        gap = requests[1]["received_at"] - requests[0]["received_at"]
        check(gap >= 1.9, f"second request waited for Retry-After: "
                          f"{gap:.2f}s")
    attempts = outbox.attempts(row_id)
    check_equal([(a["outcome"], a["error_kind"], a["counted"])
                 for a in attempts],
                [("retry", "rate_limited", 0), ("retry", "edge_blocked", 1),
                 ("sent", None, 1)], "attempt history")
    check_equal(outbox.row(row_id)["status"], "sent", "status")
    mock.stop()


def test_limits_fail_before_sending():
    """Over 50 recipients, or over 10 MB after base64: failed with no
    request."""
    directory = workdir()
    mock = Mock(directory, default="@ok", responses=RESPONSES)
    outbox = Outbox(directory, [postmark(mock.url)])
    many = invoice(outbox, 801, recipients=", ".join(
        f"kunde{i}@example.org" for i in range(40)),
        cc=", ".join(f"lager{i}@example.org" for i in range(11)))
    large = invoice(outbox, 803)
    outbox.attach(large, "scan_8MiB.pdf", "application/pdf",
                  os.urandom(8 * 1024 * 1024))
    fits = invoice(outbox, 804, recipients=", ".join(
        f"kunde{i}@example.org" for i in range(50)))
    check_equal(outbox.drain(), 0, "drain exit code")

    bodies = bodies_by_outbox_id(mock)
    check_equal(list(bodies), [str(fits)], "only the row within limits")
    row = outbox.row(many)
    check_equal((row["status"], row["last_error_kind"]),
                ("failed", "limit_exceeded"), "51 recipients")
    check_equal(row["last_error"], "message has 51 recipients (to, cc and "
                "bcc), over the Postmark limit of 50 per message",
                "51 recipients error")
    row = outbox.row(large)
    check_equal((row["status"], row["last_error_kind"]),
                ("failed", "message_too_large"), "8 MiB scan")
    check("over the Postmark limit of 10000000 bytes"
          in (row["last_error"] or ""), f"8 MiB error: {row['last_error']}")
    check_equal(outbox.row(fits)["status"], "sent", "50 recipients")
    mock.stop()


def test_one_request_for_to_cc_bcc():
    """To, Cc and Bcc go out in one request as comma-joined strings, into
    the configured message stream."""
    directory = workdir()
    mock = Mock(directory, default="@ok", responses=RESPONSES)
    outbox = Outbox(directory, [postmark(mock.url,
                                         message_stream="broadcast")])
    row_id = invoice(outbox, 305,
                     recipients="a.meier@example.org, b.schulz@example.org",
                     cc="einkauf@example.org, lager@example.org, "
                        "chef@example.org",
                     bcc="archiv@example.com", subject="Angebot 2025-117")
    check_equal(outbox.drain(), 0, "drain exit code")
    bodies = bodies_by_outbox_id(mock).get(str(row_id), [])
    check_equal(len(bodies), 1, "one request for the row")
    body = bodies[0] if bodies else {}
    check_equal((body.get("To"), body.get("Cc"), body.get("Bcc")),
                ("a.meier@example.org, b.schulz@example.org",
                 "einkauf@example.org, lager@example.org, chef@example.org",
                 "archiv@example.com"), "recipients")
    check_equal(body.get("MessageStream"), "broadcast", "message stream")
    check_equal(outbox.row(row_id)["provider_message_id"], "pm-1",
                "provider message id")
    mock.stop()


def test_config_rejects_misspelled_key():
    """A misspelled key stops outboxd with exit code 2 and names the key,
    so a typo cannot fall back to a default."""
    directory = workdir()
    path = os.path.join(directory, "outboxd.json")
    config = {"database": os.path.join(directory, "outbox.db"),
              "providers": [dict(postmark("http://127.0.0.1:9"),
                                 messagestream="broadcast")]}
    with open(path, "w") as f:
        json.dump(config, f)
    result = subprocess.run([OUTBOXD, "--config", path, "--check-config"],
                            capture_output=True, text=True, timeout=30)
    check_equal(result.returncode, 2, "exit code")
    check('provider "postmark": unknown key "messagestream" for type '
          'postmark' in result.stderr, f"error line: {result.stderr!r}")
    check(API_KEY not in result.stderr, "server token not in the error")


def test_template():
    """A row that names a template and no body goes to /email/withTemplate
    with TemplateAlias, or TemplateId for digits, and TemplateModel. The
    attachment and the headers go with it."""
    directory = workdir()
    mock = Mock(directory, default="@ok", responses=RESPONSES)
    outbox = Outbox(directory, [postmark(mock.url)], concurrency=1,
                    claim_batch=1)
    data = {"invoice": "RE-4711", "total": 12.5, "items": [{"sku": "A-1"}]}
    alias_row = invoice(outbox, 1201, body_text=None, subject=None,
                        template="invoice-reminder",
                        template_data=json.dumps(data),
                        headers=json.dumps({"X-ERP-Document": "RE-4711"}))
    outbox.attach(alias_row, "invoice-42.pdf", "application/pdf", PDF)
    id_row = invoice(outbox, 1202, body_text=None, template="8675309")
    check_equal(outbox.drain(), 0, "drain exit code")

    requests = mock.requests()
    check_equal([r["path"] for r in requests],
                ["/email/withTemplate"] * 2, "paths")
    bodies = bodies_by_outbox_id(mock)
    alias = bodies.get(str(alias_row), [{}])[0]
    attachments = alias.pop("Attachments", [])
    row = outbox.row(alias_row)
    check_equal(alias, {
        "From": "Buchhaltung <billing@example.com>",
        "To": "kunde@example.org",
        "TemplateAlias": "invoice-reminder",
        "TemplateModel": data,
        "Headers": [{"Name": "X-ERP-Document", "Value": "RE-4711"},
                    {"Name": "Message-ID",
                     "Value": f"<{row['message_id']}>"}],
        "Metadata": {"outbox_id": str(alias_row)},
        "MessageStream": "outbound"}, "alias request body")
    check_equal([base64.b64decode(a.get("Content", "")) for a in attachments],
                [PDF], "attachment bytes")

    by_id = bodies.get(str(id_row), [{}])[0]
    check_equal(by_id.get("TemplateId"), 8675309, "TemplateId")
    check_equal(by_id.get("TemplateModel"), {}, "empty TemplateModel")
    check("Subject" not in by_id and "TextBody" not in by_id
          and "TemplateAlias" not in by_id,
          f"no Subject, TextBody or TemplateAlias in {by_id}")
    check_equal([outbox.row(i)["status"] for i in (alias_row, id_row)],
                ["sent", "sent"], "statuses")
    mock.stop()


test_invoice_arrives_intact()
test_template()
test_error_codes()
test_bad_token_pauses_provider()
test_sender_signature_pauses_provider()
test_rate_limit_and_edge_block_retry()
test_limits_fail_before_sending()
test_one_request_for_to_cc_bcc()
test_config_rejects_misspelled_key()
finish()
