-- A cheap pre-filter for full re-plans: the source row's hash (computed by Postgres over the
-- record's read query row and its lines) when the record was last in step. Idempotent.
ALTER TABLE sync.record_state ADD COLUMN IF NOT EXISTS source_row_hash text;
COMMENT ON COLUMN sync.record_state.source_row_hash IS 'Hash of the source row (and lines) as Postgres read it when the record was last in step; a full re-plan builds only records whose row hash moved.';
