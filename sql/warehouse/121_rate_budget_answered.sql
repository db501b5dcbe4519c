-- A call in the shared QBO budget counts from its answer once answered (issue 9: QBO's limits
-- as one budget; no 429 from a request held up on its way). Idempotent.
--
-- QBO counts a call when it arrives, somewhere between our grant and its answer. The limiter
-- records the grant and, when the answer comes, moves the call's time to the answer (the latest
-- QBO can have counted it), so a request delayed on its way by a busy machine or network never
-- makes QBO see more calls in a window than were granted in it. The id names the call to move.

ALTER TABLE sync.rate_budget_call ADD COLUMN IF NOT EXISTS id bigserial;
CREATE UNIQUE INDEX IF NOT EXISTS rate_budget_call_id_idx ON sync.rate_budget_call (id);

COMMENT ON COLUMN sync.rate_budget_call.id IS 'The call, named so that its answer can move its time (at) to when it was answered.';
COMMENT ON COLUMN sync.rate_budget_call.at IS 'When the call was granted; once answered, when the answer came (the latest QBO can have counted it in its windows).';
