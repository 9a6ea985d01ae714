-- Schema version 1: the outbox, its attachments, the attempt history, the
-- daemon heartbeat, and the views for finance and ops.
--
-- The ERP writes the columns marked "ERP"; outboxd owns the rest. All times
-- are UTC text in the format of datetime('now'): 'YYYY-MM-DD HH:MM:SS'.
-- Nothing here rejects a row over its content: the daemon checks each row
-- and marks a bad one `failed` with a reason, so one bad row never makes the
-- ERP's transaction fail.

CREATE TABLE outbox (
    id                  INTEGER PRIMARY KEY,
    sender              TEXT,               -- ERP: one address, "Name <a@b>"
    recipients          TEXT,               -- ERP: RFC 5322 address list
    cc                  TEXT,               -- ERP
    bcc                 TEXT,               -- ERP
    reply_to            TEXT,               -- ERP
    subject             TEXT,               -- ERP
    body_text           TEXT,               -- ERP
    body_html           TEXT,               -- ERP
    message_key         TEXT UNIQUE,        -- ERP: its own unique key
    reference           TEXT,               -- ERP: what finance searches by
    headers             TEXT,               -- ERP: JSON object of headers
    metadata            TEXT,               -- ERP: JSON object, echoed
    provider            TEXT,               -- ERP: provider name or NULL
    priority            INTEGER NOT NULL DEFAULT 0,  -- ERP: higher first
    send_after          TEXT,               -- ERP: not before this time

    status              TEXT NOT NULL DEFAULT 'queued' CHECK (status IN (
                            'queued', 'sending', 'retrying', 'sent',
                            'failed', 'cancelled', 'held',
                            'delivered', 'bounced', 'complained')),
    attempts            INTEGER NOT NULL DEFAULT 0,  -- includes the current one
    next_attempt_at     TEXT,               -- due time of queued/retrying
    last_error_kind     TEXT,               -- a stable word, e.g. rate_limited
    last_error          TEXT,               -- one sentence naming the field
    provider_message_id TEXT,               -- the provider's id on success
    message_id          TEXT,               -- RFC 5322 Message-ID, no <>
    sent_at             TEXT,
    lease_owner         TEXT,               -- daemon holding a `sending` row
    lease_until         TEXT,
    created_at          TEXT NOT NULL DEFAULT (datetime('now')),
    updated_at          TEXT NOT NULL DEFAULT (datetime('now'))
);

-- The claim query walks this index in priority order and stops at the first
-- rows that are due, so it never sorts the whole queue.
CREATE INDEX outbox_due ON outbox (priority DESC, next_attempt_at, id)
    WHERE status IN ('queued', 'retrying');
CREATE INDEX outbox_sending ON outbox (lease_until)
    WHERE status = 'sending';
CREATE INDEX outbox_reference ON outbox (reference);
CREATE INDEX outbox_provider_message_id ON outbox (provider_message_id);

-- A new row is due at send_after, or now. datetime() understands ISO 8601
-- with 'T', 'Z' or an offset and returns NULL for text that is not a date;
-- such a row (or a number, which datetime() would read as a Julian day) is
-- due at once and the daemon fails it, naming send_after. send_after
-- without a time zone is read as UTC.
CREATE TRIGGER outbox_schedule AFTER INSERT ON outbox
    WHEN NEW.next_attempt_at IS NULL
BEGIN
    UPDATE outbox
       SET next_attempt_at = coalesce(
               CASE WHEN typeof(NEW.send_after) = 'text'
                    THEN datetime(NEW.send_after) END,
               datetime('now'))
     WHERE id = NEW.id;
END;

-- The ERP may move send_after of a message that is still waiting.
CREATE TRIGGER outbox_reschedule AFTER UPDATE OF send_after ON outbox
    WHEN NEW.status = 'queued'
BEGIN
    UPDATE outbox
       SET next_attempt_at = coalesce(
               CASE WHEN typeof(NEW.send_after) = 'text'
                    THEN datetime(NEW.send_after) END,
               datetime('now')),
           updated_at = datetime('now')
     WHERE id = NEW.id;
END;

CREATE TABLE outbox_attachment (
    id           INTEGER PRIMARY KEY,
    outbox_id    INTEGER NOT NULL REFERENCES outbox (id) ON DELETE CASCADE,
    filename     TEXT,
    content_type TEXT,
    content      BLOB,
    content_id   TEXT                       -- set for inline images
);
CREATE INDEX outbox_attachment_outbox ON outbox_attachment (outbox_id);

