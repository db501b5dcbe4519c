"""Local endpoints for the notification tests: a real SMTP server (aiosmtpd) and a real HTTP
webhook receiver (http.server in a thread), plus a fresh migrated warehouse per test (channels
for "every company" must not see other tests' notifications)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import sqlalchemy as sa
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from cryptography.fernet import Fernet
from notifybed import (
    SMTP_PASSWORD,
    SMTP_USER,
    Received,
    SmtpHandler,
    SmtpSink,
    WebhookSink,
    free_port,
)

from qbo_pipelines.qbo.auth import ENV_TOKEN_KEY


@pytest.fixture
def smtp_server() -> Iterator[SmtpSink]:
    """A real SMTP server on 127.0.0.1 that requires AUTH LOGIN/PLAIN (no TLS)."""
    port = free_port()
    sink = SmtpSink("127.0.0.1", port)

    def authenticate(server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> Any:
        ok = (
            isinstance(data, LoginPassword)
            and data.login.decode() == SMTP_USER
            and data.password.decode() == SMTP_PASSWORD
        )
        if ok:
            sink.logins.append(data.login.decode())
        return AuthResult(success=ok)

    controller = Controller(
        SmtpHandler(sink),
        hostname="127.0.0.1",
        port=port,
        authenticator=authenticate,
        auth_required=True,
        auth_require_tls=False,
    )
    controller.start()
    try:
        yield sink
    finally:
        controller.stop()


@pytest.fixture
def webhook_server() -> Iterator[WebhookSink]:
    """A real HTTP endpoint on 127.0.0.1 that records every POST (Slack answers 200 "ok")."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler)
    port = server.server_address[1]
    sink = WebhookSink(f"http://127.0.0.1:{port}/services/T000/B000/s3cr3tT0k3n")
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            with lock:
                sink.attempts += 1
                failing = sink.fail_next > 0
                if failing:
                    sink.fail_next -= 1
                else:
                    sink.received.append(Received(self.path, dict(self.headers.items()), body))
            status, answer = (500, b"internal_error") if failing else (200, b"ok")
            self.send_response(status)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, *args: Any) -> None:
            pass

    server.RequestHandlerClass = Handler
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield sink
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def token_key(monkeypatch: pytest.MonkeyPatch) -> str:
    key = Fernet.generate_key().decode()
    monkeypatch.setenv(ENV_TOKEN_KEY, key)
    return key


@pytest.fixture
def wh(temp_database: Callable[..., sa.Engine], token_key: str) -> sa.Engine:
    engine = temp_database("notify", migrated="warehouse")
    return engine
