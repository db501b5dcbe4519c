"""Wire the demo source app to a local sandbox company: connect, reference data, mappings.

Used by the main job (``make demo``) and by the end-to-end tests, so both exercise the same
path a user takes: tokens from the sandbox's OAuth server stored encrypted, the company's choices
pulled into ``raw_qbo``, and mappings chosen by name from those choices. The demo maps every tax
rate except ``Luxury 25%`` (left unmapped on purpose, R12).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from qbo_pipelines.canonical import RealmId
from qbo_pipelines.qbo.auth import TokenSet
from qbo_pipelines.sandbox.control import SandboxControl
from qbo_pipelines.sync import reference
from qbo_pipelines.sync.env import SyncEnv

# Source tax rate -> QBO tax code name (Luxury 25% deliberately absent).
DEMO_TAX_CODES = {"GST 10%": "GST", "Reduced 5%": "Reduced 5%", "Zero rated": "Exempt"}
# Source payment method -> (QBO payment method name, Bank deposit account name).
DEMO_PAYMENT_METHODS = {
    "Cash": ("Cash", "Checking"),
    "Cheque": ("Check", "Checking"),
    "Credit Card": ("Visa", "Checking"),
    "Direct Deposit": (None, "Savings"),
}
# Worker-invoice concept -> QBO expense account name.
DEMO_EXPENSE_CONCEPTS = {
    "Development": "Contractors",
    "Design work": "Contractors",
    "Travel expenses": "Travel",
    "Equipment": "Office Supplies",
    "Bonus": "Contractors",
    "Reimbursement": "Travel",
}
DEMO_DEFAULTS = {"income_account": "Services", "tax_code": "Exempt", "deposit_account": "Checking"}


class SetupError(RuntimeError):
    """The demo company lacks something the demo mappings need."""


def prepare_sandbox_company(control: SandboxControl, realm_id: str) -> None:
    """Give the sandbox company a 5 % tax code (real companies create theirs in QBO)."""
    codes = {c.get("Name") for c in control.entities(realm_id, "TaxCode")}
    if "Reduced 5%" in codes:
        return
    [rate] = control.bulk_create(
        realm_id,
        "TaxRate",
        [{"Name": "Reduced 5%", "Description": "Reduced rate 5%", "RateValue": 5, "Active": True}],
    )
    control.bulk_create(
        realm_id,
        "TaxCode",
        [
            {
                "Name": "Reduced 5%",
                "Description": "Reduced rate 5%",
                "Active": True,
                "Taxable": True,
                "SalesTaxRateList": {
                    "TaxRateDetail": [
                        {
                            "TaxRateRef": {"value": rate["Id"], "name": "Reduced 5%"},
                            "TaxTypeApplicable": "TaxOnAmount",
                            "TaxOrder": 0,
                        }
                    ]
                },
            }
        ],
    )


def connect_with_tokens(
    env: SyncEnv,
    realm_id: RealmId,
    token_response: Mapping[str, Any],
    api_url: str,
    company_name: str | None = None,
) -> None:
    """Store a token response (as the OAuth callback would) for ``realm_id``."""
    tokens = TokenSet.from_response(token_response, datetime.now(UTC))
    env.tokens.save_connection(realm_id, tokens, api_base_url=api_url, company_name=company_name)


@dataclass(frozen=True)
class Choices:
    """Name -> QBO Id of the company's reference records (from raw_qbo)."""

    by_table: Mapping[str, Mapping[str, str]]

    def id(self, table: str, name: str) -> str:
        try:
            return self.by_table[table][name]
        except KeyError:
            raise SetupError(
                f"the QBO company has no {table[:-1].replace('_', ' ')} {name!r}"
            ) from None


def load_choices(engine: sa.Engine, realm_id: str) -> Choices:
    tables = ("accounts", "tax_codes", "payment_methods", "items")
    out: dict[str, dict[str, str]] = {}
    with engine.connect() as conn:
        for table in tables:
            rows = conn.execute(
                sa.text(
                    f"SELECT name, qbo_id FROM raw_qbo.{table}"  # noqa: S608 - fixed names
                    " WHERE realm_id = :r AND NOT deleted AND coalesce(active, true)"
                ),
                {"r": realm_id},
            ).tuples()
            out[table] = {str(n): str(i) for n, i in rows if n is not None}
    return Choices(out)


