"""End to end: provider webhooks. outboxd sends through the mock, the test
posts the provider's signed events to outboxd's listener, and checks the
statuses, the events, the suppression list, and that a suppressed address
is never sent to again. Bad requests get their 4xx and change nothing."""

import base64
import hashlib
import hmac
import http.client
import http.server
import json
import os
import re
import socket
import ssl
import subprocess
import threading
import time

from harness import Mock, Outbox, check, check_equal, finish, sendgrid, \
    wait_for, workdir

MAILGUN_SIGNING_KEY = "mailgun-signing-key-test"
POSTMARK_USER = "outboxd"
POSTMARK_PASSWORD = "hook-password-test"


class SigningKey:
    """A P-256 key made with the openssl command, as SendGrid's is."""

    def __init__(self, directory):
        self.key = os.path.join(directory, "sendgrid-key.pem")
        subprocess.run(["openssl", "ecparam", "-name", "prime256v1",
                        "-genkey", "-noout", "-out", self.key], check=True)
        der = subprocess.run(["openssl", "ec", "-in", self.key, "-pubout",
                              "-outform", "DER"], check=True,
                             capture_output=True).stdout
        self.public_b64 = base64.b64encode(der).decode()

    def sign(self, data):
        result = subprocess.run(["openssl", "dgst", "-sha256", "-sign",
                                 self.key], input=data, check=True,
                                capture_output=True)
        return base64.b64encode(result.stdout).decode()


def listener_port(outbox):
    """Returns the port of the daemon started last, from its log."""
    def find():
        with open(outbox.logs[-1]) as log:
            match = re.search(r"webhooks listening: address=\S+ port=(\d+)",
                              log.read())
        return int(match.group(1)) if match else None
    return wait_for(find, 10, "the webhook listener")


def post(port, path, body, headers):
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    connection.request("POST", path, body=body, headers=headers)
    response = connection.getresponse()
    text = response.read().decode()
    connection.close()
    return response.status, text


def post_sendgrid(port, key, events, timestamp=None, tamper=False):
    return post_sendgrid_body(port, key, json.dumps(events).encode(),
                              timestamp, tamper)


def post_sendgrid_body(port, key, body, timestamp=None, tamper=False):
    """Signs body as SendGrid does and posts it, JSON or not."""
    timestamp = str(int(time.time()) if timestamp is None else timestamp)
    signature = key.sign(timestamp.encode() + body)
    if tamper:
        body = body.replace(b"delivered", b"Delivered", 1)
    return post(port, "/webhooks/sendgrid", body, {
        "Content-Type": "application/json",
        "X-Twilio-Email-Event-Webhook-Signature": signature,
        "X-Twilio-Email-Event-Webhook-Timestamp": timestamp})


def sendgrid_event(kind, email, outbox_id, event_id, message_id=None,
                   **extra):
    event = {"email": email, "timestamp": int(time.time()), "event": kind,
             "sg_event_id": event_id, "outbox_id": str(outbox_id),
             "sg_message_id": f"{message_id or 'mock-x'}.filter0001.1.0"}
    event.update(extra)
    return event


def count(outbox, sql, *args):
    return outbox.query(sql, *args)[0]["n"]


def setup(directory):
    key = SigningKey(directory)
    mock = Mock(directory)
    provider = sendgrid(mock.url, webhook_public_key=key.public_b64)
    postmark = {"name": "postmark", "type": "postmark",
                "base_url": mock.url, "api_key": "pm-test-token",
                "webhook_username": POSTMARK_USER,
                "webhook_password": POSTMARK_PASSWORD,
                "webhook_allow_from": ["127.0.0.1"]}
    # The same Postmark server, allowed only from an address the test
    # never uses.
    elsewhere = dict(postmark, name="postmark_elsewhere",
                     webhook_allow_from=["192.0.2.10"])
    outbox = Outbox(directory, [provider, postmark, elsewhere],
                    default_provider="sendgrid",
                    busy_timeout_ms=300,
                    webhooks={"port": 0, "read_timeout_seconds": 1,
                              "max_body_bytes": 65536})
    return key, mock, outbox


def test_events_update_rows_and_suppress():
    directory = workdir()
    key, mock, outbox = setup(directory)
    daemon = outbox.start()
    port = listener_port(outbox)
    invoice = outbox.insert(sender="billing@example.com",
                            recipients="anna@example.org",
                            cc="bob@example.org", subject="Invoice 42",
                            body_text="Attached.", reference="INV-42")
    wait_for(lambda: outbox.row(invoice)["status"] == "sent", 10,
             "the invoice to be sent")
    message_id = outbox.row(invoice)["provider_message_id"]

    status, _ = post_sendgrid(port, key, [
        sendgrid_event("delivered", "anna@example.org", invoice, "ev-1"),
        sendgrid_event("bounce", "bob@example.org", 0, "ev-2",
                       message_id=message_id, type="bounce",
                       reason="550 5.1.1 unknown user", status="5.1.1"),
        sendgrid_event("open", "anna@example.org", invoice, "ev-3",
                       category=["invoice", "q4"]),
        sendgrid_event("mystery", "anna@example.org", invoice, "ev-4")])
    check_equal(status, 200, "status of a signed batch")
    check_equal(outbox.row(invoice)["status"], "bounced",
                "message status after delivered and bounce")
    check_equal(outbox.query("SELECT recipient, status FROM "
                             "delivery_recipient WHERE outbox_id = ? "
                             "ORDER BY recipient", invoice),
                [{"recipient": "anna@example.org", "status": "delivered"},
                 {"recipient": "bob@example.org", "status": "bounced"}],
                "per-recipient outcomes")
    check_equal(outbox.query("SELECT event_type, outbox_id FROM "
                             "delivery_event ORDER BY id"),
                [{"event_type": "delivered", "outbox_id": invoice},
                 {"event_type": "bounced", "outbox_id": invoice},
                 {"event_type": "opened", "outbox_id": invoice},
                 {"event_type": "other", "outbox_id": invoice}],
                "stored events")
    check_equal(outbox.query("SELECT address, reason FROM suppression"),
                [{"address": "bob@example.org", "reason": "hard_bounce"}],
                "suppression list")

    # Finance's question, as README shows it.
    check_equal(outbox.query("SELECT reference, status, delivered_to_all, "
                             "recipient_status FROM delivery_status "
                             "WHERE reference = 'INV-42'"),
                [{"reference": "INV-42", "status": "bounced",
                  "delivered_to_all": 0,
                  "recipient_status": "anna@example.org delivered; "
                                      "bob@example.org bounced"}],
                "finance's query")

    status, _ = post_sendgrid(port, key, [
        sendgrid_event("delivered", "anna@example.org", invoice, "ev-1")])
    check_equal(status, 200, "status of a resent event")
    check_equal(count(outbox, "SELECT count(*) AS n FROM delivery_event"),
                4, "events after a resend")

    requests_before = len(mock.requests())
    only_bob = outbox.insert(sender="billing@example.com",
                             recipients="Bob@Example.org",
                             subject="Reminder", body_text="Please pay.")
    bob_and_carol = outbox.insert(sender="billing@example.com",
                                  recipients="bob@example.org, "
                                             "carol@example.org",
                                  subject="Reminder", body_text="Please pay.")
    wait_for(lambda: outbox.row(bob_and_carol)["status"] == "sent", 10,
             "the second reminder to be sent")
    check_equal(outbox.row(only_bob)["status"], "failed",
                "a message to a suppressed address only")
    check_equal(outbox.row(only_bob)["last_error_kind"], "suppressed",
                "its error kind")
    requests = mock.requests()[requests_before:]
    check_equal(len(requests), 1, "requests for the two reminders")
    sent_to = [to["email"] for request in requests for to in
               json.loads(request["body"])["personalizations"][0]["to"]]
    check_equal(sent_to, ["carol@example.org"], "recipients sent to")

    daemon.terminate()
    check_equal(daemon.wait(timeout=30), 0, "outboxd exit code")
    mock.stop()


