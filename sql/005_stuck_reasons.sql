-- outbox_stuck, with two changes to its reasons:
-- - "provider paused" now follows the outcome of the row's last attempt
--   (misconfigured), whatever error kind the provider gave, so every
--   provider's account and credential errors appear;
-- - a row that has waited longer than stuck_due_minutes for a provider's
--   rate limit or daily quota appears with that reason.

-- Ops: every message that needs a person or is late, with the reason in
-- words. A row appears once, under the first reason that applies.
DROP VIEW outbox_stuck;
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
              AND (SELECT a.outcome FROM delivery_attempt AS a
                    WHERE a.outbox_id = o.id
                    ORDER BY a.id DESC LIMIT 1) = 'misconfigured'
              THEN 'provider ' || coalesce(o.provider, '(default)')
                   || ' is paused: ' || coalesce(o.last_error, '')
         WHEN o.status = 'retrying'
              AND o.last_error_kind IN ('rate_limited', 'quota_exceeded')
              AND o.updated_at < datetime(now.t, '-' || setting.due_minutes
                                          || ' minutes') THEN
              'waiting for the provider''s limit (' || o.last_error_kind
              || ') since ' || o.updated_at || ': '
              || coalesce(o.last_error, '')
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
