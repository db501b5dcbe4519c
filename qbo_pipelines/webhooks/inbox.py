"""The webhook inbox (``sync.webhook_inbox``): what QBO said changed, until a pull run used it.

The receiver only *stores* (it must answer QBO within 3 s); the pull run reads what is pending,
re-reads exactly those records from QBO (R44) and marks the rows done. The table is the hand-off
between the two, so it must be safe against what QBO's delivery does (QBO_API.md §10.4):

* duplicates (a retried or repeated delivery) collapse into one row: every event has an
  ``event_key`` (CloudEvents ``id``, or the legacy tuple realm, entity, id, operation,
  lastUpdated, deletedId) under a unique index, and :func:`store` inserts with
  ``ON CONFLICT DO NOTHING``;
* reordered deliveries need nothing special: the inbox is a set of events and the consumer
  reads the *current* record from QBO, so the order of arrival does not matter;
* a Delete or Merge is kept as such (:attr:`Claim.removed`), so the consumer knows a record is
  gone instead of failing to re-read it.

The consumer's protocol (one pull run per company at a time, as Dagster's run queue enforces)::

    claim = inbox.claim(engine, realm_id)          # a plain read: rows with id <= claim.max_row_id
    ... re-read claim.ids from QBO, apply, honour claim.removed ...
    inbox.done(engine, claim.row_ids, run_id)       # exactly those rows; later arrivals stay

Nothing is locked between ``claim`` and ``done``: events that arrive during the run get higher
ids and are left for the next run. A run that crashes before ``done`` leaves its rows pending,
so the next run sees them again (re-reading a record twice is harmless).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from qbo_pipelines.webhooks.events import ParsedEvent, WebhookEvent

KEEP_PROCESSED = timedelta(days=7)
"""How long processed events are kept after their pull (deduplicating QBO's redeliveries, which
come within a day); each pull of the company prunes older ones (:func:`prune`)."""

DEFAULT_CLAIM_LIMIT = 5000

_metadata = sa.MetaData()
INBOX = sa.Table(
    "webhook_inbox",
    _metadata,
    sa.Column("id", sa.BigInteger, primary_key=True),
    sa.Column("received_at", sa.DateTime(timezone=True)),
    sa.Column("realm_id", sa.Text, nullable=False),
    sa.Column("entity", sa.Text, nullable=False),
    sa.Column("qbo_id", sa.Text, nullable=False),
    sa.Column("operation", sa.Text, nullable=False),
    sa.Column("last_updated", sa.DateTime(timezone=True)),
    sa.Column("deleted_id", sa.Text),
    sa.Column("payload", postgresql.JSONB),
    sa.Column("processed_at", sa.DateTime(timezone=True)),
    sa.Column("event_key", sa.Text),
    sa.Column("format", sa.Text),
    sa.Column("known", sa.Boolean),
    sa.Column("run_id", sa.Text),
    schema="sync",
)


@dataclass(frozen=True)
class InboxRow:
    """One stored, unprocessed event as the consumer sees it."""

    row_id: int
    event: WebhookEvent
    known: bool
    received_at: datetime


@dataclass(frozen=True)
class Claim:
    """A company's pending events, read (not locked) for one pull run.

    Attributes:
        realm_id: the company.
        row_ids: the inbox rows read, ascending; pass them to :func:`done`.
        max_row_id: the highest of ``row_ids`` (None when nothing is pending).
        ids: QBO entity -> sorted QBO Ids named by the rows (every operation, merged-away ids
            included): what changed.
        removed: QBO entity -> sorted QBO Ids that no longer exist in QBO (a Delete, or the
            ``deleted_id`` of a Merge): not to be re-read, to be marked deleted.
        events: the rows themselves, in arrival order (for timestamps, Merge pairs, flags).
    """

    realm_id: str
    row_ids: tuple[int, ...]
    max_row_id: int | None
    ids: dict[str, list[str]] = field(default_factory=dict)
    removed: dict[str, list[str]] = field(default_factory=dict)
    events: tuple[InboxRow, ...] = ()

    @property
    def empty(self) -> bool:
        """Whether there is nothing to do."""
        return not self.row_ids

    @property
    def to_read(self) -> dict[str, list[str]]:
        """QBO entity -> sorted Ids to re-read: :attr:`ids` minus :attr:`removed`."""
        result: dict[str, list[str]] = {}
        for entity, ids in self.ids.items():
            gone = set(self.removed.get(entity, ()))
            kept = [i for i in ids if i not in gone]
            if kept:
                result[entity] = kept
        return result


def _row(event: WebhookEvent, raw: Mapping[str, Any] | None, fmt: str | None) -> dict[str, Any]:
    return {
        "realm_id": event.realm_id,
        "entity": event.entity,
        "qbo_id": event.qbo_id,
        "operation": event.operation,
        "last_updated": event.last_updated,
        "deleted_id": event.deleted_id,
        "payload": dict(raw) if raw is not None else None,
        "event_key": event.event_key,
        "format": fmt,
        "known": event.known,
    }


def store(engine: sa.Engine, events: Iterable[WebhookEvent | ParsedEvent]) -> int:
    """Insert events once each; return how many were new.

    ``ParsedEvent`` values also store the raw event object and the format. Duplicates (within
    the call, or of rows already stored, processed or not) are skipped by the unique indexes
    with ``ON CONFLICT DO NOTHING``; rows are inserted in ``event_key`` order, so concurrent
    deliveries of overlapping batches cannot deadlock and the result does not depend on the
    order events arrived in.
    """
    rows: dict[str, dict[str, Any]] = {}
    for item in events:
        if isinstance(item, ParsedEvent):
            row = _row(item.event, item.raw, item.format)
        else:
            row = _row(item, None, None)
        rows.setdefault(row["event_key"], row)
    if not rows:
        return 0
    ordered = [rows[key] for key in sorted(rows)]
    statement = (
        postgresql.insert(INBOX).values(ordered).on_conflict_do_nothing().returning(INBOX.c.id)
    )
    with engine.begin() as conn:
        return len(conn.execute(statement).all())


def pending(engine: sa.Engine, realm_id: str | None = None) -> dict[str, dict[str, set[str]]]:
    """Unprocessed events as realm -> QBO entity -> the QBO Ids they name.

    A Merge names both the surviving id and the merged-away ``deleted_id``. Use :func:`claim`
    to also learn which ids were removed and which rows to mark done.
    """
    query = sa.select(INBOX.c.realm_id, INBOX.c.entity, INBOX.c.qbo_id, INBOX.c.deleted_id).where(
        INBOX.c.processed_at.is_(None)
    )
    if realm_id is not None:
        query = query.where(INBOX.c.realm_id == realm_id)
    result: dict[str, dict[str, set[str]]] = {}
    with engine.connect() as conn:
        for row in conn.execute(query):
            named = result.setdefault(row.realm_id, {}).setdefault(row.entity, set())
            named.add(row.qbo_id)
            if row.deleted_id:
                named.add(row.deleted_id)
    return result


def claim(engine: sa.Engine, realm_id: str, *, limit: int = DEFAULT_CLAIM_LIMIT) -> Claim:
    """Read up to ``limit`` of a company's unprocessed rows, oldest first, for one pull run.

    A plain read, no lock: the claim is "the pending rows with id <= ``max_row_id``". Rows
    beyond ``limit`` (and rows stored later) stay pending for the next run.
    """
    if limit < 1:
        raise ValueError("limit must be at least 1")
    query = (
        sa.select(INBOX)
        .where(INBOX.c.realm_id == realm_id, INBOX.c.processed_at.is_(None))
        .order_by(INBOX.c.id)
        .limit(limit)
    )
    with engine.connect() as conn:
        rows = conn.execute(query).all()
    ids: dict[str, set[str]] = {}
    removed: dict[str, set[str]] = {}
    events: list[InboxRow] = []
    for row in rows:
        event = WebhookEvent(
            realm_id=row.realm_id,
            entity=row.entity,
            qbo_id=row.qbo_id,
            operation=row.operation,
            last_updated=row.last_updated,
            deleted_id=row.deleted_id,
            event_key=row.event_key or f"row:{row.id}",
        )
        events.append(InboxRow(row.id, event, bool(row.known), row.received_at))
        ids.setdefault(event.entity, set()).add(event.qbo_id)
        if event.deleted_id:
            ids[event.entity].add(event.deleted_id)
            if event.operation == "Merge":
                removed.setdefault(event.entity, set()).add(event.deleted_id)
        if event.operation == "Delete":
            removed.setdefault(event.entity, set()).add(event.qbo_id)
    row_ids = tuple(r.row_id for r in events)
    return Claim(
        realm_id=realm_id,
        row_ids=row_ids,
        max_row_id=row_ids[-1] if row_ids else None,
        ids={entity: sorted(values) for entity, values in sorted(ids.items())},
        removed={entity: sorted(values) for entity, values in sorted(removed.items())},
        events=tuple(events),
    )


def done(engine: sa.Engine, row_ids: Iterable[int], run_id: str) -> int:
    """Mark exactly ``row_ids`` processed by ``run_id``; return how many were still pending.

    Rows already processed keep their first ``processed_at`` and ``run_id``.
    """
    ids = sorted({int(i) for i in row_ids})
    if not ids:
        return 0
    statement = (
        sa.update(INBOX)
        .where(INBOX.c.id.in_(ids), INBOX.c.processed_at.is_(None))
        .values(processed_at=sa.func.now(), run_id=run_id)
    )
    with engine.begin() as conn:
        return int(conn.execute(statement).rowcount or 0)


def prune(engine: sa.Engine, older_than: timedelta | datetime) -> int:
    """Delete processed rows processed before ``older_than`` (an age or a point in time);
    return how many. Pending rows are never pruned.

    A pruned event no longer deduplicates: if QBO redelivers it later it is stored and
    processed again, which only costs a re-read. Keep at least QBO's retry horizon (a day or
    more) to avoid that.
    """
    cutoff: Any = sa.func.now() - older_than if isinstance(older_than, timedelta) else older_than
    statement = sa.delete(INBOX).where(
        INBOX.c.processed_at.is_not(None), INBOX.c.processed_at < cutoff
    )
    with engine.begin() as conn:
        return int(conn.execute(statement).rowcount or 0)


def connected_realms(engine: sa.Engine) -> set[str]:
    """The companies whose events are worth storing: ``sync.companies`` with status
    ``connected``."""
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text("SELECT realm_id FROM sync.companies WHERE status = 'connected'")
        )
        return {str(r.realm_id) for r in rows}
