"""The simulated bookkeeper (issue 10, "A bookkeeper in the sandbox"): a company that changes
on its own, reproducibly for a seed, through the same rules as API writes.

QBO_API.md §3 (CDC sees the changes), §5.4/§5.5 (deletes and voids), §10 (webhook events),
§11.1/§11.4/§11.5 (balances stay consistent with the transactions).
"""

from __future__ import annotations

import time
from decimal import Decimal
from typing import Any

import pytest

from qbo_pipelines.cli import main
from qbo_pipelines.sandbox.testing import SandboxHandle, run_sandbox

from .helpers import Api


def _strip(done: list[dict[str, Any]]) -> list[tuple[str, Any, Any]]:
    return [(d["chore"], d.get("entity"), d.get("id")) for d in done]


def test_same_seed_same_chores_on_a_fresh_company() -> None:
    """Reproducible: two fresh sandboxes, one seed, the same 40 chores with the same ids."""
    runs = []
    for _ in range(2):
        with run_sandbox(throttle=False) as handle:
            runs.append(handle.control.bookkeeper_run(handle.realm_id, steps=40, seed=7))
    assert _strip(runs[0]) == _strip(runs[1])
    with run_sandbox(throttle=False) as handle:
        other = handle.control.bookkeeper_run(handle.realm_id, steps=40, seed=8)
    assert _strip(other) != _strip(runs[0])


def _picked(handle: SandboxHandle, order: list[str]) -> list[tuple[str, Any]]:
    """Customers named ``order`` created in that order (their Ids follow it), then one seeded
    run of customer edits and invoices: which customer each chore took, by name."""
    api = Api(handle)
    for name in order:
        api.create("Customer", {"DisplayName": name})
    done = handle.control.bookkeeper_run(handle.realm_id, steps=1, seed=5,
                                         chores=["edit_customer", "invoice"] * 4)
    picked = []
    for d in done:
        body = api.ok(api.get(f"/{d['entity'].lower()}/{d['id']}"))[d["entity"]]
        ref = body.get("CustomerRef", {}).get("value", body["Id"])
        customer = api.ok(api.get(f"/customer/{ref}"))["Customer"]
        picked.append((d["chore"], customer["DisplayName"]))
    api.session.close()
    return picked


def test_the_picks_follow_the_books_content_not_the_order_of_their_ids() -> None:
    """The demo's figures repeat from clone to clone: the records the push creates take their
    QBO Ids in the order concurrent writes commit, which changes from run to run; the
    bookkeeper picks by what the records hold (name, number, date, amount), so one seed over
    the same books makes the same chores whatever Ids they were given."""
    names = [f"Order Test {c}" for c in "ABCDEFGH"]
    with run_sandbox(throttle=False) as handle:
        forward = _picked(handle, names)
    with run_sandbox(throttle=False) as handle:
        backward = _picked(handle, names[::-1])
    assert forward == backward
    assert len({name for _, name in forward}) > 1


def test_named_chores_run_in_order_and_unknown_ones_are_refused() -> None:
    """``chores`` runs exactly those, in order (the demo's day touches every kind of record)."""
    chores = ["bill", "bill_payment", "deposit", "edit_customer"]
    with run_sandbox(throttle=False) as handle:
        done = handle.control.bookkeeper_run(handle.realm_id, steps=1, seed=3, chores=chores)
        assert [d["chore"] for d in done] == chores
        assert done[1]["entity"] == "BillPayment"
        with pytest.raises(Exception, match="unknown chores"):
            handle.control.bookkeeper_run(handle.realm_id, steps=1, chores=["pay_rent"])


