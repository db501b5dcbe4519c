-- A call of the shared QBO budget counts as made now while it is on the wire (issue 9: QBO's
-- limits as one budget, used to the full). Idempotent.
--
-- QBO counts a call when it arrives, somewhere between our grant and its answer. An answered
-- call counts from its answer (migration 121). A call still in flight may arrive at any moment,
-- so every process counts it as made now: a request held up on its way can never make QBO see
-- more calls in a window than were granted in it, and the windows no longer need a wide margin
-- for such delays (which cost 3 % of the budget: 10 calls per 1.15 s is barely above 500/min).
-- A call whose process died (its limiter session ended, holder) counts from its grant. Rows
-- from before this migration are answered (or lost with their process).

ALTER TABLE sync.rate_budget_call ADD COLUMN IF NOT EXISTS answered boolean NOT NULL DEFAULT true;

COMMENT ON COLUMN sync.rate_budget_call.answered IS 'False while the call is on the wire: it then counts as made now in every window (a call unanswered for minutes was lost with its process and counts from its grant).';

ALTER TABLE sync.rate_budget_call ADD COLUMN IF NOT EXISTS holder integer;

COMMENT ON COLUMN sync.rate_budget_call.holder IS 'The backend pid of the limiter session that granted the call: a call unanswered whose session has ended (its process was killed) counts from its grant.';
