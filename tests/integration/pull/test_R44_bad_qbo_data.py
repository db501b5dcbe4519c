"""Bad QBO-side data through the pull (R44, issue 11): extracted into ``raw_qbo`` as it is,
written back where the source app has a home for it, otherwise skipped with a reason in the
ledger; never a crash, never a wedged company (the next pull goes on, the one after that
writes nothing).

Each test drives the product path: the sandbox over real HTTP, ``pipeline.pull_all`` (the
function the CLI and the Dagster assets call), real Postgres on both sides.
"""

from decimal import Decimal
from typing import Any

import pytest
from pushbed import PushBed

from qbo_pipelines.sync import pipeline
from qbo_pipelines.transforms import from_qbo


def _pull(bed: PushBed, run: str) -> dict[str, Any]:
    return pipeline.pull_all(bed.env, bed.realm, run_id=run)


@pytest.fixture
def bed(push_bed: PushBed) -> PushBed:
    _pull(push_bed, "first")  # QBO's customers are in the source: the usual state
    return push_bed


def _raw(bed: PushBed, table: str, qbo_id: str) -> list[Any]:
    return bed.sql(
        bed.env.warehouse,
        f"SELECT deleted, data FROM raw_qbo.{table} WHERE realm_id = :r AND qbo_id = :q",  # noqa: S608
        r=bed.realm,
        q=qbo_id,
    )


def _sale(bed: PushBed, qbo_id: str) -> list[Any]:
    return bed.sql(
        bed.env.source,
        "SELECT id, contact_id, total, balance, txn_date, memo FROM app.sales WHERE qbo_id = :q",
        q=qbo_id,
    )


def _ledger(bed: PushBed, entity: str, qbo_id: str) -> list[Any]:
    return bed.sql(
        bed.env.warehouse,
        "SELECT entity, operation, outcome, error_message, details FROM sync.ledger"
        " WHERE realm_id = :r AND direction = 'pull' AND entity = :e AND qbo_id = :q"
        " ORDER BY id",
        r=bed.realm,
        e=entity,
        q=qbo_id,
    )


def _customer(bed: PushBed) -> str:
    return str(bed.sandbox.control.entities(bed.realm, "Customer")[0]["Id"])


def _line(amount: float, **extra: Any) -> dict[str, Any]:
    return {
        "Amount": amount,
        "DetailType": "SalesItemLineDetail",
        "SalesItemLineDetail": {"ItemRef": {"value": "2"}, "Qty": 1, "UnitPrice": amount},
        **extra,
    }


def _fixed_point(bed: PushBed) -> None:
    """Nothing wedged: another pull runs and writes nothing more into the source."""
    log = bed.sql(bed.env.source, "SELECT count(*) FROM app.change_log")[0][0]
    _pull(bed, "again")
    assert bed.sql(bed.env.source, "SELECT count(*) FROM app.change_log")[0][0] == log


def test_R44_custom_fields_are_extracted_and_the_invoice_written_back(bed: PushBed) -> None:
    fields = [
        {"DefinitionId": "1", "Name": "PO number", "Type": "StringType", "StringValue": "PO-7"},
        {"DefinitionId": "2", "Name": "Crew", "Type": "StringType", "StringValue": "Équipe «B»"},
        {"DefinitionId": "3", "Name": "Unknown kind", "Type": "NumberType"},
    ]
    made = bed.sandbox.control.bulk_create(
        bed.realm,
        "Invoice",
        [{"CustomerRef": {"value": _customer(bed)}, "Line": [_line(40)], "CustomField": fields}],
    )[0]
    _pull(bed, "custom")
    raw = _raw(bed, "invoices", made["Id"])
    assert raw
    assert raw[0].data["CustomField"][0]["StringValue"] == "PO-7"
    sale = _sale(bed, made["Id"])
    assert len(sale) == 1
    assert sale[0].total == Decimal("40.00")
    assert sale[0].contact_id
    _fixed_point(bed)


