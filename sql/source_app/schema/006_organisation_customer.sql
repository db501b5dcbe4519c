-- Change capture, round five: one QBO customer per organisation (R5). Idempotent.
--
-- An organisation is one QBO Customer (R5 matches it by name), whichever of its contacts buys.
-- Its customer record is its lowest-id contact, the organisation's *representative*
-- (read_customers.sql: has_sale is then the organisation's; the other contacts are read with
-- represented_by and never written themselves), and every sale of any of its contacts bills that
-- record (read_sales.sql: customer_source_id). Before this, a second contact of an organisation
-- was planned as a second Customer of the same name and held as a name collision, and its sales
-- with it, for good.
--
-- So the change feed reports:
-- * a sale inserted for a contact, or moved to one: that contact (003) and its organisation's
--   representative (whose has_sale it can turn true);
-- * a change of who represents an organisation (a contact with a lower id joins it, its
--   representative leaves it or is deleted): every contact, sale and receipt of that
--   organisation (their represented_by and customer_source_id move; unchanged records cost no
--   API call), and every sale and receipt of a contact that left or joined one.

CREATE INDEX IF NOT EXISTS contacts_org_id_idx ON app.contacts (organisation_id, id);

CREATE OR REPLACE FUNCTION app.capture_sale_contacts() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    v_contacts bigint[];
BEGIN
    IF app.capture_off() THEN
        RETURN NULL;
    END IF;
    IF TG_OP = 'INSERT' THEN
        SELECT array_agg(DISTINCT n.contact_id) INTO v_contacts
        FROM new_rows n WHERE n.contact_id IS NOT NULL;
    ELSE
        SELECT array_agg(DISTINCT n.contact_id) INTO v_contacts
        FROM new_rows n JOIN old_rows o ON o.id = n.id
        WHERE n.contact_id IS NOT NULL AND n.contact_id IS DISTINCT FROM o.contact_id;
    END IF;
    IF v_contacts IS NULL THEN
        RETURN NULL;
    END IF;
    INSERT INTO app.change_log (entity, table_name, row_id, op, origin)
    SELECT 'customers', 'contacts', t.cid::text, 'update', app.change_origin()
    FROM (
        SELECT unnest(v_contacts) AS cid
        UNION
        SELECT (SELECT min(x.id) FROM app.contacts x WHERE x.organisation_id = c.organisation_id)
        FROM app.contacts c
        WHERE c.id = ANY(v_contacts) AND c.organisation_id IS NOT NULL
    ) t
    WHERE t.cid IS NOT NULL
      AND NOT EXISTS (
        SELECT 1 FROM app.change_log c
        WHERE c.txid = txid_current() AND c.entity = 'customers' AND c.row_id = t.cid::text)
    ORDER BY t.cid;
    RETURN NULL;
END $$;

-- The organisations whose representative the statement's contacts changed (v_orgs): every
-- contact, sale and receipt of each is reported, and those of the contacts that moved (v_moved).
-- A statement that moves no representative (most of them: an email, a phone) stops at the
-- first, cheap query over its own rows.
CREATE OR REPLACE FUNCTION app.capture_organisation_members() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    v_orgs  bigint[];
    v_moved bigint[];
BEGIN
    IF app.capture_off() THEN
        RETURN NULL;
    END IF;
    IF TG_OP = 'INSERT' THEN
        -- a new contact with a lower id than the organisation's members it joins
        SELECT array_agg(DISTINCT n.organisation_id) INTO v_orgs
        FROM new_rows n
        WHERE n.organisation_id IS NOT NULL
          AND n.id = (SELECT min(x.id) FROM app.contacts x
                      WHERE x.organisation_id = n.organisation_id)
          AND EXISTS (SELECT 1 FROM app.contacts x
                      WHERE x.organisation_id = n.organisation_id
                        AND x.id NOT IN (SELECT id FROM new_rows));
    ELSIF TG_OP = 'UPDATE' THEN
        -- the contacts that moved, and the organisations they left and joined
        SELECT array_agg(n.id),
               array_remove(array_agg(DISTINCT n.organisation_id)
                            || array_agg(DISTINCT o.organisation_id), NULL)
        INTO v_moved, v_orgs
        FROM new_rows n JOIN old_rows o ON o.id = n.id
        WHERE n.organisation_id IS DISTINCT FROM o.organisation_id;
    ELSE
        -- a deleted representative: the next lowest id represents the organisation
        SELECT array_agg(DISTINCT o.organisation_id) INTO v_orgs
        FROM old_rows o
        WHERE o.organisation_id IS NOT NULL
          AND o.id < (SELECT min(x.id) FROM app.contacts x
                      WHERE x.organisation_id = o.organisation_id);
    END IF;
    IF coalesce(cardinality(v_orgs), 0) = 0 AND v_moved IS NULL THEN
        RETURN NULL;
    END IF;
    v_orgs := coalesce(v_orgs, '{}');
    v_moved := coalesce(v_moved, '{}');
    INSERT INTO app.change_log (entity, table_name, row_id, op, origin)
    SELECT 'invoices', 'sales', s.id::text, 'update', app.change_origin()
    FROM app.sales s JOIN app.contacts c ON c.id = s.contact_id
    WHERE (c.organisation_id = ANY(v_orgs) OR c.id = ANY(v_moved))
      AND NOT EXISTS (
          SELECT 1 FROM app.change_log l
          WHERE l.txid = txid_current() AND l.entity = 'invoices' AND l.row_id = s.id::text)
    ORDER BY s.id;
    INSERT INTO app.change_log (entity, table_name, row_id, op, origin)
    SELECT 'payments', 'receipts', r.id::text, 'update', app.change_origin()
    FROM app.receipts r
    LEFT JOIN app.sales s ON s.id = r.sale_id
    JOIN app.contacts c ON c.id = coalesce(r.contact_id, s.contact_id)
    WHERE (c.organisation_id = ANY(v_orgs) OR c.id = ANY(v_moved))
      AND NOT EXISTS (
          SELECT 1 FROM app.change_log l
          WHERE l.txid = txid_current() AND l.entity = 'payments' AND l.row_id = r.id::text)
    ORDER BY r.id;
    INSERT INTO app.change_log (entity, table_name, row_id, op, origin)
    SELECT 'customers', 'contacts', c.id::text, 'update', app.change_origin()
    FROM app.contacts c
    WHERE (c.organisation_id = ANY(v_orgs) OR c.id = ANY(v_moved))
      AND NOT EXISTS (
          SELECT 1 FROM app.change_log l
          WHERE l.txid = txid_current() AND l.entity = 'customers' AND l.row_id = c.id::text)
    ORDER BY c.id;
    RETURN NULL;
END $$;

DO $$
DECLARE
    op text;
BEGIN
    FOREACH op IN ARRAY ARRAY['insert', 'update', 'delete'] LOOP
        EXECUTE 'DROP TRIGGER IF EXISTS ' || quote_ident('capture_members_' || op)
             || ' ON app.contacts';
        EXECUTE 'CREATE TRIGGER ' || quote_ident('capture_members_' || op) || ' AFTER '
             || upper(op) || ' ON app.contacts REFERENCING '
             || CASE op WHEN 'insert' THEN 'NEW TABLE AS new_rows'
                        WHEN 'update' THEN 'NEW TABLE AS new_rows OLD TABLE AS old_rows'
                        ELSE 'OLD TABLE AS old_rows' END
             || ' FOR EACH STATEMENT EXECUTE FUNCTION app.capture_organisation_members()';
    END LOOP;
END $$;
