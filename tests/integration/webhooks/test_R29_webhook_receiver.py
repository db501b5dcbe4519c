"""R29: a change in QBO reaches the inbox through QBO's signed webhook; the receiver stores only
what is signed, well-formed and for a connected company, once, and keeps serving.

Real HTTP end to end: the sandbox's dispatcher signs and posts to the real receiver (uvicorn on
127.0.0.1), which stores into a real Postgres warehouse.
"""

from __future__ import annotations

import json
import logging

import pytest
import requests
import sqlalchemy as sa
from webhookbed import VERIFIER, Connector, ReceiverServer, inbox_count, wait_for

from qbo_pipelines.sandbox.testing import SandboxHandle
from qbo_pipelines.warehouse import postgres
from qbo_pipelines.webhooks import inbox
from qbo_pipelines.webhooks.receiver import create_app
from qbo_pipelines.webhooks.verify import signature


def legacy(realm: str, *entities: tuple[str, str, str, str]) -> bytes:
    """A legacy body: (name, id, operation, lastUpdated) per entity."""
    items = [{"name": n, "id": i, "operation": op, "lastUpdated": at} for n, i, op, at in entities]
    payload = {"eventNotifications": [{"realmId": realm, "dataChangeEvent": {"entities": items}}]}
    return json.dumps(payload, separators=(",", ":")).encode()


def delivered(sandbox: SandboxHandle, realm: str, count: int) -> bool:
    deliveries = sandbox.control.webhook_deliveries(realm)
    return len(deliveries) >= count and all(d["status"] == 200 for d in deliveries)


@pytest.mark.parametrize("fmt", ["legacy", "cloudevents"])
def test_R29_a_change_in_qbo_reaches_the_inbox_through_the_signed_webhook(
    sandbox: SandboxHandle,
    receiver: ReceiverServer,
    connect: Connector,
    wh: sa.Engine,
    fmt: str,
) -> None:
    realm = connect(sandbox)
    control = sandbox.control
    control.register_webhook(realm, receiver.url, VERIFIER.reveal(), format=fmt, batch_seconds=0)
    customer = control.bulk_create(realm, "Customer", [{"DisplayName": f"Hooked {fmt}"}])[0]
    control.user_update(realm, "Customer", {"Id": customer["Id"], "CompanyName": "Hook & Co"})
    invoice = control.bulk_create(
        realm,
        "Invoice",
        [
            {
                "CustomerRef": {"value": customer["Id"]},
                "Line": [
                    {
                        "Amount": 5,
                        "DetailType": "SalesItemLineDetail",
                        "SalesItemLineDetail": {"ItemRef": {"value": "1"}},
                    }
                ],
            }
        ],
    )[0]
    control.user_delete(realm, "Invoice", invoice["Id"])

    assert wait_for(lambda: delivered(sandbox, realm, 4)), control.webhook_deliveries(realm)
    assert inbox.pending(wh) == {realm: {"Customer": {customer["Id"]}, "Invoice": {invoice["Id"]}}}
    claim = inbox.claim(wh, realm)
    operations = sorted((r.event.entity, r.event.operation) for r in claim.events)
    assert operations == [
        ("Customer", "Create"),
        ("Customer", "Update"),
        ("Invoice", "Create"),
        ("Invoice", "Delete"),
    ]
    assert claim.ids == {"Customer": [customer["Id"]], "Invoice": [invoice["Id"]]}
    assert claim.removed == {"Invoice": [invoice["Id"]]}  # the consumer sees the delete
    assert claim.to_read == {"Customer": [customer["Id"]]}
    assert all(r.known and r.event.last_updated is not None for r in claim.events)
    with wh.connect() as conn:
        formats = conn.execute(sa.text("SELECT DISTINCT format FROM sync.webhook_inbox")).all()
    assert formats == [(fmt,)]

    assert inbox.done(wh, claim.row_ids, "run-1") == 4
    assert inbox.pending(wh) == {}


@pytest.mark.parametrize("fmt", ["legacy", "cloudevents"])
def test_R29_duplicate_and_reordered_deliveries_are_stored_once(
    sandbox: SandboxHandle,
    receiver: ReceiverServer,
    connect: Connector,
    wh: sa.Engine,
    fmt: str,
) -> None:
    realm = connect(sandbox)
    control = sandbox.control
    control.register_webhook(
        realm,
        receiver.url,
        VERIFIER.reveal(),
        format=fmt,
        batch_seconds=0,
        duplicate=True,
        reorder=True,
    )
    created = control.bulk_create(
        realm, "Customer", [{"DisplayName": f"Twice {fmt} {n}"} for n in range(6)]
    )
    # six changes, each body sent twice, the bodies shuffled: twelve deliveries
    assert wait_for(lambda: delivered(sandbox, realm, 12)), control.webhook_deliveries(realm)
    bodies = [d["body"] for d in control.webhook_deliveries(realm)]
    assert len(bodies) == 12
    assert len(set(bodies)) == 6
    assert inbox_count(wh) == 6
    assert inbox.pending(wh, realm) == {realm: {"Customer": {c["Id"] for c in created}}}

    # a late redelivery of an event already processed is not stored again
    claim = inbox.claim(wh, realm)
    inbox.done(wh, claim.row_ids, "run-1")
    assert receiver.post(bodies[0].encode()).status_code == 200
    assert inbox_count(wh) == 6
    assert inbox.pending(wh, realm) == {}


