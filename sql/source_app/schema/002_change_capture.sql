-- Change capture for the demo app: a trigger-fed change log read by sequence number.
-- Idempotent. Statement-level AFTER triggers with transition tables write one change-log row per
-- changed record (bulk loads through COPY stay fast), for inserts, updates AND hard deletes.
--
-- * entity: the sync catalogue name ('customers', 'items', 'invoices', 'payments', ...);
-- * row_id: the changed record's id; changes to line tables are reported as an 'update' of the
--   parent (a sale, a worker invoice), once per transaction, and not at all when the parent itself
--   is being deleted (the parent's 'delete' says it all);
-- * origin: 'sync' when the writing session ran `SET LOCAL qbo_pipelines.origin = 'sync'` (the
--   sync's own write-back, R35), else 'app';
-- * a no-op UPDATE (nothing changed) is not recorded; repeated changes of one record inside one
--   transaction are recorded once.
-- Setting `qbo_pipelines.capture = 'off'` in a session suspends capture (maintenance only).

CREATE TABLE IF NOT EXISTS app.change_log (
    seq         bigserial   PRIMARY KEY,
    entity      text        NOT NULL,
    table_name  text        NOT NULL,
    row_id      text        NOT NULL,
    op          text        NOT NULL CHECK (op IN ('insert', 'update', 'delete')),
    origin      text        NOT NULL DEFAULT 'app' CHECK (origin IN ('app', 'sync')),
    txid        bigint      NOT NULL DEFAULT txid_current(),
    at          timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX IF NOT EXISTS change_log_txid_idx ON app.change_log (txid, entity, row_id);
CREATE INDEX IF NOT EXISTS change_log_row_idx ON app.change_log (entity, row_id, seq);
COMMENT ON TABLE app.change_log IS
    'Trigger-fed change capture (insert/update/hard delete) read by seq; origin=sync marks the sync''s own writes.';

CREATE OR REPLACE FUNCTION app.change_origin() RETURNS text LANGUAGE sql STABLE AS $$
    SELECT CASE WHEN current_setting('qbo_pipelines.origin', true) = 'sync' THEN 'sync' ELSE 'app' END
$$;

CREATE OR REPLACE FUNCTION app.capture_off() RETURNS boolean LANGUAGE sql STABLE AS $$
    SELECT coalesce(current_setting('qbo_pipelines.capture', true), '') = 'off'
$$;

-- Main tables: every table has an "id" primary key. TG_ARGV[0] is the entity name.
CREATE OR REPLACE FUNCTION app.capture_changes() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    v_entity text := TG_ARGV[0];
    v_origin text := app.change_origin();
BEGIN
    IF app.capture_off() THEN
        RETURN NULL;
    END IF;
    IF TG_OP = 'INSERT' THEN
        INSERT INTO app.change_log (entity, table_name, row_id, op, origin)
        SELECT v_entity, TG_TABLE_NAME, n.id::text, 'insert', v_origin
        FROM new_rows n ORDER BY n.id;
    ELSIF TG_OP = 'UPDATE' THEN
        INSERT INTO app.change_log (entity, table_name, row_id, op, origin)
        SELECT v_entity, TG_TABLE_NAME, n.id::text, 'update', v_origin
        FROM new_rows n JOIN old_rows o ON o.id = n.id
        WHERE n IS DISTINCT FROM o
          AND NOT EXISTS (
              SELECT 1 FROM app.change_log c
              WHERE c.txid = txid_current() AND c.entity = v_entity AND c.row_id = n.id::text
                AND c.op <> 'delete')
        ORDER BY n.id;
    ELSIF TG_OP = 'DELETE' THEN
        INSERT INTO app.change_log (entity, table_name, row_id, op, origin)
        SELECT v_entity, TG_TABLE_NAME, o.id::text, 'delete', v_origin
        FROM old_rows o ORDER BY o.id;
    END IF;
    RETURN NULL;
END $$;

-- Line tables: report an 'update' of the parent. TG_ARGV: entity, parent table, parent fk column.
CREATE OR REPLACE FUNCTION app.capture_child_changes() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    v_entity text := TG_ARGV[0];
    v_parent text := TG_ARGV[1];
    v_fk     text := TG_ARGV[2];
    v_origin text := app.change_origin();
    v_sql    text;
BEGIN
    IF app.capture_off() THEN
        RETURN NULL;
    END IF;
    -- (built with quote_ident, not format(): migration scripts must not contain percent signs)
    v_sql := 'INSERT INTO app.change_log (entity, table_name, row_id, op, origin) '
          || 'SELECT $1, $2, t.pid::text, ''update'', $3 '
          || 'FROM (SELECT DISTINCT r.' || quote_ident(v_fk) || ' AS pid FROM {rows} r) t '
          || 'WHERE EXISTS (SELECT 1 FROM app.' || quote_ident(v_parent) || ' p WHERE p.id = t.pid) '
          || '  AND NOT EXISTS (SELECT 1 FROM app.change_log c WHERE c.txid = txid_current() '
          || '                  AND c.entity = $1 AND c.row_id = t.pid::text) '
          || 'ORDER BY t.pid';
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        EXECUTE replace(v_sql, '{rows}', 'new_rows') USING v_entity, v_parent, v_origin;
    END IF;
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        EXECUTE replace(v_sql, '{rows}', 'old_rows') USING v_entity, v_parent, v_origin;
    END IF;
    RETURN NULL;
END $$;

-- Organisations: a rename changes the display name of every contact in it.
CREATE OR REPLACE FUNCTION app.capture_organisation_changes() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF app.capture_off() THEN
        RETURN NULL;
    END IF;
    INSERT INTO app.change_log (entity, table_name, row_id, op, origin)
    SELECT 'customers', 'contacts', c.id::text, 'update', app.change_origin()
    FROM new_rows n
    JOIN old_rows o ON o.id = n.id
    JOIN app.contacts c ON c.organisation_id = n.id
    WHERE n.name IS DISTINCT FROM o.name
      AND NOT EXISTS (
          SELECT 1 FROM app.change_log l
          WHERE l.txid = txid_current() AND l.entity = 'customers' AND l.row_id = c.id::text)
    ORDER BY c.id;
    RETURN NULL;
END $$;

DO $$
DECLARE
    spec text[];
    op   text;
BEGIN
    -- table, entity
    FOREACH spec SLICE 1 IN ARRAY ARRAY[
        ['contacts', 'customers'], ['products', 'items'], ['tax_rates', 'tax_rates'],
        ['payment_methods', 'payment_methods'], ['sales', 'invoices'], ['receipts', 'payments'],
        ['workers', 'vendors'], ['worker_invoices', 'bills']]
    LOOP
        FOREACH op IN ARRAY ARRAY['insert', 'update', 'delete'] LOOP
            EXECUTE 'DROP TRIGGER IF EXISTS ' || quote_ident('capture_' || op)
                 || ' ON app.' || quote_ident(spec[1]);
            EXECUTE 'CREATE TRIGGER ' || quote_ident('capture_' || op) || ' AFTER ' || upper(op)
                 || ' ON app.' || quote_ident(spec[1]) || ' REFERENCING '
                 || CASE op WHEN 'insert' THEN 'NEW TABLE AS new_rows'
                            WHEN 'update' THEN 'NEW TABLE AS new_rows OLD TABLE AS old_rows'
                            ELSE 'OLD TABLE AS old_rows' END
                 || ' FOR EACH STATEMENT EXECUTE FUNCTION app.capture_changes('
                 || quote_literal(spec[2]) || ')';
        END LOOP;
    END LOOP;

    -- line table, entity, parent table, parent fk column
    FOREACH spec SLICE 1 IN ARRAY ARRAY[
        ['sale_lines', 'invoices', 'sales', 'sale_id'],
        ['worker_invoice_lines', 'bills', 'worker_invoices', 'worker_invoice_id']]
    LOOP
        FOREACH op IN ARRAY ARRAY['insert', 'update', 'delete'] LOOP
            EXECUTE 'DROP TRIGGER IF EXISTS ' || quote_ident('capture_' || op)
                 || ' ON app.' || quote_ident(spec[1]);
            EXECUTE 'CREATE TRIGGER ' || quote_ident('capture_' || op) || ' AFTER ' || upper(op)
                 || ' ON app.' || quote_ident(spec[1]) || ' REFERENCING '
                 || CASE op WHEN 'insert' THEN 'NEW TABLE AS new_rows'
                            WHEN 'update' THEN 'NEW TABLE AS new_rows OLD TABLE AS old_rows'
                            ELSE 'OLD TABLE AS old_rows' END
                 || ' FOR EACH STATEMENT EXECUTE FUNCTION app.capture_child_changes('
                 || quote_literal(spec[2]) || ', ' || quote_literal(spec[3]) || ', '
                 || quote_literal(spec[4]) || ')';
        END LOOP;
    END LOOP;

    DROP TRIGGER IF EXISTS capture_update ON app.organisations;
    CREATE TRIGGER capture_update AFTER UPDATE ON app.organisations
        REFERENCING NEW TABLE AS new_rows OLD TABLE AS old_rows
        FOR EACH STATEMENT EXECUTE FUNCTION app.capture_organisation_changes();
END $$;
