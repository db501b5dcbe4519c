-- Nightly reconciliation (R38): a run QBO failed (429/5xx/timeouts after the client's retries,
-- the company needing reconnecting) is recorded as 'failed' with its reason, never as 'clean';
-- a write a killed run left open is the finding kind 'unfinished_write'. Idempotent.

ALTER TABLE marts.reconciliation_runs
    DROP CONSTRAINT IF EXISTS reconciliation_runs_status_check;
ALTER TABLE marts.reconciliation_runs
    ADD CONSTRAINT reconciliation_runs_status_check
    CHECK (status IN ('clean', 'repaired', 'problems', 'failed'));

COMMENT ON COLUMN marts.reconciliation_runs.status IS 'clean (nothing differed and every checked figure agrees), repaired (every difference was repaired), problems (some need a person, or QBO''s count or CustomerBalance report still disagrees with the warehouse: see marts.reconciliation_findings, marts.reconciliation_figures and marts.open_problems) or failed (QBO could not be read or written even after retries, or the company needs reconnecting: nothing was concluded; the summary says why).';
COMMENT ON COLUMN marts.reconciliation_runs.summary IS 'The one-line summary printed by the CLI, the demo and the Dagster asset; for a failed run, the reason.';
COMMENT ON COLUMN marts.reconciliation_findings.kind IS 'not_in_qbo (never pushed), source_changed (a source change the push never saw), stale_in_warehouse (QBO changed after the warehouse''s copy), deleted_in_qbo (the QBO twin is gone, the source record is not), differs (a field differs on both sides while each is in step with the sync), unfinished_write (a write to QBO whose answer was never recorded, e.g. the process was killed: finished by replaying it with the same requestid).';
