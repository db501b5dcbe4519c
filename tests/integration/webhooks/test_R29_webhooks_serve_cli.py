"""R29: ``qbo-pipelines webhooks serve`` as an operator runs it: a real subprocess on its own
warehouse databases, bound to 127.0.0.1, refusing to start without the verifier token."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import uuid
from pathlib import Path

import requests
import sqlalchemy as sa
from webhookbed import VERIFIER, Connector, wait_for

from qbo_pipelines import settings
from qbo_pipelines.sandbox.testing import SandboxHandle
from qbo_pipelines.warehouse import postgres
from qbo_pipelines.webhooks import inbox
from qbo_pipelines.webhooks.cli import ENV_WEBHOOK_VERIFIER
from qbo_pipelines.webhooks.verify import signature

# The console script an operator runs (installed next to the interpreter in .venv/bin).
SERVE = [str(Path(sys.executable).parent / "qbo-pipelines"), "webhooks", "serve"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def listening_addresses(port: int) -> set[str]:
    """Local addresses with a TCP socket in LISTEN state on ``port`` (from /proc/net)."""
    found: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        lines = Path(table).read_text().splitlines()[1:] if Path(table).exists() else []
        for line in lines:
            local, state = line.split()[1], line.split()[3]
            address, hex_port = local.split(":")
            if state == "0A" and int(hex_port, 16) == port:
                found.add(address)
    return found


def test_R29_serve_refuses_to_start_without_the_verifier_token(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != ENV_WEBHOOK_VERIFIER}
    env[settings.ENV_DATA_DIR] = str(tmp_path)
    env[settings.ENV_PG_URL] = "postgresql://nobody@127.0.0.1:1/never-contacted"
    done = subprocess.run(
        [*SERVE, "--port", str(free_port())], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2
    assert done.stdout == ""
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("error: set QBO_PIPELINES_QBO_WEBHOOK_VERIFIER")
    assert "Traceback" not in done.stderr


def test_R29_serve_binds_loopback_and_stores_signed_events(
    pg_server: postgres.PgServer, sandbox: SandboxHandle, tmp_path: Path
) -> None:
    prefix = f"wh{uuid.uuid4().hex[:6]}_"
    port = free_port()
    env = {
        **os.environ,
        settings.ENV_PG_URL: pg_server.url_str("postgres").replace(
            "postgresql+psycopg", "postgresql"
        ),
        settings.ENV_DB_PREFIX: prefix,
        settings.ENV_DATA_DIR: str(tmp_path),
        ENV_WEBHOOK_VERIFIER: VERIFIER.reveal(),
    }
    out, err = tmp_path / "stdout", tmp_path / "stderr"
    engine: sa.Engine | None = None
    with out.open("w") as stdout, err.open("w") as stderr:
        process = subprocess.Popen(
            [*SERVE, "--port", str(port)], env=env, stdout=stdout, stderr=stderr
        )
    base = f"http://127.0.0.1:{port}"
    try:

        def healthy() -> bool:
            assert process.poll() is None, err.read_text()  # died while starting
            try:
                return requests.get(base + "/healthz", timeout=2).status_code == 200
            except requests.ConnectionError:
                return False

        assert wait_for(healthy, timeout=90), err.read_text()
        assert listening_addresses(port) == {"0100007F"}  # 127.0.0.1 only
        assert f"webhook receiver: {base}/webhooks/qbo" in out.read_text()

        engine = sa.create_engine(pg_server.url(f"{prefix}warehouse"))
        realm = Connector(engine)(sandbox)
        body = json.dumps(
            {
                "eventNotifications": [
                    {
                        "realmId": realm,
                        "dataChangeEvent": {
                            "entities": [
                                {
                                    "name": "Customer",
                                    "id": "1",
                                    "operation": "Update",
                                    "lastUpdated": "2024-01-02T03:04:05.000Z",
                                }
                            ]
                        },
                    }
                ]
            }
        ).encode()
        url = base + "/webhooks/qbo"
        forged = requests.post(url, data=body, headers={"intuit-signature": "Zm9yZ2Vk"}, timeout=5)
        assert forged.status_code == 401
        signed = {"intuit-signature": signature(VERIFIER, body)}
        assert requests.post(url, data=body, headers=signed, timeout=5).status_code == 200
        assert inbox.pending(engine) == {realm: {"Customer": {"1"}}}
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=20)
        finally:
            if process.poll() is None:
                process.kill()
            if engine is not None:
                engine.dispose()
            for logical in postgres.LOGICAL_DATABASES:
                postgres.drop_database(pg_server, f"{prefix}{logical}")
    logs = out.read_text() + err.read_text()
    assert process.returncode == 0, logs
    assert "invalid intuit-signature" in logs
    assert VERIFIER.reveal() not in logs
    assert "Traceback" not in logs
