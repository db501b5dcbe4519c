-- Nightly reconciliation (R38): what each run compared, found and repaired. Owned by
-- qbo_pipelines/reconcile/. Append-only per run (a run's rows are written once, at its end);
-- old runs stay for the drift-over-time chart. Idempotent.

CREATE TABLE IF NOT EXISTS marts.reconciliation_runs (
    run_id          text        PRIMARY KEY,
    realm_id        text        NOT NULL,
    trigger         text        NOT NULL DEFAULT 'cli',
    started_at      timestamptz NOT NULL,
    finished_at     timestamptz NOT NULL DEFAULT now(),
    status          text        NOT NULL CHECK (status IN ('clean', 'repaired', 'problems')),
    qbo_reads       integer     NOT NULL DEFAULT 0,
    qbo_writes      integer     NOT NULL DEFAULT 0,
    refreshed       boolean     NOT NULL DEFAULT false,
    full_reread     boolean     NOT NULL DEFAULT false,
    differences     integer     NOT NULL DEFAULT 0,
    repaired        integer     NOT NULL DEFAULT 0,
    problems        integer     NOT NULL DEFAULT 0,
    drift_amount    numeric(18, 2) NOT NULL DEFAULT 0,
    summary         text        NOT NULL
);
CREATE INDEX IF NOT EXISTS reconciliation_runs_realm_idx
    ON marts.reconciliation_runs (realm_id, finished_at);

COMMENT ON TABLE marts.reconciliation_runs IS 'One row per reconciliation of a company (R38): what was read, repaired and left as problems; the drift-over-time chart reads it.';
COMMENT ON COLUMN marts.reconciliation_runs.run_id IS 'The Dagster run id (or a generated id when run outside Dagster).';
COMMENT ON COLUMN marts.reconciliation_runs.realm_id IS 'QBO company (realmId).';
COMMENT ON COLUMN marts.reconciliation_runs.trigger IS 'What started it: schedule (nightly), cli or test.';
COMMENT ON COLUMN marts.reconciliation_runs.started_at IS 'When the reconciliation started.';
COMMENT ON COLUMN marts.reconciliation_runs.finished_at IS 'When its results were recorded.';
COMMENT ON COLUMN marts.reconciliation_runs.status IS 'clean (nothing differed), repaired (every difference was repaired) or problems (some need a person: see marts.reconciliation_findings and marts.open_problems).';
COMMENT ON COLUMN marts.reconciliation_runs.qbo_reads IS 'QBO API reads the run made (COUNT queries, reports, the re-pull''s reads), from the company''s one rate budget.';
COMMENT ON COLUMN marts.reconciliation_runs.qbo_writes IS 'QBO API writes the repairs made (re-pushes); 0 when nothing needed repairing.';
COMMENT ON COLUMN marts.reconciliation_runs.refreshed IS 'The warehouse was behind QBO and was re-pulled (webhook ids and one CDC call) before comparing.';
COMMENT ON COLUMN marts.reconciliation_runs.full_reread IS 'Counts still differed after the incremental re-pull, so every QBO record of the company was re-read (paged) and missing ones flagged deleted.';
COMMENT ON COLUMN marts.reconciliation_runs.differences IS 'Per-record differences found (repaired or not).';
COMMENT ON COLUMN marts.reconciliation_runs.repaired IS 'Differences repaired through the sync engine (re-push or re-pull) and verified afterwards.';
COMMENT ON COLUMN marts.reconciliation_runs.problems IS 'Differences left for a person (each also an open notification, listed in marts.open_problems).';
COMMENT ON COLUMN marts.reconciliation_runs.drift_amount IS 'Sum of the absolute money differences (source vs QBO) found, before repairs.';
COMMENT ON COLUMN marts.reconciliation_runs.summary IS 'The one-line summary printed by the CLI, the demo and the Dagster asset.';

CREATE TABLE IF NOT EXISTS marts.reconciliation_figures (
    run_id          text        NOT NULL,
    realm_id        text        NOT NULL,
    entity          text        NOT NULL,
    measure         text        NOT NULL,
    source_value    numeric(18, 2),
    qbo_value       numeric(18, 2),
    warehouse_value numeric(18, 2),
    qbo_report      text,
    agrees          boolean     NOT NULL,
    note            text,
    PRIMARY KEY (run_id, entity, measure)
);

COMMENT ON TABLE marts.reconciliation_figures IS 'Counts and totals per run, company and entity as the source, QBO and the warehouse give them (after the run''s repairs).';
COMMENT ON COLUMN marts.reconciliation_figures.run_id IS 'The reconciliation run (marts.reconciliation_runs).';
COMMENT ON COLUMN marts.reconciliation_figures.realm_id IS 'QBO company (realmId).';
COMMENT ON COLUMN marts.reconciliation_figures.entity IS 'Catalogue entity (customers, invoices, payments, items, vendors, bills), or ar for receivables.';
COMMENT ON COLUMN marts.reconciliation_figures.measure IS 'records (count in QBO vs raw_qbo), linked (source records with a live QBO twin vs those twins present in QBO), linked_total (money of the linked records on each side), open_balance (receivables).';
COMMENT ON COLUMN marts.reconciliation_figures.source_value IS 'The figure in the source app (NULL when the source has no such figure).';
COMMENT ON COLUMN marts.reconciliation_figures.qbo_value IS 'The figure in QBO: a COUNT query or QBO''s own report, else its records as last read.';
COMMENT ON COLUMN marts.reconciliation_figures.warehouse_value IS 'The figure computed from the warehouse (raw_qbo and sync.record_state).';
COMMENT ON COLUMN marts.reconciliation_figures.qbo_report IS 'Where qbo_value comes from: count query, reports/CustomerBalance, or records.';
COMMENT ON COLUMN marts.reconciliation_figures.agrees IS 'Every side given agrees (to the cent).';
COMMENT ON COLUMN marts.reconciliation_figures.note IS 'Why the sides may legitimately differ (e.g. records held back, or QBO records the sync never touched).';

CREATE TABLE IF NOT EXISTS marts.reconciliation_findings (
    run_id          text        NOT NULL,
    realm_id        text        NOT NULL,
    entity          text        NOT NULL,
    record_id       text        NOT NULL,
    qbo_id          text,
    kind            text        NOT NULL,
    field           text        NOT NULL DEFAULT '',
    source_value    text,
    qbo_value       text,
    action          text        NOT NULL CHECK (action IN ('re-pushed', 're-pulled', 'reported')),
    repaired        boolean     NOT NULL,
    reason          text        NOT NULL,
    fix             text,
    PRIMARY KEY (run_id, entity, record_id, kind, field)
);
CREATE INDEX IF NOT EXISTS reconciliation_findings_realm_idx
    ON marts.reconciliation_findings (realm_id, entity, record_id);

COMMENT ON TABLE marts.reconciliation_findings IS 'Per-record differences between the source app, QBO and the warehouse found by a run, with what was done about each.';
COMMENT ON COLUMN marts.reconciliation_findings.run_id IS 'The reconciliation run (marts.reconciliation_runs).';
COMMENT ON COLUMN marts.reconciliation_findings.realm_id IS 'QBO company (realmId).';
COMMENT ON COLUMN marts.reconciliation_findings.entity IS 'Catalogue entity.';
COMMENT ON COLUMN marts.reconciliation_findings.record_id IS 'Source id of the record (QBO id for a record only QBO holds).';
COMMENT ON COLUMN marts.reconciliation_findings.qbo_id IS 'Its QBO id, when it has one.';
COMMENT ON COLUMN marts.reconciliation_findings.kind IS 'not_in_qbo (never pushed), source_changed (a source change the push never saw), stale_in_warehouse (QBO changed after the warehouse''s copy), deleted_in_qbo (the QBO twin is gone, the source record is not), differs (a field differs on both sides while each is in step with the sync).';
COMMENT ON COLUMN marts.reconciliation_findings.field IS 'For differs: total, date, due_date, name or active; empty otherwise.';
COMMENT ON COLUMN marts.reconciliation_findings.source_value IS 'The source app''s value (text).';
COMMENT ON COLUMN marts.reconciliation_findings.qbo_value IS 'QBO''s value (text), as read in this run.';
COMMENT ON COLUMN marts.reconciliation_findings.action IS 're-pushed (the push of this record ran), re-pulled (the pull ran for it) or reported (left for a person).';
COMMENT ON COLUMN marts.reconciliation_findings.repaired IS 'The difference was gone when the run compared again after its repairs.';
COMMENT ON COLUMN marts.reconciliation_findings.reason IS 'What differs, in words a person can act on.';
COMMENT ON COLUMN marts.reconciliation_findings.fix IS 'What to do about a reported difference.';

CREATE TABLE IF NOT EXISTS marts.reconciliation_states (
    run_id     text    NOT NULL,
    realm_id   text    NOT NULL,
    entity     text    NOT NULL,
    state      text    NOT NULL,
    records    integer NOT NULL,
    PRIMARY KEY (run_id, entity, state)
);

COMMENT ON TABLE marts.reconciliation_states IS 'Records per engine state (sync.record_state.status, deleted split by side) per run and entity, for the records-per-state chart.';
COMMENT ON COLUMN marts.reconciliation_states.run_id IS 'The reconciliation run (marts.reconciliation_runs).';
COMMENT ON COLUMN marts.reconciliation_states.realm_id IS 'QBO company (realmId).';
COMMENT ON COLUMN marts.reconciliation_states.entity IS 'Catalogue entity.';
COMMENT ON COLUMN marts.reconciliation_states.state IS 'synced, pending, held, failed, skipped, deleted, or not_in_sync (source records the engine has no state for).';
COMMENT ON COLUMN marts.reconciliation_states.records IS 'How many records were in that state after the run.';
