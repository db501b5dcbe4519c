-- The webhook inbox (R29, R44): what QBO's signed notifications named, stored once per event
-- by the receiver (qbo_pipelines/webhooks), read and marked done by the pull run. Idempotent.

ALTER TABLE sync.webhook_inbox ADD COLUMN IF NOT EXISTS event_key text;
ALTER TABLE sync.webhook_inbox ADD COLUMN IF NOT EXISTS format text;
ALTER TABLE sync.webhook_inbox ADD COLUMN IF NOT EXISTS known boolean NOT NULL DEFAULT true;
ALTER TABLE sync.webhook_inbox ADD COLUMN IF NOT EXISTS run_id text;

DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_constraint
                   WHERE conname = 'webhook_inbox_format_check'
                     AND conrelid = 'sync.webhook_inbox'::regclass) THEN
        ALTER TABLE sync.webhook_inbox ADD CONSTRAINT webhook_inbox_format_check
            CHECK (format IS NULL OR format IN ('legacy', 'cloudevents'));
    END IF;
END $$;

-- Duplicate deliveries collapse on the event's identity (CloudEvents id, or the legacy tuple).
CREATE UNIQUE INDEX IF NOT EXISTS webhook_inbox_event_key_uq ON sync.webhook_inbox (event_key);
-- What a pull run claims: a company's unprocessed rows in arrival order.
CREATE INDEX IF NOT EXISTS webhook_inbox_unprocessed_idx
    ON sync.webhook_inbox (realm_id, id) WHERE processed_at IS NULL;
-- What prune deletes: processed rows by age.
CREATE INDEX IF NOT EXISTS webhook_inbox_processed_idx
    ON sync.webhook_inbox (processed_at) WHERE processed_at IS NOT NULL;

COMMENT ON TABLE sync.webhook_inbox IS 'QBO webhook events as received (signature verified), one row per event; pull runs claim the unprocessed rows of a company and mark them done.';
COMMENT ON COLUMN sync.webhook_inbox.id IS 'Arrival order; a pull run claims rows up to a maximum id, so rows arriving during the run wait for the next one.';
COMMENT ON COLUMN sync.webhook_inbox.received_at IS 'When the receiver stored the event.';
COMMENT ON COLUMN sync.webhook_inbox.realm_id IS 'The QBO company (realmId / intuitaccountid).';
COMMENT ON COLUMN sync.webhook_inbox.entity IS 'QBO entity name in QBO casing, e.g. Customer, Invoice.';
COMMENT ON COLUMN sync.webhook_inbox.qbo_id IS 'QBO Id of the record named (for a Merge: the surviving record).';
COMMENT ON COLUMN sync.webhook_inbox.operation IS 'Create, Update, Delete, Merge, Void or Emailed (anything else is kept with known = false).';
COMMENT ON COLUMN sync.webhook_inbox.last_updated IS 'When QBO changed the record (legacy lastUpdated, CloudEvents time), UTC.';
COMMENT ON COLUMN sync.webhook_inbox.deleted_id IS 'For a Merge: the QBO Id of the record merged away (it no longer exists).';
COMMENT ON COLUMN sync.webhook_inbox.payload IS 'The event object exactly as QBO sent it (identifiers only, no record data).';
COMMENT ON COLUMN sync.webhook_inbox.processed_at IS 'When a pull run finished with the event; NULL while pending.';
COMMENT ON COLUMN sync.webhook_inbox.event_key IS 'Deduplication key: ce:<realm>:<CloudEvents id>, or legacy:<realm>:<entity>:<id>:<operation>:<lastUpdated>:<deletedId>.';
COMMENT ON COLUMN sync.webhook_inbox.format IS 'The delivery format: legacy or cloudevents.';
COMMENT ON COLUMN sync.webhook_inbox.known IS 'False when the entity or operation is not one QBO documents for webhooks (stored, flagged, for review).';
COMMENT ON COLUMN sync.webhook_inbox.run_id IS 'The Dagster run id of the pull run that processed the event.';
