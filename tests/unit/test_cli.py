"""The CLI answers bad input with one clear line, never a traceback."""

import os
import subprocess
import sys


def _run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "qbo_pipelines.cli", *args], env=env,
                          capture_output=True, text=True, timeout=120)


def test_R30_sync_push_without_a_configured_app_is_a_clear_error() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("QBO_PIPELINES_QBO_")}
    result = _run("sync", "push", env=env)
    assert result.returncode == 2
    assert "QBO_PIPELINES_QBO_CLIENT_ID" in result.stderr
    assert "Traceback" not in result.stderr


def test_help_lists_every_area() -> None:
    result = _run("--help")
    assert result.returncode == 0
    for command in ("db", "dev", "demo-run", "sandbox", "connect", "demo", "mappings", "sync"):
        assert command in result.stdout
