"""The embedded server's pid, read from its ``postmaster.pid``, while it may be stopping: the
file can vanish at any moment (the server removes it as it stops), so it is read once, never
tested and then read (a fresh-clone ``make test`` once failed in that gap)."""

from __future__ import annotations

import os
from pathlib import Path

from qbo_pipelines.warehouse import postgres


def test_no_pid_file_is_no_server(tmp_path: Path) -> None:
    assert postgres.embedded_pid(tmp_path) is None
    assert postgres.stop_embedded(tmp_path) is False


def test_a_pid_file_of_a_process_that_is_gone_is_no_server(tmp_path: Path) -> None:
    (tmp_path / "postmaster.pid").write_text("999999999\n/tmp\n")
    assert postgres.embedded_pid(tmp_path) is None


def test_a_torn_pid_file_is_no_server(tmp_path: Path) -> None:
    (tmp_path / "postmaster.pid").write_text("")
    assert postgres.embedded_pid(tmp_path) is None


def test_a_running_process_is_found(tmp_path: Path) -> None:
    (tmp_path / "postmaster.pid").write_text(f"{os.getpid()}\n")
    assert postgres.embedded_pid(tmp_path) == os.getpid()
