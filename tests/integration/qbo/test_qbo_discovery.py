"""Discovery of the QBO choices users map to, against a seeded sandbox company (R32, R21, R15)."""

from __future__ import annotations

from collections.abc import Callable

from qbo_sandbox_helpers import Company

from qbo_pipelines.qbo import discovery


def test_R32_discover_all_choices(new_company: Callable[..., Company]) -> None:
    company = new_company(seed=True, name="Choices Co")
    found = discovery.discover(company.client())
    assert found.company.realm_company_name == "Choices Co"
    assert found.company.home_currency == "USD"
    assert found.accounts
    assert all(a.account_type for a in found.accounts)
    assert any(a.account_sub_type for a in found.accounts)
    assert found.tax_codes
    assert found.tax_rates
    assert any(t.sales_rate_ids for t in found.tax_codes)
    assert all(r.rate is None or r.rate >= 0 for r in found.tax_rates)
    assert found.payment_methods
    assert found.terms
    assert found.items
    assert {i.name for i in found.items} >= {"Consulting", "Widget"}
    assert found.income_accounts


def test_R21_only_bank_accounts_offered_for_deposits(new_company: Callable[..., Company]) -> None:
    company = new_company(seed=True)
    client = company.client()
    deposit = discovery.deposit_accounts(client)
    assert deposit
    assert {a.account_type for a in deposit} == {"Bank"}
    everything = discovery.accounts(client)
    assert len(everything) > len(deposit)
    assert all(
        a.account_type in ("Expense", "Other Expense", "Cost of Goods Sold")
        for a in discovery.expense_accounts(client)
    )
