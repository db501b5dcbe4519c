"""The CLI as a user runs it: its own databases (a prefix on the test server), a data directory,
a Dagster home, and a QBO sandbox over HTTP with a second company to choose at consent."""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from opsbed import OpsStack, free_port

from qbo_pipelines import settings
from qbo_pipelines.qbo.app import ENV_API_URL, ENV_CLIENT_ID, ENV_CLIENT_SECRET, ENV_OAUTH_URL
from qbo_pipelines.qbo.auth import ENV_TOKEN_KEY
from qbo_pipelines.sandbox.testing import run_sandbox
from qbo_pipelines.warehouse import db, postgres


@pytest.fixture
def ops(
    pg_server: postgres.PgServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[OpsStack]:
    prefix = f"ops{uuid.uuid4().hex[:6]}_"
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(settings.DAGSTER_HOME / "dagster.yaml", home / "dagster.yaml")
    base = pg_server.url_str("postgres").replace("postgresql+psycopg", "postgresql")
    values = {
        settings.ENV_PG_URL: base,
        settings.ENV_DB_PREFIX: prefix,
        settings.ENV_DATA_DIR: str(tmp_path / "data"),
        ENV_TOKEN_KEY: Fernet.generate_key().decode(),
        "DAGSTER_HOME": str(home),
    }
    for key in [k for k in os.environ if k.startswith("QBO_PIPELINES_QBO_")]:
        monkeypatch.delenv(key)
    for key, value in values.items():
        monkeypatch.setenv(key, value)
    stack = db.bootstrap()
    monkeypatch.setenv("QBO_PIPELINES_DAGSTER_PG_URL", stack.dagster_url)
    warehouse = db.make_engine(stack.warehouse_url)
    source = db.make_engine(stack.source_app_url)
    redirect = f"http://127.0.0.1:{free_port()}/callback"
    try:
        with run_sandbox(throttle=False) as sb:
            sb.control.register_app(sb.client_id, sb.client_secret, [redirect], name="ops tests")
            second = sb.control.create_company("Second Company")
            # The app, as a user exports it before `connect` (later commands find it stored).
            monkeypatch.setenv(ENV_CLIENT_ID, sb.client_id)
            monkeypatch.setenv(ENV_CLIENT_SECRET, sb.client_secret)
            monkeypatch.setenv(ENV_API_URL, sb.base_url)
            monkeypatch.setenv(ENV_OAUTH_URL, sb.base_url)
            yield OpsStack(dict(os.environ), warehouse, source, sb, second, redirect)
    finally:
        warehouse.dispose()
        source.dispose()
        for logical in postgres.LOGICAL_DATABASES:
            postgres.drop_database(pg_server, f"{prefix}{logical}")
