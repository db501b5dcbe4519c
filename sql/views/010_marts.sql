-- Analyst-facing views over raw_qbo (what QBO holds, per company) joined to the sync state.
-- Re-applied on every migrate (CREATE OR REPLACE VIEW). No percent signs in this file.

CREATE OR REPLACE FUNCTION marts.qbo_url(txn_type text, qbo_id text) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    SELECT 'https://app.qbo.intuit.com/app/'
        || CASE txn_type
               WHEN 'Invoice' THEN 'invoice?txnId='
               WHEN 'Payment' THEN 'recvpayment?txnId='
               WHEN 'SalesReceipt' THEN 'salesreceipt?txnId='
               WHEN 'Estimate' THEN 'estimate?txnId='
               WHEN 'CreditMemo' THEN 'creditmemo?txnId='
               WHEN 'RefundReceipt' THEN 'refundreceipt?txnId='
               WHEN 'Bill' THEN 'bill?txnId='
               WHEN 'BillPayment' THEN 'billpayment?txnId='
               WHEN 'Customer' THEN 'customerdetail?nameId='
               WHEN 'Vendor' THEN 'vendordetail?nameId='
               ELSE lower(txn_type) || '?txnId='
           END
        || qbo_id
$$;
COMMENT ON FUNCTION marts.qbo_url(text, text) IS 'URL that opens a QBO record in the QBO web app (R26).';

-- customers ----------------------------------------------------------------------------------
CREATE OR REPLACE VIEW marts.customers AS
SELECT c.realm_id, c.qbo_id, m.source_id, m.created_by,
       c.name AS display_name,
       c.data ->> 'CompanyName' AS company_name,
       c.data ->> 'GivenName' AS given_name,
       c.data ->> 'FamilyName' AS family_name,
       c.data -> 'PrimaryEmailAddr' ->> 'Address' AS email,
       c.data -> 'PrimaryPhone' ->> 'FreeFormNumber' AS phone,
       c.active, c.balance, c.updated_time, c.deleted,
       marts.qbo_url('Customer', c.qbo_id) AS qbo_url
FROM raw_qbo.customers c
LEFT JOIN sync.id_map m
       ON m.realm_id = c.realm_id AND m.entity = 'customers' AND m.qbo_id = c.qbo_id;
COMMENT ON VIEW marts.customers IS 'QBO Customers per company, with the linked source contact (if any).';
COMMENT ON COLUMN marts.customers.realm_id IS 'QBO company (realmId).';
COMMENT ON COLUMN marts.customers.qbo_id IS 'QBO Customer Id.';
COMMENT ON COLUMN marts.customers.source_id IS 'Source-app contact id linked by the sync (NULL: QBO-only).';
COMMENT ON COLUMN marts.customers.created_by IS 'Who created the link: sync (we created it in QBO), matched (R5 DisplayName match), qbo (pulled from QBO).';
COMMENT ON COLUMN marts.customers.display_name IS 'QBO DisplayName (unique across customers, vendors, employees).';
COMMENT ON COLUMN marts.customers.company_name IS 'QBO CompanyName.';
COMMENT ON COLUMN marts.customers.given_name IS 'QBO GivenName.';
COMMENT ON COLUMN marts.customers.family_name IS 'QBO FamilyName.';
COMMENT ON COLUMN marts.customers.email IS 'QBO PrimaryEmailAddr.';
COMMENT ON COLUMN marts.customers.phone IS 'QBO PrimaryPhone.';
COMMENT ON COLUMN marts.customers.active IS 'False when made inactive in QBO.';
COMMENT ON COLUMN marts.customers.balance IS 'Open balance in home currency.';
COMMENT ON COLUMN marts.customers.updated_time IS 'QBO MetaData.LastUpdatedTime.';
COMMENT ON COLUMN marts.customers.deleted IS 'Deleted in QBO (captured by CDC, R36).';
COMMENT ON COLUMN marts.customers.qbo_url IS 'Opens the customer in QBO.';