NO_HOME = {
    "JournalEntry": (
        "journal_entries",
        lambda c: {
            "Line": [
                {
                    "Amount": 12,
                    "DetailType": "JournalEntryLineDetail",
                    "JournalEntryLineDetail": {"PostingType": p, "AccountRef": {"value": a}},
                }
                for p, a in (("Debit", "13"), ("Credit", "1"))
            ]
        },
    ),
    "Purchase": (
        "purchases",
        lambda c: {
            "AccountRef": {"value": "16"},
            "PaymentType": "CreditCard",
            "Line": [
                {
                    "Amount": 5,
                    "DetailType": "AccountBasedExpenseLineDetail",
                    "AccountBasedExpenseLineDetail": {"AccountRef": {"value": "11"}},
                }
            ],
        },
    ),
    "Bill": (
        "bills",
        lambda c: {
            "VendorRef": {"value": "1"},
            "Line": [
                {
                    "Amount": 90,
                    "DetailType": "AccountBasedExpenseLineDetail",
                    "AccountBasedExpenseLineDetail": {"AccountRef": {"value": "10"}},
                }
            ],
        },
    ),
}


@pytest.mark.parametrize("entity", sorted(NO_HOME))
def test_R44_a_qbo_entity_the_source_has_no_table_for_is_extracted_and_skipped_with_a_reason(
    bed: PushBed, entity: str
) -> None:
    table, body = NO_HOME[entity]
    made = bed.sandbox.control.bulk_create(bed.realm, entity, [body(_customer(bed))])[0]
    sales = bed.sql(bed.env.source, "SELECT count(*) FROM app.sales")[0][0]
    _pull(bed, "no-home")
    assert _raw(bed, table, made["Id"])  # in the warehouse for analysts
    assert bed.sql(bed.env.source, "SELECT count(*) FROM app.sales")[0][0] == sales
    notes = _ledger(bed, table, made["Id"])
    assert [(n.operation, n.outcome) for n in notes] == [("skip", "skipped")]
    assert "no home" in notes[0].error_message
    assert entity in notes[0].error_message
    _fixed_point(bed)
    assert len(_ledger(bed, table, made["Id"])) == 1  # noted once per version, not every cycle


def test_R44_a_deposit_of_a_qbo_payment_is_extracted_and_skipped_with_a_reason(
    bed: PushBed,
) -> None:
    control = bed.sandbox.control
    inv = control.bulk_create(
        bed.realm, "Invoice", [{"CustomerRef": {"value": _customer(bed)}, "Line": [_line(30)]}]
    )[0]
    pay = control.bulk_create(
        bed.realm,
        "Payment",
        [
            {
                "CustomerRef": inv["CustomerRef"],
                "TotalAmt": 30,
                "Line": [{"Amount": 30, "LinkedTxn": [{"TxnId": inv["Id"], "TxnType": "Invoice"}]}],
            }
        ],
    )[0]
    bank = next(a for a in control.entities(bed.realm, "Account") if a["AccountType"] == "Bank")
    dep = control.bulk_create(
        bed.realm,
        "Deposit",
        [
            {
                "DepositToAccountRef": {"value": bank["Id"]},
                "Line": [{"Amount": 30, "LinkedTxn": [{"TxnId": pay["Id"], "TxnType": "Payment"}]}],
            }
        ],
    )[0]
    _pull(bed, "deposit")
    assert _raw(bed, "deposits", dep["Id"])
    receipt = bed.sql(
        bed.env.source, "SELECT amount FROM app.receipts WHERE qbo_id = :q", q=pay["Id"]
    )
    assert [r.amount for r in receipt] == [Decimal("30.00")]
    notes = _ledger(bed, "deposits", dep["Id"])
    assert [(n.operation, n.outcome) for n in notes] == [("skip", "skipped")]
    _fixed_point(bed)


def test_R44_an_invoice_of_a_customer_the_source_no_longer_holds_lands_without_a_contact(
    bed: PushBed,
) -> None:
    """The QBO customer was pulled, then its contact deleted in the source: QBO's next invoice
    for it lands as a sale that keeps QBO's customer id and names no contact (before: a
    foreign-key violation stopped every pull of the company)."""
    control = bed.sandbox.control
    cust = control.bulk_create(bed.realm, "Customer", [{"DisplayName": "Gone Tomorrow Ltd"}])[0]
    _pull(bed, "customer")
    bed.sql(bed.env.source, "DELETE FROM app.contacts WHERE qbo_id = :q", q=cust["Id"])
    inv = control.bulk_create(
        bed.realm, "Invoice", [{"CustomerRef": {"value": cust["Id"]}, "Line": [_line(25)]}]
    )[0]
    _pull(bed, "unknown")
    assert _raw(bed, "invoices", inv["Id"])
    sale = bed.sql(
        bed.env.source,
        "SELECT contact_id, qbo_customer_id, total FROM app.sales WHERE qbo_id = :q",
        q=inv["Id"],
    )
    assert [(r.contact_id, r.qbo_customer_id, r.total) for r in sale] == [
        (None, cust["Id"], Decimal("25.00"))
    ]
    _fixed_point(bed)