def test_bad_requests_change_nothing():
    directory = workdir()
    key, mock, outbox = setup(directory)
    daemon = outbox.start()
    port = listener_port(outbox)
    good = [sendgrid_event("delivered", "anna@example.org", 1, "ev-9")]
    body = json.dumps(good).encode()
    old = int(time.time()) - 3600

    check_equal(post_sendgrid(port, key, good, tamper=True)[0], 401,
                "a body changed after signing")
    check_equal(post_sendgrid(port, key, good, timestamp=old)[0], 401,
                "a timestamp an hour old")
    check_equal(post(port, "/webhooks/sendgrid", body,
                     {"Content-Type": "application/json"})[0], 401,
                "no signature")
    check_equal(post(port, "/webhooks/sendgrid", body,
                     {"Content-Type": "text/plain"})[0], 415,
                "the wrong content type")
    timestamp = str(int(time.time()))
    broken = b'[{"event": "delivered",'
    check_equal(post(port, "/webhooks/sendgrid", broken, {
        "Content-Type": "application/json",
        "X-Twilio-Email-Event-Webhook-Signature":
            key.sign(timestamp.encode() + broken),
        "X-Twilio-Email-Event-Webhook-Timestamp": timestamp})[0], 400,
        "signed malformed JSON")
    check_equal(post(port, "/webhooks/sendgrid", b"x" * 70000,
                     {"Content-Type": "application/json"})[0], 413,
                "a body over max_body_bytes")
    check_equal(post(port, "/webhooks/nobody", body,
                     {"Content-Type": "application/json"})[0], 404,
                "an unknown path")
    authorization = "Basic " + base64.b64encode(
        f"{POSTMARK_USER}:wrong".encode()).decode()
    check_equal(post(port, "/webhooks/postmark", b'{"RecordType":"Open"}',
                     {"Content-Type": "application/json",
                      "Authorization": authorization})[0], 401,
                "Postmark with a wrong password")

    slow = socket.create_connection(("127.0.0.1", port), timeout=5)
    slow.sendall(b"POST /webhooks/sendgrid HTTP/1.1\r\nHost: x\r\n")
    answer = slow.recv(1024).decode(errors="replace")
    slow.close()
    check(answer.startswith("HTTP/1.1 408"),
          f"a client that stops sending gets 408, got {answer[:40]!r}")

    check_equal(count(outbox, "SELECT count(*) AS n FROM delivery_event"),
                0, "events stored from bad requests")
    check_equal(post_sendgrid(port, key, good)[0], 200,
                "a good request after the bad ones")

    # An ERP transaction holds the write lock longer than the busy
    # timeout: 503, so the provider sends the events again.
    later = [sendgrid_event("open", "anna@example.org", 1, "ev-10")]
    erp = outbox.connect()
    erp.execute("BEGIN IMMEDIATE")
    check_equal(post_sendgrid(port, key, later)[0], 503,
                "the database locked by another writer")
    erp.rollback()
    erp.close()
    check_equal(post_sendgrid(port, key, later)[0], 200,
                "the same events once the lock is gone")
    authorization = "Basic " + base64.b64encode(
        f"{POSTMARK_USER}:{POSTMARK_PASSWORD}".encode()).decode()
    check_equal(post(port, "/webhooks/postmark", json.dumps({
        "RecordType": "Delivery", "MessageID": "pm-1",
        "Recipient": "anna@example.org", "DeliveredAt":
            "2026-12-04T10:00:00Z", "Details": "250 OK",
        "Metadata": {"outbox_id": "1"}}).encode(),
        {"Content-Type": "application/json",
         "Authorization": authorization})[0], 200,
        "Postmark with the right credentials")
    check_equal(post(port, "/webhooks/postmark_elsewhere",
                     b'{"RecordType":"Open"}',
                     {"Content-Type": "application/json",
                      "Authorization": authorization})[0], 403,
                "Postmark from an address not in webhook_allow_from")
    check_equal(count(outbox, "SELECT count(*) AS n FROM delivery_event"),
                3, "events stored from good requests")
    daemon.terminate()
    check_equal(daemon.wait(timeout=30), 0, "outboxd exit code")
    mock.stop()


