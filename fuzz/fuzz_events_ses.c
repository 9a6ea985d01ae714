/*
 * fuzz_events_ses.c - libFuzzer target for SNS messages carrying SES
 * events. The input is one webhook body. It goes through the SNS envelope
 * reader, the signing certificate URL check, the signature check against
 * a certificate that is not PEM, and the SES event parser. The event
 * batch must pass fuzz_check_batch.
 */
#include <stdint.h>

#include "fuzz_events_check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char not_pem[] = "-----BEGIN CERTIFICATE-----\n";
    const char *body = (const char *)data;
    outbox_sns_message message;
    outbox_event_batch batch = {NULL, 0};
    outbox_error err = {{0}, {0}};
    outbox_err rc;

    if (outbox_sns_parse(&message, &err, body, size) == OUTBOX_EOK) {
        fuzz_require(message.message_id != NULL && message.message != NULL);
        outbox_sns_check_cert_url(&err, message.signing_cert_url);
        fuzz_require(outbox_sns_verify(&err, &message, not_pem,
                                       sizeof(not_pem) - 1)
                     != OUTBOX_EOK);
        outbox_sns_check_timestamp(&err, &message, 1741169400, 600);
        outbox_sns_message_free(&message);
    }

    memset(&err, 0, sizeof(err));
    rc = outbox_events_parse_ses(&batch, &err, body, size);
    fuzz_check_batch(&batch, rc, &err);
    outbox_event_batch_free(&batch);
    return 0;
}