def test_R26_R44_an_estimate_is_listed_for_its_contact_and_never_becomes_a_sale(
    bed: PushBed,
) -> None:
    customer = _customer(bed)
    made = bed.sandbox.control.bulk_create(
        bed.realm, "Estimate", [{"CustomerRef": {"value": customer}, "Line": [_line(12)]}]
    )[0]
    sales = bed.sql(bed.env.source, "SELECT count(*) FROM app.sales")[0][0]
    _pull(bed, "estimate")
    assert _raw(bed, "estimates", made["Id"])
    assert bed.sql(bed.env.source, "SELECT count(*) FROM app.sales")[0][0] == sales
    listed = bed.sql(
        bed.env.source,
        "SELECT txn_type, contact_id FROM app.customer_transactions WHERE qbo_id = :q"
        " AND txn_type = 'Estimate'",
        q=made["Id"],
    )
    assert len(listed) == 1
    assert listed[0].contact_id is not None
    _fixed_point(bed)


@pytest.mark.parametrize(
    "kind",
    ["subtotal_discount", "group", "description_only"],
)
def test_R44_invoice_lines_of_types_the_source_lacks_never_crash_the_pull(
    bed: PushBed, kind: str
) -> None:
    lines: list[dict[str, Any]] = [_line(100)]
    if kind == "subtotal_discount":
        lines += [
            {"Amount": 100, "DetailType": "SubTotalLineDetail", "SubTotalLineDetail": {}},
            {
                "Amount": 10,
                "DetailType": "DiscountLineDetail",
                "DiscountLineDetail": {"PercentBased": False},
            },
        ]
    elif kind == "group":
        lines.append(
            {
                "Amount": 0,
                "DetailType": "GroupLineDetail",
                "GroupLineDetail": {"GroupItemRef": {"value": "2"}, "Quantity": 1},
            }
        )
    else:
        lines.append({"DetailType": "DescriptionOnly", "Description": "Thanks 🙏"})
    made = bed.sandbox.control.bulk_create(
        bed.realm, "Invoice", [{"CustomerRef": {"value": _customer(bed)}, "Line": lines}]
    )[0]
    _pull(bed, "lines")
    sale = _sale(bed, made["Id"])
    assert len(sale) == 1
    assert sale[0].total == Decimal(str(made["TotalAmt"]))
    kinds = bed.sql(
        bed.env.source,
        "SELECT kind, amount FROM app.sale_lines WHERE sale_id = :s ORDER BY line_no",
        s=sale[0].id,
    )
    assert sum(a for k, a in kinds if k == "item") - sum(
        a for k, a in kinds if k == "discount"
    ) == Decimal(str(made["TotalAmt"]))
    _fixed_point(bed)


def test_R44_an_amount_the_source_cannot_hold_is_held_with_a_reason_and_the_rest_lands(
    bed: PushBed,
) -> None:
    control = bed.sandbox.control
    customer = _customer(bed)
    huge, fine = control.bulk_create(
        bed.realm,
        "Invoice",
        [
            {"CustomerRef": {"value": customer}, "Line": [_line(99_999_999_999_999.0)]},
            {"CustomerRef": {"value": customer}, "Line": [_line(7)]},
        ],
    )
    _pull(bed, "huge")
    assert _raw(bed, "invoices", huge["Id"])
    assert _sale(bed, huge["Id"]) == []
    assert len(_sale(bed, fine["Id"])) == 1  # the good record in the same chunk lands
    notes = _ledger(bed, "invoices", huge["Id"])
    assert [(n.operation, n.outcome) for n in notes] == [("hold", "held")]
    assert "amount" in notes[0].error_message
    _fixed_point(bed)
    assert len(_ledger(bed, "invoices", huge["Id"])) == 1


