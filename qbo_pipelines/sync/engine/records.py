"""``sync.record_state`` and ``sync.dispatches``: the engine's state, read and written in bulk.

Every read takes one array parameter (``= ANY(:ids)``), never an IN-list of thousands of bind
parameters; every write is one ``executemany`` inside the caller's transaction.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, fields, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any, cast

import orjson
import psycopg
import sqlalchemy as sa
from psycopg.types.json import set_json_loads

from qbo_pipelines.canonical import QboId, SourceId, content_hash
from qbo_pipelines.qbo.values import stored
from qbo_pipelines.warehouse import bulk

if TYPE_CHECKING:
    from qbo_pipelines.source_app.connector import SourceAppConnector

Bind = sa.Engine | sa.Connection


@dataclass(frozen=True)
class RecordState:
    """One ``sync.record_state`` row (see sql/warehouse/060_record_state.sql for each column)."""

    realm_id: str
    entity: str
    source_id: SourceId | None
    qbo_entity: str | None = None
    qbo_id: QboId | None = None
    created_by: str = "sync"
    status: str = "synced"
    source_hash: str | None = None
    source_base: Mapping[str, Any] | None = None
    qbo_base: Mapping[str, Any] | None = None
    qbo_hash: str | None = None
    sync_token: str | None = None
    qbo_updated_at: datetime | None = None
    name_key: str | None = None
    deleted_in_source: bool = False
    deleted_in_qbo: bool = False
    attempt: int = 0
    intent: Mapping[str, Any] | None = None
    dispatch_id: str | None = None
    error_code: str | None = None
    error_message: str | None = None
    fix: str | None = None
    retry_at: datetime | None = None
    sent_at: datetime | None = None
    sent_to: str | None = None
    last_synced_at: datetime | None = None
    source_row_hash: str | None = None
    pull_due: bool = False
    pulled_token: str | None = None
    pull_fields: tuple[str, ...] = ()
    send_retry_at: datetime | None = None
    held_hash: str | None = None
    pull_skipped: str | None = None

    @property
    def live_in_qbo(self) -> bool:
        """Linked to a QBO record that still exists."""
        return self.qbo_id is not None and not self.deleted_in_qbo

    @property
    def settled_status(self) -> str:
        """What a record in step with QBO is: synced, or failed while a send waits."""
        return "failed" if self.send_waiting else "synced"

    @property
    def send_waiting(self) -> bool:
        """QBO refused to email it (R18) and the send waits for its retry time."""
        return self.send_retry_at is not None and self.sent_at is None

    def but(self, **changes: Any) -> RecordState:
        return replace(self, **changes)

    def cleared(self, **changes: Any) -> RecordState:
        """This record with its last refusal and both retry times gone (and ``changes``)."""
        return replace(self, **{**_CLEARED, **changes})

    def in_step(self, **changes: Any) -> RecordState:
        """This record in step with QBO (with ``changes``): synced, its last refusal cleared;
        unless QBO refused to email it (R18) and that send still waits: then it stays failed
        for the send, with the send's reason, fix, retry time and attempt (a write meanwhile,
        e.g. a mapping re-plan, does not email it before its time)."""
        if self.send_waiting:
            assert self.send_retry_at is not None
            waiting: dict[str, Any] = {"status": "failed", "retry_at": self.send_retry_at}
            if not (self.error_message or "").startswith(SEND_REFUSED):
                # a write was refused after the send: what is left is the send's wait
                waiting |= {
                    "error_code": None,
                    "error_message": f"{SEND_REFUSED} yet: it is tried again at "
                    f"{self.send_retry_at.isoformat(timespec='seconds')}",
                    "fix": "Nothing to do: QBO is asked to email it again then.",
                }
            return replace(self, **changes, **waiting)
        return replace(
            self,
            **changes,
            status="synced",
            attempt=0,
            error_code=None,
            error_message=None,
            fix=None,
            retry_at=None,
        )


_CLEARED: dict[str, Any] = {
    "attempt": 0,
    "error_code": None,
    "error_message": None,
    "fix": None,
    "retry_at": None,
    "send_retry_at": None,
}

SEND_REFUSED = "QBO did not email the invoice"
"""How a refused send's error message begins (R18)."""

