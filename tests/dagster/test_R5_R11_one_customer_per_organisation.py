"""R5/R11 through the push job (Dagster, dagster-postgres) over the sandbox: an organisation is
one QBO customer, whichever of its contacts buys. Its lowest-id contact stands for it; the
sales and receipts of its other contacts bill that customer, and none of them is held as a
name collision or written as a second customer."""

from __future__ import annotations

from typing import Any

import dagster as dg
import pytest
from pushbed import PushBed
from test_R6_R10_edits_after_create import _push

from qbo_pipelines.defs.push import companies
from qbo_pipelines.sync import pipeline, push


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


def _ledger_matches(bed: PushBed, source_id: int) -> list[str]:
    return [
        str(m)
        for (m,) in bed.sql(
            bed.env.warehouse,
            "SELECT error_message FROM sync.ledger WHERE realm_id = :r AND entity = 'customers'"
            " AND source_id = :s AND operation = 'match' ORDER BY id",
            r=bed.realm,
            s=str(source_id),
        )
    ]


def test_R5_the_organisations_customer_follows_whoever_stands_for_it(
    push_bed: PushBed, dagster_instance: dg.DagsterInstance
) -> None:
    """An organisation's QBO customer stays the organisation's when the contact that stands for
    it changes. A contact with a lower id (with its own customer and invoices) joins: the link
    moves to it, its invoices move to the organisation's customer, nothing is held (before: its
    rename was held as a name collision for good, and the organisation's invoices were billed
    to its own customer meanwhile). It leaves again: the link moves back to the organisation's
    next contact, and the one who left is matched to its own customer again by the next run
    (before the fix, both were held as collisions)."""
    bed = push_bed
    org = int(
        _one(bed, "INSERT INTO app.organisations (name) VALUES ('Quiet Harbour Co') RETURNING id")
    )
    ann = _contact(bed, org, "Ann")
    bob = _contact(bed, org, "Bob")
    _sale(bed, bob, "HARBOUR-1")
    dagster_instance.add_dynamic_partitions(companies.name, [bed.realm])
    _push(bed, dagster_instance)
    [harbour] = _customers_named(bed, "Quiet Harbour Co")
    assert _state(bed, "customers", ann) == [("synced", harbour["Id"])]
    pipeline.pull_all(bed.env, bed.realm, run_id="pull-1")  # QBO's own customers come in
    # a contact older than the organisation's, with its own customer and invoices
    [(joiner, own_id, own_name)] = bed.sql(
        bed.env.warehouse,
        "SELECT s.source_id::int, s.qbo_id, s.source_base->>'DisplayName'"
        " FROM sync.record_state s WHERE s.realm_id = :r AND s.entity = 'customers'"
        " AND s.status = 'synced' AND s.qbo_id IS NOT NULL"
        " AND s.source_base->>'CompanyName' IS NULL ORDER BY s.source_id::int LIMIT 1",
        r=bed.realm,
    )
    assert joiner < ann
    [(doc,)] = bed.sql(
        bed.env.source,
        "SELECT min(doc_number) FROM app.sales WHERE contact_id = :c AND total > 0",
        c=joiner,
    )
    assert _invoice(bed, doc)["CustomerRef"]["value"] == own_id

    bed.sql(
        bed.env.source,
        "UPDATE app.contacts SET organisation_id = :o WHERE id = :c",
        o=org,
        c=joiner,
    )
    _push(bed, dagster_instance)
    assert [c["Id"] for c in _customers_named(bed, "Quiet Harbour Co")] == [harbour["Id"]]
    assert _state(bed, "customers", joiner) == [("synced", harbour["Id"])]
    assert _state(bed, "customers", ann) == [("skipped", None)]
    assert _invoice(bed, "HARBOUR-1")["CustomerRef"]["value"] == harbour["Id"]
    assert _invoice(bed, doc)["CustomerRef"]["value"] == harbour["Id"]
    assert _problems(bed, joiner, ann, bob) == []
    assert "the link moves here" in _ledger_matches(bed, joiner)[-1]
    # the joiner's own customer, linked to no contact now, is no new QBO customer to the pull
    contacts = _one(bed, "SELECT count(*) FROM app.contacts")
    pipeline.pull_all(bed.env, bed.realm, run_id="pull-2")
    assert _one(bed, "SELECT count(*) FROM app.contacts") == contacts
    assert _one(bed, "SELECT count(*) FROM app.contacts WHERE qbo_id = :q", q=own_id) == 0

    bed.sql(
        bed.env.source, "UPDATE app.contacts SET organisation_id = NULL WHERE id = :c", c=joiner
    )
    _push(bed, dagster_instance)
    assert _state(bed, "customers", ann) == [("synced", harbour["Id"])]
    [(status, _linked)] = _state(bed, "customers", joiner)
    assert status == "held"  # handed over; matched under its own name by the next run
    _push(bed, dagster_instance)
    assert _state(bed, "customers", joiner) == [("synced", own_id)]
    assert _invoice(bed, doc)["CustomerRef"]["value"] == own_id
    assert _invoice(bed, "HARBOUR-1")["CustomerRef"]["value"] == harbour["Id"]
    assert [c["Id"] for c in _customers_named(bed, "Quiet Harbour Co")] == [harbour["Id"]]
    assert [c["Id"] for c in _customers_named(bed, own_name)] == [own_id]
    assert _problems(bed, joiner, ann, bob) == []

    calls = bed.write_calls()
    _push(bed, dagster_instance)
    assert bed.write_calls() == calls


