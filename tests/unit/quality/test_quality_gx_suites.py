"""The Great Expectations suites are data built from the constraint table (R40)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from qbo_pipelines.quality import constraints, gx_suites


@pytest.mark.parametrize("entity", gx_suites.ENTITIES)
def test_R40_every_expectation_names_a_rule_and_a_staged_column(entity: str) -> None:
    table = constraints.TABLES[entity]
    columns = {c.name for c in table.columns}
    rules = constraints.rule_ids(entity)
    for spec in gx_suites.SUITES[entity]:
        assert spec.rule in rules
        assert spec.column in columns
        if spec.expectation == "UnexpectedRowsExpectation":
            query = spec.kwargs["unexpected_rows_query"]
            assert "{batch}" in query
            assert query.startswith("SELECT source_id, ")
        else:
            assert spec.kwargs["column"] == spec.column


def test_R40_limits_are_written_once() -> None:
    """The suites read their limits from the table: the display-name limit appears once."""
    customers = gx_suites.SUITES["customers"]
    too_long = [s for s in customers if s.rule == "customer.display_name.too_long"]
    assert len(too_long) == 1
    assert f"> {constraints.DISPLAY_NAME_MAX}" in too_long[0].kwargs["unexpected_rows_query"]
    gap = next(s for s in gx_suites.SUITES["invoices"] if s.rule == "sale.total_mismatch")
    assert gap.kwargs["max_value"] == float(constraints.MONEY_TOLERANCE)


def test_R40_create_only_constraints_stay_out_of_the_suite() -> None:
    rules = {s.rule for s in gx_suites.SUITES["customers"]}
    assert "customer.billing_email.format" not in rules
    assert "customer.email.format" in rules


def test_R40_unknown_entity() -> None:
    with pytest.raises(KeyError):
        gx_suites.suite_specs("tax_rates")


def test_R40_expectation_classes_exist_in_gx() -> None:
    import great_expectations as gx

    names = {s.expectation for specs in gx_suites.SUITES.values() for s in specs}
    assert all(hasattr(gx.expectations, n) for n in names)


def test_R40_gx_is_imported_lazily() -> None:
    code = (
        "import sys; import qbo_pipelines.quality, qbo_pipelines.quality.rules, "
        "qbo_pipelines.quality.quarantine, qbo_pipelines.quality.gx_suites, "
        "qbo_pipelines.sync.pipeline; print('great_expectations' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
