"""A mapping changed after records were synced with it, through the push job (Dagster,
dagster-postgres) over the sandbox (R12, R19; D5 of an attack round).

Nothing in the source moves when a tax rate is mapped to another QBO tax code, so neither the
change feed nor the row hashes would look at the invoices written with the old code again: they
stayed wrong in QBO, even after the mapping was set back, until each sale was edited. A mapping
change now leaves a re-plan marker; the next push plans every record of the entities it reaches
and writes only those whose QBO body moved.
"""

from __future__ import annotations

import dagster as dg
import sqlalchemy as sa
from pushbed import PushBed
from test_R6_R10_edits_after_create import _push

from qbo_pipelines.defs.push import companies
from qbo_pipelines.demo.setup import choice_id
from qbo_pipelines.mapping import repository
from qbo_pipelines.status import company_status, render
from qbo_pipelines.sync import pipeline
from qbo_pipelines.sync.engine import feed

RATE = "Zero rated"  # mapped to Exempt by the demo; NON charges no tax either (totals unchanged)


def _codes_of_rate_lines(bed: PushBed, rate_id: str) -> dict[tuple[str, str], list[str]]:
    """(QBO entity, id) -> the tax codes of its lines, for every synced sale with a line of the
    rate (invoices, and credit notes: sales whose total is negative)."""
    sales = [
        str(r[0])
        for r in bed.sql(
            bed.env.source,
            "SELECT DISTINCT sale_id FROM app.sale_lines WHERE tax_rate_id = :t",
            t=int(rate_id),
        )
    ]
    ids = {
        (str(e), str(q))
        for e, q in bed.sql(
            bed.env.warehouse,
            "SELECT qbo_entity, qbo_id FROM sync.record_state WHERE realm_id = :r"
            " AND entity = 'invoices' AND status = 'synced' AND source_id = ANY(:s)",
            r=bed.realm,
            s=sales,
        )
    }
    out: dict[tuple[str, str], list[str]] = {}
    for kind in ("Invoice", "CreditMemo"):
        for sale in bed.sandbox.control.entities(bed.realm, kind):
            if (kind, sale["Id"]) in ids:
                out[(kind, sale["Id"])] = sorted(
                    str(line["SalesItemLineDetail"]["TaxCodeRef"]["value"])
                    for line in sale.get("Line", [])
                    if "TaxCodeRef" in (line.get("SalesItemLineDetail") or {})
                )
    assert len(out) == len(ids)
    return out


def _map(bed: PushBed, rate_id: str, code: str) -> None:
    """What `qbo-pipelines mappings set tax-rate` does (the CLI calls this function)."""
    repository.set_tax_rate(bed.env.warehouse, bed.realm, rate_id, RATE, code, by="test")


