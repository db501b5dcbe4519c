"""Mapping tables as pure data: one company's snapshot, resolve functions, validation, suggest.

Nothing here touches a database: :mod:`qbo_pipelines.mapping.repository` loads a
:class:`MappingSnapshot` in one go and saves validated mappings. Resolve functions return the
QBO reference or a :class:`Missing` whose ``reason`` names the source value and whose ``fix`` is
the exact command that resolves it (R12, R31).
"""

from __future__ import annotations

import shlex
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Literal

MappingKind = Literal["tax-rate", "item", "payment-method", "expense-concept"]
MAPPING_KINDS: tuple[MappingKind, ...] = ("tax-rate", "item", "payment-method", "expense-concept")

SettingName = Literal[
    "default-income-account", "default-tax-code", "default-deposit-account", "sync-enabled",
    "paused", "debounce-seconds", "max-wait-seconds", "pull-interval-hours",
    "missing-deletes-max", "missing-deletes-percent",
]
SETTING_NAMES: tuple[SettingName, ...] = (
    "default-income-account", "default-tax-code", "default-deposit-account", "sync-enabled",
    "paused", "debounce-seconds", "max-wait-seconds", "pull-interval-hours",
    "missing-deletes-max", "missing-deletes-percent",
)

EXPENSE_TYPES = frozenset({"Expense", "Other Expense", "Cost of Goods Sold"})
"""Account types an expense mapping may point at (R23)."""


@dataclass(frozen=True, slots=True)
class QboRef:
    """A QBO reference: ``{"value": id, "name": name}``."""

    id: str
    name: str | None = None

    def as_ref(self) -> dict[str, str]:
        """The QBO JSON reference object."""
        return {"value": self.id} if self.name is None else {"value": self.id, "name": self.name}


@dataclass(frozen=True, slots=True)
class Missing:
    """A mapping that is not there: what is missing (naming the value) and the fix."""

    reason: str
    fix: str
    kind: str = ""
    source: str = ""

    def __str__(self) -> str:
        return f"{self.reason}: run `{self.fix}`"


@dataclass(frozen=True, slots=True)
class DepositTarget:
    """Where a receipt paid with a given payment method goes (R19, R21)."""

    deposit_account: QboRef
    payment_method: QboRef | None = None


@dataclass(frozen=True, slots=True)
class PaymentMethodMapping:
    """A source payment method's QBO payment method and deposit account (either may be unset)."""

    payment_method: QboRef | None = None
    deposit_account: QboRef | None = None


@dataclass(frozen=True, slots=True)
class Settings:
    """One company's defaults and switches (``mapping.settings``), with the SPEC defaults."""

    sync_enabled: bool = True
    paused: bool = False
    debounce_seconds: int = 120
    max_wait_seconds: int = 900
    pull_interval_hours: int = 12
    missing_deletes_max: int = 20
    """Records of an entity a full read may find gone from the source app (no delete in its
    change log) and still delete in QBO by itself (R17)."""
    missing_deletes_percent: int = 10
    """The same limit as a share of the records the sync knows; the larger limit applies."""
    default_income_account: QboRef | None = None
    default_tax_code: QboRef | None = None
    default_deposit_account: QboRef | None = None


def fix_command(*words: str, realm_id: str | None = None) -> str:
    """A ``qbo-pipelines mappings ...`` command line, shell-quoted."""
    cmd = "qbo-pipelines mappings " + " ".join(
        w if w.startswith("<") else shlex.quote(w) for w in words
    )
    return cmd + (f" --realm {shlex.quote(realm_id)}" if realm_id else "")


