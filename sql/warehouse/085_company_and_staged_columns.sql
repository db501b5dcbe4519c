-- Company column and typed, checked columns for the push-direction raw_source and staging
-- tables (issue 13). Idempotent.
--
-- 1. realm_id on raw_source.<entity> and staging.<entity>: each company's push reads and stages
--    its own copy (two companies pushing the same shared source app no longer overwrite each
--    other's run_id). Existing rows are attributed to the company whose run read them
--    (sync.ledger.run_id); rows no run names are copied to every known company (the source app
--    is shared, so the row is what each would read) or, with no company, dropped (the next run
--    reads them again). The key becomes (realm_id, source_id).
-- 2. staging.<entity> gets one typed column per field of the entity's constraint table
--    (qbo_pipelines/quality/constraints.py), written by the loader beside the canonical JSON;
--    the Great Expectations suites validate these columns (a test keeps the two in step).
-- 3. staging.qbo_length(text): a length as QBO counts it (UTF-16 code units).

CREATE OR REPLACE FUNCTION staging.qbo_length(value text) RETURNS integer
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT char_length(value)
         + char_length(regexp_replace(value, '[^\U00010000-\U0010FFFF]', '', 'g'))
$$;
COMMENT ON FUNCTION staging.qbo_length(text) IS
    'Length of a text as QBO counts it: UTF-16 code units (a character beyond the BMP, such as an emoji, counts 2).';

DO $$
DECLARE
    s text;
    t text;
    pk text;
BEGIN
    FOREACH s IN ARRAY ARRAY['raw_source', 'staging']
    LOOP
        FOREACH t IN ARRAY ARRAY['customers', 'items', 'tax_rates', 'payment_methods', 'invoices',
                                 'payments', 'vendors', 'bills']
        LOOP
            EXECUTE 'ALTER TABLE ' || quote_ident(s) || '.' || quote_ident(t)
                 || ' ADD COLUMN IF NOT EXISTS realm_id text';
            SELECT pg_get_constraintdef(con.oid) INTO pk
              FROM pg_constraint con
              JOIN pg_class c ON c.oid = con.conrelid
              JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE n.nspname = s AND c.relname = t AND con.contype = 'p';
            IF pk IS DISTINCT FROM 'PRIMARY KEY (realm_id, source_id)' THEN
                EXECUTE 'UPDATE ' || quote_ident(s) || '.' || quote_ident(t) || ' x'
                     || ' SET realm_id = l.realm_id'
                     || ' FROM (SELECT run_id, min(realm_id) AS realm_id FROM sync.ledger'
                     || '       WHERE run_id IS NOT NULL GROUP BY run_id) l'
                     || ' WHERE x.realm_id IS NULL AND x.run_id = l.run_id';
                IF pk IS NOT NULL THEN
                    EXECUTE 'ALTER TABLE ' || quote_ident(s) || '.' || quote_ident(t)
                         || ' DROP CONSTRAINT ' || quote_ident(t || '_pkey');
                END IF;
                EXECUTE 'INSERT INTO ' || quote_ident(s) || '.' || quote_ident(t)
                     || ' SELECT (jsonb_populate_record(NULL::' || quote_ident(s) || '.'
                     || quote_ident(t) || ', to_jsonb(x) || jsonb_build_object('
                     || quote_literal('realm_id') || ', c.realm_id))).*'
                     || ' FROM ' || quote_ident(s) || '.' || quote_ident(t) || ' x'
                     || ' CROSS JOIN sync.companies c WHERE x.realm_id IS NULL';
                EXECUTE 'DELETE FROM ' || quote_ident(s) || '.' || quote_ident(t)
                     || ' WHERE realm_id IS NULL';
                EXECUTE 'ALTER TABLE ' || quote_ident(s) || '.' || quote_ident(t)
                     || ' ALTER COLUMN realm_id SET NOT NULL';
                EXECUTE 'ALTER TABLE ' || quote_ident(s) || '.' || quote_ident(t)
                     || ' ADD CONSTRAINT ' || quote_ident(t || '_pkey')
                     || ' PRIMARY KEY (realm_id, source_id)';
            END IF;
            EXECUTE 'CREATE INDEX IF NOT EXISTS ' || quote_ident(t || '_run_idx')
                 || ' ON ' || quote_ident(s) || '.' || quote_ident(t) || ' (realm_id, run_id)';
            EXECUTE 'COMMENT ON COLUMN ' || quote_ident(s) || '.' || quote_ident(t)
                 || '.realm_id IS ' || quote_literal('QBO company (realm id) whose push run read this record; part of the key.');
        END LOOP;
    END LOOP;
END $$;


-- staging.customers: typed columns of the constraint table (customer rules)
ALTER TABLE staging.customers
    ADD COLUMN IF NOT EXISTS display_name text,
    ADD COLUMN IF NOT EXISTS given_name text,
    ADD COLUMN IF NOT EXISTS family_name text,
    ADD COLUMN IF NOT EXISTS company_name text,
    ADD COLUMN IF NOT EXISTS email text,
    ADD COLUMN IF NOT EXISTS phone text,
    ADD COLUMN IF NOT EXISTS billing_email text,
    ADD COLUMN IF NOT EXISTS bill_addr_line1 text,
    ADD COLUMN IF NOT EXISTS bill_addr_line2 text,
    ADD COLUMN IF NOT EXISTS bill_addr_city text,
    ADD COLUMN IF NOT EXISTS bill_addr_region text,
    ADD COLUMN IF NOT EXISTS bill_addr_postal_code text,
    ADD COLUMN IF NOT EXISTS bill_addr_country text;
COMMENT ON COLUMN staging.customers.display_name IS
    'The record''s display name, as written to QBO (staged from the canonical record). Checks: required [customer.display_name.required]; at most 500 UTF-16 units (DisplayName) [customer.display_name.too_long]; no colon, tab or line break [customer.display_name.forbidden_character]; no control characters [customer.display_name.control_character].';
COMMENT ON COLUMN staging.customers.given_name IS
    'The record''s given name, as written to QBO (staged from the canonical record). Checks: at most 100 UTF-16 units (GivenName) [customer.given_name.too_long]; no colon, tab or line break [customer.given_name.forbidden_character]; no control characters [customer.given_name.control_character].';
COMMENT ON COLUMN staging.customers.family_name IS
    'The record''s family name, as written to QBO (staged from the canonical record). Checks: at most 100 UTF-16 units (FamilyName) [customer.family_name.too_long]; no colon, tab or line break [customer.family_name.forbidden_character]; no control characters [customer.family_name.control_character].';
COMMENT ON COLUMN staging.customers.company_name IS
    'The record''s company name, as written to QBO (staged from the canonical record). Checks: at most 100 UTF-16 units (CompanyName) [customer.company_name.too_long]; no control characters [customer.company_name.control_character].';
COMMENT ON COLUMN staging.customers.email IS
    'The record''s email, as written to QBO (staged from the canonical record). Checks: a valid email address [customer.email.format].';
COMMENT ON COLUMN staging.customers.phone IS
    'The record''s phone, as written to QBO (staged from the canonical record). Checks: at most 30 UTF-16 units (PrimaryPhone) [customer.phone.too_long]; no control characters [customer.phone.control_character].';
COMMENT ON COLUMN staging.customers.billing_email IS
    'The record''s billing email, as written to QBO (staged from the canonical record). Checks: a valid email address [customer.billing_email.format]. Checked by the per-record rules on create only (not in the GX suite).';
COMMENT ON COLUMN staging.customers.bill_addr_line1 IS
    'The record''s bill addr line1, as written to QBO (staged from the canonical record). Checks: at most 500 UTF-16 units (BillAddr.Line1) [customer.address.line1.too_long]; no control characters [customer.address.line1.control_character].';
COMMENT ON COLUMN staging.customers.bill_addr_line2 IS
    'The record''s bill addr line2, as written to QBO (staged from the canonical record). Checks: at most 500 UTF-16 units (BillAddr.Line2) [customer.address.line2.too_long]; no control characters [customer.address.line2.control_character].';
COMMENT ON COLUMN staging.customers.bill_addr_city IS
    'The record''s bill addr city, as written to QBO (staged from the canonical record). Checks: at most 255 UTF-16 units (BillAddr.City) [customer.address.city.too_long]; no control characters [customer.address.city.control_character].';
COMMENT ON COLUMN staging.customers.bill_addr_region IS
    'The record''s bill addr region, as written to QBO (staged from the canonical record). Checks: at most 255 UTF-16 units (BillAddr.CountrySubDivisionCode) [customer.address.region.too_long]; no control characters [customer.address.region.control_character].';
COMMENT ON COLUMN staging.customers.bill_addr_postal_code IS
    'The record''s bill addr postal code, as written to QBO (staged from the canonical record). Checks: at most 30 UTF-16 units (BillAddr.PostalCode) [customer.address.postal_code.too_long]; no control characters [customer.address.postal_code.control_character].';
COMMENT ON COLUMN staging.customers.bill_addr_country IS
    'The record''s bill addr country, as written to QBO (staged from the canonical record). Checks: at most 255 UTF-16 units (BillAddr.Country) [customer.address.country.too_long]; no control characters [customer.address.country.control_character].';

-- staging.items: typed columns of the constraint table (item rules)
ALTER TABLE staging.items
    ADD COLUMN IF NOT EXISTS name text,
    ADD COLUMN IF NOT EXISTS description text,
    ADD COLUMN IF NOT EXISTS unit_price numeric;
COMMENT ON COLUMN staging.items.name IS
    'The record''s name, as written to QBO (staged from the canonical record). Checks: required [item.name.required]; at most 100 UTF-16 units (Item.Name) [item.name.too_long]; no colon, tab or line break [item.name.forbidden_character]; no control characters [item.name.control_character].';
COMMENT ON COLUMN staging.items.description IS
    'The record''s description, as written to QBO (staged from the canonical record). Checks: at most 4000 UTF-16 units (Item.Description) [item.description.too_long]; no control characters [item.description.control_character].';
COMMENT ON COLUMN staging.items.unit_price IS
    'The record''s unit price, as written to QBO (staged from the canonical record). Checks: at most 5 decimals, below 1e10 [item.unit_price.invalid].';

-- staging.invoices: typed columns of the constraint table (sale rules)
ALTER TABLE staging.invoices
    ADD COLUMN IF NOT EXISTS customer_source_id text,
    ADD COLUMN IF NOT EXISTS doc_number text,
    ADD COLUMN IF NOT EXISTS txn_date date,
    ADD COLUMN IF NOT EXISTS due_date date,
    ADD COLUMN IF NOT EXISTS due_days integer,
    ADD COLUMN IF NOT EXISTS memo text,
    ADD COLUMN IF NOT EXISTS billing_email text,
    ADD COLUMN IF NOT EXISTS subtotal numeric,
    ADD COLUMN IF NOT EXISTS discount_total numeric,
    ADD COLUMN IF NOT EXISTS tax_total numeric,
    ADD COLUMN IF NOT EXISTS total numeric,
    ADD COLUMN IF NOT EXISTS line_count integer,
    ADD COLUMN IF NOT EXISTS item_line_count integer,
    ADD COLUMN IF NOT EXISTS lines_without_item integer,
    ADD COLUMN IF NOT EXISTS invalid_line_amounts integer,
    ADD COLUMN IF NOT EXISTS duplicate_line_nos integer,
    ADD COLUMN IF NOT EXISTS max_line_gap numeric,
    ADD COLUMN IF NOT EXISTS max_discount_line numeric,
    ADD COLUMN IF NOT EXISTS subtotal_gap numeric,
    ADD COLUMN IF NOT EXISTS discount_gap numeric,
    ADD COLUMN IF NOT EXISTS tax_gap numeric,
    ADD COLUMN IF NOT EXISTS total_gap numeric;
COMMENT ON COLUMN staging.invoices.customer_source_id IS
    'The record''s customer source id, as written to QBO (staged from the canonical record). Checks: required [sale.customer.required].';
COMMENT ON COLUMN staging.invoices.doc_number IS
    'The record''s doc number, as written to QBO (staged from the canonical record). Checks: not blank when present [sale.doc_number.blank]; at most 21 UTF-16 units (DocNumber) [sale.doc_number.too_long]; no control characters [sale.doc_number.control_character].';
COMMENT ON COLUMN staging.invoices.txn_date IS
    'The record''s txn date, as written to QBO (staged from the canonical record). Checks: required [sale.txn_date.required]; between 1900-01-01 and 2099-12-31 [sale.txn_date.out_of_range].';
COMMENT ON COLUMN staging.invoices.due_date IS
    'The record''s due date, as written to QBO (staged from the canonical record). Checks: between 1900-01-01 and 2099-12-31 [sale.due_date.out_of_range].';
COMMENT ON COLUMN staging.invoices.due_days IS
    'Days from the document date to the due date (NULL without a due date or with an unreadable date). Checks: >= 0 [sale.due_date.before_txn_date].';
COMMENT ON COLUMN staging.invoices.memo IS
    'The record''s memo, as written to QBO (staged from the canonical record). Checks: at most 4000 UTF-16 units (PrivateNote) [sale.memo.too_long]; no control characters [sale.memo.control_character].';
COMMENT ON COLUMN staging.invoices.billing_email IS
    'The record''s billing email, as written to QBO (staged from the canonical record). Checks: a valid email address [sale.billing_email.format].';
COMMENT ON COLUMN staging.invoices.subtotal IS
    'The record''s subtotal, as written to QBO (staged from the canonical record). Checks: whole cents below 1e10 [sale.subtotal.invalid].';
COMMENT ON COLUMN staging.invoices.discount_total IS
    'The record''s discount total, as written to QBO (staged from the canonical record). Checks: whole cents below 1e10 [sale.discount_total.invalid].';
COMMENT ON COLUMN staging.invoices.tax_total IS
    'The record''s tax total, as written to QBO (staged from the canonical record). Checks: whole cents below 1e10 [sale.tax_total.invalid].';
COMMENT ON COLUMN staging.invoices.total IS
    'The record''s total, as written to QBO (staged from the canonical record). Checks: whole cents below 1e10 [sale.total.invalid].';
COMMENT ON COLUMN staging.invoices.line_count IS
    'Number of lines. Checks: <= 750 [sale.lines.too_many].';
COMMENT ON COLUMN staging.invoices.item_line_count IS
    'Number of item (product or service) lines. Checks: >= 1 [sale.lines.required].';
COMMENT ON COLUMN staging.invoices.lines_without_item IS
    'Item lines that name no product. Checks: <= 0 [sale.lines.item_required].';
COMMENT ON COLUMN staging.invoices.invalid_line_amounts IS
    'Lines whose amount is not a whole-cent amount QBO takes. Checks: <= 0 [sale.lines.amount_invalid].';
COMMENT ON COLUMN staging.invoices.duplicate_line_nos IS
    'Line numbers used more than once. Checks: <= 0 [sale.lines.duplicate_line_no].';
COMMENT ON COLUMN staging.invoices.max_line_gap IS
    'Worst |amount - qty x unit price| over the item lines (NULL when no line gives both). Checks: <= 0.005 [sale.lines.amount_mismatch].';
COMMENT ON COLUMN staging.invoices.max_discount_line IS
    'Largest discount line amount (discounts must not be positive). Checks: <= 0 [sale.lines.discount_positive].';
COMMENT ON COLUMN staging.invoices.subtotal_gap IS
    'subtotal minus the sum of the item lines (NULL when a total is not valid money). Checks: >= -0.005 and <= 0.005 [sale.subtotal_mismatch].';
COMMENT ON COLUMN staging.invoices.discount_gap IS
    'discount_total minus the sum of the discount lines. Checks: >= -0.005 and <= 0.005 [sale.discount_total_mismatch].';
COMMENT ON COLUMN staging.invoices.tax_gap IS
    'tax_total minus the sum of the tax lines. Checks: >= -0.005 and <= 0.005 [sale.tax_total_mismatch].';
COMMENT ON COLUMN staging.invoices.total_gap IS
    'total minus what it should be (the other totals, or the sum of the lines). Checks: >= -0.005 and <= 0.005 [sale.total_mismatch].';

-- staging.payments: typed columns of the constraint table (receipt rules)
ALTER TABLE staging.payments
    ADD COLUMN IF NOT EXISTS customer_source_id text,
    ADD COLUMN IF NOT EXISTS amount numeric,
    ADD COLUMN IF NOT EXISTS received_on date,
    ADD COLUMN IF NOT EXISTS reference text;
COMMENT ON COLUMN staging.payments.customer_source_id IS
    'The record''s customer source id, as written to QBO (staged from the canonical record). Checks: required [receipt.customer.required].';
COMMENT ON COLUMN staging.payments.amount IS
    'The record''s amount, as written to QBO (staged from the canonical record). Checks: whole cents below 1e10 [receipt.amount.invalid]; > 0 [receipt.amount.not_positive].';
COMMENT ON COLUMN staging.payments.received_on IS
    'The record''s received on, as written to QBO (staged from the canonical record). Checks: required [receipt.received_on.required]; between 1900-01-01 and 2099-12-31 [receipt.received_on.out_of_range].';
COMMENT ON COLUMN staging.payments.reference IS
    'The record''s reference, as written to QBO (staged from the canonical record). Checks: at most 21 UTF-16 units (PaymentRefNum) [receipt.reference.too_long]; no control characters [receipt.reference.control_character].';

-- staging.vendors: typed columns of the constraint table (vendor rules)
ALTER TABLE staging.vendors
    ADD COLUMN IF NOT EXISTS display_name text,
    ADD COLUMN IF NOT EXISTS given_name text,
    ADD COLUMN IF NOT EXISTS family_name text,
    ADD COLUMN IF NOT EXISTS email text,
    ADD COLUMN IF NOT EXISTS phone text,
    ADD COLUMN IF NOT EXISTS country text;
COMMENT ON COLUMN staging.vendors.display_name IS
    'The record''s display name, as written to QBO (staged from the canonical record). Checks: required [vendor.display_name.required]; at most 500 UTF-16 units (DisplayName) [vendor.display_name.too_long]; no colon, tab or line break [vendor.display_name.forbidden_character]; no control characters [vendor.display_name.control_character].';
COMMENT ON COLUMN staging.vendors.given_name IS
    'The record''s given name, as written to QBO (staged from the canonical record). Checks: at most 100 UTF-16 units (GivenName) [vendor.given_name.too_long]; no colon, tab or line break [vendor.given_name.forbidden_character]; no control characters [vendor.given_name.control_character].';
COMMENT ON COLUMN staging.vendors.family_name IS
    'The record''s family name, as written to QBO (staged from the canonical record). Checks: at most 100 UTF-16 units (FamilyName) [vendor.family_name.too_long]; no colon, tab or line break [vendor.family_name.forbidden_character]; no control characters [vendor.family_name.control_character].';
COMMENT ON COLUMN staging.vendors.email IS
    'The record''s email, as written to QBO (staged from the canonical record). Checks: a valid email address [vendor.email.format].';
COMMENT ON COLUMN staging.vendors.phone IS
    'The record''s phone, as written to QBO (staged from the canonical record). Checks: at most 30 UTF-16 units (PrimaryPhone) [vendor.phone.too_long]; no control characters [vendor.phone.control_character].';
COMMENT ON COLUMN staging.vendors.country IS
    'The record''s country, as written to QBO (staged from the canonical record). Checks: at most 255 UTF-16 units (BillAddr.Country) [vendor.country.too_long]; no control characters [vendor.country.control_character].';

-- staging.bills: typed columns of the constraint table (bill rules)
ALTER TABLE staging.bills
    ADD COLUMN IF NOT EXISTS vendor_source_id text,
    ADD COLUMN IF NOT EXISTS doc_number text,
    ADD COLUMN IF NOT EXISTS txn_date date,
    ADD COLUMN IF NOT EXISTS due_date date,
    ADD COLUMN IF NOT EXISTS due_days integer,
    ADD COLUMN IF NOT EXISTS memo text,
    ADD COLUMN IF NOT EXISTS total numeric,
    ADD COLUMN IF NOT EXISTS line_count integer,
    ADD COLUMN IF NOT EXISTS lines_over_limit integer,
    ADD COLUMN IF NOT EXISTS lines_without_concept integer,
    ADD COLUMN IF NOT EXISTS invalid_line_amounts integer,
    ADD COLUMN IF NOT EXISTS duplicate_line_nos integer,
    ADD COLUMN IF NOT EXISTS total_gap numeric;
COMMENT ON COLUMN staging.bills.vendor_source_id IS
    'The record''s vendor source id, as written to QBO (staged from the canonical record). Checks: required [bill.vendor.required].';
COMMENT ON COLUMN staging.bills.doc_number IS
    'The record''s doc number, as written to QBO (staged from the canonical record). Checks: not blank when present [bill.doc_number.blank]; at most 21 UTF-16 units (DocNumber) [bill.doc_number.too_long]; no control characters [bill.doc_number.control_character].';
COMMENT ON COLUMN staging.bills.txn_date IS
    'The record''s txn date, as written to QBO (staged from the canonical record). Checks: required [bill.txn_date.required]; between 1900-01-01 and 2099-12-31 [bill.txn_date.out_of_range].';
COMMENT ON COLUMN staging.bills.due_date IS
    'The record''s due date, as written to QBO (staged from the canonical record). Checks: between 1900-01-01 and 2099-12-31 [bill.due_date.out_of_range].';
COMMENT ON COLUMN staging.bills.due_days IS
    'Days from the document date to the due date (NULL without a due date or with an unreadable date). Checks: >= 0 [bill.due_date.before_txn_date].';
COMMENT ON COLUMN staging.bills.memo IS
    'The record''s memo, as written to QBO (staged from the canonical record). Checks: at most 4000 UTF-16 units (PrivateNote) [bill.memo.too_long]; no control characters [bill.memo.control_character].';
COMMENT ON COLUMN staging.bills.total IS
    'The record''s total, as written to QBO (staged from the canonical record). Checks: whole cents below 1e10 [bill.total.invalid]; >= 0 [bill.total.negative].';
COMMENT ON COLUMN staging.bills.line_count IS
    'Number of lines. Checks: >= 1 [bill.lines.required].';
COMMENT ON COLUMN staging.bills.lines_over_limit IS
    'Lines beyond the most QBO takes on one document. Checks: <= 0 [bill.lines.too_many].';
COMMENT ON COLUMN staging.bills.lines_without_concept IS
    'Lines with no concept (it picks the expense account). Checks: <= 0 [bill.lines.concept_required].';
COMMENT ON COLUMN staging.bills.invalid_line_amounts IS
    'Lines whose amount is not a whole-cent amount QBO takes. Checks: <= 0 [bill.lines.amount_invalid].';
COMMENT ON COLUMN staging.bills.duplicate_line_nos IS
    'Line numbers used more than once. Checks: <= 0 [bill.lines.duplicate_line_no].';
COMMENT ON COLUMN staging.bills.total_gap IS
    'total minus what it should be (the other totals, or the sum of the lines). Checks: >= -0.005 and <= 0.005 [bill.total_mismatch].';
