"""A simulated bookkeeper: a QBO company that changes on its own.

Each step picks one chore with a seeded ``random.Random`` (same seed, same starting company:
same chores): edit a customer, add one, raise an invoice, record a payment against an open
invoice, deposit undeposited payments, write an estimate, a credit memo or a sales receipt,
enter a bill, pay an open bill, void or delete a transaction. Names and memos carry the mess of
real books (apostrophes, accents, commas, long memos). Every change goes through
``Sandbox.write`` - the entity rules, balances, CDC, webhooks and the journal see it as any
change made "in QBO". A chore QBO refuses (say, deleting an invoice that got paid meanwhile)
is recorded as refused, as a bookkeeper would see an error and move on.

Control API: ``POST /_sandbox/bookkeeper/{realm}`` with ``{"steps": N, "seed": S}`` runs N
steps and answers what was done; with ``{"rate_per_minute": R, "seed": S}`` starts a
background bookkeeper (``"max_steps"`` optional); ``GET`` tells whether one runs and how many
steps it did; ``DELETE`` stops it.
"""

from __future__ import annotations

import json
import random
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from qbo_pipelines.sandbox import errors
from qbo_pipelines.sandbox.state import Obj

if TYPE_CHECKING:
    from qbo_pipelines.sandbox.runtime import Sandbox

NAMES = ("O'Brien & Sons", "Zoë's Café", "Łukasz Wójcik", "Crème Brûlée Co.",
         "Nguyễn Văn An", "Smith, Jones & Müller", "D'Angelo Plumbing", "Ærøskøbing Bikes",
         "Renée O'Connor", "Façade Décor Ltd", "José Ramírez", "Björk & Ström AB",
         "Ma'at Consulting", "Saint-Étienne Bakery", "Al-Rashid Trading", "Cañon City Feed")
MEMOS = ("Per phone call w/ client - rush order", "Net 30, see PO #4471",
         "Customer's 2nd order; ask about the “discount” they mentioned",
         "Reprinted after the owner's email — address corrected",
         "Split across two deliveries; remainder on back-order (ETA unknown)")
LONG_MEMO = ("Follow-up: the client disputes line 2 (they say the installation took 3h, not "
             "4h); agreed to a goodwill credit if the café's manager confirms by Friday. ") * 6
CHORES = (("edit_customer", 14), ("new_customer", 4), ("invoice", 18), ("payment", 16),
          ("deposit", 4), ("estimate", 7), ("credit_memo", 5), ("sales_receipt", 8),
          ("bill", 9), ("bill_payment", 6), ("void", 5), ("delete", 4))


def content_order(row: Obj) -> tuple[str, ...]:
    """A row's sort key by what it holds: its name or document number, date, amount and
    customer, then its Id (only rows alike in all of these fall back to the order of their
    Ids)."""
    ref = row.get("CustomerRef") or row.get("VendorRef")
    key = int(row["Id"]) if str(row.get("Id")).isdigit() else 0
    return (
        str(row.get("DisplayName") or row.get("Name") or ""),
        str(row.get("DocNumber") or row.get("PaymentRefNum") or ""),
        str(row.get("TxnDate") or ""),
        str(row.get("TotalAmt") or ""),
        str(ref.get("name") or "") if isinstance(ref, dict) else "",
        f"{key:020d}",
    )


