-- Ops: the SNS topics that deliver SES events to outboxd's webhook, and
-- what became of each subscription. outboxd writes a row when it responds
-- to a SubscriptionConfirmation (confirmed, or pending with the reason the
-- confirmation failed) and when SNS reports an unsubscribe. It does not
-- fetch the SubscribeURL of an UnsubscribeConfirmation, which would
-- subscribe the endpoint again.
CREATE TABLE sns_subscription (
    provider     TEXT NOT NULL,      -- the configured provider's name
    topic_arn    TEXT NOT NULL,
    status       TEXT NOT NULL
                 CHECK (status IN ('pending', 'confirmed', 'unsubscribed')),
    message_id   TEXT,               -- SNS MessageId of the last request
    last_error   TEXT,               -- why the last confirmation failed
    confirmed_at TEXT,
    updated_at   TEXT NOT NULL,
    PRIMARY KEY (provider, topic_arn)
);
