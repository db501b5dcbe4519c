"""Issue 9, R40: the push job's ``pushed/qbo/*`` writes exactly what ``staged/qbo/*`` staged and
Great Expectations checked in the same run: the real ``push_job`` on a dagster-postgres
instance, the sandbox over real HTTP, real Postgres."""

from __future__ import annotations

from typing import Any

import dagster as dg
from pushbed import PushBed
from test_push_assets import _resources

from qbo_pipelines import entities as catalogue
from qbo_pipelines.defs import runner
from qbo_pipelines.defs.push import PUSH_ASSETS, companies, push_job
from qbo_pipelines.sync.engine import feed

TOO_LONG_PHONE = "+1 555 0100 extension 1234567890"  # QBO keeps 30 characters


def _run_push_job(
    bed: PushBed, instance: dg.DagsterInstance, mode: str = "incremental"
) -> dg.ExecuteInProcessResult:
    defs = dg.Definitions(assets=PUSH_ASSETS, jobs=[push_job], resources=_resources(bed))
    instance.add_dynamic_partitions(companies.name, [bed.realm])
    job = defs.resolve_job_def("push_job")
    return job.execute_in_process(
        partition_key=bed.realm, instance=instance, run_config=runner.push_run_config(mode)
    )


def _extracts(result: dg.ExecuteInProcessResult) -> dict[str, tuple[int, int]]:
    """raw/source/<entity> -> (records read, records left out as in step)."""
    out: dict[str, tuple[int, int]] = {}
    for event in result.get_asset_materialization_events():
        key = event.asset_key.path
        if key[:2] == ["raw", "source"]:
            meta = event.materialization.metadata
            out[key[2]] = (int(meta["read"].value), int(meta["unchanged"].value))  # type: ignore[arg-type]
    return out


def _rows(bed: PushBed, text: str, **params: object) -> list[Any]:
    return bed.sql(bed.env.warehouse, text, **params)


def test_R40_pushed_writes_the_staged_snapshot_and_holds_what_the_suite_failed(
    push_bed: PushBed, dagster_instance: dg.DagsterInstance
) -> None:
    bed = push_bed
    # A contact with a sale (so it is pushed, R4) whose phone is longer than QBO keeps.
    (bad,) = bed.sql(
        bed.env.source,
        "UPDATE app.contacts SET phone = :p WHERE id = (SELECT min(contact_id) FROM app.sales)"
        " RETURNING id",
        p=TOO_LONG_PHONE,
    )
    bad_id = str(bad[0])

    result = _run_push_job(bed, dagster_instance)
    assert result.success
    run_id = result.run_id

    # The GX check on staged customers failed on exactly that row; the push held it with the
    # reason and the fix, and synced the rest of the same batch.
    checks = {e.asset_key.to_user_string(): e for e in result.get_asset_check_evaluations()}
    assert checks["staged/qbo/customers"].passed is False
    assert bad_id in str(checks["staged/qbo/customers"].metadata["failing_rows"].value)
    held = _rows(
        bed,
        "SELECT rule, fix FROM sync.quarantine WHERE realm_id = :r AND entity = 'customers'"
        " AND source_id = :s AND resolved_at IS NULL",
        r=bed.realm,
        s=bad_id,
    )
    assert [h.rule for h in held] == ["customer.phone.too_long"]
    assert held[0].fix
    states = {
        str(s.source_id): s
        for s in _rows(
            bed,
            "SELECT source_id, status, qbo_id, source_hash FROM sync.record_state"
            " WHERE realm_id = :r AND entity = 'customers'",
            r=bed.realm,
        )
    }
    assert states[bad_id].status == "held"
    assert states[bad_id].qbo_id is None
    synced = {s: st for s, st in states.items() if st.status == "synced"}
    assert len(synced) > 10

    # Every entity: the push planned exactly the rows this run staged (each staged row has a
    # state whose hash is the staged hash; QBO holds the staged values), and moved the feed to
    # the window its own extract covered.
    for entity in catalogue.push_order():
        window = _rows(
            bed,
            "SELECT * FROM sync.run_windows WHERE run_id = :run AND realm_id = :r AND entity = :e",
            run=run_id,
            r=bed.realm,
            e=entity.name,
        )[0]
        assert window.staged == window.extracted
        assert window.pushed_at is not None
        position = _rows(
            bed,
            "SELECT value FROM sync.cursors WHERE realm_id = :r AND name = :n",
            r=bed.realm,
            n=feed.cursor_name("push", entity.name),
        )
        assert int(position[0].value) == window.feed_hi
        unplanned = _rows(
            bed,
            f"SELECT s.source_id FROM staging.{entity.name} s LEFT JOIN sync.record_state st"  # noqa: S608
            " ON st.realm_id = s.realm_id AND st.entity = :e AND st.source_id = s.source_id"
            " WHERE s.realm_id = :r AND s.run_id = :run AND (st.source_id IS NULL OR"
            " (st.status = 'synced' AND st.source_hash IS DISTINCT FROM s.content_hash))",
            e=entity.name,
            r=bed.realm,
            run=run_id,
        )
        assert unplanned == [], entity.name
    qbo = {c["Id"]: c for c in bed.sandbox.control.entities(bed.realm, "Customer")}
    staged_names = {
        str(s): str(n)
        for s, n in _rows(
            bed,
            "SELECT source_id, data->>'display_name' FROM staging.customers"
            " WHERE realm_id = :r AND run_id = :run",
            r=bed.realm,
            run=run_id,
        )
    }
    for sid, st in synced.items():
        assert qbo[st.qbo_id]["DisplayName"] == staged_names[sid]
    ledger_runs = {
        str(r[0])
        for r in _rows(bed, "SELECT DISTINCT run_id FROM sync.ledger WHERE run_id IS NOT NULL")
    }
    assert ledger_runs == {run_id}

    # Fixed in the source: the next job run syncs it, and a run after that writes nothing.
    bed.sql(
        bed.env.source, "UPDATE app.contacts SET phone = '+1 555 0100' WHERE id = :i", i=int(bad_id)
    )
    again = _run_push_job(bed, dagster_instance)
    assert again.success
    (state,) = _rows(
        bed,
        "SELECT status, qbo_id FROM sync.record_state WHERE realm_id = :r AND entity ="
        " 'customers' AND source_id = :s",
        r=bed.realm,
        s=bad_id,
    )
    assert state.status == "synced"
    fixed = {c["Id"]: c for c in bed.sandbox.control.entities(bed.realm, "Customer")}
    assert fixed[state.qbo_id]["PrimaryPhone"]["FreeFormNumber"] == "+1 555 0100"


