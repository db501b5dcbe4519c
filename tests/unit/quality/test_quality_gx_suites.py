"""Great Expectations 1.x suites over the staged frames (R40: checks before writing)."""

from __future__ import annotations

import dataclasses
import math
import subprocess
import sys
from datetime import date
from decimal import Decimal as D
from typing import Any

import pytest
from quality_factories import bill, customer, item, line, receipt, sale, vendor

from qbo_pipelines.canonical import CanonicalBillLine, SourceId
from qbo_pipelines.quality import gx_suites as g

CLEAN: dict[str, list[Any]] = {
    "customers": [customer(), customer(source_id=SourceId("18"), display_name="Beta Co",
                                       email=None, billing_email="")],
    "items": [item(), item(source_id=SourceId("4"), name="Travel", kind="product")],
    "invoices": [sale(), sale(source_id=SourceId("78"), doc_number=None, due_date=None)],
    "payments": [receipt(), receipt(source_id=SourceId("6"), sale_source_id=None,
                                    reference=None)],
    "vendors": [vendor(), vendor(source_id=SourceId("9"), display_name="Bob Builder",
                                 email=None)],
    "bills": [bill(), bill(source_id=SourceId("10"), doc_number=None, due_date=None)],
}


def failures(outcome: g.SuiteOutcome) -> dict[str, tuple[str, str | None, int | None]]:
    return {f.rule: (f.name, f.column, f.unexpected_count) for f in outcome.failed}


@pytest.mark.parametrize("entity", g.ENTITIES)
def test_R40_suites_pass_on_clean_data(entity: str) -> None:
    outcome = g.validate_records(entity, CLEAN[entity])
    assert outcome.failed == []
    assert outcome.success
    assert outcome.entity == entity
    assert outcome.evaluated == len(g.SUITES[entity])
    assert outcome.statistics["rows"] == len(CLEAN[entity])
    assert outcome.statistics["unsuccessful_expectations"] == 0


@pytest.mark.parametrize("entity", g.ENTITIES)
def test_R40_suites_pass_on_an_empty_batch(entity: str) -> None:
    frame = g.to_frame(entity, [])
    assert list(frame.columns) == list(g.FRAME_COLUMNS[entity])
    assert g.validate(entity, frame).success


def test_R40_every_suite_rule_id_is_unique_and_names_its_entity() -> None:
    for entity, specs in g.SUITES.items():
        ids = [s.rule for s in specs]
        assert len(ids) == len(set(ids)), entity
        assert all(i.startswith(f"{entity}.") for i in ids)
        for spec in specs:
            if spec.column is not None:
                assert spec.column in g.FRAME_COLUMNS[entity], spec


def test_R40_customers_suite_fails_with_names_and_counts() -> None:
    bad = [
        customer(),
        customer(source_id=SourceId("17"), display_name="Acme: Ltd"),
        customer(source_id=SourceId("19"), display_name="", email="bob@@x.example"),
        customer(source_id=SourceId("20"), display_name="A" * 501, phone="1" * 31),
        customer(source_id=SourceId("21"), display_name="Acme Ltd"),
    ]
    outcome = g.validate_records("customers", bad)
    assert not outcome.success
    assert failures(outcome) == {
        "customers.source_id.unique": ("expect_column_values_to_be_unique", "source_id", 2),
        "customers.display_name.no_forbidden_characters": (
            "expect_column_values_to_not_match_regex", "display_name", 1),
        "customers.display_name.not_blank": (
            "expect_column_values_to_match_regex", "display_name", 1),
        "customers.display_name.max_length": (
            "expect_column_value_lengths_to_be_between", "display_name", 2),
        "customers.display_name.one_owner": (
            "expect_column_values_to_be_between", "display_name_owners", 2),
        "customers.email.format": ("expect_column_values_to_match_regex", "email", 1),
        "customers.phone.max_length": ("expect_column_value_lengths_to_be_between", "phone", 1),
    }
    by_rule = {f.rule: f for f in outcome.failed}
    email = by_rule["customers.email.format"]
    assert email.sample_unexpected == ["bob@@x.example"]
    assert email.sample_source_ids == ["19"]
    long_name = by_rule["customers.display_name.max_length"]
    assert sorted(long_name.sample_source_ids) == ["19", "20"]
    assert all(len(str(v)) < 120 for v in long_name.sample_unexpected)
    assert outcome.evaluated == len(g.SUITES["customers"])
    assert outcome.statistics["unsuccessful_expectations"] == 7


