"""Reference data: the QBO choices mappings are made from, pulled into ``raw_qbo`` (R32).

Accounts (with type), tax codes and rates, payment methods, terms, items and the company's info
are read in full (they are small) and merged into ``raw_qbo``; inactive rows are kept and flagged,
so a mapping to a record made inactive in QBO is reported rather than silently used.
"""

from __future__ import annotations

import sqlalchemy as sa

from qbo_pipelines.qbo.client import QboClient
from qbo_pipelines.warehouse import raw_qbo

REFERENCE_ENTITIES = ("Account", "TaxCode", "TaxRate", "PaymentMethod", "Term", "Item")


def refresh(engine: sa.Engine, client: QboClient, run_id: str | None = None) -> dict[str, int]:
    """Pull every reference entity of the client's company into raw_qbo; counts per entity."""
    counts: dict[str, int] = {}
    for entity in REFERENCE_ENTITIES:
        rows = list(client.query_all(entity, include_inactive=True))
        counts[entity] = raw_qbo.upsert_objects(engine, client.realm_id, entity, rows, run_id)
    info = client.company_info()
    counts["CompanyInfo"] = raw_qbo.upsert_objects(
        engine, client.realm_id, "CompanyInfo", [info], run_id
    )
    return counts