def _states_by_entity(bed: PushBed, where: str) -> dict[str, int]:
    """Entity -> how many of the company's state rows match ``where``."""
    rows = _rows(
        bed,
        "SELECT entity, count(*) FROM sync.record_state WHERE realm_id = :r"  # noqa: S608
        f" AND {where} GROUP BY entity",
        r=bed.realm,
    )
    return {str(e): int(n) for e, n in rows}


def test_R33_a_full_push_job_reads_only_the_records_whose_source_row_moved(
    push_bed: PushBed, dagster_instance: dg.DagsterInstance
) -> None:
    """mode=full looks at every record, but Postgres hashes the source rows and only records
    whose row moved since they were last in step are read, staged and planned; a row changed
    A -> B -> A is planned again, never taken for "unchanged since A"."""
    bed = push_bed
    assert _run_push_job(bed, dagster_instance).success  # the first run reads everything
    synced = _states_by_entity(bed, "status = 'synced'")
    assert synced["customers"] > 10
    assert synced["invoices"] > 10
    calls = bed.write_calls()

    quiet = _run_push_job(bed, dagster_instance, "full")
    assert quiet.success
    extracts = _extracts(quiet)
    # held back or skipped: planned again on every full run
    others = _states_by_entity(bed, "status <> 'synced'")
    for entity, (read, unchanged) in extracts.items():
        assert (read, unchanged) == (others.get(entity, 0), synced.get(entity, 0)), entity
    assert bed.write_calls() == calls

    (contact,) = _rows(
        bed,
        "SELECT source_id, qbo_id FROM sync.record_state WHERE realm_id = :r"
        " AND entity = 'customers' AND status = 'synced' ORDER BY source_id LIMIT 1",
        r=bed.realm,
    )
    set_phone = "UPDATE app.contacts SET phone = :p WHERE id = :i"

    def phone_in_qbo() -> str | None:
        found = {c["Id"]: c for c in bed.sandbox.control.entities(bed.realm, "Customer")}
        return (found[contact.qbo_id].get("PrimaryPhone") or {}).get("FreeFormNumber")

    bed.sql(bed.env.source, set_phone, p="+1 555 0101", i=int(contact.source_id))
    edited = _run_push_job(bed, dagster_instance, "full")
    assert edited.success
    assert _extracts(edited)["customers"] == (
        others["customers"] + 1,
        synced["customers"] - 1,
    )
    assert phone_in_qbo() == "+1 555 0101"

    # B pushed by an incremental run, then the row set back to A: a full run writes A again.
    bed.sql(bed.env.source, set_phone, p="+1 555 0202", i=int(contact.source_id))
    assert _run_push_job(bed, dagster_instance).success
    assert phone_in_qbo() == "+1 555 0202"
    bed.sql(bed.env.source, set_phone, p="+1 555 0101", i=int(contact.source_id))
    bed.sql(bed.env.warehouse, "DELETE FROM sync.cursors WHERE realm_id = :r", r=bed.realm)
    back = _run_push_job(bed, dagster_instance, "full")
    assert back.success
    assert _extracts(back)["customers"][0] == others["customers"] + 1
    assert phone_in_qbo() == "+1 555 0101"
