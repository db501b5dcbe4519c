"""Shared fixtures: real Postgres (embedded or external) and the QBO sandbox over real HTTP.

Every test session works in throw-away databases named ``t<hex>_<purpose>`` on the configured
server, so concurrent sessions and the developer's own ``.data`` databases never collide.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator

import pytest
import sqlalchemy as sa

from qbo_pipelines.warehouse import migrations, postgres

SESSION_TAG = f"t{uuid.uuid4().hex[:8]}"


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