def test_R5_contacts_of_one_organisation_may_share_a_display_name() -> None:
    org = SourceId("500")
    same_org = [customer(organisation_id=org),
                customer(source_id=SourceId("18"), organisation_id=org, email="bo@acme.example")]
    assert g.validate_records("customers", same_org).success
    other_org = [*same_org, customer(source_id=SourceId("19"), organisation_id=SourceId("501"))]
    outcome = g.validate_records("customers", other_org)
    assert failures(outcome) == {
        "customers.display_name.one_owner": (
            "expect_column_values_to_be_between", "display_name_owners", 3),
    }


def test_R40_invoices_suite_checks_totals_lines_dates_and_doc_numbers() -> None:
    bad = [
        sale(),
        sale(source_id=SourceId("78"), total=D("70.00")),
        sale(source_id=SourceId("79"), due_date=date(2024, 4, 1)),
        sale(source_id=SourceId("80"), doc_number="S-1042",
             lines=(line(1, amount=D("40.00")),), subtotal=D("40.00"), discount_total=D("0"),
             tax_total=D("0"), total=D("40.00")),
        sale(source_id=SourceId("81"), doc_number="S-0081", lines=(), subtotal=D("0"),
             discount_total=D("0"), tax_total=D("0"), total=D("0")),
        sale(source_id=SourceId("82"), doc_number="S-0082", customer_source_id=SourceId(""),
             billing_email="ap@acme"),
        sale(source_id=SourceId("83"), doc_number="S-0083",
             lines=(line(1, qty=D("-1"), unit_price=D("5"), amount=D("-5.00")),),
             subtotal=D("-5.00"), discount_total=D("0"), tax_total=D("0"), total=D("-5.00")),
    ]
    assert failures(g.validate_records("invoices", bad)) == {
        "invoices.total.consistent": ("expect_column_values_to_be_between", "total_gap", 1),
        "invoices.due_date.not_before_txn_date": (
            "expect_column_values_to_be_between", "due_days", 1),
        "invoices.doc_number.unique": ("expect_column_values_to_be_unique", "doc_number", 4),
        "invoices.lines.amount_is_qty_times_price": (
            "expect_column_values_to_be_between", "max_line_gap", 1),
        "invoices.lines.at_least_one_item": (
            "expect_column_values_to_be_between", "item_line_count", 1),
        "invoices.customer_source_id.not_null": (
            "expect_column_values_to_not_be_null", "customer_source_id", 1),
        "invoices.billing_email.format": ("expect_column_values_to_match_regex", "billing_email",
                                          1),
        "invoices.total.not_negative": ("expect_column_values_to_be_between", "total", 1),
    }


def test_R40_invoices_suite_checks_subtotals() -> None:
    s = sale()
    bad = [
        dataclasses.replace(s, source_id=SourceId("1"), doc_number="A",
                            subtotal=s.subtotal + 1, total=s.total + 1),
        dataclasses.replace(s, source_id=SourceId("2"), doc_number="B",
                            discount_total=D("0"), total=s.total + D("6.24")),
        dataclasses.replace(s, source_id=SourceId("3"), doc_number="C",
                            tax_total=D("0"), total=s.total - D("8.42")),
    ]
    assert set(failures(g.validate_records("invoices", bad))) == {
        "invoices.subtotal.consistent", "invoices.discount_total.consistent",
        "invoices.tax_total.consistent",
    }


def test_R40_payments_suite_amount_must_be_positive_and_present() -> None:
    bad = [receipt(), receipt(source_id=SourceId("6"), amount=D("0")),
           receipt(source_id=SourceId("7"), amount=D("-3")),
           receipt(source_id=SourceId("8"), amount=D("NaN"), reference="R" * 22)]
    outcome = g.validate_records("payments", bad)
    assert failures(outcome) == {
        "payments.amount.positive": ("expect_column_values_to_be_between", "amount", 2),
        "payments.amount.not_null": ("expect_column_values_to_not_be_null", "amount", 1),
        "payments.reference.max_length": (
            "expect_column_value_lengths_to_be_between", "reference", 1),
    }
    positive = next(f for f in outcome.failed if f.rule == "payments.amount.positive")
    assert sorted(positive.sample_unexpected) == [-3.0, 0.0]
    assert sorted(positive.sample_source_ids) == ["6", "7"]


