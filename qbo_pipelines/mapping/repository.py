"""Load and save a company's mappings (``mapping.*``), validated against its QBO choices.

The QBO side of every mapping is checked against what the company has in ``raw_qbo`` (accounts,
tax codes, items, payment methods pulled by the reference refresh): an unknown or inactive record
is refused, and so is an account of the wrong type: deposit accounts must be Bank (R21), income
accounts Income, expense accounts Expense / Other Expense / Cost of Goods Sold (R23).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import sqlalchemy as sa

from qbo_pipelines.mapping.model import (
    Choice,
    Choices,
    MappingKind,
    MappingRefusedError,
    MappingSnapshot,
    PaymentMethodMapping,
    QboRef,
    SettingName,
    Settings,
    SourceValue,
    Suggestion,
    validate_account,
    validate_named,
)

_REF_SQL = ("SELECT qbo_id, name, type, coalesce(active, true) AS active FROM raw_qbo.{table} "
            "WHERE realm_id = :r AND NOT deleted ORDER BY name, qbo_id")
_REF_TABLES = {"accounts": "accounts", "tax_codes": "tax_codes", "items": "items",
               "payment_methods": "payment_methods"}


def load_choices(engine: sa.Engine | sa.Connection, realm_id: str) -> Choices:
    """The company's QBO choices from ``raw_qbo`` (one query per reference table)."""
    found: dict[str, tuple[Choice, ...]] = {}
    with _connect(engine) as conn:
        for key, table in _REF_TABLES.items():
            rows = conn.execute(sa.text(_REF_SQL.format(table=table)), {"r": realm_id})
            found[key] = tuple(
                Choice(str(r.qbo_id), str(r.name or ""), r.type, bool(r.active)) for r in rows
            )
    return Choices(**found)


class _connect:
    def __init__(self, target: sa.Engine | sa.Connection, begin: bool = False) -> None:
        self.target, self.begin, self._ctx = target, begin, None

    def __enter__(self) -> sa.Connection:
        if isinstance(self.target, sa.Connection):
            return self.target
        self._ctx = self.target.begin() if self.begin else self.target.connect()  # type: ignore[assignment]
        conn: sa.Connection = self._ctx.__enter__()  # type: ignore[attr-defined]
        return conn

    def __exit__(self, *exc: Any) -> None:
        if self._ctx is not None:
            self._ctx.__exit__(*exc)


def _ref(qbo_id: Any, name: Any) -> QboRef | None:
    return None if qbo_id is None else QboRef(str(qbo_id), None if name is None else str(name))


def load_settings(engine: sa.Engine | sa.Connection, realm_id: str) -> Settings:
    """The company's settings (SPEC defaults when it has no row)."""
    with _connect(engine) as conn:
        row = conn.execute(sa.text(
            "SELECT s.*, ia.name AS income_name, tc.name AS tax_name, da.name AS deposit_name "
            "FROM mapping.settings s "
            "LEFT JOIN raw_qbo.accounts ia ON ia.realm_id = s.realm_id "
            "     AND ia.qbo_id = s.default_income_account_id "
            "LEFT JOIN raw_qbo.tax_codes tc ON tc.realm_id = s.realm_id "
            "     AND tc.qbo_id = s.default_tax_code_id "
            "LEFT JOIN raw_qbo.accounts da ON da.realm_id = s.realm_id "
            "     AND da.qbo_id = s.default_deposit_account_id "
            "WHERE s.realm_id = :r"), {"r": realm_id}).mappings().one_or_none()
    if row is None:
        return Settings()
    return Settings(
        sync_enabled=bool(row["sync_enabled"]), paused=bool(row["paused"]),
        debounce_seconds=int(row["debounce_seconds"]),
        max_wait_seconds=int(row["max_wait_seconds"]),
        pull_interval_hours=int(row["pull_interval_hours"]),
        missing_deletes_max=int(row["missing_deletes_max"]),
        missing_deletes_percent=int(row["missing_deletes_percent"]),
        default_income_account=_ref(row["default_income_account_id"], row["income_name"]),
        default_tax_code=_ref(row["default_tax_code_id"], row["tax_name"]),
        default_deposit_account=_ref(row["default_deposit_account_id"], row["deposit_name"]),
    )