def test_chores_show_in_cdc_and_balances_stay_consistent(sandbox: SandboxHandle,
                                                         api: Api) -> None:
    """Payments, voids, deletes, bills, estimates... all through the entity rules; CDC reports
    them; Σ Customer.Balance = A/R balance = aged receivables total."""
    since = sandbox.control.now()
    done = sandbox.control.bookkeeper_run(sandbox.realm_id, steps=150, seed=3)
    chores = {d["chore"] for d in done if "id" in d}
    assert {"invoice", "payment", "edit_customer", "bill", "void", "delete", "estimate",
            "credit_memo", "sales_receipt", "bill_payment"} <= chores
    names = ("Invoice", "Payment", "Customer", "Bill", "BillPayment", "Estimate", "CreditMemo")
    cdc = api.ok(api.get("/cdc", entities=",".join(names), changedSince=since))
    elements = cdc["CDCResponse"][0]["QueryResponse"]
    changed = {name: len(e.get(name, [])) for name, e in zip(names, elements, strict=True)}
    assert all(changed.values()), changed
    deletes = [d for d in done if d["chore"] == "delete" and "id" in d]
    stubs = [o for e in elements for v in e.values() if isinstance(v, list) for o in v
             if o.get("status") == "Deleted"]
    assert len(stubs) == len(deletes)
    customers = api.ok(api.query("select * from Customer maxresults 1000"))
    owed = sum(Decimal(str(c["Balance"])) for c in customers["QueryResponse"]["Customer"])
    ar = api.ok(api.query("select * from Account where AccountType = 'Accounts Receivable'"))
    assert Decimal(str(ar["QueryResponse"]["Account"][0]["CurrentBalance"])) == owed
    aging = api.ok(api.get("/reports/AgedReceivables"))["Rows"]["Row"][-1]
    assert Decimal(aging["Summary"]["ColData"][-1]["value"]) == owed
    sheet = api.ok(api.get("/reports/BalanceSheet"))["Rows"]["Row"]
    assert sheet[0]["Summary"]["ColData"][1] == sheet[1]["Summary"]["ColData"][1]


def test_realistic_mess_in_names_and_memos(sandbox: SandboxHandle, api: Api) -> None:
    """Apostrophes, accents and long memos reach the company (and survive queries)."""
    sandbox.control.bookkeeper_run(sandbox.realm_id, steps=120, seed=11)
    customers = api.ok(api.query("select * from Customer maxresults 1000"))
    names = " ".join(c["DisplayName"] + " " + c.get("CompanyName", "")
                     for c in customers["QueryResponse"]["Customer"])
    assert "'" in names
    assert any(ord(ch) > 127 for ch in names)
    invoices = api.ok(api.query("select * from Invoice maxresults 1000"))
    assert max(len(i.get("PrivateNote", "")) for i in invoices["QueryResponse"]["Invoice"]) > 400


def test_bookkeeper_at_a_rate_until_stopped(sandbox: SandboxHandle) -> None:
    """``rate_per_minute`` runs chores in the background; stop returns how many it did."""
    sandbox.control.bookkeeper_start(sandbox.realm_id, rate_per_minute=1200, seed=5,
                                     max_steps=6)
    deadline = time.monotonic() + 10
    while sandbox.control.bookkeeper_status(sandbox.realm_id)["steps"] < 6:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert sandbox.control.bookkeeper_stop(sandbox.realm_id) == 6
    assert sandbox.control.bookkeeper_status(sandbox.realm_id) == {"running": False,
                                                                    "steps": 0}


def test_cli_demo_simulate_drives_the_sandbox_bookkeeper(
        sandbox: SandboxHandle, capsys: pytest.CaptureFixture[str]) -> None:
    """``qbo-pipelines demo simulate --sandbox-url URL --sandbox-only`` changes the company."""
    before = sum(sandbox.control.count(sandbox.realm_id, e) for e in ("Invoice", "Customer"))
    code = main(["demo", "simulate", "--sandbox-url", sandbox.base_url, "--sandbox-only",
                 "--rate", "40", "--duration", "0.5", "--seed", "4"])
    assert code == 0
    assert "sandbox bookkeeper: 20 chores" in capsys.readouterr().out
    after = sum(sandbox.control.count(sandbox.realm_id, e) for e in ("Invoice", "Customer"))
    assert after > before
