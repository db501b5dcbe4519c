-- raw_source.<entity>.staged: the record's staged column values (the typed columns of its
-- constraint table, quality/constraints.py), computed once when the extract read the record,
-- as a JSON object {column: value} (numbers as exact text, dates as ISO text). The stage
-- (staged/qbo/<entity>) then copies a run's rows into staging.<entity> in one INSERT ... SELECT
-- in Postgres, casting each value to its column's type, instead of decoding every record again
-- in Python. NULL on rows extracted before this column existed (the stage computes those) and
-- for entities without a constraint table.
DO $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['customers', 'items', 'tax_rates', 'payment_methods', 'invoices',
                             'payments', 'vendors', 'bills']
    LOOP
        EXECUTE 'ALTER TABLE raw_source.' || quote_ident(t) || ' ADD COLUMN IF NOT EXISTS staged jsonb';
        EXECUTE 'COMMENT ON COLUMN raw_source.' || quote_ident(t) || '.staged IS '
             || quote_literal('The staged column values of the record (its constraint table''s typed columns) as read, {column: value}; the stage casts them into staging.' || t || '. NULL: read before this column existed, or no constraint table.');
    END LOOP;
END $$;
