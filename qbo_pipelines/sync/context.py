"""Build the :class:`~qbo_pipelines.transforms.to_qbo.PushContext` of one company for one run.

Everything a transform may reference is loaded once, in bulk: the id map of every entity, the
company's mappings (tax rates, payment methods, expense concepts, items, defaults), the QBO tax
codes' sales rates, and the source names used in reasons.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import sqlalchemy as sa

from qbo_pipelines import entities as catalogue
from qbo_pipelines.canonical import QboId, RealmId, SourceId
from qbo_pipelines.source_app.connector import SourceAppConnector
from qbo_pipelines.sync import state
from qbo_pipelines.transforms.to_qbo import PaymentMethodTarget, PushContext


def _names(connector: SourceAppConnector, entity: str) -> dict[SourceId, str]:
    return {SourceId(r.source_id): r.name for chunk in connector.iter_entity(entity) for r in chunk}


def tax_code_rates(engine: sa.Engine, realm_id: str) -> dict[str, tuple[str, Decimal]]:
    """QBO TaxCode Id -> (its first sales TaxRate Id, that rate's percent), from raw_qbo."""
    sql = """
        SELECT tc.qbo_id AS code_id,
               tc.data -> 'SalesTaxRateList' -> 'TaxRateDetail' -> 0 -> 'TaxRateRef' ->> 'value'
                   AS rate_id,
               tr.data ->> 'RateValue' AS rate_value
        FROM raw_qbo.tax_codes tc
        LEFT JOIN raw_qbo.tax_rates tr
          ON tr.realm_id = tc.realm_id
         AND tr.qbo_id = tc.data -> 'SalesTaxRateList' -> 'TaxRateDetail' -> 0 -> 'TaxRateRef'
                         ->> 'value'
        WHERE tc.realm_id = :r AND NOT tc.deleted
    """
    out: dict[str, tuple[str, Decimal]] = {}
    with engine.connect() as conn:
        for row in conn.execute(sa.text(sql), {"r": realm_id}).mappings():
            if row["rate_id"]:
                out[str(row["code_id"])] = (str(row["rate_id"]), Decimal(row["rate_value"] or 0))
    return out


def _pairs(engine: sa.Engine, sql: str, realm_id: str) -> dict[str, Any]:
    with engine.connect() as conn:
        return {str(k): v for k, v in conn.execute(sa.text(sql), {"r": realm_id}).tuples()}


def _mappings(engine: sa.Engine, realm_id: str) -> dict[str, dict[str, Any]]:
    """The company's mapping tables (mapping schema), one bulk query each."""
    return {
        "tax_codes": _pairs(
            engine,
            "SELECT source_id, qbo_tax_code_id FROM mapping.tax_rates WHERE realm_id = :r",
            realm_id,
        ),
        "items": _pairs(
            engine, "SELECT source_id, qbo_item_id FROM mapping.items WHERE realm_id = :r", realm_id
        ),
        "payment_methods": _pairs(
            engine,
            "SELECT m.source_id, ARRAY[m.qbo_payment_method_id,"
            " COALESCE(m.deposit_account_id, s.default_deposit_account_id)]"
            " FROM mapping.payment_methods m LEFT JOIN mapping.settings s USING (realm_id)"
            " WHERE m.realm_id = :r",
            realm_id,
        ),
        "expense_accounts": _pairs(
            engine,
            "SELECT concept, expense_account_id FROM mapping.expense_concepts WHERE realm_id = :r",
            realm_id,
        ),
    }


def _defaults(engine: sa.Engine, realm_id: str) -> dict[str, Any]:
    with engine.connect() as conn:
        row = (
            conn.execute(
                sa.text(
                    "SELECT default_income_account_id, default_tax_code_id"
                    " FROM mapping.settings WHERE realm_id = :r"
                ),
                {"r": realm_id},
            )
            .mappings()
            .one_or_none()
        )
    return dict(row) if row is not None else {}


def load(engine: sa.Engine, connector: SourceAppConnector, realm_id: RealmId) -> PushContext:
    """The company's push context, loaded in a handful of bulk queries."""
    maps = _mappings(engine, realm_id)
    defaults = _defaults(engine, realm_id)
    ids: dict[str, dict[SourceId, QboId]] = {
        e.name: state.qbo_ids(engine, realm_id, e.name) for e in catalogue.push_order()
    }
    # An explicit item mapping wins over what the items push matched or created (R10).
    ids["items"].update({SourceId(k): QboId(v) for k, v in maps["items"].items()})
    return PushContext(
        qbo_ids=ids,
        tax_codes={SourceId(k): str(v) for k, v in maps["tax_codes"].items()},
        tax_code_rates=tax_code_rates(engine, realm_id),
        tax_rate_names=_names(connector, "tax_rates"),
        default_tax_code=defaults.get("default_tax_code_id"),
        payment_methods={
            SourceId(k): PaymentMethodTarget(pm, deposit)
            for k, (pm, deposit) in maps["payment_methods"].items()
            if deposit is not None
        },
        payment_method_names=_names(connector, "payment_methods"),
        expense_accounts={k: str(v) for k, v in maps["expense_accounts"].items()},
        default_income_account=defaults.get("default_income_account_id"),
        item_names=_names(connector, "items"),
    )
