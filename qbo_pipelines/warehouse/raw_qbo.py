"""``raw_qbo``: QBO objects as pulled, per company, flattened beside the full JSON (jsonb).

Used by discovery (accounts, tax codes, items, payment methods the mappings choose from) and by
the pull direction (customers, invoices, payments, ... with CDC deletes, R36). Loads are bulk
merges keyed on ``(realm_id, qbo_id)``; re-loading the same objects is a no-op.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import sqlalchemy as sa

from qbo_pipelines.warehouse import bulk

ENTITY_TABLES: dict[str, str] = {
    "Customer": "customers",
    "Vendor": "vendors",
    "Item": "items",
    "Account": "accounts",
    "TaxCode": "tax_codes",
    "TaxRate": "tax_rates",
    "PaymentMethod": "payment_methods",
    "Term": "terms",
    "Invoice": "invoices",
    "Payment": "payments",
    "Bill": "bills",
    "BillPayment": "bill_payments",
    "SalesReceipt": "sales_receipts",
    "Estimate": "estimates",
    "CreditMemo": "credit_memos",
    "RefundReceipt": "refund_receipts",
    "Purchase": "purchases",
    "JournalEntry": "journal_entries",
    "CompanyInfo": "company_info",
}
"""QBO entity name -> ``raw_qbo`` table (the table names are also accepted as entity names)."""

COLUMNS: tuple[str, ...] = (
    "realm_id", "qbo_id", "name", "doc_number", "type", "sub_type", "active", "ref_id",
    "ref_name", "txn_date", "due_date", "total_amt", "balance", "sync_token", "created_time",
    "updated_time", "data", "deleted", "deleted_at", "loaded_at", "run_id",
)


class UnknownEntityError(ValueError):
    """The entity has no ``raw_qbo`` table."""


def table_for(entity: str) -> str:
    """``raw_qbo.<table>`` for a QBO entity name (``Customer``) or table name (``customers``)."""
    if entity in ENTITY_TABLES:
        return f"raw_qbo.{ENTITY_TABLES[entity]}"
    if entity in ENTITY_TABLES.values():
        return f"raw_qbo.{entity}"
    raise UnknownEntityError(f"no raw_qbo table for entity {entity!r}")


def _parse_dt(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _parse_date(value: Any) -> date | None:
    if not isinstance(value, str) or not value:
        return None
    return date.fromisoformat(value[:10])


def _dec(value: Any) -> Decimal | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        return Decimal(str(value))
    except ArithmeticError:
        return None


def _json_default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def _ref(obj: Mapping[str, Any]) -> tuple[str | None, str | None]:
    for key in ("CustomerRef", "VendorRef", "EntityRef", "ParentRef"):
        ref = obj.get(key)
        if isinstance(ref, Mapping) and ref.get("value") is not None:
            name = ref.get("name")
            return str(ref["value"]), None if name is None else str(name)
    return None, None


def flatten(obj: Mapping[str, Any]) -> dict[str, Any]:
    """The flattened columns of one QBO object (pure; no realm, no bookkeeping columns).

    ``name`` is DisplayName, else Name, else CompanyName; ``type`` is AccountType or Type;
    ``ref_id``/``ref_name`` the CustomerRef or VendorRef.
    """
    meta = obj.get("MetaData") if isinstance(obj.get("MetaData"), Mapping) else {}
    assert isinstance(meta, Mapping)
    name = obj.get("DisplayName") or obj.get("Name") or obj.get("CompanyName")
    ref_id, ref_name = _ref(obj)
    active = obj.get("Active")
    return {
        "qbo_id": str(obj["Id"]),
        "name": None if name is None else str(name),
        "doc_number": obj.get("DocNumber"),
        "type": obj.get("AccountType") or obj.get("Type"),
        "sub_type": obj.get("AccountSubType"),
        "active": active if isinstance(active, bool) else None,
        "ref_id": ref_id,
        "ref_name": ref_name,
        "txn_date": _parse_date(obj.get("TxnDate")),
        "due_date": _parse_date(obj.get("DueDate")),
        "total_amt": _dec(obj.get("TotalAmt")),
        "balance": _dec(obj.get("Balance")),
        "sync_token": None if obj.get("SyncToken") is None else str(obj["SyncToken"]),
        "created_time": _parse_dt(meta.get("CreateTime")),
        "updated_time": _parse_dt(meta.get("LastUpdatedTime")),
    }


def _is_deleted_marker(obj: Mapping[str, Any]) -> bool:
    return str(obj.get("status", "")).lower() == "deleted"


def upsert_objects(
    engine: sa.Engine | sa.Connection,
    realm_id: str,
    entity: str,
    objects: Sequence[Mapping[str, Any]],
    run_id: str | None = None,
) -> int:
    """Merge QBO objects of one entity into ``raw_qbo`` (bulk; idempotent).

    Objects that are CDC delete markers (``{"Id": ..., "status": "Deleted"}``) are flagged
    deleted instead. An object seen again after a delete is live again (deleted cleared).

    Args:
        engine: the warehouse engine, or a connection inside the caller's transaction.
        realm_id: the QBO company.
        entity: QBO entity name (``Customer``) or raw_qbo table name (``customers``).
        objects: QBO JSON objects as returned by the API (Decimals or floats for amounts).
        run_id: the Dagster run id, kept for lineage.

    Returns:
        the number of objects written (live and deleted).
    """
    table = table_for(entity)
    live = [o for o in objects if not _is_deleted_marker(o)]
    gone = [str(o["Id"]) for o in objects if _is_deleted_marker(o)]
    now = datetime.now(UTC)
    rows = []
    for obj in live:
        flat = flatten(obj)
        rows.append((
            realm_id, flat["qbo_id"], flat["name"], flat["doc_number"], flat["type"],
            flat["sub_type"], flat["active"], flat["ref_id"], flat["ref_name"],
            flat["txn_date"], flat["due_date"], flat["total_amt"], flat["balance"],
            flat["sync_token"], flat["created_time"], flat["updated_time"],
            json.dumps(obj, default=_json_default, ensure_ascii=False), False, None, now, run_id,
        ))
    update = [c for c in COLUMNS if c not in ("realm_id", "qbo_id")]
    with _begin(engine) as conn:
        bulk.upsert_rows(conn, table, COLUMNS, rows, key=("realm_id", "qbo_id"), update=update)
        if gone:
            _mark(conn, table, realm_id, gone, now, run_id)
    return len(live) + len(gone)


def mark_deleted(
    engine: sa.Engine | sa.Connection,
    realm_id: str,
    entity: str,
    ids: Iterable[str],
    at: datetime | None = None,
    run_id: str | None = None,
) -> int:
    """Flag QBO objects as deleted (R36); unknown ids get a stub row so the delete is kept.

    Returns:
        the number of ids flagged.
    """
    id_list = sorted({str(i) for i in ids})
    if not id_list:
        return 0
    with _begin(engine) as conn:
        _mark(conn, table_for(entity), realm_id, id_list, at or datetime.now(UTC), run_id)
    return len(id_list)


def _mark(
    conn: sa.Connection, table: str, realm_id: str, ids: list[str], at: datetime,
    run_id: str | None,
) -> None:
    rows = [(realm_id, i, json.dumps({"Id": i, "status": "Deleted"}), True, at, at, run_id)
            for i in ids]
    cols = ("realm_id", "qbo_id", "data", "deleted", "deleted_at", "loaded_at", "run_id")
    # keep the last known object in data; only flag it (deleted_at keeps the first delete time)
    bulk.upsert_rows(conn, table, cols, rows, key=("realm_id", "qbo_id"),
                     update=("deleted", "loaded_at", "run_id"))
    conn.execute(
        sa.text(f"UPDATE {bulk.qualified(table)} SET deleted_at = coalesce(deleted_at, :at) "
                "WHERE realm_id = :r AND qbo_id IN :ids AND deleted").bindparams(
            sa.bindparam("ids", expanding=True)),
        {"at": at, "r": realm_id, "ids": ids},
    )


class _begin:
    """Context manager: a transaction on an engine, or pass-through for a connection."""

    def __init__(self, target: sa.Engine | sa.Connection) -> None:
        self.target = target
        self._ctx: Any = None

    def __enter__(self) -> sa.Connection:
        if isinstance(self.target, sa.Connection):
            return self.target
        self._ctx = self.target.begin()
        conn: sa.Connection = self._ctx.__enter__()
        return conn

    def __exit__(self, *exc: object) -> None:
        if self._ctx is not None:
            self._ctx.__exit__(*exc)


def load_rows(
    engine: sa.Engine | sa.Connection, realm_id: str, entity: str, include_deleted: bool = False
) -> list[dict[str, Any]]:
    """The flattened rows (without ``data``) of one entity for a company, ordered by name."""
    table = bulk.qualified(table_for(entity))
    cols = ", ".join(bulk.quote_ident(c) for c in COLUMNS if c != "data")
    sql = f"SELECT {cols} FROM {table} WHERE realm_id = :r"
    if not include_deleted:
        sql += " AND NOT deleted"
    with _begin(engine) as conn:
        return [dict(r) for r in conn.execute(sa.text(sql + " ORDER BY name, qbo_id"),
                                              {"r": realm_id}).mappings()]
