-- A record held back while it is live in QBO keeps its last synced base in source_hash (the
-- three-way diff needs it), so that hash cannot tell whether the content now planned is the
-- one already held: each run re-planned the held record and wrote the same hold to the ledger
-- again. held_hash is the content hash of the version held back; a re-plan of that same
-- version adds no ledger row (R37 stays a history of changes, not of runs).
ALTER TABLE sync.record_state ADD COLUMN IF NOT EXISTS held_hash text;
COMMENT ON COLUMN sync.record_state.held_hash IS 'Content hash of the source version held back (set with status held; a re-plan of the same version is not recorded again).';
