-- Delivery truth: the providers' webhook events, each recipient's outcome,
-- and the addresses outboxd never sends to again.

-- One row per event a provider posted, matched or not. A provider resends
-- events it is not sure arrived, so (provider, event_id) is unique and a
-- resent event is ignored.
CREATE TABLE delivery_event (
    id                  INTEGER PRIMARY KEY,
    outbox_id           INTEGER REFERENCES outbox (id) ON DELETE SET NULL,
    provider            TEXT NOT NULL,      -- configured provider name
    -- delivered, deferred, bounced, complained, dropped, opened, clicked,
    -- unsubscribed, accepted, or other (a type outboxd does not act on).
    event_type          TEXT NOT NULL,
    bounce_type         TEXT,               -- hard or soft, for bounces
    provider_event      TEXT,               -- the provider's own type
    recipient           TEXT,
    occurred_at         TEXT,               -- when the provider saw it
    reason              TEXT,               -- diagnostic code or reason
    tags                TEXT,               -- JSON array: categories, tags
    event_id            TEXT NOT NULL,      -- the provider's id, or derived
    provider_message_id TEXT,
    raw                 TEXT NOT NULL,      -- the event's JSON
    received_at         TEXT NOT NULL DEFAULT (datetime('now')),
    UNIQUE (provider, event_id)
);
CREATE INDEX delivery_event_outbox ON delivery_event (outbox_id);
CREATE INDEX delivery_event_unmatched ON delivery_event (received_at)
    WHERE outbox_id IS NULL;

-- One row per recipient of a claimed message: to, cc and bcc. The status
-- only moves forward: pending, sent, deferred, delivered, then bounced or
-- dropped, then complained; suppressed recipients were never sent to.
CREATE TABLE delivery_recipient (
    outbox_id  INTEGER NOT NULL REFERENCES outbox (id) ON DELETE CASCADE,
    recipient  TEXT NOT NULL COLLATE NOCASE,
    kind       TEXT,                        -- to, cc, bcc; NULL if unknown
    status     TEXT NOT NULL CHECK (status IN (
                   'pending', 'sent', 'deferred', 'delivered', 'bounced',
                   'dropped', 'complained', 'suppressed')),
    detail     TEXT,                        -- the last event's reason
    updated_at TEXT NOT NULL DEFAULT (datetime('now')),
    PRIMARY KEY (outbox_id, recipient)
) WITHOUT ROWID;

-- Addresses that hard-bounced or complained. A claim drops them from a
-- message; ops remove an address with DELETE to send to it again.
CREATE TABLE suppression (
    address    TEXT PRIMARY KEY COLLATE NOCASE,
    -- hard_bounce, complaint, inactive_recipient (the provider refuses
    -- it), or manual (inserted by ops).
    reason     TEXT NOT NULL,
    provider   TEXT,
    detail     TEXT,
    outbox_id  INTEGER,                     -- the message that caused it
    created_at TEXT NOT NULL DEFAULT (datetime('now'))
);

-- Events are matched by the provider's message id. Only rows that have one
-- are indexed, so the sent outcome that sets the id adds an entry and
-- removes none (every queued row used to enter the index with a NULL id).
DROP INDEX outbox_provider_message_id;
CREATE INDEX outbox_provider_message_id ON outbox (provider_message_id)
    WHERE provider_message_id IS NOT NULL;