@dataclass(frozen=True, slots=True)
class MappingSnapshot:
    """All of one company's mappings and settings, loaded in one go.

    Keys are source ids (tax rates, products, payment methods) or concept text. ``names`` gives
    the source names used in messages, per kind and source id (values without a mapping row
    are only nameable when the loader passed the source app's names).
    """

    realm_id: str
    settings: Settings = field(default_factory=Settings)
    tax_rates: Mapping[str, QboRef] = field(default_factory=dict)
    items: Mapping[str, QboRef] = field(default_factory=dict)
    payment_methods: Mapping[str, PaymentMethodMapping] = field(default_factory=dict)
    expense_concepts: Mapping[str, QboRef] = field(default_factory=dict)
    names: Mapping[str, Mapping[str, str]] = field(default_factory=dict)

    def _name(self, kind: str, source_id: str, name: str | None) -> str:
        return name or self.names.get(kind, {}).get(source_id) or f"#{source_id}"

    def tax_code_for(self, rate_id: str | None, name: str | None = None) -> QboRef | Missing:
        """The QBO tax code of a source tax rate; ``None`` rate -> the default tax code (R12, R13).
        """
        if rate_id is None:
            if self.settings.default_tax_code is not None:
                return self.settings.default_tax_code
            return Missing(
                "a line has no tax rate and no default tax code is set",
                fix_command("set", "default-tax-code", "<QBO tax code>", realm_id=self.realm_id),
                "default-tax-code", "")
        ref = self.tax_rates.get(rate_id)
        if ref is not None:
            return ref
        label = self._name("tax-rate", rate_id, name)
        return Missing(
            f"tax rate {label!r} has no QBO mapping",
            fix_command("set", "tax-rate", label, "<QBO tax code>", realm_id=self.realm_id),
            "tax-rate", rate_id)

    def item_for(self, product_id: str, name: str | None = None) -> QboRef | Missing:
        """The QBO item of a source service type / product (R10).

        A Missing here is not fatal when a default income account is set: the push creates a
        Service item by exact name (see :meth:`income_account_for_new_items`).
        """
        ref = self.items.get(product_id)
        if ref is not None:
            return ref
        label = self._name("item", product_id, name)
        fix = fix_command("set", "item", label, "<QBO item>", realm_id=self.realm_id)
        if self.settings.default_income_account is None:  # one setting frees them all
            fix += (" (or, for every such product at once, "
                    + fix_command("set", "default-income-account", "<QBO income account>",
                                  realm_id=self.realm_id)
                    + ": the sync then creates a Service item of its name)")
        return Missing(f"service type / product {label!r} has no QBO item", fix, "item",
                       product_id)

    def income_account_for_new_items(self) -> QboRef | Missing:
        """The default income account for Service items the sync creates (R10)."""
        if self.settings.default_income_account is not None:
            return self.settings.default_income_account
        return Missing(
            "no default income account is set for new service items",
            fix_command("set", "default-income-account", "<QBO income account>",
                        realm_id=self.realm_id),
            "default-income-account", "")

    def deposit_for(self, payment_method_id: str | None, name: str | None = None
                    ) -> DepositTarget | Missing:
        """The Bank account (and QBO payment method) for a receipt's payment method (R19, R21).

        Falls back to the default deposit account when the payment method has none.
        """
        mapping = (self.payment_methods.get(payment_method_id)
                   if payment_method_id is not None else None)
        account = (mapping.deposit_account if mapping else None) \
            or self.settings.default_deposit_account
        if account is not None:
            return DepositTarget(account, mapping.payment_method if mapping else None)
        if payment_method_id is None:
            return Missing(
                "a receipt has no payment method and no default deposit account is set",
                fix_command("set", "default-deposit-account", "<QBO bank account>",
                            realm_id=self.realm_id),
                "default-deposit-account", "")
        label = self._name("payment-method", payment_method_id, name)
        return Missing(
            f"payment method {label!r} has no deposit account",
            fix_command("set", "payment-method", label, "<QBO payment method>",
                        "--deposit-account", "<QBO bank account>", realm_id=self.realm_id),
            "payment-method", payment_method_id)

    def expense_account_for(self, concept: str) -> QboRef | Missing:
        """The expense account of a worker-invoice concept (R23, R24)."""
        ref = self.expense_concepts.get(concept)
        if ref is not None:
            return ref
        return Missing(
            f"worker-invoice concept {concept!r} has no expense account",
            fix_command("set", "expense-concept", concept, "<QBO expense account>",
                        realm_id=self.realm_id),
            "expense-concept", concept)


# ------------------------------------------------------------------------------- validation


@dataclass(frozen=True, slots=True)
class Choice:
    """One QBO record a mapping can point at (from ``raw_qbo``)."""

    id: str
    name: str
    type: str | None = None
    active: bool = True


@dataclass(frozen=True, slots=True)
class Choices:
    """The QBO side of a company's mappings (R32): what each mapping can take."""

    accounts: tuple[Choice, ...] = ()
    tax_codes: tuple[Choice, ...] = ()
    items: tuple[Choice, ...] = ()
    payment_methods: tuple[Choice, ...] = ()

    def bank_accounts(self) -> tuple[Choice, ...]:
        """Accounts allowed as deposit accounts (R21)."""
        return tuple(a for a in self.accounts if a.type == "Bank" and a.active)

    def income_accounts(self) -> tuple[Choice, ...]:
        """Accounts allowed as income accounts."""
        return tuple(a for a in self.accounts if a.type == "Income" and a.active)

    def expense_accounts(self) -> tuple[Choice, ...]:
        """Accounts allowed as expense accounts (R23)."""
        return tuple(a for a in self.accounts if a.type in EXPENSE_TYPES and a.active)


class MappingRefusedError(ValueError):
    """A mapping was refused; the message says why (and what is allowed)."""