-- invoices -----------------------------------------------------------------------------------
CREATE OR REPLACE VIEW marts.invoices AS
SELECT i.realm_id, i.qbo_id, m.source_id, m.created_by, i.doc_number,
       i.ref_id AS customer_qbo_id, i.ref_name AS customer_name,
       i.txn_date, i.due_date, i.total_amt, i.balance,
       (i.data -> 'TxnTaxDetail' ->> 'TotalTax')::numeric AS tax_total,
       i.data ->> 'EmailStatus' AS email_status,
       i.data -> 'BillEmail' ->> 'Address' AS bill_email,
       i.data -> 'CurrencyRef' ->> 'value' AS currency,
       i.updated_time, i.deleted,
       marts.qbo_url('Invoice', i.qbo_id) AS qbo_url
FROM raw_qbo.invoices i
LEFT JOIN sync.id_map m
       ON m.realm_id = i.realm_id AND m.entity = 'invoices' AND m.qbo_id = i.qbo_id;
COMMENT ON VIEW marts.invoices IS 'QBO Invoices per company, with the linked source sale (if any).';
COMMENT ON COLUMN marts.invoices.realm_id IS 'QBO company (realmId).';
COMMENT ON COLUMN marts.invoices.qbo_id IS 'QBO Invoice Id.';
COMMENT ON COLUMN marts.invoices.source_id IS 'Source-app sale id linked by the sync (NULL: QBO-only).';
COMMENT ON COLUMN marts.invoices.created_by IS 'sync = created from the source (deletable from the source, R17); qbo = pulled from QBO.';
COMMENT ON COLUMN marts.invoices.doc_number IS 'Invoice number (DocNumber).';
COMMENT ON COLUMN marts.invoices.customer_qbo_id IS 'QBO Customer Id (CustomerRef).';
COMMENT ON COLUMN marts.invoices.customer_name IS 'Customer display name (CustomerRef.name).';
COMMENT ON COLUMN marts.invoices.txn_date IS 'Invoice date.';
COMMENT ON COLUMN marts.invoices.due_date IS 'Due date.';
COMMENT ON COLUMN marts.invoices.total_amt IS 'Total including tax, after discounts.';
COMMENT ON COLUMN marts.invoices.balance IS 'Amount still owed.';
COMMENT ON COLUMN marts.invoices.tax_total IS 'TxnTaxDetail.TotalTax.';
COMMENT ON COLUMN marts.invoices.email_status IS 'NotSet, NeedToSend or EmailSent (R18).';
COMMENT ON COLUMN marts.invoices.bill_email IS 'Where QBO emails the invoice.';
COMMENT ON COLUMN marts.invoices.currency IS 'Invoice currency (the company home currency for pushed invoices, R15).';
COMMENT ON COLUMN marts.invoices.updated_time IS 'QBO MetaData.LastUpdatedTime.';
COMMENT ON COLUMN marts.invoices.deleted IS 'Deleted in QBO (R36).';
COMMENT ON COLUMN marts.invoices.qbo_url IS 'Opens the invoice in QBO.';

-- invoice lines ------------------------------------------------------------------------------
CREATE OR REPLACE VIEW marts.invoice_lines AS
SELECT i.realm_id, i.qbo_id AS invoice_qbo_id, l.ord::integer AS line_index,
       l.line ->> 'Id' AS line_id,
       l.line ->> 'DetailType' AS detail_type,
       l.line ->> 'Description' AS description,
       (l.line ->> 'Amount')::numeric AS amount,
       l.line -> 'SalesItemLineDetail' -> 'ItemRef' ->> 'value' AS item_qbo_id,
       l.line -> 'SalesItemLineDetail' -> 'ItemRef' ->> 'name' AS item_name,
       (l.line -> 'SalesItemLineDetail' ->> 'Qty')::numeric AS qty,
       (l.line -> 'SalesItemLineDetail' ->> 'UnitPrice')::numeric AS unit_price,
       l.line -> 'SalesItemLineDetail' -> 'TaxCodeRef' ->> 'value' AS tax_code,
       (l.line -> 'DiscountLineDetail' ->> 'DiscountPercent')::numeric AS discount_percent,
       i.deleted
