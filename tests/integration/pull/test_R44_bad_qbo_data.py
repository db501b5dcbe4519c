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
