-- A QBO change the pull cannot take yet (the source version is held back, e.g. a sale with an
-- unmapped tax rate) keeps the record a pull candidate, so every pull plans it again. Its skip
-- is written to the ledger once per QBO version: pull_skipped is that version and the reason
-- ("<SyncToken>: <reason>"), kept in the record's state, so the decision never reads the ledger.
ALTER TABLE sync.record_state ADD COLUMN IF NOT EXISTS pull_skipped text;
COMMENT ON COLUMN sync.record_state.pull_skipped IS 'The pull''s last skip of this record: QBO''s SyncToken and the reason ("<token>: <reason>"); the same skip of the same version is not recorded again.';
