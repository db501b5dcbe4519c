"""Throttling (429/3001), batch limits and injected faults."""

from __future__ import annotations

import concurrent.futures

import pytest
import requests

from qbo_pipelines.sandbox.testing import SandboxHandle

from .helpers import Api, fault_of


def test_R41_throttle_returns_429_3001_xml(sandbox: SandboxHandle, api: Api) -> None:
    sandbox.control.set_throttle(True, per_minute=5)
    statuses = [api.get("/preferences").status_code for _ in range(7)]
    assert statuses == [200] * 5 + [429, 429]
    throttled = api.get("/preferences")
    assert throttled.headers["content-type"].startswith("application/xml")
    assert 'code="3001"' in throttled.text
    assert "message=ThrottleExceeded; errorCode=003001; statusCode=429" in throttled.text
    sandbox.control.set_throttle(False)
    assert api.get("/preferences").status_code == 200


def test_R41_batch_calls_are_limited_per_minute(sandbox: SandboxHandle, api: Api) -> None:
    sandbox.control.set_throttle(True, batch_per_minute=2)
    body = {"BatchItemRequest": [{"bId": "1", "Query": "select * from Term"}]}
    assert [api.post("/batch", body).status_code for _ in range(3)] == [200, 200, 429]


def test_R41_in_flight_limit_and_observed_concurrency(sandbox: SandboxHandle, api: Api) -> None:
    sandbox.control.set_latency(0.3)
    sandbox.control.set_throttle(True, in_flight=2)
    url = f"{api.base}/preferences"
    headers = dict(api.session.headers)
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        statuses = list(pool.map(lambda _: requests.get(url, headers=headers, timeout=10)
                                 .status_code, range(4)))
    assert sorted(statuses) == [200, 200, 429, 429]
    assert sandbox.control.max_in_flight(api.realm_id) >= 3


def test_batch_items_fault_independently_and_http_200(api: Api) -> None:
    existing = api.create("Customer", {"DisplayName": "In Batch"})
    response = api.post("/batch", {"BatchItemRequest": [
        {"bId": "a", "operation": "create", "Customer": {"DisplayName": "In Batch"}},
        {"bId": "b", "operation": "create", "Vendor": {"DisplayName": "Batch Vendor"}},
        {"bId": "c", "operation": "update", "Customer": {"Id": existing["Id"],
                                                         "SyncToken": "9", "sparse": True}},
        {"bId": "d", "Query": "select * from Customer where DisplayName = 'In Batch'"},
    ]}, requestid="batch-1")
    items = {i["bId"]: i for i in api.ok(response)["BatchItemResponse"]}
    assert items["a"]["Fault"]["Error"][0]["code"] == "6240"
    assert items["b"]["Vendor"]["DisplayName"] == "Batch Vendor"
    assert items["c"]["Fault"]["Error"][0]["code"] == "5010"
    assert items["d"]["QueryResponse"]["Customer"][0]["Id"] == existing["Id"]
    replay = api.post("/batch", {"BatchItemRequest": [
        {"bId": "a", "operation": "create", "Customer": {"DisplayName": "In Batch"}},
        {"bId": "b", "operation": "create", "Vendor": {"DisplayName": "Batch Vendor"}},
        {"bId": "c", "operation": "update", "Customer": {"Id": existing["Id"],
                                                         "SyncToken": "9", "sparse": True}},
        {"bId": "d", "Query": "select * from Customer where DisplayName = 'In Batch'"},
    ]}, requestid="batch-1")
    assert replay.content == response.content
    assert api.handle.control.count(api.realm_id, "Vendor") == 3


def test_batch_over_30_items_is_1040(api: Api) -> None:
    items = [{"bId": str(n), "Query": "select * from Term"} for n in range(31)]
    error = fault_of(api.post("/batch", {"BatchItemRequest": items}))
    assert error["code"] == "1040"


