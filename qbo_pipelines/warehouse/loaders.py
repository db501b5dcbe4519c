"""Loaders for ``raw_source`` and ``staging``: canonical records in bulk, merge on their ids.

``raw_source.<entity>`` keeps the source records as read by each company's push (with a deleted
flag for hard deletes seen in the change log); ``staging.<entity>`` holds the canonical records a
company's push run is about to turn into QBO payloads, with the typed columns of the entity's
constraint table (:mod:`qbo_pipelines.quality.constraints`) that the Great Expectations suites
validate. Both store the record as JSON (:func:`qbo_pipelines.canonical.as_json`) with its
``content_hash()``, keyed on the company (``realm_id``) and the record's id. Entity names are the
catalogue's (``customers``, ``invoices``, ...).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from qbo_pipelines.canonical import SOURCE_ENTITIES, SourceId, json_text
from qbo_pipelines.quality import constraints
from qbo_pipelines.warehouse import bulk


def _check_entity(entity: str) -> None:
    if entity not in SOURCE_ENTITIES:
        raise ValueError(f"unknown source entity {entity!r}; expected one of {SOURCE_ENTITIES}")


def _source_rows(
    records: Iterable[Any],
    extra: tuple[Any, ...],
    stored: Mapping[str, tuple[str, str]] | None = None,
) -> list[tuple[Any, ...]]:
    """(source id, JSON text, content hash, updated_at, *extra) per record; ``stored``: the
    JSON text and hash already rendered for a source id (a record read back from the
    warehouse), used as they are."""
    out = []
    for r in records:
        sid = str(r.source_id)
        text, digest = (stored.get(sid) if stored else None) or (json_text(r), r.content_hash())
        out.append((sid, text, digest, r.updated_at, *extra))
    return out


RAW_SOURCE_COLUMNS = (
    "realm_id",
    "source_id",
    "data",
    "content_hash",
    "source_updated_at",
    "deleted",
    "deleted_at",
    "loaded_at",
    "run_id",
    "row_hash",
    "staged",
)
"""The columns of a ``raw_source`` row, in the order :func:`raw_source_rows` gives them."""


def raw_source_rows(
    entity: str,
    records: Iterable[Any],
    run_id: str | None = None,
    *,
    realm_id: str,
    row_hashes: Mapping[SourceId, str] | None = None,
) -> list[tuple[Any, ...]]:
    """The ``raw_source.<entity>`` rows of canonical records (:data:`RAW_SOURCE_COLUMNS`):
    the record's JSON, content hash and staged column values, computed here (no database).

    Args:
        entity: catalogue entity name.
        records: canonical records with ``source_id``, ``updated_at`` and ``content_hash()``.
        run_id: the Dagster run id.
        realm_id: the company whose push reads them (part of the key).
        row_hashes: source id -> the source row hash taken before the read (full reads).
    """
    _check_entity(entity)
    now = datetime.now(UTC)
    hashes = row_hashes or {}
    typed = constraints.TABLES.get(entity)
    records = list(records)
    return [
        (
            realm_id,
            *row,
            hashes.get(SourceId(row[0])),
            constraints.staged_json(typed, record) if typed is not None else None,
        )
        for row, record in zip(_source_rows(records, (False, None, now, run_id)), records,
                               strict=True)
    ]


def write_raw_source(conn: sa.Connection, entity: str, rows: Iterable[Sequence[Any]]) -> int:
    """Merge rows of :func:`raw_source_rows` into ``raw_source.<entity>`` (clears
    ``deleted``); bulk. Returns rows written."""
    _check_entity(entity)
    return bulk.upsert_rows(conn, f"raw_source.{entity}", RAW_SOURCE_COLUMNS, rows, key=_KEY)


_KEY = ("realm_id", "source_id")


def mark_source_deleted(
    conn: sa.Connection,
    entity: str,
    ids: Iterable[str],
    run_id: str | None = None,
    *,
    realm_id: str,
) -> int:
    """Flag records hard-deleted in the source (kept, not removed) for one company's push;
    returns rows flagged."""
    _check_entity(entity)
    id_list = sorted({str(i) for i in ids})
    if not id_list:
        return 0
    stmt = sa.text(
        f"UPDATE {bulk.qualified(f'raw_source.{entity}')} SET deleted = true, "
        "deleted_at = coalesce(deleted_at, now()), loaded_at = now(), run_id = :run "
        "WHERE realm_id = :realm AND source_id IN :ids"
    ).bindparams(sa.bindparam("ids", expanding=True))
    return conn.execute(stmt, {"ids": id_list, "run": run_id, "realm": realm_id}).rowcount


def staged_columns(entity: str) -> tuple[str, ...]:
    """The typed columns ``staging.<entity>`` carries beside the JSON (empty for entities
    without a constraint table: tax rates and payment methods are mapped, never written)."""
    table = constraints.TABLES.get(entity)
    if table is None:
        return ()
    return tuple(c.name for c in table.columns if c.name != "source_id")


def stage_run(conn: sa.Connection, entity: str, run_id: str, *, realm_id: str) -> int:
    """Copy what one company's run extracted of ``entity`` (``raw_source`` rows of the run, not
    deleted) into ``staging.<entity>`` in one ``INSERT ... SELECT`` in Postgres: the JSON and
    content hash as read, the typed columns cast from the values the extract computed
    (``raw_source.<entity>.staged``). Rows extracted before that column existed are left for
    :func:`load_staging` (``staged IS NULL`` on an entity with typed columns).

    Returns:
        rows staged.
    """
    _check_entity(entity)
    table = constraints.TABLES.get(entity)
    typed = table.columns[1:] if table is not None else ()  # source_id is the row's key
    cols = ("realm_id", "source_id", "data", "content_hash", "updated_at", "staged_at",
            "run_id", *(c.name for c in typed))
    values = [
        "realm_id", "source_id", "data", "content_hash", "source_updated_at", "now()", "run_id",
        *(f"(staged ->> '{c.name}')::{c.sql_type}" for c in typed),
    ]
    rows = (
        f"SELECT {', '.join(values)} FROM {bulk.qualified(f'raw_source.{entity}')}"  # noqa: S608
        " WHERE realm_id = :realm AND run_id = :run AND NOT deleted"
        + (" AND staged IS NOT NULL" if typed else "")
    )
    update = [c for c in cols if c not in _KEY]
    sql = bulk.upsert_sql(f"staging.{entity}", cols, _KEY, update, rows, only_if_changed=False)
    return conn.execute(sa.text(sql), {"realm": realm_id, "run": run_id}).rowcount


ANALYZE_AFTER = 5000
"""Rows staged at once from which the stage refreshes the planner's statistics."""


