"""Webhooks: signed deliveries (legacy and CloudEvents), retries, batching, duplicates."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from qbo_pipelines.sandbox.testing import SandboxHandle
from qbo_pipelines.sandbox.webhooks import sign, verify

from .helpers import Api

VERIFIER = "00faeec4-08d0-4996-bb37-698ae19f0149"


class Receiver:
    """A local webhook endpoint that records raw bodies and can fail the first N calls."""

    def __init__(self) -> None:
        self.received: list[tuple[bytes, dict[str, str]]] = []
        self.fail_first = 0
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers["Content-Length"]))
                failing = receiver.fail_first > 0
                if failing:
                    receiver.fail_first -= 1
                else:
                    receiver.received.append((body, dict(self.headers)))
                self.send_response(500 if failing else 200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def wait(self, count: int, timeout: float = 5.0) -> list[tuple[bytes, dict[str, str]]]:
        deadline = time.monotonic() + timeout
        while len(self.received) < count and time.monotonic() < deadline:
            time.sleep(0.02)
        return self.received


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    hook = Receiver()
    yield hook
    hook.server.shutdown()


def test_signature_matches_intuit_test_vector() -> None:
    body = (b'{"eventNotifications":[{"realmId":"1269959970","dataChangeEvent":{"entities":['
            b'{"name":"Vendor","id":"40","operation":"Update","lastUpdated":'
            b'"2016-10-05T03:09:04.000Z"},{"name":"Customer","id":"43","operation":"Create",'
            b'"lastUpdated":"2016-10-05T03:07:04.000Z"}]}}]}')
    assert sign(VERIFIER, body) == "6q+xGyMirJupwKTh2/WBl2NcdxzxqdIbk3sneKTxLWM="


def test_R29_legacy_delivery_is_signed_with_the_verifier_token(
        sandbox: SandboxHandle, api: Api, receiver: Receiver) -> None:
    sandbox.control.register_webhook(api.realm_id, receiver.url, VERIFIER)
    customer = api.create("Customer", {"DisplayName": "Hooked Harry"})
    body, headers = receiver.wait(1)[0]
    signature = headers["intuit-signature"]
    expected = base64.b64encode(hmac.new(VERIFIER.encode(), body, hashlib.sha256).digest())
    assert signature == expected.decode()
    assert verify(VERIFIER, body, signature)
    assert not verify("another-verifier-token", body, signature)
    event = json.loads(body)["eventNotifications"][0]
    assert event["realmId"] == api.realm_id
    entity = event["dataChangeEvent"]["entities"][0]
    assert entity["name"] == "Customer"
    assert entity["id"] == customer["Id"]
    assert entity["operation"] == "Create"
    assert entity["lastUpdated"].endswith("Z")


def test_cloudevents_format(sandbox: SandboxHandle, api: Api, receiver: Receiver) -> None:
    sandbox.control.register_webhook(api.realm_id, receiver.url, VERIFIER, format="cloudevents")
    invoice = api.create("Invoice", {"CustomerRef": {"value": "1"}, "Line": [
        {"Amount": 5, "DetailType": "SalesItemLineDetail",
         "SalesItemLineDetail": {"ItemRef": {"value": "1"}}}]})
    body, headers = receiver.wait(1)[0]
    assert verify(VERIFIER, body, headers["intuit-signature"])
    events = json.loads(body)
    assert isinstance(events, list)
    assert events[0]["type"] == "qbo.invoice.created.v1"
    assert events[0]["intuitentityid"] == invoice["Id"]
    assert events[0]["intuitaccountid"] == api.realm_id
    assert events[0]["specversion"] == "1.0"


def test_failed_delivery_is_retried(sandbox: SandboxHandle, api: Api,
                                    receiver: Receiver) -> None:
    receiver.fail_first = 2
    sandbox.control.register_webhook(api.realm_id, receiver.url, VERIFIER,
                                     retry_seconds=[0.05, 0.05, 0.05])
    api.create("Customer", {"DisplayName": "Retry Rita"})
    assert len(receiver.wait(1)) == 1
    attempts = sandbox.control.webhook_deliveries(api.realm_id)
    assert [a["status"] for a in attempts] == [500, 500, 200]


def test_batched_and_duplicated_delivery(sandbox: SandboxHandle, api: Api,
                                         receiver: Receiver) -> None:
    sandbox.control.register_webhook(api.realm_id, receiver.url, VERIFIER, batch_seconds=0.3,
                                     duplicate=True)
    for n in range(3):
        api.create("Customer", {"DisplayName": f"Batchy {n}"})
    received = receiver.wait(2)
    assert len(received) == 2
    assert received[0][0] == received[1][0]
    entities = json.loads(received[0][0])["eventNotifications"][0]["dataChangeEvent"]["entities"]
    assert len(entities) == 3