FROM raw_qbo.invoices i
CROSS JOIN LATERAL jsonb_array_elements(
    CASE WHEN jsonb_typeof(i.data -> 'Line') = 'array' THEN i.data -> 'Line' ELSE '[]'::jsonb END
) WITH ORDINALITY AS l(line, ord)
WHERE coalesce(l.line ->> 'DetailType', '') <> 'SubTotalLineDetail';
COMMENT ON VIEW marts.invoice_lines IS 'Lines of QBO invoices (item, discount, description lines; the server subtotal line omitted).';
COMMENT ON COLUMN marts.invoice_lines.realm_id IS 'QBO company (realmId).';
COMMENT ON COLUMN marts.invoice_lines.invoice_qbo_id IS 'QBO Invoice Id.';
COMMENT ON COLUMN marts.invoice_lines.line_index IS 'Position of the line in the invoice (1-based).';
COMMENT ON COLUMN marts.invoice_lines.line_id IS 'QBO line Id.';
COMMENT ON COLUMN marts.invoice_lines.detail_type IS 'SalesItemLineDetail, DiscountLineDetail, DescriptionOnly, ...';
COMMENT ON COLUMN marts.invoice_lines.description IS 'Line description.';
COMMENT ON COLUMN marts.invoice_lines.amount IS 'Line amount.';
COMMENT ON COLUMN marts.invoice_lines.item_qbo_id IS 'QBO Item Id of a sales line.';
COMMENT ON COLUMN marts.invoice_lines.item_name IS 'QBO Item name.';
COMMENT ON COLUMN marts.invoice_lines.qty IS 'Quantity.';
COMMENT ON COLUMN marts.invoice_lines.unit_price IS 'Unit price.';
COMMENT ON COLUMN marts.invoice_lines.tax_code IS 'QBO tax code of the line.';
COMMENT ON COLUMN marts.invoice_lines.discount_percent IS 'Percent of a percentage discount line.';
COMMENT ON COLUMN marts.invoice_lines.deleted IS 'The invoice was deleted in QBO.';

-- payments -----------------------------------------------------------------------------------
CREATE OR REPLACE VIEW marts.payments AS
SELECT p.realm_id, p.qbo_id, m.source_id, m.created_by,
       p.ref_id AS customer_qbo_id, p.ref_name AS customer_name,
       p.txn_date, p.total_amt,
       (p.data ->> 'UnappliedAmt')::numeric AS unapplied_amt,
       p.data -> 'DepositToAccountRef' ->> 'value' AS deposit_account_qbo_id,
       p.data -> 'PaymentMethodRef' ->> 'value' AS payment_method_qbo_id,
       p.data ->> 'PaymentRefNum' AS reference,
       ARRAY(SELECT lt ->> 'TxnId'
             FROM jsonb_array_elements(CASE WHEN jsonb_typeof(p.data -> 'Line') = 'array'
                                            THEN p.data -> 'Line' ELSE '[]'::jsonb END) ln,
                  jsonb_array_elements(CASE WHEN jsonb_typeof(ln -> 'LinkedTxn') = 'array'
                                            THEN ln -> 'LinkedTxn' ELSE '[]'::jsonb END) lt
             WHERE lt ->> 'TxnType' = 'Invoice') AS invoice_qbo_ids,
       p.updated_time, p.deleted,
       marts.qbo_url('Payment', p.qbo_id) AS qbo_url
FROM raw_qbo.payments p
LEFT JOIN sync.id_map m
       ON m.realm_id = p.realm_id AND m.entity = 'payments' AND m.qbo_id = p.qbo_id;
