"""The push pipeline as plain functions: what the Dagster assets, the CLI and tests call.

Each function takes a :class:`~qbo_pipelines.sync.env.SyncEnv` and a company (realm) and does
one step for one entity, returning counts. No Dagster here.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from qbo_pipelines import entities as catalogue
from qbo_pipelines.canonical import RealmId, SourceId
from qbo_pipelines.mapping.model import Settings
from qbo_pipelines.mapping.repository import load_settings
from qbo_pipelines.quality import gx_suites, quarantine, rules
from qbo_pipelines.quality.gx_suites import SuiteOutcome
from qbo_pipelines.sync import context as push_context
from qbo_pipelines.sync import staged
from qbo_pipelines.sync.engine import records
from qbo_pipelines.sync.env import SyncEnv
from qbo_pipelines.sync.push import (
    CHUNK,
    Mode,
    PushReport,
    PushRun,
    candidates,
    push_entity,
    row_pages,
)
from qbo_pipelines.sync.specs import SPECS
from qbo_pipelines.warehouse import bulk, loaders

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PushAllReport:
    """One push of every entity for one company."""

    realm_id: str
    reports: tuple[PushReport, ...]

    def totals(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for report in self.reports:
            for key, value in report.as_metadata().items():
                out[key] = out.get(key, 0) + value
        return out


def push(
    env: SyncEnv,
    realm_id: RealmId,
    entity: str,
    *,
    run_id: str | None = None,
    mode: Mode = "incremental",
    source_ids: Iterable[str] | None = None,
) -> PushReport:
    """Push one entity for one company, reading the candidates from the source now (see
    :func:`qbo_pipelines.sync.push.push_entity`).

    The direct library path, for what has no staged snapshot: the reconciliation's targeted
    repairs and backfills by window (which push the source as it is when they run). The push
    job's assets use :func:`push_staged`, as :func:`push_all` does."""
    return _push(env, realm_id, entity, run_id=run_id, mode=mode, source_ids=source_ids)


def push_staged(
    env: SyncEnv,
    realm_id: RealmId,
    entity: str,
    *,
    run_id: str,
    snapshot_of: Sequence[str] = (),
) -> PushReport:
    """Push exactly what this run's ``raw/source`` extract read and ``staged/qbo`` checked:
    the staged records (from ``staging``, never re-read from the source), the deletes the
    extract found, and the feed moved to the window the extract covered.

    Args:
        env: the sync environment.
        realm_id: the company.
        entity: catalogue entity name.
        run_id: this run (the ledger and ``sync.record_state`` name it).
        snapshot_of: runs whose snapshot may be used when this run took none, in order (a
            re-executed run's parent and root run).

    Raises:
        staged.NoSnapshotError: neither this run nor ``snapshot_of`` extracted and staged it.
    """
    snapshot = staged.find(env.warehouse, realm_id, entity, [run_id, *snapshot_of])
    return _push(env, realm_id, entity, run_id=run_id, snapshot=snapshot)


def _push(
    env: SyncEnv,
    realm_id: RealmId,
    entity: str,
    *,
    run_id: str | None,
    mode: Mode = "incremental",
    source_ids: Iterable[str] | None = None,
    snapshot: staged.Snapshot | None = None,
) -> PushReport:
    spec = SPECS[catalogue.entity(entity).name]
    with env.client(realm_id) as client:
        run = PushRun(
            engine=env.warehouse,
            client=client,
            reader=env.connector,
            realm_id=realm_id,
            run_id=run_id,
            context=push_context.load(env.warehouse, env.connector, realm_id),
        )
        report = push_entity(run, spec, mode=mode, source_ids=source_ids, snapshot=snapshot)
        report.api_calls = sum(client.calls.values())
    return report


def push_all(
    env: SyncEnv,
    realm_id: RealmId,
    *,
    run_id: str | None = None,
    mode: Mode = "incremental",
    only: Sequence[str] | None = None,
    delete_missing: bool = False,
) -> PushAllReport:
    """Push every push entity for one company the way the push job does, without Dagster:
    each entity's :func:`extract` (``raw/source``), then its :func:`stage` and Great
    Expectations suite (``staged/qbo``), then :func:`push_staged` in dependency order
    (``pushed/qbo``), so the records written are exactly the snapshot staged and checked.

    The snapshot is taken under a run id of its own (``run_id`` with a unique suffix), so a
    caller repeating a run id never reuses an older snapshot; the ledger and
    ``sync.record_state`` name ``run_id``."""
    entities = [e.name for e in catalogue.push_order() if only is None or e.name in only]
    snapshot = f"{run_id or 'push'}~{uuid.uuid4().hex[:12]}"
    for entity in entities:
        extract(env, realm_id, entity, run_id=snapshot, mode=mode, delete_missing=delete_missing)
    for entity in entities:
        stage(env, entity, run_id=snapshot, realm_id=realm_id)
    reports = [
        push_staged(env, realm_id, entity, run_id=run_id or snapshot, snapshot_of=[snapshot])
        for entity in entities
    ]
    return PushAllReport(realm_id, tuple(reports))