def test_sendgrid_body_shapes():
    """SendGrid's body may be a single event object or an empty array, and
    "category" a string or an array. An event of an unknown type is stored
    and changes no status. A truncated body gets 400 and stores nothing."""
    directory = workdir()
    key, mock, outbox = setup(directory)
    daemon = outbox.start()
    port = listener_port(outbox)
    row_id = outbox.insert(sender="billing@example.com",
                           recipients="anna@example.org",
                           subject="Invoice 43", body_text="Attached.")
    wait_for(lambda: outbox.row(row_id)["status"] == "sent", 10,
             "the invoice to be sent")

    def events_stored():
        return count(outbox, "SELECT count(*) AS n FROM delivery_event")

    single = sendgrid_event("open", "anna@example.org", row_id, "ev-20")
    check_equal(post_sendgrid(port, key, single)[0], 200,
                "a single event object")
    check_equal(outbox.query("SELECT event_id, event_type, outbox_id "
                             "FROM delivery_event"),
                [{"event_id": "ev-20", "event_type": "opened",
                  "outbox_id": row_id}],
                "event stored from a single object")

    check_equal(post_sendgrid(port, key, [])[0], 200, "an empty array")
    check_equal(events_stored(), 1, "events after an empty array")

    status, _ = post_sendgrid(port, key, [
        sendgrid_event("click", "anna@example.org", row_id, "ev-21",
                       category="invoice"),
        sendgrid_event("click", "anna@example.org", row_id, "ev-22",
                       category=["invoice", "q4"])])
    check_equal(status, 200, "a batch with categories")
    check_equal(outbox.query("SELECT event_id, tags FROM delivery_event "
                             "WHERE event_id IN ('ev-21', 'ev-22') "
                             "ORDER BY event_id"),
                [{"event_id": "ev-21", "tags": '["invoice"]'},
                 {"event_id": "ev-22", "tags": '["invoice","q4"]'}],
                "tags from a string and an array category")

    unknown = sendgrid_event("mystery", "anna@example.org", row_id, "ev-23")
    check_equal(post_sendgrid(port, key, [unknown])[0], 200,
                "an event of an unknown type")
    check_equal(outbox.query("SELECT event_type, provider_event, outbox_id "
                             "FROM delivery_event WHERE event_id = 'ev-23'"),
                [{"event_type": "other", "provider_event": "mystery",
                  "outbox_id": row_id}],
                "event of an unknown type")
    check_equal(outbox.row(row_id)["status"], "sent",
                "row status after an unknown event")
    check_equal(outbox.query("SELECT recipient, status FROM "
                             "delivery_recipient WHERE outbox_id = ?",
                             row_id),
                [{"recipient": "anna@example.org", "status": "sent"}],
                "recipient status after an unknown event")

    truncated = b'[{"event": "delivered", "email": "anna@example.org"'
    check_equal(post_sendgrid_body(port, key, truncated)[0], 400,
                "a truncated body")
    check_equal(events_stored(), 4, "events after a truncated body")
    check_equal(outbox.row(row_id)["status"], "sent",
                "row status after a truncated body")
    delivered = sendgrid_event("delivered", "anna@example.org", row_id,
                               "ev-24")
    check_equal(post_sendgrid(port, key, [delivered])[0], 200,
                "the request after a truncated body")
    check_equal(outbox.row(row_id)["status"], "delivered",
                "row status after the next request")
    daemon.terminate()
    check_equal(daemon.wait(timeout=30), 0, "outboxd exit code")
    mock.stop()


def test_sendgrid_events_matched_to_rows():
    """An event whose outbox_id names no row is stored unmatched. An event
    without outbox_id is matched by sg_message_id, whose part before the
    first "." is the X-Message-Id stored at send time."""
    directory = workdir()
    key, mock, outbox = setup(directory)
    daemon = outbox.start()
    port = listener_port(outbox)
    row_id = outbox.insert(sender="billing@example.com",
                           recipients="anna@example.org",
                           subject="Invoice 44", body_text="Attached.")
    wait_for(lambda: outbox.row(row_id)["status"] == "sent", 10,
             "the invoice to be sent")
    message_id = outbox.row(row_id)["provider_message_id"]

    stray = sendgrid_event("delivered", "anna@example.org", 999999, "ev-30")
    check_equal(post_sendgrid(port, key, [stray])[0], 200,
                "an event for a row that does not exist")
    check_equal(outbox.query("SELECT event_id, outbox_id "
                             "FROM delivery_event"),
                [{"event_id": "ev-30", "outbox_id": None}],
                "event for a row that does not exist")
    check_equal(outbox.row(row_id)["status"], "sent",
                "row status after an unmatched event")

    by_message_id = sendgrid_event("delivered", "anna@example.org", 0,
                                   "ev-31", message_id=message_id)
    del by_message_id["outbox_id"]
    check_equal(post_sendgrid(port, key, [by_message_id])[0], 200,
                "an event with only sg_message_id")
    check_equal(outbox.query("SELECT outbox_id, provider_message_id "
                             "FROM delivery_event WHERE event_id = 'ev-31'"),
                [{"outbox_id": row_id, "provider_message_id": message_id}],
                "event matched by sg_message_id")
    check_equal(outbox.row(row_id)["status"], "delivered",
                "row status after the matched event")
    daemon.terminate()
    check_equal(daemon.wait(timeout=30), 0, "outboxd exit code")
    mock.stop()


def mailgun_body(token, event, timestamp=None):
    timestamp = str(int(time.time()) if timestamp is None else timestamp)
    signature = hmac.new(MAILGUN_SIGNING_KEY.encode(),
                         (timestamp + token).encode(),
                         hashlib.sha256).hexdigest()
    return json.dumps({"signature": {"timestamp": timestamp, "token": token,
                                     "signature": signature},
                       "event-data": event}).encode()


