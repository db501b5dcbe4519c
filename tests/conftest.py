"""Shared fixtures: real Postgres (embedded or external) and the QBO sandbox over real HTTP.

Every test session works in throw-away databases named ``t<hex>_<purpose>`` on the configured
server, so concurrent sessions and the developer's own ``.data`` databases never collide.
"""

from __future__ import annotations

import contextlib
import gc
import os
import shutil
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import psutil
import pytest
import sqlalchemy as sa
from cryptography.fernet import Fernet
from pushbed import PushBed, UserStack, demo_company

from qbo_pipelines import settings
from qbo_pipelines.qbo.app import ENV_API_URL, ENV_CLIENT_ID, ENV_CLIENT_SECRET, ENV_OAUTH_URL
from qbo_pipelines.qbo.auth import ENV_TOKEN_KEY
from qbo_pipelines.quality import gx_suites
from qbo_pipelines.sandbox.testing import run_sandbox
from qbo_pipelines.source_app import demo
from qbo_pipelines.warehouse import db, migrations, postgres

SESSION_TAG = f"t{uuid.uuid4().hex[:8]}"

# Checkpoints validate without rendering Data Docs here (about a second per entity per push,
# thousands of pushes in the suite); the product's default is on, and the Data Docs tests
# (tests/integration/quality/test_gx_*.py) turn it on. Subprocesses inherit the setting.
os.environ.setdefault(gx_suites.ENV_DATA_DOCS, "0")



def pytest_configure(config: pytest.Config) -> None:
    """Start the embedded Postgres once, before pytest-xdist's workers share it (each worker
    then finds it running; an external server needs nothing)."""
    if not hasattr(config, "workerinput") and settings.external_pg_url() is None:
        postgres.server()


@pytest.fixture(autouse=True)
def _dagster_defs_state_reset() -> Iterator[None]:
    """Dagster keeps the "current" definitions-state storage of an instance a test entered in a
    context variable, holding that instance weakly; once the instance is gone, the next
    definitions built in this process (``qbo-pipelines`` called in-process) fail with
    "undefined DagsterInstance weakref", depending on garbage-collection timing. Each test
    starts as a fresh CLI process does: with none.

    A context entered and never left (a schedule context built without ``with``) restores,
    whenever the garbage collector takes it, the storage that was current when it was entered:
    a later test would then find a dead instance there. So a test that leaves one behind has it
    collected here, before the storage is cleared."""
    yield
    if "dagster" in sys.modules:
        from dagster._core.storage.defs_state.base import _current_storage

        if _current_storage.get() is not None:
            gc.collect()
        _current_storage.set(None)

@pytest.fixture(scope="session")
def pg_server() -> postgres.PgServer:
    """The real Postgres server (embedded pgserver unless QBO_PIPELINES_PG_URL is set)."""
    return postgres.server()


@pytest.fixture(scope="session")
def make_database(pg_server: postgres.PgServer) -> Iterator[Callable[[str], sa.Engine]]:
    """Factory: a brand-new empty database (dropped at the end of the session)."""
    created: list[tuple[str, sa.Engine]] = []

    def factory(purpose: str) -> sa.Engine:
        name = f"{SESSION_TAG}_{purpose}_{len(created)}"
        postgres.create_database(pg_server, name)
        engine = sa.create_engine(pg_server.url(name), pool_pre_ping=True)
        created.append((name, engine))
        return engine

    yield factory
    for name, engine in created:
        engine.dispose()
        postgres.drop_database(pg_server, name)


MIGRATE: dict[str, Callable[[sa.Engine], object]] = {
    "warehouse": migrations.migrate_warehouse,
    "source_app": migrations.migrate_source_app,
}


@pytest.fixture(scope="session")
def migrated_template(pg_server: postgres.PgServer) -> Iterator[Callable[[str], str]]:
    """Factory: the name of a database of the session migrated once as ``kind`` (warehouse or
    source_app) by the project's migrations, for tests to copy (``CREATE DATABASE ...
    TEMPLATE``: a file copy instead of every migration again). Nobody stays connected to it."""
    made: dict[str, str] = {}

    def factory(kind: str) -> str:
        if kind not in made:
            name = f"{SESSION_TAG}_template_{kind}"
            postgres.create_database(pg_server, name)
            engine = sa.create_engine(pg_server.url(name), poolclass=sa.pool.NullPool)
            MIGRATE[kind](engine)
            engine.dispose()
            made[kind] = name
        return made[kind]

    yield factory
    for name in made.values():
        postgres.drop_database(pg_server, name)


