-- Sync engine v2: one state row per (company, entity, record), both directions. Idempotent.
--
-- sync.record_state replaces the id map as the engine's only decision input (the ledger stays
-- the append-only history and is never scanned to decide). sync.id_map becomes a view over it
-- for the readers that know the old shape (marts, operators' queries).

CREATE TABLE IF NOT EXISTS sync.record_state (
    realm_id          text        NOT NULL,
    entity            text        NOT NULL,
    source_id         text,
    qbo_entity        text,
    qbo_id            text,
    created_by        text        NOT NULL DEFAULT 'sync'
                      CHECK (created_by IN ('sync', 'matched', 'qbo')),
    status            text        NOT NULL DEFAULT 'synced'
                      CHECK (status IN ('synced', 'pending', 'held', 'failed', 'skipped',
                                        'deleted')),
    source_hash       text,
    source_base       jsonb,
    qbo_base          jsonb,
    qbo_hash          text,
    sync_token        text,
    qbo_updated_at    timestamptz,
    name_key          text,
    deleted_in_source boolean     NOT NULL DEFAULT false,
    deleted_in_qbo    boolean     NOT NULL DEFAULT false,
    attempt           integer     NOT NULL DEFAULT 0,
    intent            jsonb,
    dispatch_id       text,
    error_code        text,
    error_message     text,
    fix               text,
    retry_at          timestamptz,
    sent_at           timestamptz,
    sent_to           text,
    last_synced_at    timestamptz,
    last_run_id       text,
    updated_at        timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT record_state_has_an_id CHECK (source_id IS NOT NULL OR qbo_id IS NOT NULL)
);
CREATE UNIQUE INDEX IF NOT EXISTS record_state_source_uq
    ON sync.record_state (realm_id, entity, source_id) WHERE source_id IS NOT NULL;
-- One QBO record never maps to two source records.
CREATE UNIQUE INDEX IF NOT EXISTS record_state_qbo_uq
    ON sync.record_state (realm_id, qbo_entity, qbo_id) WHERE qbo_id IS NOT NULL;
-- QBO's shared name space (Customer, Vendor, Employee DisplayName: case-insensitive, trimmed).
CREATE UNIQUE INDEX IF NOT EXISTS record_state_name_uq
    ON sync.record_state (realm_id, name_key) WHERE name_key IS NOT NULL;
CREATE INDEX IF NOT EXISTS record_state_status_idx
    ON sync.record_state (realm_id, entity, status) WHERE status <> 'synced';
CREATE INDEX IF NOT EXISTS record_state_dispatch_idx
    ON sync.record_state (realm_id, dispatch_id) WHERE dispatch_id IS NOT NULL;

COMMENT ON TABLE sync.record_state IS 'Sync engine state, one row per company, entity and record: ids on both sides, the last synced base of each side, versions, status and the open write intent.';
COMMENT ON COLUMN sync.record_state.realm_id IS 'QBO company (realmId).';
COMMENT ON COLUMN sync.record_state.entity IS 'Catalogue entity (customers, invoices, ...).';
COMMENT ON COLUMN sync.record_state.source_id IS 'Id in the source app.';
COMMENT ON COLUMN sync.record_state.qbo_entity IS 'QBO entity of the linked record (Invoice, CreditMemo, ...).';
COMMENT ON COLUMN sync.record_state.qbo_id IS 'QBO Id of the linked record.';
COMMENT ON COLUMN sync.record_state.created_by IS 'sync (the sync created it in QBO), matched (found in QBO by name) or qbo (pulled from QBO).';
COMMENT ON COLUMN sync.record_state.status IS 'synced, pending (a write intent is open), held (quarantined), failed (QBO refused; retried at retry_at), skipped, deleted.';
COMMENT ON COLUMN sync.record_state.source_hash IS 'Content hash of the canonical source record at the last sync.';
COMMENT ON COLUMN sync.record_state.source_base IS 'The source side of the last synced base: the QBO fields as the source held them.';
COMMENT ON COLUMN sync.record_state.qbo_base IS 'The QBO side of the last synced base: QBO''s values of the managed fields after the last sync.';
COMMENT ON COLUMN sync.record_state.qbo_hash IS 'Hash of qbo_base (detects changes made in QBO).';
COMMENT ON COLUMN sync.record_state.sync_token IS 'QBO SyncToken of the version in qbo_base.';
COMMENT ON COLUMN sync.record_state.qbo_updated_at IS 'QBO MetaData.LastUpdatedTime of that version.';
COMMENT ON COLUMN sync.record_state.name_key IS 'The name as QBO compares it (lower case, trimmed): one per company across customers and vendors.';
COMMENT ON COLUMN sync.record_state.deleted_in_source IS 'The record was deleted in the source app.';
COMMENT ON COLUMN sync.record_state.deleted_in_qbo IS 'The QBO record was deleted (or voided) in QBO.';
COMMENT ON COLUMN sync.record_state.attempt IS 'Definite failures of the current write; part of the next requestid.';
COMMENT ON COLUMN sync.record_state.intent IS 'The open write intent (operation, exact body, requestid, new base), stored before the call and replayed verbatim until QBO answers.';
COMMENT ON COLUMN sync.record_state.dispatch_id IS 'The HTTP call (sync.dispatches) that carries the open intent.';
COMMENT ON COLUMN sync.record_state.error_code IS 'QBO error code of the last failure.';
COMMENT ON COLUMN sync.record_state.error_message IS 'What QBO said on the last failure.';
COMMENT ON COLUMN sync.record_state.fix IS 'What a person should do about the last failure.';
COMMENT ON COLUMN sync.record_state.retry_at IS 'When a failed record is tried again automatically.';
COMMENT ON COLUMN sync.record_state.sent_at IS 'When QBO emailed the invoice on the source''s request (R18).';
COMMENT ON COLUMN sync.record_state.sent_to IS 'The address it was sent to.';
COMMENT ON COLUMN sync.record_state.last_synced_at IS 'When both sides last agreed.';
COMMENT ON COLUMN sync.record_state.last_run_id IS 'Dagster run id that last wrote this row.';
COMMENT ON COLUMN sync.record_state.updated_at IS 'When this row last changed.';

-- One HTTP write call: a batch (<= 30 operations) or a single operation, in the order sent.
CREATE TABLE IF NOT EXISTS sync.dispatches (
    realm_id    text        NOT NULL,
    request_id  text        NOT NULL,
    entity      text        NOT NULL,
    single      boolean     NOT NULL,
    members     text[]      NOT NULL,
    ops         json        NOT NULL,
    run_id      text,
    created_at  timestamptz NOT NULL DEFAULT now(),
    done_at     timestamptz,
    PRIMARY KEY (realm_id, request_id)
);
CREATE INDEX IF NOT EXISTS dispatches_open_idx ON sync.dispatches (realm_id, entity)
    WHERE done_at IS NULL;
COMMENT ON TABLE sync.dispatches IS 'Write calls sent (or about to be) to QBO: requestid and member records in order. Open ones (done_at null) are replayed verbatim before anything new is planned.';
COMMENT ON COLUMN sync.dispatches.realm_id IS 'QBO company (realmId).';
COMMENT ON COLUMN sync.dispatches.request_id IS 'The requestid of the call (QBO replays its first answer for a repeat).';
COMMENT ON COLUMN sync.dispatches.entity IS 'Catalogue entity of the members.';
COMMENT ON COLUMN sync.dispatches.single IS 'true: one operation on its own endpoint; false: a batch call.';
COMMENT ON COLUMN sync.dispatches.members IS 'Source ids of the member records, in bId order.';
COMMENT ON COLUMN sync.dispatches.ops IS 'The exact operations sent (entity, operation, body, requestid) as JSON text in the order sent, replayed byte for byte.';
COMMENT ON COLUMN sync.dispatches.run_id IS 'Dagster run id that created it.';
COMMENT ON COLUMN sync.dispatches.created_at IS 'When the intent was stored.';
COMMENT ON COLUMN sync.dispatches.done_at IS 'When every member''s outcome was recorded.';

-- Carry the old id map over once, then replace it by a view of the same shape.
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
               WHERE n.nspname = 'sync' AND c.relname = 'id_map' AND c.relkind = 'r') THEN
        INSERT INTO sync.record_state (realm_id, entity, source_id, qbo_entity, qbo_id,
            created_by, status, source_hash, source_base, qbo_base, sync_token,
            deleted_in_source, deleted_in_qbo, sent_at, sent_to, last_synced_at, last_run_id)
        SELECT m.realm_id, m.entity, m.source_id,
               CASE m.entity WHEN 'customers' THEN 'Customer' WHEN 'items' THEN 'Item'
                             WHEN 'invoices' THEN 'Invoice' WHEN 'payments' THEN 'Payment'
                             WHEN 'vendors' THEN 'Vendor' WHEN 'bills' THEN 'Bill'
                             ELSE m.entity END,
               m.qbo_id, m.created_by,
               CASE WHEN m.deleted_in_source OR m.deleted_in_qbo THEN 'deleted' ELSE 'synced' END,
               m.source_hash, m.last_payload, m.last_payload, m.sync_token,
               m.deleted_in_source, m.deleted_in_qbo, m.sent_at, m.sent_to, m.last_synced_at,
               m.last_run_id
        FROM sync.id_map m
        ON CONFLICT DO NOTHING;
        DROP TABLE sync.id_map CASCADE;
    END IF;
END $$;

CREATE OR REPLACE VIEW sync.id_map AS
SELECT realm_id, entity, source_id, qbo_id, qbo_entity, created_by, sync_token, source_hash,
       qbo_hash, qbo_updated_at AS qbo_updated_at, deleted_in_source, deleted_in_qbo,
       coalesce(last_synced_at, updated_at) AS last_synced_at, last_run_id,
       source_base AS last_payload, sent_at, sent_to
FROM sync.record_state
WHERE qbo_id IS NOT NULL;
COMMENT ON VIEW sync.id_map IS 'Source id <-> QBO Id per company and entity (a view of sync.record_state).';
