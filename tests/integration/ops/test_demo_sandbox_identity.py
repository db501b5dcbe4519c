"""Commands run after ``make demo`` serve the demo's own sandbox when it is not running; a
different server answering on the demo's port (another checkout's sandbox, anything) is never
taken for it: it would be handed the demo company's tokens, refuse them, and the company would
need reconnecting (seen once while another test session held port 8765)."""

from __future__ import annotations

import os
import stat

import pytest
from opsbed import connect_by_consent, free_port
from pushbed import UserStack

from qbo_pipelines.demo.run import (
    demo_control_token,
    sandbox_state_file,
    sandbox_token_file,
    start_demo_sandbox,
)
from qbo_pipelines.demo.setup import demo_sandbox_served, persist_demo_app
from qbo_pipelines.qbo.app import QboApp, save_app
from qbo_pipelines.qbo.secret import Secret
from qbo_pipelines.sandbox.control import SandboxControl
from qbo_pipelines.sandbox.state import DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET
from qbo_pipelines.sandbox.testing import run_sandbox
from qbo_pipelines.sync import env as sync_env

APP_VARS = (
    sync_env.ENV_CLIENT_ID,
    sync_env.ENV_CLIENT_SECRET,
    sync_env.ENV_API_URL,
    sync_env.ENV_OAUTH_URL,
)


def _as_after_make_demo(monkeypatch: pytest.MonkeyPatch) -> None:
    """No QBO app in the environment: commands use the app ``make demo`` stored."""
    for key in APP_VARS:
        monkeypatch.delenv(key, raising=False)


def _store(stack: UserStack, base_url: str) -> None:
    app = QboApp(
        client_id=DEFAULT_CLIENT_ID,
        client_secret=Secret(DEFAULT_CLIENT_SECRET),
        api_url=base_url,
        oauth_url=base_url,
    )
    save_app(stack.warehouse, app, origin="demo-sandbox")


def test_a_foreign_server_on_the_demo_port_is_never_taken_for_the_demo_sandbox(
    user_stack: UserStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, ours = start_demo_sandbox(0)  # the demo's sandbox, its state saved as make demo does
    ours.stop()
    assert sandbox_state_file().exists()
    assert stat.S_IMODE(os.stat(sandbox_token_file()).st_mode) == 0o600
    _as_after_make_demo(monkeypatch)

    with run_sandbox(throttle=False) as foreign:  # something else answers on the stored port
        _store(user_stack, foreign.base_url)
        with demo_sandbox_served(user_stack.warehouse) as served:
            _as_after_make_demo(monkeypatch)
            assert served is not None
            assert served != foreign.base_url
            assert QboApp.resolve(user_stack.warehouse).api_url == served  # the URLs follow

    # The demo's own sandbox already running (make dev): used as it is, nothing started.
    _, running = start_demo_sandbox(0)
    try:
        _as_after_make_demo(monkeypatch)
        _store(user_stack, running.base_url)
        with demo_sandbox_served(user_stack.warehouse) as served:
            assert served is None
    finally:
        running.stop()


def test_a_connect_after_make_demo_keeps_later_commands_serving_the_demo_sandbox(
    user_stack: UserStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``connect`` (also the README's reconnect) serves the demo's sandbox for its consent; the
    app it stores stays the demo's, so the next command serves the sandbox again (it stored the
    app as the environment's and later commands found nothing answering)."""
    _as_after_make_demo(monkeypatch)
    sandbox, server = start_demo_sandbox(0)
    redirect = f"http://127.0.0.1:{free_port()}/callback"
    control = SandboxControl(server.base_url, token=demo_control_token())
    try:
        control.register_app(DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, [redirect])
        persist_demo_app(user_stack.warehouse, control, server.base_url)
    finally:
        control.close()
        server.stop()
    _as_after_make_demo(monkeypatch)

    realm = sandbox.store.default_realm
    done = connect_by_consent(dict(os.environ), realm, "--redirect-uri", redirect)
    assert done.returncode == 0, done.stderr
    assert "serving the demo's QBO sandbox" in done.stdout
    with user_stack.warehouse.connect() as conn:
        assert conn.exec_driver_sql("SELECT origin FROM sync.qbo_app").scalar() == "demo-sandbox"
    with demo_sandbox_served(user_stack.warehouse) as served:
        assert served is not None  # the next command serves it again