_COLUMNS = tuple(f.name for f in fields(RecordState))
_JSON = ("source_base", "qbo_base", "intent")


def _row(mapping: sa.RowMapping | Mapping[str, Any]) -> RecordState:
    values = {k: mapping[k] for k in _COLUMNS}
    return RecordState(**values)


_LONG_NUMBER = re.compile(rb"\d{19}")


def json_loads(data: bytes | bytearray | memoryview | str) -> Any:
    """``json.loads`` through orjson, several times faster on the bases a re-plan reads.

    orjson reads an integer beyond 64 bits as a float and refuses ``1e400``; a document with a
    run of 19 digits, or one orjson refuses, is read by ``json.loads`` instead, so every value
    is the one ``json.loads`` gives."""
    raw = data.encode() if isinstance(data, str) else bytes(data)
    if _LONG_NUMBER.search(raw) is None:
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError:
            pass
    return json.loads(raw)


def load(
    bind: Bind, realm_id: str, entity: str, source_ids: Iterable[str]
) -> dict[SourceId, RecordState]:
    """State rows of ``source_ids`` (absent ones are new records).

    Read on the driver's own cursor (the warehouse is Postgres through psycopg): rows are
    plain tuples in :data:`_COLUMNS` order, built positionally, and the JSON bases are decoded
    by :func:`json_loads`: a full re-plan loads a state row for every record it reads."""
    ids = sorted({str(s) for s in source_ids})
    if not ids:
        return {}
    sql = (
        f"SELECT {', '.join(_COLUMNS)} FROM sync.record_state"  # noqa: S608 - fixed columns
        " WHERE realm_id = %(r)s AND entity = %(e)s AND source_id = ANY(%(ids)s)"
    )
    with _conn(bind) as conn:
        driver = cast("psycopg.Connection[Any]", conn.connection.driver_connection)
        with driver.cursor() as cursor:
            set_json_loads(json_loads, cursor)
            cursor.execute(sql, {"r": realm_id, "e": entity, "ids": ids})
            rows = cursor.fetchall()
    return {SourceId(row[2]): RecordState(*row) for row in rows}


def where(
    bind: Bind, realm_id: str, entity: str, condition: str, **params: Any
) -> list[RecordState]:
    """State rows of ``entity`` matching a fixed SQL ``condition`` (engine code only)."""
    sql = sa.text(
        f"SELECT {', '.join(_COLUMNS)} FROM sync.record_state"  # noqa: S608 - fixed text
        f" WHERE realm_id = :r AND entity = :e AND ({condition}) ORDER BY source_id"
    )
    with _conn(bind) as conn:
        rows = conn.execute(sql, {"r": realm_id, "e": entity, **params}).mappings().all()
    return [_row(r) for r in rows]


def ids_where(
    bind: Bind, realm_id: str, entity: str, condition: str, **params: Any
) -> list[SourceId]:
    """The source ids of ``entity`` whose state rows match a fixed SQL ``condition`` (engine
    code only), in order: the ids alone, where :func:`where` reads whole rows."""
    sql = sa.text(
        "SELECT source_id FROM sync.record_state"  # noqa: S608 - fixed text
        f" WHERE realm_id = :r AND entity = :e AND ({condition}) ORDER BY source_id"
    )
    with _conn(bind) as conn:
        rows = conn.execute(sql, {"r": realm_id, "e": entity, **params})
        return [SourceId(str(s)) for (s,) in rows]


def source_ids(bind: Bind, realm_id: str, entity: str) -> set[SourceId]:
    """Every source id the engine knows for ``entity``."""
    sql = sa.text(
        "SELECT source_id FROM sync.record_state WHERE realm_id = :r AND entity = :e"
        " AND source_id IS NOT NULL"
    )
    with _conn(bind) as conn:
        rows: Iterable[object] = conn.execute(sql, {"r": realm_id, "e": entity}).scalars()
        return {SourceId(str(s)) for s in rows}


