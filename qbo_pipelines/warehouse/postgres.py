"""The one module that owns Postgres: embedded via ``pgserver`` by default, any server by URL.

Three logical databases live on the server:

* ``dagster``: Dagster's run, event-log and schedule storage (dagster-postgres, psycopg2 driver);
* ``warehouse``: what analysts query (schemas raw_source, raw_qbo, staging, mapping, sync, marts);
* ``source_app``: the demo source application.

With no ``QBO_PIPELINES_PG_URL`` the embedded server is started (or reused when already running)
under ``<data dir>/pg``; it listens on a Unix socket only, never on TCP.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import sqlalchemy as sa
from sqlalchemy.engine import URL, make_url

from qbo_pipelines import settings

LogicalDb = Literal["dagster", "warehouse", "source_app"]
LOGICAL_DATABASES: tuple[LogicalDb, ...] = ("dagster", "warehouse", "source_app")
_DB_NAME_RE = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


class PostgresError(RuntimeError):
    """Postgres could not be started or reached; the message says what to do."""


@dataclass(frozen=True)
class PgServer:
    """A reachable Postgres server: its admin URL and whether it is the embedded one."""

    admin_url: URL
    embedded: bool
    data_dir: Path | None = None

    def url(self, database: str, driver: str = "psycopg") -> URL:
        """SQLAlchemy URL of ``database`` on this server with the given driver."""
        return self.admin_url.set(drivername=f"postgresql+{driver}", database=database)

    def url_str(self, database: str, driver: str = "psycopg") -> str:
        """The URL as a string with the password kept (for child processes and Dagster)."""
        return self.url(database, driver).render_as_string(hide_password=False)


def database_name(logical: str) -> str:
    """Physical database name of a logical database (with the optional prefix)."""
    name = f"{settings.db_prefix()}{logical}"
    if not _DB_NAME_RE.match(name):
        raise PostgresError(
            f"database name {name!r} is not a plain lower-case identifier; "
            f"check {settings.ENV_DB_PREFIX}"
        )
    return name


def _embedded_server() -> PgServer:
    import warnings

    with warnings.catch_warnings():  # platformdirs warns about XDG_RUNTIME_DIR on servers
        warnings.simplefilter("ignore")
        import pgserver  # imported lazily: starting it is the only use

    pgdata = settings.data_dir() / "pg"
    pgdata.mkdir(parents=True, exist_ok=True)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            server = pgserver.get_server(pgdata, cleanup_mode=None)  # type: ignore[attr-defined]
    except Exception as exc:  # pgserver raises plain exceptions with stderr inside
        raise PostgresError(
            f"could not start the embedded Postgres in {pgdata}: {exc}. "
            f"Remove that directory to start afresh, or set {settings.ENV_PG_URL}."
        ) from exc
    return PgServer(admin_url=make_url(server.get_uri("postgres")), embedded=True, data_dir=pgdata)


def server() -> PgServer:
    """The configured server: external when ``QBO_PIPELINES_PG_URL`` is set, else embedded."""
    external = settings.external_pg_url()
    if external is None:
        return _embedded_server()
    try:
        url = make_url(external)
    except sa.exc.ArgumentError as exc:
        raise PostgresError(f"{settings.ENV_PG_URL} is not a database URL: {exc}") from None
    if not url.drivername.startswith("postgresql"):
        raise PostgresError(f"{settings.ENV_PG_URL} must be a postgresql:// URL")
    return PgServer(admin_url=url.set(drivername="postgresql+psycopg"), embedded=False)


def create_database(pg: PgServer, name: str, template: str | None = None) -> bool:
    """Create ``name`` on the server unless it exists, as a copy of ``template`` when given (a
    database nobody is connected to). Returns True when it was created."""
    for checked in (name, template or name):
        if not _DB_NAME_RE.match(checked):
            raise PostgresError(f"refusing to create database with unsafe name {checked!r}")
    engine = sa.create_engine(pg.url("postgres"), isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            exists = conn.execute(
                sa.text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name}
            ).scalar()
            if exists:
                return False
            copy = f' TEMPLATE "{template}"' if template else ""
            conn.execute(sa.text(f'CREATE DATABASE "{name}"{copy}'))
            return True
    except sa.exc.OperationalError as exc:
        raise PostgresError(f"cannot reach Postgres at {pg.admin_url!r}: {exc.orig}") from None
    finally:
        engine.dispose()


def drop_database(pg: PgServer, name: str) -> None:
    """Drop ``name`` if it exists (tests use throw-away databases)."""
    if not _DB_NAME_RE.match(name):
        raise PostgresError(f"refusing to drop database with unsafe name {name!r}")
    engine = sa.create_engine(pg.url("postgres"), isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        engine.dispose()


def ensure_databases(pg: PgServer | None = None) -> PgServer:
    """Start or reuse the server and create the three logical databases."""
    pg = pg or server()
    for logical in LOGICAL_DATABASES:
        create_database(pg, database_name(logical))
    return pg


def database_url(logical: LogicalDb, driver: str = "psycopg", pg: PgServer | None = None) -> str:
    """URL string of a logical database (server started when needed)."""
    pg = pg or server()
    return pg.url_str(database_name(logical), driver)


def dagster_storage_url(pg: PgServer | None = None) -> str:
    """dagster-postgres wants psycopg2 (its NOTIFY is not parameterisable under psycopg 3)."""
    return database_url("dagster", driver="psycopg2", pg=pg)


def embedded_pid(pgdata: Path | None = None) -> int | None:
    """PID of the embedded server's postmaster, or None when it is not running."""
    pid_file = (pgdata or settings.data_dir() / "pg") / "postmaster.pid"
    try:  # the server removes the file as it stops: read it once, never test then read
        pid = int(pid_file.read_text().splitlines()[0])
    except (FileNotFoundError, ValueError, IndexError):
        return None
    try:
        import os

        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        return pid  # running as another user (pgserver drops root privileges)
    return pid


def stop_embedded(pgdata: Path | None = None, timeout: float = 20.0) -> bool:
    """Stop the embedded server (fast shutdown). Returns True when one was running."""
    import os
    import signal
    import time

    pid = embedded_pid(pgdata)
    if pid is None:
        return False
    os.kill(pid, signal.SIGINT)  # postgres "fast" shutdown
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and embedded_pid(pgdata) == pid:
        time.sleep(0.1)
    return True
