"""The QBO extract: QBO objects into ``raw_qbo``, reading only what changed (R26, R36, R44).

Plain library (no Dagster). :func:`extract_qbo` is the one entry point; the pull planner
(``sync/pull.py``) and the Dagster layer call it and then read ``raw_qbo.<table>.data``.

How it reads (QBO_API.md §2, §3, §8):

* **Incremental** (the default once a company has a cursor): ONE ``/cdc`` call for every
  CDC-capable entity (:data:`CDC_ENTITIES`) from the company's cursor (``sync.cursors``, name
  :data:`CURSOR_NAME`). Only when that answer holds 1000 objects (QBO's cap, no paging) is the
  window re-split by :func:`qbo_pipelines.qbo.cdc.read_changes` (a few more calls; changes
  stamped in QBO's current second then wait for the next cycle, and more than 1000 changes of
  one entity in a single second, which CDC cannot page, mean a full read). Delete stubs flag rows
  ``deleted`` with ``deleted_at`` (R36); rows are never removed. The next cursor is the CDC
  answer's ``time`` (QBO's clock, less one second of overlap: QBO stamps whole seconds), stored
  only after the load committed, so a crash re-reads the same window (loads are idempotent).
  Entities CDC does not cover (:data:`NOT_CDC`: TaxCode, TaxRate, TimeActivity, CompanyInfo) are
  read only on full runs or when ``ids`` names them.
* **Full** when the company has no cursor, when ``full=True``, or when the cursor is older than
  :data:`CDC_LOOKBACK` (QBO's 30 days less a day of margin; a CDC call QBO still refuses as too
  old also falls back to a full read): every entity with paged queries of 1000 rows
  (``STARTPOSITION``/``MAXRESULTS``, inactive name-list rows included), each page merged and
  committed before the next is read (memory holds one page). The cursor becomes the time of the
  first page's answer (less one second), so whatever changes during the read is caught by the
  next CDC call. A full read flags as deleted only the records the sync holds (record_state)
  that it never saw at all, after confirming them by ``Id IN`` (deleted before the company's first
  read); otherwise CDC (and ``ids``) are the source of deletes, so deletes that happened while the
  cursor was too old for CDC stay unflagged until reconciliation (R38) finds them.
  Paging by position can skip a row when another row of the same entity is deleted between two
  pages; that row is read again by the next CDC call only if it changes (reconciliation covers
  it too).
* **By id** (``ids``, from webhooks): ``SELECT * FROM <Entity> WHERE Id IN (...)`` in pages of
  at most 1000 ids (literals escaped by :mod:`qbo_pipelines.qbo.query`); an id the answer does
  not hold was deleted and is flagged. With ``ids`` no CDC call is made unless ``entities`` is
  given too (then those entities are also read incrementally, or in full): a pull cycle is
  ``extract_qbo(..., ids=webhook_ids, entities=None)`` plus the safety net
  ``extract_qbo(...)``, or both at once with ``entities=ENTITIES``.

Every load goes through :func:`qbo_pipelines.warehouse.raw_qbo.merge`: keyed by
``(realm_id, qbo_id)``, a newer version (SyncToken, then LastUpdatedTime) only, so repeats never
duplicate and out-of-order reads never move a row backwards; lines are replaced in Postgres when
their parent row changes.

Cursors: the default entity set uses :data:`CURSOR_NAME`; an explicit subset of CDC entities
keeps its own cursor (``pull:qbo:cdc:<sorted names>``) so a partial extract never moves the
company's cursor past changes it did not read. Adding an entity to
:data:`qbo_pipelines.warehouse.raw_qbo.ENTITY_TABLES` (hence :data:`ENTITIES`) needs one
``full=True`` run to load its history.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa

from qbo_pipelines.qbo import query as q
from qbo_pipelines.qbo.cdc import CDC_MAX_OBJECTS, CDC_MAX_SPAN, CDC_UNSUPPORTED
from qbo_pipelines.qbo.client import NAME_LIST_ENTITIES, PAGE_SIZE, QboClient, QueryResult
from qbo_pipelines.qbo.errors import QboError, ValidationError
from qbo_pipelines.qbo.values import Entity, parse_datetime
from qbo_pipelines.sync.state import get_cursor, set_cursor
from qbo_pipelines.warehouse import raw_qbo

log = logging.getLogger(__name__)

ENTITIES: tuple[str, ...] = tuple(raw_qbo.ENTITY_TABLES)
"""Every QBO entity the extract reads (each has a ``raw_qbo`` table), in reading order."""

NOT_CDC: frozenset[str] = frozenset(CDC_UNSUPPORTED | {"CompanyInfo"})
"""Entities ``/cdc`` does not cover (QBO_API.md §3; CompanyInfo is a singleton read by query)."""

CDC_ENTITIES: tuple[str, ...] = tuple(e for e in ENTITIES if e not in NOT_CDC)
"""The entities of the one CDC call per cycle."""

CURSOR_NAME = "pull:qbo:cdc"
"""``sync.cursors`` name of a company's CDC position (QBO time, ISO 8601 with offset)."""

