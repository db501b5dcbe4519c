"""Date-range backfills (R39): re-extract or re-push one company's transactions of a window.

Plain library (no Dagster); the backfill assets and the range job
(``qbo_pipelines/defs/backfill.py``) call one function each, for a window ``lo..last`` of
transaction dates (both days included, any dates from 0001-01-01 to 9999-12-31):

* :func:`reextract_window` (QBO side): ``SELECT * FROM <Entity> WHERE TxnDate >= lo AND
  TxnDate <= last`` in pages of 1000 (ordered by Id), through the company's client, so
  every call is paid from the company's one rate budget (R41). Each page is merged into
  ``raw_qbo`` (newer version wins: a re-read of an unchanged object writes nothing, a repeat never
  duplicates) and committed before the next is read. Rows ``raw_qbo`` holds in the window that
  the answer lacks are read by ``Id IN`` (1000 ids a call): a row QBO still has moved out of the
  window (its new version is stored), one it no longer has is flagged deleted (R36), never
  removed. Then the entity's pull write-back runs (the same one a normal pull runs), so what
  changed in QBO reaches the source app; records in step write nothing.
* :func:`repush_window` (source side): the entity's pending changes first (an incremental push,
  exactly what the push sensor's run would do, so the sensor sees them covered and starts no
  run), then every source record dated in the window through the engine (``source_ids``): the
  engine writes nothing for a record in step with its last synced version, so a repeated
  backfill costs no QBO write.

Both hold nothing between pages but one page; idempotent, so a killed backfill run is re-run
as it is.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

import sqlalchemy as sa

from qbo_pipelines import entities as catalogue
from qbo_pipelines.canonical import RealmId
from qbo_pipelines.qbo import query as q
from qbo_pipelines.qbo.client import PAGE_SIZE, QboClient
from qbo_pipelines.source_app import queries
from qbo_pipelines.sync import pipeline
from qbo_pipelines.sync.engine import lock
from qbo_pipelines.sync.env import SyncEnv
from qbo_pipelines.sync.extract import ENTITIES
from qbo_pipelines.sync.pull import SPECS as PULL_SPECS
from qbo_pipelines.transforms import from_qbo
from qbo_pipelines.warehouse import raw_qbo

QBO_TRANSACTIONS: tuple[str, ...] = tuple(
    e
    for e in ENTITIES[ENTITIES.index("Invoice") :]  # the extract's transactions
    if e != "Attachable" and e in raw_qbo.ENTITY_TABLES
)
"""QBO entities with a TxnDate, each re-extractable by date window (raw_qbo table each)."""

SOURCE_TRANSACTIONS: tuple[str, ...] = tuple(
    e.name for e in catalogue.CATALOGUE if e.pushes and e.dated is not None
)
"""Dated push entities (their catalogue row names a ``dated`` field): invoices, payments, bills."""


@dataclass(frozen=True)
class Window:
    """Transaction dates ``lo <= d <= last`` (whole days, both ends included: any range of
    dates a ``date`` can hold, 0001-01-01 to 9999-12-31)."""

    lo: date
    last: date

    def __post_init__(self) -> None:
        if self.last < self.lo:
            raise ValueError(f"empty date window: {self.lo} is after {self.last}")

    @classmethod
    def of(cls, start: datetime, end: datetime) -> Window:
        """The days a time window covers (Dagster's partition time window: end exclusive)."""
        last = end.date() - timedelta(days=1) if end.time() == datetime.min.time() else end.date()
        return cls(start.date(), last)

    def __str__(self) -> str:
        return f"{self.lo.isoformat()}..{self.last.isoformat()}"


def range_window(
    first_day: str, last_day: str, qbo_entities: Sequence[str], source_entities: Sequence[str]
) -> Window:
    """The window of a backfill of any range of days, as a person typed it (ISO dates, both
    included), checked with the entities it covers. Raises ValueError with one line saying
    what is wrong."""
    days: list[date] = []
    for label, text in (("first day", first_day), ("last day", last_day)):
        try:
            days.append(date.fromisoformat(text.strip()))
        except ValueError:
            shown = text if len(text) <= 40 else text[:40] + "..."
            raise ValueError(
                f"the {label} {shown!r} is not a date: give YYYY-MM-DD (0001-01-01 to 9999-12-31)"
            ) from None
    if days[1] < days[0]:
        raise ValueError(f"the first day {days[0]} is after the last day {days[1]}")
    for side, given, known in (
        ("QBO", qbo_entities, QBO_TRANSACTIONS),
        ("source", source_entities, SOURCE_TRANSACTIONS),
    ):
        unknown = [e for e in given if e not in known]
        if unknown:
            raise ValueError(
                f"no dated {side} entity {', '.join(map(repr, unknown))}: any of {', '.join(known)}"
            )
    if not qbo_entities and not source_entities:
        raise ValueError("no entity chosen on either side: nothing to backfill")
    return Window(days[0], days[1])


@dataclass
class ReextractReport:
    """What one window re-extract did for one QBO entity."""

    entity: str
    window: str
    read: int = 0
    changed: int = 0
    deleted: int = 0
    api_calls: int = 0
    written_back: dict[str, dict[str, int]] = field(default_factory=dict)

    def as_metadata(self) -> dict[str, int]:
        out = {
            "read": self.read,
            "changed": self.changed,
            "deleted": self.deleted,
            "api_calls": self.api_calls,
        }
        for name, counts in self.written_back.items():
            for key, value in counts.items():
                out[f"{name}.{key}"] = value
        return out


def reextract_window(
    env: SyncEnv, realm_id: RealmId, qbo_entity: str, window: Window, *, run_id: str | None
) -> ReextractReport:
    """Re-read one QBO entity's transactions of ``window`` into ``raw_qbo`` and write what
    changed back into the source app (see the module docstring)."""
    if qbo_entity not in QBO_TRANSACTIONS:
        known = ", ".join(QBO_TRANSACTIONS)
        raise ValueError(f"{qbo_entity!r} has no date window to re-extract; one of {known}")
    report = ReextractReport(qbo_entity, str(window))
    table = raw_qbo.ENTITY_TABLES[qbo_entity]
    with env.client(realm_id) as client, lock.company_writer(env.warehouse, realm_id):
        start = sum(client.calls.values())
        at = datetime.now(UTC)
        seen: set[str] = set()
        for page in _window_pages(client, qbo_entity, window):
            seen.update(str(o.get("Id")) for o in page)
            with env.warehouse.begin() as conn:
                result = raw_qbo.merge(conn, realm_id, qbo_entity, page, run_id=run_id, at=at)
            report.read += len(page)
            report.changed += len(result.changed)
        missing = [i for i in _stored_ids(env.warehouse, table, realm_id, window) if i not in seen]
        for chunk_start in range(0, len(missing), PAGE_SIZE):
            chunk = missing[chunk_start : chunk_start + PAGE_SIZE]
            found = client.query(
                q.select(qbo_entity, q.in_("Id", tuple(chunk))).page(1, len(chunk))
            )
            have = {str(o.get("Id")) for o in found.entities}
            gone = [{"Id": i, "status": "Deleted"} for i in chunk if i not in have]
            with env.warehouse.begin() as conn:
                result = raw_qbo.merge(
                    conn,
                    realm_id,
                    qbo_entity,
                    [*found.entities, *gone],
                    run_id=run_id,
                    at=at,
                    deleted_at=found.time or at,
                )
            report.changed += len(result.changed)
            report.deleted += len(result.deleted)
        report.api_calls = sum(client.calls.values()) - start
    for name in write_backs(qbo_entity):
        pulled = pipeline.pull(env, realm_id, name, run_id=run_id)
        report.written_back[name] = pulled.as_metadata()
    return report


def write_backs(qbo_entity: str) -> list[str]:
    """The pull write-backs that read ``qbo_entity`` (in pull order)."""
    names = [n for n, spec in PULL_SPECS.items() if qbo_entity in spec.raw_tables]
    if qbo_entity in from_qbo.CUSTOMER_TXN_TYPES:
        names.append("customer_transactions")
    return names


def _window_pages(client: QboClient, entity: str, window: Window) -> Iterator[list[dict]]:  # type: ignore[type-arg]
    base = q.select(entity, q.gte("TxnDate", window.lo), q.lte("TxnDate", window.last)).order_by(
        "Id"
    )
    start = 1
    while True:
        page = client.query(base.page(start, PAGE_SIZE))
        if page.entities:
            yield list(page.entities)
        if len(page.entities) < PAGE_SIZE:
            return
        start += len(page.entities)


def _stored_ids(engine: sa.Engine, table: str, realm_id: str, window: Window) -> list[str]:
    with engine.connect() as conn:
        rows: Iterable[object] = conn.execute(
            sa.text(
                f"SELECT qbo_id FROM raw_qbo.{table}"  # noqa: S608 - table from ENTITY_TABLES
                " WHERE realm_id = :r AND NOT deleted AND txn_date >= :lo AND txn_date <= :last"
                " ORDER BY qbo_id"
            ),
            {"r": realm_id, "lo": window.lo, "last": window.last},
        ).scalars()
        return [str(r) for r in rows]


@dataclass
class RepushReport:
    """What one window re-push did for one source entity: the pending changes pushed first,
    then the window's records."""

    entity: str
    window: str
    in_window: int
    pending: dict[str, int]
    repushed: dict[str, int]
    api_calls: int

    def as_metadata(self) -> dict[str, int]:
        out: dict[str, int] = {"in_window": self.in_window, "api_calls": self.api_calls}
        out.update({f"pending.{k}": v for k, v in self.pending.items()})
        out.update(self.repushed)
        return out


def source_ids_in_window(env: SyncEnv, entity: str, window: Window) -> list[str]:
    """Source ids of a dated push entity whose date lies in ``window``."""
    if entity not in SOURCE_TRANSACTIONS:
        raise ValueError(
            f"{entity!r} has no transaction date; one of {', '.join(SOURCE_TRANSACTIONS)}"
        )
    stmt = queries.load("ids_in_window", env.connector.queries_dir)
    with env.source.connect() as conn:
        rows = conn.execute(stmt, {"entity": entity, "lo": window.lo, "last": window.last})
        return [str(r[0]) for r in rows]


def repush_window(
    env: SyncEnv, realm_id: RealmId, entity: str, window: Window, *, run_id: str | None
) -> RepushReport:
    """Push ``entity``'s pending changes, then every record of ``window`` again (unchanged
    records cost no QBO call)."""
    catalogue.entity(entity)
    ids = source_ids_in_window(env, entity, window)
    pipeline.extract(env, realm_id, entity, run_id=run_id)
    pending = pipeline.push(env, realm_id, entity, run_id=run_id)
    repushed: dict[str, int] = {}
    calls = pending.api_calls
    if ids:
        pipeline.extract(env, realm_id, entity, run_id=run_id, source_ids=ids)
        again = pipeline.push(env, realm_id, entity, run_id=run_id, source_ids=ids)
        repushed, calls = again.as_metadata(), calls + again.api_calls
    return RepushReport(entity, str(window), len(ids), pending.as_metadata(), repushed, calls)
