"""Edits after a create, through the push job (Dagster, dagster-postgres) over the sandbox.

A create writes more than the sync keeps in step: an item's Type and income account (R10), a
customer's billing contact (R6). Later edits must update what the sync keeps in step and never
clear, or write over, what only the create wrote.
"""

from __future__ import annotations

from typing import Any

import dagster as dg
import sqlalchemy as sa
from pushbed import PushBed
from test_push_assets import _resources

from qbo_pipelines.defs.push import PUSH_ASSETS, companies


def _push(bed: PushBed, instance: dg.DagsterInstance) -> dict[str, dict[str, Any]]:
    result = dg.materialize(
        PUSH_ASSETS, partition_key=bed.realm, instance=instance, resources=_resources(bed)
    )
    assert result.success
    return {
        e.asset_key.to_user_string(): {k: v.value for k, v in e.materialization.metadata.items()}
        for e in result.get_asset_materialization_events()
    }


def _qbo(bed: PushBed, entity: str, qbo_id: str) -> dict[str, Any]:
    return next(o for o in bed.sandbox.control.entities(bed.realm, entity) if o["Id"] == qbo_id)


def _qbo_id(bed: PushBed, entity: str, source_id: int) -> str:
    [(qbo_id,)] = bed.sql(
        bed.env.warehouse,
        "SELECT qbo_id FROM sync.record_state WHERE realm_id = :r AND entity = :e"
        " AND source_id = :s AND created_by = 'sync'",
        r=bed.realm,
        e=entity,
        s=str(source_id),
    )
    return str(qbo_id)


def _with_billing_contact(bed: PushBed, given: str, family: str, email: str) -> int:
    """A contact with sales in an organisation whose billing contact is now another person
    (no sale of their own); returns the contact."""
    src = bed.env.source
    [(contact, org)] = bed.sql(
        src,
        "SELECT c.id, c.organisation_id FROM app.contacts c WHERE c.organisation_id IS NOT NULL"
        " AND EXISTS (SELECT 1 FROM app.sales s WHERE s.contact_id = c.id)"
        " AND c.email IS NOT NULL ORDER BY c.id LIMIT 1",
    )
    bed.sql(src, "UPDATE app.contacts SET is_billing_contact = false WHERE organisation_id = :o",
            o=org)
    bed.sql(
        src,
        "INSERT INTO app.contacts (organisation_id, given_name, family_name, email,"
        " is_billing_contact) VALUES (:o, :g, :f, :e, true)",
        o=org,
        g=given,
        f=family,
        e=email,
    )
    return int(contact)


