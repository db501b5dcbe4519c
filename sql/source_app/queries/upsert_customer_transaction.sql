-- One QBO transaction of a customer with its QBO link (R26), keyed on realm + type + QBO id.
INSERT INTO app.customer_transactions (
    contact_id, qbo_realm_id, txn_type, qbo_id, qbo_customer_id, doc_number, txn_date, total,
    balance, status, qbo_url, qbo_deleted)
VALUES (
    :contact_id, :realm_id, :txn_type, :qbo_id, :customer_qbo_id, :doc_number, :txn_date, :total,
    :balance, :status, :url, :deleted)
ON CONFLICT (qbo_realm_id, txn_type, qbo_id) DO UPDATE SET
    contact_id = coalesce(EXCLUDED.contact_id, app.customer_transactions.contact_id),
    qbo_customer_id = EXCLUDED.qbo_customer_id,
    doc_number = EXCLUDED.doc_number,
    txn_date = EXCLUDED.txn_date,
    total = EXCLUDED.total,
    balance = EXCLUDED.balance,
    status = EXCLUDED.status,
    qbo_url = EXCLUDED.qbo_url,
    qbo_deleted = EXCLUDED.qbo_deleted
