-- Finance reads each recipient's outcome in delivery_status: one text
-- with every recipient and its status, and whether every recipient that
-- was sent to has been delivered (1), not yet or not all (0), or no
-- recipient is known yet (NULL).
DROP VIEW delivery_status;
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
       o.last_error,
       (SELECT group_concat(r.recipient || ' ' || r.status, '; ')
          FROM delivery_recipient AS r
         WHERE r.outbox_id = o.id) AS recipient_status,
       (SELECT min(r.status = 'delivered')
          FROM delivery_recipient AS r
         WHERE r.outbox_id = o.id AND r.status <> 'suppressed')
           AS delivered_to_all
  FROM outbox AS o;