def test_R29_two_merges_into_one_customer_in_one_second_are_both_stored(
    sandbox: SandboxHandle, receiver: ReceiverServer, connect: Connector, wh: sa.Engine
) -> None:
    """Two duplicates merged into one customer in the same second: two signed Merge events
    that differ only by the record merged away. Both are stored, so the pull learns of both
    merged-away customers at once (before, the second was acknowledged and dropped, found by
    an attack: that customer waited for the CDC safety net)."""
    realm = connect(sandbox)
    at = "2024-03-01T12:00:00.000Z"
    for gone in ("95", "106"):
        item = {"name": "Customer", "id": "70", "operation": "Merge", "deletedId": gone,
                "lastUpdated": at}
        payload = {"eventNotifications": [{"realmId": realm,
                                           "dataChangeEvent": {"entities": [item]}}]}
        answer = receiver.post(json.dumps(payload).encode())
        assert answer.status_code == 200
        assert answer.json()["stored"] == 1, answer.text
    assert inbox.pending(wh, realm) == {realm: {"Customer": {"70", "95", "106"}}}
    assert inbox.claim(wh, realm).removed == {"Customer": ["106", "95"]}


def test_R29_forged_or_altered_deliveries_are_refused_and_nothing_is_stored(
    sandbox: SandboxHandle,
    receiver: ReceiverServer,
    connect: Connector,
    wh: sa.Engine,
    caplog: pytest.LogCaptureFixture,
) -> None:
    realm = connect(sandbox)
    body = legacy(realm, ("Customer", "1", "Update", "2024-01-02T03:04:05.000Z"))
    altered = body.replace(b'"id":"1"', b'"id":"2"')
    caplog.set_level(logging.INFO, logger="qbo_pipelines.webhooks")

    assert receiver.post(body, sig=None).status_code == 401  # no signature
    assert receiver.post(body, sig="bm90IGEgc2lnbmF0dXJl").status_code == 401  # forged
    assert receiver.post(altered, sig=signature(VERIFIER, body)).status_code == 401  # altered
    assert receiver.post(body, sig=signature(VERIFIER, body)[::-1]).status_code == 401
    assert inbox_count(wh) == 0

    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert logged.count("intuit-signature") == 4
    assert VERIFIER.reveal() not in logged
    assert body.decode() not in logged
    assert '"id"' not in logged
    assert signature(VERIFIER, body) not in logged

    assert receiver.post(body).status_code == 200  # the genuine one is taken
    assert inbox_count(wh) == 1


def test_R29_oversized_bodies_get_413_without_being_stored(
    sandbox: SandboxHandle, receiver: ReceiverServer, connect: Connector, wh: sa.Engine
) -> None:
    realm = connect(sandbox)
    body = legacy(realm, ("Customer", "1", "Update", "2024-01-02T03:04:05.000Z"))
    padded = body[:-1] + b"," + b'"pad":"' + b"x" * (1024 * 1024) + b'"}'
    assert len(padded) > 1024 * 1024
    assert receiver.post(padded).status_code == 413

    def chunks() -> object:  # no Content-Length: the cap is enforced while reading
        yield padded[: 512 * 1024]
        yield padded[512 * 1024 :]

    response = requests.post(
        receiver.url,
        data=chunks(),
        headers={"intuit-signature": signature(VERIFIER, padded)},
        timeout=10,
    )
    assert response.status_code == 413
    assert inbox_count(wh) == 0
    assert receiver.post(body).status_code == 200  # still serving


def test_R29_a_small_cap_is_exact(
    sandbox: SandboxHandle, connect: Connector, wh: sa.Engine
) -> None:
    realm = connect(sandbox)
    body = legacy(realm, ("Customer", "1", "Update", "2024-01-02T03:04:05.000Z"))
    server = ReceiverServer(create_app(wh, VERIFIER, max_body=len(body))).start()
    try:
        assert server.post(body).status_code == 200
        assert server.post(body + b" ").status_code == 413
    finally:
        server.stop()


