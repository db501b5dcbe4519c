"""``qbo-pipelines mappings list|suggest|set|unset|check [--realm R]`` (R10-R13, R19, R21, R32).

Source values come from the source app (through the connector's ``mapping_usage.sql``); the
QBO choices from ``raw_qbo`` (refreshed by the QBO reference pull). Refusals (an Income account
as deposit account, an unknown tax code, ...) are printed as one line with the reason.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import sqlalchemy as sa

from qbo_pipelines.mapping import model, repository


@dataclass
class _Env:
    warehouse: sa.Engine
    source: sa.Engine

    def close(self) -> None:
        self.warehouse.dispose()
        self.source.dispose()


def _env() -> _Env:
    from qbo_pipelines.warehouse import db

    stack = db.bootstrap()
    return _Env(db.make_engine(stack.warehouse_url), db.make_engine(stack.source_app_url))


def _user_error(message: str) -> Exception:
    from qbo_pipelines.cli import UserError

    return UserError(message)


def resolve_realm(engine: sa.Engine, realm: str | None) -> str:
    """The ``--realm`` given (refused unless connected), else the only connected company."""
    from qbo_pipelines import companies

    if realm:
        try:
            return companies.require_connected(engine, realm).realm_id
        except companies.NotConnectedError as exc:
            raise _user_error(str(exc)) from None
    found = companies.connected(engine)
    if len(found) == 1:
        return found[0].realm_id
    if not found:
        raise _user_error("no QBO company is connected; run `qbo-pipelines connect` first")
    listing = ", ".join(c.label for c in found)
    raise _user_error(f"several companies are connected ({listing}): pass --realm")


def _values(env: _Env) -> list[model.SourceValue]:
    from qbo_pipelines.source_app.connector import SourceAppConnector

    return repository.source_values(SourceAppConnector(env.source).mapping_usage())


def _find_value(values: Sequence[model.SourceValue], kind: str, wanted: str) -> model.SourceValue:
    of_kind = [v for v in values if v.kind == kind]
    for match in ([v for v in of_kind if v.name == wanted],
                  [v for v in of_kind if v.source_id == wanted]):
        if len(match) == 1:
            return match[0]
    if kind == "expense-concept":  # a concept not used yet can still be mapped ahead of time
        return model.SourceValue("expense-concept", wanted, wanted)
    names = ", ".join(repr(v.name) for v in of_kind) or "none"
    raise _user_error(f"the source app has no {kind} {wanted!r}; it has: {names}")


def _choices_for(choices: model.Choices, kind: str) -> tuple[model.Choice, ...]:
    return {
        "tax-rate": choices.tax_codes, "item": choices.items,
        "payment-method": choices.payment_methods,
        "expense-concept": choices.expense_accounts(),
    }[kind]


def _fmt(choices: Sequence[model.Choice], limit: int = 12) -> str:
    shown = [f"{c.name} ({c.id})" for c in choices if c.active][:limit]
    more = len([c for c in choices if c.active]) - len(shown)
    return (", ".join(shown) or "none pulled yet") + (f", +{more} more" if more > 0 else "")


def _current(snapshot: model.MappingSnapshot, value: model.SourceValue) -> str:
    if value.kind == "tax-rate":
        ref: Any = snapshot.tax_rates.get(value.source_id)
    elif value.kind == "item":
        ref = snapshot.items.get(value.source_id)
    elif value.kind == "payment-method":
        pm = snapshot.payment_methods.get(value.source_id)
        if pm is None:
            return "-"
        parts = [f"method {pm.payment_method.name or pm.payment_method.id}"
                 if pm.payment_method else "",
                 f"deposit {pm.deposit_account.name or pm.deposit_account.id}"
                 if pm.deposit_account else ""]
        return ", ".join(p for p in parts if p)
    else:
        ref = snapshot.expense_concepts.get(value.source_id)
    return "-" if ref is None else f"{ref.name or ''} ({ref.id})".strip()


def _list(args: argparse.Namespace) -> int:
    env = _env()
    try:
        realm = resolve_realm(env.warehouse, args.realm)
        values = _values(env)
        snapshot = repository.load_snapshot(env.warehouse, realm, values)
        choices = repository.load_choices(env.warehouse, realm)
    finally:
        env.close()
    s = snapshot.settings
    print(f"company {realm}")
    print(f"  sync-enabled={'on' if s.sync_enabled else 'off'} paused={'on' if s.paused else 'off'}"
          f" debounce-seconds={s.debounce_seconds} max-wait-seconds={s.max_wait_seconds}"
          f" pull-interval-hours={s.pull_interval_hours}")
    print(f"  missing-deletes-max={s.missing_deletes_max}"
          f" missing-deletes-percent={s.missing_deletes_percent}")
    for label, ref, options in (
        ("default-income-account", s.default_income_account, choices.income_accounts()),
        ("default-tax-code", s.default_tax_code, choices.tax_codes),
        ("default-deposit-account", s.default_deposit_account, choices.bank_accounts()),
    ):
        current = "-" if ref is None else f"{ref.name or ''} ({ref.id})"
        print(f"  {label}: {current}    choices: {_fmt(options)}")
    for kind in model.MAPPING_KINDS:
        print(f"{kind} mappings    choices: {_fmt(_choices_for(choices, kind))}")
        if kind == "payment-method":
            print(f"  (deposit accounts must be Bank: {_fmt(choices.bank_accounts())})")
        for v in (v for v in values if v.kind == kind):
            print(f"  {v.name!r:32} -> {_current(snapshot, v):36} used by {v.records}")
    return 0


def _suggest(args: argparse.Namespace) -> int:
    env = _env()
    try:
        realm = resolve_realm(env.warehouse, args.realm)
        values = _values(env)
        snapshot = repository.load_snapshot(env.warehouse, realm, values)
        found = model.suggest(values, repository.load_choices(env.warehouse, realm), snapshot)
        for s in found:
            print(f"{s.kind} {s.source_name!r} -> {s.qbo.name} ({s.qbo.id})")
        if not args.dry_run:
            repository.apply_suggestions(env.warehouse, realm, found)
    finally:
        env.close()
    verb = "would pre-fill" if args.dry_run else "pre-filled"
    print(f"{verb} {len(found)} exact-name mapping(s)")
    return 0


def _set(args: argparse.Namespace) -> int:
    env = _env()
    try:
        realm = resolve_realm(env.warehouse, args.realm)
        try:
            _do_set(env, realm, args.kind, list(args.values), args.deposit_account)
        except model.MappingRefusedError as exc:
            raise _user_error(f"refused: {exc}") from None
    finally:
        env.close()
    return 0


def _do_set(env: _Env, realm: str, kind: str, values: list[str],
            deposit_account: str | None) -> None:
    from qbo_pipelines.sync.settings import replans_waiting

    _write(env, realm, kind, values, deposit_account)
    replans = replans_waiting(env.warehouse, realm).entities  # sql/warehouse/130_mapping_replan
    if replans:
        print(f"the next push plans every synced record of {', '.join(replans)} again: "
              "what a changed mapping moves is written to QBO, nothing else")


def _write(env: _Env, realm: str, kind: str, values: list[str],
           deposit_account: str | None) -> None:
    if deposit_account is not None and kind != "payment-method":
        raise _user_error(f"--deposit-account goes with payment-method, not {kind}")
    if kind in model.SETTING_NAMES:
        if len(values) != 1:
            raise _user_error(f"usage: qbo-pipelines mappings set {kind} <value>")
        stored = repository.set_setting(env.warehouse, realm, kind, values[0], by="cli")
        print(f"{kind} = {stored}")
        return
    if kind == "payment-method":
        if len(values) not in (1, 2):
            raise _user_error("usage: qbo-pipelines mappings set payment-method <source name> "
                              "[<QBO payment method>] [--deposit-account <QBO bank account>]")
        value = _find_value(_values(env), kind, values[0])
        method, account = repository.set_payment_method(
            env.warehouse, realm, value.source_id, value.name,
            values[1] if len(values) == 2 else None, deposit_account, by="cli")
        print(f"payment-method {value.name!r} -> method {method.name if method else '-'}, "
              f"deposit {account.name if account else '-'}")
        return
    if len(values) != 2:
        raise _user_error(f"usage: qbo-pipelines mappings set {kind} <source name> <QBO value>")
    value = _find_value(_values(env), kind, values[0])
    setters: dict[str, Callable[[], model.Choice]] = {
        "tax-rate": lambda: repository.set_tax_rate(
            env.warehouse, realm, value.source_id, value.name, values[1], by="cli"),
        "item": lambda: repository.set_item(
            env.warehouse, realm, value.source_id, value.name, values[1], by="cli"),
        "expense-concept": lambda: repository.set_expense_concept(
            env.warehouse, realm, value.source_id, values[1], by="cli"),
    }
    if kind not in setters:
        raise _user_error(f"unknown mapping {kind!r}; one of "
                          f"{', '.join(model.MAPPING_KINDS + model.SETTING_NAMES)}")
    choice = setters[kind]()
    print(f"{kind} {value.name!r} -> {choice.name} ({choice.id})")
    if kind == "tax-rate":
        warning = _rate_differs(env, realm, value, choice)
        if warning:
            print(warning)


def _rate_differs(env: _Env, realm: str, value: model.SourceValue, code: model.Choice) -> str:
    """A warning when the QBO tax code charges another percentage than the source rate: QBO
    computes an invoice's tax from its lines' tax codes, so the invoice would total otherwise
    in QBO than in the source app (R12)."""
    from qbo_pipelines.source_app.connector import SourceAppConnector
    from qbo_pipelines.sync.context import tax_code_rates

    rates = {
        str(r.source_id): r.rate
        for chunk in SourceAppConnector(env.source).iter_entity("tax_rates", [value.source_id])
        for r in chunk
    }
    source = rates.get(str(value.source_id))
    qbo = tax_code_rates(env.warehouse, realm).get(code.id)
    if source is None or qbo is None or Decimal(source) == qbo[1]:
        return ""
    return (
        f"warning: {value.name!r} is {Decimal(source).normalize():f}% in the source app but QBO "
        f"tax code {code.name} charges {qbo[1].normalize():f}%: QBO computes an invoice's tax "
        "from its lines' tax codes, so invoices using this rate will total differently in QBO "
        "(and receipts of the source total be refused); map it to a code of the same rate"
    )


def _unset(args: argparse.Namespace) -> int:
    env = _env()
    try:
        realm = resolve_realm(env.warehouse, args.realm)
        if args.kind in model.SETTING_NAMES:
            try:
                repository.set_setting(env.warehouse, realm, args.kind, None, by="cli")
            except model.MappingRefusedError as exc:
                raise _user_error(f"refused: {exc}") from None
            print(f"{args.kind} cleared")
            return 0
        if args.source is None:
            raise _user_error(f"usage: qbo-pipelines mappings unset {args.kind} <source name>")
        value = _find_value(_values(env), args.kind, args.source)
        removed = repository.unset(env.warehouse, realm, args.kind, value.source_id)
    finally:
        env.close()
    print(f"{args.kind} {value.name!r}: {'removed' if removed else 'was not mapped'}")
    return 0


def check_report(values: Sequence[model.SourceValue], snapshot: model.MappingSnapshot
                 ) -> list[str]:
    """Lines for ``mappings check``: each unmapped value, the records it holds back, the fix."""
    lines = []
    for v in model.unmapped(values, snapshot):
        if v.kind == "tax-rate":
            missing: Any = snapshot.tax_code_for(v.source_id, v.name)
            what = "sales"
        elif v.kind == "item":
            missing = snapshot.item_for(v.source_id, v.name)
            what = "sales"
        elif v.kind == "payment-method":
            missing = snapshot.deposit_for(v.source_id, v.name)
            what = "receipts"
        else:
            missing = snapshot.expense_account_for(v.source_id)
            what = "worker invoices"
        examples = f" (e.g. {', '.join(v.examples)})" if v.examples else ""
        lines.append(f"{missing.reason}; holds back {v.records} {what}{examples}; "
                     f"fix: {missing.fix}")
    return lines


def _check(args: argparse.Namespace) -> int:
    env = _env()
    try:
        realm = resolve_realm(env.warehouse, args.realm)
        values = _values(env)
        snapshot = repository.load_snapshot(env.warehouse, realm, values)
    finally:
        env.close()
    lines = check_report(values, snapshot)
    for line in lines:
        print(line)
    print("all source values are mapped" if not lines else f"{len(lines)} value(s) unmapped")
    return 1 if lines else 0


def register(subparsers: Any) -> None:
    """Add ``mappings list|suggest|set|unset|check`` to the ``qbo-pipelines`` parser."""
    parser = subparsers.add_parser("mappings", help="per-company mappings and settings (R32)")
    sub = parser.add_subparsers(dest="mappings_command", required=True)

    def add(name: str, helptext: str, func: Callable[[argparse.Namespace], int]
            ) -> argparse.ArgumentParser:
        p: argparse.ArgumentParser = sub.add_parser(name, help=helptext)
        p.add_argument("--realm", help="QBO company (default: the only connected one)")
        p.set_defaults(func=func)
        return p

    add("list", "show mappings and settings with the QBO choices they can take", _list)
    sug = add("suggest", "pre-fill exact-name matches", _suggest)
    sug.add_argument("--dry-run", action="store_true", help="print, do not save")
    kinds = ", ".join(model.MAPPING_KINDS + model.SETTING_NAMES)
    st = add("set", f"set a mapping or setting ({kinds})", _set)
    st.add_argument("kind", choices=model.MAPPING_KINDS + model.SETTING_NAMES)
    st.add_argument("values", nargs="+", help="<source name> <QBO id or name>, or <value>")
    st.add_argument("--deposit-account", help="payment-method: the Bank account (R21)")
    un = add("unset", "remove a mapping or clear a default", _unset)
    un.add_argument("kind", choices=model.MAPPING_KINDS + model.SETTING_NAMES)
    un.add_argument("source", nargs="?")
    add("check", "list source values with no mapping and the records they hold back", _check)