def test_R12_a_tax_rate_mapped_again_rewrites_the_invoices_that_used_it(
    push_bed: PushBed, dagster_instance: dg.DagsterInstance
) -> None:
    bed = push_bed
    dagster_instance.add_dynamic_partitions(companies.name, [bed.realm])
    _push(bed, dagster_instance)
    [(rate_id,)] = bed.sql(
        bed.env.source, "SELECT id::text FROM app.tax_rates WHERE name = :n", n=RATE
    )
    exempt = choice_id(bed.env.warehouse, bed.realm, "tax_codes", "Exempt")
    non = choice_id(bed.env.warehouse, bed.realm, "tax_codes", "NON")
    before = _codes_of_rate_lines(bed, rate_id)
    assert before, "the demo has synced sales with a zero-rated line"
    assert all(exempt in codes and non not in codes for codes in before.values()), before
    # Exempt is also the default code of lines with no rate: the lines of the rate are counted
    # from the source, and exactly that many Exempt codes become NON
    rate_lines = {
        str(sale): int(n)
        for sale, n in bed.sql(
            bed.env.source,
            "SELECT sale_id, count(*) FROM app.sale_lines WHERE tax_rate_id = :t GROUP BY 1",
            t=int(rate_id),
        )
    }

    # One of them refused by QBO meanwhile (as when QBO would not email it), its retry a day
    # away: the mapping change re-plans it too (found by an attack: it kept the old code).
    bed.sql(
        bed.env.warehouse,
        "UPDATE sync.record_state SET status = 'failed', error_code = '6000',"
        " retry_at = now() + interval '1 day', attempt = 1 WHERE realm_id = :r"
        " AND entity = 'invoices' AND qbo_entity = :e AND qbo_id = :q",
        r=bed.realm,
        e=min(before)[0],
        q=min(before)[1],
    )
    # Mapped to another code: every invoice using the rate is rewritten, no other invoice.
    _map(bed, rate_id, "NON")
    [report] = company_status(bed.env.warehouse, bed.env.source, bed.realm)
    assert report.replans == ["invoices"]
    assert "mappings moved:  invoices" in render([report])
    bed.sandbox.control.reset_requests()
    counts = _push(bed, dagster_instance)
    invoices = counts["pushed/qbo/invoices"]
    assert invoices["updated"] == len(before), invoices
    assert invoices["failed"] == 0, invoices
    after = _codes_of_rate_lines(bed, rate_id)
    assert set(after) == set(before)
    assert sum(c.count(non) for c in after.values()) == sum(rate_lines.values())
    assert sum(c.count(exempt) for c in after.values()) == sum(
        c.count(exempt) for c in before.values()
    ) - sum(rate_lines.values())
    for entity in ("customers", "items", "payments", "bills"):  # the mapping reaches none
        assert counts[f"pushed/qbo/{entity}"].get("updated", 0) == 0, counts

    # The marker is gone: the next push with nothing changed makes no call.
    bed.sandbox.control.reset_requests()
    _push(bed, dagster_instance)
    assert bed.write_calls() == 0
    [report] = company_status(bed.env.warehouse, bed.env.source, bed.realm)
    assert report.replans == []

    # Set back (the D5 case): the invoices follow it back.
    _map(bed, rate_id, "Exempt")
    counts = _push(bed, dagster_instance)
    assert counts["pushed/qbo/invoices"]["updated"] == len(before), counts
    assert _codes_of_rate_lines(bed, rate_id) == before

    # Writing the same mapping again (the demo re-applies its mappings each run) changes
    # nothing, so it leaves no marker and costs no re-plan.
    _map(bed, rate_id, "Exempt")
    with bed.env.warehouse.connect() as conn:
        markers = conn.execute(
            sa.text("SELECT count(*) FROM sync.cursors WHERE realm_id = :r AND name LIKE :n"),
            {"r": bed.realm, "n": "push:%:replan"},
        ).scalar_one()
    assert markers == 0


def test_R12_the_direct_push_re_plans_after_a_mapping_change_too(
    push_bed: PushBed, dagster_instance: dg.DagsterInstance
) -> None:
    """The library path the reconciliation's repairs and backfills take (no staged snapshot)
    honours the marker the same way, and clears it."""
    bed = push_bed
    dagster_instance.add_dynamic_partitions(companies.name, [bed.realm])
    _push(bed, dagster_instance)
    [(rate_id,)] = bed.sql(
        bed.env.source, "SELECT id::text FROM app.tax_rates WHERE name = :n", n=RATE
    )
    before = _codes_of_rate_lines(bed, rate_id)
    _map(bed, rate_id, "NON")
    report = pipeline.push(bed.env, bed.realm, "invoices")
    assert report.counts["updated"] == len(before), report.counts
    assert feed.replan_requested(bed.env.warehouse, bed.realm, "invoices") is None
    assert pipeline.push(bed.env, bed.realm, "invoices").counts["updated"] == 0