CDC_LOOKBACK = CDC_MAX_SPAN - timedelta(days=1)
"""A cursor older than this (by ``now``) is not trusted to CDC: a full re-read instead."""

OVERLAP = timedelta(seconds=1)
"""Cursors step back one second: QBO stamps LastUpdatedTime in whole seconds."""


@dataclass(frozen=True)
class ExtractReport:
    """What one :func:`extract_qbo` did.

    Attributes:
        changed: QBO entity -> ids created or updated by this extract whose stored row actually
            changed (a re-read of an unchanged object is not listed).
        deleted: QBO entity -> ids newly flagged deleted.
        rows: QBO entity -> objects QBO returned for it (live objects and delete stubs).
        calls: QBO API reads made (HTTP attempts, retries included).
        full: whether a full re-read was done.
        cursor: the company's CDC cursor after the extract (None if none was stored).
    """

    changed: dict[str, tuple[str, ...]] = field(default_factory=dict)
    deleted: dict[str, tuple[str, ...]] = field(default_factory=dict)
    rows: dict[str, int] = field(default_factory=dict)
    calls: int = 0
    full: bool = False
    cursor: str | None = None


class _Totals:
    def __init__(self) -> None:
        self.changed: dict[str, dict[str, None]] = {}
        self.deleted: dict[str, dict[str, None]] = {}
        self.rows: dict[str, int] = {}

    def add(self, entity: str, result: raw_qbo.MergeResult, rows: int) -> None:
        self.rows[entity] = self.rows.get(entity, 0) + rows
        if result.changed:
            self.changed.setdefault(entity, {}).update(dict.fromkeys(result.changed))
        if result.deleted:
            self.deleted.setdefault(entity, {}).update(dict.fromkeys(result.deleted))
            for qbo_id in result.deleted:  # deleted wins over an earlier change in this run
                self.changed.get(entity, {}).pop(qbo_id, None)


class _CursorTooOld(Exception):
    """CDC cannot serve the window: QBO refused the cursor as older than its lookback, or one
    entity has more than 1000 changes stamped in one second (CDC cannot page them)."""