def in_step(
    bind: Bind, realm_id: str, entity: str, hashes: Mapping[SourceId, str]
) -> set[SourceId]:
    """The records among ``hashes`` (source id -> row hash) that are synced (no write waiting,
    live in QBO) and whose source row is unchanged since: a full re-plan leaves them alone."""
    if not hashes:
        return set()
    ids = sorted(hashes)
    sql = sa.text(
        "SELECT source_id, source_row_hash FROM sync.record_state WHERE realm_id = :r"
        " AND entity = :e AND source_id = ANY(:ids) AND status = 'synced'"
        " AND source_row_hash IS NOT NULL AND intent IS NULL AND qbo_id IS NOT NULL"
        " AND NOT deleted_in_qbo"
    )
    with _conn(bind) as conn:
        rows = conn.execute(sql, {"r": realm_id, "e": entity, "ids": ids}).all()
    return {SourceId(str(s)) for s, h in rows if hashes.get(SourceId(str(s))) == h}


def set_row_hashes(bind: Bind, realm_id: str, entity: str, hashes: Mapping[SourceId, str]) -> None:
    """Remember the source row hash of records now in step (status synced)."""
    if not hashes:
        return
    ids = sorted(hashes)
    with _begin(bind) as conn:
        conn.execute(
            sa.text(
                "UPDATE sync.record_state s SET source_row_hash = x.h FROM"
                " unnest(CAST(:ids AS text[]), CAST(:hs AS text[])) AS x(id, h)"
                " WHERE s.realm_id = :r AND s.entity = :e AND s.source_id = x.id"
                " AND s.status = 'synced' AND s.source_row_hash IS DISTINCT FROM x.h"
            ),
            {"r": realm_id, "e": entity, "ids": ids, "hs": [hashes[i] for i in ids]},
        )


def set_row_hashes_read(bind: Bind, realm_id: str, entity: str, run_id: str) -> None:
    """Remember, for the records ``run_id`` read into ``raw_source.<entity>`` that are now in
    step (status synced), the source row hash the read took: one statement."""
    raw_table = bulk.qualified(f"raw_source.{entity}")
    with _begin(bind) as conn:
        conn.execute(
            sa.text(
                "UPDATE sync.record_state s SET source_row_hash = x.row_hash"  # noqa: S608
                f" FROM {raw_table} x WHERE x.realm_id = :r AND x.run_id = :run"
                " AND NOT x.deleted AND x.row_hash IS NOT NULL AND s.realm_id = x.realm_id"
                " AND s.entity = :e AND s.source_id = x.source_id AND s.status = 'synced'"
                " AND s.source_row_hash IS DISTINCT FROM x.row_hash"
            ),
            {"r": realm_id, "e": entity, "run": run_id},
        )


def name_owners(bind: Bind, realm_id: str, keys: Iterable[str]) -> dict[str, tuple[str, SourceId]]:
    """Name key -> (entity, source id) of the record that holds it in this company."""
    wanted = sorted(set(keys))
    if not wanted:
        return {}
    sql = sa.text(
        "SELECT name_key, entity, source_id FROM sync.record_state"
        " WHERE realm_id = :r AND name_key = ANY(:k)"
    )
    with _conn(bind) as conn:
        return {
            str(k): (str(e), SourceId(str(s)))
            for k, e, s in conn.execute(sql, {"r": realm_id, "k": wanted})
        }


_RETIRED = "deleted_in_source AND status = 'deleted'"
"""A record deleted in the source whose QBO record is kept (R9): it holds no name, and a record
entered again under its name takes over its QBO link."""


