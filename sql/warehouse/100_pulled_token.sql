-- The QBO version the pull last brought into the source. Idempotent.
--
-- The push adopts QBO's new SyncToken when its own payment moves an invoice's Balance (the
-- fields it manages are unchanged), so sync_token alone cannot tell the pull that QBO-owned
-- columns (a sale's balance and email status, a contact's active flag) moved: the pull
-- compares raw_qbo's version with this one as well.
ALTER TABLE sync.record_state ADD COLUMN IF NOT EXISTS pulled_token text;
COMMENT ON COLUMN sync.record_state.pulled_token IS 'SyncToken of the QBO version the pull last brought into the source (QBO-owned columns such as a sale''s balance included); NULL: never pulled. A raw_qbo row at another version is a pull candidate even when the push already adopted its SyncToken.';
