-- The guard on records a full read finds gone from the source app without a delete in its
-- change log (a bulk fix with change capture off; or a TRUNCATE, a restore, a lost table) was
-- a constant: up to 20 such records, or a tenth of those the sync knows, were carried out as
-- deletes in QBO by themselves; more were held as missing. Each company now sets its own limit
-- (`qbo-pipelines mappings set missing-deletes-max N`, `... missing-deletes-percent P`); 0 and
-- 0 hold every missing record until `sync push --full --delete-missing`.
ALTER TABLE mapping.settings
    ADD COLUMN IF NOT EXISTS missing_deletes_max integer NOT NULL DEFAULT 20
        CHECK (missing_deletes_max >= 0),
    ADD COLUMN IF NOT EXISTS missing_deletes_percent integer NOT NULL DEFAULT 10
        CHECK (missing_deletes_percent BETWEEN 0 AND 100);
COMMENT ON COLUMN mapping.settings.missing_deletes_max IS 'Records of one entity a full read may find missing from the source app (no delete in its change log) and still delete in QBO by itself; more (and more than missing_deletes_percent of those the sync knows) are held as missing with a notification (R17).';
COMMENT ON COLUMN mapping.settings.missing_deletes_percent IS 'The same limit as a share of the records of the entity the sync knows, in percent; the larger of the two limits applies.';