@dataclass
class Bookkeeper:
    sandbox: Sandbox
    realm: str
    rng: random.Random
    done: list[Obj] = field(default_factory=list)
    counter: int = 0

    # -- reading the books --------------------------------------------------------------------

    def rows(self, entity: str) -> list[Obj]:
        """The company's active rows of ``entity`` in a content order (:func:`content_order`):
        the seeded picks then depend on what the books hold, not on the order in which
        concurrent writes took their Ids, so one seed makes the same chores on every company
        built from the same data (the demo's figures repeat from clone to clone)."""
        return sorted(self.sandbox.entities(self.realm, entity, include_inactive=False),
                      key=content_order)

    def pick(self, rows: list[Obj]) -> Obj | None:
        return self.rng.choice(rows) if rows else None

    def account(self, *types: str) -> Obj | None:
        return self.pick([a for a in self.rows("Account") if a.get("AccountType") in types])

    def memo(self) -> str:
        roll = self.rng.random()
        if roll < 0.15:
            return LONG_MEMO[: self.rng.randint(400, 3900)]
        return self.rng.choice(MEMOS)

    def lines(self) -> list[Obj]:
        items = [i for i in self.rows("Item") if i.get("Type") != "Category"]
        out = []
        for _ in range(self.rng.randint(1, 3)):
            item = self.rng.choice(items)
            qty = self.rng.randint(1, 8)
            price = float(item.get("UnitPrice") or self.rng.choice((35, 49.5, 120, 18.25)))
            out.append({"Amount": round(qty * price, 2), "DetailType": "SalesItemLineDetail",
                        "Description": self.rng.choice(MEMOS)[:60],
                        "SalesItemLineDetail": {"ItemRef": {"value": item["Id"]}, "Qty": qty,
                                                "UnitPrice": price}})
        return out

    def write(self, entity: str, body: Obj, op: str = "create") -> Obj:
        return self.sandbox.write(self.realm, entity, [body], op)[0]

    # -- chores -------------------------------------------------------------------------------

    def step(self, chore: str | None = None) -> Obj:
        """One chore: ``chore`` if named (one of :data:`CHORES`), else one drawn by weight."""
        names, weights = zip(*CHORES, strict=True)
        if chore is None:
            chore = self.rng.choices(names, weights=weights)[0]
        elif chore not in names:
            raise ValueError(f"unknown chore {chore!r}; one of {', '.join(names)}")
        try:
            result = getattr(self, f"_{chore}")()
        except errors.QboFault as fault:
            result = {"refused": fault.code, "detail": fault.detail[:200]}
        entry = {"step": len(self.done) + 1, "chore": chore, **(result or {"skipped": True})}
        self.done.append(entry)
        return entry

    def _edit_customer(self) -> Obj | None:
        customer = self.pick(self.rows("Customer"))
        if customer is None:
            return None
        change: Obj = {"Id": customer["Id"], "SyncToken": customer["SyncToken"],
                       "sparse": True}
        what = self.rng.choice(("phone", "email", "notes", "company", "address"))
        if what == "phone":
            change["PrimaryPhone"] = {"FreeFormNumber": f"(555) {self.rng.randint(100, 999)}-"
                                                        f"{self.rng.randint(1000, 9999)}"}
        elif what == "email":
            change["PrimaryEmailAddr"] = {"Address": f"billing{self.rng.randint(1, 99)}@"
                                                     "example.com"}
        elif what == "notes":
            change["Notes"] = self.memo()[:2000]
        elif what == "company":
            change["CompanyName"] = self.rng.choice(NAMES)
        else:
            change["BillAddr"] = {"Line1": f"{self.rng.randint(1, 999)} Rue de l'Église",
                                  "City": self.rng.choice(("Montréal", "Zürich", "Köln")),
                                  "PostalCode": f"{self.rng.randint(10000, 99999)}"}
        self.write("Customer", change, "update")
        return {"entity": "Customer", "id": customer["Id"], "field": what}

    def _new_customer(self) -> Obj:
        self.counter += 1
        name = f"{self.rng.choice(NAMES)} #{self.rng.randint(100, 999)}-{self.counter}"
        created = self.write("Customer", {"DisplayName": name, "Notes": self.memo()[:2000]})
        return {"entity": "Customer", "id": created["Id"]}

    def _sales_form(self, entity: str) -> Obj | None:
        customer = self.pick(self.rows("Customer"))
        if customer is None:
            return None
        body: Obj = {"CustomerRef": {"value": customer["Id"]}, "Line": self.lines(),
                     "PrivateNote": self.memo()}
        if entity == "Invoice" and self.rng.random() < 0.3:
            body["CustomerMemo"] = {"value": "Thank you — merci — danke!"}
        created = self.write(entity, body)
        return {"entity": entity, "id": created["Id"], "total": created["TotalAmt"]}

    def _invoice(self) -> Obj | None:
        return self._sales_form("Invoice")

    def _estimate(self) -> Obj | None:
        return self._sales_form("Estimate")

    def _credit_memo(self) -> Obj | None:
        return self._sales_form("CreditMemo")

    def _sales_receipt(self) -> Obj | None:
        return self._sales_form("SalesReceipt")

    def _payment(self) -> Obj | None:
        invoice = self.pick([i for i in self.rows("Invoice") if (i.get("Balance") or 0) > 0])
        if invoice is None:
            return None
        balance = float(invoice["Balance"])
        amount = balance if self.rng.random() < 0.7 else round(balance * self.rng.choice(
            (0.25, 0.5, 0.8)), 2)
        body: Obj = {"CustomerRef": invoice["CustomerRef"], "TotalAmt": amount,
                     "Line": [{"Amount": amount, "LinkedTxn": [
                         {"TxnId": invoice["Id"], "TxnType": "Invoice"}]}]}
        if self.rng.random() < 0.4:
            body["PaymentRefNum"] = str(self.rng.randint(1000, 9999))
        created = self.write("Payment", body)
        return {"entity": "Payment", "id": created["Id"], "invoice": invoice["Id"],
                "amount": amount}

    def _deposit(self) -> Obj | None:
        funds = {a["Id"] for a in self.rows("Account")
                 if a.get("AccountSubType") == "UndepositedFunds"}
        deposited = {(str(lk.get("TxnType")), str(lk.get("TxnId")))
                     for d in self.rows("Deposit") for ln in d.get("Line", [])
                     for lk in ln.get("LinkedTxn", []) or []}
        waiting = [(e, p) for e in ("Payment", "SalesReceipt") for p in self.rows(e)
                   if (p.get("DepositToAccountRef") or {}).get("value") in funds
                   and (e, p["Id"]) not in deposited and (p.get("TotalAmt") or 0) > 0]
        bank = self.account("Bank")
        if not waiting or bank is None:
            return None
        chosen = waiting[: self.rng.randint(1, min(5, len(waiting)))]
        created = self.write("Deposit", {
            "DepositToAccountRef": {"value": bank["Id"]},
            "Line": [{"Amount": p["TotalAmt"], "LinkedTxn": [{"TxnId": p["Id"],
                                                              "TxnType": e}]}
                     for e, p in chosen]})
        return {"entity": "Deposit", "id": created["Id"], "items": len(chosen)}

    def _bill(self) -> Obj | None:
        vendor = self.pick(self.rows("Vendor"))
        expense = self.account("Expense")
        if vendor is None or expense is None:
            return None
        amount = round(self.rng.uniform(20, 900), 2)
        created = self.write("Bill", {
            "VendorRef": {"value": vendor["Id"]}, "PrivateNote": self.memo(),
            "Line": [{"Amount": amount, "DetailType": "AccountBasedExpenseLineDetail",
                      "Description": self.rng.choice(MEMOS)[:80],
                      "AccountBasedExpenseLineDetail": {"AccountRef": {"value":
                                                                       expense["Id"]}}}]})
        return {"entity": "Bill", "id": created["Id"], "total": created["TotalAmt"]}

    def _bill_payment(self) -> Obj | None:
        bill = self.pick([b for b in self.rows("Bill") if (b.get("Balance") or 0) > 0])
        bank = self.account("Bank")
        if bill is None or bank is None:
            return None
        amount = float(bill["Balance"])
        created = self.write("BillPayment", {
            "VendorRef": bill["VendorRef"], "PayType": "Check", "TotalAmt": amount,
            "CheckPayment": {"BankAccountRef": {"value": bank["Id"]}},
            "Line": [{"Amount": amount, "LinkedTxn": [{"TxnId": bill["Id"],
                                                       "TxnType": "Bill"}]}]})
        return {"entity": "BillPayment", "id": created["Id"], "bill": bill["Id"]}

    def _void(self) -> Obj | None:
        entity = self.rng.choice(("Invoice", "Payment", "SalesReceipt"))
        rows = [r for r in self.rows(entity) if (r.get("TotalAmt") or 0) > 0]
        target = self.pick(rows)
        if target is None:
            return None
        self.write(entity, {"Id": target["Id"], "SyncToken": target["SyncToken"]}, "void")
        return {"entity": entity, "id": target["Id"]}

    def _delete(self) -> Obj | None:
        entity = self.rng.choice(("Estimate", "Invoice", "Payment", "CreditMemo"))
        target = self.pick(self.rows(entity))
        if target is None:
            return None
        self.write(entity, {"Id": target["Id"], "SyncToken": target["SyncToken"]}, "delete")
        return {"entity": entity, "id": target["Id"]}


