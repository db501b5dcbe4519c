-- The QBO app's configuration, stored so that every command and Dagster run finds it without
-- environment variables (SPEC R1). Owned by qbo_pipelines/qbo/app.py. One row per name
-- ('default'). The client secret is stored ONLY as a Fernet ciphertext, with the same key as the
-- tokens (QBO_PIPELINES_TOKEN_KEY or the local .data/token.key); the CHECK makes a plaintext
-- write fail. Environment variables, when set, win over this row. Idempotent.

CREATE TABLE IF NOT EXISTS sync.qbo_app (
    name               text        PRIMARY KEY DEFAULT 'default',
    client_id          text        NOT NULL,
    client_secret_enc  text        NOT NULL,
    api_url            text        NOT NULL,
    oauth_url          text,
    redirect_uri       text        NOT NULL,
    origin             text        NOT NULL DEFAULT 'cli'
                       CHECK (origin IN ('cli', 'demo-sandbox')),
    updated_at         timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT qbo_app_secret_encrypted CHECK (client_secret_enc LIKE 'gAAAAA%')
);

COMMENT ON TABLE sync.qbo_app IS
    'The QBO app (client id, Fernet-encrypted client secret, API/OAuth hosts, redirect URI); env vars win over it.';
COMMENT ON COLUMN sync.qbo_app.origin IS
    'demo-sandbox: written by make demo for the local sandbox (CLI commands serve that sandbox when it is not running); cli: written by connect.';
