"""``make demo`` as a user runs it, on its own databases (a prefix on the test server), data
directory and QBO sandbox: the push, the sandbox bookkeeper's day in QBO, the pull through
Dagster, then the marts built through the Dagster dbt assets. The marts tests read what it left.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from cryptography.fernet import Fernet
from martsbed import DemoStack, free_port

from qbo_pipelines import settings
from qbo_pipelines.qbo.auth import ENV_TOKEN_KEY
from qbo_pipelines.warehouse import db, postgres


@pytest.fixture(scope="package")
def demo_stack(
    pg_server: postgres.PgServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[DemoStack]:
    from qbo_pipelines.demo.run import DemoOptions, run

    prefix = f"marts{uuid.uuid4().hex[:6]}_"
    data = Path(tmp_path_factory.mktemp("marts_demo"))
    saved = dict(os.environ)
    for key in [k for k in os.environ if k.startswith("QBO_PIPELINES_QBO_")]:
        del os.environ[key]
    os.environ.update(
        {
            settings.ENV_PG_URL: pg_server.url_str("postgres").replace(
                "postgresql+psycopg", "postgresql"
            ),
            settings.ENV_DB_PREFIX: prefix,
            settings.ENV_DATA_DIR: str(data),
            ENV_TOKEN_KEY: Fernet.generate_key().decode(),
        }
    )
    port = free_port()
    output: list[str] = []
    stack = None
    try:
        code = run(DemoOptions(contacts=30, sales=60, workers=4, port=port), out=output.append)
        stack = db.bootstrap()
        warehouse = db.make_engine(stack.warehouse_url)
        source = db.make_engine(stack.source_app_url)
        with warehouse.connect() as conn:
            realm = conn.execute(sa.text("SELECT realm_id FROM sync.companies")).scalar_one()
        yield DemoStack(warehouse, source, realm, port, output, code, dict(os.environ))
        warehouse.dispose()
        source.dispose()
    finally:
        os.environ.clear()
        os.environ.update(saved)
        for logical in postgres.LOGICAL_DATABASES:
            postgres.drop_database(pg_server, f"{prefix}{logical}")