def test_mailgun_events_and_replay():
    """A Mailgun event matched by its message id (sent with angle
    brackets, stored and posted without). The same request resent is
    taken and stores nothing new; its token with another event gets
    401."""
    directory = workdir()
    mock = Mock(directory, default="@queued", responses={
        "queued": "200\nContent-Type: application/json\n\n"
                  '{"id":"<20261204.{n}@mg.example.com>",'
                  '"message":"Queued. Thank you."}'})
    outbox = Outbox(directory, [{
        "name": "mailgun", "type": "mailgun", "domain": "mg.example.com",
        "base_url": mock.url, "api_key": "key-test",
        "webhook_signing_key": MAILGUN_SIGNING_KEY}],
        webhooks={"port": 0})
    daemon = outbox.start()
    port = listener_port(outbox)
    row_id = outbox.insert(sender="billing@example.com",
                           recipients="anna@example.org", subject="Invoice",
                           body_text="Attached.")
    wait_for(lambda: outbox.row(row_id)["status"] == "sent", 10,
             "the message to be sent")
    stored_id = outbox.row(row_id)["provider_message_id"]
    check_equal(stored_id, "20261204.1@mg.example.com", "stored Mailgun id")

    event = {"event": "delivered", "id": "mg-ev-1",
             "timestamp": time.time(), "recipient": "anna@example.org",
             "message": {"headers": {"message-id": stored_id}},
             "delivery-status": {"code": 250, "message": "OK"}}
    body = mailgun_body("t" * 50, event)
    headers = {"Content-Type": "application/json"}
    check_equal(post(port, "/webhooks/mailgun", body, headers)[0], 200,
                "a signed Mailgun event")
    check_equal(outbox.row(row_id)["status"], "delivered",
                "status after Mailgun's delivered event")
    check_equal(post(port, "/webhooks/mailgun", body, headers)[0], 200,
                "the same request again (a resend)")
    replay = mailgun_body("t" * 50, dict(event, id="mg-ev-2",
                                         event="failed", severity="permanent"))
    check_equal(post(port, "/webhooks/mailgun", replay, headers)[0], 401,
                "the same token with another event (a replay)")
    check_equal(outbox.row(row_id)["status"], "delivered",
                "status after the replay")
    stale = mailgun_body("u" * 50, event, timestamp=int(time.time()) - 3600)
    check_equal(post(port, "/webhooks/mailgun", stale, headers)[0], 401,
                "a timestamp an hour old")
    check_equal(count(outbox, "SELECT count(*) AS n FROM delivery_event"),
                1, "events stored")
    daemon.terminate()
    check_equal(daemon.wait(timeout=30), 0, "outboxd exit code")
    mock.stop()


TOPIC = "arn:aws:sns:eu-central-1:123456789012:outbox-events"
CERT_URL = ("https://sns.eu-central-1.amazonaws.com/"
            "SimpleNotificationService-test.pem")


class SnsSigner:
    """A self-made RSA certificate, placed in outboxd's certificate folder
    under the name outboxd gives the cached copy of CERT_URL, so outboxd
    never fetches it."""

    def __init__(self, directory):
        self.key = os.path.join(directory, "sns-key.pem")
        self.folder = os.path.join(directory, "sns-certificates")
        os.makedirs(self.folder)
        name = hashlib.sha256(CERT_URL.encode()).hexdigest() + ".pem"
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048",
                        "-nodes", "-keyout", self.key, "-out",
                        os.path.join(self.folder, name), "-days", "2",
                        "-subj", "/CN=sns.amazonaws.com"], check=True,
                       capture_output=True)

    def message(self, kind, fields, cert_url=CERT_URL, topic=TOPIC):
        message = {"Type": kind, "MessageId": fields.pop("MessageId"),
                   "TopicArn": topic,
                   "Timestamp": time.strftime("%Y-%m-%dT%H:%M:%S.000Z",
                                              time.gmtime()),
                   "SignatureVersion": "2", "SigningCertURL": cert_url}
        message.update(fields)
        signed = ["Message", "MessageId", "Subject", "SubscribeURL",
                  "Timestamp", "Token", "TopicArn", "Type"]
        text = "".join(f"{key}\n{message[key]}\n" for key in signed
                       if key in message)
        result = subprocess.run(["openssl", "dgst", "-sha256", "-sign",
                                 self.key], input=text.encode(), check=True,
                                capture_output=True)
        message["Signature"] = base64.b64encode(result.stdout).decode()
        return message


def ses_provider(mock, signer):
    """An SES provider sending to mock, taking webhooks from TOPIC signed
    by signer."""
    return {"name": "ses", "type": "ses", "region": "eu-central-1",
            "base_url": mock.url, "access_key_id": "AKIDTEST",
            "secret_access_key": "secret-test", "webhook_topic_arn": TOPIC,
            "webhook_certificate_folder": signer.folder}


def post_sns(port, message):
    return post(port, "/webhooks/ses", json.dumps(message).encode(),
                {"Content-Type": "text/plain; charset=UTF-8"})


SNS_HOST = "sns.eu-central-1.amazonaws.com"


class FakeSns:
    """An HTTPS server on 127.0.0.1 with a certificate for SNS_HOST, which
    outboxd reaches through its test hooks. It responds to the first GET
    with 500 and to every later one with 200, and records each path."""

    def __init__(self, directory):
        self.ca = os.path.join(directory, "fake-sns.pem")
        key = os.path.join(directory, "fake-sns-key.pem")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048",
                        "-nodes", "-keyout", key, "-out", self.ca,
                        "-days", "2", "-subj", f"/CN={SNS_HOST}",
                        "-addext", f"subjectAltName=DNS:{SNS_HOST}"],
                       check=True, capture_output=True)
        self.paths = []
        fake = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                fake.paths.append(self.path)
                status = 500 if len(fake.paths) == 1 else 200
                body = b"<ConfirmSubscriptionResponse/>"
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.ca, key)
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0),
                                                      Handler)
        self.server.socket = context.wrap_socket(self.server.socket,
                                                 server_side=True)
        self.thread = threading.Thread(target=self.server.serve_forever,
                                       daemon=True)
        self.thread.start()

    def env(self):
        port = self.server.server_address[1]
        return {"OUTBOXD_TEST_SNS_CONNECT_TO": f"{SNS_HOST}:443:127.0.0.1:"
                                               f"{port}",
                "OUTBOXD_TEST_SNS_CA": self.ca}

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


