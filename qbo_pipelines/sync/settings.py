"""Sensor-side planning of push runs over every connected company (no Dagster here).

The sensor cursor is a JSON object ``{realm_id: last_requested_seq}``: the newest change-log
sequence number a requested run covers. Changes after it are "pending" for that company.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import cast

import sqlalchemy as sa

from qbo_pipelines import entities as catalogue
from qbo_pipelines.mapping import repository as mapping_repo
from qbo_pipelines.source_app import queries
from qbo_pipelines.source_app.connector import SourceAppConnector
from qbo_pipelines.sync import triggers
from qbo_pipelines.sync.engine import feed

SettingsLoader = Callable[[sa.Engine, str], triggers.TriggerSettings]


def parse_cursor(raw: str | None) -> dict[str, int]:
    """The sensor cursor (a malformed one starts afresh rather than failing the tick)."""
    if not raw:
        return {}
    try:
        data = json.loads(raw)
    except ValueError:
        return {}
    if not isinstance(data, dict):
        return {}
    return {str(k): int(v) for k, v in data.items() if isinstance(v, int)}


def dump_cursor(cursor: dict[str, int]) -> str:
    return json.dumps(cursor, sort_keys=True)


def trigger_settings(engine: sa.Engine, realm_id: str) -> triggers.TriggerSettings:
    """A company's switches from ``mapping.settings`` (SPEC defaults when it has no row)."""
    values = mapping_repo.load_settings(engine, realm_id)
    return triggers.TriggerSettings(
        sync_enabled=values.sync_enabled,
        paused=values.paused,
        debounce_seconds=values.debounce_seconds,
        max_wait_seconds=values.max_wait_seconds,
    )


def connected_realms(engine: sa.Engine) -> list[str]:
    with engine.connect() as conn:
        rows: Iterable[object] = conn.execute(
            sa.text("SELECT realm_id FROM sync.companies WHERE status = 'connected' ORDER BY 1")
        ).scalars()
        return [str(r) for r in rows]


def plan_push_requests(
    warehouse: sa.Engine,
    source: sa.Engine,
    cursor: dict[str, int],
    now: datetime,
    load_settings: SettingsLoader = trigger_settings,
) -> tuple[list[tuple[str, triggers.Decision]], list[str], dict[str, int]]:
    """Decide, per connected company, whether a push run starts now.

    Returns:
        (requests as (realm, decision), skip reasons, the new cursor).
    """
    from qbo_pipelines.qbo.app import ConfigError, QboApp

    try:
        QboApp.resolve(warehouse)
    except ConfigError as exc:
        return [], [str(exc)], dict(cursor)
    connector = SourceAppConnector(source)
    requests: list[tuple[str, triggers.Decision]] = []
    skips: list[str] = []
    new_cursor = dict(cursor)
    realms = connected_realms(warehouse)
    if not realms:
        return [], ["no connected QBO company: run `qbo-pipelines connect`"], new_cursor
    for realm in realms:
        pending = pending_uncovered(
            connector, cursor.get(realm, 0), push_positions(warehouse, realm)
        )
        switches = load_settings(warehouse, realm)
        decision = triggers.decide(realm, now, pending, switches)
        other = None if decision.run else _other_reasons(warehouse, realm, now, switches)
        if other is not None and other.run:  # it covers no source change: the cursor stays
            requests.append((realm, other))
            continue
        if other is not None and other.reason:
            skips.append(other.reason)
        if decision.run and decision.covers_seq is not None:
            requests.append((realm, decision))
            new_cursor[realm] = decision.covers_seq
        else:
            skips.append(decision.reason)
            if pending.count == 0 and pending.last_seq > cursor.get(realm, 0):
                new_cursor[realm] = pending.last_seq  # already pushed by another route
    return requests, skips, new_cursor


def _other_reasons(
    warehouse: sa.Engine, realm: str, now: datetime, switches: triggers.TriggerSettings
) -> triggers.Decision:
    """A run with no source change to push: mappings changed under synced records, or writes
    QBO refused are due for their retry (without it they would wait for the next edit)."""
    replan = triggers.decide_replan(realm, now, replans_waiting(warehouse, realm), switches)
    if replan.run:
        return replan
    retry = triggers.decide_retry(realm, now, retries_due(warehouse, realm, now), switches)
    return retry if retry.run or not replan.reason else replan


def retries_due(warehouse: sa.Engine, realm_id: str, now: datetime) -> triggers.Retries:
    """Records QBO refused whose automatic retry is due (their backoff has passed)."""
    with warehouse.connect() as conn:
        row = conn.execute(
            sa.text(
                "SELECT count(*), max(retry_at) FROM sync.record_state WHERE realm_id = :r"
                " AND entity IN :e AND status = 'failed'"
                " AND retry_at IS NOT NULL AND retry_at <= :now"
            ).bindparams(sa.bindparam("e", expanding=True)),
            {"r": realm_id, "e": [e.name for e in catalogue.push_order()], "now": now},
        ).one()
    return triggers.Retries(int(row[0]), cast("datetime | None", row[1]))


def replans_waiting(warehouse: sa.Engine, realm_id: str) -> triggers.Replans:
    """The re-plan markers mapping changes left for the company (``feed.replan_name``)."""
    names = {feed.replan_name(e.name): e.name for e in catalogue.push_order()}
    with warehouse.connect() as conn:
        rows = conn.execute(
            sa.text(
                "SELECT name, value, updated_at FROM sync.cursors WHERE realm_id = :r"
                " AND name IN :n ORDER BY name"
            ).bindparams(sa.bindparam("n", expanding=True)),
            {"r": realm_id, "n": list(names)},
        ).all()
    if not rows:
        return triggers.Replans((), None)
    return triggers.Replans(
        tuple(names[str(n)] for n, _, _ in rows),
        max(cast(datetime, at) for _, _, at in rows),
        max(str(v) for _, v, _ in rows),
    )


def push_positions(warehouse: sa.Engine, realm_id: str) -> dict[str, int]:
    """The company's change-feed position per push entity (none before its first push)."""
    names = {feed.cursor_name("push", e.name): e.name for e in catalogue.push_order()}
    with warehouse.connect() as conn:
        rows = conn.execute(
            sa.text(
                "SELECT name, value FROM sync.cursors WHERE realm_id = :r AND name IN :n"
            ).bindparams(sa.bindparam("n", expanding=True)),
            {"r": realm_id, "n": list(names)},
        ).all()
    return {names[str(n)]: int(str(v)) for n, v in rows if str(v).isdigit()}


def pending_uncovered(
    connector: SourceAppConnector, after: int, positions: dict[str, int]
) -> triggers.Pending:
    """Real source changes after the sensor cursor ``after`` that no push has read yet: a
    change whose transaction lies below its entity's feed ``positions`` was pushed by some
    route (the sensor's run, ``sync push``, a backfill) and starts no run."""
    try:
        stmt = queries.load("pending_uncovered", connector.queries_dir)
    except queries.QueryNotFoundError:  # an adapted source app without the query: by seq only
        p = connector.pending_since(after)
        return triggers.Pending(p.pending, p.last_seq, p.first_at, p.last_at)
    with connector.engine.connect() as conn:
        row = (
            conn.execute(
                stmt,
                {
                    "after": after,
                    "positions": json.dumps(positions),
                    "entities": json.dumps([e.name for e in catalogue.push_order()]),
                },
            )
            .mappings()
            .one()
        )
    return triggers.Pending(
        int(row["pending"]), int(row["last_seq"]), row["first_at"], row["last_at"]
    )
