"""Shared fixtures: real Postgres (embedded or external) and the QBO sandbox over real HTTP.

Every test session works in throw-away databases named ``t<hex>_<purpose>`` on the configured
server, so concurrent sessions and the developer's own ``.data`` databases never collide.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator

import pytest
import sqlalchemy as sa
from cryptography.fernet import Fernet
from pushbed import PushBed

from qbo_pipelines.canonical import RealmId
from qbo_pipelines.demo import setup
from qbo_pipelines.qbo.auth import ENV_TOKEN_KEY
from qbo_pipelines.qbo.secret import Secret
from qbo_pipelines.sandbox.testing import run_sandbox
from qbo_pipelines.source_app import demo
from qbo_pipelines.sync.env import QboApp, SyncEnv
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


@pytest.fixture
def temp_database(pg_server: postgres.PgServer) -> Iterator[Callable[[str], sa.Engine]]:
    """Factory: a brand-new empty database dropped (connections closed) when the test ends."""
    created: list[tuple[str, sa.Engine]] = []

    def factory(purpose: str) -> sa.Engine:
        name = f"{SESSION_TAG}_{purpose}_{uuid.uuid4().hex[:6]}"
        postgres.create_database(pg_server, name)
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


FAST_CLIENT = {"backoff_base": 0.01, "throttle_backoff_base": 0.01, "backoff_max": 0.05}


@pytest.fixture
def push_bed(
    temp_database: Callable[[str], sa.Engine], monkeypatch: pytest.MonkeyPatch
) -> Iterator[PushBed]:
    monkeypatch.setenv(ENV_TOKEN_KEY, Fernet.generate_key().decode())
    warehouse = temp_database("pushwh")
    migrations.migrate_warehouse(warehouse)
    source = temp_database("pushsrc")
    migrations.migrate_source_app(source)
    demo.seed(source, contacts=30, sales=45, workers=4, seed_value=11)
    with run_sandbox() as sb:
        app = QboApp(
            client_id=sb.client_id,
            client_secret=Secret(sb.client_secret),
            api_url=sb.base_url,
            oauth_url=sb.base_url,
            redirect_uri=sb.redirect_uri,
        )
        env = SyncEnv(warehouse, source, app, client_options=FAST_CLIENT)
        realm = RealmId(sb.realm_id)
        setup.prepare_sandbox_company(sb.control, realm)
        setup.connect_with_tokens(env, realm, sb.control.mint_tokens(realm), sb.base_url)
        setup.apply_demo_mappings(env, realm)
        yield PushBed(env, sb, realm)
