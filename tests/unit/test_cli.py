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


def test_output_into_a_pipe_closed_early_ends_quietly(
    pg_server: postgres.PgServer, tmp_path: Path
) -> None:
    """``qbo-pipelines ... | head -1``: the reader goes away before the output is written; the
    command stops without a traceback, with the shell's code for it (found by an attack:
    ``mappings set ... | head -1`` ended in a BrokenPipeError traceback)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "qbo_pipelines.cli", "db", "url"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=_fresh_env(pg_server, tmp_path, f"cli{uuid.uuid4().hex[:6]}_"),
    )
    assert proc.stdout is not None
    assert proc.stderr is not None
    proc.stdout.close()  # long before the interpreter has started and printed
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=60) == 141
    assert "Traceback" not in err, err
    assert "BrokenPipe" not in err, err


def _fresh_env(pg_server: postgres.PgServer, tmp_path: Path, prefix: str) -> dict[str, str]:
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("QBO_PIPELINES_", "DAGSTER_"))
    }
    env[settings.ENV_PG_URL] = pg_server.url_str("postgres").replace(
        "postgresql+psycopg", "postgresql"
    )
    env[settings.ENV_DB_PREFIX] = prefix
    env[settings.ENV_DATA_DIR] = str(tmp_path)
    return env


def test_numbers_out_of_range_are_one_line_usage_errors(
    pg_server: postgres.PgServer, tmp_path: Path
) -> None:
    """Counts, rates, ports and ids a command cannot use are refused by the parser, before
    anything runs: a negative seed count once moved the contacts' id sequence below existing
    rows (every later insert then failed), a huge one overflowed Postgres with a traceback."""
    prefix = f"cli{uuid.uuid4().hex[:6]}_"
    env = _fresh_env(pg_server, tmp_path, prefix)
    cases = [
        ("demo", "seed", "--contacts", "-5", "--sales", "10"),
        ("demo", "seed", "--contacts", "99999999999999999999", "--sales", "1"),
        ("demo", "simulate", "--rate", "0"),
        ("demo", "simulate", "--rate", "nan"),
        ("demo", "simulate", "--duration", "-1"),
        ("report", "--history", "99999999999999999999"),
        ("sandbox", "--port", "70000"),
        ("notify", "remove", "99999999999999999999"),
        ("notify", "add-email", "--to", "ops@example.com", "--smtp-port", "99999999"),
        ("connect", "--timeout", "-1"),
        ("connect", "--timeout", "nan"),
    ]
    try:
        for case in cases:
            result = _run(*case, env=env)
            assert result.returncode == 2, (case, result.stderr)
            assert "Traceback" not in result.stderr, case
            [line] = result.stderr.strip().splitlines()  # one line, no usage dump
            assert line.startswith("error:"), (case, line)
            assert "argument" in line, (case, line)
    finally:
        for logical in postgres.LOGICAL_DATABASES:
            postgres.drop_database(pg_server, f"{prefix}{logical}")


def test_materialize_refuses_a_selection_it_cannot_run_in_one_line(
    pg_server: postgres.PgServer, tmp_path: Path
) -> None:
    """No asset, a per-company asset without a company, or a push asset without the stage
    whose snapshot it writes: one line saying what to do, before Dagster starts a run."""
    prefix = f"cli{uuid.uuid4().hex[:6]}_"
    env = _fresh_env(pg_server, tmp_path, prefix)
    try:
        cases = {
            ("--select", "nonexistent/asset"): "the assets are backfill/qbo/<name>",
            ("--select", "x" * 5000): "'" + "x" * 60 + "...'",
            ("--select", "pushed/qbo/items"): "staged/qbo/items",
            ("--select", "raw/source/items,staged/qbo/items"): "--partition",
            ("--select", "staged/qbo/items", "--partition", "123"): "not connected",
            ("--select", "backfill/qbo/payments"): "--partition '<realm id>|<YYYY-MM-DD>'",
            ("--select", "backfill/qbo/payments,staged/qbo/items"): "materialize them separately",
            ("--select", "backfill/qbo/payments", "--partition", "123|2026-11-20"): "not connected",
            ("--select", "staged/qbo/items", "--partition", "9" * 5000): "'" + "9" * 40 + "...'",
        }
        for args, expected in cases.items():
            result = _run("materialize", *args, env=env)
            assert result.returncode == 2, (args, result.stderr)
            assert "Traceback" not in result.stderr, args
            assert expected in result.stderr, (args, result.stderr)
            assert len(result.stderr) < 1000, args  # a value typed by hand is never echoed whole
    finally:
        for logical in postgres.LOGICAL_DATABASES:
            postgres.drop_database(pg_server, f"{prefix}{logical}")


def test_delete_missing_without_full_is_a_one_line_error(
    pg_server: postgres.PgServer, tmp_path: Path
) -> None:
    """`--delete-missing` acts on what a full read finds missing: alone it is refused, in one
    line, before any run is queued."""
    prefix = f"cli{uuid.uuid4().hex[:6]}_"
    env = _fresh_env(pg_server, tmp_path, prefix)
    try:
        result = _run("sync", "push", "--delete-missing", env=env)
        assert result.returncode == 2, result.stderr
        [line] = result.stderr.strip().splitlines()
        assert line == (
            "error: --delete-missing goes with --full (a full read finds what is missing)"
        ), line
        assert "--delete-missing" in _run("sync", "push", "--help", env=env).stdout
    finally:
        for logical in postgres.LOGICAL_DATABASES:
            postgres.drop_database(pg_server, f"{prefix}{logical}")
