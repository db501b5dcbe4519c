-- A QBO Invoice not created from the source: insert or update it as a QBO-origin sale (R16).
-- A deleted invoice is only flagged (qbo_deleted), never removed.
INSERT INTO app.sales (
    doc_number, contact_id, txn_date, due_date, currency, memo, send_requested, subtotal,
    discount_total, tax_total, total, balance, origin, qbo_realm_id, qbo_id, qbo_customer_id,
    qbo_email_status, qbo_deleted)
VALUES (
    :doc_number, :contact_id, :txn_date, :due_date, coalesce(:currency, 'USD'), :memo, false,
    :subtotal, :discount_total, :tax_total, :total, :balance, 'qbo', :realm_id, :qbo_id,
    :customer_qbo_id, :email_status, :deleted)
ON CONFLICT (qbo_realm_id, qbo_id) WHERE qbo_id IS NOT NULL DO UPDATE SET
    doc_number = EXCLUDED.doc_number,
    contact_id = coalesce(EXCLUDED.contact_id, app.sales.contact_id),
    txn_date = EXCLUDED.txn_date,
    due_date = EXCLUDED.due_date,
    memo = EXCLUDED.memo,
    subtotal = CASE WHEN app.sales.origin = 'qbo' THEN EXCLUDED.subtotal ELSE app.sales.subtotal END,
    discount_total = CASE WHEN app.sales.origin = 'qbo' THEN EXCLUDED.discount_total
                          ELSE app.sales.discount_total END,
    tax_total = CASE WHEN app.sales.origin = 'qbo' THEN EXCLUDED.tax_total ELSE app.sales.tax_total END,
    total = CASE WHEN app.sales.origin = 'qbo' THEN EXCLUDED.total ELSE app.sales.total END,
    balance = EXCLUDED.balance,
    qbo_customer_id = EXCLUDED.qbo_customer_id,
    qbo_email_status = EXCLUDED.qbo_email_status,
    qbo_deleted = EXCLUDED.qbo_deleted
