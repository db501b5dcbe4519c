-- raw_qbo: QBO objects as pulled, per company (realm), one table per QBO entity. Idempotent.
-- Every table has the same shape: flattened columns that matter (name, type, active, refs,
-- amounts, dates, SyncToken, LastUpdatedTime) beside the full object in data (jsonb), and a
-- deleted flag with deleted_at (CDC deletes, R36). Primary key (realm_id, qbo_id).
DO $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['customers', 'vendors', 'items', 'accounts', 'tax_codes',
                             'tax_rates', 'payment_methods', 'terms', 'invoices', 'payments',
                             'bills', 'bill_payments', 'sales_receipts', 'estimates',
                             'credit_memos', 'refund_receipts', 'purchases', 'journal_entries',
                             'company_info']
    LOOP
        EXECUTE 'CREATE TABLE IF NOT EXISTS raw_qbo.' || quote_ident(t) || ' ('
             || '  realm_id      text        NOT NULL,'
             || '  qbo_id        text        NOT NULL,'
             || '  name          text,'
             || '  doc_number    text,'
             || '  type          text,'
             || '  sub_type      text,'
             || '  active        boolean,'
             || '  ref_id        text,'
             || '  ref_name      text,'
             || '  txn_date      date,'
             || '  due_date      date,'
             || '  total_amt     numeric(18, 5),'
             || '  balance       numeric(18, 5),'
             || '  sync_token    text,'
             || '  created_time  timestamptz,'
             || '  updated_time  timestamptz,'
             || '  data          jsonb       NOT NULL,'
             || '  deleted       boolean     NOT NULL DEFAULT false,'
             || '  deleted_at    timestamptz,'
             || '  first_seen_at timestamptz NOT NULL DEFAULT now(),'
             || '  loaded_at     timestamptz NOT NULL DEFAULT now(),'
             || '  run_id        text,'
             || '  PRIMARY KEY (realm_id, qbo_id))';
        EXECUTE 'CREATE INDEX IF NOT EXISTS ' || quote_ident(t || '_name_idx')
             || ' ON raw_qbo.' || quote_ident(t) || ' (realm_id, name)';
        EXECUTE 'CREATE INDEX IF NOT EXISTS ' || quote_ident(t || '_ref_idx')
             || ' ON raw_qbo.' || quote_ident(t) || ' (realm_id, ref_id)';
        EXECUTE 'COMMENT ON TABLE raw_qbo.' || quote_ident(t) || ' IS '
             || quote_literal('QBO ' || t || ' as pulled: flattened columns + full object in data; '
                              || 'name = DisplayName/Name, type = AccountType/Item Type/..., '
                              || 'ref_id = CustomerRef/VendorRef; deleted = deleted in QBO (R36).');
    END LOOP;
END $$;
