"""Helpers for the webhook tests: the real receiver served by uvicorn on a free 127.0.0.1 port,
companies connected the way ``connect`` does (encrypted tokens), and small waits."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import requests
import sqlalchemy as sa
import uvicorn
from cryptography.fernet import Fernet, MultiFernet

from qbo_pipelines.qbo.auth import OAuthClient, OAuthConfig, TokenSet, TokenStore
from qbo_pipelines.qbo.ids import RealmId
from qbo_pipelines.qbo.secret import Secret
from qbo_pipelines.sandbox.testing import SandboxHandle
from qbo_pipelines.webhooks.verify import signature

VERIFIER = Secret("7d1f4c2e-webhook-verifier-for-tests")


class ReceiverServer:
    """The real receiver app served by uvicorn on a background thread."""

    def __init__(self, app: object) -> None:
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._socket.bind(("127.0.0.1", 0))
        self.port = int(self._socket.getsockname()[1])
        self.base_url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(
            app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="off"
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=lambda: asyncio.run(self._server.serve(sockets=[self._socket])),
            name="webhook-receiver",
            daemon=True,
        )

    @property
    def url(self) -> str:
        return self.base_url + "/webhooks/qbo"

    def start(self) -> ReceiverServer:
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            assert self._thread.is_alive(), "the receiver died while starting"
            assert time.monotonic() < deadline, "the receiver did not start"
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)
        self._socket.close()

    def post(self, body: bytes, sig: str | None = "sign", **headers: str) -> requests.Response:
        """POST ``body`` signed with the test verifier (``sig`` overrides; None omits it)."""
        sent = {"Content-Type": "application/json", **headers}
        if sig == "sign":
            sent["intuit-signature"] = signature(VERIFIER, body)
        elif sig is not None:
            sent["intuit-signature"] = sig
        return requests.post(self.url, data=body, headers=sent, timeout=10)


@dataclass
class Connector:
    engine: sa.Engine

    def __call__(self, sandbox: SandboxHandle, realm_id: str | None = None) -> str:
        """Connect a sandbox company as ``qbo-pipelines connect`` would: tokens from the
        sandbox's OAuth server, stored encrypted; ``sync.companies`` status ``connected``."""
        realm = realm_id or sandbox.realm_id
        config = OAuthConfig.for_base_url(
            sandbox.base_url, sandbox.client_id, sandbox.client_secret, sandbox.redirect_uri
        )
        store = TokenStore(
            self.engine, OAuthClient(config), MultiFernet([Fernet(Fernet.generate_key())])
        )
        tokens = TokenSet.from_response(sandbox.control.mint_tokens(realm), datetime.now(UTC))
        store.save_connection(RealmId(realm), tokens, api_base_url=sandbox.base_url)
        return realm


def wait_for(predicate: Callable[[], bool], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


def inbox_count(engine: sa.Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(sa.text("SELECT count(*) FROM sync.webhook_inbox")).scalar_one())
