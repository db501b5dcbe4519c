-- The stage and the push read one run's rows of raw_source.<entity> and staging.<entity> in
-- keyset pages (realm_id, run_id, source_id). Migration 110 meant to index exactly that, but
-- used the name 085 had already given an index on (realm_id, run_id) alone, so its
-- CREATE INDEX IF NOT EXISTS did nothing: each page then found every row of the run and
-- sorted them (a run of 100k records read in 50 pages sorted 100k rows 50 times). The index
-- is made here under its own name; the (realm_id, run_id) one, a prefix of it, is dropped.
DO $$
DECLARE
    s text;
    t text;
BEGIN
    FOREACH s IN ARRAY ARRAY['raw_source', 'staging']
    LOOP
        FOREACH t IN ARRAY ARRAY['customers', 'items', 'tax_rates', 'payment_methods', 'invoices',
                                 'payments', 'vendors', 'bills']
        LOOP
            EXECUTE 'CREATE INDEX IF NOT EXISTS ' || quote_ident(t || '_run_page_idx') || ' ON '
                 || quote_ident(s) || '.' || quote_ident(t) || ' (realm_id, run_id, source_id)';
            EXECUTE 'DROP INDEX IF EXISTS ' || quote_ident(s) || '.' || quote_ident(t || '_run_idx');
        END LOOP;
    END LOOP;
END $$;