@pytest.fixture
def temp_database(
    pg_server: postgres.PgServer, migrated_template: Callable[[str], str]
) -> Iterator[Callable[..., sa.Engine]]:
    """Factory: a brand-new database dropped (connections closed) when the test ends; empty,
    or migrated as ``migrated=`` says (warehouse or source_app: a copy of the session's
    template, which the project's migrations built)."""
    created: list[tuple[str, sa.Engine]] = []

    def factory(purpose: str, migrated: str | None = None) -> sa.Engine:
        name = f"{SESSION_TAG}_{purpose}_{uuid.uuid4().hex[:6]}"
        template = migrated_template(migrated) if migrated else None
        postgres.create_database(pg_server, name, template=template)
        engine = sa.create_engine(pg_server.url(name), pool_pre_ping=True, pool_size=2)
        created.append((name, engine))
        return engine

    yield factory
    for name, engine in created:
        engine.dispose()
        postgres.drop_database(pg_server, name)


@pytest.fixture(scope="session")
def warehouse_engine(make_database: Callable[[str], sa.Engine]) -> sa.Engine:
    """A migrated warehouse database shared by the session (use distinct realm ids per test)."""
    engine = make_database("warehouse")
    migrations.migrate_warehouse(engine)
    return engine


@pytest.fixture(scope="session")
def source_app_engine(make_database: Callable[[str], sa.Engine]) -> sa.Engine:
    """A migrated demo source-app database shared by the session."""
    engine = make_database("source_app")
    migrations.migrate_source_app(engine)
    return engine


@pytest.fixture
def sandbox() -> Iterator[object]:
    """A fresh QBO sandbox server on a free 127.0.0.1 port, seeded, throttling off."""
    from qbo_pipelines.sandbox.testing import run_sandbox

    with run_sandbox() as handle:
        yield handle


@pytest.fixture
def push_bed(
    temp_database: Callable[..., sa.Engine], monkeypatch: pytest.MonkeyPatch
) -> Iterator[PushBed]:
    monkeypatch.setenv(ENV_TOKEN_KEY, Fernet.generate_key().decode())
    warehouse = temp_database("pushwh", migrated="warehouse")
    source = temp_database("pushsrc", migrated="source_app")
    demo.seed(source, contacts=30, sales=45, workers=4, seed_value=11)
    with run_sandbox() as sb:
        yield demo_company(warehouse, source, sb)


@pytest.fixture
def user_stack(
    pg_server: postgres.PgServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[UserStack]:
    """The project as a user's terminal sees it, for tests that run the CLI or launch Dagster
    runs: its own databases (a fresh prefix on the test server, bootstrapped and migrated as
    ``make demo`` does), a data directory, a Dagster home with the project's dagster.yaml on
    those databases, and a QBO sandbox over HTTP (throttling off) whose app is exported as a
    user exports it before ``connect``. No company is connected; everything is dropped after."""
    prefix = f"u{uuid.uuid4().hex[:7]}_"
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(settings.DAGSTER_HOME / "dagster.yaml", home / "dagster.yaml")
    for key in [k for k in os.environ if k.startswith("QBO_PIPELINES_QBO_")]:
        monkeypatch.delenv(key)
    for key, value in {
        settings.ENV_PG_URL: pg_server.url_str("postgres").replace(
            "postgresql+psycopg", "postgresql"
        ),
        settings.ENV_DB_PREFIX: prefix,
        settings.ENV_DATA_DIR: str(tmp_path / "data"),
        ENV_TOKEN_KEY: Fernet.generate_key().decode(),
        "DAGSTER_HOME": str(home),
    }.items():
        monkeypatch.setenv(key, value)
    stack = db.bootstrap()
    monkeypatch.setenv("QBO_PIPELINES_DAGSTER_PG_URL", stack.dagster_url)
    warehouse = db.make_engine(stack.warehouse_url)
    source = db.make_engine(stack.source_app_url)
    try:
        with run_sandbox(throttle=False) as sb:
            for key, value in {
                ENV_CLIENT_ID: sb.client_id,
                ENV_CLIENT_SECRET: sb.client_secret,
                ENV_API_URL: sb.base_url,
                ENV_OAUTH_URL: sb.base_url,
            }.items():
                monkeypatch.setenv(key, value)
            yield UserStack(dict(os.environ), warehouse, source, sb, home)
    finally:
        _stop_code_servers(tmp_path)
        warehouse.dispose()
        source.dispose()
        for logical in postgres.LOGICAL_DATABASES:
            postgres.drop_database(pg_server, f"{prefix}{logical}")


def _stop_code_servers(tmp_path: Path) -> None:
    """Stop the ``dagster api grpc`` code servers this test's runs started (their instance ref
    names paths under its ``tmp_path``) before its databases are dropped. Left alone, a server
    whose runs ended looks them up in the dropped run storage, its cleanup thread dies on the
    error, and it outlives the suite (it heeds neither its heartbeat nor SIGTERM then)."""
    mine = str(tmp_path) + os.sep
    for proc in psutil.process_iter(["cmdline"]):
        cmd = proc.info.get("cmdline") or []
        if "api" in cmd and "grpc" in cmd and any(mine in part for part in cmd):
            with contextlib.suppress(psutil.Error):
                proc.kill()
                proc.wait(timeout=10)
