-- Change capture, round two. Idempotent.
--
-- * The commit-safe feed reads the change log by transaction id (feed_changes.sql); index it.
-- * A contact is pushed only once it has a sale (R4): a sale inserted for a contact, or moved to
--   another contact, reports an 'update' of that contact, so a contact whose first sale comes
--   later is picked up by the next push (an unchanged contact costs no API call).

CREATE INDEX IF NOT EXISTS change_log_entity_txid_idx ON app.change_log (entity, txid);

CREATE OR REPLACE FUNCTION app.capture_sale_contacts() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF app.capture_off() THEN
        RETURN NULL;
    END IF;
    IF TG_OP = 'INSERT' THEN
        INSERT INTO app.change_log (entity, table_name, row_id, op, origin)
        SELECT 'customers', 'contacts', t.cid::text, 'update', app.change_origin()
        FROM (SELECT DISTINCT n.contact_id AS cid FROM new_rows n
              WHERE n.contact_id IS NOT NULL) t
        WHERE NOT EXISTS (
            SELECT 1 FROM app.change_log c
            WHERE c.txid = txid_current() AND c.entity = 'customers' AND c.row_id = t.cid::text)
        ORDER BY t.cid;
    ELSE
        INSERT INTO app.change_log (entity, table_name, row_id, op, origin)
        SELECT 'customers', 'contacts', t.cid::text, 'update', app.change_origin()
        FROM (SELECT DISTINCT n.contact_id AS cid FROM new_rows n
              JOIN old_rows o ON o.id = n.id
              WHERE n.contact_id IS NOT NULL AND n.contact_id IS DISTINCT FROM o.contact_id) t
        WHERE NOT EXISTS (
            SELECT 1 FROM app.change_log c
            WHERE c.txid = txid_current() AND c.entity = 'customers' AND c.row_id = t.cid::text)
        ORDER BY t.cid;
    END IF;
    RETURN NULL;
END $$;

DROP TRIGGER IF EXISTS capture_sale_contacts_insert ON app.sales;
CREATE TRIGGER capture_sale_contacts_insert AFTER INSERT ON app.sales
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION app.capture_sale_contacts();
DROP TRIGGER IF EXISTS capture_sale_contacts_update ON app.sales;
CREATE TRIGGER capture_sale_contacts_update AFTER UPDATE ON app.sales
    REFERENCING NEW TABLE AS new_rows OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION app.capture_sale_contacts();
