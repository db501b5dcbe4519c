-- The warehouse's schemas. Idempotent.
CREATE SCHEMA IF NOT EXISTS raw_source;   -- source-app rows as read, per entity
CREATE SCHEMA IF NOT EXISTS raw_qbo;      -- QBO JSON as pulled, per company (realm), with deleted flag
CREATE SCHEMA IF NOT EXISTS staging;      -- canonical records, both systems
CREATE SCHEMA IF NOT EXISTS mapping;      -- per-company mapping tables and settings
CREATE SCHEMA IF NOT EXISTS sync;         -- id map, ledger, cursors, tokens, inbox, quarantine
CREATE SCHEMA IF NOT EXISTS marts;        -- analyst-facing views

COMMENT ON SCHEMA raw_source IS 'Source-app rows as read by change capture, one table per entity.';
COMMENT ON SCHEMA raw_qbo IS 'QBO objects as pulled (jsonb beside flattened columns), per company, with a deleted flag.';
COMMENT ON SCHEMA staging IS 'Canonical records that transforms turn into QBO payloads or source rows.';
COMMENT ON SCHEMA mapping IS 'Per-company mappings (tax rates, items, payment methods, expense concepts) and settings.';
COMMENT ON SCHEMA sync IS 'Sync state: id map, append-only ledger, cursors, tokens, webhook inbox, quarantine, notifications.';
COMMENT ON SCHEMA marts IS 'Analyst-facing views with column comments.';
