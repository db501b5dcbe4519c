"""Bulk upserts into the warehouse: COPY into a temp table, then one INSERT ... ON CONFLICT.

Never a row at a time. With psycopg 3 the rows are streamed through ``COPY ... FROM STDIN`` into
a transaction-local temp table shaped like the target; other drivers fall back to batched
``executemany``. Identifiers come from code, never from data, and are validated and quoted.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from types import TracebackType
from typing import Any

import sqlalchemy as sa

_IDENT = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
BATCH = 5000


class BulkError(ValueError):
    """An identifier given to a bulk helper is not a plain lower-case name."""


def quote_ident(name: str) -> str:
    """Validate and double-quote one identifier (``schema`` or ``table`` or ``column``)."""
    if not _IDENT.match(name):
        raise BulkError(f"not a plain identifier: {name!r}")
    return f'"{name}"'


def qualified(table: str) -> str:
    """Quote ``schema.table``."""
    schema, _, name = table.partition(".")
    if not name:
        raise BulkError(f"table must be schema-qualified: {table!r}")
    return f"{quote_ident(schema)}.{quote_ident(name)}"


def _dedupe(rows: Iterable[Sequence[Any]], key_idx: list[int]) -> list[Sequence[Any]]:
    """Last row wins per key (ON CONFLICT cannot touch one row twice in a statement)."""
    by_key: dict[tuple[Any, ...], Sequence[Any]] = {}
    for row in rows:
        by_key[tuple(row[i] for i in key_idx)] = row
    return list(by_key.values())


def upsert_sql(
    table: str, columns: Sequence[str], key: Sequence[str], update: Sequence[str],
    rows_clause: str, only_if_changed: bool,
) -> str:
    """The ``INSERT ... <rows_clause> ON CONFLICT`` statement (exposed for tests).

    ``rows_clause`` is ``SELECT <cols> FROM <temp table>`` or ``VALUES (:a, :b, ...)``.
    """
    cols = ", ".join(quote_ident(c) for c in columns)
    keys = ", ".join(quote_ident(c) for c in key)
    head = f"INSERT INTO {qualified(table)} AS t ({cols}) {rows_clause} ON CONFLICT ({keys})"
    if not update:
        return f"{head} DO NOTHING"
    sets = ", ".join(f"{quote_ident(c)} = EXCLUDED.{quote_ident(c)}" for c in update)
    sql = f"{head} DO UPDATE SET {sets}"
    if only_if_changed:
        old = ", ".join(f"t.{quote_ident(c)}" for c in update)
        new = ", ".join(f"EXCLUDED.{quote_ident(c)}" for c in update)
        sql += f" WHERE ({old}) IS DISTINCT FROM ({new})"
    return sql


def upsert_rows(
    conn: sa.Connection,
    table: str,
    columns: Sequence[str],
    rows: Iterable[Sequence[Any]],
    key: Sequence[str],
    update: Sequence[str] | None = None,
    only_if_changed: bool = False,
) -> int:
    """Insert or update many rows: COPY + one statement (psycopg), else batched executemany.

    Args:
        conn: a connection inside a transaction (the caller commits).
        table: ``schema.table``.
        columns: the columns given in each row, in order.
        rows: the rows (sequences matching ``columns``); duplicate keys: the last wins.
        key: the conflict target (a primary key or unique index's columns).
        update: columns to overwrite on conflict (default: every non-key column; ``[]``:
            DO NOTHING).
        only_if_changed: skip updates that would not change anything.

    Returns:
        the number of distinct rows given.
    """
    key_idx = [list(columns).index(k) for k in key]
    data = _dedupe(rows, key_idx)
    if not data:
        return 0
    update_cols = [c for c in columns if c not in key] if update is None else list(update)
    cols = ", ".join(quote_ident(c) for c in columns)
    if conn.dialect.name == "postgresql" and conn.dialect.driver == "psycopg":
        raw: Any = conn.connection.driver_connection
        tmp = quote_ident(f"_bulk_{table.replace('.', '_')}"[:63])
        conn.exec_driver_sql(f"DROP TABLE IF EXISTS {tmp}")
        conn.exec_driver_sql(
            f"CREATE TEMP TABLE {tmp} ON COMMIT DROP AS "
            f"SELECT {cols} FROM {qualified(table)} WITH NO DATA")
        with raw.cursor() as cur, cur.copy(f"COPY {tmp} ({cols}) FROM STDIN") as copy:
            for row in data:
                copy.write_row(row)
        conn.exec_driver_sql(
            upsert_sql(table, columns, key, update_cols, f"SELECT {cols} FROM {tmp}",
                       only_if_changed))
        conn.exec_driver_sql(f"DROP TABLE {tmp}")
        return len(data)
    values = "VALUES (" + ", ".join(f":{c}" for c in columns) + ")"
    stmt = sa.text(upsert_sql(table, columns, key, update_cols, values, only_if_changed))
    params = [dict(zip(columns, row, strict=True)) for row in data]
    for start in range(0, len(params), BATCH):
        conn.execute(stmt, params[start:start + BATCH])
    return len(data)


class Behind:
    """Writes that run behind the caller: one at a time on a background thread while the caller
    prepares the next batch, so Python's work and Postgres's overlap on two cores.

    ``submit`` waits for the write before it (at most one write in flight and one batch being
    prepared: memory stays bounded) and re-raises its error. The writes may share one
    connection (one transaction) as long as the caller does not use it until :meth:`wait`
    returned; leaving the block waits for the last write (and on an error, lets the write in
    flight end before the transaction is rolled back).

    Attributes:
        total: the sum of the writes' results (rows written).
    """

    def __init__(self) -> None:
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="bulk-behind")
        self._last: Future[int] | None = None
        self.total = 0

    def submit(self, write: Callable[..., int], *args: Any) -> None:
        """Run ``write(*args)`` once the previous write is done."""
        self.wait()
        self._last = self._pool.submit(write, *args)

    def wait(self) -> int:
        """Wait for the write in flight (re-raising its error); returns :attr:`total`."""
        last, self._last = self._last, None
        if last is not None:
            self.total += last.result()
        return self.total

    def __enter__(self) -> Behind:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            if kind is None:
                self.wait()
        finally:
            self._pool.shutdown(wait=True)
