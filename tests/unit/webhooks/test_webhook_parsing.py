"""Webhook signature and body parsing (QBO_API.md §10): pure functions, no server."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from qbo_pipelines.qbo.secret import Secret
from qbo_pipelines.webhooks.events import (
    MalformedPayload,
    WebhookEvent,
    parse_body,
    parse_events,
    parse_time,
)
from qbo_pipelines.webhooks.verify import is_valid, signature

VECTOR_TOKEN = Secret("00faeec4-08d0-4996-bb37-698ae19f0149")
VECTOR_BODY = (
    b'{"eventNotifications":[{"realmId":"1269959970","dataChangeEvent":{"entities":['
    b'{"name":"Vendor","id":"40","operation":"Update","lastUpdated":"2016-10-05T03:09:04.000Z"},'
    b'{"name":"Customer","id":"43","operation":"Create","lastUpdated":"2016-10-05T03:07:04.000Z"}'
    b"]}}]}"
)
VECTOR_SIGNATURE = "6q+xGyMirJupwKTh2/WBl2NcdxzxqdIbk3sneKTxLWM="


def test_R29_signature_matches_intuit_test_vector() -> None:
    assert signature(VECTOR_TOKEN, VECTOR_BODY) == VECTOR_SIGNATURE
    assert is_valid(VECTOR_TOKEN, VECTOR_BODY, VECTOR_SIGNATURE)


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        "6q+xGyMirJupwKTh2/WBl2NcdxzxqdIbk3sneKTxLWN=",  # one character off
        VECTOR_SIGNATURE[:-1],
        "ünïcode-garbage",
    ],
)
def test_R29_signature_rejects_missing_or_wrong_headers(header: str | None) -> None:
    assert not is_valid(VECTOR_TOKEN, VECTOR_BODY, header)


def test_R29_signature_rejects_an_altered_body_and_another_token() -> None:
    altered = VECTOR_BODY.replace(b'"id":"40"', b'"id":"41"')
    assert not is_valid(VECTOR_TOKEN, altered, VECTOR_SIGNATURE)
    assert not is_valid(Secret("another-token"), VECTOR_BODY, VECTOR_SIGNATURE)
    assert not is_valid(Secret(""), VECTOR_BODY, signature(Secret(""), VECTOR_BODY))


def test_R29_legacy_body_parses_into_events_in_qbo_casing() -> None:
    events = [p.event for p in parse_body(VECTOR_BODY)]
    assert events == [
        WebhookEvent(
            "1269959970",
            "Vendor",
            "40",
            "Update",
            datetime(2016, 10, 5, 3, 9, 4, tzinfo=UTC),
            None,
            "legacy:1269959970:Vendor:40:Update:2016-10-05T03:09:04+00:00:",
        ),
        WebhookEvent(
            "1269959970",
            "Customer",
            "43",
            "Create",
            datetime(2016, 10, 5, 3, 7, 4, tzinfo=UTC),
            None,
            "legacy:1269959970:Customer:43:Create:2016-10-05T03:07:04+00:00:",
        ),
    ]
    assert all(e.known for e in events)


def test_R29_legacy_merge_carries_the_deleted_id_and_several_realms_are_kept_apart() -> None:
    payload = {
        "eventNotifications": [
            {
                "realmId": "1",
                "dataChangeEvent": {
                    "entities": [
                        {
                            "name": "Customer",
                            "id": "7",
                            "operation": "Merge",
                            "deletedId": "9",
                            "lastUpdated": "2024-01-02T03:04:05.123Z",
                        }
                    ]
                },
            },
            {
                "realmId": "2",
                "dataChangeEvent": {
                    "entities": [{"name": "Invoice", "id": 12, "operation": "Delete"}]
                },
            },
        ]
    }
    merge, delete = parse_events(payload)
    assert (merge.realm_id, merge.operation, merge.qbo_id, merge.deleted_id) == (
        "1",
        "Merge",
        "7",
        "9",
    )
    assert merge.removes
    assert merge.last_updated == datetime(2024, 1, 2, 3, 4, 5, 123000, tzinfo=UTC)
    assert (delete.realm_id, delete.entity, delete.qbo_id, delete.last_updated) == (
        "2",
        "Invoice",
        "12",
        None,
    )
    assert delete.removes


def test_R29_legacy_duplicates_have_the_same_key_whatever_the_timestamp_spelling() -> None:
    def body(stamp: str) -> dict[str, object]:
        entity = {"name": "Customer", "id": "5", "operation": "Update", "lastUpdated": stamp}
        return {"eventNotifications": [{"realmId": "1", "dataChangeEvent": {"entities": [entity]}}]}

    a = parse_events(body("2024-01-02T03:04:05.000Z"))[0]
    b = parse_events(body("2024-01-02T03:04:05Z"))[0]
    c = parse_events(body("2024-01-02T03:04:06.000Z"))[0]
    assert a.event_key == b.event_key != c.event_key


CLOUD_EVENT = {
    "specversion": "1.0",
    "id": "88cd52aa-33b6-4351-9aa4-47572edbd068",
    "source": "intuit.dsnBgbseACLLRZNxo2dfc4evmEJdxde58xeeYcZliOU=",
    "type": "qbo.account.created.v1",
    "datacontenttype": "application/json",
    "time": "2025-09-10T21:31:25.179851517Z",
    "intuitentityid": "1234",
    "intuitaccountid": "310687",
    "data": {},
}


def test_R29_cloudevents_body_parses_with_nanoseconds_and_entity_casing() -> None:
    parsed = parse_body(json.dumps([CLOUD_EVENT]).encode())
    (event,) = [p.event for p in parsed]
    assert parsed[0].format == "cloudevents"
    assert event == WebhookEvent(
        "310687",
        "Account",
        "1234",
        "Create",
        datetime(2025, 9, 10, 21, 31, 25, 179851, tzinfo=UTC),
        None,
        "ce:310687:88cd52aa-33b6-4351-9aa4-47572edbd068",
    )


@pytest.mark.parametrize(
    ("type_", "entity", "operation"),
    [
        ("qbo.salesreceipt.updated.v1", "SalesReceipt", "Update"),
        ("qbo.invoice.void.v1", "Invoice", "Void"),
        ("qbo.invoice.voided.v1", "Invoice", "Void"),
        ("qbo.invoice.emailed.v1", "Invoice", "Emailed"),
        ("qbo.customer.merged.v1", "Customer", "Merge"),
        ("qbo.billpayment.deleted.v1", "BillPayment", "Delete"),
        ("qbo.companycurrency.updated.v1", "CompanyCurrency", "Update"),
    ],
)
def test_R29_cloudevents_types_map_to_qbo_entities_and_operations(
    type_: str, entity: str, operation: str
) -> None:
    (event,) = parse_events([{**CLOUD_EVENT, "type": type_}])
    assert (event.entity, event.operation, event.known) == (entity, operation, True)


def test_R29_unknown_entities_and_operations_are_kept_but_flagged() -> None:
    (cloud,) = parse_events([{**CLOUD_EVENT, "type": "qbo.widget.created.v1"}])
    assert (cloud.entity, cloud.operation, cloud.known) == ("widget", "Create", False)
    (odd_op,) = parse_events([{**CLOUD_EVENT, "type": "qbo.invoice.archived.v1"}])
    assert (odd_op.entity, odd_op.operation, odd_op.known) == ("Invoice", "Archived", False)
    legacy = {
        "eventNotifications": [
            {
                "realmId": "1",
                "dataChangeEvent": {
                    "entities": [{"name": "Gadget", "id": "3", "operation": "Update"}]
                },
            }
        ]
    }
    (event,) = parse_events(legacy)
    assert (event.entity, event.known) == ("Gadget", False)


def test_R29_cloudevents_merge_takes_the_deleted_id_from_data() -> None:
    (event,) = parse_events(
        [{**CLOUD_EVENT, "type": "qbo.customer.merged.v1", "data": {"deletedId": "77"}}]
    )
    assert (event.operation, event.deleted_id, event.removes) == ("Merge", "77", True)


@pytest.mark.parametrize(
    ("body", "where"),
    [
        (b"not json", "not UTF-8 JSON"),
        (b"\xff\xfe", "not UTF-8 JSON"),
        (b'"a string"', "JSON object"),
        (b"{}", "eventNotifications"),
        (b'{"eventNotifications":{}}', "eventNotifications"),
        (b'{"eventNotifications":[{"dataChangeEvent":{"entities":[]}}]}', "realmId"),
        (b'{"eventNotifications":[{"realmId":"1"}]}', "dataChangeEvent"),
        (b'{"eventNotifications":[{"realmId":"1","dataChangeEvent":{}}]}', "entities"),
        (
            b'{"eventNotifications":[{"realmId":"1","dataChangeEvent":{"entities":[{"name":"C"}]}}]}',
            "'id' is missing",
        ),
        (
            b'{"eventNotifications":[{"realmId":"1","dataChangeEvent":{"entities":'
            b'[{"name":"Customer","id":{"x":1},"operation":"Update"}]}}]}',
            "'id' must be a string",
        ),
        (
            b'{"eventNotifications":[{"realmId":"1","dataChangeEvent":{"entities":'
            b'[{"name":"Customer","id":"1","operation":"Update","lastUpdated":"yesterday"}]}}]}',
            "lastUpdated",
        ),
        (b"[1]", "[0]: must be a JSON object"),
        (b'[{"id":"x","intuitaccountid":"1","intuitentityid":"2"}]', "'type' is missing"),
        (
            b'[{"id":"x","intuitaccountid":"1","intuitentityid":"2","type":"com.other.thing"}]',
            "qbo.<entity>.<operation>.v1",
        ),
        (
            b'[{"type":"qbo.customer.updated.v1","intuitaccountid":"1","intuitentityid":"2"}]',
            "'id'",
        ),
    ],
)
def test_R29_malformed_bodies_raise_a_value_error_saying_where(body: bytes, where: str) -> None:
    with pytest.raises(MalformedPayload) as info:
        parse_body(body)
    assert isinstance(info.value, ValueError)
    assert where in str(info.value)


def test_R29_timestamps_without_offset_are_utc_and_offsets_are_converted() -> None:
    assert parse_time("2024-05-06T07:08:09", "t") == datetime(2024, 5, 6, 7, 8, 9, tzinfo=UTC)
    assert parse_time("2024-05-06T07:08:09.5-07:00", "t") == datetime(
        2024, 5, 6, 14, 8, 9, 500000, tzinfo=UTC
    )
    assert parse_time(None, "t") is None
