"""Helpers of the ops tests (a module of its own: ``from conftest import`` would resolve to
another folder's conftest when the whole suite runs)."""

from __future__ import annotations

import html
import re
import socket
import subprocess
import sys
from dataclasses import dataclass

import requests
import sqlalchemy as sa

from qbo_pipelines.sandbox.testing import SandboxHandle


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class OpsStack:
    """A CLI environment: ``env`` is what a terminal would export (also set in os.environ)."""

    env: dict[str, str]
    warehouse: sa.Engine
    source: sa.Engine
    sandbox: SandboxHandle
    second_realm: str
    redirect_uri: str

    def count(self, sql: str, **params: object) -> int:
        with self.warehouse.connect() as conn:
            return int(conn.execute(sa.text(sql), params).scalar_one())

    def run(self, *argv: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        """``qbo-pipelines ARGV`` in a subprocess, as from a terminal."""
        return subprocess.run(
            [sys.executable, "-m", "qbo_pipelines.cli", *argv],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def connect_by_consent(self, realm_id: str, *extra: str) -> subprocess.CompletedProcess[str]:
        """``qbo-pipelines connect``: open the printed URL, pick ``realm_id`` on the sandbox's
        consent page, submit; the browser follows the redirect to the CLI's listener."""
        extra = ("--redirect-uri", self.redirect_uri, *extra)
        return connect_by_consent(self.env, realm_id, *extra)


def connect_by_consent(
    env: dict[str, str], realm_id: str, *extra: str
) -> subprocess.CompletedProcess[str]:
    """``qbo-pipelines connect EXTRA`` from a terminal with ``env``, consented as a user does:
    the printed URL opened, ``realm_id`` picked on the sandbox's consent page, submitted."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "qbo_pipelines.cli", "connect", "--timeout", "60", *extra],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    url = ""
    said = []
    for line in proc.stdout:
        said.append(line)
        if line.startswith("http"):
            url = line.strip()
            break
    assert url, proc.stderr.read() if proc.stderr else "no URL printed"
    browser = requests.Session()
    page = browser.get(url, timeout=30)
    assert page.status_code == 200, page.text
    assert realm_id in page.text  # every company of the user is offered
    form = {
        html.unescape(k): html.unescape(v)
        for k, v in re.findall(r'type="hidden" name="([^"]*)" value="([^"]*)"', page.text)
    }
    form.update({"realmId": realm_id, "decision": "allow"})
    answer = browser.post(url.split("?")[0], data=form, timeout=30)  # follows the 302
    assert answer.status_code == 200, answer.text
    assert "Connected" in answer.text, answer.text
    out, err = proc.communicate(timeout=120)
    return subprocess.CompletedProcess(proc.args, proc.returncode, "".join(said) + out, err)