def start_ses_with_sent_row():
    """Starts outboxd with an SES provider on the mock (which answers with
    MessageIds 0100-test-1, -2, ...) and its SNS webhook, and sends one
    row. Returns the signer, mock, outbox, daemon, listener port and the
    row's id."""
    directory = workdir()
    signer = SnsSigner(directory)
    mock = Mock(directory, default="@accepted", responses={
        "accepted": "200\nContent-Type: application/json\n\n"
                    '{"MessageId":"0100-test-{n}"}'})
    outbox = Outbox(directory, [ses_provider(mock, signer)],
                    webhooks={"port": 0})
    daemon = outbox.start()
    port = listener_port(outbox)
    row_id = outbox.insert(sender="billing@example.com",
                           recipients="anna@example.org", subject="Invoice",
                           body_text="Attached.")
    wait_for(lambda: outbox.row(row_id)["status"] == "sent", 10,
             "the message to be sent")
    return signer, mock, outbox, daemon, port, row_id


def test_ses_events_through_sns():
    """An SES delivery event in a signed SNS notification, with the signing
    certificate already cached; forged or foreign messages get 403."""
    signer, mock, outbox, daemon, port, row_id = start_ses_with_sent_row()
    ses_event = {"eventType": "Delivery",
                 "mail": {"messageId": "0100-test-1",
                          "destination": ["anna@example.org"],
                          "tags": {"outbox_id": [str(row_id)]}},
                 "delivery": {"recipients": ["anna@example.org"],
                              "smtpResponse": "250 2.0.0 OK",
                              "timestamp": "2026-12-04T10:00:00.000Z"}}
    good = signer.message("Notification", {
        "MessageId": "sns-1", "Message": json.dumps(ses_event)})
    check_equal(post_sns(port, good)[0], 200, "a signed SNS notification")
    check_equal(outbox.row(row_id)["status"], "delivered",
                "status after SES's Delivery event")

    forged = dict(good, Message=good["Message"].replace("Delivery",
                                                        "Bounce"))
    check_equal(post_sns(port, forged)[0], 403, "a changed Message")
    foreign = signer.message("Notification", {
        "MessageId": "sns-2", "Message": json.dumps(ses_event)},
        topic="arn:aws:sns:eu-central-1:999999999999:other")
    check_equal(post_sns(port, foreign)[0], 403, "another topic")
    elsewhere = signer.message("Notification", {
        "MessageId": "sns-3", "Message": json.dumps(ses_event)},
        cert_url="https://certificates.example.net/sns.pem")
    check_equal(post_sns(port, elsewhere)[0], 403,
                "a certificate URL off SNS (never fetched)")
    confirm = signer.message("SubscriptionConfirmation", {
        "MessageId": "sns-4", "Token": "token-1",
        "Message": "You have chosen to subscribe.",
        "SubscribeURL": f"http://127.0.0.1:{port}/confirm"})
    check_equal(post_sns(port, confirm)[0], 403,
                "a SubscribeURL off SNS (never fetched)")
    check_equal(count(outbox, "SELECT count(*) AS n FROM delivery_event"),
                1, "events stored")
    daemon.terminate()
    check_equal(daemon.wait(timeout=30), 0, "outboxd exit code")
    mock.stop()


def test_ses_status_only_moves_forward():
    """SES's Bounce, Complaint and Delivery for one message move its row
    to bounced, then complained, and a later delivery leaves it there. SNS
    may post the same message again as application/json, which gets 200
    and stores nothing new."""
    signer, mock, outbox, daemon, port, row_id = start_ses_with_sent_row()
    message_id = outbox.row(row_id)["provider_message_id"]

    def notification(sns_id, event_type, details_key, details):
        ses_event = {"eventType": event_type,
                     "mail": {"messageId": message_id,
                              "destination": ["anna@example.org"],
                              "tags": {"outbox_id": [str(row_id)]}},
                     details_key: details}
        return signer.message("Notification", {
            "MessageId": sns_id, "Message": json.dumps(ses_event)})

    bounce = notification("sns-20", "Bounce", "bounce", {
        "bounceType": "Permanent", "bounceSubType": "General",
        "bouncedRecipients": [{"emailAddress": "anna@example.org",
                               "action": "failed", "status": "5.1.1",
                               "diagnosticCode": "smtp; 550 5.1.1 unknown"}],
        "timestamp": "2026-12-04T10:00:01.000Z"})
    check_equal(post_sns(port, bounce)[0], 200, "SES's hard Bounce")
    check_equal(outbox.row(row_id)["status"], "bounced",
                "status after the Bounce")

    complaint = notification("sns-21", "Complaint", "complaint", {
        "complainedRecipients": [{"emailAddress": "anna@example.org"}],
        "complaintFeedbackType": "abuse",
        "timestamp": "2026-12-04T10:05:00.000Z"})
    check_equal(post_sns(port, complaint)[0], 200, "SES's Complaint")
    check_equal(outbox.row(row_id)["status"], "complained",
                "status after the Complaint")

    delivery = notification("sns-22", "Delivery", "delivery", {
        "recipients": ["anna@example.org"], "smtpResponse": "250 2.0.0 OK",
        "timestamp": "2026-12-04T10:00:00.000Z"})
    check_equal(post_sns(port, delivery)[0], 200, "SES's late Delivery")
    check_equal(outbox.row(row_id)["status"], "complained",
                "status after the late Delivery")
    check_equal(outbox.query("SELECT event_id, event_type, bounce_type "
                             "FROM delivery_event ORDER BY id"),
                [{"event_id": "sns-20:anna@example.org",
                  "event_type": "bounced", "bounce_type": "hard"},
                 {"event_id": "sns-21:anna@example.org",
                  "event_type": "complained", "bounce_type": None},
                 {"event_id": "sns-22:anna@example.org",
                  "event_type": "delivered", "bounce_type": None}],
                "stored SES events")

    status, _ = post(port, "/webhooks/ses", json.dumps(delivery).encode(),
                     {"Content-Type": "application/json"})
    check_equal(status, 200, "the same SNS message as application/json")
    check_equal(count(outbox, "SELECT count(*) AS n FROM delivery_event"),
                3, "events after the repost")
    daemon.terminate()
    check_equal(daemon.wait(timeout=30), 0, "outboxd exit code")
    mock.stop()


