"""Issue 10: webhook aggregation, the journal (kill -9 loses nothing answered 200), and the
control API's protection (token, JSON only, same origin, confined state files, SIGTERM)."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from qbo_pipelines.sandbox.control import SandboxControl
from qbo_pipelines.sandbox.testing import SandboxHandle, run_sandbox
from qbo_pipelines.sandbox.webhooks import DEFAULT_WINDOW_SECONDS

from .helpers import Api
from .test_webhooks import VERIFIER, Receiver

# -- 6. webhooks aggregate a company's changes over a window -------------------------------------


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    hook = Receiver()
    yield hook
    hook.server.shutdown()


def test_webhook_changes_are_aggregated_over_the_default_window(receiver: Receiver) -> None:
    """§10.1/§10.4: QBO aggregates a company's changes into one notification; by default the
    sandbox does too (window of a few seconds), signed as ever."""
    assert 1.0 <= DEFAULT_WINDOW_SECONDS <= 10.0
    with run_sandbox(throttle=False) as handle:
        api = Api(handle)
        handle.control.register_webhook(api.realm_id, receiver.url, VERIFIER)
        started = time.monotonic()
        ids = [api.create("Customer", {"DisplayName": f"Windowed {n}"})["Id"]
               for n in range(4)]
        time.sleep(0.5)
        assert receiver.received == [], "delivered before the window closed"
        received = receiver.wait(1, timeout=DEFAULT_WINDOW_SECONDS + 5)
        assert time.monotonic() - started >= DEFAULT_WINDOW_SECONDS * 0.9
        time.sleep(0.3)
        assert len(receiver.received) == 1
        body = json.loads(received[0][0])
        entities = body["eventNotifications"][0]["dataChangeEvent"]["entities"]
        assert [e["id"] for e in entities] == ids
        api.session.close()


def test_webhook_window_is_configurable_and_cloudevents_aggregate_too(
        sandbox: SandboxHandle, api: Api, receiver: Receiver) -> None:
    """§10.3/§10.4: a short window (here 0.2 s, set per sandbox) gathers the changes of one
    company into one CloudEvents array; ``batch_seconds`` per registration overrides it."""
    sandbox.control.register_webhook(api.realm_id, receiver.url, VERIFIER,
                                     format="cloudevents")
    for n in range(3):
        api.create("Vendor", {"DisplayName": f"Clouded {n}"})
    received = receiver.wait(1, timeout=5)
    time.sleep(0.4)
    assert len(receiver.received) == 1
    events = json.loads(received[0][0])
    assert [e["type"] for e in events] == ["qbo.vendor.created.v1"] * 3


# -- 7. journal: kill -9 loses nothing that was answered 200 -------------------------------------


class CliSandbox:
    """``qbo-pipelines sandbox`` as a subprocess on a free port, with a data directory."""

    def __init__(self, data_dir: Path, *extra: str) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "qbo_pipelines.cli", "sandbox", "--port", "0",
             "--data-dir", str(data_dir), "--no-throttle", *extra],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        lines: list[str] = []
        assert self.process.stdout is not None
        while True:
            line = self.process.stdout.readline()
            if not line:
                raise RuntimeError("sandbox CLI exited:\n" + "".join(lines))
            lines.append(line)
            if line.startswith("  export QBO_TOKEN="):
                break
        text = "".join(lines)
        self.base_url = _find(r"QBO sandbox at (\S+)", text)
        self.realm_id = _find(r"realm id \(seeded company\): (\d+)", text)
        self.control_token = _find(r"control token: (\S+)", text)
        self.bearer = _find(r"export QBO_TOKEN=(\S+)", text)
        self.control = SandboxControl(self.base_url, token=self.control_token)
        self.session = requests.Session()
        self.session.headers.update({"Accept": "application/json",
                                     "Authorization": f"Bearer {self.bearer}"})

    @property
    def api(self) -> str:
        return f"{self.base_url}/v3/company/{self.realm_id}"

    def post(self, path: str, body: Any, **params: Any) -> requests.Response:
        return self.session.post(self.api + path, json=body,
                                 params={"minorversion": 75, **params}, timeout=10)

    def close(self) -> None:
        self.session.close()
        self.control.close()
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(10)
        if self.process.stdout is not None:
            self.process.stdout.close()


def _find(pattern: str, text: str) -> str:
    match = re.search(pattern, text)
    assert match, f"{pattern!r} not in:\n{text}"
    return match.group(1)


def test_kill_9_loses_nothing_answered_200_and_requestids_still_replay(tmp_path: Path) -> None:
    """§5.2/§6: every write the sandbox answered 200 for survives kill -9 (journal under the
    data directory, replayed at start): entities with their SyncTokens, a rotated refresh
    token, control-API writes, and the requestid memory, so a retried create replays."""
    data = tmp_path / "sandbox-data"
    first = CliSandbox(data)
    try:
        created = {}
        for n in range(5):
            response = first.post("/customer", {"DisplayName": f"Durable {n}"},
                                  requestid=f"durable-{n}")
            assert response.status_code == 200, response.text
            created[f"durable-{n}"] = response.json()["Customer"]
        updated = first.post("/customer", {"Id": created["durable-0"]["Id"], "SyncToken": "0",
                                           "sparse": True, "CompanyName": "Kept Co"})
        assert updated.status_code == 200
        tokens = first.control.mint_tokens(first.realm_id)
        rotated = requests.post(f"{first.base_url}/oauth2/v1/tokens/bearer", data={
            "grant_type": "refresh_token", "refresh_token": tokens["refresh_token"],
            "client_id": first.control.info()["apps"][0]["client_id"],
            "client_secret": "sandboxClientSecret000000000000000000000"}, timeout=10)
        assert rotated.status_code == 200
        realm_b = first.control.create_company("Second Co", seed=False)
        first.control.bulk_create(realm_b, "Customer", [{"DisplayName": "In B"}])
        first.process.send_signal(signal.SIGKILL)
        first.process.wait(10)
    finally:
        first.close()

    second = CliSandbox(data)
    try:
        for _request_id, customer in created.items():
            read = second.session.get(f"{second.api}/customer/{customer['Id']}",
                                      params={"minorversion": 75}, timeout=10)
            assert read.status_code == 200
            assert read.json()["Customer"]["DisplayName"] == customer["DisplayName"]
        again = second.session.get(f"{second.api}/customer/{created['durable-0']['Id']}",
                                   params={"minorversion": 75}, timeout=10).json()["Customer"]
        assert again["SyncToken"] == "1"
        assert again["CompanyName"] == "Kept Co"
        count_before = second.control.count(second.realm_id, "Customer")
        replay = second.post("/customer", {"DisplayName": "Durable 3"}, requestid="durable-3")
        assert replay.status_code == 200
        assert replay.json()["Customer"]["Id"] == created["durable-3"]["Id"]
        assert second.control.count(second.realm_id, "Customer") == count_before
        # The rotated refresh token is the live one; the superseded one stays dead.
        fresh = rotated.json()["refresh_token"]
        form = {"grant_type": "refresh_token",
                "client_id": second.control.info()["apps"][0]["client_id"],
                "client_secret": "sandboxClientSecret000000000000000000000"}
        old = requests.post(f"{second.base_url}/oauth2/v1/tokens/bearer",
                            data={**form, "refresh_token": tokens["refresh_token"]}, timeout=10)
        assert old.status_code == 400
        new = requests.post(f"{second.base_url}/oauth2/v1/tokens/bearer",
                            data={**form, "refresh_token": fresh}, timeout=10)
        assert new.status_code == 200
        names = [c["DisplayName"] for c in second.control.entities(realm_b, "Customer")]
        assert names == ["In B"]
    finally:
        second.close()


def test_sigterm_saves_state_like_sigint(tmp_path: Path) -> None:
    """Issue 10 item 8: SIGTERM stops the CLI cleanly and writes the state snapshot (the
    journal is folded into it), as Ctrl-C does."""
    data = tmp_path / "sandbox-data"
    cli = CliSandbox(data)
    try:
        assert cli.post("/customer", {"DisplayName": "Termed"}).status_code == 200
        cli.process.send_signal(signal.SIGTERM)
        assert cli.process.wait(15) == 128 + signal.SIGTERM
    finally:
        cli.close()
    state = json.loads((data / "state.json").read_text(encoding="utf-8"))
    customers = next(iter(state["companies"].values()))["entities"]["Customer"]
    assert "Termed" in [c["DisplayName"] for c in customers.values()]
    assert (data / "state.json.journal").read_bytes() == b""
    for name in ("control-token", "state.json", "state.json.journal"):
        assert (data / name).stat().st_mode & 0o077 == 0, f"{name} readable by others"


# -- 8. the control API is closed to web pages and other local users -----------------------------


def test_control_api_requires_the_control_token(sandbox: SandboxHandle) -> None:
    """Issue 10 item 8: no token or a wrong one → 401; SandboxControl passes it by itself."""
    url = f"{sandbox.base_url}/_sandbox/info"
    assert requests.get(url, timeout=10).status_code == 401
    assert requests.get(url, headers={"X-Sandbox-Token": "guess"}, timeout=10).status_code == 401
    assert requests.get(url, headers={"X-Sandbox-Token": sandbox.control_token},
                        timeout=10).status_code == 200
    # A control client made from the base URL alone (as existing callers do) still works.
    control = SandboxControl(sandbox.base_url)
    try:
        assert control.info()["realm_id"] == sandbox.realm_id
    finally:
        control.close()


def test_control_api_refuses_non_json_bodies_and_cross_origin_requests(
        sandbox: SandboxHandle) -> None:
    """Issue 10 item 8: a browser's cross-origin ``text/plain`` POST (no preflight) is refused;
    so is any non-JSON body (415) and any foreign Origin (403), token or not."""
    token = {"X-Sandbox-Token": sandbox.control_token}
    url = f"{sandbox.base_url}/_sandbox/state/save"
    plain = requests.post(url, data='{"path": "x.json"}',
                          headers={**token, "Content-Type": "text/plain"}, timeout=10)
    assert plain.status_code == 415
    foreign = requests.post(url, json={"path": "x.json"},
                            headers={**token, "Origin": "http://evil.example"}, timeout=10)
    assert foreign.status_code == 403
    null_origin = requests.post(url, json={"path": "x.json"},
                                headers={**token, "Origin": "null"}, timeout=10)
    assert null_origin.status_code == 403
    assert sandbox.data_dir is not None
    assert not (sandbox.data_dir / "x.json").exists()
    own = requests.post(url, json={"path": "x.json"},
                        headers={**token, "Origin": sandbox.base_url}, timeout=10)
    assert own.status_code == 200
    assert (sandbox.data_dir / "x.json").exists()


def test_state_files_are_confined_to_the_data_directory(sandbox: SandboxHandle,
                                                        tmp_path: Path) -> None:
    """Issue 10 item 8: save/load paths are relative to the data directory; absolute paths
    and ``..`` escapes are refused (403) and nothing is written outside."""
    token = {"X-Sandbox-Token": sandbox.control_token}
    url = f"{sandbox.base_url}/_sandbox/state/save"
    outside = tmp_path / "stolen.json"
    for path in (str(outside), "../stolen.json", "a/../../stolen.json", ""):
        response = requests.post(url, json={"path": path}, headers=token, timeout=10)
        assert response.status_code in (400, 403), (path, response.text)
    assert not outside.exists()
    assert sandbox.data_dir is not None
    assert not (sandbox.data_dir.parent / "stolen.json").exists()
    load = requests.post(f"{sandbox.base_url}/_sandbox/state/load",
                         json={"path": "/etc/passwd"}, headers=token, timeout=10)
    assert load.status_code == 403
    sandbox.control.save_state("nested/ok.json")
    assert (sandbox.data_dir / "nested" / "ok.json").exists()
    assert os.path.commonpath([sandbox.data_dir, sandbox.data_dir / "nested"]) == str(
        sandbox.data_dir)