def run_steps(sandbox: Sandbox, realm: str, steps: int, seed: int,
              chores: Sequence[str] | None = None) -> list[Obj]:
    """Run ``steps`` chores now; the same seed on the same company does the same chores.
    ``chores`` names them in order instead (the records they touch still come from the seed)."""
    if realm not in sandbox.store.companies:
        raise KeyError(f"unknown realm {realm}")
    known = {name for name, _ in CHORES}
    unknown = sorted(set(chores or ()) - known)
    if unknown:
        raise ValueError(f"unknown chores {unknown}; one of {', '.join(sorted(known))}")
    keeper = Bookkeeper(sandbox, realm, random.Random(seed))
    planned: list[str | None] = list(chores) if chores else [None] * steps
    for chore in planned:
        keeper.step(chore)
    return keeper.done


@dataclass
class _Running:
    keeper: Bookkeeper
    stop: threading.Event
    thread: threading.Thread


_RUNNING: dict[tuple[int, str], _Running] = {}
_LOCK = threading.Lock()


def start(sandbox: Sandbox, realm: str, rate_per_minute: float, seed: int,
          max_steps: int | None = None) -> None:
    """A background bookkeeper doing ``rate_per_minute`` chores a minute until stopped."""
    if realm not in sandbox.store.companies:
        raise KeyError(f"unknown realm {realm}")
    if rate_per_minute <= 0:
        raise ValueError("rate_per_minute must be positive")
    stop(sandbox, realm)
    keeper = Bookkeeper(sandbox, realm, random.Random(seed))
    event = threading.Event()

    def loop() -> None:
        interval = 60.0 / rate_per_minute
        while not event.wait(interval):
            if max_steps is not None and len(keeper.done) >= max_steps:
                return
            keeper.step()

    thread = threading.Thread(target=loop, name=f"bookkeeper-{realm}", daemon=True)
    with _LOCK:
        _RUNNING[(id(sandbox), realm)] = _Running(keeper, event, thread)
    thread.start()