COMMENT ON VIEW marts.payments IS 'QBO Payments per company, with the linked source receipt (if any).';
COMMENT ON COLUMN marts.payments.realm_id IS 'QBO company (realmId).';
COMMENT ON COLUMN marts.payments.qbo_id IS 'QBO Payment Id.';
COMMENT ON COLUMN marts.payments.source_id IS 'Source-app receipt id linked by the sync.';
COMMENT ON COLUMN marts.payments.created_by IS 'sync = created from a source receipt (R22); qbo = pulled.';
COMMENT ON COLUMN marts.payments.customer_qbo_id IS 'QBO Customer Id.';
COMMENT ON COLUMN marts.payments.customer_name IS 'Customer display name.';
COMMENT ON COLUMN marts.payments.txn_date IS 'Payment date.';
COMMENT ON COLUMN marts.payments.total_amt IS 'Amount received.';
COMMENT ON COLUMN marts.payments.unapplied_amt IS 'Part not applied to any invoice (credit).';
COMMENT ON COLUMN marts.payments.deposit_account_qbo_id IS 'Account deposited to (a Bank account for synced receipts, R21).';
COMMENT ON COLUMN marts.payments.payment_method_qbo_id IS 'QBO PaymentMethod Id.';
COMMENT ON COLUMN marts.payments.reference IS 'PaymentRefNum (check number, reference).';
COMMENT ON COLUMN marts.payments.invoice_qbo_ids IS 'Invoices the payment is applied to.';
COMMENT ON COLUMN marts.payments.updated_time IS 'QBO MetaData.LastUpdatedTime.';
COMMENT ON COLUMN marts.payments.deleted IS 'Deleted in QBO (R36).';
COMMENT ON COLUMN marts.payments.qbo_url IS 'Opens the payment in QBO.';

-- vendors ------------------------------------------------------------------------------------
CREATE OR REPLACE VIEW marts.vendors AS
SELECT v.realm_id, v.qbo_id, m.source_id, m.created_by,
       v.name AS display_name,
       v.data ->> 'GivenName' AS given_name,
       v.data ->> 'FamilyName' AS family_name,
       v.data -> 'PrimaryEmailAddr' ->> 'Address' AS email,
       v.active, v.balance, v.updated_time, v.deleted,
       marts.qbo_url('Vendor', v.qbo_id) AS qbo_url
FROM raw_qbo.vendors v
LEFT JOIN sync.id_map m
       ON m.realm_id = v.realm_id AND m.entity = 'vendors' AND m.qbo_id = v.qbo_id;
COMMENT ON VIEW marts.vendors IS 'QBO Vendors per company, with the linked source worker (if any).';
COMMENT ON COLUMN marts.vendors.realm_id IS 'QBO company (realmId).';
COMMENT ON COLUMN marts.vendors.qbo_id IS 'QBO Vendor Id.';
COMMENT ON COLUMN marts.vendors.source_id IS 'Source-app worker id linked by the sync.';
COMMENT ON COLUMN marts.vendors.created_by IS 'sync, matched or qbo.';
COMMENT ON COLUMN marts.vendors.display_name IS 'QBO DisplayName.';
COMMENT ON COLUMN marts.vendors.given_name IS 'QBO GivenName.';
COMMENT ON COLUMN marts.vendors.family_name IS 'QBO FamilyName.';
COMMENT ON COLUMN marts.vendors.email IS 'QBO PrimaryEmailAddr.';
COMMENT ON COLUMN marts.vendors.active IS 'False when inactive in QBO.';
COMMENT ON COLUMN marts.vendors.balance IS 'Amount owed to the vendor.';
COMMENT ON COLUMN marts.vendors.updated_time IS 'QBO MetaData.LastUpdatedTime.';
COMMENT ON COLUMN marts.vendors.deleted IS 'Deleted in QBO (R36).';
COMMENT ON COLUMN marts.vendors.qbo_url IS 'Opens the vendor in QBO.';

-- bills --------------------------------------------------------------------------------------
CREATE OR REPLACE VIEW marts.bills AS
SELECT b.realm_id, b.qbo_id, m.source_id, m.created_by, b.doc_number,
       b.ref_id AS vendor_qbo_id, b.ref_name AS vendor_name,
       b.txn_date, b.due_date, b.total_amt, b.balance, b.updated_time, b.deleted,
       marts.qbo_url('Bill', b.qbo_id) AS qbo_url