def test_R44_a_value_with_more_decimals_than_the_source_keeps_is_held_not_rounded(
    bed: PushBed,
) -> None:
    """QBO takes quantities and unit prices with 5 decimals; the source keeps 4. Postgres would
    round 0.33333 into the sale line silently: the invoice is held with the reason instead."""
    control = bed.sandbox.control
    customer = _customer(bed)
    line = {
        "Amount": 1.0,
        "DetailType": "SalesItemLineDetail",
        "SalesItemLineDetail": {"ItemRef": {"value": "2"}, "Qty": 0.3333, "UnitPrice": 3},
    }
    five_qty, five_price = dict(line), dict(line)
    five_qty["SalesItemLineDetail"] = {"ItemRef": {"value": "2"}, "Qty": 0.33333, "UnitPrice": 3}
    five_price["SalesItemLineDetail"] = {"ItemRef": {"value": "2"}, "Qty": 1, "UnitPrice": 1.00001}
    rounded_qty, rounded_price, fits = control.bulk_create(
        bed.realm,
        "Invoice",
        [
            {"CustomerRef": {"value": customer}, "Line": [five_qty]},
            {"CustomerRef": {"value": customer}, "Line": [five_price]},
            {"CustomerRef": {"value": customer}, "Line": [line]},
        ],
    )
    _pull(bed, "decimals")
    for held, what in ((rounded_qty, "Qty 0.33333"), (rounded_price, "UnitPrice 1.00001")):
        assert _raw(bed, "invoices", held["Id"])  # the warehouse keeps QBO's exact value
        assert _sale(bed, held["Id"]) == []
        [note] = _ledger(bed, "invoices", held["Id"])
        assert (note.operation, note.outcome) == ("hold", "held")
        assert what in note.error_message
        assert "decimals" in note.error_message
        assert note.details["fix"]
    [sale] = _sale(bed, fits["Id"])  # four decimals fit: it lands, unrounded
    [(qty,)] = bed.sql(
        bed.env.source, "SELECT qty FROM app.sale_lines WHERE sale_id = :s", s=sale.id
    )
    assert qty == Decimal("0.3333")
    # held where people look (status, open_problems, notifications), each once, with the fix
    assert _open_holds(bed, "invoices") == {
        f"qbo:{rounded_qty['Id']}": ("pull.amount.beyond_source", from_qbo.AMOUNT_FIX),
        f"qbo:{rounded_price['Id']}": ("pull.amount.beyond_source", from_qbo.AMOUNT_FIX),
    }
    _fixed_point(bed)
    # the bookkeeper corrects one in QBO: the next pull brings it in and its hold is resolved
    whole = {"ItemRef": {"value": "2"}, "Qty": 1, "UnitPrice": 1}
    fixed = dict(five_qty, SalesItemLineDetail=whole)
    control.user_update(bed.realm, "Invoice", {"Id": rounded_qty["Id"], "Line": [fixed]})
    _pull(bed, "corrected")
    assert len(_sale(bed, rounded_qty["Id"])) == 1
    assert set(_open_holds(bed, "invoices")) == {f"qbo:{rounded_price['Id']}"}


def _open_holds(bed: PushBed, entity: str) -> dict[str, tuple[str, str]]:
    rows = bed.sql(
        bed.env.warehouse,
        "SELECT q.source_id, q.rule, q.fix, count(n.id) AS notes FROM sync.quarantine q"
        " LEFT JOIN sync.notifications n ON n.realm_id = q.realm_id AND n.entity = q.entity"
        "  AND n.record_id = q.source_id AND n.resolved_at IS NULL"
        " WHERE q.realm_id = :r AND q.entity = :e AND q.resolved_at IS NULL"
        " GROUP BY 1, 2, 3",
        r=bed.realm,
        e=entity,
    )
    assert all(r.notes == 1 for r in rows)  # one open notification per held record
    return {r.source_id: (r.rule, r.fix) for r in rows}


