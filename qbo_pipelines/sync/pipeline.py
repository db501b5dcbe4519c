"""The push pipeline as plain functions: what the Dagster assets, the CLI and tests call.

Each function takes a :class:`~qbo_pipelines.sync.env.SyncEnv` and a company (realm) and does
one step for one entity, returning counts. No Dagster here.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast

import sqlalchemy as sa

from qbo_pipelines import entities as catalogue
from qbo_pipelines.canonical import RealmId
from qbo_pipelines.quality import gx_suites, rules
from qbo_pipelines.quality.gx_suites import SuiteOutcome
from qbo_pipelines.sync import context as push_context
from qbo_pipelines.sync.env import SyncEnv
from qbo_pipelines.sync.push import Mode, PushReport, PushRun, candidates, push_entity
from qbo_pipelines.sync.specs import SPECS
from qbo_pipelines.warehouse import loaders


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
    """Push one entity for one company (see :func:`qbo_pipelines.sync.push.push_entity`)."""
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
        report = push_entity(run, spec, mode=mode, source_ids=source_ids)
        report.api_calls = sum(client.calls.values())
    return report


def push_all(
    env: SyncEnv,
    realm_id: RealmId,
    *,
    run_id: str | None = None,
    mode: Mode = "incremental",
    only: Sequence[str] | None = None,
) -> PushAllReport:
    """Push every push entity for one company, in dependency order."""
    reports = [
        push(env, realm_id, e.name, run_id=run_id, mode=mode)
        for e in catalogue.push_order()
        if only is None or e.name in only
    ]
    return PushAllReport(realm_id, tuple(reports))


@dataclass(frozen=True)
class ExtractReport:
    """What ``raw/source/<entity>`` read: records merged into raw_source, deletes flagged."""

    entity: str
    read: int
    deleted: int
    full: bool


def extract(
    env: SyncEnv,
    realm_id: RealmId,
    entity: str,
    *,
    run_id: str | None = None,
    mode: Mode = "incremental",
    source_ids: Iterable[str] | None = None,
) -> ExtractReport:
    """Copy the records this run will push from the source app into ``raw_source`` (merge by
    source id; hard deletes flagged, never removed)."""
    todo = candidates(
        env.warehouse, env.connector, realm_id, entity, mode=mode, source_ids=source_ids
    )
    read = 0
    with env.warehouse.begin() as conn:
        for chunk in env.connector.iter_entity(entity, todo.wanted):
            read += loaders.load_raw_source(conn, entity, chunk, run_id, realm_id=realm_id)
        deleted = loaders.mark_source_deleted(
            conn, entity, sorted(todo.deleted), run_id, realm_id=realm_id
        )
    return ExtractReport(entity, read, deleted, todo.wanted is None)


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

    The suite comes from the same constraint table as the per-record rules, so its failing rows
    are the records the push holds back (quarantined with the reason and fix shown beside each
    row); the rest of the batch goes on.

    Args:
        env: the sync environment.
        entity: catalogue entity name.
        run_id: the run that extracted the records (``raw_source.<entity>.run_id``).
        realm_id: the company; found from the run's extracted rows when not given.
    """
    with env.warehouse.connect() as conn:
        found = cast(Any, conn).execute(
            sa.text(
                f"SELECT realm_id, source_id FROM raw_source.{entity}"  # noqa: S608 - catalogue
                " WHERE run_id = :run AND NOT deleted"
                + (" AND realm_id = :realm" if realm_id is not None else "")
            ),
            {"run": run_id, "realm": realm_id},
        ).all()
    realms = {str(r.realm_id) for r in found}
    if realm_id is None and len(realms) > 1:
        raise ValueError(f"run {run_id} extracted {entity} for several companies; name one")
    realm = str(realm_id) if realm_id is not None else next(iter(realms), "")
    ids = [str(r.source_id) for r in found]
    records: list[Any] = []
    for chunk in env.connector.iter_entity(entity, ids) if ids else ():
        records.extend(chunk)
    with env.warehouse.begin() as conn:
        staged = loaders.load_staging(conn, entity, records, run_id, realm_id=realm)
    if entity not in gx_suites.ENTITIES:
        return StageReport(entity, staged, SuiteOutcome(entity, True, 0, [], batch_rows=staged))
    explained = gx_suites.explain({str(r.source_id): rules.check(r) for r in records})
    outcome = gx_suites.validate_staged(env.warehouse, entity, realm, run_id, explained)
    return StageReport(entity, staged, outcome)


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
        ids = {e: v for e, v in _merged(claim.ids, claim.removed).items() if v}
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
