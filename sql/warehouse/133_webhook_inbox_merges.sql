-- Two Merges into one surviving record stamped in the same second (two duplicates merged
-- away together) are two events: their keys differ by the record merged away. The first
-- table's dedupe constraint left that out, so the second delivery was acknowledged and not
-- stored, and the merged-away record waited for the CDC safety net. Deliveries collapse on
-- the event's identity only (webhook_inbox_event_key_uq, migration 070).
ALTER TABLE sync.webhook_inbox DROP CONSTRAINT IF EXISTS webhook_inbox_dedupe;
