-- The sync columns analysts know from the managed connectors (Fivetran: _fivetran_synced,
-- _fivetran_deleted; Airbyte: _airbyte_extracted_at): every raw_qbo and raw_source table, lines
-- included, has _synced_at and _deleted, kept by Postgres from loaded_at and deleted (line
-- tables already keep _synced_at themselves).
DO $$
DECLARE
    r record;
BEGIN
    FOR r IN
        SELECT c.table_schema AS s, c.table_name AS t, c.column_name AS col
          FROM information_schema.columns c
          JOIN information_schema.tables tb
            ON tb.table_schema = c.table_schema AND tb.table_name = c.table_name
         WHERE c.table_schema IN ('raw_qbo', 'raw_source') AND tb.table_type = 'BASE TABLE'
           AND c.column_name IN ('loaded_at', 'deleted')
           AND NOT EXISTS (
               SELECT 1 FROM information_schema.columns o
                WHERE o.table_schema = c.table_schema AND o.table_name = c.table_name
                  AND o.column_name = CASE c.column_name WHEN 'loaded_at' THEN '_synced_at'
                                                         ELSE '_deleted' END)
    LOOP
        IF r.col = 'loaded_at' THEN
            EXECUTE format('ALTER TABLE %I.%I ADD COLUMN _synced_at timestamptz'
                           ' GENERATED ALWAYS AS (loaded_at) STORED', r.s, r.t);
            EXECUTE format('COMMENT ON COLUMN %I.%I._synced_at IS %L', r.s, r.t,
                           'When the sync last wrote this row (= loaded_at; the managed '
                           || 'connectors'' _fivetran_synced / _airbyte_extracted_at).');
        ELSE
            EXECUTE format('ALTER TABLE %I.%I ADD COLUMN _deleted boolean'
                           ' GENERATED ALWAYS AS (deleted) STORED', r.s, r.t);
            EXECUTE format('COMMENT ON COLUMN %I.%I._deleted IS %L', r.s, r.t,
                           'True once the record was deleted on its side (= deleted; rows are '
                           || 'flagged, never removed; the managed connectors'' '
                           || '_fivetran_deleted).');
        END IF;
    END LOOP;
END $$;