def test_R6_R10_edits_after_a_create_update_only_what_the_sync_keeps_in_step(
    push_bed: PushBed, dagster_instance: dg.DagsterInstance
) -> None:
    bed, src = push_bed, push_bed.env.source
    dagster_instance.add_dynamic_partitions(companies.name, [bed.realm])
    # A customer organisation whose billing contact is someone else (R6: used on create).
    contact = _with_billing_contact(bed, "Billy", "Payer", "billing@payer.example")
    _push(bed, dagster_instance)

    products = [
        int(r[0])
        for r in bed.sql(
            bed.env.warehouse,
            "SELECT source_id FROM sync.record_state WHERE realm_id = :r AND entity = 'items'"
            " AND created_by = 'sync' ORDER BY source_id::bigint",
            r=bed.realm,
        )
    ]
    assert products, "the sync created at least one item"
    product = products[0]
    item_id, customer_id = _qbo_id(bed, "items", product), _qbo_id(bed, "customers", contact)
    item_before, customer_before = _qbo(bed, "Item", item_id), _qbo(bed, "Customer", customer_id)
    assert customer_before["GivenName"] == "Billy"  # the billing contact, on create (R6)
    assert customer_before["PrimaryEmailAddr"]["Address"] == "billing@payer.example"

    bed.sql(
        src,
        "UPDATE app.products SET name = name || ' Plus', unit_price = 123.45,"
        " description = 'Edited in the source' WHERE id = :p",
        p=product,
    )
    bed.sql(src, "UPDATE app.contacts SET phone = '+64 9 555 0101' WHERE id = :c", c=contact)
    counts = _push(bed, dagster_instance)

    for entity in ("items", "customers"):
        pushed = counts[f"pushed/qbo/{entity}"]
        assert pushed["updated"] == 1, pushed
        assert pushed["failed"] == 0, pushed
    item = _qbo(bed, "Item", item_id)
    assert item["Name"] == f"{item_before['Name']} Plus"
    assert float(item["UnitPrice"]) == 123.45
    assert item["Description"] == "Edited in the source"
    assert item["Type"] == item_before["Type"] == "Service"
    assert item["IncomeAccountRef"] == item_before["IncomeAccountRef"]  # never cleared (R10)
    customer = _qbo(bed, "Customer", customer_id)
    assert customer["PrimaryPhone"]["FreeFormNumber"] == "+64 9 555 0101"
    for kept in ("GivenName", "FamilyName", "PrimaryEmailAddr"):  # never written over (R6)
        assert customer.get(kept) == customer_before.get(kept), kept
    problems = bed.sql(
        bed.env.warehouse,
        "SELECT entity, source_id, outcome, error_message FROM sync.ledger WHERE realm_id = :r"
        " AND outcome NOT IN ('ok', 'skipped', 'held')",
        r=bed.realm,
    )
    assert problems == []

    bed.sandbox.control.reset_requests()
    again = _push(bed, dagster_instance)
    assert all(c.get("updated", 0) == c.get("created", 0) == 0 for c in again.values()), again
    assert bed.write_calls() == 0


def _pull(bed: PushBed, instance: dg.DagsterInstance) -> None:
    from qbo_pipelines.defs.pull import PULL_ASSETS

    result = dg.materialize(
        PULL_ASSETS, partition_key=bed.realm, instance=instance, resources=_resources(bed)
    )
    assert result.success


def test_R6_R7_the_billing_contact_in_qbo_and_the_contact_never_overwrite_each_other(
    push_bed: PushBed, dagster_instance: dg.DagsterInstance
) -> None:
    """A customer created with its organisation's billing contact (R6) holds that person's
    name and email in QBO. A bookkeeper's edit of them is not written onto the contact (it is
    another person), and the contact's own name edits are not written over them; every other
    field still syncs both ways (R7)."""
    bed, src = push_bed, push_bed.env.source
    dagster_instance.add_dynamic_partitions(companies.name, [bed.realm])
    contact = _with_billing_contact(bed, "Noah", "Müller", "noah@payer.example")
    _push(bed, dagster_instance)
    _pull(bed, dagster_instance)
    customer_id = _qbo_id(bed, "customers", contact)
    [(given, family, email)] = bed.sql(
        src, "SELECT given_name, family_name, email FROM app.contacts WHERE id = :c", c=contact
    )

    # the bookkeeper corrects the billing contact's name and adds a phone, in QBO
    bed.sandbox.control.user_update(
        bed.realm,
        "Customer",
        {
            "Id": customer_id,
            "FamilyName": "Mueller",
            "PrimaryPhone": {"FreeFormNumber": "+64 4 555 0199"},
        },
    )
    _pull(bed, dagster_instance)
    [(given_now, family_now, email_now, phone_now)] = bed.sql(
        src, "SELECT given_name, family_name, email, phone FROM app.contacts WHERE id = :c",
        c=contact,
    )
    assert (given_now, family_now, email_now) == (given, family, email)  # not another person's
    assert phone_now == "+64 4 555 0199"  # the contact's own field came in (R7)
    [(note,)] = bed.sql(
        bed.env.warehouse,
        "SELECT error_message FROM sync.ledger WHERE direction = 'pull' AND entity = 'customers'"
        " AND qbo_id = :q AND operation = 'skip' AND error_message LIKE '%billing contact%'",
        q=customer_id,
    )
    assert "FamilyName" in note

    # the contact's own name changes in the source: QBO keeps the billing contact's
    bed.sql(src, "UPDATE app.contacts SET given_name = 'Renamed', city = 'Nelson' WHERE id = :c",
            c=contact)
    _push(bed, dagster_instance)
    after = _qbo(bed, "Customer", customer_id)
    assert (after["GivenName"], after["FamilyName"]) == ("Noah", "Mueller")
    assert after["PrimaryEmailAddr"]["Address"] == "noah@payer.example"
    assert after["BillAddr"]["City"] == "Nelson"