def test_held_row_settled_by_webhook():
    """Postmark accepted the message but outboxd died before it wrote the
    result, so the row is held. Postmark's Delivery webhook then settles
    it: delivered, with the provider's id, and off outbox_stuck. One
    request in all."""
    directory = workdir()
    message_id = "0a129aee-e1cd-480d-b08d-4f48548ff48d"
    mock = Mock(directory, default="@accepted", responses={
        "accepted": "200\nContent-Type: application/json\n\n"
                    '{"To":"einkauf@example.org","SubmittedAt":'
                    '"2025-03-05T10:00:00Z","MessageID":"' + message_id
                    + '","ErrorCode":0,"Message":"OK"}'})
    outbox = Outbox(directory, [{
        "name": "postmark", "type": "postmark", "base_url": mock.url,
        "api_key": "pm-test-token", "webhook_username": POSTMARK_USER,
        "webhook_password": POSTMARK_PASSWORD}],
        lease_seconds=3, heartbeat_seconds=1, webhooks={"port": 0})
    row_id = outbox.insert(sender="billing@example.com",
                           recipients="einkauf@example.org",
                           subject="Bestellung 4711", body_text="Anbei.")
    crashed = outbox.drain(env={"OUTBOXD_FAULT": "crash_after_provider_ok"})
    check_equal(crashed, -9, "outboxd died after the provider accepted")
    time.sleep(3.5)
    daemon = outbox.start()
    port = listener_port(outbox)
    wait_for(lambda: outbox.row(row_id)["status"] == "held", 10,
             "the row to be held")
    check_equal(outbox.row(row_id)["provider_message_id"], None,
                "no provider id while held")

    authorization = "Basic " + base64.b64encode(
        f"{POSTMARK_USER}:{POSTMARK_PASSWORD}".encode()).decode()
    delivery = {"RecordType": "Delivery", "ServerID": 23,
                "MessageStream": "outbound", "MessageID": message_id,
                "Recipient": "einkauf@example.org",
                "DeliveredAt": "2025-03-05T10:00:04Z",
                "Details": "smtp;250 2.0.0 OK", "Tag": "",
                "Metadata": {"outbox_id": str(row_id)}}
    check_equal(post(port, "/webhooks/postmark",
                     json.dumps(delivery).encode(),
                     {"Content-Type": "application/json",
                      "Authorization": authorization})[0], 200,
                "Postmark's Delivery webhook")
    row = outbox.row(row_id)
    check_equal((row["status"], row["provider_message_id"],
                 row["last_error_kind"]),
                ("delivered", message_id, None), "the held row settled")
    check_equal(outbox.query("SELECT count(*) AS n FROM outbox_stuck "
                             "WHERE id = ?", row_id)[0]["n"], 0,
                "the row is off outbox_stuck")
    check_equal(len(mock.requests()), 1, "requests in all")
    daemon.terminate()
    check_equal(daemon.wait(timeout=30), 0, "outboxd exit code")
    mock.stop()


def post_postmark(port, record, password=POSTMARK_PASSWORD):
    authorization = "Basic " + base64.b64encode(
        f"{POSTMARK_USER}:{password}".encode()).decode()
    return post(port, "/webhooks/postmark", json.dumps(record).encode(),
                {"Content-Type": "application/json",
                 "Authorization": authorization})