def _source_ids(source: sa.Engine, table: str, key: str = "name") -> dict[str, str]:
    with source.connect() as conn:
        rows = conn.execute(sa.text(f"SELECT {key}, id FROM app.{table}")).tuples()  # noqa: S608
        return {str(n): str(i) for n, i in rows}


def apply_demo_mappings(env: SyncEnv, realm_id: RealmId) -> dict[str, int]:
    """Pull the company's choices and map the demo's values to them (idempotent)."""
    with env.client(realm_id) as client:
        reference.refresh(env.warehouse, client)
    choices = load_choices(env.warehouse, realm_id)
    rates = _source_ids(env.source, "tax_rates")
    methods = _source_ids(env.source, "payment_methods")
    with env.warehouse.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO mapping.settings (realm_id, default_income_account_id,"
                " default_tax_code_id, default_deposit_account_id, updated_by)"
                " VALUES (:r, :i, :t, :d, 'demo') ON CONFLICT (realm_id) DO UPDATE SET"
                " default_income_account_id = EXCLUDED.default_income_account_id,"
                " default_tax_code_id = EXCLUDED.default_tax_code_id,"
                " default_deposit_account_id = EXCLUDED.default_deposit_account_id,"
                " updated_at = now(), updated_by = 'demo'"
            ),
            {
                "r": realm_id,
                "i": choices.id("accounts", DEMO_DEFAULTS["income_account"]),
                "t": choices.id("tax_codes", DEMO_DEFAULTS["tax_code"]),
                "d": choices.id("accounts", DEMO_DEFAULTS["deposit_account"]),
            },
        )
        tax_rows = [
            {
                "r": realm_id,
                "s": rates[src],
                "n": src,
                "c": choices.id("tax_codes", code),
                "cn": code,
            }
            for src, code in DEMO_TAX_CODES.items()
            if src in rates
        ]
        conn.execute(
            sa.text(
                "INSERT INTO mapping.tax_rates (realm_id, source_id, source_name, qbo_tax_code_id,"
                " qbo_tax_code_name, updated_by) VALUES (:r, :s, :n, :c, :cn, 'demo')"
                " ON CONFLICT (realm_id, source_id) DO UPDATE SET"
                " qbo_tax_code_id = EXCLUDED.qbo_tax_code_id,"
                " qbo_tax_code_name = EXCLUDED.qbo_tax_code_name, updated_at = now()"
            ),
            tax_rows,
        )
        pm_rows = [
            {
                "r": realm_id,
                "s": methods[src],
                "n": src,
                "p": choices.id("payment_methods", pm) if pm else None,
                "pn": pm,
                "d": choices.id("accounts", acct),
                "dn": acct,
            }
            for src, (pm, acct) in DEMO_PAYMENT_METHODS.items()
            if src in methods
        ]
        conn.execute(
            sa.text(
                "INSERT INTO mapping.payment_methods (realm_id, source_id, source_name,"
                " qbo_payment_method_id, qbo_payment_method_name, deposit_account_id,"
                " deposit_account_name, updated_by) VALUES (:r, :s, :n, :p, :pn, :d, :dn, 'demo')"
                " ON CONFLICT (realm_id, source_id) DO UPDATE SET"
                " qbo_payment_method_id = EXCLUDED.qbo_payment_method_id,"
                " deposit_account_id = EXCLUDED.deposit_account_id, updated_at = now()"
            ),
            pm_rows,
        )
        concept_rows = [
            {"r": realm_id, "c": concept, "a": choices.id("accounts", acct), "an": acct}
            for concept, acct in DEMO_EXPENSE_CONCEPTS.items()
        ]
        conn.execute(
            sa.text(
                "INSERT INTO mapping.expense_concepts (realm_id, concept, expense_account_id,"
                " expense_account_name, updated_by) VALUES (:r, :c, :a, :an, 'demo')"
                " ON CONFLICT (realm_id, concept) DO UPDATE SET"
                " expense_account_id = EXCLUDED.expense_account_id, updated_at = now()"
            ),
            concept_rows,
        )
    return {
        "tax_rates": len(tax_rows),
        "payment_methods": len(pm_rows),
        "expense_concepts": len(concept_rows),
    }
