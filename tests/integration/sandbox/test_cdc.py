"""Change data capture: shape, Deleted stubs, 30-day lookback, 1000-object cap."""

from __future__ import annotations

from qbo_pipelines.sandbox.testing import SandboxHandle

from .helpers import Api, fault_of


def _line(amount: float) -> dict:
    return {"Amount": amount, "DetailType": "SalesItemLineDetail",
            "SalesItemLineDetail": {"ItemRef": {"value": "1"}}}


def test_R36_cdc_returns_changes_and_deleted_stubs(api: Api) -> None:
    since = api.handle.control.now()
    customer = api.create("Customer", {"DisplayName": "CDC Carl"})
    invoice = api.create("Invoice", {"CustomerRef": {"value": customer["Id"]},
                                     "Line": [_line(10)]})
    api.ok(api.post("/invoice", {"Id": invoice["Id"], "SyncToken": invoice["SyncToken"]},
                    operation="delete"))
    data = api.ok(api.get("/cdc", entities="customer,Invoice,Vendor", changedSince=since))
    responses = data["CDCResponse"][0]["QueryResponse"]
    assert len(responses) == 3
    assert [c["DisplayName"] for c in responses[0]["Customer"]] == ["CDC Carl"]
    assert responses[1]["Invoice"] == [{
        "status": "Deleted", "domain": "QBO", "Id": invoice["Id"],
        "MetaData": {"LastUpdatedTime": responses[1]["Invoice"][0]["MetaData"][
            "LastUpdatedTime"]}}]
    assert responses[2] == {}


def test_cdc_lookback_is_30_days(api: Api) -> None:
    api.handle.control.set_clock("2026-03-31T12:00:00-08:00")
    fault = fault_of(api.get("/cdc", entities="Customer", changedSince="2026-02-28"))
    assert fault["Detail"] == ("Operation cdc with changedSince date 2026-02-28 which is older "
                               "than fixed days is not supported.")
    api.ok(api.get("/cdc", entities="Customer", changedSince="2026-03-02"))


def test_cdc_caps_at_1000_objects_across_entities(sandbox: SandboxHandle, api: Api) -> None:
    since = sandbox.control.now()
    sandbox.control.bulk_create(api.realm_id, "Customer",
                                [{"DisplayName": f"Cap {n}"} for n in range(900)])
    sandbox.control.bulk_create(api.realm_id, "Vendor",
                                [{"DisplayName": f"Cap V {n}"} for n in range(300)])
    data = api.ok(api.get("/cdc", entities="Customer,Vendor", changedSince=since))
    customers, vendors = data["CDCResponse"][0]["QueryResponse"]
    assert len(customers["Customer"]) == 900
    assert len(vendors["Vendor"]) == 100


def test_cdc_answers_taxcode_with_an_empty_element(api: Api) -> None:
    """QBO_API.md §3: CDC does not cover TaxCode; the call still succeeds ({} for it)."""
    since = api.handle.control.now()
    data = api.ok(api.get("/cdc", entities="TaxCode", changedSince=since))
    assert data["CDCResponse"][0]["QueryResponse"] == [{}]
