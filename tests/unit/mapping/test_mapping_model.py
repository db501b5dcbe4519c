"""Pure mapping resolution, validation and suggestions (R10, R12, R13, R19, R21, R23, R32)."""

from __future__ import annotations

import pytest

from qbo_pipelines.mapping.model import (
    Choice,
    Choices,
    DepositTarget,
    MappingRefusedError,
    MappingSnapshot,
    Missing,
    PaymentMethodMapping,
    QboRef,
    Settings,
    SourceValue,
    suggest,
    unmapped,
    validate_account,
)

CHOICES = Choices(
    accounts=(
        Choice("35", "Checking", "Bank"),
        Choice("79", "Sales of Product Income", "Income"),
        Choice("60", "Contractors", "Expense"),
        Choice("61", "Cost of Labor", "Cost of Goods Sold"),
        Choice("62", "Old Bank", "Bank", active=False),
    ),
    tax_codes=(Choice("2", "GST 10%"), Choice("3", "Zero rated")),
    items=(Choice("5", "Consulting", "Service"), Choice("6", "Design", "Service")),
    payment_methods=(Choice("1", "Cash"), Choice("3", "Credit Card")),
)


def _snapshot(**kw: object) -> MappingSnapshot:
    base: dict[str, object] = {
        "realm_id": "123",
        "tax_rates": {"1": QboRef("2", "GST 10%")},
        "names": {"tax-rate": {"4": "Luxury 25%"}},
    }
    base.update(kw)
    return MappingSnapshot(**base)  # type: ignore[arg-type]


def test_R12_unmapped_tax_rate_is_missing_with_a_reason_naming_it_and_the_fix() -> None:
    result = _snapshot().tax_code_for("4")
    assert isinstance(result, Missing)
    assert result.reason == "tax rate 'Luxury 25%' has no QBO mapping"
    assert result.fix == ("qbo-pipelines mappings set tax-rate 'Luxury 25%' <QBO tax code> "
                          "--realm 123")
    assert _snapshot().tax_code_for("1") == QboRef("2", "GST 10%")


def test_R13_default_tax_code_used_where_a_line_has_none() -> None:
    assert isinstance(_snapshot().tax_code_for(None), Missing)
    snap = _snapshot(settings=Settings(default_tax_code=QboRef("3", "Zero rated")))
    assert snap.tax_code_for(None) == QboRef("3", "Zero rated")


def test_R10_item_missing_until_mapped_and_default_income_account_for_new_items() -> None:
    snap = _snapshot(items={"7": QboRef("5")})
    assert snap.item_for("7") == QboRef("5")
    missing = snap.item_for("8", "Café Catering")
    assert isinstance(missing, Missing)
    assert "'Café Catering'" in missing.reason
    assert isinstance(snap.income_account_for_new_items(), Missing)


def test_R19_deposit_for_uses_mapping_then_default() -> None:
    snap = _snapshot(
        payment_methods={"1": PaymentMethodMapping(QboRef("1"), QboRef("35"))},
        names={"payment-method": {"2": "Cheque"}},
    )
    assert snap.deposit_for("1") == DepositTarget(QboRef("35"), QboRef("1"))
    missing = snap.deposit_for("2")
    assert isinstance(missing, Missing)
    assert missing.reason == "payment method 'Cheque' has no deposit account"
    with_default = _snapshot(settings=Settings(default_deposit_account=QboRef("35")))
    assert with_default.deposit_for("2") == DepositTarget(QboRef("35"), None)


def test_R23_expense_account_for_concept() -> None:
    snap = _snapshot(expense_concepts={"Travel expenses": QboRef("60")})
    assert snap.expense_account_for("Travel expenses") == QboRef("60")
    missing = snap.expense_account_for("Bonus")
    assert isinstance(missing, Missing)
    assert "concept 'Bonus'" in missing.reason


def test_R21_deposit_account_must_be_bank() -> None:
    with pytest.raises(MappingRefusedError) as err:
        validate_account(CHOICES, "Sales of Product Income", "deposit")
    assert "is of type Income, but a deposit account must be of type Bank" in str(err.value)
    assert "Checking (id 35)" in str(err.value)
    assert validate_account(CHOICES, "35", "deposit").name == "Checking"
    with pytest.raises(MappingRefusedError, match="inactive"):
        validate_account(CHOICES, "Old Bank", "deposit")


def test_income_and_expense_account_types_are_enforced() -> None:
    assert validate_account(CHOICES, "Sales of Product Income", "income").id == "79"
    with pytest.raises(MappingRefusedError, match="must be of type Income"):
        validate_account(CHOICES, "Checking", "income")
    assert validate_account(CHOICES, "Cost of Labor", "expense").id == "61"
    with pytest.raises(MappingRefusedError, match="must be of type"):
        validate_account(CHOICES, "Checking", "expense")
    with pytest.raises(MappingRefusedError, match="has no account 'Nope'"):
        validate_account(CHOICES, "Nope", "expense")


def test_R32_suggest_matches_exact_names_only() -> None:
    values = [
        SourceValue("tax-rate", "1", "GST 10%"),
        SourceValue("tax-rate", "4", "Luxury 25%"),
        SourceValue("item", "7", "Consulting"),
        SourceValue("item", "8", "design"),  # case differs: not an exact match
        SourceValue("payment-method", "9", "Cash"),
        SourceValue("expense-concept", "Contractors", "Contractors"),
        SourceValue("expense-concept", "Checking", "Checking"),  # a Bank account: not expense
    ]
    got = {(s.kind, s.source_id, s.qbo.id) for s in suggest(values, CHOICES)}
    assert got == {("tax-rate", "1", "2"), ("item", "7", "5"), ("payment-method", "9", "1"),
                   ("expense-concept", "Contractors", "60")}
    # already mapped values are not suggested again
    assert not [s for s in suggest(values, CHOICES, _snapshot()) if s.source_id == "1"]


def test_unmapped_lists_values_that_resolve_to_missing() -> None:
    values = [SourceValue("tax-rate", "1", "GST 10%"), SourceValue("tax-rate", "4", "Luxury 25%")]
    assert [v.name for v in unmapped(values, _snapshot())] == ["Luxury 25%"]
