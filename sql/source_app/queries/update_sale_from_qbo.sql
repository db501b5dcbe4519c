-- A QBO Invoice linked to a source-created sale: reflect QBO-side header changes (balance,
-- email status, dates, memo) and record the QBO id. Lines stay the source's own.
UPDATE app.sales SET
    due_date = :due_date,
    memo = :memo,
    balance = :balance,
    qbo_realm_id = :realm_id,
    qbo_id = :qbo_id,
    qbo_customer_id = :customer_qbo_id,
    qbo_email_status = :email_status,
    qbo_deleted = :deleted
WHERE id = :source_id
