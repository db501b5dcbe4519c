-- raw_qbo, complete: a table for every QBO entity the pull extracts (021 made the first 19; the
-- same shape for the rest, so qbo_pipelines/warehouse/raw_qbo.py loads them all), and one LINE
-- table per transaction type whose objects carry Line[] (typed columns, one row per line).
-- Loaded by qbo_pipelines/sync/extract.py; lines are replaced (delete + insert from the stored
-- data, in Postgres) in the same transaction as their parent whenever the parent's row changes.
-- Idempotent: IF NOT EXISTS everywhere, comments re-applied.

-- Helpers for the line tables: a cast that yields NULL instead of failing the load.
CREATE OR REPLACE FUNCTION raw_qbo.try_date(value text) RETURNS date
LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
    IF value IS NULL OR value !~ '^\d{4}-\d{2}-\d{2}' THEN
        RETURN NULL;
    END IF;
    RETURN left(value, 10)::date;
EXCEPTION WHEN others THEN
    RETURN NULL;
END $$;
COMMENT ON FUNCTION raw_qbo.try_date(text) IS
    'YYYY-MM-DD... text as a date, NULL when it is not one (a bad date never fails a load).';

DO $$
DECLARE
    t text;
    c record;
BEGIN
    -- Parent tables: the shape of 021 (realm_id, qbo_id, flattened columns, data, deleted).
    FOREACH t IN ARRAY ARRAY['employees', 'classes', 'departments', 'vendor_credits',
                             'purchase_orders', 'deposits', 'transfers', 'time_activities',
                             'attachables']
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
                              || 'ref_id = CustomerRef/VendorRef/EntityRef/ParentRef; '
                              || 'deleted = deleted in QBO (R36). One row per (realm_id, qbo_id).');
    END LOOP;

    -- Column comments on every parent table (021's and the ones above).
    FOREACH t IN ARRAY ARRAY['customers', 'vendors', 'items', 'accounts', 'tax_codes',
                             'tax_rates', 'payment_methods', 'terms', 'invoices', 'payments',
                             'bills', 'bill_payments', 'sales_receipts', 'estimates',
                             'credit_memos', 'refund_receipts', 'purchases', 'journal_entries',
                             'company_info', 'employees', 'classes', 'departments',
                             'vendor_credits', 'purchase_orders', 'deposits', 'transfers',
                             'time_activities', 'attachables']
    LOOP
        FOR c IN SELECT * FROM (VALUES
            ('realm_id', 'QBO company (realmId) the object belongs to.'),
            ('qbo_id', 'QBO Id of the object (unique per company and entity).'),
            ('name', 'DisplayName, else Name, else CompanyName (name lists); NULL for most transactions.'),
            ('doc_number', 'DocNumber (transaction number shown in QBO), when the entity has one.'),
            ('type', 'AccountType for accounts, else the object''s Type (Item type, Term type, ...).'),
            ('sub_type', 'AccountSubType (accounts only).'),
            ('active', 'Active flag of name-list entities (false = made inactive, QBO''s "delete" for them); NULL for transactions.'),
            ('ref_id', 'Id of the object''s party: CustomerRef, else VendorRef, else EntityRef, else ParentRef.'),
            ('ref_name', 'Name QBO gave with ref_id.'),
            ('txn_date', 'TxnDate (company-local transaction date).'),
            ('due_date', 'DueDate.'),
            ('total_amt', 'TotalAmt in the transaction currency.'),
            ('balance', 'Balance (open amount) as QBO computed it.'),
            ('sync_token', 'QBO SyncToken of the stored version (increments on every change).'),
            ('created_time', 'MetaData.CreateTime.'),
            ('updated_time', 'MetaData.LastUpdatedTime of the stored version; an older version never overwrites a newer one.'),
            ('data', 'The full QBO object as returned by the API (jsonb); what the pull planner reads.'),
            ('deleted', 'True once QBO reported the object deleted (CDC delete, or missing from an Id read): rows are flagged, never removed (R36).'),
            ('deleted_at', 'When QBO deleted it (the delete''s LastUpdatedTime, else the time of the read that found it gone).'),
            ('first_seen_at', 'When the warehouse first stored this object.'),
            ('loaded_at', 'When the row was last written (a re-read with nothing changed does not write it).'),
            ('run_id', 'Run (e.g. Dagster run id) that last wrote the row.')
        ) AS v(col, txt)
        LOOP
            IF EXISTS (SELECT 1 FROM information_schema.columns
                       WHERE table_schema = 'raw_qbo' AND table_name = t
                         AND column_name = c.col) THEN
                EXECUTE 'COMMENT ON COLUMN raw_qbo.' || quote_ident(t) || '.'
                     || quote_ident(c.col) || ' IS ' || quote_literal(c.txt);
            END IF;
        END LOOP;
    END LOOP;

    -- Line tables: one row per element of the parent's Line[], in the parent's order.
    FOREACH t IN ARRAY ARRAY['invoice_lines', 'sales_receipt_lines', 'estimate_lines',
                             'credit_memo_lines', 'refund_receipt_lines', 'bill_lines',
                             'purchase_lines', 'purchase_order_lines', 'vendor_credit_lines',
                             'journal_entry_lines', 'deposit_lines', 'payment_lines',
                             'bill_payment_lines']
    LOOP
        EXECUTE 'CREATE TABLE IF NOT EXISTS raw_qbo.' || quote_ident(t) || ' ('
             || '  realm_id           text        NOT NULL,'
             || '  qbo_id             text        NOT NULL,'
             || '  line_seq           integer     NOT NULL,'
             || '  line_num           integer,'
             || '  line_id            text,'
             || '  detail_type        text,'
             || '  amount             numeric,'
             || '  description        text,'
             || '  item_id            text,'
             || '  item_name          text,'
             || '  account_id         text,'
             || '  account_name       text,'
             || '  class_id           text,'
             || '  class_name         text,'
             || '  department_id      text,'
             || '  department_name    text,'
             || '  tax_code_id        text,'
             || '  entity_type        text,'
             || '  entity_id          text,'
             || '  entity_name        text,'
             || '  posting_type       text,'
             || '  billable_status    text,'
             || '  qty                numeric,'
             || '  unit_price         numeric,'
             || '  service_date       date,'
             || '  linked_txn_id      text,'
             || '  linked_txn_type    text,'
             || '  linked_txn_line_id text,'
             || '  data               jsonb       NOT NULL,'
             || '  deleted            boolean     NOT NULL DEFAULT false,'
             || '  _synced_at         timestamptz NOT NULL DEFAULT now(),'
             || '  run_id             text,'
             || '  PRIMARY KEY (realm_id, qbo_id, line_seq))';
        EXECUTE 'CREATE INDEX IF NOT EXISTS ' || quote_ident(t || '_item_idx')
             || ' ON raw_qbo.' || quote_ident(t) || ' (realm_id, item_id)';
        EXECUTE 'CREATE INDEX IF NOT EXISTS ' || quote_ident(t || '_account_idx')
             || ' ON raw_qbo.' || quote_ident(t) || ' (realm_id, account_id)';
        EXECUTE 'CREATE INDEX IF NOT EXISTS ' || quote_ident(t || '_linked_idx')
             || ' ON raw_qbo.' || quote_ident(t) || ' (realm_id, linked_txn_id)';
        EXECUTE 'COMMENT ON TABLE raw_qbo.' || quote_ident(t) || ' IS '
             || quote_literal('Lines of raw_qbo.' || CASE t WHEN 'journal_entry_lines' THEN 'journal_entries' ELSE replace(t, '_lines', 's') END
                              || ' (join on realm_id, qbo_id): one row per element of the '
                              || 'parent''s Line array, typed; replaced whenever the parent row '
                              || 'changes; deleted mirrors the parent''s flag.');
        FOR c IN SELECT * FROM (VALUES
            ('realm_id', 'QBO company (realmId).'),
            ('qbo_id', 'QBO Id of the parent transaction (its raw_qbo row has the same realm_id, qbo_id).'),
            ('line_seq', 'Position of the line in the parent''s Line array (1-based); with realm_id, qbo_id the key.'),
            ('line_num', 'QBO LineNum, when QBO gave one.'),
            ('line_id', 'QBO line Id, when QBO gave one (subtotal lines often have none).'),
            ('detail_type', 'DetailType (SalesItemLineDetail, SubTotalLineDetail, DiscountLineDetail, AccountBasedExpenseLineDetail, JournalEntryLineDetail, DepositLineDetail, ...); NULL for payment applications.'),
            ('amount', 'Line Amount (money, transaction currency).'),
            ('description', 'Line Description.'),
            ('item_id', 'ItemRef (or GroupItemRef) Id of the line''s detail.'),
            ('item_name', 'ItemRef name.'),
            ('account_id', 'AccountRef of the detail (expense/journal/deposit lines), else ItemAccountRef, else DiscountAccountRef.'),
            ('account_name', 'Name of account_id.'),
            ('class_id', 'ClassRef Id of the detail.'),
            ('class_name', 'ClassRef name.'),
            ('department_id', 'DepartmentRef Id of the detail (journal lines).'),
            ('department_name', 'DepartmentRef name.'),
            ('tax_code_id', 'TaxCodeRef of the detail (TAX/NON or a TaxCode Id).'),
            ('entity_type', 'Party type on the line: journal Entity.Type, deposit Entity type, or Customer for billable expense lines.'),
            ('entity_id', 'Party Id on the line (journal Entity.EntityRef, deposit Entity, expense CustomerRef).'),
            ('entity_name', 'Party name.'),
            ('posting_type', 'Debit or Credit (journal entry lines).'),
            ('billable_status', 'BillableStatus of expense/journal lines.'),
            ('qty', 'Qty (or group Quantity).'),
            ('unit_price', 'UnitPrice (money).'),
            ('service_date', 'ServiceDate of the line.'),
            ('linked_txn_id', 'First LinkedTxn TxnId of the line: for payments and bill payments the invoice/credit memo/bill/vendor credit the amount is applied to.'),
            ('linked_txn_type', 'First LinkedTxn TxnType (Invoice, CreditMemo, Bill, VendorCredit, ...).'),
            ('linked_txn_line_id', 'First LinkedTxn TxnLineId, when given.'),
            ('data', 'The full line object as QBO returned it (jsonb), every LinkedTxn included.'),
            ('deleted', 'True when the parent transaction is flagged deleted in QBO (R36).'),
            ('_synced_at', 'When this line row was written by the extract.'),
            ('run_id', 'Run that wrote the line row.')
        ) AS v(col, txt)
        LOOP
            EXECUTE 'COMMENT ON COLUMN raw_qbo.' || quote_ident(t) || '.'
                 || quote_ident(c.col) || ' IS ' || quote_literal(c.txt);
        END LOOP;
    END LOOP;
END $$;