def load_snapshot(
    engine: sa.Engine | sa.Connection,
    realm_id: str,
    source_values: Iterable[SourceValue] = (),
) -> MappingSnapshot:
    """All of one company's mappings and settings, in a handful of queries.

    Args:
        engine: the warehouse.
        realm_id: the company.
        source_values: optional source values (from :func:`source_values`) so that messages can
            name values that have no mapping row yet.
    """
    names: dict[str, dict[str, str]] = {}
    for value in source_values:
        names.setdefault(value.kind, {})[value.source_id] = value.name
    with _connect(engine) as conn:
        params = {"r": realm_id}
        tax = conn.execute(sa.text(
            "SELECT source_id, source_name, qbo_tax_code_id, qbo_tax_code_name "
            "FROM mapping.tax_rates WHERE realm_id = :r"), params).all()
        items = conn.execute(sa.text(
            "SELECT source_id, source_name, qbo_item_id, qbo_item_name "
            "FROM mapping.items WHERE realm_id = :r"), params).all()
        methods = conn.execute(sa.text(
            "SELECT source_id, source_name, qbo_payment_method_id, qbo_payment_method_name, "
            "deposit_account_id, deposit_account_name "
            "FROM mapping.payment_methods WHERE realm_id = :r"), params).all()
        concepts = conn.execute(sa.text(
            "SELECT concept, expense_account_id, expense_account_name "
            "FROM mapping.expense_concepts WHERE realm_id = :r"), params).all()
        settings = load_settings(conn, realm_id)
    for kind, rows in (("tax-rate", tax), ("item", items), ("payment-method", methods)):
        for r in rows:
            names.setdefault(kind, {}).setdefault(str(r[0]), str(r[1]))
    return MappingSnapshot(
        realm_id=realm_id,
        settings=settings,
        tax_rates={str(r[0]): QboRef(str(r[2]), r[3]) for r in tax},
        items={str(r[0]): QboRef(str(r[2]), r[3]) for r in items},
        payment_methods={
            str(r[0]): PaymentMethodMapping(_ref(r[2], r[3]), _ref(r[4], r[5])) for r in methods
        },
        expense_concepts={str(r[0]): QboRef(str(r[1]), r[2]) for r in concepts},
        names=names,
    )


def source_values(usage: Iterable[Mapping[str, Any]]) -> list[SourceValue]:
    """SourceValues from the connector's ``mapping_usage()`` rows."""
    return [
        SourceValue(kind=u["kind"], source_id=str(u["source_id"]), name=str(u["name"]),
                    records=int(u.get("records", 0)), examples=tuple(u.get("examples", ())))
        for u in usage
    ]


# ------------------------------------------------------------------------------------ writes


def set_tax_rate(engine: sa.Engine, realm_id: str, source_id: str, source_name: str,
                 tax_code: str, by: str | None = None) -> Choice:
    """Map a source tax rate to a QBO tax code (id or exact name) the company has (R12)."""
    code = validate_named(load_choices(engine, realm_id).tax_codes, tax_code, "tax code")
    with engine.begin() as conn:
        conn.execute(sa.text(
            "INSERT INTO mapping.tax_rates (realm_id, source_id, source_name, "
            "qbo_tax_code_id, qbo_tax_code_name, updated_by) VALUES (:r, :s, :n, :q, :qn, :by) "
            "ON CONFLICT (realm_id, source_id) DO UPDATE SET source_name = EXCLUDED.source_name, "
            "qbo_tax_code_id = EXCLUDED.qbo_tax_code_id, "
            "qbo_tax_code_name = EXCLUDED.qbo_tax_code_name, updated_by = EXCLUDED.updated_by, "
            "updated_at = now()"),
            {"r": realm_id, "s": source_id, "n": source_name, "q": code.id, "qn": code.name,
             "by": by})
    return code


def set_item(engine: sa.Engine, realm_id: str, source_id: str, source_name: str, item: str,
             by: str | None = None, how: str = "manual") -> Choice:
    """Map a source service type / product to a QBO item the company has (R10)."""
    choice = validate_named(load_choices(engine, realm_id).items, item, "item")
    with engine.begin() as conn:
        conn.execute(sa.text(
            "INSERT INTO mapping.items (realm_id, source_id, source_name, qbo_item_id, "
            "qbo_item_name, how, updated_by) VALUES (:r, :s, :n, :q, :qn, :how, :by) "
            "ON CONFLICT (realm_id, source_id) DO UPDATE SET source_name = EXCLUDED.source_name, "
            "qbo_item_id = EXCLUDED.qbo_item_id, qbo_item_name = EXCLUDED.qbo_item_name, "
            "how = EXCLUDED.how, updated_by = EXCLUDED.updated_by, updated_at = now()"),
            {"r": realm_id, "s": source_id, "n": source_name, "q": choice.id, "qn": choice.name,
             "how": how, "by": by})
    return choice


