"""Helpers for the QBO extract tests: a sandbox company seeded with transactions of every
kind, a client for it and a migrated warehouse of its own."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from qbo_pipelines.qbo import QboClient, RealmId, Secret, StaticTokenProvider
from qbo_pipelines.qbo.limiter import Limits, RateLimiter
from qbo_pipelines.sandbox.testing import SandboxHandle


def _sale(amount: float, item: str = "2", qty: float = 1) -> dict[str, Any]:
    return {
        "Amount": amount,
        "DetailType": "SalesItemLineDetail",
        "Description": "Work",
        "SalesItemLineDetail": {
            "ItemRef": {"value": item},
            "Qty": qty,
            "UnitPrice": round(amount / qty, 2),
        },
    }


def _expense(amount: float, account: str = "10") -> dict[str, Any]:
    return {
        "Amount": amount,
        "DetailType": "AccountBasedExpenseLineDetail",
        "AccountBasedExpenseLineDetail": {"AccountRef": {"value": account}},
    }


@dataclass
class PullCompany:
    """A sandbox company (seeded with every kind of transaction) and a warehouse for it."""

    sandbox: SandboxHandle
    realm_id: str
    engine: sa.Engine
    limiter: RateLimiter = field(default_factory=lambda: RateLimiter(Limits()))

    @property
    def control(self) -> Any:
        return self.sandbox.control

    def client(self, **kw: Any) -> QboClient:
        token = self.control.mint_tokens(self.realm_id)["access_token"]
        kw.setdefault("limiter", self.limiter)  # one budget per company, as in production
        kw.setdefault("backoff_base", 0.01)
        kw.setdefault("backoff_max", 0.05)
        kw.setdefault("throttle_backoff_base", 0.02)
        return QboClient(
            self.sandbox.base_url, RealmId(self.realm_id), StaticTokenProvider(Secret(token)), **kw
        )

    def requests(self) -> list[dict[str, Any]]:
        return list(self.control.requests(self.realm_id))

    def endpoints(self) -> list[str]:
        return [r["endpoint"] for r in self.requests()]

    def scalar(self, sql: str, **params: Any) -> Any:
        with self.engine.connect() as conn:
            return conn.execute(sa.text(sql), {"r": self.realm_id, **params}).scalar()

    def seed_transactions(self, n: int = 6) -> dict[str, list[dict[str, Any]]]:
        """``n`` of each common transaction (with lines, payments applied, a deposit, ...)."""
        c, realm = self.control, self.realm_id
        made: dict[str, list[dict[str, Any]]] = {}

        def make(entity: str, bodies: list[dict[str, Any]]) -> list[dict[str, Any]]:
            made.setdefault(entity, []).extend(c.bulk_create(realm, entity, bodies))
            return made[entity]

        invoices = make(
            "Invoice",
            [
                {
                    "CustomerRef": {"value": str(1 + i % 4)},
                    "Line": [_sale(100 + i), _sale(50, item="4", qty=2)],
                }
                for i in range(n)
            ],
        )
        payments = make(
            "Payment",
            [
                {
                    "CustomerRef": inv["CustomerRef"],
                    "TotalAmt": inv["TotalAmt"],
                    "Line": [
                        {
                            "Amount": inv["TotalAmt"],
                            "LinkedTxn": [{"TxnId": inv["Id"], "TxnType": "Invoice"}],
                        }
                    ],
                }
                for inv in invoices[: n // 2]
            ],
        )
        receipts = make(
            "SalesReceipt",
            [{"CustomerRef": {"value": "2"}, "Line": [_sale(40 + i)]} for i in range(n)],
        )
        make("Estimate", [{"CustomerRef": {"value": "3"}, "Line": [_sale(70)]}] * n)
        make("CreditMemo", [{"CustomerRef": {"value": "1"}, "Line": [_sale(15)]}] * n)
        make(
            "RefundReceipt",
            [
                {
                    "CustomerRef": {"value": "2"},
                    "DepositToAccountRef": {"value": "1"},
                    "Line": [_sale(12)],
                }
            ]
            * n,
        )
        bills = make(
            "Bill",
            [
                {"VendorRef": {"value": "2"}, "Line": [_expense(90 + i), _expense(10, "12")]}
                for i in range(n)
            ],
        )
        make(
            "BillPayment",
            [
                {
                    "VendorRef": {"value": "2"},
                    "PayType": "Check",
                    "TotalAmt": b["TotalAmt"],
                    "CheckPayment": {"BankAccountRef": {"value": "1"}},
                    "Line": [
                        {
                            "Amount": b["TotalAmt"],
                            "LinkedTxn": [{"TxnId": b["Id"], "TxnType": "Bill"}],
                        }
                    ],
                }
                for b in bills[: n // 2]
            ],
        )
        make("VendorCredit", [{"VendorRef": {"value": "1"}, "Line": [_expense(20)]}] * n)
        make(
            "Purchase",
            [
                {
                    "AccountRef": {"value": "16"},
                    "PaymentType": "CreditCard",
                    "EntityRef": {"value": "2", "type": "Vendor"},
                    "Line": [_expense(33.5, "12")],
                }
            ]
            * n,
        )
        make(
            "PurchaseOrder",
            [
                {
                    "VendorRef": {"value": "2"},
                    "Line": [
                        {
                            "Amount": 50,
                            "DetailType": "ItemBasedExpenseLineDetail",
                            "ItemBasedExpenseLineDetail": {
                                "ItemRef": {"value": "4"},
                                "Qty": 2,
                                "UnitPrice": 25,
                            },
                        }
                    ],
                }
            ]
            * n,
        )
        make(
            "JournalEntry",
            [
                {
                    "Line": [
                        {
                            "Amount": 25,
                            "DetailType": "JournalEntryLineDetail",
                            "JournalEntryLineDetail": {
                                "PostingType": "Debit",
                                "AccountRef": {"value": "11"},
                            },
                        },
                        {
                            "Amount": 25,
                            "DetailType": "JournalEntryLineDetail",
                            "JournalEntryLineDetail": {
                                "PostingType": "Credit",
                                "AccountRef": {"value": "1"},
                            },
                        },
                    ]
                }
            ]
            * n,
        )
        make(
            "Deposit",
            [
                {
                    "DepositToAccountRef": {"value": "1"},
                    "Line": [
                        {
                            "Amount": r["TotalAmt"],
                            "LinkedTxn": [{"TxnId": r["Id"], "TxnType": "SalesReceipt"}],
                        }
                    ],
                }
                for r in receipts[:2]
            ],
        )
        make(
            "Transfer",
            [{"FromAccountRef": {"value": "1"}, "ToAccountRef": {"value": "2"}, "Amount": 500}] * 2,
        )
        make(
            "TimeActivity",
            [
                {
                    "NameOf": "Employee",
                    "EmployeeRef": {"value": "1"},
                    "CustomerRef": {"value": "1"},
                    "Hours": 3,
                }
            ]
            * 2,
        )
        make(
            "Attachable",
            [
                {
                    "Note": "O'Brien called",
                    "AttachableRef": [{"EntityRef": {"type": "Customer", "value": "1"}}],
                }
            ],
        )
        assert payments
        return made


def linked_contact(
    warehouse: sa.Engine, realm: str, *, skip: Sequence[int] = ()
) -> tuple[int, str]:
    """The first source contact the push created a QBO customer for, but those in ``skip``:
    (contact id, QBO id)."""
    with warehouse.connect() as conn:
        row = conn.execute(
            sa.text(
                "SELECT source_id, qbo_id FROM sync.record_state WHERE realm_id = :r"
                " AND entity = 'customers' AND created_by = 'sync' AND status = 'synced'"
                " AND NOT source_id = ANY(:skip) ORDER BY source_id::int LIMIT 1"
            ),
            {"r": realm, "skip": [str(s) for s in skip]},
        ).one()
    return int(row[0]), str(row[1])
