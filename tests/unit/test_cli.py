"""The CLI answers bad input with one clear line, never a traceback."""

import os
import subprocess
import sys
import uuid
from pathlib import Path

from qbo_pipelines import settings
from qbo_pipelines.warehouse import postgres


def _run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "qbo_pipelines.cli", *args], env=env,
                          capture_output=True, text=True, timeout=120)


def test_R30_sync_push_without_a_configured_app_is_a_clear_error(
    pg_server: postgres.PgServer, tmp_path: Path
) -> None:
    """A brand-new install (its own empty databases, nothing stored, no app variables)."""
    prefix = f"cli{uuid.uuid4().hex[:6]}_"
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("QBO_PIPELINES_", "DAGSTER_"))
    }
    env[settings.ENV_PG_URL] = pg_server.url_str("postgres").replace(
        "postgresql+psycopg", "postgresql"
    )
    env[settings.ENV_DB_PREFIX] = prefix
    env[settings.ENV_DATA_DIR] = str(tmp_path)
    try:
        result = _run("sync", "push", env=env)
    finally:
        for logical in postgres.LOGICAL_DATABASES:
            postgres.drop_database(pg_server, f"{prefix}{logical}")
    assert result.returncode == 2
    assert "QBO_PIPELINES_QBO_CLIENT_ID" in result.stderr
    assert "Traceback" not in result.stderr


def test_help_lists_every_area() -> None:
    result = _run("--help")
    assert result.returncode == 0
    for command in ("db", "dev", "demo-run", "sandbox", "connect", "demo", "mappings", "sync"):
        assert command in result.stdout
