-- A full extract reads only the records whose source row moved (issue 9: the steady state of
-- the push job in Postgres, not in Python). Idempotent.
--
-- raw/source/<entity> with mode=full (or a first run) asks Postgres for each record's row hash
-- and reads into raw_source only the records not in step with sync.record_state; the others
-- are counted in sync.run_windows.unchanged. The row hash each read took is kept beside the
-- record, and the push stores it in sync.record_state.source_row_hash once the record is in
-- step, so that the next full extract leaves it alone.
DO $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['customers', 'items', 'tax_rates', 'payment_methods', 'invoices',
                             'payments', 'vendors', 'bills']
    LOOP
        EXECUTE 'ALTER TABLE raw_source.' || quote_ident(t)
             || ' ADD COLUMN IF NOT EXISTS row_hash text';
        EXECUTE 'COMMENT ON COLUMN raw_source.' || quote_ident(t) || '.row_hash IS '
             || quote_literal('Hash of the source row (and its lines) as Postgres read it when'
                              || ' a full extract read the record (NULL for other reads).');
    END LOOP;
END $$;

ALTER TABLE sync.run_windows ADD COLUMN IF NOT EXISTS unchanged integer NOT NULL DEFAULT 0;
COMMENT ON COLUMN sync.run_windows.unchanged IS 'On a full read, records left out of raw_source because their source row is unchanged since they were last in step (sync.record_state.source_row_hash); the push counts them as unchanged.';