def retired_links(
    bind: Bind, realm_id: str, qbo_entity: str, ids: Iterable[str]
) -> dict[str, SourceId]:
    """QBO id -> source id of retired records linked to these QBO records."""
    wanted = sorted(set(ids))
    if not wanted:
        return {}
    sql = sa.text(
        "SELECT qbo_id, source_id FROM sync.record_state"
        f" WHERE realm_id = :r AND qbo_entity = :q AND qbo_id = ANY(:ids) AND {_RETIRED}"
    )
    with _conn(bind) as conn:
        rows = conn.execute(sql, {"r": realm_id, "q": qbo_entity, "ids": wanted})
        return {str(q): SourceId(str(s)) for q, s in rows}


def unlink_retired(conn: sa.Connection, realm_id: str, entity: str, ids: Sequence[str]) -> int:
    """Drop the QBO link (and any name) of retired records ``ids`` of ``entity``, before
    another record takes the link over; returns rows changed."""
    if not ids:
        return 0
    sql = sa.text(
        "UPDATE sync.record_state SET qbo_id = NULL, name_key = NULL, updated_at = now()"
        f" WHERE realm_id = :r AND entity = :e AND source_id = ANY(:ids) AND {_RETIRED}"
    )
    return conn.execute(sql, {"r": realm_id, "e": entity, "ids": list(ids)}).rowcount


def unlink_written_through(
    conn: sa.Connection, realm_id: str, entity: str, ids: Sequence[str]
) -> list[RecordState]:
    """Hand the QBO link (and name) of records ``ids`` of ``entity`` over: another record
    now writes them (an organisation's new representative contact) and takes the link in the
    same transaction. They become skipped, with no base: never written themselves while
    another record stands for them, planned afresh if they stand for themselves again.
    Returns their state rows as they now are."""
    if not ids:
        return []
    sql = sa.text(
        "UPDATE sync.record_state SET qbo_id = NULL, name_key = NULL, status = 'skipped',"
        " source_hash = NULL, source_base = NULL, qbo_base = NULL, qbo_hash = NULL,"
        " sync_token = NULL, qbo_updated_at = NULL, source_row_hash = NULL, updated_at = now()"
        " WHERE realm_id = :r AND entity = :e AND source_id = ANY(:ids) AND intent IS NULL"
        f" RETURNING {', '.join(_COLUMNS)}"
    )
    rows = conn.execute(sql, {"r": realm_id, "e": entity, "ids": list(ids)}).mappings()
    return [_row(r) for r in rows]


def forget_referencing(
    conn: sa.Connection,
    realm_id: str,
    references: Sequence[tuple[str, str]],
    qbo_ids: Sequence[str],
) -> int:
    """Forget the synced source hash of the records whose base references one of ``qbo_ids``
    through ``(entity, body field)`` (``CustomerRef``): their source content is unchanged, but
    the QBO record they reference is no longer their source reference's, so the next plan
    compares their body (and its new reference) with the base instead of skipping them."""
    if not references or not qbo_ids:
        return 0
    changed = 0
    for entity, field in references:
        sql = sa.text(
            "UPDATE sync.record_state SET source_hash = NULL, source_row_hash = NULL,"
            " updated_at = now() WHERE realm_id = :r AND entity = :e"
            " AND source_base -> CAST(:f AS text) ->> 'value' = ANY(:ids)"
        )
        params = {"r": realm_id, "e": entity, "f": field, "ids": list(qbo_ids)}
        changed += conn.execute(sql, params).rowcount
    return changed


def linked_source_ids(bind: Bind, realm_id: str, entity: str, ids: Iterable[str]) -> set[SourceId]:
    """The records among ``ids`` linked to a QBO record, or with a write to QBO open."""
    wanted = sorted(set(ids))
    if not wanted:
        return set()
    sql = sa.text(
        "SELECT source_id FROM sync.record_state WHERE realm_id = :r AND entity = :e"
        " AND source_id = ANY(:ids) AND (qbo_id IS NOT NULL OR intent IS NOT NULL)"
    )
    with _conn(bind) as conn:
        params = {"r": realm_id, "e": entity, "ids": wanted}
        rows: Iterable[object] = conn.execute(sql, params).scalars()
        return {SourceId(str(s)) for s in rows}


