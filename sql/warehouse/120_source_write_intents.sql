-- The pull's intents (issue 9: plan -> intent -> write -> record, in both directions). Idempotent.
--
-- The pull writes into the source app's database and records the outcome in the warehouse: two
-- databases, two commits. A pull killed between them would leave a write in the source that
-- sync.ledger never heard of (nothing lost: the next pull finds both sides equal, but the
-- history would miss the write, R37). So before the source transaction the pull stores each
-- planned column write here (committed), and removes it in the warehouse transaction that
-- records the outcome. A row still here when the next pull of the entity starts is a write
-- whose run stopped in between: if the source row holds the intended values the write landed
-- and its ledger entry is added then (once); otherwise it never landed and is dropped (the
-- record is planned again as usual).

CREATE TABLE IF NOT EXISTS sync.source_write_intents (
    realm_id    text        NOT NULL,
    entity      text        NOT NULL,
    qbo_id      text        NOT NULL,
    source_id   text        NOT NULL,
    run_id      text,
    qbo_token   text,
    columns     jsonb       NOT NULL,
    details     jsonb       NOT NULL DEFAULT '{}',
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (realm_id, entity, qbo_id)
);

COMMENT ON TABLE sync.source_write_intents IS 'Column writes the pull is about to make in the source app, stored (committed) before the source transaction and removed with the warehouse transaction that records them: a row left here is a write whose run stopped between the two commits; the next pull of the entity records it in sync.ledger if it landed (R37) and drops it either way.';
COMMENT ON COLUMN sync.source_write_intents.realm_id IS 'The QBO company (realmId).';
COMMENT ON COLUMN sync.source_write_intents.entity IS 'Catalogue entity (customers, invoices, payments, ...).';
COMMENT ON COLUMN sync.source_write_intents.qbo_id IS 'The QBO record whose change the write carries.';
COMMENT ON COLUMN sync.source_write_intents.source_id IS 'The source app row written.';
COMMENT ON COLUMN sync.source_write_intents.run_id IS 'The run (Dagster run id) that planned the write.';
COMMENT ON COLUMN sync.source_write_intents.qbo_token IS 'The QBO version (SyncToken) the write brings in.';
COMMENT ON COLUMN sync.source_write_intents.columns IS 'Source column -> the value written (JSON: numbers as text, dates ISO 8601): what the source row holds if the write landed.';
COMMENT ON COLUMN sync.source_write_intents.details IS 'The ledger details of the write (fields taken from QBO, columns set), used for its ledger entry when a later pull records it.';
COMMENT ON COLUMN sync.source_write_intents.created_at IS 'When the intent was stored.';