FROM raw_qbo.bills b
LEFT JOIN sync.id_map m
       ON m.realm_id = b.realm_id AND m.entity = 'bills' AND m.qbo_id = b.qbo_id;
COMMENT ON VIEW marts.bills IS 'QBO Bills per company, with the linked source worker invoice (if any).';
COMMENT ON COLUMN marts.bills.realm_id IS 'QBO company (realmId).';
COMMENT ON COLUMN marts.bills.qbo_id IS 'QBO Bill Id.';
COMMENT ON COLUMN marts.bills.source_id IS 'Source-app worker invoice id linked by the sync.';
COMMENT ON COLUMN marts.bills.created_by IS 'sync or qbo.';
COMMENT ON COLUMN marts.bills.doc_number IS 'Bill number (DocNumber).';
COMMENT ON COLUMN marts.bills.vendor_qbo_id IS 'QBO Vendor Id (VendorRef).';
COMMENT ON COLUMN marts.bills.vendor_name IS 'Vendor display name.';
COMMENT ON COLUMN marts.bills.txn_date IS 'Bill date.';
COMMENT ON COLUMN marts.bills.due_date IS 'Due date.';
COMMENT ON COLUMN marts.bills.total_amt IS 'Bill total.';
COMMENT ON COLUMN marts.bills.balance IS 'Amount still to pay.';
COMMENT ON COLUMN marts.bills.updated_time IS 'QBO MetaData.LastUpdatedTime.';
COMMENT ON COLUMN marts.bills.deleted IS 'Deleted in QBO (R36).';
COMMENT ON COLUMN marts.bills.qbo_url IS 'Opens the bill in QBO.';

-- customer transactions (R26) ----------------------------------------------------------------
CREATE OR REPLACE VIEW marts.customer_transactions AS
WITH txns AS (
    SELECT realm_id, 'Invoice' AS txn_type, qbo_id, ref_id, doc_number, txn_date, total_amt,
           balance, deleted, updated_time FROM raw_qbo.invoices
    UNION ALL
    SELECT realm_id, 'Payment', qbo_id, ref_id, doc_number, txn_date, total_amt, balance,
           deleted, updated_time FROM raw_qbo.payments
    UNION ALL
    SELECT realm_id, 'SalesReceipt', qbo_id, ref_id, doc_number, txn_date, total_amt, balance,
           deleted, updated_time FROM raw_qbo.sales_receipts
    UNION ALL
    SELECT realm_id, 'Estimate', qbo_id, ref_id, doc_number, txn_date, total_amt, balance,
           deleted, updated_time FROM raw_qbo.estimates
    UNION ALL
    SELECT realm_id, 'CreditMemo', qbo_id, ref_id, doc_number, txn_date, total_amt, balance,
           deleted, updated_time FROM raw_qbo.credit_memos
    UNION ALL
    SELECT realm_id, 'RefundReceipt', qbo_id, ref_id, doc_number, txn_date, total_amt, balance,
           deleted, updated_time FROM raw_qbo.refund_receipts
)
SELECT t.realm_id, t.ref_id AS customer_qbo_id, c.name AS customer_name,
       cm.source_id AS customer_source_id,
       t.txn_type, t.qbo_id, t.doc_number, t.txn_date, t.total_amt, t.balance, t.deleted,
       t.updated_time, marts.qbo_url(t.txn_type, t.qbo_id) AS qbo_url
FROM txns t
LEFT JOIN raw_qbo.customers c ON c.realm_id = t.realm_id AND c.qbo_id = t.ref_id
LEFT JOIN sync.id_map cm
       ON cm.realm_id = t.realm_id AND cm.entity = 'customers' AND cm.qbo_id = t.ref_id;
