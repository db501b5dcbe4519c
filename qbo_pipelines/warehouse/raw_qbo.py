"""``raw_qbo``: QBO objects as pulled, per company, flattened beside the full JSON (jsonb).

Used by discovery (accounts, tax codes, items, payment methods the mappings choose from) and by
the pull direction (customers, invoices, payments, ... with CDC deletes, R36). Loads are bulk
merges keyed on ``(realm_id, qbo_id)``; re-loading the same objects is a no-op.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import sqlalchemy as sa

from qbo_pipelines.qbo.values import NUL_ESCAPE, without_nul
from qbo_pipelines.warehouse import bulk

log = logging.getLogger(__name__)

ENTITY_TABLES: dict[str, str] = {
    # name lists and reference data
    "CompanyInfo": "company_info",
    "Account": "accounts",
    "TaxRate": "tax_rates",
    "TaxCode": "tax_codes",
    "PaymentMethod": "payment_methods",
    "Term": "terms",
    "Class": "classes",
    "Department": "departments",
    "Item": "items",
    "Customer": "customers",
    "Vendor": "vendors",
    "Employee": "employees",
    # transactions
    "Invoice": "invoices",
    "Payment": "payments",
    "SalesReceipt": "sales_receipts",
    "Estimate": "estimates",
    "CreditMemo": "credit_memos",
    "RefundReceipt": "refund_receipts",
    "Bill": "bills",
    "BillPayment": "bill_payments",
    "VendorCredit": "vendor_credits",
    "Purchase": "purchases",
    "PurchaseOrder": "purchase_orders",
    "JournalEntry": "journal_entries",
    "Deposit": "deposits",
    "Transfer": "transfers",
    "TimeActivity": "time_activities",
    "Attachable": "attachables",
}
"""The QBO-side table: every QBO entity the sync extracts -> its ``raw_qbo`` table (the table
names are also accepted as entity names), in the extract's reading order (name lists before the
transactions that refer to them). Tables: sql/warehouse/021_raw_qbo.sql and
071_raw_qbo_tables.sql. QBO entities, not catalogue rows: the catalogue names the QBO entities
its records become (``qbo_names``) and looks their tables up here."""

LINE_TABLES: dict[str, str] = {
    "Invoice": "invoice_lines",
    "SalesReceipt": "sales_receipt_lines",
    "Estimate": "estimate_lines",
    "CreditMemo": "credit_memo_lines",
    "RefundReceipt": "refund_receipt_lines",
    "Bill": "bill_lines",
    "Purchase": "purchase_lines",
    "PurchaseOrder": "purchase_order_lines",
    "VendorCredit": "vendor_credit_lines",
    "JournalEntry": "journal_entry_lines",
    "Deposit": "deposit_lines",
    "Payment": "payment_lines",
    "BillPayment": "bill_payment_lines",
}
"""QBO entity with ``Line[]`` -> its ``raw_qbo`` line table (one row per line, typed columns)."""

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
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:  # a malformed stamp is kept in data, never fails a load
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _parse_date(value: Any) -> date | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return date.fromisoformat(value[:10])
    except ValueError:  # e.g. 2024-02-31: kept in data, the column stays NULL
        return None


_TYPED_MONEY_LIMIT = Decimal(10) ** 13
"""``total_amt`` and ``balance`` are numeric(18, 5): a larger amount stays in ``data`` only."""


def _dec(value: Any) -> Decimal | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        amount = Decimal(str(value))
    except ArithmeticError:
        return None
    # a number the typed column cannot hold (or NaN) never fails the load: ``data`` keeps it
    return amount if amount.is_finite() and abs(amount) < _TYPED_MONEY_LIMIT else None


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
    rows = [(*_merge_row(realm_id, table, obj), False, None, now, run_id) for obj in live]
    update = [c for c in COLUMNS if c not in ("realm_id", "qbo_id")]
    with _begin(engine) as conn:
        bulk.upsert_rows(conn, table, COLUMNS, rows, key=("realm_id", "qbo_id"), update=update)
        if gone:
            _mark(conn, table, realm_id, gone, now, run_id)
    return len(live) + len(gone)


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


# ---------------------------------------------------------------------------------------------
# The pull's merge: newest version wins, changed rows reported, lines replaced in Postgres


@dataclass(frozen=True)
class MergeResult:
    """What one :func:`merge` did.

    Attributes:
        changed: ids inserted, or updated because the stored row really changed (a newer
            version with different data, or a deleted row that came back with a newer version).
        deleted: ids newly flagged deleted (already-flagged ids are not repeated).
        received: objects given (live objects and delete stubs, before de-duplication).
    """

    changed: tuple[str, ...]
    deleted: tuple[str, ...]
    received: int


_MERGE_COLUMNS: tuple[str, ...] = (
    "realm_id", "qbo_id", "name", "doc_number", "type", "sub_type", "active", "ref_id",
    "ref_name", "txn_date", "due_date", "total_amt", "balance", "sync_token", "created_time",
    "updated_time", "data",
)


def _merge_row(realm_id: str, table: str, obj: Mapping[str, Any]) -> tuple[Any, ...]:
    """An object's :data:`_MERGE_COLUMNS`: its flattened columns and its JSON. A U+0000 in
    its text (QBO keeps what a bookkeeper pastes; Postgres text and jsonb cannot) is dropped,
    with a warning, rather than failing the whole load."""
    text = json.dumps(obj, default=_json_default, ensure_ascii=False)
    if NUL_ESCAPE in text:
        log.warning("%s %s %s: text with U+0000 stored without it", realm_id, table, obj.get("Id"))
        obj = without_nul(obj)
        text = json.dumps(obj, default=_json_default, ensure_ascii=False)
    flat = flatten(obj)
    return (
        realm_id, flat["qbo_id"], flat["name"], flat["doc_number"], flat["type"],
        flat["sub_type"], flat["active"], flat["ref_id"], flat["ref_name"],
        flat["txn_date"], flat["due_date"], flat["total_amt"], flat["balance"],
        flat["sync_token"], flat["created_time"], flat["updated_time"], text,
    )


def _token_sql(alias: str) -> str:
    col = f"{alias}.sync_token"
    return f"(CASE WHEN {col} ~ '^[0-9]{{1,18}}$' THEN {col}::bigint END)"


def _version_key(obj: Mapping[str, Any]) -> tuple[int, datetime]:
    token = str(obj.get("SyncToken", ""))
    meta = obj.get("MetaData")
    stamp = _parse_dt(meta.get("LastUpdatedTime")) if isinstance(meta, Mapping) else None
    return (int(token) if token.isdigit() else -1,
            stamp or datetime.min.replace(tzinfo=UTC))


def _stub_time(obj: Mapping[str, Any]) -> datetime | None:
    meta = obj.get("MetaData")
    return _parse_dt(meta.get("LastUpdatedTime")) if isinstance(meta, Mapping) else None


def merge(
    conn: sa.Connection,
    realm_id: str,
    entity: str,
    objects: Iterable[Mapping[str, Any]],
    *,
    run_id: str | None = None,
    at: datetime | None = None,
    deleted_at: datetime | None = None,
) -> MergeResult:
    """Merge QBO objects of one entity, newest version wins, in the caller's transaction.

    * Live objects are upserted keyed by ``(realm_id, qbo_id)`` through ``COPY`` into a temp
      table and one ``INSERT ... ON CONFLICT``. A stored row is overwritten only by a version
      at least as new (higher SyncToken; same token: LastUpdatedTime not older) whose data
      differs, so repeats and out-of-order arrivals (webhook reads racing CDC) never move a
      row backwards and never duplicate. A row flagged deleted comes back only with a version
      newer than its delete.
    * Delete stubs (``status: "Deleted"``) flag the row ``deleted`` with ``deleted_at`` = the
      stub's LastUpdatedTime (else ``deleted_at``, else ``at``); unknown ids get a stub row.
      Rows are never removed (R36).
    * For entities with lines (:data:`LINE_TABLES`), the lines of every changed row are
      replaced set-based from the stored ``data`` (``jsonb_array_elements`` in Postgres), and
      the lines of newly deleted rows are flagged.

    Args:
        conn: a connection inside the caller's transaction.
        realm_id: the QBO company.
        entity: QBO entity name or raw_qbo table name.
        objects: QBO objects as returned by the API.
        run_id: kept on written rows for lineage.
        at: the write time (``loaded_at``, lines' ``_synced_at``); default now.
        deleted_at: delete time for stubs that carry none (e.g. the read that found them gone).
    """
    table = table_for(entity)
    now = at or datetime.now(UTC)
    live: dict[str, Mapping[str, Any]] = {}
    stubs: dict[str, datetime | None] = {}
    received = 0
    for obj in objects:
        received += 1
        qbo_id = str(obj["Id"])
        if _is_deleted_marker(obj):
            stubs[qbo_id] = _stub_time(obj) or deleted_at
            continue
        known = live.get(qbo_id)
        if known is None or _version_key(obj) >= _version_key(known):
            live[qbo_id] = obj
    for qbo_id in [i for i in live if i in stubs]:  # deleted in the same read: the delete wins
        del live[qbo_id]
    changed = _upsert_live(conn, table, realm_id, list(live.values()), now, run_id)
    gone = _flag_deleted(conn, table, realm_id, stubs, now, run_id) if stubs else []
    lines = _line_table(entity)
    if lines is not None:
        if changed:
            replace_lines(conn, realm_id, entity, changed, at=now, run_id=run_id)
        if gone:
            conn.execute(
                sa.text(f"UPDATE {bulk.qualified(lines)} SET deleted = true, _synced_at = :at, "
                        "run_id = :run WHERE realm_id = :r AND qbo_id = ANY(CAST(:ids AS text[])) "
                        "AND NOT deleted"),
                {"at": now, "run": run_id, "r": realm_id, "ids": gone},
            )
    return MergeResult(tuple(changed), tuple(gone), received)


def _upsert_live(
    conn: sa.Connection, table: str, realm_id: str, objects: Sequence[Mapping[str, Any]],
    at: datetime, run_id: str | None,
) -> list[str]:
    if not objects:
        return []
    rows = [_merge_row(realm_id, table, obj) for obj in objects]
    cols = ", ".join(bulk.quote_ident(c) for c in _MERGE_COLUMNS)
    tmp = bulk.quote_ident("_merge_" + table.replace(".", "_"))
    conn.exec_driver_sql(f"DROP TABLE IF EXISTS {tmp}")
    conn.exec_driver_sql(f"CREATE TEMP TABLE {tmp} ON COMMIT DROP AS SELECT {cols} "
                         f"FROM {bulk.qualified(table)} WITH NO DATA")
    if conn.dialect.driver == "psycopg":
        raw: Any = conn.connection.driver_connection
        with raw.cursor() as cur, cur.copy(f"COPY {tmp} ({cols}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
    else:  # other drivers: batched executemany into the temp table
        values = ", ".join(f":{c}" for c in _MERGE_COLUMNS)
        conn.execute(sa.text(f"INSERT INTO {tmp} ({cols}) VALUES ({values})"),
                     [dict(zip(_MERGE_COLUMNS, r, strict=True)) for r in rows])
    updates = ", ".join(f"{bulk.quote_ident(c)} = EXCLUDED.{bulk.quote_ident(c)}"
                        for c in _MERGE_COLUMNS[2:])
    new_tok, old_tok = _token_sql("EXCLUDED"), _token_sql("t")
    sql = (
        f"INSERT INTO {bulk.qualified(table)} AS t "
        f"({cols}, deleted, deleted_at, loaded_at, run_id) "
        f"SELECT {cols}, false, NULL, :at, :run FROM {tmp} "
        "ON CONFLICT (realm_id, qbo_id) DO UPDATE SET "
        f"{updates}, deleted = false, deleted_at = NULL, loaded_at = EXCLUDED.loaded_at, "
        "run_id = EXCLUDED.run_id "
        "WHERE (t.deleted OR t.data IS DISTINCT FROM EXCLUDED.data) "
        "AND (NOT t.deleted OR t.deleted_at IS NULL OR EXCLUDED.updated_time > t.deleted_at) "
        f"AND (CASE WHEN {new_tok} IS NOT NULL AND {old_tok} IS NOT NULL "
        f"AND {new_tok} <> {old_tok} THEN {new_tok} > {old_tok} "
        "ELSE coalesce(EXCLUDED.updated_time >= t.updated_time, true) END) "
        "RETURNING t.qbo_id"
    )
    changed = [str(r[0]) for r in conn.execute(sa.text(sql), {"at": at, "run": run_id})]
    conn.exec_driver_sql(f"DROP TABLE {tmp}")
    return changed


def _flag_deleted(
    conn: sa.Connection, table: str, realm_id: str, stubs: Mapping[str, datetime | None],
    at: datetime, run_id: str | None,
) -> list[str]:
    ids = sorted(stubs)
    sql = (
        f"INSERT INTO {bulk.qualified(table)} AS t "
        "(realm_id, qbo_id, data, deleted, deleted_at, loaded_at, run_id) "
        "SELECT :r, d.id, jsonb_build_object('Id', d.id, 'status', 'Deleted'), true, "
        "coalesce(d.at, :at), :at, :run "
        "FROM unnest(CAST(:ids AS text[]), CAST(:ats AS timestamptz[])) AS d(id, at) "
        "ON CONFLICT (realm_id, qbo_id) DO UPDATE SET deleted = true, "
        "deleted_at = EXCLUDED.deleted_at, loaded_at = EXCLUDED.loaded_at, "
        "run_id = EXCLUDED.run_id WHERE NOT t.deleted "
        "RETURNING t.qbo_id"
    )
    params = {"r": realm_id, "ids": ids, "ats": [stubs[i] for i in ids], "at": at,
              "run": run_id}
    return sorted(str(r[0]) for r in conn.execute(sa.text(sql), params))


def _line_table(entity: str) -> str | None:
    if entity in LINE_TABLES:
        return f"raw_qbo.{LINE_TABLES[entity]}"
    by_table = {ENTITY_TABLES[e]: e for e in LINE_TABLES}
    if entity in by_table:
        return f"raw_qbo.{LINE_TABLES[by_table[entity]]}"
    return None


_NUMBER_RE = r"^\s*-?[0-9]+(\.[0-9]*)?([eE][-+]?[0-9]+)?\s*$"


def _num(expr: str) -> str:
    """SQL: ``expr`` (text) as numeric, NULL when it is not a number (never fails a load)."""
    return f"(CASE WHEN ({expr}) ~ '{_NUMBER_RE}' THEN ({expr})::numeric END)"


def _int(expr: str) -> str:
    return f"(CASE WHEN ({expr}) ~ '^\\s*-?[0-9]{{1,9}}\\s*$' THEN ({expr})::integer END)"


LINE_COLUMNS: tuple[str, ...] = (
    "realm_id", "qbo_id", "line_seq", "line_num", "line_id", "detail_type", "amount",
    "description", "item_id", "item_name", "account_id", "account_name", "class_id",
    "class_name", "department_id", "department_name", "tax_code_id", "entity_type", "entity_id",
    "entity_name", "posting_type", "billable_status", "qty", "unit_price", "service_date",
    "linked_txn_id", "linked_txn_type", "linked_txn_line_id", "data", "deleted", "_synced_at",
    "run_id",
)
"""Columns of every ``raw_qbo.*_lines`` table, in insert order."""

# One SELECT for every line table: the detail object is the one named by DetailType
# (DescriptionOnly -> DescriptionLineDetail); refs are read from wherever a type keeps them.
_LINE_SELECT = (
    "SELECT p.realm_id, p.qbo_id, l.seq::integer, {line_num}, l.line->>'Id', "
    "l.line->>'DetailType', {amount}, l.line->>'Description', "
    "coalesce(d.det->'ItemRef', d.det->'GroupItemRef')->>'value', "
    "coalesce(d.det->'ItemRef', d.det->'GroupItemRef')->>'name', "
    "coalesce(d.det->'AccountRef', d.det->'ItemAccountRef', "
    "         d.det->'DiscountAccountRef')->>'value', "
    "coalesce(d.det->'AccountRef', d.det->'ItemAccountRef', "
    "         d.det->'DiscountAccountRef')->>'name', "
    "d.det->'ClassRef'->>'value', d.det->'ClassRef'->>'name', "
    "d.det->'DepartmentRef'->>'value', d.det->'DepartmentRef'->>'name', "
    "d.det->'TaxCodeRef'->>'value', "
    "coalesce(d.det->'Entity'->>'Type', d.det->'Entity'->>'type', "
    "         CASE WHEN d.det->'CustomerRef' IS NOT NULL THEN 'Customer' END), "
    "coalesce(d.det->'Entity'->'EntityRef'->>'value', d.det->'Entity'->>'value', "
    "         d.det->'CustomerRef'->>'value'), "
    "coalesce(d.det->'Entity'->'EntityRef'->>'name', d.det->'Entity'->>'name', "
    "         d.det->'CustomerRef'->>'name'), "
    "d.det->>'PostingType', d.det->>'BillableStatus', {qty}, {unit_price}, "
    "raw_qbo.try_date(d.det->>'ServiceDate'), "
    "d.lt->>'TxnId', d.lt->>'TxnType', d.lt->>'TxnLineId', "
    "l.line, p.deleted, CAST(:at AS timestamptz), CAST(:run AS text) "
    "FROM {parent} p "
    "CROSS JOIN LATERAL jsonb_array_elements(CASE WHEN jsonb_typeof(p.data->'Line') = 'array' "
    "THEN p.data->'Line' ELSE '[]'::jsonb END) WITH ORDINALITY AS l(line, seq) "
    "CROSS JOIN LATERAL (SELECT CASE WHEN jsonb_typeof(l.line->(CASE "
    "  WHEN l.line->>'DetailType' = 'DescriptionOnly' THEN 'DescriptionLineDetail' "
    "  ELSE l.line->>'DetailType' END)) = 'object' THEN l.line->(CASE "
    "  WHEN l.line->>'DetailType' = 'DescriptionOnly' THEN 'DescriptionLineDetail' "
    "  ELSE l.line->>'DetailType' END) ELSE '{{}}'::jsonb END AS det, "
    "  CASE WHEN jsonb_typeof(l.line->'LinkedTxn') = 'array' THEN l.line->'LinkedTxn'->0 END AS lt"
    ") d "
    "WHERE p.realm_id = :r AND p.qbo_id = ANY(CAST(:ids AS text[])) "
    "AND jsonb_typeof(l.line) = 'object'"
).format(
    line_num=_int("l.line->>'LineNum'"),
    amount=_num("l.line->>'Amount'"),
    qty=_num("coalesce(d.det->>'Qty', d.det->>'Quantity')"),
    unit_price=_num("d.det->>'UnitPrice'"),
    parent="{parent}",
)


def replace_lines(
    conn: sa.Connection,
    realm_id: str,
    entity: str,
    ids: Sequence[str],
    *,
    at: datetime | None = None,
    run_id: str | None = None,
) -> int:
    """Replace the line rows of parents ``ids`` from their stored ``data`` (set-based).

    One ``DELETE`` and one ``INSERT ... SELECT`` over ``jsonb_array_elements(data->'Line')``,
    in the caller's transaction. Returns the number of line rows inserted (0 for entities
    without a line table).
    """
    lines = _line_table(entity)
    if lines is None or not ids:
        return 0
    params = {"r": realm_id, "ids": list(ids), "at": at or datetime.now(UTC), "run": run_id}
    conn.execute(sa.text(f"DELETE FROM {bulk.qualified(lines)} WHERE realm_id = :r "
                         "AND qbo_id = ANY(CAST(:ids AS text[]))"), params)
    cols = ", ".join(bulk.quote_ident(c) for c in LINE_COLUMNS)
    select = _LINE_SELECT.replace("{parent}", bulk.qualified(table_for(entity)))
    result = conn.execute(sa.text(f"INSERT INTO {bulk.qualified(lines)} ({cols}) {select}"),
                          params)
    return int(result.rowcount or 0)