def test_R20_a_payment_applied_to_several_invoices_is_held_not_put_on_one(
    bed: PushBed,
) -> None:
    """A source receipt pays one sale. A QBO payment split over two invoices is held with the
    reason and the fix (before: the whole amount became a receipt of the first invoice, the
    second showed unpaid, and nothing said so); a payment of one invoice beside it lands."""
    control = bed.sandbox.control
    customer = _customer(bed)
    first, second, third = control.bulk_create(
        bed.realm,
        "Invoice",
        [{"CustomerRef": {"value": customer}, "Line": [_line(a)]} for a in (100, 50, 30)],
    )

    def applied(*parts: tuple[dict[str, Any], float]) -> dict[str, Any]:
        return {
            "CustomerRef": {"value": customer},
            "TotalAmt": sum(a for _, a in parts),
            "Line": [
                {"Amount": a, "LinkedTxn": [{"TxnId": inv["Id"], "TxnType": "Invoice"}]}
                for inv, a in parts
            ],
        }

    split, single = control.bulk_create(
        bed.realm, "Payment", [applied((first, 100), (second, 50)), applied((third, 30))]
    )
    _pull(bed, "split")
    for inv in (first, second, third):
        assert len(_sale(bed, inv["Id"])) == 1
    receipts = bed.sql(
        bed.env.source,
        "SELECT qbo_id, amount FROM app.receipts WHERE qbo_id IN (:a, :b)",
        a=split["Id"],
        b=single["Id"],
    )
    assert [(r.qbo_id, r.amount) for r in receipts] == [(single["Id"], Decimal("30.00"))]
    [note] = _ledger(bed, "payments", split["Id"])
    assert (note.operation, note.outcome) == ("hold", "held")
    assert "applied to 2 invoices" in note.error_message
    holds = _open_holds(bed, "payments")
    assert holds[f"qbo:{split['Id']}"][0] == "pull.payment.several_invoices"
    [(title, reason)] = _notes(bed, "payments", f"qbo:{split['Id']}")
    # the record is in QBO: what it missed is the source app (found by an attack)
    assert title == "Held back before writing to the source app", title
    assert f"Record qbo:{split['Id']} was not written to the source app" in reason, reason
    _fixed_point(bed)


def _notes(bed: PushBed, entity: str, record: str) -> list[tuple[str, str]]:
    """The open notifications of one record: title, reason."""
    rows = bed.sql(
        bed.env.warehouse,
        "SELECT title, reason FROM sync.notifications WHERE realm_id = :r AND entity = :e"
        " AND record_id = :k AND resolved_at IS NULL",
        r=bed.realm,
        e=entity,
        k=record,
    )
    return [(r.title, r.reason) for r in rows]


def test_R20_a_payment_applied_in_part_is_held_not_taken_whole(bed: PushBed) -> None:
    """A QBO payment of 150 applied for 100 to an invoice of 100 (50 left as a credit of the
    customer) would be a receipt of 150 on a sale of 100, overpaid by 50, and nothing would
    say so. It is held with the reason and the fix; once applied in full in QBO it lands."""
    control = bed.sandbox.control
    customer = _customer(bed)
    [invoice] = control.bulk_create(
        bed.realm, "Invoice", [{"CustomerRef": {"value": customer}, "Line": [_line(100)]}]
    )
    link = [{"TxnId": invoice["Id"], "TxnType": "Invoice"}]
    [payment] = control.bulk_create(
        bed.realm,
        "Payment",
        [
            {
                "CustomerRef": {"value": customer},
                "TotalAmt": 150,
                "Line": [{"Amount": 100, "LinkedTxn": link}],
            }
        ],
    )
    _pull(bed, "partly")
    assert len(_sale(bed, invoice["Id"])) == 1
    receipts = "SELECT amount FROM app.receipts WHERE qbo_id = :q"
    assert not bed.sql(bed.env.source, receipts, q=payment["Id"])
    rule, fix = _open_holds(bed, "payments")[f"qbo:{payment['Id']}"]
    assert rule == "pull.payment.partly_applied"
    assert "apply all of it" in fix
    [note] = _ledger(bed, "payments", payment["Id"])
    assert "50.00 left unapplied" in note.error_message
    control.user_update(
        bed.realm,
        "Payment",
        {"Id": payment["Id"], "TotalAmt": 100, "Line": [{"Amount": 100, "LinkedTxn": link}]},
    )
    _pull(bed, "applied")
    assert [r.amount for r in bed.sql(bed.env.source, receipts, q=payment["Id"])] == [
        Decimal("100.00")
    ]
    assert f"qbo:{payment['Id']}" not in _open_holds(bed, "payments")
    assert _notes(bed, "payments", f"qbo:{payment['Id']}") == []  # its notification resolved
    _fixed_point(bed)


