"""Done-when of issue 10: a generic extractor written here WITHOUT our client (plain
``requests``) pages every entity by ``Metadata.LastUpdatedTime`` with STARTPOSITION/MAXRESULTS,
refreshes its token with ``client_secret_post`` and reads CDC over all entity names, and gets
for every entity exactly the sandbox's own count (control API).

QBO_API.md §2 (query language, paging: 1-based STARTPOSITION, MAXRESULTS ≤ 1000, stop on a
short or empty page; name lists hide inactive rows unless ``Active IN (true, false)``), §3 (CDC:
one element per requested type, ≤ 1000 objects in total, not for TimeActivity/TaxCode/TaxRate),
§9.3 (refresh grant; the discovery document advertises ``client_secret_post``).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import requests

from qbo_pipelines.sandbox.testing import SandboxHandle

ENTITIES = ("Account", "Attachable", "Bill", "BillPayment", "Class", "CreditMemo", "Customer",
            "Department", "Deposit", "Employee", "Estimate", "Invoice", "Item",
            "JournalEntry", "Payment", "PaymentMethod", "Purchase", "PurchaseOrder",
            "RefundReceipt", "SalesReceipt", "TaxCode", "TaxRate", "Term", "TimeActivity",
            "Transfer", "Vendor", "VendorCredit")
NAME_LISTS = {"Account", "Class", "Customer", "Department", "Employee", "Item",
              "PaymentMethod", "TaxCode", "TaxRate", "Term", "Vendor"}


class Extractor:
    """What a third-party QBO extractor does, from the discovery document on."""

    def __init__(self, base_url: str, realm: str, client_id: str, client_secret: str,
                 refresh_token: str) -> None:
        self.http = requests.Session()
        self.base = f"{base_url}/v3/company/{realm}"
        discovery = self.http.get(f"{base_url}/.well-known/openid_configuration",
                                  timeout=30).json()
        assert "client_secret_post" in discovery["token_endpoint_auth_methods_supported"]
        self.token_url = discovery["token_endpoint"]
        self.client = (client_id, client_secret)
        self.refresh_token = refresh_token
        self.access_token = ""
        self.requests = 0

    def refresh(self) -> None:
        """§9.3 step 5, credentials in the form body (client_secret_post)."""
        answer = self.http.post(self.token_url, data={
            "grant_type": "refresh_token", "refresh_token": self.refresh_token,
            "client_id": self.client[0], "client_secret": self.client[1]},
            headers={"Accept": "application/json"}, timeout=30)
        assert answer.status_code == 200, answer.text
        tokens = answer.json()
        self.access_token, self.refresh_token = tokens["access_token"], tokens["refresh_token"]

    def get(self, path: str, **params: Any) -> dict[str, Any]:
        for _ in range(2):
            answer = self.http.get(self.base + path, params={"minorversion": 75, **params},
                                   headers={"Accept": "application/json",
                                            "Authorization": f"Bearer {self.access_token}"},
                                   timeout=60)
            self.requests += 1
            if answer.status_code == 401:
                self.refresh()
                continue
            assert answer.status_code == 200, answer.text
            data: dict[str, Any] = answer.json()
            assert "Fault" not in data, data
            return data
        raise AssertionError("still unauthorised after a refresh")

    def pages(self, entity: str, since: str) -> list[dict[str, Any]]:
        where = f"Metadata.LastUpdatedTime > '{since}'"
        if entity in NAME_LISTS:
            where += " AND Active IN (true, false)"
        rows: list[dict[str, Any]] = []
        start = 1
        while True:
            text = (f"select * from {entity} where {where} "
                    f"STARTPOSITION {start} MAXRESULTS 1000")
            page = self.get("/query", query=text)["QueryResponse"].get(entity, [])
            rows.extend(page)
            if len(page) < 1000:
                return rows
            start += 1000

    def cdc(self, entities: str, since: str) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self.get("/cdc", entities=entities,
                                                changedSince=since)["CDCResponse"][0][
            "QueryResponse"]
        return result


def _busy_company(sandbox: SandboxHandle) -> None:
    control, realm = sandbox.control, sandbox.realm_id
    control.bulk_create(realm, "Customer", [{"DisplayName": f"Cliente Nº {n} d'Azur"}
                                            for n in range(1150)])
    control.bookkeeper_run(realm, steps=250, seed=21)
    customer = control.entities(realm, "Customer")[5]
    control.user_update(realm, "Customer", {"Id": customer["Id"], "Active": False})
    control.bulk_create(realm, "JournalEntry", [{"Line": [
        {"Amount": 12, "DetailType": "JournalEntryLineDetail", "JournalEntryLineDetail": {
            "PostingType": "Debit", "AccountRef": {"value": "13"}}},
        {"Amount": 12, "DetailType": "JournalEntryLineDetail", "JournalEntryLineDetail": {
            "PostingType": "Credit", "AccountRef": {"value": "1"}}}]}])
    control.bulk_create(realm, "Transfer", [{"FromAccountRef": {"value": "1"},
                                             "ToAccountRef": {"value": "2"}, "Amount": 9}])
    control.bulk_create(realm, "Purchase", [{
        "AccountRef": {"value": "16"}, "PaymentType": "CreditCard", "Line": [
            {"Amount": 5, "DetailType": "AccountBasedExpenseLineDetail",
             "AccountBasedExpenseLineDetail": {"AccountRef": {"value": "11"}}}]}])
    control.bulk_create(realm, "TimeActivity", [{"NameOf": "Employee",
                                                 "EmployeeRef": {"value": "1"}, "Hours": 2}])
    control.bulk_create(realm, "Attachable", [{"Note": "Reçu signé"}])
    control.bulk_create(realm, "PurchaseOrder", [{"VendorRef": {"value": "1"}, "Line": [
        {"Amount": 40, "DetailType": "AccountBasedExpenseLineDetail",
         "AccountBasedExpenseLineDetail": {"AccountRef": {"value": "10"}}}]}])
    control.bulk_create(realm, "VendorCredit", [{"VendorRef": {"value": "1"}, "Line": [
        {"Amount": 4, "DetailType": "AccountBasedExpenseLineDetail",
         "AccountBasedExpenseLineDetail": {"AccountRef": {"value": "10"}}}]}])
    control.bulk_create(realm, "RefundReceipt", [{
        "CustomerRef": {"value": "1"}, "DepositToAccountRef": {"value": "1"}, "Line": [
            {"Amount": 3, "DetailType": "SalesItemLineDetail",
             "SalesItemLineDetail": {"ItemRef": {"value": "2"}}}]}])


def test_generic_extractor_gets_every_entity_count(sandbox: SandboxHandle) -> None:
    """Every entity, paged by LastUpdatedTime: exactly the sandbox's own count; CDC over all
    names answers every name and agrees with the pages where it is under its 1000 cap."""
    _busy_company(sandbox)
    control, realm = sandbox.control, sandbox.realm_id
    extractor = Extractor(sandbox.base_url, realm, sandbox.client_id, sandbox.client_secret,
                          control.mint_tokens(realm)["refresh_token"])
    extractor.refresh()
    since = "2000-01-01T00:00:00-08:00"
    extracted = {entity: extractor.pages(entity, since) for entity in ENTITIES}
    for entity, rows in extracted.items():
        assert len(rows) == control.count(realm, entity), entity
        assert len({r["Id"] for r in rows}) == len(rows), entity
    assert len(extracted["Customer"]) > 1000  # the paging was exercised
    assert all(extracted[e] for e in ENTITIES), [e for e in ENTITIES if not extracted[e]]

    now = datetime.fromisoformat(control.now())
    changed_since = (now - timedelta(days=29)).isoformat(timespec="seconds")
    everything = extractor.cdc(",".join(ENTITIES), changed_since)
    assert len(everything) == len(ENTITIES)
    for entity, element in zip(ENTITIES, everything, strict=True):
        if entity in ("TimeActivity", "TaxCode", "TaxRate"):
            assert element == {}, entity
    for entity in ENTITIES:
        if entity in ("TimeActivity", "TaxCode", "TaxRate", "Customer"):
            continue
        (element,) = extractor.cdc(entity, changed_since)
        live = {o["Id"] for o in element.get(entity, []) if o.get("status") != "Deleted"}
        assert live == {r["Id"] for r in extracted[entity]}, entity
