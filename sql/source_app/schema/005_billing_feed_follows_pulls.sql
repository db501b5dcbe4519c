-- Change capture, round four: a sale's billing email follows its contacts, also when the sync
-- wrote the contact. Idempotent.
--
-- 004 left the sales alone when the sync's pull wrote a contact (origin 'sync'): a bookkeeper's
-- new customer email reached the contact, but the invoices' BillEmail in QBO kept the old
-- address until the nightly reconciliation found them changed in the source and re-pushed them
-- (so the first reconciliation after a pull was never clean). The derived change of those sales
-- is no echo: QBO's invoices do not hold it. It is now reported as the app's ('app'), whoever
-- wrote the contact, for the sales the source owns (those pulled from QBO mirror it); the next
-- push sends the new BillEmail (R18: to the billing email held in the source).

CREATE OR REPLACE FUNCTION app.capture_billing_changes() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    v_sql text := $q$
        WITH changed AS ({changed})
        INSERT INTO app.change_log (entity, table_name, row_id, op, origin)
        SELECT 'invoices', 'sales', s.id::text, 'update', 'app'
        FROM app.sales s
        WHERE (s.contact_id IN (SELECT id FROM changed)
               OR s.contact_id IN (
                   SELECT c.id FROM app.contacts c
                   WHERE c.organisation_id IN (
                       SELECT organisation_id FROM changed
                       WHERE billing AND organisation_id IS NOT NULL)))
          -- a sale pulled from QBO mirrors QBO (its BillEmail is QBO's): only when a person
          -- changed the contact does it show
          AND (s.origin = 'source' OR app.change_origin() <> 'sync')
          AND NOT EXISTS (
              SELECT 1 FROM app.change_log l
              WHERE l.txid = txid_current() AND l.entity = 'invoices'
                AND l.row_id = s.id::text AND l.origin = 'app')
        ORDER BY s.id
    $q$;
BEGIN
    IF app.capture_off() THEN
        RETURN NULL;
    END IF;
    IF TG_OP = 'UPDATE' THEN
        EXECUTE replace(v_sql, '{changed}', $q$
            SELECT n.id, n.organisation_id, n.is_billing_contact OR o.is_billing_contact AS billing
            FROM new_rows n JOIN old_rows o ON o.id = n.id
            WHERE n.email IS DISTINCT FROM o.email
               OR n.is_billing_contact IS DISTINCT FROM o.is_billing_contact
               OR n.organisation_id IS DISTINCT FROM o.organisation_id
            UNION ALL
            SELECT o.id, o.organisation_id, o.is_billing_contact
            FROM new_rows n JOIN old_rows o ON o.id = n.id
            WHERE n.organisation_id IS DISTINCT FROM o.organisation_id
        $q$);
    ELSIF TG_OP = 'INSERT' THEN
        EXECUTE replace(v_sql, '{changed}', $q$
            SELECT n.id, n.organisation_id, n.is_billing_contact AS billing FROM new_rows n
            WHERE n.is_billing_contact
        $q$);
    ELSE
        EXECUTE replace(v_sql, '{changed}', $q$
            SELECT o.id, o.organisation_id, o.is_billing_contact AS billing FROM old_rows o
        $q$);
    END IF;
    RETURN NULL;
END $$;