def _rename(bed: PushBed, names: dict[int, tuple[str, str]]) -> None:
    """Contacts renamed (given, family), all in one transaction."""
    with bed.env.source.begin() as conn:
        for contact, (given, family) in names.items():
            conn.execute(
                sa.text("UPDATE app.contacts SET given_name = :g, family_name = :f WHERE id = :c"),
                {"g": given, "f": family, "c": contact},
            )


def _customer_state(bed: PushBed, contact: int) -> tuple[str, str | None]:
    [(status, reason)] = bed.sql(
        bed.env.warehouse,
        "SELECT rs.status, q.reason FROM sync.record_state rs LEFT JOIN sync.quarantine q"
        " ON q.realm_id = rs.realm_id AND q.entity = rs.entity AND q.source_id = rs.source_id"
        " AND q.resolved_at IS NULL WHERE rs.realm_id = :r AND rs.entity = 'customers'"
        " AND rs.source_id = :s",
        r=bed.realm,
        s=str(contact),
    )
    return str(status), reason


def test_R7_renames_into_names_other_renames_free_sync_in_one_run(
    push_bed: PushBed, dagster_instance: dg.DagsterInstance
) -> None:
    """Renames that take names other renames of the same run free (found by an attack): a
    contact renamed to the name another is renamed away from is written by the same run, once
    that rename is (before: held with a stale reason, then one run per link of a chain); two
    contacts swapping names, or three passing their names round, are renamed through a
    temporary name in the same run (before: held for good, with a fix to follow by hand)."""
    bed, src = push_bed, push_bed.env.source
    dagster_instance.add_dynamic_partitions(companies.name, [bed.realm])
    _push(bed, dagster_instance)
    people = [
        (int(r[0]), str(r[1]), str(r[2]))
        for r in bed.sql(
            src,
            "SELECT c.id, c.given_name, c.family_name FROM app.contacts c"
            " WHERE c.organisation_id IS NULL AND c.given_name IS NOT NULL"
            " AND c.family_name IS NOT NULL AND EXISTS (SELECT 1 FROM app.sales s"
            " WHERE s.contact_id = c.id) ORDER BY c.id",
        )
    ]
    synced = [p for p in people if _customer_state(bed, p[0])[0] == "synced"][:4]
    assert len(synced) == 4
    (a, *a_name), (b, *b_name), (c, *c_name), (d, *d_name) = synced
    swap_and_chain = {
        a: (b_name, 1), b: (a_name, 0),  # a swap: a goes first, under a temporary name
        c: (d_name, 0), d: (["Brand", "Newname Chain"], 0),  # a chain: c after d
    }
    after = {a: b_name, b: a_name, c: d_name, d: ["Brand", "Newname Chain"]}
    ring = {a: (after[b], 1), b: (after[c], 0), c: (after[a], 0)}  # each takes the next's name
    # A QBO customer already has the first temporary name (found by an attack: the rename was
    # sent blind, refused with 6240 on every pass, and the ring waited a day): the next free
    # one is taken instead.
    blocker = f"customers {a} (renaming)"
    bed.sandbox.control.bulk_create(bed.realm, "Customer", [{"DisplayName": blocker}])
    for renames in (swap_and_chain, ring):
        _rename(bed, {k: tuple(name) for k, (name, _) in renames.items()})
        counts = _push(bed, dagster_instance)
        for contact in renames:
            state = _customer_state(bed, contact)
            assert state == ("synced", None), (contact, state)
        customers = counts["pushed/qbo/customers"]
        [(held,)] = bed.sql(
            bed.env.warehouse,
            "SELECT count(*) FROM sync.record_state WHERE realm_id = :r"
            " AND entity = 'customers' AND status = 'held'",
            r=bed.realm,
        )
        # the run's counts are its final outcome (a record held, then written, is not held);
        # a ring's first member is written twice (its temporary name, then its new one)
        writes = len(renames) + sum(twice for _, twice in renames.values())
        assert (customers["updated"], customers["held_back"]) == (writes, held), customers
        assert customers["failed"] == 0, customers
        names = {
            o["DisplayName"]
            for o in bed.sandbox.control.entities(bed.realm, "Customer")
            if o.get("Active", True)
        }
        assert {" ".join(name) for name, _ in renames.values()} <= names
        assert [n for n in names if "(renaming" in n] == [blocker]
        after.update({k: name for k, (name, _) in renames.items()})
    again = _push(bed, dagster_instance)
    assert again["pushed/qbo/customers"].get("updated", 0) == 0


