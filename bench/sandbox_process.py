"""The sandbox served by its own CLI in a subprocess, as QBO is its own service: the process
under measurement (or under kill -9) never shares an interpreter with it. Used by the bench
scripts (``from sandbox_process import SandboxProcess``; a script's folder is on its path)."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from qbo_pipelines.sandbox.control import SandboxControl

_SERVE_SANDBOX = """
import argparse, sys
from qbo_pipelines.sandbox import cli
parser = argparse.ArgumentParser()
cli.register(parser.add_subparsers())
args = parser.parse_args()
sys.exit(args.func(args))
"""
"""``qbo-pipelines sandbox`` without the rest of the CLI: the sandbox's own command."""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class SandboxProcess:
    """The sandbox CLI in a subprocess, restartable with its journal (``journal=False``: state
    in memory only, control files still under ``data_dir``)."""

    def __init__(self, data_dir: Path, *, journal: bool = True) -> None:
        self.data_dir = data_dir
        self.journal = journal
        self.port = _free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        log = (self.data_dir / "sandbox.log").open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-c", _SERVE_SANDBOX, "sandbox", "--port", str(self.port),
             "--data-dir", str(self.data_dir), "--journal" if self.journal else "--no-journal"],
            stdout=log,
            stderr=log,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("sandbox did not start")

    def kill(self) -> None:
        if self.proc is not None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill()

    def control(self) -> SandboxControl:
        return SandboxControl(self.url, data_dir=str(self.data_dir))