def stop(sandbox: Sandbox, realm: str) -> int:
    """Stop the background bookkeeper of a realm; the number of steps it did."""
    with _LOCK:
        running = _RUNNING.pop((id(sandbox), realm), None)
    if running is None:
        return 0
    running.stop.set()
    running.thread.join(timeout=10)
    return len(running.keeper.done)


def status(sandbox: Sandbox, realm: str) -> Obj:
    with _LOCK:
        running = _RUNNING.get((id(sandbox), realm))
    if running is None:
        return {"running": False, "steps": 0}
    return {"running": running.thread.is_alive(), "steps": len(running.keeper.done),
            "last": running.keeper.done[-5:]}


class Endpoint:
    """``/_sandbox/bookkeeper/{realm}`` (registered in ``control_api``)."""

    def __init__(self, sandbox: Sandbox) -> None:
        self.sandbox = sandbox

    async def handle(self, request: Request) -> Any:
        realm = request.path_params["realm"]
        if request.method == "GET":
            return status(self.sandbox, realm)
        if request.method == "DELETE":
            return {"stopped": True, "steps": await run_in_threadpool(stop, self.sandbox,
                                                                      realm)}
        raw = await request.body()
        data = json.loads(raw) if raw else {}
        if not isinstance(data, dict):
            raise ValueError("control API bodies are JSON objects")
        seed = int(data.get("seed", 0))
        if "rate_per_minute" in data:
            max_steps = data.get("max_steps")
            start(self.sandbox, realm, float(data["rate_per_minute"]), seed,
                  int(max_steps) if max_steps is not None else None)
            return {"started": True}
        chores = data.get("chores")
        if chores is not None and not (isinstance(chores, list) and chores
                                       and all(isinstance(c, str) for c in chores)):
            raise ValueError("chores must be a non-empty list of chore names")
        steps = len(chores) if chores else int(data.get("steps", 10))
        if not 0 < steps <= 10000:
            raise ValueError("steps must be between 1 and 10000")
        done = await run_in_threadpool(run_steps, self.sandbox, realm, steps, seed, chores)
        return {"steps": done}
