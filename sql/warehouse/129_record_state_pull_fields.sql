-- Which QBO fields the pull has still to bring into the source (pull_due says only that some
-- are): a conflict QBO won or a field only QBO changed, met by the push's merge. What copies a
-- customer's email into other records (its invoices' BillEmail, R18) waits while the email is
-- among them, so the value that lost never reaches QBO through another record (R34).
ALTER TABLE sync.record_state ADD COLUMN IF NOT EXISTS pull_fields text[] NOT NULL DEFAULT '{}';
COMMENT ON COLUMN sync.record_state.pull_fields IS 'QBO fields whose value QBO holds and the source does not yet (the pull brings them; set with pull_due, cleared by the pull).';
