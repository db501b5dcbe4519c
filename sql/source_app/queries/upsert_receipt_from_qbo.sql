-- A QBO Payment not created from the source: insert or update it as a QBO-origin receipt against
-- the synced sale (R20). A deleted payment is only flagged, never removed (R22).
INSERT INTO app.receipts (
    sale_id, contact_id, amount, received_on, payment_method_name, reference, origin,
    qbo_realm_id, qbo_id, qbo_deleted)
VALUES (
    :sale_id, :contact_id, :amount, :received_on, :payment_method_name, :reference, 'qbo',
    :realm_id, :qbo_id, :deleted)
ON CONFLICT (qbo_realm_id, qbo_id) WHERE qbo_id IS NOT NULL DO UPDATE SET
    sale_id = coalesce(EXCLUDED.sale_id, app.receipts.sale_id),
    contact_id = coalesce(EXCLUDED.contact_id, app.receipts.contact_id),
    amount = CASE WHEN app.receipts.origin = 'qbo' THEN EXCLUDED.amount ELSE app.receipts.amount END,
    received_on = CASE WHEN app.receipts.origin = 'qbo' THEN EXCLUDED.received_on
                       ELSE app.receipts.received_on END,
    payment_method_name = EXCLUDED.payment_method_name,
    reference = EXCLUDED.reference,
    qbo_deleted = EXCLUDED.qbo_deleted