-- An attempt row is written, and committed, before its request leaves; while
-- finished_at is NULL the request may have reached the provider.
CREATE TABLE delivery_attempt (
    id                  INTEGER PRIMARY KEY,
    outbox_id           INTEGER NOT NULL REFERENCES outbox (id)
                                ON DELETE CASCADE,
    attempt             INTEGER NOT NULL,   -- 1 for the first attempt
    provider            TEXT NOT NULL,
    started_at          TEXT NOT NULL,
    finished_at         TEXT,               -- NULL while in flight
    status_code         INTEGER,            -- HTTP or SMTP status
    -- sent, retry, failed, misconfigured, unknown; NULL while in flight.
    outcome             TEXT,
    error_kind          TEXT,
    error               TEXT,               -- provider text, up to 1 KB
    provider_message_id TEXT,
    message_id          TEXT,               -- the Message-ID it carried
    -- 1 if this attempt uses up one of max_attempts; rate limits do not.
    counted             INTEGER NOT NULL DEFAULT 0,
    UNIQUE (outbox_id, attempt)
);
CREATE INDEX delivery_attempt_open ON delivery_attempt (outbox_id)
    WHERE finished_at IS NULL;

-- One row per running daemon, rewritten every few seconds.
CREATE TABLE daemon_heartbeat (
    owner      TEXT PRIMARY KEY,           -- host:pid:random
    started_at TEXT NOT NULL,
    seen_at    TEXT NOT NULL
);

-- Thresholds that the views read; ops may change them with UPDATE.
CREATE TABLE outbox_setting (
    name  TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);
INSERT INTO outbox_setting (name, value) VALUES
    ('stuck_due_minutes', 10),       -- due this long and not picked up
    ('stuck_attempts', 5),           -- retrying after this many attempts
    ('heartbeat_stale_seconds', 60); -- no daemon seen for this long

-- Finance: one readable row per message.
CREATE VIEW delivery_status AS
SELECT o.id,
       o.reference,
       o.message_key,
       o.recipients,
       o.cc,
       o.subject,
       o.status,
       o.attempts,
       o.provider,
       o.provider_message_id,
       o.created_at,
       o.sent_at,
       o.updated_at,
       o.next_attempt_at,
       o.last_error_kind,
       o.last_error
  FROM outbox AS o;

-- Ops: every message that needs a person or is late, with the reason in
-- words. A row appears once, under the first reason that applies.
CREATE VIEW outbox_stuck AS
WITH now AS (SELECT datetime('now') AS t),
     setting AS (
         SELECT (SELECT value FROM outbox_setting
                  WHERE name = 'stuck_due_minutes') AS due_minutes,
                (SELECT value FROM outbox_setting
                  WHERE name = 'stuck_attempts') AS attempts,
                (SELECT value FROM outbox_setting
                  WHERE name = 'heartbeat_stale_seconds') AS stale_seconds),
     alive AS (
         SELECT count(*) AS daemons
           FROM daemon_heartbeat, now, setting
          WHERE seen_at >= datetime(now.t, '-' || setting.stale_seconds
                                    || ' seconds'))
SELECT o.id,
       o.reference,
       o.message_key,
       o.recipients,
       o.status,
       o.attempts,
       o.provider,
       o.next_attempt_at,
       o.lease_until,
       o.last_error_kind,
       o.last_error,
       CASE
         WHEN o.status = 'held' THEN
              'held: ' || coalesce(o.last_error,
                                   'a person must decide whether to resend')
         WHEN o.status = 'sending' AND o.lease_until < now.t THEN
              'lease expired at ' || o.lease_until
              || ': the daemon holding it stopped'
         WHEN o.status IN ('queued', 'retrying')
              AND o.next_attempt_at <= now.t AND alive.daemons = 0 THEN
              'due, and no daemon heartbeat for more than '
              || setting.stale_seconds || ' seconds'
         WHEN o.status IN ('queued', 'retrying')
              AND o.last_error_kind IN ('provider_auth', 'provider_forbidden')
              THEN 'provider ' || coalesce(o.provider, '(default)')
                   || ' is paused: ' || o.last_error
         WHEN o.status IN ('queued', 'retrying')
              AND o.next_attempt_at < datetime(now.t, '-' ||
                                               setting.due_minutes
                                               || ' minutes') THEN
              'due for more than ' || setting.due_minutes
              || ' minutes and not picked up'
         WHEN o.status = 'retrying' AND o.attempts >= setting.attempts THEN
              'retrying after ' || o.attempts || ' attempts: '
              || coalesce(o.last_error, '')
       END AS reason
  FROM outbox AS o, now, setting, alive
 WHERE o.status IN ('held', 'sending', 'queued', 'retrying')
   AND reason IS NOT NULL;
