-- Where operator notifications (R31, sync.notifications) are sent, and what was sent where.
-- Owned by qbo_pipelines/notify/. Secrets (SMTP password, webhook signing secret) are stored ONLY
-- as Fernet ciphertexts made with the token store's key (QBO_PIPELINES_TOKEN_KEY); the CHECK makes
-- a plaintext write fail. Idempotent.

CREATE TABLE IF NOT EXISTS sync.notification_channels (
    id          bigserial   PRIMARY KEY,
    realm_id    text,
    kind        text        NOT NULL CHECK (kind IN ('email', 'webhook')),
    target      text        NOT NULL,
    settings    jsonb       NOT NULL DEFAULT '{}'::jsonb,
    secret_enc  text,
    enabled     boolean     NOT NULL DEFAULT true,
    created_at  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT notification_channels_secret_encrypted CHECK (
        secret_enc IS NULL OR secret_enc LIKE 'gAAAAA%'
    ),
    CONSTRAINT notification_channels_settings_object CHECK (jsonb_typeof(settings) = 'object')
);

COMMENT ON TABLE sync.notification_channels IS
    'Where operator notifications go: an email address list (SMTP) or a JSON webhook (Slack incoming webhooks accept it), for one company or all.';
COMMENT ON COLUMN sync.notification_channels.id IS
    'Channel id, as shown by `qbo-pipelines notify list`.';
COMMENT ON COLUMN sync.notification_channels.realm_id IS
    'The QBO company whose notifications this channel receives; NULL: every company.';
COMMENT ON COLUMN sync.notification_channels.kind IS
    'email (sent over SMTP) or webhook (HTTP POST of a JSON message Slack accepts).';
COMMENT ON COLUMN sync.notification_channels.target IS
    'email: comma-separated recipient addresses; webhook: the URL (may embed a token: shown masked).';
COMMENT ON COLUMN sync.notification_channels.settings IS
    'Non-secret options: SMTP host, port, security (starttls, ssl, none), from, username; max_lines per digest.';
COMMENT ON COLUMN sync.notification_channels.secret_enc IS
    'Fernet ciphertext of the SMTP password or the webhook signing secret (HMAC-SHA256); never plaintext.';
COMMENT ON COLUMN sync.notification_channels.enabled IS
    'Disabled channels are kept (with their history) but receive nothing.';
COMMENT ON COLUMN sync.notification_channels.created_at IS
    'When the channel was added.';

CREATE TABLE IF NOT EXISTS sync.notification_deliveries (
    notification_id  bigint      NOT NULL REFERENCES sync.notifications (id) ON DELETE CASCADE,
    channel_id       bigint      NOT NULL
                     REFERENCES sync.notification_channels (id) ON DELETE CASCADE,
    kind             text        NOT NULL CHECK (kind IN ('opened', 'resolved')),
    status           text        NOT NULL CHECK (status IN ('sent', 'failed')),
    attempts         integer     NOT NULL DEFAULT 1 CHECK (attempts >= 1),
    last_error       text,
    next_attempt_at  timestamptz,
    sent_at          timestamptz,
    updated_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (notification_id, channel_id, kind)
);
CREATE INDEX IF NOT EXISTS notification_deliveries_retry_idx
    ON sync.notification_deliveries (channel_id, next_attempt_at) WHERE status = 'failed';

COMMENT ON TABLE sync.notification_deliveries IS
    'One row per notification, channel and kind: each problem is announced once per channel, and its resolution once; failed sends are retried with backoff.';
COMMENT ON COLUMN sync.notification_deliveries.notification_id IS
    'The notification (sync.notifications.id).';
COMMENT ON COLUMN sync.notification_deliveries.channel_id IS
    'The channel (sync.notification_channels.id).';
COMMENT ON COLUMN sync.notification_deliveries.kind IS
    'opened: the problem was announced; resolved: its resolution was announced (only after opened was sent).';
COMMENT ON COLUMN sync.notification_deliveries.status IS
    'sent, or failed (retried at next_attempt_at while the notification is still relevant).';
COMMENT ON COLUMN sync.notification_deliveries.attempts IS
    'Send attempts so far (the backoff doubles with each failure).';
COMMENT ON COLUMN sync.notification_deliveries.last_error IS
    'Why the last attempt failed (SMTP or HTTP error; URLs masked, never a secret).';
COMMENT ON COLUMN sync.notification_deliveries.next_attempt_at IS
    'When a failed delivery is due again; the whole channel waits until then.';
COMMENT ON COLUMN sync.notification_deliveries.sent_at IS
    'When it was sent (NULL while failed).';
COMMENT ON COLUMN sync.notification_deliveries.updated_at IS
    'Last attempt.';