def set_payment_method(
    engine: sa.Engine, realm_id: str, source_id: str, source_name: str,
    payment_method: str | None, deposit_account: str | None, by: str | None = None,
) -> tuple[Choice | None, Choice | None]:
    """Map a source payment method to a QBO payment method and a Bank deposit account (R19, R21).

    Raises:
        MappingRefusedError: e.g. when the deposit account is not of type Bank.
    """
    if payment_method is None and deposit_account is None:
        raise MappingRefusedError("give a QBO payment method, a deposit account, or both")
    choices = load_choices(engine, realm_id)
    method = (validate_named(choices.payment_methods, payment_method, "payment method")
              if payment_method else None)
    account = validate_account(choices, deposit_account, "deposit") if deposit_account else None
    with engine.begin() as conn:
        conn.execute(sa.text(
            "INSERT INTO mapping.payment_methods AS m (realm_id, source_id, source_name, "
            "qbo_payment_method_id, qbo_payment_method_name, deposit_account_id, "
            "deposit_account_name, updated_by) VALUES (:r, :s, :n, :pm, :pmn, :da, :dan, :by) "
            "ON CONFLICT (realm_id, source_id) DO UPDATE SET source_name = EXCLUDED.source_name, "
            "qbo_payment_method_id = coalesce(EXCLUDED.qbo_payment_method_id, "
            "  m.qbo_payment_method_id), "
            "qbo_payment_method_name = coalesce(EXCLUDED.qbo_payment_method_name, "
            "  m.qbo_payment_method_name), "
            "deposit_account_id = coalesce(EXCLUDED.deposit_account_id, "
            "  m.deposit_account_id), "
            "deposit_account_name = coalesce(EXCLUDED.deposit_account_name, "
            "  m.deposit_account_name), "
            "updated_by = EXCLUDED.updated_by, updated_at = now()"),
            {"r": realm_id, "s": source_id, "n": source_name,
             "pm": method.id if method else None, "pmn": method.name if method else None,
             "da": account.id if account else None, "dan": account.name if account else None,
             "by": by})
    return method, account


def set_expense_concept(engine: sa.Engine, realm_id: str, concept: str, account: str,
                        by: str | None = None) -> Choice:
    """Map a worker-invoice concept to an expense-type account (R23); kept until disconnect."""
    choice = validate_account(load_choices(engine, realm_id), account, "expense")
    with engine.begin() as conn:
        conn.execute(sa.text(
            "INSERT INTO mapping.expense_concepts (realm_id, concept, expense_account_id, "
            "expense_account_name, updated_by) VALUES (:r, :c, :a, :an, :by) "
            "ON CONFLICT (realm_id, concept) DO UPDATE SET "
            "expense_account_id = EXCLUDED.expense_account_id, "
            "expense_account_name = EXCLUDED.expense_account_name, "
            "updated_by = EXCLUDED.updated_by, updated_at = now()"),
            {"r": realm_id, "c": concept, "a": choice.id, "an": choice.name, "by": by})
    return choice


_SETTING_COLUMNS: dict[str, str] = {
    "default-income-account": "default_income_account_id",
    "default-tax-code": "default_tax_code_id",
    "default-deposit-account": "default_deposit_account_id",
    "sync-enabled": "sync_enabled",
    "paused": "paused",
    "debounce-seconds": "debounce_seconds",
    "max-wait-seconds": "max_wait_seconds",
    "pull-interval-hours": "pull_interval_hours",
    "missing-deletes-max": "missing_deletes_max",
    "missing-deletes-percent": "missing_deletes_percent",
}
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def _setting_value(engine: sa.Engine, realm_id: str, name: str, value: str | None) -> object:
    if value is None:
        return None
    if name in ("default-income-account", "default-deposit-account"):
        role = "income" if name == "default-income-account" else "deposit"
        return validate_account(load_choices(engine, realm_id), value, role).id
    if name == "default-tax-code":
        return validate_named(load_choices(engine, realm_id).tax_codes, value, "tax code").id
    if name in ("sync-enabled", "paused"):
        if value.lower() in _TRUE:
            return True
        if value.lower() in _FALSE:
            return False
        raise MappingRefusedError(f"{name} takes on/off, got {value!r}")
    try:
        number = int(value)
    except ValueError:
        raise MappingRefusedError(f"{name} takes a whole number, got {value!r}") from None
    least = 1 if name == "pull-interval-hours" else 0
    if number < least:
        raise MappingRefusedError(f"{name} is at least {least}, got {number:,}")
    most = _SETTING_MAX[name]
    if number > most:
        raise MappingRefusedError(f"{name} is at most {most:,}, got {number:,}")
    return number


