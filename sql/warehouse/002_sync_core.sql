-- Core sync state shared by every entity and direction. Idempotent.

CREATE TABLE IF NOT EXISTS sync.companies (
    realm_id        text PRIMARY KEY,
    company_name    text,
    status          text NOT NULL DEFAULT 'connected'
                    CHECK (status IN ('connected', 'needs_reconnect', 'disconnected')),
    status_reason   text,
    home_currency   text,
    connected_at    timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE sync.companies IS 'Connected QBO companies (realms); each is synced independently.';

-- One row per record known on both sides (or on one side, pending).
CREATE TABLE IF NOT EXISTS sync.id_map (
    realm_id          text        NOT NULL,
    entity            text        NOT NULL,          -- catalogue name, e.g. 'customers'
    source_id         text,                          -- id in the source app
    qbo_id            text,                          -- QBO Id
    created_by        text        NOT NULL CHECK (created_by IN ('sync', 'qbo', 'matched')),
    sync_token        text,                          -- QBO SyncToken after our last write/read
    source_hash       text,                          -- content hash of the source side at last sync
    qbo_hash          text,                          -- content hash of the QBO side at last sync
    source_updated_at timestamptz,
    qbo_updated_at    timestamptz,
    deleted_in_source boolean     NOT NULL DEFAULT false,
    deleted_in_qbo    boolean     NOT NULL DEFAULT false,
    last_synced_at    timestamptz NOT NULL DEFAULT now(),
    last_run_id       text,
    CONSTRAINT id_map_has_an_id CHECK (source_id IS NOT NULL OR qbo_id IS NOT NULL)
);
-- (From 060 on, sync.id_map is a view over sync.record_state; these apply to the old table.)
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
               WHERE n.nspname = 'sync' AND c.relname = 'id_map' AND c.relkind = 'r') THEN
        CREATE UNIQUE INDEX IF NOT EXISTS id_map_source_uq
            ON sync.id_map (realm_id, entity, source_id) WHERE source_id IS NOT NULL;
        CREATE UNIQUE INDEX IF NOT EXISTS id_map_qbo_uq
            ON sync.id_map (realm_id, entity, qbo_id) WHERE qbo_id IS NOT NULL;
        COMMENT ON TABLE sync.id_map IS 'Source id <-> QBO Id per company and entity, who created it, last-synced hashes and SyncToken.';
    END IF;
END $$;

-- Append-only per-record history (R37). Keyed by Dagster run id.
CREATE TABLE IF NOT EXISTS sync.ledger (
    id             bigserial   PRIMARY KEY,
    run_id         text,
    realm_id       text        NOT NULL,
    entity         text        NOT NULL,
    direction      text        NOT NULL CHECK (direction IN ('push', 'pull', 'reconcile')),
    source_id      text,
    qbo_id         text,
    operation      text        NOT NULL,  -- create, update, delete, void, match, send, skip, hold, conflict, upsert
    outcome        text        NOT NULL CHECK (outcome IN ('ok', 'failed', 'held', 'skipped', 'conflict')),
    error_code     text,
    error_message  text,
    request_id     text,
    payload_hash   text,
    details        jsonb,
    at             timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS ledger_record_idx ON sync.ledger (realm_id, entity, source_id, at);
CREATE INDEX IF NOT EXISTS ledger_qbo_idx ON sync.ledger (realm_id, entity, qbo_id, at);
CREATE INDEX IF NOT EXISTS ledger_run_idx ON sync.ledger (run_id);
COMMENT ON TABLE sync.ledger IS 'Append-only: every sync attempt per record, with direction, run id, outcome, error and ids on both sides.';

CREATE OR REPLACE FUNCTION sync.ledger_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'sync.ledger is append-only';
END $$;
DROP TRIGGER IF EXISTS ledger_no_update ON sync.ledger;
CREATE TRIGGER ledger_no_update BEFORE UPDATE OR DELETE ON sync.ledger
    FOR EACH ROW EXECUTE FUNCTION sync.ledger_append_only();

-- Named positions: source change-log sequence, QBO CDC time, per company.
CREATE TABLE IF NOT EXISTS sync.cursors (
    realm_id    text        NOT NULL,
    name        text        NOT NULL,
    value       text        NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (realm_id, name)
);

-- Webhook notifications as received (verified), deduplicated, processed by pull runs.
CREATE TABLE IF NOT EXISTS sync.webhook_inbox (
    id            bigserial   PRIMARY KEY,
    received_at   timestamptz NOT NULL DEFAULT now(),
    realm_id      text        NOT NULL,
    entity        text        NOT NULL,
    qbo_id        text        NOT NULL,
    operation     text        NOT NULL,
    last_updated  timestamptz,
    deleted_id    text,
    payload       jsonb,
    processed_at  timestamptz,
    CONSTRAINT webhook_inbox_dedupe UNIQUE (realm_id, entity, qbo_id, operation, last_updated)
);
CREATE INDEX IF NOT EXISTS webhook_inbox_pending_idx ON sync.webhook_inbox (realm_id, processed_at);

-- Records held back by data-quality rules or missing mappings (R40, R12).
CREATE TABLE IF NOT EXISTS sync.quarantine (
    realm_id     text        NOT NULL,
    entity       text        NOT NULL,
    source_id    text        NOT NULL,
    rule         text        NOT NULL,
    reason       text        NOT NULL,
    fix          text,
    first_seen   timestamptz NOT NULL DEFAULT now(),
    last_seen    timestamptz NOT NULL DEFAULT now(),
    last_run_id  text,
    resolved_at  timestamptz,
    PRIMARY KEY (realm_id, entity, source_id, rule)
);
COMMENT ON TABLE sync.quarantine IS 'Records held back with the rule broken, a reason a person can act on, and the fix.';

-- Operator notifications (R31): one open row per record and problem.
CREATE TABLE IF NOT EXISTS sync.notifications (
    id              bigserial   PRIMARY KEY,
    realm_id        text        NOT NULL,
    entity          text        NOT NULL,
    record_id       text        NOT NULL,
    severity        text        NOT NULL DEFAULT 'error' CHECK (severity IN ('info', 'warning', 'error')),
    title           text        NOT NULL,
    reason          text        NOT NULL,
    fix             text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    resolved_at     timestamptz
);
CREATE UNIQUE INDEX IF NOT EXISTS notifications_open_uq
    ON sync.notifications (realm_id, entity, record_id, title) WHERE resolved_at IS NULL;
