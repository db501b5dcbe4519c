"""Hard deletes in QBO are flagged, never removed (R36); webhook ids are read exactly, in
pages of 1000 ids (R44); an older version never overwrites a newer one."""

from __future__ import annotations

import math

import sqlalchemy as sa
from extract_helpers import PullCompany

from qbo_pipelines.qbo.ids import QboId
from qbo_pipelines.sync.extract import extract_qbo
from qbo_pipelines.warehouse import raw_qbo


def _row(company: PullCompany, table: str, qbo_id: str) -> dict[str, object]:
    with company.engine.connect() as conn:
        return dict(
            conn.execute(
                sa.text(f"SELECT * FROM raw_qbo.{table} WHERE realm_id = :r AND qbo_id = :i"),
                {"r": company.realm_id, "i": qbo_id},
            )
            .mappings()
            .one()
        )


def test_R36_a_hard_delete_in_qbo_is_flagged_by_cdc_never_removed(
    pull_company: PullCompany,
) -> None:
    company = pull_company
    made = company.seed_transactions(3)
    client = company.client()
    extract_qbo(client, company.engine, company.realm_id)
    gone = made["Invoice"][-1]  # not paid: QBO lets it go
    company.control.advance_clock(5)
    company.control.user_delete(company.realm_id, "Invoice", gone["Id"])
    company.control.reset_requests()

    report = extract_qbo(client, company.engine, company.realm_id, run_id="run-del")

    assert company.endpoints() == ["cdc"]
    assert report.deleted == {"Invoice": (gone["Id"],)}
    assert "Invoice" not in report.changed
    row = _row(company, "invoices", gone["Id"])
    assert row["deleted"] is True
    assert row["deleted_at"] is not None
    assert row["run_id"] == "run-del"
    assert row["doc_number"] == gone["DocNumber"]  # the last known object is kept
    flags = company.scalar(
        "SELECT array_agg(DISTINCT deleted) FROM raw_qbo.invoice_lines "
        "WHERE realm_id = :r AND qbo_id = :i",
        i=gone["Id"],
    )
    assert flags == [True]
    # seen again by the next cycle (CDC overlaps a second): not flagged twice, nothing moves
    company.control.advance_clock(5)
    again = extract_qbo(client, company.engine, company.realm_id)
    assert (again.changed, again.deleted) == ({}, {})
    assert _row(company, "invoices", gone["Id"])["deleted_at"] == row["deleted_at"]


def test_R44_ids_are_read_in_pages_of_1000_and_a_missing_id_seen_before_is_flagged_deleted(
    pull_company: PullCompany,
) -> None:
    """Notified ids are read exactly, in pages of 1000; one QBO no longer answers for is
    flagged deleted when the sync had seen it (R36), and ignored when it never had (999999:
    nothing to delete, no stub of a record that never existed)."""
    company = pull_company
    made = company.seed_transactions(3)
    customers = company.control.bulk_create(
        company.realm_id, "Customer", [{"DisplayName": f"Webhook {i:04d}"} for i in range(2100)]
    )
    gone = made["Invoice"][-1]
    extract_qbo(company.client(), company.engine, company.realm_id, ids={"Invoice": [gone["Id"]]})
    company.control.user_delete(company.realm_id, "Invoice", gone["Id"])
    company.control.user_update(
        company.realm_id, "Customer", {"Id": "3", "sparse": True, "Active": False}
    )
    wanted = {
        "Customer": [c["Id"] for c in customers] + ["3", "999999"],
        "Invoice": [made["Invoice"][0]["Id"], gone["Id"]],
    }
    company.control.reset_requests()

    report = extract_qbo(company.client(), company.engine, company.realm_id, ids=wanted)

    pages = math.ceil(len(wanted["Customer"]) / 1000) + 1
    assert company.endpoints() == ["query"] * pages  # no CDC call, no full read
    assert report.calls == pages
    assert not report.full
    assert report.deleted == {"Invoice": (gone["Id"],)}
    assert set(report.changed["Customer"]) == {c["Id"] for c in customers} | {"3"}
    assert report.changed["Invoice"] == (made["Invoice"][0]["Id"],)
    assert report.rows == {"Customer": 2101, "Invoice": 1}
    inactive = _row(company, "customers", "3")  # inactive is not deleted
    assert (inactive["active"], inactive["deleted"]) == (False, False)
    assert _row(company, "invoices", gone["Id"])["deleted"] is True
    assert company.scalar(
        "SELECT count(*) FROM raw_qbo.customers WHERE realm_id = :r AND qbo_id = '999999'"
    ) == 0
    # the same notification again (QBO retries webhooks): nothing changes, no duplicate
    again = extract_qbo(company.client(), company.engine, company.realm_id, ids=wanted)
    assert (again.changed, again.deleted) == ({}, {})
    assert (
        company.scalar(
            "SELECT count(*) - count(DISTINCT qbo_id) FROM raw_qbo.customers WHERE realm_id = :r"
        )
        == 0
    )


def test_R44_an_older_version_never_overwrites_a_newer_one(pull_company: PullCompany) -> None:
    company = pull_company
    made = company.seed_transactions(3)
    client = company.client()
    invoice_id = QboId(made["Invoice"][0]["Id"])
    extract_qbo(client, company.engine, company.realm_id)
    older = client.read("Invoice", invoice_id)  # what a slow webhook read may still hold
    company.control.advance_clock(5)
    company.control.user_update(
        company.realm_id, "Invoice", {"Id": invoice_id, "sparse": True, "PrivateNote": "v2"}
    )
    newer = extract_qbo(client, company.engine, company.realm_id)
    assert newer.changed["Invoice"] == (invoice_id,)

    with company.engine.begin() as conn:  # the older read lands late
        late = raw_qbo.merge(conn, company.realm_id, "Invoice", [older])
    assert late.changed == ()
    row = _row(company, "invoices", invoice_id)
    assert row["data"]["PrivateNote"] == "v2"  # type: ignore[index]
    assert int(str(row["sync_token"])) == int(older["SyncToken"]) + 1
    # and a late live read never revives a deleted row
    gone = made["Invoice"][-1]
    before_delete = client.read("Invoice", QboId(gone["Id"]))
    company.control.advance_clock(5)
    company.control.user_delete(company.realm_id, "Invoice", gone["Id"])
    assert extract_qbo(client, company.engine, company.realm_id).deleted == {
        "Invoice": (gone["Id"],)
    }
    with company.engine.begin() as conn:
        assert raw_qbo.merge(conn, company.realm_id, "Invoice", [before_delete]).changed == ()
    assert _row(company, "invoices", gone["Id"])["deleted"] is True
