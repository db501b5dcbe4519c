-- OAuth tokens per connected QBO company (SPEC R1, R2). Owned by qbo_pipelines/qbo/auth.py.
-- Tokens are stored ONLY as Fernet ciphertexts (key from QBO_PIPELINES_TOKEN_KEY); the CHECK makes
-- a plaintext write fail. Refreshes serialise on this row (SELECT ... FOR UPDATE). Idempotent.

CREATE TABLE IF NOT EXISTS sync.qbo_tokens (
    realm_id            text        PRIMARY KEY REFERENCES sync.companies (realm_id) ON DELETE CASCADE,
    api_base_url        text,
    access_token_enc    text        NOT NULL,
    refresh_token_enc   text        NOT NULL,
    access_expires_at   timestamptz NOT NULL,
    refresh_expires_at  timestamptz,
    generation          bigint      NOT NULL DEFAULT 1,
    refreshed_at        timestamptz NOT NULL DEFAULT now(),
    created_at          timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT qbo_tokens_encrypted CHECK (
        access_token_enc LIKE 'gAAAAA%' AND refresh_token_enc LIKE 'gAAAAA%'
    )
);

COMMENT ON TABLE sync.qbo_tokens IS
    'Encrypted (Fernet) OAuth access and refresh tokens per company; generation counts refreshes. Never plaintext.';
COMMENT ON COLUMN sync.qbo_tokens.api_base_url IS
    'QBO API host the company lives on (production, Intuit sandbox, or the local sandbox).';
COMMENT ON COLUMN sync.qbo_tokens.generation IS
    'Incremented on every refresh: the newest refresh token is always the one in this row.';