def find_choice(options: Iterable[Choice], wanted: str, what: str) -> Choice:
    """The choice whose id equals ``wanted``, else whose name equals it (exact, then unique
    case-insensitive). Raises :class:`MappingRefusedError` naming ``what`` when none matches,
    saying what to run when the company's choices were never read."""
    opts = list(options)
    if not opts:
        raise MappingRefusedError(
            f"no {what} of this QBO company has been read yet: run `qbo-pipelines sync pull`"
            f" first (it reads the company's {what}s and the rest), then map again"
        )
    for match in (
        [c for c in opts if c.id == wanted],
        [c for c in opts if c.name == wanted],
        [c for c in opts if c.name.casefold() == wanted.casefold()],
    ):
        if len(match) == 1:
            return match[0]
        if len(match) > 1:
            raise MappingRefusedError(
                f"{what} {wanted!r} is ambiguous in this QBO company: "
                + ", ".join(f"{c.name} (id {c.id})" for c in match))
    raise MappingRefusedError(f"this QBO company has no {what} {wanted!r}")


def _describe(choices: Iterable[Choice]) -> str:
    listed = [f"{c.name} (id {c.id})" for c in choices]
    return ", ".join(listed[:10]) + (" ..." if len(listed) > 10 else "") if listed else "none"


def validate_account(choices: Choices, wanted: str, role: str) -> Choice:
    """Check an account for a role: ``deposit`` (Bank, R21), ``income`` or ``expense``.

    Returns:
        the account.

    Raises:
        MappingRefusedError: unknown, inactive, or of the wrong type, with the reason.
    """
    account = find_choice(choices.accounts, wanted, "account")
    allowed: dict[str, tuple[frozenset[str], tuple[Choice, ...]]] = {
        "deposit": (frozenset({"Bank"}), choices.bank_accounts()),
        "income": (frozenset({"Income"}), choices.income_accounts()),
        "expense": (EXPENSE_TYPES, choices.expense_accounts()),
    }
    types, options = allowed[role]
    if account.type not in types:
        kinds = " or ".join(sorted(types))
        raise MappingRefusedError(
            f"account {account.name!r} is of type {account.type or 'unknown'}, but a {role} "
            f"account must be of type {kinds}; choose one of: {_describe(options)}")
    if not account.active:
        raise MappingRefusedError(f"account {account.name!r} is inactive in QBO")
    return account


def validate_named(options: Iterable[Choice], wanted: str, what: str) -> Choice:
    """Check a tax code, item or payment method exists and is active."""
    choice = find_choice(options, wanted, what)
    if not choice.active:
        raise MappingRefusedError(f"{what} {choice.name!r} is inactive in QBO")
    return choice


# ---------------------------------------------------------------------------------- suggest


@dataclass(frozen=True, slots=True)
class SourceValue:
    """A source value that needs a mapping, with the records that use it."""

    kind: MappingKind
    source_id: str
    name: str
    records: int = 0
    examples: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Suggestion:
    """An exact-name match between a source value and a QBO record."""

    kind: MappingKind
    source_id: str
    source_name: str
    qbo: Choice


def suggest(values: Iterable[SourceValue], choices: Choices,
            snapshot: MappingSnapshot | None = None) -> list[Suggestion]:
    """Exact-name matches for values not yet mapped (pure).

    Tax rates match tax codes, service types match items, payment methods match QBO payment
    methods, concepts match expense accounts; only exact (case-sensitive, trimmed) names and
    active records count.
    """
    pools: dict[str, tuple[Choice, ...]] = {
        "tax-rate": choices.tax_codes, "item": choices.items,
        "payment-method": choices.payment_methods, "expense-concept": choices.expense_accounts(),
    }
    mapped: dict[str, Mapping[str, object]] = {}
    if snapshot is not None:
        mapped = {"tax-rate": snapshot.tax_rates, "item": snapshot.items,
                  "payment-method": snapshot.payment_methods,
                  "expense-concept": snapshot.expense_concepts}
    out: list[Suggestion] = []
    for value in values:
        if value.source_id in mapped.get(value.kind, {}):
            continue
        wanted = value.name.strip()
        matches = [c for c in pools[value.kind] if c.active and c.name.strip() == wanted]
        if len(matches) == 1:
            out.append(Suggestion(value.kind, value.source_id, value.name, matches[0]))
    return out


def unmapped(values: Iterable[SourceValue], snapshot: MappingSnapshot) -> list[SourceValue]:
    """Source values that resolve to :class:`Missing` (what ``mappings check`` lists)."""
    out = []
    for v in values:
        if v.kind == "tax-rate":
            result: object = snapshot.tax_code_for(v.source_id, v.name)
        elif v.kind == "item":
            result = snapshot.item_for(v.source_id, v.name)
            if isinstance(result, Missing) and snapshot.settings.default_income_account:
                continue  # created on push with the default income account (R10)
        elif v.kind == "payment-method":
            result = snapshot.deposit_for(v.source_id, v.name)
        else:
            result = snapshot.expense_account_for(v.source_id)
        if isinstance(result, Missing):
            out.append(v)
    return out
