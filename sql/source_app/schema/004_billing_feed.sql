-- Change capture, round three: a sale's billing email follows its contacts. Idempotent.
--
-- A sale is read with billing_email = its customer organisation's billing contact's email, else
-- its contact's (R18). So a person's change of a contact's email, of who is an organisation's
-- billing contact, or of a contact's organisation changes the billing email of sales that were
-- not themselves written: each such change reports an 'update' of those sales, so the next push
-- sends the new BillEmail (an unchanged one costs no API call). The sync's own write-backs of
-- contacts (origin 'sync') do not: QBO's bookkeeper changed the customer there, and its invoices
-- keep the address they were sent with until the nightly reconciliation compares them.

CREATE INDEX IF NOT EXISTS sales_contact_idx ON app.sales (contact_id);

-- The sales whose billing email the contacts in "changed" (id, organisation, billing contact
-- before or after) can move: their own sales, and every sale of an organisation whose billing
-- contact changed. {changed} is replaced by the statement's rows.
CREATE OR REPLACE FUNCTION app.capture_billing_changes() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    v_sql text := $q$
        WITH changed AS ({changed})
        INSERT INTO app.change_log (entity, table_name, row_id, op, origin)
        SELECT 'invoices', 'sales', s.id::text, 'update', app.change_origin()
        FROM app.sales s
        WHERE (s.contact_id IN (SELECT id FROM changed)
               OR s.contact_id IN (
                   SELECT c.id FROM app.contacts c
                   WHERE c.organisation_id IN (
                       SELECT organisation_id FROM changed
                       WHERE billing AND organisation_id IS NOT NULL)))
          AND NOT EXISTS (
              SELECT 1 FROM app.change_log l
              WHERE l.txid = txid_current() AND l.entity = 'invoices'
                AND l.row_id = s.id::text AND l.origin = 'app')
        ORDER BY s.id
    $q$;
BEGIN
    IF app.capture_off() OR app.change_origin() = 'sync' THEN
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

DO $$
DECLARE
    op text;
BEGIN
    FOREACH op IN ARRAY ARRAY['insert', 'update', 'delete'] LOOP
        EXECUTE 'DROP TRIGGER IF EXISTS ' || quote_ident('capture_billing_' || op)
             || ' ON app.contacts';
        EXECUTE 'CREATE TRIGGER ' || quote_ident('capture_billing_' || op) || ' AFTER '
             || upper(op) || ' ON app.contacts REFERENCING '
             || CASE op WHEN 'insert' THEN 'NEW TABLE AS new_rows'
                        WHEN 'update' THEN 'NEW TABLE AS new_rows OLD TABLE AS old_rows'
                        ELSE 'OLD TABLE AS old_rows' END
             || ' FOR EACH STATEMENT EXECUTE FUNCTION app.capture_billing_changes()';
    END LOOP;
END $$;
