"""Fixtures of the reconciliation tests: see reconcilebed.py."""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest
from cryptography.fernet import Fernet
from reconcilebed import ReconcileBed

from qbo_pipelines import settings
from qbo_pipelines.canonical import RealmId
from qbo_pipelines.demo import setup
from qbo_pipelines.qbo.app import ENV_API_URL, ENV_CLIENT_ID, ENV_CLIENT_SECRET, ENV_OAUTH_URL
from qbo_pipelines.qbo.auth import ENV_TOKEN_KEY
from qbo_pipelines.qbo.secret import Secret
from qbo_pipelines.sandbox.testing import run_sandbox
from qbo_pipelines.source_app import demo
from qbo_pipelines.sync import pipeline
from qbo_pipelines.sync.env import QboApp, SyncEnv
from qbo_pipelines.warehouse import db, postgres

FAST_CLIENT = {"backoff_base": 0.01, "throttle_backoff_base": 0.01, "backoff_max": 0.05}


@pytest.fixture
def bed(
    pg_server: postgres.PgServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[ReconcileBed]:
    prefix = f"rc{uuid.uuid4().hex[:6]}_"
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(settings.DAGSTER_HOME / "dagster.yaml", home / "dagster.yaml")
    base = pg_server.url_str("postgres").replace("postgresql+psycopg", "postgresql")
    for key in [k for k in os.environ if k.startswith("QBO_PIPELINES_QBO_")]:
        monkeypatch.delenv(key)
    monkeypatch.setenv(settings.ENV_PG_URL, base)
    monkeypatch.setenv(settings.ENV_DB_PREFIX, prefix)
    monkeypatch.setenv(settings.ENV_DATA_DIR, str(tmp_path / "data"))
    monkeypatch.setenv(ENV_TOKEN_KEY, Fernet.generate_key().decode())
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    stack = db.bootstrap()
    monkeypatch.setenv("QBO_PIPELINES_DAGSTER_PG_URL", stack.dagster_url)
    warehouse = db.make_engine(stack.warehouse_url)
    source = db.make_engine(stack.source_app_url)
    instance = dg.DagsterInstance.from_config(str(home))
    try:
        demo.seed(source, contacts=30, sales=45, workers=4, seed_value=11)
        with run_sandbox(throttle=False) as sb:
            for key, value in (
                (ENV_CLIENT_ID, sb.client_id),
                (ENV_CLIENT_SECRET, sb.client_secret),
                (ENV_API_URL, sb.base_url),
                (ENV_OAUTH_URL, sb.base_url),
            ):
                monkeypatch.setenv(key, value)
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
            pipeline.push_all(env, realm, run_id="push-1")  # a full two-way sync
            pipeline.pull_all(env, realm, run_id="pull-1")
            yield ReconcileBed(env, sb, realm, instance)
    finally:
        instance.dispose()
        warehouse.dispose()
        source.dispose()
        for logical in postgres.LOGICAL_DATABASES:
            postgres.drop_database(pg_server, f"{prefix}{logical}")
