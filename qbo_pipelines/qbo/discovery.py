"""The QBO choices a user maps to (SPEC R32): accounts, tax codes and rates, payment methods,
terms, items, company info, preferences and home currency.

Each function returns small frozen records (plus the raw entity for anything else), read with
paged queries, active rows only unless asked otherwise. ``deposit_accounts`` applies SPEC R21
(only Bank-type accounts may be chosen as deposit accounts).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from qbo_pipelines.qbo import query as q
from qbo_pipelines.qbo.client import QboClient
from qbo_pipelines.qbo.ids import QboId
from qbo_pipelines.qbo.values import Entity


def _ref_value(ref: object) -> QboId | None:
    if isinstance(ref, dict) and ref.get("value") is not None:
        return QboId(str(ref["value"]))
    return None


def _decimal(value: object) -> Decimal | None:
    if value is None:
        return None
    return value if isinstance(value, Decimal) else Decimal(str(value))


@dataclass(frozen=True)
class AccountChoice:
    id: QboId
    name: str
    fully_qualified_name: str
    account_type: str
    account_sub_type: str | None
    classification: str | None
    active: bool
    raw: Entity = field(repr=False, compare=False)


@dataclass(frozen=True)
class TaxRateChoice:
    id: QboId
    name: str
    rate: Decimal | None
    active: bool
    raw: Entity = field(repr=False, compare=False)


@dataclass(frozen=True)
class TaxCodeChoice:
    id: QboId
    name: str
    description: str | None
    taxable: bool | None
    active: bool
    sales_rate_ids: tuple[QboId, ...]
    raw: Entity = field(repr=False, compare=False)


@dataclass(frozen=True)
class NamedChoice:
    """PaymentMethod, Term, Item and other name-list entities."""

    id: QboId
    name: str
    kind: str | None  # PaymentMethod.Type, Term.Type, Item.Type
    active: bool
    raw: Entity = field(repr=False, compare=False)


@dataclass(frozen=True)
class CompanySummary:
    realm_company_name: str
    legal_name: str | None
    country: str | None
    home_currency: str | None
    multicurrency: bool
    using_sales_tax: bool | None
    custom_txn_numbers: bool | None
    company_info: Entity = field(repr=False, compare=False)
    preferences: Entity = field(repr=False, compare=False)


def _all(
    client: QboClient, entity: str, include_inactive: bool, where: Iterable[q.Condition] = ()
) -> list[Entity]:
    return list(client.query_all(entity, list(where), include_inactive=include_inactive))


def accounts(
    client: QboClient, *, account_type: str | None = None, include_inactive: bool = False
) -> list[AccountChoice]:
    """Chart of accounts with type and subtype, optionally filtered by ``AccountType``."""
    where = [q.eq("AccountType", account_type)] if account_type else []
    return [
        AccountChoice(
            id=QboId(str(a["Id"])),
            name=str(a.get("Name", "")),
            fully_qualified_name=str(a.get("FullyQualifiedName") or a.get("Name", "")),
            account_type=str(a.get("AccountType", "")),
            account_sub_type=a.get("AccountSubType"),
            classification=a.get("Classification"),
            active=bool(a.get("Active", True)),
            raw=a,
        )
        for a in _all(client, "Account", include_inactive, where)
    ]


def income_accounts(client: QboClient) -> list[AccountChoice]:
    return accounts(client, account_type="Income")


def expense_accounts(client: QboClient) -> list[AccountChoice]:
    return [
        a
        for a in accounts(client)
        if a.account_type in ("Expense", "Other Expense", "Cost of Goods Sold")
    ]


def deposit_accounts(client: QboClient) -> list[AccountChoice]:
    """Only Bank-type accounts (SPEC R21)."""
    return accounts(client, account_type="Bank")


def tax_rates(client: QboClient, *, include_inactive: bool = False) -> list[TaxRateChoice]:
    return [
        TaxRateChoice(
            id=QboId(str(r["Id"])),
            name=str(r.get("Name", "")),
            rate=_decimal(r.get("RateValue")),
            active=bool(r.get("Active", True)),
            raw=r,
        )
        for r in _all(client, "TaxRate", include_inactive)
    ]


def tax_codes(client: QboClient, *, include_inactive: bool = False) -> list[TaxCodeChoice]:
    out: list[TaxCodeChoice] = []
    for t in _all(client, "TaxCode", include_inactive):
        details = (t.get("SalesTaxRateList") or {}).get("TaxRateDetail") or []
        rate_ids = tuple(
            r
            for r in (_ref_value(d.get("TaxRateRef")) for d in details if isinstance(d, dict))
            if r is not None
        )
        out.append(
            TaxCodeChoice(
                id=QboId(str(t["Id"])),
                name=str(t.get("Name", "")),
                description=t.get("Description"),
                taxable=t.get("Taxable"),
                active=bool(t.get("Active", True)),
                sales_rate_ids=rate_ids,
                raw=t,
            )
        )
    return out


def _named(
    client: QboClient, entity: str, include_inactive: bool, name_key: str = "Name"
) -> list[NamedChoice]:
    return [
        NamedChoice(
            id=QboId(str(e["Id"])),
            name=str(e.get(name_key, "")),
            kind=e.get("Type"),
            active=bool(e.get("Active", True)),
            raw=e,
        )
        for e in _all(client, entity, include_inactive)
    ]


def payment_methods(client: QboClient, *, include_inactive: bool = False) -> list[NamedChoice]:
    return _named(client, "PaymentMethod", include_inactive)


def terms(client: QboClient, *, include_inactive: bool = False) -> list[NamedChoice]:
    return _named(client, "Term", include_inactive)


def items(client: QboClient, *, include_inactive: bool = False) -> list[NamedChoice]:
    return _named(client, "Item", include_inactive)


def company(client: QboClient) -> CompanySummary:
    """CompanyInfo + Preferences, with the home currency (SPEC R15)."""
    info = client.company_info()
    prefs = client.preferences()
    currency: dict[str, Any] = prefs.get("CurrencyPrefs") or {}
    home = currency.get("HomeCurrency") or {}
    tax: dict[str, Any] = prefs.get("TaxPrefs") or {}
    sales: dict[str, Any] = prefs.get("SalesFormsPrefs") or {}
    return CompanySummary(
        realm_company_name=str(info.get("CompanyName", "")),
        legal_name=info.get("LegalName"),
        country=info.get("Country"),
        home_currency=home.get("value") if isinstance(home, dict) else None,
        multicurrency=bool(currency.get("MultiCurrencyEnabled", False)),
        using_sales_tax=tax.get("UsingSalesTax"),
        custom_txn_numbers=sales.get("CustomTxnNumbers"),
        company_info=info,
        preferences=prefs,
    )


@dataclass(frozen=True)
class Choices:
    """Everything a mapping screen needs, in one object."""

    company: CompanySummary
    accounts: list[AccountChoice]
    tax_codes: list[TaxCodeChoice]
    tax_rates: list[TaxRateChoice]
    payment_methods: list[NamedChoice]
    terms: list[NamedChoice]
    items: list[NamedChoice]

    @property
    def deposit_accounts(self) -> list[AccountChoice]:
        return [a for a in self.accounts if a.account_type == "Bank"]

    @property
    def income_accounts(self) -> list[AccountChoice]:
        return [a for a in self.accounts if a.account_type == "Income"]


def discover(client: QboClient) -> Choices:
    """Fetch all choices (about ten calls for a normal company)."""
    return Choices(
        company=company(client),
        accounts=accounts(client),
        tax_codes=tax_codes(client),
        tax_rates=tax_rates(client),
        payment_methods=payment_methods(client),
        terms=terms(client),
        items=items(client),
    )
