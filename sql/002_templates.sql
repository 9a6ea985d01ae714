-- Provider templates: a row may name a template that the provider renders
-- (a SendGrid dynamic template id, a Postmark template alias or id, an SES
-- template name, a Mailgun template name) and carry the data for it, as a
-- JSON object, instead of a body. A row with a template needs no body.
ALTER TABLE outbox ADD COLUMN template TEXT;
ALTER TABLE outbox ADD COLUMN template_data TEXT;