def test_R20_a_qbo_payment_unapplied_later_leaves_its_sale_unpaid_in_the_source(
    bed: PushBed,
) -> None:
    """A QBO payment of a QBO invoice lands as a receipt of its sale; the bookkeeper then
    unapplies it in QBO (the invoice is open again, the money a credit of the customer). The
    receipt pays no sale any more, as in QBO (before, it kept paying the sale)."""
    control = bed.sandbox.control
    customer = _customer(bed)
    [invoice] = control.bulk_create(
        bed.realm, "Invoice", [{"CustomerRef": {"value": customer}, "Line": [_line(70)]}]
    )
    link = [{"TxnId": invoice["Id"], "TxnType": "Invoice"}]
    [payment] = control.bulk_create(
        bed.realm,
        "Payment",
        [
            {
                "CustomerRef": {"value": customer},
                "TotalAmt": 70,
                "Line": [{"Amount": 70, "LinkedTxn": link}],
            }
        ],
    )
    _pull(bed, "applied")
    [sale] = _sale(bed, invoice["Id"])
    receipt = "SELECT sale_id, amount FROM app.receipts WHERE qbo_id = :q"
    assert [tuple(r) for r in bed.sql(bed.env.source, receipt, q=payment["Id"])] == [
        (sale.id, Decimal("70.00"))
    ]
    control.user_update(bed.realm, "Payment", {"Id": payment["Id"], "TotalAmt": 70, "Line": []})
    _pull(bed, "unapplied")
    assert [tuple(r) for r in bed.sql(bed.env.source, receipt, q=payment["Id"])] == [
        (None, Decimal("70.00"))
    ]
    _fixed_point(bed)


def test_R44_missing_optional_fields_and_odd_dates_are_pulled(bed: PushBed) -> None:
    control = bed.sandbox.control
    customer = _customer(bed)
    made = control.bulk_create(
        bed.realm,
        "Invoice",
        [
            {"CustomerRef": {"value": customer}, "Line": [_line(1)], "TxnDate": "0001-01-01"},
            {
                "CustomerRef": {"value": customer},
                "Line": [_line(2)],
                "TxnDate": "9999-12-31",
                "DueDate": "9999-12-31",
            },
            {"CustomerRef": {"value": customer}, "Line": [_line(3)], "DueDate": "2024-02-29"},
        ],
    )
    bare = control.bulk_create(bed.realm, "Customer", [{"DisplayName": "Bare Minimum"}])[0]
    unapplied = control.bulk_create(
        bed.realm, "Payment", [{"CustomerRef": {"value": customer}, "TotalAmt": 4}]
    )[0]
    _pull(bed, "odd")
    for inv in made:
        sale = _sale(bed, inv["Id"])
        assert len(sale) == 1
        assert str(sale[0].txn_date) == inv["TxnDate"]
    contact = bed.sql(
        bed.env.source, "SELECT email, phone FROM app.contacts WHERE qbo_id = :q", q=bare["Id"]
    )
    assert [(c.email, c.phone) for c in contact] == [(None, None)]
    receipt = bed.sql(
        bed.env.source,
        "SELECT sale_id, amount FROM app.receipts WHERE qbo_id = :q",
        q=unapplied["Id"],
    )
    assert [(r.sale_id, r.amount) for r in receipt] == [(None, Decimal("4.00"))]
    _fixed_point(bed)