def test_R29_malformed_bodies_get_400_and_the_receiver_keeps_serving(
    sandbox: SandboxHandle,
    receiver: ReceiverServer,
    connect: Connector,
    wh: sa.Engine,
    caplog: pytest.LogCaptureFixture,
) -> None:
    realm = connect(sandbox)
    caplog.set_level(logging.INFO, logger="qbo_pipelines.webhooks")
    for bad in (
        b"{not json",
        b"\xff\xfe\x00",
        b'"text"',
        b'{"eventNotifications":[{"realmId":"' + realm.encode() + b'"}]}',
        b'[{"id":"e1","intuitaccountid":"' + realm.encode() + b'","type":"nope"}]',
        # signed, but an id Postgres cannot store (NUL, a lone surrogate): before, 503, which
        # makes QBO retry and hold back the company's later events
        legacy(realm, ("Invoice", "5\u0000", "Update", "2024-01-02T03:04:05.000Z")),
        legacy(realm, ("Invoice", "5\ud800", "Update", "2024-01-02T03:04:05.000Z")),
        legacy(realm, ("Invoice", "5\x1b[31m", "Update", "2024-01-02T03:04:05.000Z")),
        b"[" * 100_000 + b"]" * 100_000,  # deeper than the JSON decoder recurses: was a 500
    ):
        response = receiver.post(bad)
        assert response.status_code == 400, bad
        assert "Traceback" not in response.text
    assert inbox_count(wh) == 0
    assert sum("malformed body" in r.getMessage() for r in caplog.records) == 9

    good = legacy(realm, ("Invoice", "9", "Void", "2024-01-02T03:04:05.000Z"))
    assert receiver.post(good).status_code == 200
    assert inbox.pending(wh, realm) == {realm: {"Invoice": {"9"}}}
    assert requests.get(receiver.base_url + "/healthz", timeout=5).status_code == 200


def test_R29_events_for_companies_not_connected_are_acknowledged_not_stored(
    sandbox: SandboxHandle,
    receiver: ReceiverServer,
    connect: Connector,
    wh: sa.Engine,
    caplog: pytest.LogCaptureFixture,
) -> None:
    realm = connect(sandbox)
    other = sandbox.control.create_company("Never connected")
    caplog.set_level(logging.INFO, logger="qbo_pipelines.webhooks")
    stranger = legacy(other, ("Customer", "1", "Update", "2024-01-02T03:04:05.000Z"))
    assert receiver.post(stranger).status_code == 200
    assert inbox_count(wh) == 0
    assert any("1 event(s) for companies not connected" in r.getMessage() for r in caplog.records)

    # one delivery mixing both: only the connected company's events are kept
    mixed = {
        "eventNotifications": [
            json.loads(stranger)["eventNotifications"][0],
            json.loads(legacy(realm, ("Customer", "2", "Create", "2024-01-02T03:04:05.000Z")))[
                "eventNotifications"
            ][0],
        ]
    }
    body = json.dumps(mixed).encode()
    assert receiver.post(body).status_code == 200
    assert inbox.pending(wh) == {realm: {"Customer": {"2"}}}

    # and a disconnected company's events stop being stored
    with wh.begin() as conn:
        conn.execute(
            sa.text("UPDATE sync.companies SET status = 'disconnected' WHERE realm_id = :r"),
            {"r": realm},
        )
    late = legacy(realm, ("Customer", "3", "Update", "2024-01-02T03:04:05.000Z"))
    assert receiver.post(late).status_code == 200
    assert inbox_count(wh) == 1


def test_R29_a_database_failure_answers_503_so_qbo_retries(
    pg_server: postgres.PgServer, sandbox: SandboxHandle, caplog: pytest.LogCaptureFixture
) -> None:
    missing = sa.create_engine(pg_server.url("no_such_database_for_webhooks"))
    body = legacy(sandbox.realm_id, ("Customer", "1", "Update", "2024-01-02T03:04:05.000Z"))
    caplog.set_level(logging.INFO, logger="qbo_pipelines.webhooks")
    for realms in (None, lambda: inbox.connected_realms(missing)):
        server = ReceiverServer(create_app(missing, VERIFIER, connected_realms=realms)).start()
        try:
            response = server.post(body)
            assert response.status_code == 503
            assert "Traceback" not in response.text
            assert "no_such_database" not in response.text
            assert requests.get(server.base_url + "/healthz", timeout=5).status_code == 200
        finally:
            server.stop()
    missing.dispose()
    assert sum("database unavailable" in r.getMessage() for r in caplog.records) == 2


def test_R29_only_post_on_the_webhook_path(receiver: ReceiverServer) -> None:
    assert requests.get(receiver.url, timeout=5).status_code == 405
    assert requests.post(receiver.base_url + "/elsewhere", data=b"{}", timeout=5).status_code == 404
    health = requests.get(receiver.base_url + "/healthz", timeout=5)
    assert (health.status_code, health.text) == (200, "ok")
