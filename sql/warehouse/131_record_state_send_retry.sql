-- When QBO refused to email an invoice (R18: the sandbox's 40 emails a day, a bad address), the
-- send waits for its own retry time, whatever else is written meanwhile: an update of the
-- invoice (a source edit, a mapping re-plan) leaves the record failed for the send, with the
-- send's reason, fix and retry time, instead of emailing at once (a call refused again).
ALTER TABLE sync.record_state ADD COLUMN IF NOT EXISTS send_retry_at timestamptz;
COMMENT ON COLUMN sync.record_state.send_retry_at IS 'When an email QBO refused to send is tried again (set by a refused send, cleared by a sent one or a refused write).';