def test_R44_a_nul_character_in_qbo_text_is_stored_without_it_and_wedges_nothing(
    bed: PushBed,
) -> None:
    """QBO keeps U+0000 in text a bookkeeper pasted (and copies it: CompanyName into
    PrintOnCheckName, the address into invoices); Postgres text and jsonb cannot hold it. The
    record is stored and written back without it, the good record beside it comes through, and
    the next pull goes on."""
    control = bed.sandbox.control
    odd, good = control.bulk_create(
        bed.realm,
        "Customer",
        [
            {
                "DisplayName": "Nul Notes Ltd",
                "CompanyName": "Nul\x00 Notes Ltd",
                "Notes": "pasted\x00text",
                "BillAddr": {"Line1": "1 Zero\x00 Street", "City": "Leeds"},
            },
            {"DisplayName": "Plain Next Door"},
        ],
    )
    _pull(bed, "nul")
    raw = _raw(bed, "customers", odd["Id"])
    assert raw
    assert raw[0].data["CompanyName"] == "Nul Notes Ltd"
    assert raw[0].data["Notes"] == "pastedtext"
    contacts = bed.sql(
        bed.env.source,
        "SELECT qbo_id, qbo_company_name FROM app.contacts WHERE qbo_id IN (:a, :b)"
        " ORDER BY qbo_id",
        a=odd["Id"],
        b=good["Id"],
    )
    assert {c.qbo_id: c.qbo_company_name for c in contacts} == {
        odd["Id"]: "Nul Notes Ltd",
        good["Id"]: None,
    }
    _fixed_point(bed)


def test_R29_R44_webhook_events_the_extract_cannot_read_wedge_nothing(bed: PushBed) -> None:
    """QBO also notifies entities the sync keeps no table for (Preferences, Currency, ...), and
    a validly signed event can carry an id QBO never makes. Read, either failed every later
    pull of the company (the events were never marked done). They are left out and marked done
    with the rest; the real change notified beside them comes in."""
    from datetime import UTC, datetime

    from qbo_pipelines.webhooks import inbox
    from qbo_pipelines.webhooks.events import WebhookEvent

    customer = _customer(bed)
    bed.sandbox.control.user_update(
        bed.realm, "Customer", {"Id": customer, "Notes": "notified by webhook"}
    )
    at = datetime.now(UTC)
    events = [
        WebhookEvent(bed.realm, entity, qbo_id, "Update", at, None, f"k-{entity}-{qbo_id}")
        for entity, qbo_id in (
            ("Preferences", "1"),
            ("Currency", "7"),
            ("Customer", "abc"),
            ("Customer", "1 OR 1=1"),
            ("Customer", customer),
        )
    ]
    assert inbox.store(bed.env.warehouse, events) == len(events)
    old = WebhookEvent(bed.realm, "Customer", customer, "Update", at, None, "k-processed-long-ago")
    inbox.store(bed.env.warehouse, [old])
    bed.sql(
        bed.env.warehouse,
        "UPDATE sync.webhook_inbox SET processed_at = now() - interval '8 days'"
        " WHERE event_key = 'k-processed-long-ago'",
    )
    report = pipeline.pull_extract(bed.env, bed.realm, run_id="notified")
    kept = "SELECT count(*) FROM sync.webhook_inbox WHERE event_key = 'k-processed-long-ago'"
    assert bed.sql(bed.env.warehouse, kept)[0][0] == 0  # pruned by the pull (KEEP_PROCESSED)
    assert report.webhook_events == len(events)
    assert _raw(bed, "customers", customer)[0].data["Notes"] == "notified by webhook"
    assert inbox.claim(bed.env.warehouse, bed.realm).row_ids == ()  # all marked done
    _fixed_point(bed)


def test_R39_R20_a_payment_backfilled_before_its_invoice_waits_for_it_then_links(
    bed: PushBed,
) -> None:
    """A backfill of one day's QBO payments (R39) reads only payments. One whose customer and
    invoice the source app does not hold yet was written as a receipt with no sale and no
    contact, and nothing ever linked it. It is held with the reason until they are in, then the
    next pull brings it in, linked, and its hold is resolved."""
    from datetime import date

    from qbo_pipelines.sync import backfill

    control = bed.sandbox.control
    [customer] = control.bulk_create(bed.realm, "Customer", [{"DisplayName": "Late Payer Co"}])
    [invoice] = control.bulk_create(
        bed.realm, "Invoice", [{"CustomerRef": {"value": customer["Id"]}, "Line": [_line(80)]}]
    )
    [payment] = control.bulk_create(
        bed.realm,
        "Payment",
        [
            {
                "CustomerRef": {"value": customer["Id"]},
                "TotalAmt": 80,
                "Line": [
                    {"Amount": 80, "LinkedTxn": [{"TxnId": invoice["Id"], "TxnType": "Invoice"}]}
                ],
            }
        ],
    )
    day = date.fromisoformat(payment["TxnDate"])
    backfill.reextract_window(
        bed.env, bed.realm, "Payment", backfill.Window(day, day), run_id="bf"
    )
    receipts = "SELECT sale_id, contact_id, amount FROM app.receipts WHERE qbo_id = :q"
    assert bed.sql(bed.env.source, receipts, q=payment["Id"]) == []
    assert set(_open_holds(bed, "payments")) == {f"qbo:{payment['Id']}"}

    _pull(bed, "after")  # CDC brings the customer and the invoice, then the payment
    [sale] = _sale(bed, invoice["Id"])
    [receipt] = bed.sql(bed.env.source, receipts, q=payment["Id"])
    assert (receipt.sale_id, receipt.contact_id) == (sale.id, sale.contact_id)
    assert receipt.amount == Decimal("80.00")
    assert _open_holds(bed, "payments") == {}
    _fixed_point(bed)


