"""Run the sandbox with uvicorn: in a background thread (tests) or in the foreground (CLI)."""

from __future__ import annotations

import asyncio
import signal
import socket
import threading
import time
from collections.abc import Callable
from types import FrameType

import uvicorn

from qbo_pipelines.sandbox.app import create_app
from qbo_pipelines.sandbox.control import remember_token
from qbo_pipelines.sandbox.runtime import Sandbox


def _config(sandbox: Sandbox, host: str, port: int) -> uvicorn.Config:
    return uvicorn.Config(create_app(sandbox), host=host, port=port, log_level="warning",
                          access_log=False, lifespan="off", timeout_graceful_shutdown=1,
                          timeout_keep_alive=30)


def _bind(host: str, port: int) -> socket.socket:
    # IPPROTO_TCP explicitly: asyncio only sets TCP_NODELAY on accepted sockets whose proto
    # is TCP; with proto 0 every response pays a 40 ms Nagle/delayed-ACK stall.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    # listening now: a port another process took a moment ago fails here, in the caller,
    # not later in the server's thread (SO_REUSEADDR lets two sockets bind until one listens)
    sock.listen(2048)
    return sock


class SandboxServer:
    """A sandbox served by uvicorn on a background thread; ``stop()`` shuts it down cleanly."""

    def __init__(self, sandbox: Sandbox, host: str = "127.0.0.1", port: int = 0) -> None:
        self.sandbox = sandbox
        self.host = host
        self._socket = _bind(host, port)
        self.port = int(self._socket.getsockname()[1])
        self.base_url = f"http://{host}:{self.port}"
        sandbox.base_url = self.base_url
        self._server = uvicorn.Server(_config(sandbox, host, self.port))
        self._thread = threading.Thread(target=self._run, name="qbo-sandbox", daemon=True)

    @property
    def control_token(self) -> str:
        return self.sandbox.control_token

    def _run(self) -> None:
        asyncio.run(self._server.serve(sockets=[self._socket]))

    def start(self, timeout: float = 10.0) -> SandboxServer:
        self.sandbox.start()
        remember_token(self.base_url, self.sandbox.control_token)
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the QBO sandbox server did not start")
            time.sleep(0.005)
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)
        self._socket.close()
        remember_token(self.base_url, None)
        self.sandbox.stop()


def _terminate(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)


def serve_forever(sandbox: Sandbox, host: str, port: int,
                  ready: Callable[[str], None] | None = None) -> None:
    """Foreground serving for the CLI. Ctrl-C (SIGINT) and SIGTERM both stop it cleanly and
    save the state. ``port`` 0 picks a free port; ``ready(base_url)`` runs once it is bound."""
    sock = _bind(host, port)
    sock.listen(2048)  # connections made once ``ready`` has run wait for uvicorn in the backlog
    sandbox.base_url = f"http://{host}:{sock.getsockname()[1]}"
    sandbox.start()
    # uvicorn handles SIGTERM during serving and re-raises it afterwards; with the default
    # action that would kill the process before the state is saved, so exit normally instead.
    previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        if ready is not None:
            ready(sandbox.base_url)
        uvicorn.Server(_config(sandbox, host, port)).run(sockets=[sock])
    finally:
        signal.signal(signal.SIGTERM, previous)
        sock.close()
        sandbox.stop()
