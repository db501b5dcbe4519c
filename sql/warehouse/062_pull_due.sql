-- The pull owes the source QBO's value of some fields (a conflict QBO won while pushing). Idempotent.
ALTER TABLE sync.record_state ADD COLUMN IF NOT EXISTS pull_due boolean NOT NULL DEFAULT false;
COMMENT ON COLUMN sync.record_state.pull_due IS 'QBO won a conflict while pushing: the next pull brings QBO''s value into the source (R34), whatever QBO''s version.';
CREATE INDEX IF NOT EXISTS record_state_pull_due_idx ON sync.record_state (realm_id, entity)
    WHERE pull_due;