COMMENT ON VIEW marts.customer_transactions IS 'Every QBO transaction of each customer, with a link that opens it in QBO (R26).';
COMMENT ON COLUMN marts.customer_transactions.realm_id IS 'QBO company (realmId).';
COMMENT ON COLUMN marts.customer_transactions.customer_qbo_id IS 'QBO Customer Id.';
COMMENT ON COLUMN marts.customer_transactions.customer_name IS 'Customer display name.';
COMMENT ON COLUMN marts.customer_transactions.customer_source_id IS 'Linked source-app contact id.';
COMMENT ON COLUMN marts.customer_transactions.txn_type IS 'Invoice, Payment, SalesReceipt, Estimate, CreditMemo or RefundReceipt.';
COMMENT ON COLUMN marts.customer_transactions.qbo_id IS 'QBO transaction Id (unique per type).';
COMMENT ON COLUMN marts.customer_transactions.doc_number IS 'Document number.';
COMMENT ON COLUMN marts.customer_transactions.txn_date IS 'Transaction date.';
COMMENT ON COLUMN marts.customer_transactions.total_amt IS 'Transaction total.';
COMMENT ON COLUMN marts.customer_transactions.balance IS 'Open balance (invoices).';
COMMENT ON COLUMN marts.customer_transactions.deleted IS 'Deleted in QBO (R36).';
COMMENT ON COLUMN marts.customer_transactions.updated_time IS 'QBO MetaData.LastUpdatedTime.';
COMMENT ON COLUMN marts.customer_transactions.qbo_url IS 'Opens the transaction in QBO.';

-- per-record sync status (R37) ---------------------------------------------------------------
DROP VIEW IF EXISTS marts.sync_status;
CREATE VIEW marts.sync_status AS
SELECT m.realm_id, m.entity, m.source_id, m.qbo_id, m.created_by,
       coalesce(m.last_synced_at, m.updated_at) AS last_synced_at,
       m.deleted_in_source, m.deleted_in_qbo,
       l.direction AS last_direction, l.operation AS last_operation,
       l.outcome AS last_outcome, l.error_code AS last_error_code,
       l.error_message AS last_error_message, l.at AS last_attempt_at, l.run_id AS last_run_id,
       (m.status = 'held') AS held_back,
       m.status, m.qbo_entity
FROM sync.record_state m
LEFT JOIN LATERAL (
    SELECT * FROM sync.ledger x
    WHERE x.realm_id = m.realm_id AND x.entity = m.entity
      AND ((m.source_id IS NOT NULL AND x.source_id = m.source_id)
           OR (m.source_id IS NULL AND x.qbo_id = m.qbo_id))
    ORDER BY x.at DESC, x.id DESC
    LIMIT 1
) l ON true;
COMMENT ON VIEW marts.sync_status IS 'One row per record the sync knows (held back and failed ones included): ids on both sides, its status and its latest sync attempt (R37).';
COMMENT ON COLUMN marts.sync_status.realm_id IS 'QBO company (realmId).';
COMMENT ON COLUMN marts.sync_status.entity IS 'Catalogue entity (customers, invoices, payments, ...).';
COMMENT ON COLUMN marts.sync_status.source_id IS 'Id in the source app.';
COMMENT ON COLUMN marts.sync_status.qbo_id IS 'Id in QBO.';
COMMENT ON COLUMN marts.sync_status.created_by IS 'sync, matched or qbo.';
COMMENT ON COLUMN marts.sync_status.last_synced_at IS 'When both sides last agreed (or the state row last changed).';
COMMENT ON COLUMN marts.sync_status.deleted_in_source IS 'Deleted in the source app.';
COMMENT ON COLUMN marts.sync_status.deleted_in_qbo IS 'Deleted in QBO.';
COMMENT ON COLUMN marts.sync_status.last_direction IS 'push, pull or reconcile.';
COMMENT ON COLUMN marts.sync_status.last_operation IS 'create, update, delete, void, match, send, skip, hold, conflict, upsert.';
COMMENT ON COLUMN marts.sync_status.last_outcome IS 'ok, failed, held, skipped or conflict.';
COMMENT ON COLUMN marts.sync_status.last_error_code IS 'Error code of the latest attempt.';
COMMENT ON COLUMN marts.sync_status.last_error_message IS 'Error message of the latest attempt.';
COMMENT ON COLUMN marts.sync_status.last_attempt_at IS 'Time of the latest attempt.';
COMMENT ON COLUMN marts.sync_status.last_run_id IS 'Dagster run id of the latest attempt.';
COMMENT ON COLUMN marts.sync_status.held_back IS 'An open quarantine entry holds the record back (R40).';
COMMENT ON COLUMN marts.sync_status.status IS 'Engine status: synced, pending, held, failed, skipped or deleted.';
COMMENT ON COLUMN marts.sync_status.qbo_entity IS 'QBO entity of the linked record (Invoice, CreditMemo, ...).';

