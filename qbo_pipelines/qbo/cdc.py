"""Change data capture over any gap, every change exactly once (SPEC R29, R36).

QBO's ``/cdc`` takes only a lower bound (``changedSince``), refuses one older than 30 days, and
returns at most 1000 objects per call across all requested entities with no paging (QBO_API.md
§3). :func:`read_changes` turns that into a complete, de-duplicated change list for a half-open
window ``[since, until)`` measured on QBO's clock:

1. The window is cut into spans of at most 30 days (:func:`plan_windows`).
2. Spans older than QBO's CDC horizon (30 days minus a safety margin) are read with paged queries on
   ``MetaData.LastUpdatedTime`` (no cap). QBO keeps no record of deletes there, so the result's
   ``deletes_complete_since`` tells the caller from when deletes are complete (reconciliation
   covers the rest).
3. Recent spans use ``/cdc``. The upper bound is applied client-side (objects stamped at or after
   ``until`` belong to the next read). A call that returns 1000 objects hit the cap: it is re-split,
   first into one call per entity, then by advancing the lower bound to where the capped answer
   is complete (:func:`capped_cut`: QBO lists an entity's live objects oldest first, then its
   delete stubs), keeping only what lies before that cut. When live objects alone fill the cap,
   deletes before the cut cannot be seen; ``deletes_complete_since`` moves past it.
4. Each (entity, Id) appears once, in its newest state; deletes are the ``status: Deleted`` stubs.

Deletes that QBO cannot report (older than the horizon, or hidden by the cap) are found by
:meth:`QboClient.missing` over the ids the warehouse knows (reconciliation, SPEC R38).

Use the result's ``checkpoint`` as the next call's ``since``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

from qbo_pipelines.qbo.errors import QboError
from qbo_pipelines.qbo.ids import QboId
from qbo_pipelines.qbo.values import Entity, is_deleted_stub, last_updated

log = logging.getLogger(__name__)


class CdcSource(Protocol):
    """What change capture needs from a client (:class:`~qbo_pipelines.qbo.client.QboClient`).

    Declared here so that this module never imports the client: the client depends on it, not
    the other way round.
    """

    @property
    def calls(self) -> Mapping[str, int]:
        """HTTP calls made so far, by kind."""
        ...

    def server_time(self) -> datetime: ...

    def cdc_call(self, entities: Sequence[str], changed_since: datetime) -> dict[str, Any]: ...

    def changed_since(
        self, entity: str, since: datetime, until: datetime | None = None
    ) -> Iterable[Entity]: ...

    def query_all(self, entity: str, *, include_inactive: bool = False) -> Iterable[Entity]: ...


CDC_MAX_SPAN = timedelta(days=30)
CDC_SAFETY_MARGIN = timedelta(hours=1)
CDC_MAX_OBJECTS = 1000
CDC_UNSUPPORTED = frozenset({"JournalCode", "TaxAgency", "TimeActivity", "TaxCode", "TaxRate"})


@dataclass(frozen=True)
class Change:
    """One changed record: its newest state, or a delete stub (``deleted=True``)."""

    entity: str
    id: QboId
    deleted: bool
    last_updated: datetime | None
    data: Entity


@dataclass
class CdcResult:
    """What changed in ``[since, checkpoint)``."""

    changes: list[Change]
    checkpoint: datetime
    deletes_complete_since: datetime
    calls: int = 0
    windows: list[tuple[datetime, datetime, str]] = field(default_factory=list)

    def by_entity(self, entity: str) -> list[Change]:
        return [c for c in self.changes if c.entity == entity]


def plan_windows(
    since: datetime, until: datetime, max_span: timedelta = CDC_MAX_SPAN
) -> list[tuple[datetime, datetime]]:
    """Contiguous half-open windows covering ``[since, until)``, none longer than ``max_span``."""
    if since.tzinfo is None or until.tzinfo is None:
        raise ValueError("CDC windows need timezone-aware datetimes")
    windows: list[tuple[datetime, datetime]] = []
    start = since
    while start < until:
        end = min(until, start + max_span)
        windows.append((start, end))
        start = end
    return windows


def split_at_horizon(
    since: datetime,
    until: datetime,
    now: datetime,
    max_span: timedelta = CDC_MAX_SPAN,
    margin: timedelta = CDC_SAFETY_MARGIN,
) -> tuple[list[tuple[datetime, datetime]], list[tuple[datetime, datetime]]]:
    """(query windows older than QBO's CDC horizon, CDC windows within it)."""
    horizon = now - max_span + margin
    old = plan_windows(since, min(until, horizon), max_span) if since < horizon else []
    recent = plan_windows(max(since, horizon), until, max_span)
    return old, recent


def _objects(payload: Mapping[str, Any]) -> list[tuple[str, Entity]]:
    """(entity name, object) pairs from a ``CDCResponse`` body."""
    found: list[tuple[str, Entity]] = []
    responses = payload.get("CDCResponse") or []
    for block in responses if isinstance(responses, list) else [responses]:
        if not isinstance(block, Mapping):
            continue
        query_responses = block.get("QueryResponse") or []
        if isinstance(query_responses, Mapping):
            query_responses = [query_responses]
        for qr in query_responses:
            if not isinstance(qr, Mapping):
                continue
            for key, value in qr.items():
                if isinstance(value, list):
                    found.extend((key, obj) for obj in value if isinstance(obj, dict))
    return found


class _Collector:
    def __init__(self) -> None:
        self.changes: dict[tuple[str, str], Change] = {}

    def add(self, entity: str, obj: Entity) -> None:
        if "Id" not in obj:
            return
        change = Change(
            entity=entity,
            id=QboId(str(obj["Id"])),
            deleted=is_deleted_stub(obj),
            last_updated=last_updated(obj),
            data=obj,
        )
        key = (entity, change.id)
        known = self.changes.get(key)
        if known is None or _newer(change, known):
            self.changes[key] = change


def _newer(a: Change, b: Change) -> bool:
    if a.last_updated is None or b.last_updated is None:
        return a.deleted or b.last_updated is None
    return a.last_updated > b.last_updated or (a.last_updated == b.last_updated and a.deleted)


def _in_window(obj: Entity, start: datetime, end: datetime) -> bool:
    stamp = last_updated(obj)
    return stamp is None or start <= stamp < end


def capped_cut(objects: Sequence[tuple[str, Entity]], start: datetime) -> tuple[datetime, bool]:
    """Where a capped single-entity CDC response is complete up to, and whether deletes are.

    QBO (and the sandbox) list an entity's live objects oldest first, then its delete stubs
    oldest first, and cut the list at 1000. So:

    * with delete stubs present, every live object was returned and the stubs were cut: the
      response is complete before the newest returned stub;
    * with none, the live objects were cut (and any stubs dropped): it is complete before the
      newest returned object, except for deletes, which are unknown up to there.
    """
    stubs = [s for s in (last_updated(o) for _, o in objects if is_deleted_stub(o)) if s]
    if stubs:
        return max(stubs), True
    stamps = [s for s in (last_updated(o) for _, o in objects) if s is not None]
    return (max(stamps) if stamps else start), False


def _cdc_window(
    client: CdcSource,
    entities: Sequence[str],
    start: datetime,
    end: datetime,
    out: _Collector,
    result: CdcResult,
) -> None:
    payload = client.cdc_call(entities, start)
    result.calls += 1
    result.windows.append((start, end, "cdc:" + ",".join(entities)))
    objects = _objects(payload)
    if len(objects) < CDC_MAX_OBJECTS:
        for entity, obj in objects:
            if _in_window(obj, start, end):
                out.add(entity, obj)
        return
    if len(entities) > 1:
        for entity in entities:
            _cdc_window(client, [entity], start, end, out, result)
        return
    cut, deletes_complete = capped_cut(objects, start)
    cut = min(cut, end)
    if cut <= start:
        raise QboError(
            f"more than {CDC_MAX_OBJECTS} {entities[0]} changes at {start.isoformat()}; "
            "CDC cannot page them, use a full re-read",
            code="cdc-cap",
        )
    for entity, obj in objects:
        if _in_window(obj, start, cut):
            out.add(entity, obj)
    if not deletes_complete:
        result.deletes_complete_since = max(result.deletes_complete_since, cut)
    if cut < end:
        _cdc_window(client, entities, cut, end, out, result)


def _query_window(client: CdcSource, entity: str, start: datetime, stop: datetime) -> list[Entity]:
    """Rows last changed in ``[start, stop)`` by a ``MetaData.LastUpdatedTime`` query.

    If QBO refuses that filter for the entity (4000/4001 query faults), every row is read and
    filtered here instead: slower, never wrong.
    """
    try:
        return list(client.changed_since(entity, start, stop))
    except QboError as exc:
        if exc.code not in ("4000", "4001"):
            raise
        log.warning("%s: LastUpdatedTime filter refused (%s); scanning all rows", entity, exc)
    rows = client.query_all(entity, include_inactive=True)
    return [r for r in rows if _in_window(r, start, stop)]


def read_changes(
    client: CdcSource,
    entities: Sequence[str],
    since: datetime,
    until: datetime | None = None,
) -> CdcResult:
    """Every change to ``entities`` in ``[since, until)`` (``until`` defaults to QBO's now)."""
    if since.tzinfo is None:
        raise ValueError("since must be timezone-aware")
    unsupported = sorted(set(entities) & CDC_UNSUPPORTED)
    if unsupported:
        raise ValueError(f"QBO CDC does not support {', '.join(unsupported)}")
    # QBO stamps LastUpdatedTime in whole seconds: a checkpoint inside a second could skip a
    # change made later in that same second, so windows end on a whole second.
    now = client.server_time().replace(microsecond=0)
    end = min(until, now) if until is not None else now
    old, recent = split_at_horizon(since, end, now)
    horizon = recent[0][0] if recent else end
    result = CdcResult(
        changes=[], checkpoint=end, deletes_complete_since=max(since, horizon), calls=1
    )
    out = _Collector()
    for start, stop in old:
        for entity in entities:
            before = sum(client.calls.values())
            for obj in _query_window(client, entity, start, stop):
                out.add(entity, obj)
            result.calls += sum(client.calls.values()) - before
            result.windows.append((start, stop, f"query:{entity}"))
    for start, stop in recent:
        _cdc_window(client, list(entities), start, stop, out, result)
    result.changes = sorted(
        out.changes.values(),
        key=lambda c: (c.last_updated or end, c.entity, c.id),
    )
    return result
