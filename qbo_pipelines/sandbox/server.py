"""Run the sandbox with uvicorn: in a background thread (tests) or in the foreground (CLI)."""

from __future__ import annotations

import asyncio
import socket
import threading
import time

import uvicorn

from qbo_pipelines.sandbox.app import create_app
from qbo_pipelines.sandbox.runtime import Sandbox


def _config(sandbox: Sandbox, host: str, port: int) -> uvicorn.Config:
    return uvicorn.Config(create_app(sandbox), host=host, port=port, log_level="warning",
                          access_log=False, lifespan="off", timeout_graceful_shutdown=1,
                          timeout_keep_alive=30)


class SandboxServer:
    """A sandbox served by uvicorn on a background thread; ``stop()`` shuts it down cleanly."""

    def __init__(self, sandbox: Sandbox, host: str = "127.0.0.1", port: int = 0) -> None:
        self.sandbox = sandbox
        self.host = host
        # IPPROTO_TCP explicitly: asyncio only sets TCP_NODELAY on accepted sockets whose proto
        # is TCP; with proto 0 every response pays a 40 ms Nagle/delayed-ACK stall.
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._socket.bind((host, port))
        self.port = int(self._socket.getsockname()[1])
        self.base_url = f"http://{host}:{self.port}"
        sandbox.base_url = self.base_url
        self._server = uvicorn.Server(_config(sandbox, host, self.port))
        self._thread = threading.Thread(target=self._run, name="qbo-sandbox", daemon=True)

    def _run(self) -> None:
        asyncio.run(self._server.serve(sockets=[self._socket]))

    def start(self, timeout: float = 10.0) -> SandboxServer:
        self.sandbox.start()
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
        self.sandbox.stop()


def serve_forever(sandbox: Sandbox, host: str, port: int) -> None:
    """Foreground serving for the CLI (Ctrl-C stops it)."""
    sandbox.base_url = f"http://{host}:{port}"
    sandbox.start()
    try:
        uvicorn.Server(_config(sandbox, host, port)).run()
    finally:
        sandbox.stop()