-- open problems (R31, R40) -------------------------------------------------------------------
DROP VIEW IF EXISTS marts.open_problems;
CREATE VIEW marts.open_problems AS
SELECT q.realm_id, 'held'::text AS kind, q.entity, q.source_id AS record_id,
       NULL::text AS qbo_id, string_agg(q.rule, '; ' ORDER BY q.rule) AS problem,
       string_agg(q.reason, '; ' ORDER BY q.rule) AS reason,
       string_agg(DISTINCT q.fix, ' ') AS fix,
       min(q.first_seen) AS first_seen, max(q.last_seen) AS last_seen,
       max(q.last_run_id) AS run_id
FROM sync.quarantine q
WHERE q.resolved_at IS NULL
GROUP BY q.realm_id, q.entity, q.source_id
UNION ALL
SELECT s.realm_id, 'failed', s.entity, coalesce(s.source_id, s.qbo_id), s.qbo_id,
       coalesce(s.error_code, 'failed'), coalesce(s.error_message, ''), s.fix,
       s.updated_at, s.updated_at, s.last_run_id
FROM sync.record_state s
WHERE s.status = 'failed'
UNION ALL
SELECT n.realm_id, 'notification', n.entity, n.record_id, NULL, n.title, n.reason, n.fix,
       n.created_at, n.created_at, NULL
FROM sync.notifications n
WHERE n.resolved_at IS NULL
  AND NOT EXISTS (SELECT 1 FROM sync.quarantine q WHERE q.realm_id = n.realm_id
                  AND q.entity = n.entity AND q.source_id = n.record_id AND q.resolved_at IS NULL)
  AND NOT EXISTS (SELECT 1 FROM sync.record_state s WHERE s.realm_id = n.realm_id
                  AND s.entity = n.entity AND s.source_id = n.record_id AND s.status = 'failed');
COMMENT ON VIEW marts.open_problems IS 'What needs a person, one row per record: held back (every rule it breaks), refused by QBO (with the fix), or another open notification.';
COMMENT ON COLUMN marts.open_problems.realm_id IS 'QBO company (realmId).';
COMMENT ON COLUMN marts.open_problems.kind IS 'held (quarantine), failed (QBO refused the last write; retried automatically) or notification.';
COMMENT ON COLUMN marts.open_problems.entity IS 'Catalogue entity.';
COMMENT ON COLUMN marts.open_problems.record_id IS 'Source id (or QBO id for pull-side problems).';
COMMENT ON COLUMN marts.open_problems.qbo_id IS 'QBO id when known.';
COMMENT ON COLUMN marts.open_problems.problem IS 'Rule broken, error code or notification title.';
COMMENT ON COLUMN marts.open_problems.reason IS 'What is wrong, in words a person can act on.';
COMMENT ON COLUMN marts.open_problems.fix IS 'How to fix it (often an exact command).';
COMMENT ON COLUMN marts.open_problems.first_seen IS 'When the problem was first seen.';
COMMENT ON COLUMN marts.open_problems.last_seen IS 'When it was last seen.';
COMMENT ON COLUMN marts.open_problems.run_id IS 'Dagster run id that saw it last.';
