-- Push-direction state on the id map. Idempotent.
-- (From 060 on, sync.id_map is a view over sync.record_state; this applies to the old table.)
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
               WHERE n.nspname = 'sync' AND c.relname = 'id_map' AND c.relkind = 'r') THEN
        ALTER TABLE sync.id_map ADD COLUMN IF NOT EXISTS last_payload jsonb;
        ALTER TABLE sync.id_map ADD COLUMN IF NOT EXISTS sent_at timestamptz;
        ALTER TABLE sync.id_map ADD COLUMN IF NOT EXISTS sent_to text;
    END IF;
END $$;
COMMENT ON COLUMN sync.id_map.last_payload IS 'The QBO body the sync last wrote (basis of field-level sparse updates, R7).';
COMMENT ON COLUMN sync.id_map.sent_at IS 'When the invoice was emailed by QBO on the source''s request (R18).';

-- Per-company run switches can pause one company without touching its mappings (R30).
CREATE INDEX IF NOT EXISTS ledger_failed_idx ON sync.ledger (realm_id, entity, at)
    WHERE outcome = 'failed';