def analyze_staging(engine: sa.Engine, entity: str) -> None:
    """Refresh the planner's statistics on ``staging.<entity>``'s batch key after a large
    stage: without them Postgres takes a fresh run's batch for a few rows and reads it through
    the run index, row by row, once per query of the Great Expectations suite (a sequential
    scan is a third cheaper when the batch is most of the table). Only the key columns are
    sampled, so it costs a fraction of a full ``ANALYZE``."""
    _check_entity(entity)
    with engine.begin() as conn:
        conn.execute(
            sa.text(f"ANALYZE {bulk.qualified(f'staging.{entity}')} (realm_id, run_id)")
        )


def load_staging(
    conn: sa.Connection,
    entity: str,
    records: Iterable[Any],
    run_id: str | None = None,
    replace: bool = False,
    *,
    realm_id: str,
    stored: Mapping[str, tuple[str, str]] | None = None,
) -> int:
    """Merge one company's canonical records into ``staging.<entity>``, with the typed columns
    of the entity's constraint table; with ``replace`` empty the company's rows first.
    ``stored``: source id -> the record's JSON text and content hash as ``raw_source`` holds
    them (the stage copies them instead of rendering the record again)."""
    _check_entity(entity)
    table = bulk.qualified(f"staging.{entity}")
    if replace:
        conn.execute(sa.text(f"DELETE FROM {table} WHERE realm_id = :realm"), {"realm": realm_id})
    typed = constraints.TABLES.get(entity)
    now = datetime.now(UTC)
    records = list(records)
    rows: list[tuple[Any, ...]] = [
        (realm_id, *row) for row in _source_rows(records, (now, run_id), stored)
    ]
    if typed is not None:  # source_id is already there
        rows = [
            (*row, *constraints.staged_values(typed, r)[1:])
            for row, r in zip(rows, records, strict=True)
        ]
    cols = (
        "realm_id",
        "source_id",
        "data",
        "content_hash",
        "updated_at",
        "staged_at",
        "run_id",
        *staged_columns(entity),
    )
    return bulk.upsert_rows(conn, f"staging.{entity}", cols, rows, key=_KEY)