def extract_qbo(
    client: QboClient,
    engine: sa.Engine,
    realm_id: str,
    *,
    entities: Sequence[str] | None = None,
    ids: Mapping[str, Collection[str]] | None = None,
    full: bool = False,
    run_id: str | None = None,
    now: datetime | None = None,
) -> ExtractReport:
    """Extract QBO objects of one company into ``raw_qbo`` (see the module docstring).

    Args:
        client: a client for the company (its budget is shared by every process).
        engine: the warehouse.
        realm_id: the company (must be the client's).
        entities: QBO entity names to read (default: :data:`ENTITIES`). With ``ids``: the
            entities to also read incrementally (None: none, only the ids).
        ids: QBO entity -> ids to read exactly (webhook notifications).
        full: re-read every entity in full (no CDC).
        run_id: stored on every written row (e.g. the Dagster run id).
        now: the time used to judge the cursor's age and stamp written rows (default: now).

    Returns:
        an :class:`ExtractReport`.

    Raises:
        ValueError: an unknown entity name, or a realm that is not the client's.
        QboError: QBO failed (after the client's retries); everything committed so far stays
            (idempotent), the cursor does not move.
    """
    if str(client.realm_id) != str(realm_id):
        raise ValueError(f"client is for company {client.realm_id}, not {realm_id}")
    at = now or datetime.now(UTC)
    if at.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    start_calls = _calls(client)
    totals = _Totals()
    ctx = _Ctx(client, engine, realm_id, run_id, at, totals)
    if ids:
        for entity in ids:
            _check_entity(entity)
        for entity, wanted in ids.items():
            _read_ids(ctx, entity, wanted)
    names = _names(entities) if entities is not None or not ids else []

    did_full = False
    cursor_name = _cursor_name([e for e in names if e not in NOT_CDC])
    cursor_out: str | None = None
    if names:
        cdc_part = [e for e in names if e not in NOT_CDC]
        since = _parse_cursor(get_cursor(engine, realm_id, cursor_name)) if cursor_name else None
        if full or (cdc_part and (since is None or since < at - CDC_LOOKBACK)):
            cursor_out, did_full = _full_read(ctx, names), True
        elif cdc_part and since is not None:
            try:
                cursor_out = _incremental(ctx, cdc_part, since)
            except _CursorTooOld:
                log.warning(
                    "%s: CDC cannot serve the window from %s; full re-read",
                    realm_id,
                    since.isoformat(),
                )
                cursor_out, did_full = _full_read(ctx, names), True
        if cursor_out is not None and cursor_name is not None:
            set_cursor(engine, realm_id, cursor_name, cursor_out)
    current = cursor_out
    if current is None:
        current = get_cursor(engine, realm_id, cursor_name or CURSOR_NAME)
    return ExtractReport(
        changed={e: tuple(v) for e, v in totals.changed.items() if v},
        deleted={e: tuple(v) for e, v in totals.deleted.items() if v},
        rows=dict(totals.rows),
        calls=_calls(client) - start_calls,
        full=did_full,
        cursor=current,
    )


@dataclass
class _Ctx:
    client: QboClient
    engine: sa.Engine
    realm_id: str
    run_id: str | None
    at: datetime
    totals: _Totals

    def load(
        self,
        entity: str,
        objects: Iterable[Entity],
        rows: int,
        *,
        deleted_at: datetime | None = None,
        conn: sa.Connection | None = None,
    ) -> None:
        if conn is None:
            with self.engine.begin() as own:
                self.load(entity, objects, rows, deleted_at=deleted_at, conn=own)
            return
        result = raw_qbo.merge(
            conn,
            self.realm_id,
            entity,
            objects,
            run_id=self.run_id,
            at=self.at,
            deleted_at=deleted_at,
        )
        self.totals.add(entity, result, rows)


def _calls(client: QboClient) -> int:
    return sum(client.calls.values())


def _check_entity(entity: str) -> None:
    if entity not in ENTITIES:
        raise ValueError(f"unknown QBO entity {entity!r}; one of {', '.join(ENTITIES)}")


def _names(entities: Sequence[str] | None) -> list[str]:
    if entities is None:
        return list(ENTITIES)
    if isinstance(entities, str):
        raise ValueError("entities must be a sequence of names, not a string")
    for entity in entities:
        _check_entity(entity)
    wanted = set(entities)
    return [e for e in ENTITIES if e in wanted]


def _cursor_name(cdc_part: Sequence[str]) -> str | None:
    if not cdc_part:
        return None
    if set(cdc_part) == set(CDC_ENTITIES):
        return CURSOR_NAME
    return f"{CURSOR_NAME}:{','.join(sorted(cdc_part))}"


