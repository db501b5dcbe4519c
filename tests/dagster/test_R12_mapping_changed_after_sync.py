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