def mapped_qbo_ids(
    bind: Bind, realm_id: str, qbo_entity: str, ids: Iterable[str]
) -> dict[str, tuple[str, SourceId]]:
    """QBO id -> (entity, source id) for QBO records already linked to a source record."""
    wanted = sorted(set(ids))
    if not wanted:
        return {}
    sql = sa.text(
        "SELECT qbo_id, entity, source_id FROM sync.record_state"
        " WHERE realm_id = :r AND qbo_entity = :q AND qbo_id = ANY(:ids)"
    )
    with _conn(bind) as conn:
        return {
            str(q): (str(e), SourceId(str(s)))
            for q, e, s in conn.execute(sql, {"r": realm_id, "q": qbo_entity, "ids": wanted})
        }


def set_source_hashes(
    conn: sa.Connection,
    realm_id: str,
    entity: str,
    hashes: Sequence[tuple[str, str]],
    *,
    created_by: str,
) -> int:
    """Store the source content hash of records (source id, hash) the sync keeps in step
    without a write (only those ``created_by`` says, e.g. ``qbo``: the ones that mirror QBO).
    Returns rows changed."""
    if not hashes:
        return 0
    sql = sa.text(
        "UPDATE sync.record_state s SET source_hash = v.h, updated_at = now()"
        " FROM unnest(CAST(:ids AS text[]), CAST(:hs AS text[])) AS v(id, h)"
        " WHERE s.realm_id = :r AND s.entity = :e AND s.source_id = v.id"
        " AND s.created_by = :by AND s.source_hash IS DISTINCT FROM v.h"
    )
    params = {
        "r": realm_id,
        "e": entity,
        "by": created_by,
        "ids": [str(i) for i, _ in hashes],
        "hs": [h for _, h in hashes],
    }
    return conn.execute(sql, params).rowcount


def mirrored_hashes(
    connector: SourceAppConnector, contacts: Iterable[str]
) -> list[tuple[SourceId, str]]:
    """(source id, content hash now) of the QBO-origin sales whose billing email follows
    ``contacts``. The email of a contact is part of those sales' source records, yet a change
    of it (written by the pull, or pushed to the customer) changes none of the sales: stored
    as in step (:func:`set_source_hashes`), the reconciliation does not report them as
    changed in the source app (they mirror QBO, whose invoices keep their own BillEmail)."""
    sales = connector.mirrored_sales_billed_to(contacts)
    return [
        (SourceId(r.source_id), content_hash(r))
        for chunk in (connector.iter_entity("invoices", sales) if sales else ())
        for r in chunk
    ]


def save(conn: sa.Connection, rows: Sequence[RecordState], run_id: str | None) -> None:
    """Insert or replace state rows by (company, entity, source id), in the caller's
    transaction. A row whose source hash moves forgets its source row hash (the row it was
    taken from is no longer the one in step: a row changed A -> B -> A must be planned again
    by a full re-plan, not left alone as "unchanged since A")."""
    if not rows:
        return
    cols = ", ".join(_COLUMNS)
    values = ", ".join(f"CAST(:{c} AS jsonb)" if c in _JSON else f":{c}" for c in _COLUMNS)
    updates = ", ".join(
        _ROW_HASH_UPDATE if c == "source_row_hash" else f"{c} = EXCLUDED.{c}"
        for c in _COLUMNS
        if c not in {"realm_id", "entity", "source_id"}
    )
    sql = sa.text(
        f"INSERT INTO sync.record_state ({cols}, last_run_id, updated_at)"  # noqa: S608
        f" VALUES ({values}, :run_id, now())"
        " ON CONFLICT (realm_id, entity, source_id) WHERE source_id IS NOT NULL"
        f" DO UPDATE SET {updates}, last_run_id = EXCLUDED.last_run_id, updated_at = now()"
    )
    conn.execute(sql, [_params(r, run_id) for r in rows])