def _parse_cursor(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        return parse_datetime(value)
    except ValueError:
        log.warning("unreadable CDC cursor %r: full re-read", value)
        return None


def _cursor_from(stamp: datetime) -> str:
    return (stamp.replace(microsecond=0) - OVERLAP).isoformat()


def _select(entity: str, *conditions: q.Condition) -> q.Query:
    query = q.select(entity, *conditions)
    if entity in NAME_LIST_ENTITIES:  # inactive rows too (QBO hides them otherwise)
        query = query.where(q.in_("Active", (True, False)))
    return query


def _pages(client: QboClient, entity: str) -> Iterator[QueryResult]:
    """Every page of ``SELECT * FROM entity`` (1000 rows; a short page ends it)."""
    base = _select(entity)
    start = 1
    while True:
        page = client.query(base.page(start, PAGE_SIZE))
        yield page
        if len(page.entities) < PAGE_SIZE:
            return
        start += len(page.entities)


def _full_read(ctx: _Ctx, names: Sequence[str]) -> str:
    """Read ``names`` in full, page by page, each page committed; the next cursor."""
    first: datetime | None = None
    for entity in names:
        for page in _pages(ctx.client, entity):
            if first is None:
                first = page.time or ctx.at
            ctx.load(entity, page.entities, len(page.entities))
            if not page.entities:
                ctx.totals.rows.setdefault(entity, 0)
    for entity in names:
        unseen = _synced_but_never_seen(ctx, entity)
        if unseen:  # deleted in QBO before this first read: confirmed by Id, then flagged
            _read_ids(ctx, entity, unseen)
    return _cursor_from(first or ctx.at)


def _synced_but_never_seen(ctx: _Ctx, entity: str) -> list[str]:
    """QBO ids the sync holds for ``entity`` (live in ``sync.record_state``) with no row in
    ``raw_qbo`` after a full read: hard-deleted before the company's first read, which a query
    cannot return and CDC before the first cursor never reported."""
    if entity not in raw_qbo.ENTITY_TABLES:
        return []
    sql = sa.text(
        "SELECT rs.qbo_id FROM sync.record_state rs"
        " WHERE rs.realm_id = :r AND rs.qbo_entity = :e AND rs.qbo_id IS NOT NULL"
        "   AND rs.status <> 'deleted' AND NOT EXISTS ("
        f"     SELECT 1 FROM {raw_qbo.table_for(entity)} w"
        "      WHERE w.realm_id = rs.realm_id AND w.qbo_id = rs.qbo_id)"
    )
    with ctx.engine.connect() as conn:
        ids: Iterable[object] = conn.execute(sql, {"r": ctx.realm_id, "e": entity}).scalars()
        return [str(i) for i in ids]


def _cdc_objects(payload: Mapping[str, Any]) -> list[tuple[str, Entity]]:
    """(entity, object) pairs of a ``CDCResponse`` body (``{}`` elements hold none)."""
    found: list[tuple[str, Entity]] = []
    blocks = payload.get("CDCResponse") or []
    for block in blocks if isinstance(blocks, list) else [blocks]:
        if not isinstance(block, Mapping):
            continue
        responses = block.get("QueryResponse") or []
        for response in [responses] if isinstance(responses, Mapping) else responses:
            if not isinstance(response, Mapping):
                continue
            for key, value in response.items():
                if isinstance(value, list):
                    found.extend((key, o) for o in value if isinstance(o, dict) and "Id" in o)
    return found


def _too_old(exc: QboError) -> bool:
    text = f"{exc.message} {exc.detail}".lower()
    return isinstance(exc, ValidationError) and ("older than" in text or exc.code == "500")


def _incremental(ctx: _Ctx, cdc_part: Sequence[str], since: datetime) -> str:
    """One CDC call from ``since`` (re-split only when capped); the next cursor."""
    try:
        payload = ctx.client.cdc_call(cdc_part, since)
    except QboError as exc:
        if _too_old(exc):
            raise _CursorTooOld(str(exc)) from exc
        raise
    stamp = payload.get("time")
    answered = parse_datetime(stamp) if isinstance(stamp, str) else None
    objects = _cdc_objects(payload)
    by_entity: dict[str, list[Entity]] = {}
    if len(objects) < CDC_MAX_OBJECTS and answered is not None:
        for entity, obj in objects:
            by_entity.setdefault(_canonical(entity), []).append(obj)
        cursor = _cursor_from(answered)
    else:
        # Capped (or no time in the answer): qbo/cdc.py splits the window until every change
        # up to the answer's time is read, each once, newest state.
        until = answered.replace(microsecond=0) if answered is not None else None
        try:
            result = ctx.client.cdc(cdc_part, since, until)
        except QboError as exc:
            if exc.code == "cdc-cap":  # > 1000 changes of one entity in one second
                raise _CursorTooOld(str(exc)) from exc
            raise
        for change in result.changes:
            by_entity.setdefault(_canonical(change.entity), []).append(change.data)
        cursor = _cursor_from(result.checkpoint + OVERLAP)
    with ctx.engine.begin() as conn:  # the whole answer in one transaction
        for entity, objs in by_entity.items():
            if entity in raw_qbo.ENTITY_TABLES:
                ctx.load(entity, objs, len(objs), conn=conn)
    for entity in cdc_part:
        ctx.totals.rows.setdefault(entity, 0)
    return cursor


_BY_LOWER = {e.lower(): e for e in ENTITIES}


def _canonical(entity: str) -> str:
    return _BY_LOWER.get(entity.lower(), entity)


def _read_ids(ctx: _Ctx, entity: str, wanted: Collection[str]) -> None:
    """``Id IN (...)`` pages of at most 1000 ids; ids QBO does not return are flagged deleted
    when the sync has seen them (a ``raw_qbo`` row or a ``sync.record_state`` row). An id it
    never saw (a notification of a record that never existed, or one created and deleted in
    QBO between two reads) has nothing to delete anywhere: it is logged once, not stored."""
    unique = list(dict.fromkeys(str(i) for i in wanted))
    unknown: list[str] = []
    for start in range(0, len(unique), PAGE_SIZE):
        chunk = unique[start : start + PAGE_SIZE]
        page = ctx.client.query(_select(entity, q.in_("Id", tuple(chunk))).page(1, len(chunk)))
        found = {str(o.get("Id")) for o in page.entities}
        missing = [i for i in chunk if i not in found]
        known = _seen(ctx, entity, missing)
        unknown.extend(i for i in missing if i not in known)
        gone: list[Entity] = [{"Id": i, "status": "Deleted"} for i in missing if i in known]
        ctx.load(
            entity, [*page.entities, *gone], len(page.entities), deleted_at=page.time or ctx.at
        )
    if unknown:
        log.info(
            "%s: %d %s id(s) QBO does not hold and the sync never saw, ignored (nothing to "
            "delete): %s",
            ctx.realm_id,
            len(unknown),
            entity,
            ", ".join(unknown[:20]) + (" ..." if len(unknown) > 20 else ""),
        )


def _seen(ctx: _Ctx, entity: str, ids: Sequence[str]) -> set[str]:
    """Those of ``ids`` the sync has seen for ``entity``: a ``raw_qbo`` row or a
    ``sync.record_state`` row (a record the push wrote and nothing read yet)."""
    if not ids:
        return set()
    sql = sa.text(
        f"SELECT w.qbo_id FROM {raw_qbo.table_for(entity)} w"  # noqa: S608 (a known table)
        " WHERE w.realm_id = :r AND w.qbo_id = ANY(:ids)"
        " UNION SELECT rs.qbo_id FROM sync.record_state rs"
        " WHERE rs.realm_id = :r AND rs.qbo_entity = :e AND rs.qbo_id = ANY(:ids)"
    )
    with ctx.engine.connect() as conn:
        rows: Iterable[object] = conn.execute(
            sql, {"r": ctx.realm_id, "e": entity, "ids": list(ids)}
        ).scalars()
        return {str(i) for i in rows}
