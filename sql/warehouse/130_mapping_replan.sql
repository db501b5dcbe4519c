-- A mapping changed under synced records re-plans them (D5 of an attack round): the records a
-- mapping reaches (invoices for tax rates, items and the default tax code; payments for payment
-- methods and the default deposit account; bills for expense concepts) were written with the
-- QBO value it gave, and nothing in the source moved, so neither the change feed nor the row
-- hashes would ever look at them again.
--
-- Any change of what a mapping points to - set, changed, re-keyed, removed or truncated, by
-- the CLI, the demo or SQL by hand - leaves a marker in sync.cursors named
-- 'push:<entity>:replan' (the name qbo_pipelines.sync.engine.feed.replan_name gives) for
-- every entity it reaches that has
-- synced records. The next push of that entity reads every record and plans it against what
-- QBO was last sent, whatever the hashes say (only records whose body moved are written), and
-- clears the marker once it has (a marker set again meanwhile stays for the run after).

CREATE OR REPLACE FUNCTION mapping.request_replan() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    realms text[];
    i integer;
BEGIN
    IF TG_OP = 'TRUNCATE' THEN  -- statement level: every company may have lost mappings
        realms := ARRAY(SELECT realm_id FROM sync.companies);
    ELSIF TG_OP = 'DELETE' THEN
        realms := ARRAY[OLD.realm_id];
    ELSIF TG_OP = 'UPDATE' THEN  -- a row moved to another company changes both
        realms := ARRAY[OLD.realm_id, NEW.realm_id];
    ELSE
        realms := ARRAY[NEW.realm_id];
    END IF;
    FOR i IN 0 .. TG_NARGS - 1 LOOP
        INSERT INTO sync.cursors (realm_id, name, value)
        SELECT u.r, 'push:' || TG_ARGV[i] || ':replan', clock_timestamp()::text
        FROM (SELECT DISTINCT unnest(realms) AS r) AS u
        WHERE u.r IS NOT NULL AND EXISTS (SELECT 1 FROM sync.record_state s
              WHERE s.realm_id = u.r AND s.entity = TG_ARGV[i] AND s.status = 'synced')
        ON CONFLICT (realm_id, name) DO UPDATE SET value = EXCLUDED.value, updated_at = now();
    END LOOP;
    RETURN NULL;
END
$$;
COMMENT ON FUNCTION mapping.request_replan() IS 'Trigger: a mapping changed; the next push of each entity named in its arguments re-plans every synced record (sync.cursors push:<entity>:replan).';

-- A mapping added, removed (TRUNCATE too), re-keyed or its target changed (an upsert writing the
-- same value is no change: UPDATE OF fires on the column being set, the WHEN clause on it
-- moving).
DROP TRIGGER IF EXISTS replan_tax_rates ON mapping.tax_rates;
CREATE TRIGGER replan_tax_rates
    AFTER INSERT OR DELETE ON mapping.tax_rates
    FOR EACH ROW EXECUTE FUNCTION mapping.request_replan('invoices');
DROP TRIGGER IF EXISTS replan_tax_rates_truncated ON mapping.tax_rates;
CREATE TRIGGER replan_tax_rates_truncated
    AFTER TRUNCATE ON mapping.tax_rates
    FOR EACH STATEMENT EXECUTE FUNCTION mapping.request_replan('invoices');
DROP TRIGGER IF EXISTS replan_tax_rates_changed ON mapping.tax_rates;
CREATE TRIGGER replan_tax_rates_changed
    AFTER UPDATE OF realm_id, source_id, qbo_tax_code_id ON mapping.tax_rates FOR EACH ROW
    WHEN (OLD.realm_id IS DISTINCT FROM NEW.realm_id OR OLD.source_id IS DISTINCT FROM NEW.source_id OR OLD.qbo_tax_code_id IS DISTINCT FROM NEW.qbo_tax_code_id)
    EXECUTE FUNCTION mapping.request_replan('invoices');

DROP TRIGGER IF EXISTS replan_items ON mapping.items;
CREATE TRIGGER replan_items
    AFTER INSERT OR DELETE ON mapping.items
    FOR EACH ROW EXECUTE FUNCTION mapping.request_replan('invoices');
DROP TRIGGER IF EXISTS replan_items_truncated ON mapping.items;
CREATE TRIGGER replan_items_truncated
    AFTER TRUNCATE ON mapping.items
    FOR EACH STATEMENT EXECUTE FUNCTION mapping.request_replan('invoices');
