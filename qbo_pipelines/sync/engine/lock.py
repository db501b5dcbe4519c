"""One writer per company: a session-level Postgres advisory lock on the warehouse.

Held on a dedicated autocommit connection (no transaction stays open), for as long as the engine
writes for the company. Every process that writes (Dagster steps, the CLI, sensors' runs) takes
it, so two pushes of one company never interleave; Postgres releases it when the holder dies.

Re-entrant within a thread: a job that holds it for a whole pass (the reconciliation compares,
pushes and pulls as the company's one writer) runs the push and the pull inside it.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import sqlalchemy as sa

LOCK_NAMESPACE = 0x5142_4F31  # "QBO1"


class CompanyBusyError(RuntimeError):
    """Another process is writing for this company and did not finish in time."""


_held = threading.local()


def _key(realm_id: str) -> int:
    digest = hashlib.sha256(f"qbo-pipelines:writer:{realm_id}".encode()).digest()
    return int.from_bytes(digest[:4], "big", signed=True)


@contextmanager
def company_writer(
    engine: sa.Engine, realm_id: str, *, wait_seconds: float = 3600.0
) -> Iterator[None]:
    """Hold the company's writer lock (waiting up to ``wait_seconds`` for another holder); a
    thread that already holds it for this database goes straight on."""
    mine: set[tuple[str, str]] = _held.__dict__.setdefault("locks", set())
    held = (engine.url.render_as_string(hide_password=True), realm_id)
    if held in mine:
        yield
        return
    conn = engine.connect().execution_options(isolation_level="AUTOCOMMIT")
    params = {"ns": LOCK_NAMESPACE, "k": _key(realm_id)}
    try:
        deadline = time.monotonic() + wait_seconds
        delay = 0.05
        while not conn.execute(sa.text("SELECT pg_try_advisory_lock(:ns, :k)"), params).scalar():
            if time.monotonic() >= deadline:
                raise CompanyBusyError(
                    f"another sync is writing for company {realm_id}; try again when it ends"
                )
            time.sleep(delay)
            delay = min(delay * 2, 1.0)
        mine.add(held)
        try:
            yield
        finally:
            mine.discard(held)
            conn.execute(sa.text("SELECT pg_advisory_unlock(:ns, :k)"), params)
    finally:
        conn.close()
