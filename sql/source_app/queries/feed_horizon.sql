-- The commit-safe horizon of the change log: every transaction with a txid below it has ended
-- (committed or rolled back), so no change-log row with txid < horizon can still appear.
-- Reading [previous horizon, this horizon) never skips a slow transaction that took a lower
-- seq and committed later, and never reads a row twice. No params.
SELECT txid_snapshot_xmin(txid_current_snapshot()) AS horizon
