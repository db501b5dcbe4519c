"""The embedded Postgres starts from nothing, is reused, and the external URL is honoured."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa

from qbo_pipelines import settings
from qbo_pipelines.warehouse import postgres

PROBE = """
import json
from qbo_pipelines.warehouse import postgres
pg = postgres.ensure_databases()
print(json.dumps({"pid": postgres.embedded_pid(), "url": pg.url_str("warehouse"),
                  "embedded": pg.embedded}))
"""


def _probe(env: dict[str, str]) -> dict[str, object]:
    out = subprocess.run(
        [sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, check=True
    )
    result: dict[str, object] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


@pytest.fixture
def short_data_dir() -> Path:
    import shutil
    import tempfile

    path = Path(tempfile.mkdtemp(prefix="qbp"))
    yield path
    postgres.stop_embedded(path / "pg")
    shutil.rmtree(path, ignore_errors=True)


def test_embedded_starts_from_nothing_and_is_reused(short_data_dir: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != settings.ENV_PG_URL}
    env[settings.ENV_DATA_DIR] = str(short_data_dir)
    first = _probe(env)
    assert first["embedded"] is True
    assert first["pid"] is not None
    second = _probe(env)
    assert second["pid"] == first["pid"], "a second start must reuse the running server"
    engine = sa.create_engine(str(second["url"]))
    with engine.connect() as conn:
        names = set(conn.execute(sa.text("SELECT datname FROM pg_database")).scalars())
    engine.dispose()
    assert {"dagster", "warehouse", "source_app"} <= names


def test_external_url_is_honoured(
    pg_server: postgres.PgServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # Point the override at the session's real server; the embedded one must not be used.
    external = pg_server.url_str("postgres", driver="psycopg")
    monkeypatch.setenv(settings.ENV_PG_URL, external.replace("postgresql+psycopg", "postgresql"))
    monkeypatch.setenv(settings.ENV_DATA_DIR, str(tmp_path / "unused"))
    monkeypatch.setenv(settings.ENV_DB_PREFIX, "ext_")
    pg = postgres.ensure_databases()
    try:
        assert pg.embedded is False
        assert not (tmp_path / "unused" / "pg").exists()
        assert postgres.database_url("warehouse", pg=pg).endswith(
            pg.url("ext_warehouse").render_as_string(hide_password=False).split("/")[-1]
        )
        engine = sa.create_engine(pg.url("ext_warehouse"))
        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT current_database()")).scalar() == "ext_warehouse"
        engine.dispose()
    finally:
        for logical in postgres.LOGICAL_DATABASES:
            postgres.drop_database(pg, f"ext_{logical}")


def test_bad_external_url_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(settings.ENV_PG_URL, "mysql://nope")
    with pytest.raises(postgres.PostgresError, match="postgresql://"):
        postgres.server()
