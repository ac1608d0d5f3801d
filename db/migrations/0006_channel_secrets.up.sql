-- Alert channels: credentials encrypted at rest, and what a delivery attempt records.

-- Each organization's data key, wrapped (AES-256-GCM) by a key-encryption key that is not
-- in the database (GOVERNOR_KEK or GOVERNOR_KEK_FILE). kek_id names the KEK that wrapped
-- it, so `governor admin rotate-kek` can re-wrap every data key under a new one while
-- processes accept both.
CREATE TABLE org_data_keys (
    org_id       text PRIMARY KEY REFERENCES organizations (id),
    kek_id       text NOT NULL CHECK (kek_id ~ '^kek_[0-9a-f]{16}$'),
    -- version byte, 12-byte nonce, 32-byte key, 16-byte tag.
    wrapped_key  bytea NOT NULL CHECK (octet_length(wrapped_key) = 61),
    created_at   timestamptz NOT NULL DEFAULT now(),
    rewrapped_at timestamptz
);

-- Channel credentials sealed with the organization's data key, each bound to its
-- organization, channel and field: the endpoint URL (webhook and Slack), the signing
-- secret and the previous one kept during a rotation. From now on `url` holds only a
-- display form of the endpoint (no user info or query; Slack's secret path segment
-- masked) and `secret` / `prev_secret` stay empty.
--
-- SQL cannot encrypt (the KEK is not in the database), so rows written before this
-- migration are sealed in Go: every `governor api` and `governor worker` seals any
-- remaining plaintext rows in batches when it starts, before serving, and clears their
-- plaintext columns. A later migration drops `secret` and `prev_secret`.
ALTER TABLE alert_channels
    ADD COLUMN url_enc         bytea,
    ADD COLUMN secret_enc      bytea,
    ADD COLUMN prev_secret_enc bytea,
    ADD CONSTRAINT alert_channels_secret_sealed CHECK (secret_enc IS NULL OR secret = ''),
    ADD CONSTRAINT alert_channels_prev_secret_sealed CHECK (prev_secret_enc IS NULL OR prev_secret = '');

-- What an attempt ran into, in one word, beside its status code and latency. Receivers'
-- response bodies are never stored (they were shown to every viewer).
ALTER TABLE alert_delivery_attempts
    ADD COLUMN classification text NOT NULL DEFAULT '' CHECK (classification IN (
        '', 'ok', 'http_3xx', 'http_4xx', 'http_5xx', 'timeout', 'refused_address', 'refused_url',
        'tls_error', 'dns_error', 'connection_error', 'smtp_error', 'config_error', 'channel_disabled'));
ALTER TABLE alert_deliveries
    ADD COLUMN last_classification text NOT NULL DEFAULT '' CHECK (last_classification IN (
        '', 'ok', 'http_3xx', 'http_4xx', 'http_5xx', 'timeout', 'refused_address', 'refused_url',
        'tls_error', 'dns_error', 'connection_error', 'smtp_error', 'config_error', 'channel_disabled'));

UPDATE alert_delivery_attempts
SET classification = CASE
    WHEN outcome = 'delivered' THEN 'ok'
    WHEN status_code BETWEEN 300 AND 399 THEN 'http_3xx'
    WHEN status_code BETWEEN 400 AND 499 THEN 'http_4xx'
    WHEN status_code BETWEEN 500 AND 599 THEN 'http_5xx'
    ELSE '' END
WHERE outcome <> 'in_flight';

-- Until now an HTTP failure was recorded as "HTTP <status>: <first 512 bytes of the
-- response>", in attempts, deliveries and the delivery-failed events. Keep the status.
UPDATE alert_delivery_attempts SET error = regexp_replace(error, '(HTTP [0-9]{3}): .*$', '\1')
WHERE error ~ 'HTTP [0-9]{3}: ';
UPDATE alert_deliveries SET last_error = regexp_replace(last_error, '(HTTP [0-9]{3}): .*$', '\1')
WHERE last_error ~ 'HTTP [0-9]{3}: ';
UPDATE domain_events
SET summary = regexp_replace(summary, '(HTTP [0-9]{3}): .*$', '\1'),
    data = CASE WHEN data ? 'error'
                THEN jsonb_set(data, '{error}', to_jsonb(regexp_replace(data->>'error', '(HTTP [0-9]{3}): .*$', '\1')))
                ELSE data END
WHERE domain = 'alerts' AND type = 'alert_delivery_failed'
  AND (summary ~ 'HTTP [0-9]{3}: ' OR data->>'error' ~ 'HTTP [0-9]{3}: ');