def test_R40_bills_suite_total_vendor_and_lines() -> None:
    neg = (CanonicalBillLine(line_no=1, concept="Refund", amount=D("-10.00")),)
    bad = [
        bill(),
        bill(source_id=SourceId("11"), total=D("-10.00"), lines=neg),
        bill(source_id=SourceId("12"), vendor_source_id=SourceId(""), total=D("1.00")),
        bill(source_id=SourceId("13"), lines=(), total=D("0")),
    ]
    assert failures(g.validate_records("bills", bad)) == {
        "bills.total.not_negative": ("expect_column_values_to_be_between", "total", 1),
        "bills.vendor_source_id.not_null": (
            "expect_column_values_to_not_be_null", "vendor_source_id", 1),
        "bills.total.consistent": ("expect_column_values_to_be_between", "total_gap", 1),
        "bills.lines.at_least_one": ("expect_column_values_to_be_between", "line_count", 1),
    }


def test_R40_items_and_vendors_suites() -> None:
    items = [item(), item(source_id=SourceId("4"), name="Consulting"),
             item(source_id=SourceId("5"), name="A:B")]
    assert failures(g.validate_records("items", items)) == {
        "items.name.unique": ("expect_column_values_to_be_unique", "name", 2),
        "items.name.no_forbidden_characters": (
            "expect_column_values_to_not_match_regex", "name", 1),
    }
    vendors = [vendor(), vendor(source_id=SourceId("5"), display_name="Jane\tRoe",
                                email="jane@roe")]
    assert failures(g.validate_records("vendors", vendors)) == {
        "vendors.display_name.no_forbidden_characters": (
            "expect_column_values_to_not_match_regex", "display_name", 1),
        "vendors.email.format": ("expect_column_values_to_match_regex", "email", 1),
    }


def test_R40_gx_and_rules_agree_on_emails() -> None:
    from qbo_pipelines.quality.rules import is_valid_email

    samples = ["a@b.co", "bob@@x.example", "x@y", "ann@acme.example\n", " a@b.co", "a.@b.co",
               "o'brien@example.ie", "a@b-.co"]
    frame = g.customers_frame(
        [customer(source_id=SourceId(str(i)), display_name=f"C{i}", email=e)
         for i, e in enumerate(samples)]
    )
    outcome = g.validate("customers", frame)
    fail = next((f for f in outcome.failed if f.rule == "customers.email.format"), None)
    gx_bad = set(fail.sample_source_ids) if fail else set()
    assert fail is not None
    assert fail.unexpected_count == len([e for e in samples if not is_valid_email(e)])
    assert gx_bad <= {str(i) for i, e in enumerate(samples) if not is_valid_email(e)}


def test_R40_missing_column_is_reported_not_raised() -> None:
    frame = g.to_frame("payments", [receipt()]).drop(columns=["amount"])
    outcome = g.validate("payments", frame)
    assert not outcome.success
    broken = {f.rule: f for f in outcome.failed}
    assert "payments.amount.positive" in broken
    assert broken["payments.amount.positive"].unexpected_count is None


def test_R40_custom_specs_and_metadata_are_json_ready() -> None:
    import json

    specs = (g.ExpectationSpec("invoices.total.small", "ExpectColumnValuesToBeBetween",
                               {"column": "total", "max_value": 10}),)
    outcome = g.validate("invoices", g.invoices_frame(CLEAN["invoices"]), specs)
    assert outcome.evaluated == 1
    assert [f.rule for f in outcome.failed] == ["invoices.total.small"]
    meta = outcome.metadata()
    json.dumps(meta)
    assert meta["failed"] == 1
    assert meta["failures"][0]["source_ids"] == ["77", "78"]


def test_R40_frames_compute_gaps_exactly() -> None:
    frame = g.invoices_frame([sale(), sale(total=D("NaN"))])
    assert frame.loc[0, "total_gap"] == 0.0
    assert frame.loc[0, "max_line_gap"] == pytest.approx(0.0044)  # 12.35 - 1 x 12.3456
    assert math.isnan(frame.loc[1, "total"])
    assert math.isnan(frame.loc[1, "total_gap"])
    assert frame.loc[0, "item_line_count"] == 2
    assert frame.loc[0, "due_days"] == 30


def test_R40_unknown_entity() -> None:
    with pytest.raises(KeyError, match="no staged frame for entity 'tax_rates'"):
        g.to_frame("tax_rates", [])


def test_R40_gx_is_imported_lazily() -> None:
    code = (
        "import sys; import qbo_pipelines.quality, qbo_pipelines.quality.rules, "
        "qbo_pipelines.quality.quarantine, qbo_pipelines.quality.gx_suites; "
        "print('great_expectations' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_R40_context_is_cached_per_process() -> None:
    g.validate_records("bills", CLEAN["bills"])
    first = g._context()
    g.validate_records("bills", CLEAN["bills"])
    assert g._context() is first
    assert g._batch_definition("bills") is g._batch_definition("bills")