def test_R12_R18_invoices_qbo_would_not_email_are_updated_and_their_sends_keep_their_time(
    push_bed: PushBed, dagster_instance: dg.DagsterInstance
) -> None:
    """QBO refused to email some invoices (the sandbox's emails a day: here 2); their send is
    tried again a day later. Meanwhile their sales are edited in the source, then a mapping
    change re-plans every invoice: each run writes the updates, and leaves the sends waiting
    for their own retry time, with their reason and fix. Before, an update made the record
    "synced" and the send went out again at once, refused again (89 such calls in the demo)."""
    bed = push_bed
    dagster_instance.add_dynamic_partitions(companies.name, [bed.realm])
    bed.sandbox.control.set_throttle(emails_per_day=2)
    _push(bed, dagster_instance)
    waiting_sql = (
        "SELECT source_id, qbo_id, retry_at, error_message, fix FROM sync.record_state"
        " WHERE realm_id = :r AND entity = 'invoices' AND status = 'failed'"
        " AND sent_at IS NULL AND send_retry_at > now() ORDER BY source_id"
    )
    waiting = bed.sql(bed.env.warehouse, waiting_sql, r=bed.realm)
    assert waiting, "more invoices to email than the sandbox's 2 a day"
    assert all("did not email" in str(w.error_message) for w in waiting)

    def sends() -> list[dict[str, object]]:
        return [r for r in bed.sandbox.control.requests(bed.realm) if "send" in str(r)]

    # A source edit of each: the updates are written, no send is tried.
    bed.sql(
        bed.env.source,
        "UPDATE app.sales SET memo = 'edited while its email waits' WHERE id = ANY(:s)",
        s=[int(w.source_id) for w in waiting],
    )
    bed.sandbox.control.reset_requests()
    counts = _push(bed, dagster_instance)
    assert counts["pushed/qbo/invoices"]["updated"] == len(waiting), counts
    assert sends() == []
    assert bed.sql(bed.env.warehouse, waiting_sql, r=bed.realm) == waiting
    for w in waiting:
        note = _qbo_object(bed, "Invoice", str(w.qbo_id)).get("PrivateNote")
        assert note == "edited while its email waits", note

    # A mapping change re-plans every invoice of the rate: the same.
    [(rate_id,)] = bed.sql(
        bed.env.source, "SELECT id::text FROM app.tax_rates WHERE name = :n", n=RATE
    )
    _map(bed, rate_id, "NON")
    bed.sandbox.control.reset_requests()
    _push(bed, dagster_instance)
    assert sends() == []
    assert bed.sql(bed.env.warehouse, waiting_sql, r=bed.realm) == waiting

    # A sale deleted meanwhile: its invoice is deleted in QBO by the next run, whatever its
    # send waits for (the send's day-long backoff held the delete back, found by an attack).
    unpaid = [
        w
        for w in waiting
        if not bed.sql(
            bed.env.source, "SELECT 1 FROM app.receipts WHERE sale_id = :s", s=int(w.source_id)
        )
    ]
    gone = unpaid[0]
    bed.sql(bed.env.source, "DELETE FROM app.sales WHERE id = :s", s=int(gone.source_id))
    _push(bed, dagster_instance)
    [(status, deleted)] = bed.sql(
        bed.env.warehouse,
        "SELECT status, deleted_in_qbo FROM sync.record_state WHERE realm_id = :r"
        " AND entity = 'invoices' AND source_id = :s",
        r=bed.realm,
        s=str(gone.source_id),
    )
    assert (status, deleted) == ("deleted", True)
    live = bed.sandbox.control.entities(bed.realm, "Invoice")
    assert str(gone.qbo_id) not in {i["Id"] for i in live if i.get("status") != "Deleted"}
    waiting = [w for w in waiting if w.source_id != gone.source_id]

    # An email no longer asked for: nothing waits for QBO, the invoice is in step (found by
    # an attack: it stayed failed for good, listed by status and due for a retry forever).
    unasked = waiting[0]
    bed.sql(
        bed.env.source,
        "UPDATE app.sales SET send_requested = false WHERE id = :s",
        s=int(unasked.source_id),
    )
    bed.sandbox.control.reset_requests()
    _push(bed, dagster_instance)
    assert sends() == []
    [(status, send_retry_at)] = bed.sql(
        bed.env.warehouse,
        "SELECT status, send_retry_at FROM sync.record_state WHERE realm_id = :r"
        " AND entity = 'invoices' AND source_id = :s",
        r=bed.realm,
        s=str(unasked.source_id),
    )
    assert (status, send_retry_at) == ("synced", None)
    waiting = waiting[1:]

    # Once the retry is due, the sensor's run (any push) emails them, within the day's limit.
    bed.sql(
        bed.env.warehouse,
        "UPDATE sync.record_state SET send_retry_at = now() - interval '1 second',"
        " retry_at = now() - interval '1 second' WHERE realm_id = :r AND source_id = ANY(:s)"
        " AND entity = 'invoices'",
        r=bed.realm,
        s=[str(w.source_id) for w in waiting],
    )
    bed.sandbox.control.set_throttle(emails_per_day=None)
    _push(bed, dagster_instance)
    sent = bed.sql(
        bed.env.warehouse,
        "SELECT count(*) FROM sync.record_state WHERE realm_id = :r AND entity = 'invoices'"
        " AND source_id = ANY(:s) AND sent_at IS NOT NULL AND status = 'synced'"
        " AND send_retry_at IS NULL",
        r=bed.realm,
        s=[str(w.source_id) for w in waiting],
    )
    assert sent[0][0] == len(waiting)


def _qbo_object(bed: PushBed, entity: str, qbo_id: str) -> dict[str, object]:
    return next(o for o in bed.sandbox.control.entities(bed.realm, entity) if o["Id"] == qbo_id)
