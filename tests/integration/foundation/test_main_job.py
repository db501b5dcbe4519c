"""The README's run command end to end (small data), twice: a full two-way sync (push, a
bookkeeper's changes in QBO, pull), then a second run that writes nothing on either side and
reads QBO once (the CDC safety net)."""

import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from qbo_pipelines import settings
from qbo_pipelines.warehouse import postgres


@pytest.mark.slow
def test_R11_R33_main_job_pushes_the_demo_then_is_idempotent(
    pg_server: postgres.PgServer, tmp_path: Path
) -> None:
    prefix = f"mj{os.getpid()}_"
    env = {  # the demo configures its own QBO app: none inherited from an earlier test
        **{k: v for k, v in os.environ.items() if not k.startswith("QBO_PIPELINES_QBO_")},
        settings.ENV_PG_URL: pg_server.url_str("postgres").replace(
            "postgresql+psycopg", "postgresql"
        ),
        settings.ENV_DB_PREFIX: prefix,
        settings.ENV_DATA_DIR: str(tmp_path),
    }
    cmd = [
        sys.executable,
        "-m",
        "qbo_pipelines.cli",
        "demo-run",
        "--contacts",
        "25",
        "--sales",
        "40",
        "--workers",
        "3",
    ]
    try:
        first = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
        assert first.returncode == 0, first.stderr[-3000:]
        assert "succeeded" in first.stdout
        assert "pushed/qbo/invoices" in first.stdout
        assert "Luxury 25%" in first.stdout  # the held-back reason is shown
        assert "bookkeeper in QBO" in first.stdout
        pulled = [
            ln.split()
            for ln in first.stdout.splitlines()
            if ln.strip().startswith("pushed/source/")
        ]
        assert pulled
        assert sum(int(r[1]) + int(r[2]) for r in pulled) > 0, first.stdout
        second = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
        assert second.returncode == 0, second.stderr[-3000:]
        assert "reusing the existing data" in second.stdout
        rows = [
            ln.split() for ln in second.stdout.splitlines() if ln.strip().startswith("pushed/qbo/")
        ]
        assert rows
        for row in rows:
            created, updated = int(row[1]), int(row[2])
            api_calls = int(row[-1])
            assert (created, updated, api_calls) == (0, 0, 0), row
        pulled = [
            ln.split()
            for ln in second.stdout.splitlines()
            if ln.strip().startswith("pushed/source/")
        ]
        assert pulled
        for row in pulled:
            if row[0] != "pushed/source/customer_transactions":
                assert (int(row[1]), int(row[2])) == (0, 0), row
        assert "with 1 API reads" in second.stdout, second.stdout
        _backfill_from_the_cli(pg_server, prefix, env)
    finally:
        for logical in postgres.LOGICAL_DATABASES:
            postgres.drop_database(pg_server, f"{prefix}{logical}")


def _backfill_from_the_cli(pg_server: postgres.PgServer, prefix: str, env: dict[str, str]) -> None:
    """R39 from the command line: one day of one company's QBO payments re-read and written
    back (the demo's sandbox served for the command, as `sync push` does); a day out of range is
    a one-line error."""
    import sqlalchemy as sa

    engine = sa.create_engine(pg_server.url(f"{prefix}warehouse"))
    try:
        with engine.connect() as conn:
            realm = conn.execute(sa.text("SELECT realm_id FROM sync.companies")).scalar_one()
    finally:
        engine.dispose()
    today = datetime.now(UTC).date().isoformat()

    def materialize(partition: str) -> subprocess.CompletedProcess[str]:
        args = ["materialize", "--select", "backfill/qbo/payments", "--partition", partition]
        cmd = [sys.executable, "-m", "qbo_pipelines.cli", *args]
        return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)

    ran = materialize(f"{realm}|{today}")
    assert ran.returncode == 0, ran.stderr[-3000:]
    assert "dg launch" not in ran.stderr  # no pointer to a command the README never names
    # tomorrow (QBO's today may be ahead of ours) is a day too: before, the check let it
    # through and Dagster refused it with a traceback
    tomorrow = (datetime.now(UTC).date() + timedelta(days=1)).isoformat()
    ahead = materialize(f"{realm}|{tomorrow}")
    assert ahead.returncode == 0, ahead.stderr[-3000:]
    later = (datetime.now(UTC).date() + timedelta(days=2)).isoformat()
    for day in ("1999-01-01", later):
        refused = materialize(f"{realm}|{day}")
        assert refused.returncode == 2, refused.stderr[-2000:]
        assert "Traceback" not in refused.stderr
        [line] = refused.stderr.strip().splitlines()
        assert "a backfill day is from 2015-01-01" in line, line