def test_postmark_complaints_and_bounces():
    """Postmark's SpamComplaint makes the row complained and suppresses the
    address, once. A SoftBounce and a record of an unknown RecordType
    change no status, and wrong credentials store nothing. A
    SubscriptionChange that suppresses sending adds the address to the
    suppression list, and one that reactivates it takes it off again."""
    directory = workdir()
    mock = Mock(directory, default="@accepted", responses={
        "accepted": "200\nContent-Type: application/json\n\n"
                    '{"To":"anna@example.org","SubmittedAt":'
                    '"2026-12-04T10:00:00Z","MessageID":"pm-{n}",'
                    '"ErrorCode":0,"Message":"OK"}'})
    outbox = Outbox(directory, [{
        "name": "postmark", "type": "postmark", "base_url": mock.url,
        "api_key": "pm-test-token", "webhook_username": POSTMARK_USER,
        "webhook_password": POSTMARK_PASSWORD}],
        webhooks={"port": 0})
    daemon = outbox.start()
    port = listener_port(outbox)
    anna = outbox.insert(sender="billing@example.com",
                         recipients="anna@example.org", subject="Invoice",
                         body_text="Attached.")
    bob = outbox.insert(sender="billing@example.com",
                        recipients="bob@example.org", subject="Invoice",
                        body_text="Attached.")
    wait_for(lambda: outbox.row(anna)["status"] == "sent"
             and outbox.row(bob)["status"] == "sent", 10,
             "both messages to be sent")

    def events_stored():
        return count(outbox, "SELECT count(*) AS n FROM delivery_event")

    def suppressed():
        return outbox.query("SELECT address, reason, provider, outbox_id "
                            "FROM suppression ORDER BY address")

    complaint = {"RecordType": "SpamComplaint", "MessageStream": "outbound",
                 "ID": 4242, "Type": "SpamComplaint", "TypeCode": 100001,
                 "MessageID": outbox.row(anna)["provider_message_id"],
                 "Email": "anna@example.org",
                 "BouncedAt": "2026-12-04T10:05:00Z",
                 "Metadata": {"outbox_id": str(anna)}}
    check_equal(post_postmark(port, complaint)[0], 200,
                "Postmark's SpamComplaint")
    check_equal(outbox.row(anna)["status"], "complained",
                "status after the SpamComplaint")
    anna_suppressed = [{"address": "anna@example.org",
                        "reason": "complaint", "provider": "postmark",
                        "outbox_id": anna}]
    check_equal(suppressed(), anna_suppressed,
                "suppression after the SpamComplaint")
    check_equal(post_postmark(port, complaint)[0], 200,
                "the same SpamComplaint again")
    check_equal(events_stored(), 1, "events after the resent complaint")
    check_equal(suppressed(), anna_suppressed,
                "suppression after the resent complaint")

    bob_message_id = outbox.row(bob)["provider_message_id"]
    soft = {"RecordType": "Bounce", "ID": 43, "Type": "SoftBounce",
            "TypeCode": 4096, "MessageID": bob_message_id,
            "Email": "bob@example.org", "BouncedAt": "2026-12-04T10:01:00Z",
            "Details": "mailbox full", "Metadata": {"outbox_id": str(bob)}}
    check_equal(post_postmark(port, soft)[0], 200, "Postmark's SoftBounce")
    check_equal(outbox.row(bob)["status"], "sent",
                "status after the SoftBounce")
    check_equal(outbox.query("SELECT event_type, bounce_type FROM "
                             "delivery_event WHERE event_id = 'Bounce:43'"),
                [{"event_type": "bounced", "bounce_type": "soft"}],
                "stored SoftBounce")

    unknown = {"RecordType": "Foo", "MessageID": bob_message_id,
               "Recipient": "bob@example.org",
               "Metadata": {"outbox_id": str(bob)}}
    check_equal(post_postmark(port, unknown)[0], 200,
                "a record of an unknown RecordType")
    check_equal(outbox.row(bob)["status"], "sent",
                "status after the unknown record")
    check_equal(outbox.query("SELECT event_type, provider_event FROM "
                             "delivery_event WHERE outbox_id = ? "
                             "ORDER BY id DESC LIMIT 1", bob),
                [{"event_type": "other", "provider_event": "Foo"}],
                "stored unknown record")

    forged = dict(complaint, ID=4243, Email="bob@example.org",
                  MessageID=bob_message_id, Metadata={"outbox_id": str(bob)})
    check_equal(post_postmark(port, forged, password="wrong")[0], 401,
                "a SpamComplaint with a wrong password")
    check_equal(events_stored(), 3, "events after the wrong password")
    check_equal(outbox.row(bob)["status"], "sent",
                "status after the wrong password")
    check_equal(suppressed(), anna_suppressed,
                "suppression after the wrong password")

    unsubscribe = {"RecordType": "SubscriptionChange",
                   "MessageID": bob_message_id, "ServerID": 23,
                   "ChangedAt": "2026-12-04T10:10:00Z",
                   "Recipient": "bob@example.org", "Origin": "Recipient",
                   "SuppressSending": True,
                   "SuppressionReason": "ManualSuppression",
                   "Metadata": {"outbox_id": str(bob)}}
    check_equal(post_postmark(port, unsubscribe)[0], 200,
                "a SubscriptionChange that suppresses sending")
    check_equal(outbox.query("SELECT event_type, provider_event FROM "
                             "delivery_event WHERE outbox_id = ? "
                             "ORDER BY id DESC LIMIT 1", bob),
                [{"event_type": "unsubscribed",
                  "provider_event": "SubscriptionChange"}],
                "stored SubscriptionChange")
    check_equal(outbox.query("SELECT reason, provider FROM suppression "
                             "WHERE address = 'bob@example.org'"),
                [{"reason": "unsubscribe", "provider": "postmark"}],
                "suppression after the SubscriptionChange")

    # Ops suppressed carol by hand; Postmark's reactivation leaves that.
    db = outbox.connect()
    db.execute("INSERT INTO suppression (address, reason) "
               "VALUES ('carol@example.org', 'manual')")
    db.commit()
    db.close()
    for address in ("bob@example.org", "carol@example.org"):
        reactivated = dict(unsubscribe, ChangedAt="2026-12-04T11:00:00Z",
                           Recipient=address, SuppressSending=False,
                           SuppressionReason=None)
        check_equal(post_postmark(port, reactivated)[0], 200,
                    f"a SubscriptionChange that reactivates {address}")
    check_equal(outbox.query("SELECT address, reason FROM suppression "
                             "WHERE address IN ('bob@example.org', "
                             "'carol@example.org')"),
                [{"address": "carol@example.org", "reason": "manual"}],
                "suppression after the reactivations")
    daemon.terminate()
    check_equal(daemon.wait(timeout=30), 0, "outboxd exit code")
    mock.stop()