def test_R36_R29_a_webhook_naming_an_invoice_qbo_never_had_stores_no_delete_stub(
    bed: PushBed, caplog: pytest.LogCaptureFixture
) -> None:
    """Webhook events name invoice ids QBO answers nothing for. The extract took every such id
    for a delete and stored a delete stub in ``raw_qbo`` (an invoice that never existed,
    flagged deleted in the warehouse the analysts query). An id the sync never saw (no
    ``raw_qbo`` row, no ``sync.record_state`` row) is ignored now, logged once; one created
    and deleted in QBO between two reads was never seen either, so nothing is to be deleted
    anywhere and the source app is untouched. An invoice the sync had seen and QBO no longer
    answers for is still flagged deleted (R36), its sale kept (R16)."""
    import logging
    from datetime import UTC, datetime

    from qbo_pipelines.webhooks import inbox
    from qbo_pipelines.webhooks.events import WebhookEvent

    control, realm = bed.sandbox.control, bed.realm
    customer = {"value": _customer(bed)}
    [seen] = control.bulk_create(realm, "Invoice", [{"CustomerRef": customer, "Line": [_line(40)]}])
    _pull(bed, "seen")
    assert [s.id for s in _sale(bed, seen["Id"])]
    [brief] = control.bulk_create(
        realm, "Invoice", [{"CustomerRef": customer, "Line": [_line(30)]}]
    )
    control.user_delete(realm, "Invoice", brief["Id"])
    control.user_delete(realm, "Invoice", seen["Id"])
    never = str(int(brief["Id"]) + 1000)
    at = datetime.now(UTC)
    events = [
        WebhookEvent(realm, "Invoice", qbo_id, op, at, None, f"k-{qbo_id}-{op}")
        for qbo_id, op in (
            (never, "Update"),
            (brief["Id"], "Create"),
            (brief["Id"], "Delete"),
            (seen["Id"], "Delete"),
        )
    ]
    inbox.store(bed.env.warehouse, events)
    log_before = bed.sql(bed.env.source, "SELECT count(*) FROM app.change_log")[0][0]
    with caplog.at_level(logging.INFO, logger="qbo_pipelines.sync.extract"):
        report = pipeline.pull_extract(bed.env, bed.realm, run_id="notified")
    assert report.webhook_events == len(events)
    assert _raw(bed, "invoices", never) == []  # no stub of an invoice that never existed
    [(deleted, _)] = _raw(bed, "invoices", seen["Id"])
    assert deleted  # seen before: its delete is flagged (R36)
    ignored = [r for r in caplog.records if never in r.getMessage()]
    assert len(ignored) == 1, [r.getMessage() for r in caplog.records]
    for name in ["invoices", "payments", "customers", "customer_transactions"]:
        pipeline.pull(bed.env, bed.realm, name, run_id="notified")
    assert _sale(bed, never) == []  # nothing in the source
    assert _sale(bed, brief["Id"]) == []
    [kept] = bed.sql(
        bed.env.source, "SELECT qbo_deleted FROM app.sales WHERE qbo_id = :q", q=seen["Id"]
    )
    assert kept.qbo_deleted  # the sale stays, marked (R16)
    changed = bed.sql(bed.env.source, "SELECT count(*) FROM app.change_log")[0][0] - log_before
    assert changed == 1, changed  # only the seen sale's mark
    assert inbox.claim(bed.env.warehouse, bed.realm).row_ids == ()
    _fixed_point(bed)
