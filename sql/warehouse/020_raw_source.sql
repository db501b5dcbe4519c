-- raw_source: source-app records as read by the connector, one table per catalogue entity.
-- Idempotent. Merge semantics keyed on source_id; a hard delete in the source sets deleted.
-- (No percent signs in migration files: the runner passes them through the driver.)
DO $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['customers', 'items', 'tax_rates', 'payment_methods', 'invoices',
                             'payments', 'vendors', 'bills']
    LOOP
        EXECUTE 'CREATE TABLE IF NOT EXISTS raw_source.' || quote_ident(t) || ' ('
             || '  source_id         text        PRIMARY KEY,'
             || '  data              jsonb       NOT NULL,'
             || '  content_hash      text        NOT NULL,'
             || '  source_updated_at timestamptz,'
             || '  deleted           boolean     NOT NULL DEFAULT false,'
             || '  deleted_at        timestamptz,'
             || '  first_seen_at     timestamptz NOT NULL DEFAULT now(),'
             || '  loaded_at         timestamptz NOT NULL DEFAULT now(),'
             || '  run_id            text)';
        EXECUTE 'COMMENT ON TABLE raw_source.' || quote_ident(t) || ' IS '
             || quote_literal('Source-app ' || t || ' as read (canonical JSON in data); merge on source_id; deleted = hard-deleted in the source.');
    END LOOP;
END $$;