def test_sns_subscription_lifecycle():
    """A SubscriptionConfirmation whose confirming GET fails gets 503 and
    is recorded pending; SNS's resend confirms it. Confirmations from
    another topic or with a SubscribeURL off SNS are rejected unfetched,
    an UnsubscribeConfirmation is recorded and never confirmed, and a body
    without the SNS envelope is rejected."""
    # Without the test hooks, outboxd would send the GET to the real SNS.
    if os.environ.get("OUTBOX_FAULT_HOOKS") != "1":
        print("skipped test_sns_subscription_lifecycle: outboxd is built "
              "without OUTBOX_FAULT_HOOKS")
        return
    directory = workdir()
    signer = SnsSigner(directory)
    fake = FakeSns(directory)
    mock = Mock(directory)
    outbox = Outbox(directory, [ses_provider(mock, signer)],
                    webhooks={"port": 0})
    daemon = outbox.start(env=fake.env())
    port = listener_port(outbox)
    token = "2336412f37fb687f5d51e6e2425aexample"
    subscribe_url = (f"https://{SNS_HOST}/?Action=ConfirmSubscription"
                     f"&TopicArn={TOPIC}&Token={token}")

    def confirmation(message_id, **changes):
        fields = {"MessageId": message_id, "Token": token,
                  "Message": "You have chosen to subscribe.",
                  "SubscribeURL": subscribe_url}
        fields.update(changes.pop("fields", {}))
        return signer.message("SubscriptionConfirmation", fields, **changes)

    def subscription():
        return outbox.query("SELECT provider, topic_arn, status, message_id,"
                            " last_error, confirmed_at IS NOT NULL AS "
                            "confirmed FROM sns_subscription")

    first = confirmation("sns-10")
    check_equal(post_sns(port, first)[0], 503,
                "the confirming GET failed: SNS is asked to resend")
    rows = subscription()
    check_equal([(r["provider"], r["topic_arn"], r["status"], r["confirmed"])
                 for r in rows], [("ses", TOPIC, "pending", 0)],
                "subscription after the failed GET")
    check(rows and "HTTP 500" in (rows[0]["last_error"] or ""),
          f"last_error names the failure: {rows}")
    check(rows and token not in (rows[0]["last_error"] or ""),
          "last_error leaves out the confirmation token")

    check_equal(post_sns(port, first)[0], 200, "SNS's resend is confirmed")
    check_equal([(r["status"], r["message_id"], r["last_error"],
                  r["confirmed"]) for r in subscription()],
                [("confirmed", "sns-10", None, 1)],
                "subscription after the second GET")
    check_equal(len(fake.paths), 2, "GETs to SNS")
    check(all(p.startswith("/?Action=ConfirmSubscription")
              for p in fake.paths), f"GET paths: {fake.paths}")

    foreign = confirmation(
        "sns-11", topic="arn:aws:sns:us-east-1:999999999999:other",
        fields={"SubscribeURL": subscribe_url.replace(TOPIC, "other")})
    check_equal(post_sns(port, foreign)[0], 403, "another topic")
    evil = confirmation("sns-12", fields={
        "SubscribeURL": subscribe_url.replace(SNS_HOST,
                                              SNS_HOST + ".evil.example")})
    check_equal(post_sns(port, evil)[0], 403, "a SubscribeURL off SNS")
    check_equal(len(fake.paths), 2, "no GET for rejected confirmations")

    unsubscribe = signer.message("UnsubscribeConfirmation", {
        "MessageId": "sns-13", "Token": token,
        "Message": "You have chosen to deactivate subscription.",
        "SubscribeURL": subscribe_url})
    check_equal(post_sns(port, unsubscribe)[0], 200,
                "an UnsubscribeConfirmation")
    check_equal([(r["status"], r["message_id"]) for r in subscription()],
                [("unsubscribed", "sns-13")],
                "subscription after the unsubscribe")
    check_equal(len(fake.paths), 2, "no GET for an unsubscribe")

    raw = {"notificationType": "Bounce",
           "mail": {"messageId": "0100-raw", "destination": ["a@example.org"]}}
    status, body = post_sns(port, raw)
    check_equal(status, 400, "raw message delivery (no SNS envelope)")
    check("raw message delivery" in body.lower(),
          f"the response says to turn raw delivery off: {body!r}")
    plain = signer.message("Notification", {
        "MessageId": "sns-14", "Message": "{}"},
        cert_url=CERT_URL.replace("https://", "http://"))
    check_equal(post_sns(port, plain)[0], 403, "a certificate URL over http")
    check(token not in outbox.log_text(), "the token stays out of the log")
    check_equal(count(outbox, "SELECT count(*) AS n FROM delivery_event"),
                0, "events stored")
    daemon.terminate()
    check_equal(daemon.wait(timeout=30), 0, "outboxd exit code")
    fake.stop()
    mock.stop()


test_events_update_rows_and_suppress()
test_held_row_settled_by_webhook()
test_ses_events_through_sns()
test_sns_subscription_lifecycle()
test_mailgun_events_and_replay()
test_bad_requests_change_nothing()
test_sendgrid_body_shapes()
test_sendgrid_events_matched_to_rows()
test_ses_status_only_moves_forward()
def post_in_segments(port, path, body, headers, segment=65536):
    """Posts body over a raw socket in segments of segment bytes, with a
    short pause between them; returns the response's status code."""
    head = f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
    head += f"Content-Length: {len(body)}\r\nConnection: close\r\n"
    head += "".join(f"{name}: {value}\r\n"
                    for name, value in headers.items())
    with socket.create_connection(("127.0.0.1", port), timeout=20) as s:
        s.sendall(head.encode() + b"\r\n")
        for start in range(0, len(body), segment):
            s.sendall(body[start:start + segment])
            time.sleep(0.01)
        response = b""
        while b"\r\n\r\n" not in response:
            chunk = s.recv(4096)
            if not chunk:
                break
            response += chunk
    return int(response.split(b" ", 2)[1]) if response else 0


def test_sendgrid_signed_bytes_and_large_batch():
    """SendGrid signs the exact bytes it posts, CR LF included, and may
    post a batch of about 1 MB that arrives in many TCP segments: both are
    verified over the whole body and stored in full."""
    directory = workdir()
    key = SigningKey(directory)
    mock = Mock(directory)
    outbox = Outbox(directory, [sendgrid(mock.url,
                                         webhook_public_key=key.public_b64)],
                    webhooks={"port": 0})
    daemon = outbox.start()
    port = listener_port(outbox)
    now = int(time.time())

    exact = (b'[{"email":"a.meier@example.org","event":"delivered",'
             b'"sg_event_id":"c2lnLTE","timestamp":' + str(now).encode()
             + b',"outbox_id":"301"},\r\n{"email":"b.schulz@example.org",'
             b'"event":"open","sg_event_id":"c2lnLTI","timestamp":'
             + str(now).encode() + b',"outbox_id":"301"}]\r\n')
    check_equal(post_sendgrid_body(port, key, exact)[0], 200,
                "the exact signed bytes with CR LF")
    check_equal(count(outbox, "SELECT count(*) AS n FROM delivery_event"),
                2, "events from the exact bytes")

    padding = "x" * 400
    events = [{"email": f"customer+{n}@example.org", "event": "delivered",
               "sg_event_id": f"batch-{n}", "timestamp": now,
               "response": padding}
              for n in range(2000)]
    body = json.dumps(events).encode()
    check(900_000 < len(body) < 1_200_000, f"batch size {len(body)}")
    timestamp = str(now)
    status = post_in_segments(port, "/webhooks/sendgrid", body, {
        "Content-Type": "application/json",
        "X-Twilio-Email-Event-Webhook-Signature":
            key.sign(timestamp.encode() + body),
        "X-Twilio-Email-Event-Webhook-Timestamp": timestamp})
    check_equal(status, 200, "a 1 MB batch in segments")
    check_equal(count(outbox, "SELECT count(*) AS n FROM delivery_event "
                              "WHERE event_id LIKE 'batch-%'"),
                2000, "events from the batch")
    daemon.terminate()
    check_equal(daemon.wait(timeout=30), 0, "outboxd exit code")
    mock.stop()


test_postmark_complaints_and_bounces()
test_sendgrid_signed_bytes_and_large_batch()
finish()