@dataclass(frozen=True)
class ExtractReport:
    """What ``raw/source/<entity>`` read: records merged into raw_source, deletes found, and
    on a full read the records left out as in step (their source row unchanged)."""

    entity: str
    read: int
    deleted: int
    full: bool
    unchanged: int = 0
    missing: int = 0
    """Records gone from the source behind its change log, too many at once to be taken for
    deletes (:func:`_missing_limit`): nothing of them was deleted in QBO."""


MISSING_TITLE = "Records missing from the source app"


def _missing_limit(settings: Settings, known: int) -> int:
    """How many records of an entity a full read may find gone from the source app without a
    delete in its change log (a bulk fix with the change capture off) and still carry out as
    deletes by itself: the company's ``missing-deletes-max``, or ``missing-deletes-percent`` of
    the records the sync knows, the larger. More at once look like a TRUNCATE, a restore or a
    lost table, no decision to delete accounting documents: they are held, with a notification,
    until ``sync push --full --delete-missing`` (or the rows are restored)."""
    return max(settings.missing_deletes_max, known * settings.missing_deletes_percent // 100)


def extract(
    env: SyncEnv,
    realm_id: RealmId,
    entity: str,
    *,
    run_id: str | None = None,
    mode: Mode = "incremental",
    source_ids: Iterable[str] | None = None,
    delete_missing: bool = False,
) -> ExtractReport:
    """Read the records this run will push from the source app, once, into ``raw_source``
    (merge by source id; hard deletes flagged, never removed): the run's snapshot.

    The deletes found are the feed's; on a full read also the records the sync knows that
    were not read, and on a targeted read the requested ids not found. With a ``run_id`` the
    snapshot (feed window, read kind, deletes) is recorded in ``sync.run_windows`` in the same
    transaction, for :func:`stage` and :func:`push_staged`."""
    todo = candidates(
        env.warehouse, env.connector, realm_id, entity, mode=mode, source_ids=source_ids
    )
    full = todo.wanted is None
    # Known before reading: a record the sync learns about while the read runs is never
    # taken for a delete.
    known = records.source_ids(env.warehouse, realm_id, entity) if full else set()
    requested = set(todo.wanted or ()) if source_ids is not None else set()
    unchanged = 0
    seen: set[SourceId] = set()
    with env.warehouse.begin() as conn:
        # Each chunk's rows (JSON, hash, staged values) are computed here while Postgres
        # merges the chunk before (one write behind, on this transaction's connection).
        with bulk.Behind() as behind:

            def merge(chunk: list[Any], hashes: dict[SourceId, str] | None = None) -> None:
                rows = loaders.raw_source_rows(
                    entity, chunk, run_id, realm_id=realm_id, row_hashes=hashes
                )
                behind.submit(loaders.write_raw_source, conn, entity, rows)

            if full:
                # Postgres hashes every source row; only records whose row moved since they
                # were last in step are read (the others are counted, and seen for deletes).
                every = todo.replan is not None  # a mapping changed: every record is read
                for page in row_pages(
                    env.warehouse, env.connector, realm_id, entity, every=every
                ):
                    seen.update(page.hashes)
                    unchanged += page.steady
                    moved = env.connector.iter_entity(entity, page.moved) if page.moved else ()
                    for chunk in moved:
                        merge(chunk, page.hashes)
            for chunk in () if full else env.connector.iter_entity(entity, todo.wanted):
                if requested:
                    seen.update(SourceId(r.source_id) for r in chunk)
                merge(chunk)
            read = behind.wait()
        missing = (known - seen) - set(todo.deleted)
        limit = _missing_limit(load_settings(conn, realm_id), len(known))
        held = full and not delete_missing and len(missing) > limit
        kept = len(missing) if held else 0  # held as missing, not taken for deletes
        _notify_missing(conn, realm_id, entity, kept, full, limit)
        gone = set(todo.deleted) | (set() if held else missing) | (requested - seen)
        loaders.mark_source_deleted(conn, entity, sorted(gone), run_id, realm_id=realm_id)
        if run_id is not None:
            window = todo.window
            staged.record_extract(
                conn,
                run_id=run_id,
                realm_id=realm_id,
                entity=entity,
                feed_lo=window.lo if window is not None else None,
                feed_hi=window.hi if window is not None else None,
                full=full,
                targeted=source_ids is not None,
                deleted=gone,
                extracted=read,
                unchanged=unchanged,
            )
    return ExtractReport(entity, read, len(gone), full, unchanged, kept)


def _notify_missing(
    conn: sa.Connection, realm_id: RealmId, entity: str, missing: int, full: bool, limit: int
) -> None:
    """Open (or refresh) the company's notification of records held as missing, or resolve
    it once a full read finds nothing held."""
    if missing:
        log.warning("%s: %d records missing from the source app, not deleted", entity, missing)
        quarantine.notify_failure(
            conn,
            realm_id,
            entity,
            "*",
            MISSING_TITLE,
            f"{missing} {entity} the sync knows are gone from the source app without a delete "
            "in its change log (a TRUNCATE, a restore, a lost table?), more than the "
            f"{limit} the company lets a full read delete by itself: nothing of them was "
            "deleted in QBO",
            "If they were lost, restore the rows in the source app. If they were deleted on "
            f"purpose, run `qbo-pipelines sync push --realm {realm_id} --full "
            "--delete-missing`: their QBO twins the sync created are deleted then (R17). "
            "The limit is the company's setting: `qbo-pipelines mappings set "
            "missing-deletes-max N` (and `missing-deletes-percent P`).",
        )
    elif full:
        quarantine.resolve_notifications(conn, realm_id, entity, ["*"], title=MISSING_TITLE)


@dataclass(frozen=True)
class StageReport:
    """What ``staged/qbo/<entity>`` staged, and the Great Expectations verdict on it (R40)."""

    entity: str
    staged: int
    suite: SuiteOutcome


def stage(
    env: SyncEnv, entity: str, *, run_id: str, realm_id: RealmId | None = None
) -> StageReport:
    """Stage the canonical records this run extracted for the company into ``staging.<entity>``
    (the JSON and the typed columns of the entity's constraint table) and validate that batch
    in Postgres with the entity's Great Expectations checkpoint.

    The records come from the run's ``raw_source`` rows (the extract's snapshot), never from
    the source app again: Postgres copies them with one ``INSERT ... SELECT``, the typed
    columns cast from the values the extract computed for each record
    (:func:`loaders.stage_run`); rows extracted before those values were kept are decoded
    and computed here, in keyset pages. The suite comes
    from the same constraint table as the per-record rules, so its failing rows are the
    records the push holds back (quarantined with the reason and fix shown beside each row);
    the rest of the batch goes on.

    Args:
        env: the sync environment.
        entity: catalogue entity name.
        run_id: the run that extracted the records (``raw_source.<entity>.run_id``).
        realm_id: the company; found from the run's extract when not given.
    """
    if realm_id is None:
        realms = staged.extracted_realms(env.warehouse, entity, run_id)
        if len(realms) > 1:
            raise ValueError(f"run {run_id} extracted {entity} for several companies; name one")
        realm = realms[0] if realms else ""
    else:
        realm = str(realm_id)
    with env.warehouse.begin() as conn:
        count = loaders.stage_run(conn, entity, run_id, realm_id=realm)
    legacy = staged.iter_raw(env.warehouse, realm, entity, run_id, CHUNK, unstaged_only=True)
    for page in legacy if loaders.staged_columns(entity) else ():
        with env.warehouse.begin() as conn:
            count += loaders.load_staging(
                conn, entity, page.records, run_id, realm_id=realm, stored=page.stored
            )
    staged.record_staged(env.warehouse, run_id, realm, entity, count)
    if count >= loaders.ANALYZE_AFTER:
        loaders.analyze_staging(env.warehouse, entity)
    if entity not in gx_suites.ENTITIES:
        return StageReport(entity, count, SuiteOutcome(entity, True, 0, [], batch_rows=count))

    def explain(ids: Iterable[str]) -> gx_suites.Explained:
        """The rules' reasons and fixes for the rows the suite failed (read back and checked
        here: the push checks every record again when it plans it)."""
        records = staged.staged_records(env.warehouse, realm, entity, run_id, ids)
        return gx_suites.explain({str(r.source_id): rules.check(r) for r in records})

    outcome = gx_suites.validate_staged(env.warehouse, entity, realm, run_id, explain)
    return StageReport(entity, count, outcome)


# --------------------------------------------------------------------------- the pull


@dataclass(frozen=True)
class PullExtractReport:
    """One extract of a company's QBO changes into ``raw_qbo`` (the pull's first step)."""

    realm_id: str
    rows: dict[str, int]
    changed: int
    deleted: int
    webhook_events: int
    reads: int
    full: bool


def pull_extract(
    env: SyncEnv, realm_id: RealmId, *, run_id: str | None = None, full: bool = False
) -> PullExtractReport:
    """Bring a company's QBO changes into ``raw_qbo``: exactly the records the webhook inbox
    names (``Id IN`` pages), then one CDC call as the safety net (a full re-read on the first
    run, when asked, or when the cursor is older than CDC's 30 days; R29, R36, R44). The inbox
    events are marked processed once their records are in ``raw_qbo``: the write-back finds
    them there (out of step with ``sync.record_state``) even if this run stops before it."""
    from qbo_pipelines.sync.engine import lock
    from qbo_pipelines.sync.extract import ENTITIES, extract_qbo
    from qbo_pipelines.webhooks import inbox

    claim = inbox.claim(env.warehouse, realm_id)
    with env.client(realm_id) as client, lock.company_writer(env.warehouse, realm_id):
        ids = _readable(realm_id, _merged(claim.ids, claim.removed), ENTITIES)
        report = extract_qbo(
            client,
            env.warehouse,
            realm_id,
            ids=None if full else (ids or None),
            entities=list(ENTITIES),
            full=full,
            run_id=run_id,
        )
    if claim.row_ids:
        inbox.done(env.warehouse, claim.row_ids, run_id or "cli")
    inbox.prune(env.warehouse, inbox.KEEP_PROCESSED)
    from qbo_pipelines.sync import state
    from qbo_pipelines.sync.pull import LAST_RUN_CURSOR

    state.set_cursor(env.warehouse, realm_id, LAST_RUN_CURSOR, datetime.now(UTC).isoformat())
    return PullExtractReport(
        realm_id,
        dict(report.rows),
        sum(len(v) for v in report.changed.values()),
        sum(len(v) for v in report.deleted.values()),
        len(claim.row_ids),
        report.calls,
        report.full,
    )


def _readable(
    realm_id: str, ids: dict[str, list[str]], entities: Sequence[str]
) -> dict[str, list[str]]:
    """The notified ids the extract can read: entities it has a ``raw_qbo`` table for, ids as
    QBO makes them (digits). QBO also notifies entities the sync does not keep (Preferences,
    Currency, ...), and a forged but validly signed event can name anything: either, read,
    would fail every pull of the company for good. They are logged and left out (the events are
    marked done with the rest; the CDC call still reads what changed)."""
    out: dict[str, list[str]] = {}
    for entity, wanted in ids.items():
        readable = [i for i in wanted if i.isascii() and i.isdigit()] if entity in entities else []
        if len(readable) < len(wanted):
            log.warning(
                "%s: %d webhook event(s) for %s not read (%s)",
                realm_id,
                len(wanted) - len(readable),
                entity[:40],
                "not an id QBO makes" if entity in entities else "an entity the sync does not keep",
            )
        if readable:
            out[entity] = readable
    return out


def _merged(a: dict[str, list[str]], b: dict[str, list[str]]) -> dict[str, list[str]]:
    keys = set(a) | set(b)
    return {k: sorted(set(a.get(k, ())) | set(b.get(k, ()))) for k in keys}


def pull(env: SyncEnv, realm_id: RealmId, entity: str, *, run_id: str | None = None) -> Any:
    """Write one entity's QBO changes (already in ``raw_qbo``) into the source app
    (:func:`qbo_pipelines.sync.pull.pull_entity`); returns its :class:`PullReport`."""
    from qbo_pipelines.sync.pull import PullRun, pull_entity

    run = PullRun(
        engine=env.warehouse,
        source=env.connector,
        realm_id=realm_id,
        run_id=run_id,
        context=push_context.load(env.warehouse, env.connector, realm_id),
    )
    return pull_entity(run, entity)


def pull_all(
    env: SyncEnv, realm_id: RealmId, *, run_id: str | None = None, full: bool = False
) -> dict[str, Any]:
    """Extract and write back every pull entity of one company (tests, the demo, the CLI)."""
    from qbo_pipelines.sync.pull import SPECS as PULL_SPECS

    out: dict[str, Any] = {"extract": pull_extract(env, realm_id, run_id=run_id, full=full)}
    for name in [*PULL_SPECS, "customer_transactions"]:
        out[name] = pull(env, realm_id, name, run_id=run_id)
    return out