DROP TRIGGER IF EXISTS replan_items_changed ON mapping.items;
CREATE TRIGGER replan_items_changed
    AFTER UPDATE OF realm_id, source_id, qbo_item_id ON mapping.items FOR EACH ROW
    WHEN (OLD.realm_id IS DISTINCT FROM NEW.realm_id OR OLD.source_id IS DISTINCT FROM NEW.source_id OR OLD.qbo_item_id IS DISTINCT FROM NEW.qbo_item_id)
    EXECUTE FUNCTION mapping.request_replan('invoices');

DROP TRIGGER IF EXISTS replan_payment_methods ON mapping.payment_methods;
CREATE TRIGGER replan_payment_methods
    AFTER INSERT OR DELETE ON mapping.payment_methods
    FOR EACH ROW EXECUTE FUNCTION mapping.request_replan('payments');
DROP TRIGGER IF EXISTS replan_payment_methods_truncated ON mapping.payment_methods;
CREATE TRIGGER replan_payment_methods_truncated
    AFTER TRUNCATE ON mapping.payment_methods
    FOR EACH STATEMENT EXECUTE FUNCTION mapping.request_replan('payments');
DROP TRIGGER IF EXISTS replan_payment_methods_changed ON mapping.payment_methods;
CREATE TRIGGER replan_payment_methods_changed
    AFTER UPDATE OF realm_id, source_id, qbo_payment_method_id, deposit_account_id ON mapping.payment_methods FOR EACH ROW
    WHEN (OLD.realm_id IS DISTINCT FROM NEW.realm_id OR OLD.source_id IS DISTINCT FROM NEW.source_id OR OLD.qbo_payment_method_id IS DISTINCT FROM NEW.qbo_payment_method_id OR OLD.deposit_account_id IS DISTINCT FROM NEW.deposit_account_id)
    EXECUTE FUNCTION mapping.request_replan('payments');

DROP TRIGGER IF EXISTS replan_expense_concepts ON mapping.expense_concepts;
CREATE TRIGGER replan_expense_concepts
    AFTER INSERT OR DELETE ON mapping.expense_concepts
    FOR EACH ROW EXECUTE FUNCTION mapping.request_replan('bills');
DROP TRIGGER IF EXISTS replan_expense_concepts_truncated ON mapping.expense_concepts;
CREATE TRIGGER replan_expense_concepts_truncated
    AFTER TRUNCATE ON mapping.expense_concepts
    FOR EACH STATEMENT EXECUTE FUNCTION mapping.request_replan('bills');
DROP TRIGGER IF EXISTS replan_expense_concepts_changed ON mapping.expense_concepts;
CREATE TRIGGER replan_expense_concepts_changed
    AFTER UPDATE OF realm_id, concept, expense_account_id ON mapping.expense_concepts FOR EACH ROW
    WHEN (OLD.realm_id IS DISTINCT FROM NEW.realm_id OR OLD.concept IS DISTINCT FROM NEW.concept OR OLD.expense_account_id IS DISTINCT FROM NEW.expense_account_id)
    EXECUTE FUNCTION mapping.request_replan('bills');

-- The defaults, likewise.
DROP TRIGGER IF EXISTS replan_default_tax_code ON mapping.settings;
CREATE TRIGGER replan_default_tax_code
    AFTER UPDATE OF default_tax_code_id ON mapping.settings FOR EACH ROW
    WHEN (OLD.default_tax_code_id IS DISTINCT FROM NEW.default_tax_code_id)
    EXECUTE FUNCTION mapping.request_replan('invoices');

DROP TRIGGER IF EXISTS replan_default_deposit_account ON mapping.settings;
CREATE TRIGGER replan_default_deposit_account
    AFTER UPDATE OF default_deposit_account_id ON mapping.settings FOR EACH ROW
    WHEN (OLD.default_deposit_account_id IS DISTINCT FROM NEW.default_deposit_account_id)
    EXECUTE FUNCTION mapping.request_replan('payments');

-- The settings row itself added, removed or truncated (by hand: the CLI updates it in place).
DROP TRIGGER IF EXISTS replan_settings ON mapping.settings;
CREATE TRIGGER replan_settings
    AFTER INSERT OR DELETE ON mapping.settings
    FOR EACH ROW EXECUTE FUNCTION mapping.request_replan('invoices', 'payments');
DROP TRIGGER IF EXISTS replan_settings_truncated ON mapping.settings;
CREATE TRIGGER replan_settings_truncated
    AFTER TRUNCATE ON mapping.settings
    FOR EACH STATEMENT EXECUTE FUNCTION mapping.request_replan('invoices', 'payments');
