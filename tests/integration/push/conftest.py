"""A complete push bed: fresh warehouse, demo source app, sandbox company, tokens, mappings."""

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
from qbo_pipelines.warehouse import migrations

FAST_CLIENT = {"backoff_base": 0.01, "throttle_backoff_base": 0.01, "backoff_max": 0.05}


@pytest.fixture
def push_bed(
    make_database: Callable[[str], sa.Engine], monkeypatch: pytest.MonkeyPatch
) -> Iterator[PushBed]:
    monkeypatch.setenv(ENV_TOKEN_KEY, Fernet.generate_key().decode())
    warehouse = make_database("pushwh")
    migrations.migrate_warehouse(warehouse)
    source = make_database("pushsrc")
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
