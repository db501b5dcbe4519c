"""Build the :class:`~qbo_pipelines.transforms.to_qbo.PushContext` of one company for one run.

Everything a transform may reference is loaded once, in bulk: the id map of every entity, the
company's mappings (tax rates, payment methods, expense concepts, items, defaults), the QBO tax
codes' sales rates, and the source names used in reasons.
"""

from __future__ import annotations

from decimal import Decimal

import sqlalchemy as sa

from qbo_pipelines import entities as catalogue
from qbo_pipelines.canonical import QboId, RealmId, SourceId
from qbo_pipelines.mapping import repository as mapping_repo
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


def load(engine: sa.Engine, connector: SourceAppConnector, realm_id: RealmId) -> PushContext:
    """The company's push context, loaded in a handful of bulk queries."""
    snapshot = mapping_repo.load_snapshot(engine, realm_id)
    settings = snapshot.settings
    ids: dict[str, dict[SourceId, QboId]] = {
        e.name: state.qbo_ids(engine, realm_id, e.name, e.qbo_name) for e in catalogue.push_order()
    }
    # An explicit item mapping wins over what the items push matched or created (R10).
    ids["items"].update({SourceId(k): QboId(ref.id) for k, ref in snapshot.items.items()})
    default_deposit = settings.default_deposit_account
    payment_methods: dict[SourceId, PaymentMethodTarget] = {}
    for source_id, pm in snapshot.payment_methods.items():
        deposit = pm.deposit_account or default_deposit
        if deposit is not None:
            method = pm.payment_method.id if pm.payment_method else None
            payment_methods[SourceId(source_id)] = PaymentMethodTarget(method, deposit.id)
    return PushContext(
        qbo_ids=ids,
        tax_codes={SourceId(k): ref.id for k, ref in snapshot.tax_rates.items()},
        tax_code_rates=tax_code_rates(engine, realm_id),
        tax_rate_names=_names(connector, "tax_rates"),
        default_tax_code=settings.default_tax_code.id if settings.default_tax_code else None,
        payment_methods=payment_methods,
        payment_method_names=_names(connector, "payment_methods"),
        expense_accounts={c: ref.id for c, ref in snapshot.expense_concepts.items()},
        default_income_account=(
            settings.default_income_account.id if settings.default_income_account else None
        ),
        item_names=_names(connector, "items"),
        deleted_in_qbo=state.deleted_in_qbo(engine, realm_id),
        awaiting_pull=state.awaiting_pull(engine, realm_id),
        credit_memos=state.qbo_ids(engine, realm_id, "invoices", "CreditMemo"),
    )