_ROW_HASH_UPDATE = (
    "source_row_hash = CASE WHEN EXCLUDED.source_hash IS DISTINCT FROM"
    " sync.record_state.source_hash THEN NULL ELSE EXCLUDED.source_row_hash END"
)


def _params(row: RecordState, run_id: str | None) -> dict[str, Any]:
    out: dict[str, Any] = {c: getattr(row, c) for c in _COLUMNS}
    out["pull_fields"] = sorted(row.pull_fields or ())
    for c in _JSON:
        value = out[c]
        out[c] = stored(value) if value is not None else None
    out["run_id"] = run_id
    return out


# ----------------------------------------------------------------------------- dispatches


@dataclass(frozen=True)
class DispatchRow:
    """One write call whose members' outcomes are (or were) pending."""

    realm_id: str
    request_id: str
    entity: str
    single: bool
    members: tuple[SourceId, ...]


def add_dispatch(
    conn: sa.Connection, row: DispatchRow, ops: Sequence[Mapping[str, Any]], run_id: str | None
) -> None:
    """Record a call and its exact operations before it is sent."""
    conn.execute(
        sa.text(
            "INSERT INTO sync.dispatches (realm_id, request_id, entity, single, members, ops,"
            " run_id) VALUES (:r, :rid, :e, :single, :members, CAST(:ops AS json), :run)"
            " ON CONFLICT (realm_id, request_id) DO UPDATE SET done_at = NULL"
        ),
        {
            "r": row.realm_id,
            "rid": row.request_id,
            "e": row.entity,
            "single": row.single,
            "members": list(row.members),
            "ops": stored(list(ops)),
            "run": run_id,
        },
    )


def finish_dispatch(conn: sa.Connection, realm_id: str, request_id: str) -> None:
    conn.execute(
        sa.text(
            "UPDATE sync.dispatches SET done_at = now() WHERE realm_id = :r AND request_id = :rid"
        ),
        {"r": realm_id, "rid": request_id},
    )


def dispatch_ops(bind: Bind, row: DispatchRow) -> list[dict[str, Any]]:
    """The exact operations a call carried, in the order sent."""
    with _conn(bind) as conn:
        ops: Any = conn.execute(
            sa.text("SELECT ops FROM sync.dispatches WHERE realm_id = :r AND request_id = :rid"),
            {"r": row.realm_id, "rid": row.request_id},
        ).scalar_one()
    return list(ops)


def open_dispatches(bind: Bind, realm_id: str, entity: str) -> list[DispatchRow]:
    """Calls sent (or about to be) whose outcome was never recorded, oldest first."""
    sql = sa.text(
        "SELECT realm_id, request_id, entity, single, members FROM sync.dispatches"
        " WHERE realm_id = :r AND entity = :e AND done_at IS NULL ORDER BY created_at, request_id"
    )
    with _conn(bind) as conn:
        rows: Any = conn.execute(sql, {"r": realm_id, "e": entity})
        return [
            DispatchRow(r, rid, e, bool(single), tuple(SourceId(m) for m in members))
            for r, rid, e, single, members in rows
        ]


class _begin:
    """A transaction on an engine, or the caller's connection (its transaction)."""

    def __init__(self, bind: Bind) -> None:
        self.bind = bind
        self.ctx: Any = None

    def __enter__(self) -> sa.Connection:
        if isinstance(self.bind, sa.Connection):
            return self.bind
        self.ctx = self.bind.begin()
        conn: sa.Connection = self.ctx.__enter__()
        return conn

    def __exit__(self, *exc: Any) -> None:
        if self.ctx is not None:
            self.ctx.__exit__(*exc)


class _conn:
    """A connection from an engine (closed after) or the caller's connection (left open)."""

    def __init__(self, bind: Bind) -> None:
        self.bind = bind
        self.owned: sa.Connection | None = None

    def __enter__(self) -> sa.Connection:
        if isinstance(self.bind, sa.Connection):
            return self.bind
        self.owned = self.bind.connect()
        return self.owned

    def __exit__(self, *exc: object) -> None:
        if self.owned is not None:
            self.owned.close()