def test_R5_the_organisations_customer_follows_its_next_contact_wherever_the_two_fall(
    push_bed: PushBed, dagster_instance: dg.DagsterInstance, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The contact standing for an organisation leaves it while the organisation's next contact
    is planned in another chunk of the run (a company with more contacts changed than a chunk
    holds): the organisation's QBO customer still moves to the next contact, whole. Before, the
    contact that left renamed the organisation's customer after itself (its invoices with it)
    and the next chunk created a second customer for the organisation."""
    bed = push_bed
    org = int(
        _one(bed, "INSERT INTO app.organisations (name) VALUES ('Still Water Ltd') RETURNING id")
    )
    ann = _contact(bed, org, "Ann")
    bob = _contact(bed, org, "Bob")
    _sale(bed, bob, "WATER-1")
    dagster_instance.add_dynamic_partitions(companies.name, [bed.realm])
    _push(bed, dagster_instance)
    [water] = _customers_named(bed, "Still Water Ltd")
    assert _state(bed, "customers", ann) == [("synced", water["Id"])]

    monkeypatch.setattr(push, "CHUNK", 1)  # every record planned in a chunk of its own
    bed.sql(bed.env.source, "UPDATE app.contacts SET organisation_id = NULL WHERE id = :c", c=ann)
    _push(bed, dagster_instance)
    assert [c["Id"] for c in _customers_named(bed, "Still Water Ltd")] == [water["Id"]]
    assert _customers_named(bed, "Ann Member") == []
    assert _state(bed, "customers", bob) == [("synced", water["Id"])]
    assert _invoice(bed, "WATER-1")["CustomerRef"]["value"] == water["Id"]
    [(status, _linked)] = _state(bed, "customers", ann)
    assert status == "held"  # handed over; the next run plans it on its own
    assert "the link moves here" in _ledger_matches(bed, bob)[-1]

    _push(bed, dagster_instance)
    assert _state(bed, "customers", ann) == [("skipped", None)]  # no sale of its own (R4)
    assert [c["Id"] for c in _customers_named(bed, "Still Water Ltd")] == [water["Id"]]
    assert _problems(bed, ann, bob) == []
    calls = bed.write_calls()
    _push(bed, dagster_instance)
    assert bed.write_calls() == calls


def test_R5_a_contact_moving_to_another_organisation_takes_each_customer_where_it_belongs(
    push_bed: PushBed, dagster_instance: dg.DagsterInstance
) -> None:
    """The contact standing for one organisation moves to another whose representative has a
    higher id: it now stands for the second organisation, and the first one's next contact
    for the first. In one run, each organisation keeps its one QBO customer, with its
    invoices; none is created, renamed after a person, or held. Before, the run crashed on
    the unique QBO link (the contact's old customer was both parked as a retired record's and
    handed to the first organisation's next contact), and every later run crashed again."""
    bed = push_bed
    amber = int(_one(bed, "INSERT INTO app.organisations (name) VALUES ('Amber Co') RETURNING id"))
    birch = int(_one(bed, "INSERT INTO app.organisations (name) VALUES ('Birch Co') RETURNING id"))
    ann = _contact(bed, amber, "Ann")
    bob = _contact(bed, amber, "Bob")
    cid = _contact(bed, birch, "Cid")
    _sale(bed, bob, "AMBER-1")
    _sale(bed, cid, "BIRCH-1")
    dagster_instance.add_dynamic_partitions(companies.name, [bed.realm])
    _push(bed, dagster_instance)
    [amber_qbo] = _customers_named(bed, "Amber Co")
    [birch_qbo] = _customers_named(bed, "Birch Co")
    customers = bed.count("Customer")

    bed.sql(
        bed.env.source, "UPDATE app.contacts SET organisation_id = :o WHERE id = :c", o=birch, c=ann
    )
    _push(bed, dagster_instance)
    assert bed.count("Customer") == customers
    assert [c["Id"] for c in _customers_named(bed, "Amber Co")] == [amber_qbo["Id"]]
    assert [c["Id"] for c in _customers_named(bed, "Birch Co")] == [birch_qbo["Id"]]
    assert _state(bed, "customers", ann) == [("synced", birch_qbo["Id"])]
    assert _state(bed, "customers", bob) == [("synced", amber_qbo["Id"])]
    assert _state(bed, "customers", cid) == [("skipped", None)]
    assert _invoice(bed, "AMBER-1")["CustomerRef"]["value"] == amber_qbo["Id"]
    assert _invoice(bed, "BIRCH-1")["CustomerRef"]["value"] == birch_qbo["Id"]
    assert _problems(bed, ann, bob, cid) == []
    assert "moves to customers #" in _ledger_matches(bed, ann)[-1]
    calls = bed.write_calls()
    _push(bed, dagster_instance)
    assert bed.write_calls() == calls


def test_R5_a_contact_joining_where_another_stands_hands_its_old_customer_on(
    push_bed: PushBed, dagster_instance: dg.DagsterInstance
) -> None:
    """The contact standing for an organisation moves to another organisation, which an older
    contact stands for, while a contact with a lower id joins the first one: the first
    organisation's customer moves to the newcomer in the same run. Before, the newcomer was
    held as a name collision with the contact that had left, for good (found by a random
    walk of memberships through the push job)."""
    bed = push_bed
    amber = int(_one(bed, "INSERT INTO app.organisations (name) VALUES ('Amber Co') RETURNING id"))
    birch = int(_one(bed, "INSERT INTO app.organisations (name) VALUES ('Birch Co') RETURNING id"))
    ann = _contact(bed, birch, "Ann")  # stands for Birch
    bob = _contact(bed, None, "Bob")  # will join Amber and stand for it
    cid = _contact(bed, amber, "Cid")  # stands for Amber, then moves to Birch
    _sale(bed, ann, "BIRCH-1")
    _sale(bed, cid, "AMBER-1")
    dagster_instance.add_dynamic_partitions(companies.name, [bed.realm])
    _push(bed, dagster_instance)
    [amber_qbo] = _customers_named(bed, "Amber Co")
    [birch_qbo] = _customers_named(bed, "Birch Co")
    assert _state(bed, "customers", cid) == [("synced", amber_qbo["Id"])]
    customers = bed.count("Customer")

    bed.sql(
        bed.env.source, "UPDATE app.contacts SET organisation_id = :o WHERE id = :c", o=birch, c=cid
    )
    bed.sql(
        bed.env.source, "UPDATE app.contacts SET organisation_id = :o WHERE id = :c", o=amber, c=bob
    )
    _sale(bed, bob, "AMBER-2")
    _push(bed, dagster_instance)
    assert bed.count("Customer") == customers
    assert _state(bed, "customers", bob) == [("synced", amber_qbo["Id"])]
    assert _state(bed, "customers", cid) == [("skipped", None)]
    assert _state(bed, "customers", ann) == [("synced", birch_qbo["Id"])]
    assert _invoice(bed, "AMBER-2")["CustomerRef"]["value"] == amber_qbo["Id"]
    assert _invoice(bed, "AMBER-1")["CustomerRef"]["value"] == birch_qbo["Id"]  # Cid's, moved
    assert _problems(bed, ann, bob, cid) == []
    calls = bed.write_calls()
    _push(bed, dagster_instance)
    assert bed.write_calls() == calls


def test_R5_the_next_contact_is_found_in_the_organisation_not_in_its_namesake(
    push_bed: PushBed, dagster_instance: dg.DagsterInstance, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two organisations named alike (QBO takes "Acme Walk" and "ACME WALK" for one name: the
    second is held as a collision). The contact standing for the first leaves it while its next
    contact falls in another chunk, after the namesake's contact: the customer moves to the
    first organisation's own next contact, never to the namesake's, and is never renamed."""
    bed = push_bed
    first = int(_one(bed, "INSERT INTO app.organisations (name) VALUES ('Acme Walk') RETURNING id"))
    alike = int(_one(bed, "INSERT INTO app.organisations (name) VALUES ('ACME WALK') RETURNING id"))
    ann = _contact(bed, first, "Ann")  # stands for Acme Walk
    zed = _contact(bed, alike, "Zed")  # stands for ACME WALK: held, the name is taken
    bob = _contact(bed, first, "Bob")  # Acme Walk's next contact
    _sale(bed, bob, "ACME-1")
    _sale(bed, zed, "ACME-2")
    dagster_instance.add_dynamic_partitions(companies.name, [bed.realm])
    _push(bed, dagster_instance)
    [acme] = _customers_named(bed, "Acme Walk")
    assert _state(bed, "customers", ann) == [("synced", acme["Id"])]
    assert _state(bed, "customers", zed)[0][0] == "held"

    monkeypatch.setattr(push, "CHUNK", 1)
    bed.sql(bed.env.source, "UPDATE app.contacts SET organisation_id = NULL WHERE id = :c", c=ann)
    _push(bed, dagster_instance)
    assert [(c["Id"], c["DisplayName"]) for c in _customers_named(bed, "Acme Walk")] == [
        (acme["Id"], "Acme Walk")
    ]
    assert _state(bed, "customers", bob) == [("synced", acme["Id"])]
    assert _state(bed, "customers", zed)[0][0] == "held"
    assert _invoice(bed, "ACME-1")["CustomerRef"]["value"] == acme["Id"]
