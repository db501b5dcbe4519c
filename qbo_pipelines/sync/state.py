"""Sync bookkeeping over the warehouse shared by every step: the ledger and named positions.

The engine's per-record state lives in :mod:`qbo_pipelines.sync.engine.records`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from qbo_pipelines.canonical import QboId, SourceId

Bind = sa.Engine | sa.Connection


@dataclass(frozen=True)
class LedgerRow:
    """One append-only ``sync.ledger`` row (R37)."""

    realm_id: str
    entity: str
    direction: str
    operation: str
    outcome: str
    run_id: str | None = None
    source_id: str | None = None
    qbo_id: str | None = None
    error_code: str | None = None
    error_message: str | None = None
    request_id: str | None = None
    payload_hash: str | None = None
    details: Mapping[str, Any] | None = field(default=None)


_LEDGER_INSERT = sa.text(
    """
    INSERT INTO sync.ledger (run_id, realm_id, entity, direction, source_id, qbo_id,
        operation, outcome, error_code, error_message, request_id, payload_hash, details)
    VALUES (:run_id, :realm_id, :entity, :direction, :source_id, :qbo_id, :operation,
        :outcome, :error_code, :error_message, :request_id, :payload_hash,
        CAST(:details AS jsonb))
    """
)


def append_ledger(bind: Bind, rows: Sequence[LedgerRow]) -> None:
    """Append ledger rows in one executemany batch (in the caller's transaction when given a
    connection)."""
    if not rows:
        return
    params = [
        {
            **{k: getattr(r, k) for k in r.__dataclass_fields__ if k != "details"},
            "details": json.dumps(r.details, default=str) if r.details is not None else None,
        }
        for r in rows
    ]
    if isinstance(bind, sa.Connection):
        bind.execute(_LEDGER_INSERT, params)
        return
    with bind.begin() as conn:
        conn.execute(_LEDGER_INSERT, params)


def get_cursor(engine: sa.Engine, realm_id: str, name: str) -> str | None:
    with engine.connect() as conn:
        value = conn.execute(
            sa.text("SELECT value FROM sync.cursors WHERE realm_id = :r AND name = :n"),
            {"r": realm_id, "n": name},
        ).scalar()
    return str(value) if value is not None else None


def set_cursor(engine: sa.Engine, realm_id: str, name: str, value: str) -> None:
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO sync.cursors (realm_id, name, value) VALUES (:r, :n, :v)"
                " ON CONFLICT (realm_id, name) DO UPDATE SET value = EXCLUDED.value,"
                " updated_at = now()"
            ),
            {"r": realm_id, "n": name, "v": value},
        )


def deleted_in_qbo(engine: sa.Engine, realm_id: str) -> dict[str, frozenset[SourceId]]:
    """Per entity, the source records whose QBO record was deleted in QBO (one query)."""
    return _flagged(engine, realm_id, "deleted_in_qbo")


def awaiting_pull(engine: sa.Engine, realm_id: str) -> dict[str, frozenset[SourceId]]:
    """Per entity, the source records whose QBO email the pull has still to bring into the
    source (a conflict QBO won, or a change only QBO made, met by the push; one query)."""
    return _flagged(engine, realm_id, "pull_due AND 'PrimaryEmailAddr' = ANY(pull_fields)")


def _flagged(engine: sa.Engine, realm_id: str, flag: str) -> dict[str, frozenset[SourceId]]:
    """Per entity, the source records a fixed SQL condition ``flag`` holds for."""
    sql = (
        "SELECT entity, array_agg(source_id) FROM sync.record_state WHERE realm_id = :r"
        f" AND {flag} AND source_id IS NOT NULL GROUP BY entity"
    )
    with engine.connect() as conn:
        rows: list[tuple[str, list[str]]] = [
            (str(e), list(ids)) for e, ids in conn.execute(sa.text(sql), {"r": realm_id}).tuples()
        ]
    return {e: frozenset(SourceId(str(s)) for s in ids) for e, ids in rows}


def qbo_ids(
    engine: sa.Engine, realm_id: str, entity: str, qbo_entity: str | None = None
) -> dict[SourceId, QboId]:
    """Source id -> QBO Id for every live synced record of ``entity`` (of one QBO type)."""
    sql = (
        "SELECT source_id, qbo_id FROM sync.record_state WHERE realm_id = :r AND entity = :e"
        " AND source_id IS NOT NULL AND qbo_id IS NOT NULL AND NOT deleted_in_qbo"
        " AND (CAST(:q AS text) IS NULL OR qbo_entity = CAST(:q AS text))"
    )
    with engine.connect() as conn:
        return {
            SourceId(str(s)): QboId(str(q))
            for s, q in conn.execute(sa.text(sql), {"r": realm_id, "e": entity, "q": qbo_entity})
        }
