"""Intents of the pull's writes into the source app (``sync.source_write_intents``).

The pull's write and its record live in two databases: the source app's transaction commits
first, then the warehouse's (state and ledger). Each planned column write is stored here before
the source transaction and removed by the warehouse transaction that records it, so a run
killed between the two commits leaves its writes here; the next pull of the entity looks at
them first (:func:`settle`): a write the source row shows landed gets its ledger entry then,
once (R37), and one that never landed is dropped (its record is simply planned again).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

import orjson
import sqlalchemy as sa

from qbo_pipelines.canonical import SourceId


@dataclass(frozen=True, slots=True)
class SourceWrite:
    """One planned write: the columns set on a source row to bring in a QBO record's change."""

    qbo_id: str
    source_id: str
    columns: Mapping[str, Any]
    qbo_token: str | None = None
    details: Mapping[str, Any] | None = None
    run_id: str | None = None


def stored(value: Any) -> Any:
    """A column value as stored in the intent (JSON): numbers as text, dates ISO 8601."""
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    return value


def holds(row_value: Any, intended: Any) -> bool:
    """Whether a source column value is the value an intent wrote (numbers compared as
    numbers: the column may hold 12.50 where 12.5 was written)."""
    if isinstance(row_value, Decimal) and intended is not None:
        try:
            return row_value == Decimal(str(intended))
        except InvalidOperation:
            return False
    return bool(stored(row_value) == intended)


def open_writes(
    bind: sa.Engine, realm_id: str, entity: str, run_id: str | None, writes: Sequence[SourceWrite]
) -> None:
    """Store the planned writes (committed before the source transaction starts)."""
    if not writes:
        return
    with bind.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO sync.source_write_intents (realm_id, entity, qbo_id, source_id,"
                " run_id, qbo_token, columns, details) VALUES (:r, :e, :q, :s, :run, :t,"
                " CAST(:c AS jsonb), CAST(:d AS jsonb))"
                " ON CONFLICT (realm_id, entity, qbo_id) DO UPDATE SET source_id = :s,"
                " run_id = :run, qbo_token = :t, columns = CAST(:c AS jsonb),"
                " details = CAST(:d AS jsonb), created_at = now()"
            ),
            [
                {
                    "r": realm_id,
                    "e": entity,
                    "q": w.qbo_id,
                    "s": w.source_id,
                    "run": run_id,
                    "t": w.qbo_token,
                    "c": orjson.dumps({k: stored(v) for k, v in w.columns.items()}).decode(),
                    "d": orjson.dumps(dict(w.details or {})).decode(),
                }
                for w in writes
            ],
        )


def close_writes(conn: sa.Connection, realm_id: str, entity: str, qbo_ids: Iterable[str]) -> None:
    """Remove the intents of writes now recorded (in the transaction that records them)."""
    ids = sorted(set(qbo_ids))
    if ids:
        conn.execute(
            sa.text(
                "DELETE FROM sync.source_write_intents WHERE realm_id = :r AND entity = :e"
                " AND qbo_id = ANY(:ids)"
            ),
            {"r": realm_id, "e": entity, "ids": ids},
        )


def left_open(bind: sa.Engine, realm_id: str, entity: str) -> list[SourceWrite]:
    """Writes a stopped run planned and never recorded."""
    sql = sa.text(
        "SELECT qbo_id, source_id, columns, qbo_token, details, run_id"
        " FROM sync.source_write_intents WHERE realm_id = :r AND entity = :e ORDER BY qbo_id"
    )
    with bind.connect() as conn:
        rows = conn.execute(sql, {"r": realm_id, "e": entity}).all()
    return [
        SourceWrite(str(r[0]), str(r[1]), dict(r[2]), _text(r[3]), dict(r[4] or {}), _text(r[5]))
        for r in rows
    ]


def _text(value: object) -> str | None:
    return None if value is None else str(value)


def settle(
    bind: sa.Engine,
    realm_id: str,
    entity: str,
    read_rows: Callable[[Sequence[str]], Mapping[SourceId, Mapping[str, Any]]],
) -> tuple[list[SourceWrite], list[SourceWrite]]:
    """The writes left open by a stopped run, split into (landed, never landed) by reading the
    source rows now. The caller records the landed ones and then :func:`close_writes` them."""
    open_ = left_open(bind, realm_id, entity)
    if not open_:
        return [], []
    rows = read_rows([w.source_id for w in open_])
    landed: list[SourceWrite] = []
    missed: list[SourceWrite] = []
    for w in open_:
        row = rows.get(SourceId(w.source_id))
        ok = row is not None and all(holds(row.get(c), v) for c, v in w.columns.items())
        (landed if ok else missed).append(w)
    return landed, missed
