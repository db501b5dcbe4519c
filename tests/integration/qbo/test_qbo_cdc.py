"""CDC over a 45-day gap with more than 1000 changes, on the sandbox clock (R29, R36)."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta
from typing import Any

from qbo_sandbox_helpers import Company

from qbo_pipelines.qbo import QboClient, RealmId, parse_datetime


def _at(company: Company, when: Any) -> None:
    company.control.set_clock(when.isoformat())


def test_R36_cdc_45_day_gap_over_1000_changes_each_exactly_once(empty_company: Company) -> None:
    control, realm = empty_company.control, empty_company.realm_id
    t0 = parse_datetime(control.now())
    start = t0 - timedelta(days=45)
    customers: list[dict[str, Any]] = []
    payments: list[dict[str, Any]] = []
    for day in range(45):
        _at(empty_company, start + timedelta(days=day, hours=1))
        bodies = [{"DisplayName": f"Gap {day:02d}-{i:02d}"} for i in range(40)]
        customers += control.bulk_create(realm, "Customer", bodies)
        if day >= 35:  # recent transactions, some deleted later
            pay = [
                {"CustomerRef": {"value": customers[i]["Id"]}, "TotalAmt": 10 + i}
                for i in range(20)
            ]
            payments += control.bulk_create(realm, "Payment", pay)
    _at(empty_company, t0 - timedelta(days=3))
    deleted = {p["Id"] for p in payments[::7]}
    for pid in deleted:
        control.user_delete(realm, "Payment", pid)
    updated = {c["Id"] for c in customers[:50:5]}  # old customers changed recently
    for cid in updated:
        control.user_update(realm, "Customer", {"Id": cid, "Notes": "changed recently"})
    _at(empty_company, t0 + timedelta(hours=1))

    token = control.mint_tokens(realm)["access_token"]
    client = Company(empty_company.sandbox, RealmId(realm), token).client()
    assert isinstance(client, QboClient)
    result = client.cdc(["Customer", "Payment"], since=start)

    keys = Counter((c.entity, c.id) for c in result.changes)
    assert max(keys.values()) == 1  # exactly once
    got_customers = {c.id for c in result.changes if c.entity == "Customer"}
    got_payments = {c.id: c for c in result.changes if c.entity == "Payment"}
    assert got_customers == {c["Id"] for c in customers}
    assert set(got_payments) == {p["Id"] for p in payments}
    assert {pid for pid, c in got_payments.items() if c.deleted} == deleted
    assert all(got_payments[pid].data.get("status") == "Deleted" for pid in deleted)
    notes = {c.id: c.data.get("Notes") for c in result.changes if c.entity == "Customer"}
    assert all(notes[cid] == "changed recently" for cid in updated)
    assert len(result.changes) > 1000
    assert result.checkpoint >= (t0 + timedelta(hours=1)).replace(microsecond=0)
    assert result.deletes_complete_since <= t0 - timedelta(days=3)
    kinds = {w[2] for w in result.windows}
    assert "query:Customer" in kinds  # the part older than 30 days
    assert "cdc:Customer" in kinds  # the capped CDC call was re-split per entity

    # the next read from the checkpoint sees only what changed after it
    control.advance_clock(60)
    control.user_update(realm, "Customer", {"Id": customers[-1]["Id"], "Notes": "later"})
    control.advance_clock(60)
    nxt = client.cdc(["Customer", "Payment"], since=result.checkpoint)
    assert [(c.entity, c.id) for c in nxt.changes] == [("Customer", customers[-1]["Id"])]
