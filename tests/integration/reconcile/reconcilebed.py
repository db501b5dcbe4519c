"""The reconciliation tests' bed (a module of its own: ``from conftest import`` resolves to
another folder's conftest when the whole suite runs): the project's databases under a prefix on
the test server (so the CLI finds them as a user's terminal would), a Postgres-backed Dagster
instance, the demo source app and a QBO sandbox over HTTP, after a full two-way sync."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import dagster as dg
import sqlalchemy as sa

from qbo_pipelines.defs.push import COMPANIES
from qbo_pipelines.defs.reconcile import JOB, definitions
from qbo_pipelines.defs.resources import QboResource, SourceAppResource, WarehouseResource
from qbo_pipelines.sandbox.testing import SandboxHandle
from qbo_pipelines.sync.env import SyncEnv


@dataclass
class ReconcileBed:
    env: SyncEnv
    sandbox: SandboxHandle
    realm: str
    instance: dg.DagsterInstance

    def rows(self, engine: sa.Engine, sql: str, **params: object) -> list[Any]:
        with engine.begin() as conn:
            result = conn.execute(sa.text(sql), params)
            return list(result) if result.returns_rows else []

    def resources(self) -> dict[str, Any]:
        sb = self.sandbox
        return {
            "warehouse": WarehouseResource(
                database_url=self.env.warehouse.url.render_as_string(hide_password=False)
            ),
            "source_app": SourceAppResource(
                database_url=self.env.source.url.render_as_string(hide_password=False)
            ),
            "qbo": QboResource(
                client_id=sb.client_id,
                client_secret=sb.client_secret,
                api_url=sb.base_url,
                oauth_url=sb.base_url,
            ),
        }

    def run_job(self, realm: str | None = None) -> dg.ExecuteInProcessResult:
        """The reconcile_job for one company partition, as a launched run executes it."""
        realm = realm or self.realm
        if not self.instance.has_dynamic_partition(COMPANIES, realm):
            self.instance.add_dynamic_partitions(COMPANIES, [realm])
        defs = dg.Definitions.merge(definitions, dg.Definitions(resources=self.resources()))
        return defs.resolve_job_def(JOB).execute_in_process(
            instance=self.instance,
            partition_key=realm,
            tags={"qbo_pipelines/trigger": "test"},
        )

    def qbo_writes(self) -> int:
        counts = self.sandbox.control.request_counts(self.realm)
        return sum(
            n
            for label, n in counts.items()
            if label == "batch" or label.startswith(("create", "update", "delete", "send", "void"))
        )


def one(bed: ReconcileBed, sql: str, **params: object) -> Any:
    rows = bed.rows(bed.env.warehouse, sql, **params)
    return rows[0] if rows else None


def unpaid_invoices(bed: ReconcileBed, n: int) -> list[tuple[str, str]]:
    rows = bed.rows(
        bed.env.warehouse,
        "SELECT s.source_id, s.qbo_id FROM sync.record_state s JOIN raw_qbo.invoices i"
        " ON i.realm_id = s.realm_id AND i.qbo_id = s.qbo_id WHERE s.realm_id = :r"
        " AND s.entity = 'invoices' AND s.status = 'synced' AND s.created_by = 'sync'"
        " AND i.balance = i.total_amt ORDER BY s.source_id::int LIMIT :n",
        r=bed.realm,
        n=n,
    )
    return [(str(a), str(b)) for a, b in rows]


def inject_drift(bed: ReconcileBed) -> dict[str, str]:
    ctl, realm = bed.sandbox.control, bed.realm
    changed_qbo, twin_deleted = unpaid_invoices(bed, 2)
    payment = one(
        bed,
        "SELECT source_id, qbo_id FROM sync.record_state WHERE realm_id = :r"
        " AND entity = 'payments' AND status = 'synced' AND created_by = 'sync'"
        " ORDER BY source_id::int LIMIT 1",
        r=realm,
    )
    # In QBO: a payment deleted; an invoice's first line raised by 100.
    ctl.user_delete(realm, "Payment", str(payment[1]))
    invoice = next(o for o in ctl.entities(realm, "Invoice") if o["Id"] == changed_qbo[1])
    lines = invoice["Line"]
    first = next(ln for ln in lines if ln.get("DetailType") == "SalesItemLineDetail")
    first["Amount"] = float(first["Amount"]) + 100
    first["SalesItemLineDetail"].pop("UnitPrice", None)
    first["SalesItemLineDetail"].pop("Qty", None)
    ctl.user_update(realm, "Invoice", {"Id": invoice["Id"], "Line": lines, "sparse": True})
    # A source invoice's QBO twin deleted by a person.
    ctl.user_delete(realm, "Invoice", twin_deleted[1])
    # In the source, in the sync's own session (the change feed skips it, R35): an untaxed
    # sale's amount changed, and a sale inserted.
    untaxed = bed.rows(
        bed.env.source,
        "SELECT l.sale_id, l.id FROM app.sale_lines l JOIN app.sales s ON s.id = l.sale_id"
        " WHERE l.kind = 'item' AND l.tax_rate_id IS NULL AND l.amount > 0"
        " AND s.origin = 'source' AND s.total > 0 AND s.id <> ALL(:skip) AND NOT EXISTS"
        " (SELECT 1 FROM app.receipts r WHERE r.sale_id = s.id) ORDER BY s.id, l.id",
        skip=[int(changed_qbo[0]), int(twin_deleted[0])],
    )
    synced = {
        str(r[0])
        for r in bed.rows(
            bed.env.warehouse,
            "SELECT source_id FROM sync.record_state WHERE realm_id = :r AND entity ="
            " 'invoices' AND status = 'synced'",
            r=realm,
        )
    }
    amount_sale, line = next((str(r[0]), int(r[1])) for r in untaxed if str(r[0]) in synced)
    with bed.env.source.begin() as conn:
        run = conn.exec_driver_sql
        run("SELECT set_config('qbo_pipelines.origin', 'sync', true)")
        run(
            "UPDATE app.sale_lines SET amount = amount + 7, unit_price = NULL, qty = NULL"
            " WHERE id = %s",
            (line,),
        )
        run(
            "UPDATE app.sales SET subtotal = subtotal + 7, total = total + 7 WHERE id = %s",
            (int(amount_sale),),
        )
        missing: object = run(
            "INSERT INTO app.sales (doc_number, contact_id, txn_date, subtotal, total)"
            " SELECT 'RECON-1', contact_id, txn_date, 50, 50 FROM app.sales WHERE id = %s"
            " RETURNING id",
            (int(amount_sale),),
        ).scalar_one()
        run(
            "INSERT INTO app.sale_lines (sale_id, line_no, kind, description, product_id, qty,"
            " unit_price, amount) SELECT %s, 1, 'item', 'reconciled', product_id, 1, 50, 50"
            " FROM app.sale_lines WHERE id = %s",
            (missing, line),
        )
    return {
        "payment": str(payment[0]),
        "payment_qbo": str(payment[1]),
        "changed_qbo": changed_qbo[0],
        "changed_qbo_id": changed_qbo[1],
        "twin_deleted": twin_deleted[0],
        "amount_sale": amount_sale,
        "missing": str(missing),
    }


def findings(bed: ReconcileBed, run_id: str) -> dict[tuple[str, str, str, str], Any]:
    rows = bed.rows(
        bed.env.warehouse,
        "SELECT entity, record_id, kind, field, action, repaired, reason, fix FROM"
        " marts.reconciliation_findings WHERE run_id = :run",
        run=run_id,
    )
    return {(r.entity, r.record_id, r.kind, r.field): r for r in rows}


def qbo_invoice(bed: ReconcileBed, sale: str) -> dict[str, Any] | None:
    qbo_id = one(
        bed,
        "SELECT qbo_id FROM sync.record_state WHERE realm_id = :r AND entity = 'invoices'"
        " AND source_id = :s AND status = 'synced'",
        r=bed.realm,
        s=sale,
    )
    if qbo_id is None:
        return None
    found = [o for o in bed.sandbox.control.entities(bed.realm, "Invoice") if o["Id"] == qbo_id[0]]
    return found[0] if found else None


def unseen_sale(bed: ReconcileBed, doc_number: str, amount: str = "50") -> str:
    """A sale inserted in the sync's own session (the change feed skips it, R35), so only the
    reconciliation finds it; its contact and product are those of a synced sale."""
    [(sale, line)] = bed.rows(
        bed.env.source,
        "SELECT l.sale_id, l.id FROM app.sale_lines l JOIN app.sales s ON s.id = l.sale_id"
        " WHERE l.kind = 'item' AND l.tax_rate_id IS NULL AND s.origin = 'source'"
        " AND s.total > 0 ORDER BY s.id, l.id LIMIT 1",
    )
    with bed.env.source.begin() as conn:
        run = conn.exec_driver_sql
        run("SELECT set_config('qbo_pipelines.origin', 'sync', true)")
        made: object = run(
            "INSERT INTO app.sales (doc_number, contact_id, txn_date, subtotal, total)"
            " SELECT %s, contact_id, txn_date, %s::numeric, %s::numeric FROM app.sales"
            " WHERE id = %s RETURNING id",
            (doc_number, amount, amount, sale),
        ).scalar_one()
        run(
            "INSERT INTO app.sale_lines (sale_id, line_no, kind, description, product_id, qty,"
            " unit_price, amount) SELECT %s, 1, 'item', 'unseen', product_id, NULL, NULL,"
            " %s::numeric FROM app.sale_lines WHERE id = %s",
            (made, amount, line),
        )
    return str(made)


def qbo_invoices_numbered(bed: ReconcileBed, doc_number: str) -> list[dict[str, Any]]:
    return [
        o
        for o in bed.sandbox.control.entities(bed.realm, "Invoice")
        if o.get("DocNumber") == doc_number
    ]
