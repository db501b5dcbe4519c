-- The snapshot a push run took of one entity (issue 9: pushed/* writes exactly the snapshot
-- staged/* checked). Idempotent.
--
-- raw/source/<entity> reads the source once and records here what that reading covered: the
-- change-feed window, whether every record was read (first run, mode=full) or only chosen ids,
-- and the source deletes it found. staged/qbo/<entity> adds how many records it staged from the
-- run's raw_source rows. pushed/qbo/<entity> plans exactly the staged rows of the run and
-- advances the entity's feed position to this window's end, never to a later horizon, so a
-- change committed after the extract is read by the next run, never skipped.

CREATE TABLE IF NOT EXISTS sync.run_windows (
    run_id        text        NOT NULL,
    realm_id      text        NOT NULL,
    entity        text        NOT NULL,
    feed_lo       bigint,
    feed_hi       bigint,
    full_read     boolean     NOT NULL DEFAULT false,
    targeted      boolean     NOT NULL DEFAULT false,
    deleted_ids   text[]      NOT NULL DEFAULT '{}',
    extracted     integer     NOT NULL DEFAULT 0,
    extracted_at  timestamptz NOT NULL DEFAULT now(),
    staged        integer,
    staged_at     timestamptz,
    pushed_at     timestamptz,
    PRIMARY KEY (run_id, realm_id, entity)
);
CREATE INDEX IF NOT EXISTS run_windows_realm_idx
    ON sync.run_windows (realm_id, entity, extracted_at);

COMMENT ON TABLE sync.run_windows IS 'One row per (run, company, entity) a push run extracted: the snapshot raw/source took (feed window, full or targeted read, deletes found), how many records staged/qbo staged from it, and when pushed/qbo pushed it. The push plans exactly the staged rows of the run and advances the feed to feed_hi.';
COMMENT ON COLUMN sync.run_windows.run_id IS 'The run (Dagster run id) that extracted the snapshot; raw_source.<entity>.run_id and staging.<entity>.run_id carry the same value.';
COMMENT ON COLUMN sync.run_windows.realm_id IS 'The QBO company (realmId) the snapshot is for.';
COMMENT ON COLUMN sync.run_windows.entity IS 'Catalogue entity (customers, items, invoices, payments, vendors, bills).';
COMMENT ON COLUMN sync.run_windows.feed_lo IS 'Start of the change-feed window the extract covered (the stored position); NULL on a first read or a targeted one.';
COMMENT ON COLUMN sync.run_windows.feed_hi IS 'End of the window (the commit-safe horizon taken by the extract): what the push advances the entity''s position to; NULL for a targeted read, which moves no position.';
COMMENT ON COLUMN sync.run_windows.full_read IS 'Every record of the entity was read (first run or mode=full); the push then leaves records whose content hash equals their synced one alone without decoding them.';
COMMENT ON COLUMN sync.run_windows.targeted IS 'Only chosen source ids were read (a targeted backfill, source_ids).';
COMMENT ON COLUMN sync.run_windows.deleted_ids IS 'Source ids the extract found deleted in the source (feed deletes; on a full read, records the sync knows that were not read; on a targeted read, requested ids not found); the push carries these deletes out.';
COMMENT ON COLUMN sync.run_windows.extracted IS 'Records the extract copied into raw_source.<entity> for this run.';
COMMENT ON COLUMN sync.run_windows.extracted_at IS 'When the extract recorded the snapshot.';
COMMENT ON COLUMN sync.run_windows.staged IS 'Records staged/qbo staged into staging.<entity> from the run''s raw_source rows; NULL until staged (the push refuses an unstaged snapshot).';
COMMENT ON COLUMN sync.run_windows.staged_at IS 'When the snapshot was staged and checked by Great Expectations.';
COMMENT ON COLUMN sync.run_windows.pushed_at IS 'When the push finished with this snapshot (NULL: not pushed yet, or the push did not finish).';

-- The stage and the push read one run's rows of raw_source.<entity> and staging.<entity> in
-- keyset pages (realm_id, run_id, source_id): an index per table keeps each page one range.
DO $$
DECLARE
    s text;
    t text;
BEGIN
    FOREACH s IN ARRAY ARRAY['raw_source', 'staging']
    LOOP
        FOREACH t IN ARRAY ARRAY['customers', 'items', 'tax_rates', 'payment_methods', 'invoices',
                                 'payments', 'vendors', 'bills']
        LOOP
            EXECUTE 'CREATE INDEX IF NOT EXISTS ' || quote_ident(t || '_run_idx') || ' ON '
                 || quote_ident(s) || '.' || quote_ident(t) || ' (realm_id, run_id, source_id)';
        END LOOP;
    END LOOP;
END $$;
