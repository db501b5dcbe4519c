"""R5/R11 through the push job (Dagster, dagster-postgres) over the sandbox: an organisation is
one QBO customer, whichever of its contacts buys. Its lowest-id contact stands for it; the
sales and receipts of its other contacts bill that customer, and none of them is held as a
name collision or written as a second customer."""

from __future__ import annotations

from typing import Any

import dagster as dg
from pushbed import PushBed
from test_R6_R10_edits_after_create import _push

from qbo_pipelines.defs.push import companies


def _one(bed: PushBed, sql: str, **params: object) -> Any:
    [(value,)] = bed.sql(bed.env.source, sql, **params)
    return value


def _contact(bed: PushBed, org: int | None, given: str) -> int:
    return int(
        _one(
            bed,
            "INSERT INTO app.contacts (organisation_id, given_name, family_name, email)"
            " VALUES (:o, :g, 'Member', :e) RETURNING id",
            o=org,
            g=given,
            e=f"{given.lower()}@member.example.com",
        )
    )


def _sale(bed: PushBed, contact: int, doc: str, *, paid: bool = False) -> int:
    """A copy of a synced-shape sale (its lines too) for ``contact``; with a receipt paying it
    when ``paid``."""
    template = _one(
        bed,
        "SELECT min(s.id) FROM app.sales s WHERE s.origin = 'source' AND s.total > 0"
        " AND NOT EXISTS (SELECT 1 FROM app.sale_lines l WHERE l.sale_id = s.id"
        "  AND (l.kind <> 'item' OR l.tax_rate_id IS NOT NULL))",
    )
    sale = int(
        _one(
            bed,
            "INSERT INTO app.sales (doc_number, contact_id, txn_date, due_date, currency,"
            " subtotal, discount_total, tax_total, total) SELECT :d, :c, txn_date, due_date,"
            " currency, subtotal, discount_total, tax_total, total FROM app.sales WHERE id = :t"
            " RETURNING id",
            d=doc,
            c=contact,
            t=template,
        )
    )
    bed.sql(
        bed.env.source,
        "INSERT INTO app.sale_lines (sale_id, line_no, kind, description, product_id, qty,"
        " unit_price, amount) SELECT :s, line_no, kind, description, product_id, qty,"
        " unit_price, amount FROM app.sale_lines WHERE sale_id = :t",
        s=sale,
        t=template,
    )
    if paid:
        bed.sql(
            bed.env.source,
            "INSERT INTO app.receipts (sale_id, contact_id, amount, received_on)"
            " SELECT id, contact_id, total, txn_date FROM app.sales WHERE id = :s",
            s=sale,
        )
    return sale


def _customers_named(bed: PushBed, name: str) -> list[dict[str, Any]]:
    key = " ".join(name.split()).casefold()
    return [
        c
        for c in bed.sandbox.control.entities(bed.realm, "Customer")
        if " ".join(str(c["DisplayName"]).split()).casefold() == key
    ]


def _invoice(bed: PushBed, doc: str) -> dict[str, Any]:
    [found] = [
        i for i in bed.sandbox.control.entities(bed.realm, "Invoice") if i.get("DocNumber") == doc
    ]
    return found


def _state(bed: PushBed, entity: str, source_id: int) -> list[Any]:
    return bed.sql(
        bed.env.warehouse,
        "SELECT status, qbo_id FROM sync.record_state WHERE realm_id = :r AND entity = :e"
        " AND source_id = :s",
        r=bed.realm,
        e=entity,
        s=str(source_id),
    )


def _problems(bed: PushBed, *source_ids: int) -> list[Any]:
    return bed.sql(
        bed.env.warehouse,
        "SELECT entity, source_id, reason FROM sync.quarantine WHERE realm_id = :r"
        " AND resolved_at IS NULL AND source_id = ANY(:s)"
        " UNION ALL SELECT entity, source_id, error_message FROM sync.record_state"
        " WHERE realm_id = :r AND status = 'failed' AND source_id = ANY(:s)",
        r=bed.realm,
        s=[str(i) for i in source_ids],
    )


def test_R5_R11_every_contact_of_an_organisation_bills_its_one_qbo_customer(
    push_bed: PushBed, dagster_instance: dg.DagsterInstance
) -> None:
    bed = push_bed
    # An organisation whose one contact buys; a colleague joins it and buys too, and pays.
    [(rep, org, name)] = bed.sql(
        bed.env.source,
        "SELECT c.id, o.id, o.name FROM app.contacts c JOIN app.organisations o"
        " ON o.id = c.organisation_id WHERE EXISTS (SELECT 1 FROM app.sales s"
        " WHERE s.contact_id = c.id) AND (SELECT count(*) FROM app.contacts x"
        " WHERE x.organisation_id = o.id) = 1 ORDER BY c.id LIMIT 1",
    )
    colleague = _contact(bed, org, "Mary")
    first = _sale(bed, colleague, "ORG-1", paid=True)
    dagster_instance.add_dynamic_partitions(companies.name, [bed.realm])
    _push(bed, dagster_instance)

    [customer] = _customers_named(bed, name)  # one customer, not two, and no collision
    assert _state(bed, "customers", rep) == [("synced", customer["Id"])]
    assert _state(bed, "customers", colleague) == [("skipped", None)]  # never written itself
    assert _invoice(bed, "ORG-1")["CustomerRef"]["value"] == customer["Id"]
    [(invoice_status, invoice_id)] = _state(bed, "invoices", first)
    assert invoice_status == "synced"
    [payment] = [
        p
        for p in bed.sandbox.control.entities(bed.realm, "Payment")
        if any(
            t["TxnId"] == invoice_id
            for line in p.get("Line", [])
            for t in line.get("LinkedTxn", [])
        )
    ]
    assert payment["CustomerRef"]["value"] == customer["Id"]
    assert _problems(bed, colleague, first) == []

    # Incremental: a second colleague buys later; and a new organisation whose first contact
    # never buys while its second does (the organisation has a sale: its first contact stands
    # for it and is created, once).
    late = _contact(bed, org, "Tom")
    second = _sale(bed, late, "ORG-2")
    new_org = int(
        _one(bed, "INSERT INTO app.organisations (name) VALUES ('Quiet Harbour Co') RETURNING id")
    )
    silent = _contact(bed, new_org, "Ann")
    buyer = _contact(bed, new_org, "Bob")
    third = _sale(bed, buyer, "ORG-3")
    customers_before = bed.count("Customer")
    _push(bed, dagster_instance)

    assert _invoice(bed, "ORG-2")["CustomerRef"]["value"] == customer["Id"]
    [harbour] = _customers_named(bed, "Quiet Harbour Co")
    assert bed.count("Customer") == customers_before + 1
    assert _state(bed, "customers", silent) == [("synced", harbour["Id"])]
    assert harbour["GivenName"] == "Ann"  # the contact that stands for the organisation
    assert _invoice(bed, "ORG-3")["CustomerRef"]["value"] == harbour["Id"]
    assert _state(bed, "customers", buyer) == _state(bed, "customers", late) == [("skipped", None)]
    assert _problems(bed, late, second, buyer, third) == []

    # Nothing changed: nothing written.
    calls = bed.write_calls()
    _push(bed, dagster_instance)
    assert bed.write_calls() == calls
