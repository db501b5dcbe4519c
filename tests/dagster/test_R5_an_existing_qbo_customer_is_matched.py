"""R5 through the push job (Dagster, dagster-postgres) over the sandbox: a contact whose name a
customer already in QBO carries (entered by the bookkeeper before the sync) is matched to that
customer, never created a second time."""

from __future__ import annotations

import dagster as dg
from pushbed import PushBed
from test_R6_R10_edits_after_create import _push

from qbo_pipelines.defs.push import companies


def _single_org_contacts(bed: PushBed, n: int) -> list[tuple[int, str]]:
    """``n`` contacts with sales, each alone in its organisation (the customer's name)."""
    rows = bed.sql(
        bed.env.source,
        "SELECT c.id, o.name FROM app.contacts c JOIN app.organisations o"
        " ON o.id = c.organisation_id WHERE EXISTS (SELECT 1 FROM app.sales s"
        " WHERE s.contact_id = c.id) AND (SELECT count(*) FROM app.contacts x"
        " WHERE x.organisation_id = o.id) = 1 ORDER BY c.id LIMIT :n",
        n=n,
    )
    return [(int(r[0]), str(r[1])) for r in rows]


def _customers_named(bed: PushBed, name: str) -> list[dict[str, object]]:
    key = name.strip().casefold()
    return [
        c
        for c in bed.sandbox.control.entities(bed.realm, "Customer")
        if str(c["DisplayName"]).strip().casefold() == key
    ]


def test_R5_a_contact_named_like_an_existing_qbo_customer_is_matched_not_duplicated(
    push_bed: PushBed, dagster_instance: dg.DagsterInstance
) -> None:
    bed = push_bed
    (contact, name), (other, other_name) = _single_org_contacts(bed, 2)
    [existing, variant] = bed.sandbox.control.bulk_create(
        bed.realm,
        "Customer",
        [
            {"DisplayName": name, "Notes": "entered in QBO before the sync"},
            # QBO treats names differing only in case or surrounding spaces as one
            {"DisplayName": f"  {other_name.upper()} "},
        ],
    )
    dagster_instance.add_dynamic_partitions(companies.name, [bed.realm])
    _push(bed, dagster_instance)
    [(qbo_id, created_by)] = bed.sql(
        bed.env.warehouse,
        "SELECT qbo_id, created_by FROM sync.record_state WHERE realm_id = :r"
        " AND entity = 'customers' AND source_id = :s",
        r=bed.realm,
        s=str(contact),
    )
    assert (str(qbo_id), created_by) == (existing["Id"], "matched")
    [same] = _customers_named(bed, name)
    assert same["Id"] == existing["Id"]
    assert same["Notes"] == "entered in QBO before the sync"  # not the sync's to change
    invoices = [
        i
        for i in bed.sandbox.control.entities(bed.realm, "Invoice")
        if i["CustomerRef"]["value"] == existing["Id"]
    ]
    assert invoices  # the contact's sales are that customer's invoices

    # the variant is neither matched (not the same name) nor created a second time: the
    # contact waits with the reason and the fix
    assert [c["Id"] for c in _customers_named(bed, other_name)] == [variant["Id"]]
    [(reason, fix)] = bed.sql(
        bed.env.warehouse,
        "SELECT reason, fix FROM sync.quarantine WHERE realm_id = :r AND entity = 'customers'"
        " AND source_id = :s AND resolved_at IS NULL"
        " UNION ALL SELECT error_message, fix FROM sync.record_state WHERE realm_id = :r"
        " AND entity = 'customers' AND source_id = :s AND status = 'failed'",
        r=bed.realm,
        s=str(other),
    )
    assert reason
    assert fix
