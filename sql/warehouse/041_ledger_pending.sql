-- Write-ahead intents: a 'pending' ledger row is appended for every write just before its batch
-- is sent, with the batch's verbatim operations, so a run killed mid-batch is recovered by
-- replaying that batch exactly (same requestid: QBO replays instead of writing twice, R33).
ALTER TABLE sync.ledger DROP CONSTRAINT IF EXISTS ledger_outcome_check;
ALTER TABLE sync.ledger ADD CONSTRAINT ledger_outcome_check
    CHECK (outcome IN ('ok', 'failed', 'held', 'skipped', 'conflict', 'pending'));
