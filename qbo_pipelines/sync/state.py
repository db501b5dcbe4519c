"""Sync bookkeeping over the warehouse: id map, ledger, cursors. Bulk reads and writes only."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from qbo_pipelines.canonical import QboId, SourceId
from qbo_pipelines.qbo.values import dumps


@dataclass(frozen=True)
class IdMapRow:
    """One row of ``sync.id_map`` (see sql/warehouse/002 and 040)."""

    realm_id: str
    entity: str
    source_id: SourceId | None
    qbo_id: QboId | None
    created_by: str
    sync_token: str | None = None
    source_hash: str | None = None
    qbo_hash: str | None = None
    deleted_in_source: bool = False
    deleted_in_qbo: bool = False
    last_payload: Mapping[str, Any] | None = None
    sent_at: datetime | None = None
    sent_to: str | None = None


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


_ID_MAP_COLUMNS = (
    "realm_id, entity, source_id, qbo_id, created_by, sync_token, source_hash, qbo_hash,"
    " deleted_in_source, deleted_in_qbo, last_payload, sent_at, sent_to"
)


def load_id_map(
    engine: sa.Engine, realm_id: str, entity: str, source_ids: Iterable[str] | None = None
) -> dict[SourceId, IdMapRow]:
    """Id map rows by source id (all of the entity's, or just ``source_ids``)."""
    sql = f"SELECT {_ID_MAP_COLUMNS} FROM sync.id_map WHERE realm_id = :r AND entity = :e"
    params: dict[str, Any] = {"r": realm_id, "e": entity}
    if source_ids is not None:
        sql += " AND source_id = ANY(:ids)"
        params["ids"] = list(source_ids)
    else:
        sql += " AND source_id IS NOT NULL"
    with engine.connect() as conn:
        rows = conn.execute(sa.text(sql), params).mappings().all()
    return {SourceId(r["source_id"]): IdMapRow(**r) for r in rows}


def qbo_ids(engine: sa.Engine, realm_id: str, entity: str) -> dict[SourceId, QboId]:
    """Source id -> QBO Id for every live synced record of ``entity``."""
    sql = (
        "SELECT source_id, qbo_id FROM sync.id_map WHERE realm_id = :r AND entity = :e"
        " AND source_id IS NOT NULL AND qbo_id IS NOT NULL AND NOT deleted_in_qbo"
    )
    with engine.connect() as conn:
        return {
            SourceId(s): QboId(q)
            for s, q in conn.execute(sa.text(sql), {"r": realm_id, "e": entity})
        }


def upsert_id_map(engine: sa.Engine, rows: Sequence[IdMapRow], run_id: str | None) -> None:
    """Insert or update id map rows by (realm, entity, source id), in one statement batch."""
    if not rows:
        return
    sql = sa.text(
        f"""
        INSERT INTO sync.id_map ({_ID_MAP_COLUMNS}, last_synced_at, last_run_id)
        VALUES (:realm_id, :entity, :source_id, :qbo_id, :created_by, :sync_token, :source_hash,
                :qbo_hash, :deleted_in_source, :deleted_in_qbo, CAST(:last_payload AS jsonb),
                :sent_at, :sent_to, now(), :run_id)
        ON CONFLICT (realm_id, entity, source_id) WHERE source_id IS NOT NULL DO UPDATE SET
            qbo_id = EXCLUDED.qbo_id,
            created_by = EXCLUDED.created_by,
            sync_token = EXCLUDED.sync_token,
            source_hash = EXCLUDED.source_hash,
            qbo_hash = COALESCE(EXCLUDED.qbo_hash, sync.id_map.qbo_hash),
            deleted_in_source = EXCLUDED.deleted_in_source,
            deleted_in_qbo = EXCLUDED.deleted_in_qbo,
            last_payload = COALESCE(EXCLUDED.last_payload, sync.id_map.last_payload),
            sent_at = COALESCE(EXCLUDED.sent_at, sync.id_map.sent_at),
            sent_to = COALESCE(EXCLUDED.sent_to, sync.id_map.sent_to),
            last_synced_at = now(),
            last_run_id = EXCLUDED.last_run_id
        """
    )
    params = [
        {
            "realm_id": r.realm_id,
            "entity": r.entity,
            "source_id": r.source_id,
            "qbo_id": r.qbo_id,
            "created_by": r.created_by,
            "sync_token": r.sync_token,
            "source_hash": r.source_hash,
            "qbo_hash": r.qbo_hash,
            "deleted_in_source": r.deleted_in_source,
            "deleted_in_qbo": r.deleted_in_qbo,
            "last_payload": dumps(r.last_payload).decode() if r.last_payload is not None else None,
            "sent_at": r.sent_at,
            "sent_to": r.sent_to,
            "run_id": run_id,
        }
        for r in rows
    ]
    with engine.begin() as conn:
        conn.execute(sql, params)


def append_ledger(engine: sa.Engine, rows: Sequence[LedgerRow]) -> None:
    """Append ledger rows in one executemany batch."""
    if not rows:
        return
    sql = sa.text(
        """
        INSERT INTO sync.ledger (run_id, realm_id, entity, direction, source_id, qbo_id,
            operation, outcome, error_code, error_message, request_id, payload_hash, details)
        VALUES (:run_id, :realm_id, :entity, :direction, :source_id, :qbo_id, :operation,
            :outcome, :error_code, :error_message, :request_id, :payload_hash,
            CAST(:details AS jsonb))
        """
    )
    params = [
        {
            **{k: getattr(r, k) for k in r.__dataclass_fields__ if k != "details"},
            "details": json.dumps(r.details, default=str) if r.details is not None else None,
        }
        for r in rows
    ]
    with engine.begin() as conn:
        conn.execute(sql, params)


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


def retry_candidates(engine: sa.Engine, realm_id: str, entity: str) -> set[SourceId]:
    """Records to try again this run (R31): open quarantine rows (their cause may be fixed now:
    a mapping added, a referenced record synced) and last attempts that failed for a reason
    that may pass on retry (throttling, a server or network error). A record QBO refused as
    invalid is retried when it changes in the source, or by hand (``sync push --full``)."""
    sql = """
        SELECT source_id FROM sync.quarantine
        WHERE realm_id = :r AND entity = :e AND resolved_at IS NULL
        UNION
        SELECT source_id FROM (
            SELECT DISTINCT ON (source_id) source_id, outcome, details
            FROM sync.ledger
            WHERE realm_id = :r AND entity = :e AND direction = 'push' AND source_id IS NOT NULL
            ORDER BY source_id, id DESC
        ) last WHERE outcome = 'failed' AND coalesce((details ->> 'retryable')::boolean, false)
    """
    with engine.connect() as conn:
        return {
            SourceId(s) for s in conn.execute(sa.text(sql), {"r": realm_id, "e": entity}).scalars()
        }


def pending_intents(engine: sa.Engine, realm_id: str, entity: str) -> list[dict[str, Any]]:
    """Write intents whose outcome was never recorded (the run died mid-batch), oldest first.

    Each has ``source_id``, ``request_id``, ``payload_hash`` and ``details`` (the batch id, the
    position in it, the operation, the QBO entity and the exact body sent).
    """
    sql = """
        SELECT source_id, operation, request_id, payload_hash, details FROM (
            SELECT DISTINCT ON (source_id) source_id, operation, outcome, request_id,
                   payload_hash, details, id
            FROM sync.ledger
            WHERE realm_id = :r AND entity = :e AND direction = 'push' AND source_id IS NOT NULL
            ORDER BY source_id, id DESC
        ) last
        WHERE outcome = 'pending'
        ORDER BY id
    """
    with engine.connect() as conn:
        return [
            dict(r) for r in conn.execute(sa.text(sql), {"r": realm_id, "e": entity}).mappings()
        ]


def update_sync_tokens(
    engine: sa.Engine, realm_id: str, entity: str, tokens: Mapping[str, str]
) -> None:
    """Store fresh SyncTokens by QBO id (after QBO changed them as a side effect of our write)."""
    if not tokens:
        return
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "UPDATE sync.id_map SET sync_token = :t WHERE realm_id = :r AND entity = :e"
                " AND qbo_id = :q"
            ),
            [{"t": t, "r": realm_id, "e": entity, "q": q} for q, t in tokens.items()],
        )
