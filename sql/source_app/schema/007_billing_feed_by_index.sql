-- Change capture, round six: the billing-email feed (004, 005) costs the statement's own rows,
-- not a pass over every sale. Idempotent.
--
-- 005's query found the sales to report with `s.contact_id IN (changed) OR s.contact_id IN
-- (the contacts of changed billing organisations)`: the OR keeps Postgres from using
-- sales_contact_idx, so every UPDATE, INSERT or DELETE statement on app.contacts scanned every
-- sale, even one that changed no email (a phone edit; the pull writes contacts one statement per
-- row): about 15 ms a statement at 100k sales. The same sales are now found by joining the
-- contacts concerned (deduplicated) to sales_contact_idx, and a statement whose rows change no
-- email, billing flag or organisation stops after one query over its own rows. What is reported
-- is unchanged: each sale of a changed contact, and of every contact of an organisation whose
-- billing contact changed, once per transaction, as the app's change ('app'), sales pulled from
-- QBO only when a person (not the sync) changed the contact.

CREATE OR REPLACE FUNCTION app.capture_billing_changes() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    v_contacts bigint[];
    v_orgs bigint[];
BEGIN
    IF app.capture_off() THEN
        RETURN NULL;
    END IF;
    -- the contacts whose own sales' billing email can move, and the organisations whose billing
    -- contact can have moved (every sale of every contact of those)
    IF TG_OP = 'UPDATE' THEN
        SELECT array_agg(DISTINCT x.id), array_agg(DISTINCT x.organisation_id)
                                         FILTER (WHERE x.billing AND x.organisation_id IS NOT NULL)
        INTO v_contacts, v_orgs
        FROM (
            SELECT n.id, n.organisation_id, n.is_billing_contact OR o.is_billing_contact AS billing
            FROM new_rows n JOIN old_rows o ON o.id = n.id
            WHERE n.email IS DISTINCT FROM o.email
               OR n.is_billing_contact IS DISTINCT FROM o.is_billing_contact
               OR n.organisation_id IS DISTINCT FROM o.organisation_id
            UNION ALL
            SELECT o.id, o.organisation_id, o.is_billing_contact
            FROM new_rows n JOIN old_rows o ON o.id = n.id
            WHERE n.organisation_id IS DISTINCT FROM o.organisation_id
        ) x;
    ELSIF TG_OP = 'INSERT' THEN
        SELECT array_agg(DISTINCT n.id), array_agg(DISTINCT n.organisation_id)
                                         FILTER (WHERE n.organisation_id IS NOT NULL)
        INTO v_contacts, v_orgs
        FROM new_rows n WHERE n.is_billing_contact;
    ELSE
        SELECT array_agg(DISTINCT o.id), array_agg(DISTINCT o.organisation_id)
                                         FILTER (WHERE o.is_billing_contact
                                                 AND o.organisation_id IS NOT NULL)
        INTO v_contacts, v_orgs
        FROM old_rows o;
    END IF;
    IF v_contacts IS NULL THEN
        RETURN NULL;
    END IF;
    INSERT INTO app.change_log (entity, table_name, row_id, op, origin)
    SELECT 'invoices', 'sales', s.id::text, 'update', 'app'
    FROM (
        SELECT unnest(v_contacts) AS id
        UNION
        SELECT c.id FROM app.contacts c WHERE c.organisation_id = ANY(coalesce(v_orgs, '{}'))
    ) t
    JOIN app.sales s ON s.contact_id = t.id
    -- a sale pulled from QBO mirrors QBO (its BillEmail is QBO's): only when a person changed
    -- the contact does it show
    WHERE (s.origin = 'source' OR app.change_origin() <> 'sync')
      AND NOT EXISTS (
          SELECT 1 FROM app.change_log l
          WHERE l.txid = txid_current() AND l.entity = 'invoices'
            AND l.row_id = s.id::text AND l.origin = 'app')
    ORDER BY s.id;
    RETURN NULL;
END $$;
