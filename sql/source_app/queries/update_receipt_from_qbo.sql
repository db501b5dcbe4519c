-- A QBO Payment linked to a source-created receipt: record the QBO id and deletion flag only.
UPDATE app.receipts SET qbo_realm_id = :realm_id, qbo_id = :qbo_id, qbo_deleted = :deleted
WHERE id = :source_id
