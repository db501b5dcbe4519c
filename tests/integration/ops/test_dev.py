"""``qbo-pipelines dev`` (``make dev``): the Dagster UI and daemon with the demo's sandbox served
where the stored app and the companies' tokens expect it, and nothing left running once it is
told to stop (SIGTERM, as a service manager or ``kill`` stops it)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
from opsbed import free_port
from pushbed import UserStack

from qbo_pipelines.demo.run import demo_control_token, start_demo_sandbox
from qbo_pipelines.demo.setup import persist_demo_app
from qbo_pipelines.qbo.app import QboApp
from qbo_pipelines.sandbox.control import TOKEN_HEADER, SandboxControl


def _answers(url: str, headers: dict[str, str] | None = None) -> bool:
    try:
        return requests.get(url, headers=headers or {}, timeout=2).status_code == 200  # noqa: PLR2004
    except requests.RequestException:
        return False


def _until(check: object, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():  # type: ignore[operator]
            return True
        time.sleep(0.5)
    return False


def _group(pgid: int) -> list[int]:
    """The live processes of process group ``pgid``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[2]) == pgid and fields[0] != "Z":
            found.append(int(entry.name))
    return found


def _children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(p) for p in path.read_text().split()] if path.exists() else []


@pytest.mark.slow
def test_R30_dev_serves_the_demo_sandbox_where_the_tokens_expect_it_and_sigterm_stops_everything(
    user_stack: UserStack, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for key in [k for k in os.environ if k.startswith("QBO_PIPELINES_QBO_")]:
        monkeypatch.delenv(key)  # as after make demo: the stored app only
    _, server = start_demo_sandbox(0)
    control = SandboxControl(server.base_url, token=demo_control_token())
    try:
        persist_demo_app(user_stack.warehouse, control, server.base_url)
    finally:
        control.close()
        server.stop()
    for key in [k for k in os.environ if k.startswith("QBO_PIPELINES_QBO_")]:
        monkeypatch.delenv(key)
    stored = QboApp.resolve(user_stack.warehouse).api_url
    info = stored + "/_sandbox/info"
    token = {TOKEN_HEADER: demo_control_token()}
    assert not _answers(info, token)

    ui = free_port()
    console = tmp_path / "dev.log"
    with console.open("wb") as out:
        # started in the background as a shell's `&` starts it: SIGINT ignored
        dev = subprocess.Popen(
            [sys.executable, "-m", "qbo_pipelines.cli", "dev", "--port", str(ui)],
            env=dict(os.environ),
            stdout=out,
            stderr=subprocess.STDOUT,
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN),  # noqa: PLW1509
        )
    try:
        assert _until(lambda: _answers(info, token), 60), "the sandbox is not at the stored URL"
        assert _until(lambda: _answers(f"http://127.0.0.1:{ui}/server_info"), 180), "no UI"
        [dagster] = _children(dev.pid)
        running = _group(dagster)
        assert len(running) >= 2  # dagster dev, its webserver, daemon, code servers
        dev.send_signal(signal.SIGTERM)
        dev.wait(timeout=120)
    finally:
        if dev.poll() is None:  # the test failed: leave nothing behind either
            for pid in _children(dev.pid):
                os.killpg(pid, signal.SIGKILL)
            dev.kill()
    assert _group(dagster) == []  # nothing outlives dev
    # Dagster stopped by itself when asked, not killed at the deadline (it ignored SIGTERM
    # and SIGINT when dev was started in the background, found by an attack)
    assert "Dagster services shut down." in console.read_text(errors="replace")
    assert not _answers(f"http://127.0.0.1:{ui}/server_info")
    assert not _answers(info, token)  # the sandbox stopped too, its state saved