def test_requestid_plus_bid_over_50_chars_is_per_item_6000(api: Api) -> None:
    response = api.post("/batch", {"BatchItemRequest": [
        {"bId": "b" * 36, "operation": "create", "Customer": {"DisplayName": "Long Ids"}}]},
        requestid="r" * 32)
    item = api.ok(response)["BatchItemResponse"][0]
    assert item["Fault"]["Error"][0]["code"] == "6000"


def test_same_requestid_different_body_is_600(api: Api) -> None:
    api.create("Customer", {"DisplayName": "First Body"}, requestid="same")
    error = fault_of(api.post("/customer", {"DisplayName": "Second Body"}, requestid="same"))
    assert error["code"] == "600"


@pytest.mark.parametrize(("kind", "status", "marker"), [
    ("fault", 400, '"code": "6000"'),
    ("throttle", 429, 'code="3001"'),
    ("server_error", 500, '"code": "10000"'),
    ("xml", 400, "<IntuitResponse"),
])
def test_injected_faults(sandbox: SandboxHandle, api: Api, kind: str, status: int,
                         marker: str) -> None:
    sandbox.control.inject_fault(kind=kind, path="/query", count=1)
    first = api.query("select * from Term")
    assert first.status_code == status
    assert marker in first.text
    assert api.query("select * from Term").status_code == 200


def test_injected_fault_with_code_maps_to_python_quickbooks_exception_range(
        sandbox: SandboxHandle, api: Api) -> None:
    sandbox.control.inject_fault(kind="fault", path="/customer", code="5010", method="POST")
    error = fault_of(api.post("/customer", {"DisplayName": "Injected"}))
    assert error["code"] == "5010"
    assert error["Message"] == "Stale Object Error"


def test_injected_timeout_hangs_then_504(sandbox: SandboxHandle, api: Api) -> None:
    sandbox.control.inject_fault(kind="timeout", path="/query", delay_seconds=0.5)
    with pytest.raises(requests.Timeout):
        api.session.get(f"{api.base}/query", params={"query": "select * from Term"},
                        timeout=0.2)


def test_drop_after_commit_commits_and_replays_by_requestid(
        sandbox: SandboxHandle, api: Api) -> None:
    sandbox.control.inject_fault(kind="drop_after_commit", path="/customer", method="POST")
    before = sandbox.control.count(api.realm_id, "Customer")
    with pytest.raises(requests.ConnectionError):
        api.post("/customer", {"DisplayName": "Lost Reply"}, requestid="lost-1")
    assert sandbox.control.count(api.realm_id, "Customer") == before + 1
    retry = api.create("Customer", {"DisplayName": "Lost Reply"}, requestid="lost-1")
    assert retry["DisplayName"] == "Lost Reply"
    assert sandbox.control.count(api.realm_id, "Customer") == before + 1


def test_request_log_counts_endpoints(sandbox: SandboxHandle, api: Api) -> None:
    sandbox.control.reset_requests()
    api.query("select * from Term")
    api.create("Customer", {"DisplayName": "Counted"})
    api.get("/customer/1")
    counts = sandbox.control.request_counts(api.realm_id)
    assert counts == {"query": 1, "create:Customer": 1, "read:Customer": 1}
    log = sandbox.control.requests(api.realm_id)
    assert [e["status"] for e in log] == [200, 200, 200]


def test_save_and_load_state(sandbox: SandboxHandle, api: Api) -> None:
    path = "snapshots/state.json"  # relative to the sandbox's data directory
    api.create("Customer", {"DisplayName": "Persisted"})
    sandbox.control.save_state(path)
    sandbox.control.reset()
    assert not [c for c in sandbox.control.entities(api.realm_id, "Customer")
                if c["DisplayName"] == "Persisted"]
    sandbox.control.load_state(path)
    names = [c["DisplayName"] for c in sandbox.control.entities(api.realm_id, "Customer")]
    assert "Persisted" in names
    assert api.get("/preferences").status_code == 200
