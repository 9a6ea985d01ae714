"""End to end: responses larger than outboxd keeps. A response with 200
headers or a 1 MiB body is read to its end, only the capped part is kept,
and the row gets the right status with a short error text."""

from harness import (Mock, Outbox, check, check_equal, finish, sendgrid,
                     workdir)

ROW = dict(sender="Billing <billing@example.com>",
           recipients="kunde@example.org", subject="Rechnung",
           body_text="text")


def test_oversized_responses():
    directory = workdir()
    mock = Mock(directory, script="202:headers=200,400:big,503:big,202")
    outbox = Outbox(directory, [sendgrid(mock.url)], concurrency=1,
                    claim_batch=1,
                    retry={"base_delay_seconds": 1, "jitter": 0})
    many_headers = outbox.insert(**ROW)
    big_rejection = outbox.insert(**ROW)
    big_outage = outbox.insert(**ROW)
    check_equal(outbox.drain(), 0, "drain exit code")

    row = outbox.row(many_headers)
    check_equal(row["status"], "sent", "200 headers: status")
    check_equal(row["provider_message_id"], "mock-1",
                "200 headers: the id in the first header is kept")

    row = outbox.row(big_rejection)
    check_equal(row["status"], "failed", "1 MiB 400: status")
    check(len(row["last_error"] or "") <= 1100,
          f"1 MiB 400: last_error is short ({len(row['last_error'] or '')})")

    attempts = outbox.attempts(big_outage)
    check_equal([a["outcome"] for a in attempts], ["retry", "sent"],
                "1 MiB 503 then 202: outcomes")
    if attempts:
        check(len(attempts[0]["error"] or "") <= 1100,
              f"1 MiB 503: attempt error is short "
              f"({len(attempts[0]['error'] or '')})")
    check_equal(len(mock.requests()), 4, "requests made")

    # The mock sends 205 header lines with the 202 (its 5 usual ones and
    # 200 padding lines) and 1 MiB bodies; outboxd keeps 64 headers and
    # 64 KiB, and logs what it dropped.
    log = outbox.log_text()
    check(f"id={many_headers} event=response_capped kept_body_bytes=0 "
          f"dropped_body_bytes=0 kept_headers=64 dropped_headers=141" in log,
          "the capped headers are logged")
    check(f"id={big_rejection} event=response_capped kept_body_bytes=65536 "
          f"dropped_body_bytes=983040" in log,
          "the capped 400 body is logged")
    mock.stop()


test_oversized_responses()
finish()