def test_R7_a_customer_and_a_vendor_swapping_names_are_held_with_a_fix_that_works(
    push_bed: PushBed, dagster_instance: dg.DagsterInstance
) -> None:
    """A contact and a worker take each other's names: QBO's customers and vendors share names,
    and the engine turns rings within one entity only, so both are held. The fix says what
    works (before: "rename one of the two", which a source already in order cannot follow):
    one takes a temporary name for a run, then its new name; following it syncs both."""
    bed, src = push_bed, push_bed.env.source
    dagster_instance.add_dynamic_partitions(companies.name, [bed.realm])
    _push(bed, dagster_instance)
    [(contact, c_given, c_family)] = bed.sql(
        src,
        "SELECT c.id, c.given_name, c.family_name FROM app.contacts c"
        " WHERE c.organisation_id IS NULL AND c.given_name IS NOT NULL"
        " AND c.family_name IS NOT NULL AND EXISTS (SELECT 1 FROM app.sales s"
        " WHERE s.contact_id = c.id) ORDER BY c.id LIMIT 1",
    )
    assert _customer_state(bed, contact)[0] == "synced"
    [(worker, w_given, w_family)] = bed.sql(
        src,
        "SELECT id, given_name, family_name FROM app.workers ORDER BY id LIMIT 1",
    )
    with bed.env.source.begin() as conn:
        conn.execute(
            sa.text("UPDATE app.contacts SET given_name = :g, family_name = :f WHERE id = :c"),
            {"g": w_given, "f": w_family, "c": contact},
        )
        conn.execute(
            sa.text("UPDATE app.workers SET given_name = :g, family_name = :f WHERE id = :w"),
            {"g": c_given, "f": c_family, "w": worker},
        )
    _push(bed, dagster_instance)
    fixes = bed.sql(
        bed.env.warehouse,
        "SELECT entity, fix FROM sync.quarantine WHERE realm_id = :r AND resolved_at IS NULL"
        " AND ((entity = 'customers' AND source_id = :c) OR (entity = 'vendors'"
        " AND source_id = :w))",
        r=bed.realm,
        c=str(contact),
        w=str(worker),
    )
    assert {e for e, _ in fixes} == {"customers", "vendors"}, fixes
    assert all("temporary name in the source app for one run" in str(f) for _, f in fixes)

    # Followed: the contact takes a temporary name for a run, then its new name.
    with bed.env.source.begin() as conn:
        conn.execute(
            sa.text("UPDATE app.contacts SET family_name = :f WHERE id = :c"),
            {"f": f"{w_family} (for a run)", "c": contact},
        )
    _push(bed, dagster_instance)
    with bed.env.source.begin() as conn:
        conn.execute(
            sa.text("UPDATE app.contacts SET family_name = :f WHERE id = :c"),
            {"f": w_family, "c": contact},
        )
    _push(bed, dagster_instance)
    assert _customer_state(bed, contact) == ("synced", None)
    customers = {o["DisplayName"] for o in bed.sandbox.control.entities(bed.realm, "Customer")}
    vendors = {o["DisplayName"] for o in bed.sandbox.control.entities(bed.realm, "Vendor")}
    assert f"{w_given} {w_family}" in customers
    assert f"{c_given} {c_family}" in vendors
