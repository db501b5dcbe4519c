"""Core QBO behaviour over real HTTP: envelopes, CRUD, SyncToken, requestid, uniqueness."""

from __future__ import annotations

from .helpers import Api, fault_of


def test_create_returns_entity_envelope_with_server_fields(api: Api) -> None:
    response = api.post("/customer", {"DisplayName": "Jane Doe"})
    data = api.ok(response)
    customer = data["Customer"]
    assert set(data) == {"Customer", "time"}
    assert customer["SyncToken"] == "0"
    assert customer["Id"].isdigit()
    assert customer["domain"] == "QBO"
    assert customer["sparse"] is False
    assert customer["MetaData"]["CreateTime"].endswith("-08:00")
    assert data["time"].endswith("-08:00")
    assert "." in data["time"]


def test_R33_replayed_requestid_creates_nothing(api: Api) -> None:
    before = api.handle.control.count(api.realm_id, "Customer")
    first = api.post("/customer", {"DisplayName": "Once Only"}, requestid="rid-1")
    second = api.post("/customer", {"DisplayName": "Once Only"}, requestid="rid-1")
    assert first.status_code == second.status_code == 200
    assert first.content == second.content
    assert api.handle.control.count(api.realm_id, "Customer") == before + 1


def test_stale_synctoken_is_refused_with_5010(api: Api) -> None:
    customer = api.create("Customer", {"DisplayName": "Stale Sam"})
    api.create("Customer", {"Id": customer["Id"], "SyncToken": "0", "sparse": True,
                            "CompanyName": "v1"})
    response = api.post("/customer", {"Id": customer["Id"], "SyncToken": "0", "sparse": True,
                                      "CompanyName": "v2"})
    assert response.status_code == 400
    error = fault_of(response)
    assert error["code"] == "5010"
    assert error["Message"] == "Stale Object Error"
    assert response.json()["Fault"]["type"] == "ValidationFault"


def test_display_name_unique_across_customer_vendor_employee_6240(api: Api) -> None:
    api.create("Vendor", {"DisplayName": "Shared Name"})
    response = api.post("/customer", {"DisplayName": "Shared Name"})
    assert response.status_code == 400
    error = fault_of(response)
    assert error["code"] == "6240"
    assert error["Message"] == "Duplicate Name Exists Error"