_SETTING_MAX: dict[str, int] = {
    "debounce-seconds": 7 * 86400,
    "max-wait-seconds": 7 * 86400,
    "pull-interval-hours": 30 * 24,  # QBO's CDC reaches back 30 days
    "missing-deletes-max": 1_000_000_000,
    "missing-deletes-percent": 100,
}


def set_setting(engine: sa.Engine, realm_id: str, name: SettingName | str, value: str | None,
                by: str | None = None) -> object:
    """Set one company setting (validated; accounts by type, R21); ``None`` clears a default."""
    if name not in _SETTING_COLUMNS:
        raise MappingRefusedError(f"unknown setting {name!r}; one of {', '.join(_SETTING_COLUMNS)}")
    if value is None and name not in ("default-income-account", "default-tax-code",
                                      "default-deposit-account"):
        raise MappingRefusedError(f"{name} cannot be unset; set it to a value")
    stored = _setting_value(engine, realm_id, name, value)
    column = _SETTING_COLUMNS[name]  # from the fixed table above, never from input
    with engine.begin() as conn:
        conn.execute(sa.text(
            f"INSERT INTO mapping.settings (realm_id, {column}, updated_by) VALUES (:r, :v, :by) "
            f"ON CONFLICT (realm_id) DO UPDATE SET {column} = EXCLUDED.{column}, "
            "updated_by = EXCLUDED.updated_by, updated_at = now()"),
            {"r": realm_id, "v": stored, "by": by})
    return stored


_UNSET_SQL: dict[str, str] = {
    "tax-rate": "DELETE FROM mapping.tax_rates WHERE realm_id = :r AND source_id = :s",
    "item": "DELETE FROM mapping.items WHERE realm_id = :r AND source_id = :s",
    "payment-method": "DELETE FROM mapping.payment_methods WHERE realm_id = :r AND source_id = :s",
    "expense-concept": "DELETE FROM mapping.expense_concepts WHERE realm_id = :r AND concept = :s",
}


def unset(engine: sa.Engine, realm_id: str, kind: MappingKind | str, source_id: str) -> bool:
    """Remove one mapping; True when there was one."""
    if kind not in _UNSET_SQL:
        raise MappingRefusedError(f"unknown mapping kind {kind!r}")
    with engine.begin() as conn:
        return conn.execute(sa.text(_UNSET_SQL[kind]), {"r": realm_id, "s": source_id}).rowcount > 0


def apply_suggestions(engine: sa.Engine, realm_id: str, suggestions: Iterable[Suggestion],
                      by: str | None = "suggest") -> int:
    """Save exact-name suggestions (never overwriting an existing mapping); returns the count."""
    count = 0
    for s in suggestions:
        if s.kind == "tax-rate":
            set_tax_rate(engine, realm_id, s.source_id, s.source_name, s.qbo.id, by)
        elif s.kind == "item":
            set_item(engine, realm_id, s.source_id, s.source_name, s.qbo.id, by, how="suggested")
        elif s.kind == "payment-method":
            set_payment_method(engine, realm_id, s.source_id, s.source_name, s.qbo.id, None, by)
        else:
            set_expense_concept(engine, realm_id, s.source_id, s.qbo.id, by)
        count += 1
    return count


_MAPPING_TABLES = ("settings", "tax_rates", "items", "payment_methods", "expense_concepts")


def delete_company_mappings(engine: sa.Engine | sa.Connection, realm_id: str) -> dict[str, int]:
    """Disconnect cleanup (R1, R24): remove the company's settings and every mapping.

    Returns:
        rows deleted per table.
    """
    deleted: dict[str, int] = {}
    with _connect(engine, begin=True) as conn:
        for table in _MAPPING_TABLES:  # fixed names, never from input
            deleted[table] = conn.execute(
                sa.text(f"DELETE FROM mapping.{table} WHERE realm_id = :r"), {"r": realm_id}
            ).rowcount
    return deleted
