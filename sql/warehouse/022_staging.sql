-- staging: canonical records (qbo_pipelines.canonical) ready to become QBO payloads or source
-- rows. Idempotent. One table per entity and direction: push-direction tables keyed on
-- source_id, pull-direction tables (qbo_*) keyed on (realm_id, qbo_id). data holds the canonical
-- record as JSON (Decimals as strings, datetimes in UTC ISO-8601); content_hash is its
-- content_hash() (the "unchanged since last sync" test).
DO $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['customers', 'items', 'tax_rates', 'payment_methods', 'invoices',
                             'payments', 'vendors', 'bills']
    LOOP
        EXECUTE 'CREATE TABLE IF NOT EXISTS staging.' || quote_ident(t) || ' ('
             || '  source_id     text        PRIMARY KEY,'
             || '  content_hash  text        NOT NULL,'
             || '  data          jsonb       NOT NULL,'
             || '  updated_at    timestamptz,'
             || '  staged_at     timestamptz NOT NULL DEFAULT now(),'
             || '  run_id        text)';
    END LOOP;
    FOREACH t IN ARRAY ARRAY['qbo_contacts', 'qbo_sales', 'qbo_receipts',
                             'qbo_customer_transactions']
    LOOP
        EXECUTE 'CREATE TABLE IF NOT EXISTS staging.' || quote_ident(t) || ' ('
             || '  realm_id      text        NOT NULL,'
             || '  qbo_id        text        NOT NULL,'
             || '  content_hash  text        NOT NULL,'
             || '  data          jsonb       NOT NULL,'
             || '  updated_at    timestamptz,'
             || '  staged_at     timestamptz NOT NULL DEFAULT now(),'
             || '  run_id        text,'
             || '  PRIMARY KEY (realm_id, qbo_id))';
    END LOOP;
END $$;
-- Customer transactions of several types share QBO ids across types: key includes the type.
ALTER TABLE staging.qbo_customer_transactions ADD COLUMN IF NOT EXISTS txn_type text;
