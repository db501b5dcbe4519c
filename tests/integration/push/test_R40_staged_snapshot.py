"""Issue 9: ``pushed/*`` writes exactly the snapshot ``staged/*`` checked (R40).

The push job's three steps per entity are driven here through the library functions its assets
call (:func:`pipeline.extract`, :func:`pipeline.stage`, :func:`pipeline.push_staged`), so a
source edit can land between two steps of one run; the sandbox over real HTTP and real Postgres.
The Dagster job itself is driven in tests/dagster/test_R40_pushed_writes_the_staged_snapshot.py.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa
from explain import rows_scanned
from pushbed import PushBed

from qbo_pipelines import entities as catalogue
from qbo_pipelines.canonical import (
    CanonicalAddress,
    CanonicalBill,
    CanonicalBillLine,
    CanonicalCustomer,
    CanonicalReceipt,
    CanonicalSale,
    CanonicalSaleLine,
    InvalidValue,
    SourceId,
    as_json,
    content_hash,
    json_text,
)
from qbo_pipelines.quality import constraints
from qbo_pipelines.source_app import demo
from qbo_pipelines.source_app.connector import SourceAppConnector
from qbo_pipelines.sync import pipeline, staged
from qbo_pipelines.sync.engine import feed
from qbo_pipelines.warehouse import loaders, migrations

# --------------------------------------------------------------------------- the decoder


def _round_trip(record: Any) -> Any:
    """as_json -> JSON text -> decode, as the warehouse stores and reads it."""
    text = json.dumps(as_json(record), ensure_ascii=False)
    return staged.decode(type(record), json.loads(text))


HOSTILE_TEXT = (
    'O\'Brien "Quoted" \\ back\\slash',
    "emoji 🧾🏳️‍🌈 and RTL שלום عربى",
    "bell \x07 escape \x1b tab \t newline \n line sep \u2028",
    "   ",
    "",
    "x" * 5000,
)
HOSTILE_MONEY = (
    Decimal("-0"),
    Decimal("0.00"),
    Decimal("1E+5"),
    Decimal("123456789012345678901234.123456789"),
    Decimal("0.000000001"),
    Decimal("-42.10"),
    Decimal("NaN"),
    Decimal("Infinity"),
)


def _hostile_records() -> list[Any]:
    when = datetime(
        2024, 2, 29, 23, 59, 59, 999999, tzinfo=timezone(timedelta(hours=5, minutes=30))
    )
    out: list[Any] = []
    for i, (text, money) in enumerate(zip(HOSTILE_TEXT * 2, HOSTILE_MONEY, strict=False)):
        out.append(
            CanonicalCustomer(
                source_id=SourceId(f"c{i}"),
                display_name=text,
                company_name=text or None,
                phone=text,
                bill_addr=CanonicalAddress(line1=text, country="Ελλάδα"),
                has_sale=bool(i % 2),
                organisation_id=SourceId("7") if i % 2 else None,
                origin="qbo" if i % 3 == 0 else "source",
                updated_at=when,
            )
        )
        out.append(
            CanonicalSale(
                source_id=SourceId(f"s{i}"),
                doc_number=text or None,
                customer_source_id=None if i % 2 else SourceId("3"),
                txn_date=date(1, 1, 1) if i % 2 else date(9999, 12, 31),
                due_date=date.max,
                currency="EUR",
                memo=text,
                send_requested=True,
                lines=(
                    CanonicalSaleLine(
                        line_no=1,
                        kind="item",
                        item_source_id=SourceId("9"),
                        qty=money,
                        unit_price=money,
                        amount=money,
                        group_name=text,
                    ),
                    CanonicalSaleLine(
                        line_no=2, kind="discount", amount=-money, discount_percent=Decimal("12.5")
                    ),
                    CanonicalSaleLine(line_no=3, kind="tax", amount=money, tax_rate_source_id=None),
                ),
                subtotal=money,
                total=money,
                invalid=(InvalidValue(field="txn_date", raw="infinity", problem=text),),
                updated_at=when.astimezone(UTC),
            )
        )
        out.append(
            CanonicalReceipt(
                source_id=SourceId(f"r{i}"),
                sale_source_id=None,
                customer_source_id=None,
                amount=money,
                received_on=date(2000, 2, 29),
                reference=text,
                invalid=(),
            )
        )
        out.append(
            CanonicalBill(
                source_id=SourceId(f"b{i}"),
                vendor_source_id=SourceId("1"),
                doc_number=None,
                txn_date=date(1970, 1, 1),
                lines=tuple(
                    CanonicalBillLine(line_no=n, concept=text, amount=money) for n in range(3)
                ),
                total=money,
            )
        )
    return out


def test_decode_round_trips_hostile_values_exactly() -> None:
    for record in _hostile_records():
        back = _round_trip(record)
        assert type(back) is type(record)
        assert content_hash(back) == content_hash(record), record.source_id
        assert as_json(back) == as_json(record)
        if record.updated_at is not None:  # the same instant, aware
            assert back.updated_at == record.updated_at
            assert back.updated_at.tzinfo is not None


_WRONG: tuple[Any, ...] = (None, 1.5, 7, True, "x", "", [], ["x"], {}, {"a": 1}, "2024-13-01")


def _outcome(decoder: Callable[[Any], Any], data: Any) -> tuple[Any, ...]:
    try:
        return ("ok", as_json(decoder(data)))
    except Exception as err:  # noqa: BLE001 - the outcome itself is compared
        return ("error", type(err).__name__, str(err))


def test_the_generated_decoder_decides_as_the_checked_one() -> None:
    """Each class's generated decoder (every field converted inline) gives what the checked,
    field-by-field decoder gives: the same record, or the same error, for every field of every
    hostile record replaced by each wrong value, in the record and in its lines."""
    compared = 0
    for record in _hostile_records():
        data = json.loads(json_text(record))
        decoder = staged._class_decoder(type(record))
        assert _outcome(decoder, data) == _outcome(decoder.checked, data)
        variants = [{**data, key: bad} for key in data for bad in _WRONG]
        for key, value in data.items():
            if isinstance(value, list) and value and isinstance(value[0], dict):
                variants += [
                    {**data, key: [{**value[0], k: bad}, *value[1:]]}
                    for k in value[0]
                    for bad in _WRONG
                ]
        variants += [{k: v for k, v in data.items() if k != "source_id"}, {**data, "extra": 1}]
        for variant in variants:
            assert _outcome(decoder, variant) == _outcome(decoder.checked, variant), variant
            compared += 1
    assert compared > 1000


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"source_id": "1", "display_name": "A", "shoe_size": 9}, "unknown field"),
        ({"display_name": "A"}, "missing field(s) source_id"),
        ({"source_id": 1, "display_name": "A"}, "expected str"),
        ({"source_id": "1", "display_name": "A", "origin": "mars"}, "is not one of"),
        (
            {"source_id": "1", "display_name": "A", "updated_at": "2024-01-01T00:00:00"},
            "with a time zone",
        ),
        ({"source_id": "1", "display_name": "A", "has_sale": 1}, "expected bool"),
        ({"source_id": "1", "display_name": "A", "bill_addr": ["x"]}, "expected an object"),
    ],
)
def test_decode_refuses_json_that_is_not_its_type(data: dict[str, Any], message: str) -> None:
    with pytest.raises(staged.DecodeError, match=message.replace("(", r"\(").replace(")", r"\)")):
        staged.decode(CanonicalCustomer, data)


def test_decode_round_trips_every_demo_record_through_postgres(
    temp_database: Callable[[str], sa.Engine],
) -> None:
    """Every record the demo app generates (all entities, its hostile mess included) comes back
    from raw_source's jsonb with the same content hash."""
    source = temp_database("snapsrc")
    migrations.migrate_source_app(source)
    demo.seed(source, contacts=60, sales=120, workers=6, seed_value=5)
    warehouse = temp_database("snapwh")
    migrations.migrate_warehouse(warehouse)
    reader = SourceAppConnector(source)
    checked = 0
    for entity in (e.name for e in catalogue.SOURCE):
        originals = {str(r.source_id): r for chunk in reader.iter_entity(entity) for r in chunk}
        with warehouse.begin() as conn:
            loaders.write_raw_source(
                conn,
                entity,
                loaders.raw_source_rows(entity, originals.values(), "rt", realm_id="9"),
            )
        back = [
            r for page in staged.iter_raw(warehouse, "9", entity, "rt", 7) for r in page.records
        ]
        assert sorted(str(r.source_id) for r in back) == sorted(originals)
        for record in back:
            original = originals[str(record.source_id)]
            assert type(record) is type(original)
            assert content_hash(record) == content_hash(original)
            assert as_json(record) == as_json(original)
            assert record == replace(original, updated_at=record.updated_at)
            checked += 1
    assert checked > 200


# --------------------------------------------------------------------------- the push job's steps


def _source(bed: PushBed, text: str, **params: object) -> None:
    bed.sql(bed.env.source, text, **params)


def _settle(bed: PushBed) -> None:
    """Wait until the source's feed horizon has passed every transaction so far: the test
    Postgres server is shared, and an open transaction in any of its databases holds the
    cluster-wide horizon back (a later run then reads the change: a delay, never a loss)."""
    mark = int(bed.sql(bed.env.source, "SELECT txid_current()")[0][0])
    deadline = time.monotonic() + 300
    while bed.env.connector.feed_horizon() <= mark:
        assert time.monotonic() < deadline, "a transaction on the test server stays open"
        time.sleep(0.2)


def _steps(
    bed: PushBed,
    run_id: str,
    *,
    after_extract: Callable[[], None] | None = None,
    after_stage: Callable[[], None] | None = None,
) -> dict[str, Any]:
    """One push job run, step by step in the job's order: every extract, every stage, then
    every push (each after its dependencies), with a hook between the steps. Changes made
    before it are settled first (see :func:`_settle`)."""
    _settle(bed)
    order = [e.name for e in catalogue.push_order()]
    for name in order:
        pipeline.extract(bed.env, bed.realm, name, run_id=run_id)
    if after_extract:
        after_extract()
    for name in order:
        pipeline.stage(bed.env, name, run_id=run_id, realm_id=bed.realm)
    if after_stage:
        after_stage()
    return {name: pipeline.push_staged(bed.env, bed.realm, name, run_id=run_id) for name in order}


def _phone_in_qbo(bed: PushBed, qbo_id: str) -> str | None:
    found = {c["Id"]: c for c in bed.sandbox.control.entities(bed.realm, "Customer")}[qbo_id]
    return (found.get("PrimaryPhone") or {}).get("FreeFormNumber")


def _synced_contacts(bed: PushBed, n: int) -> list[tuple[str, str]]:
    rows = bed.sql(
        bed.env.warehouse,
        "SELECT source_id, qbo_id FROM sync.record_state WHERE realm_id = :r AND entity ="
        " 'customers' AND status = 'synced' AND created_by = 'sync'"
        " ORDER BY length(source_id), source_id LIMIT :n",
        r=bed.realm,
        n=n,
    )
    return [(str(s), str(q)) for s, q in rows]


def _position(bed: PushBed, entity: str) -> int:
    rows = bed.sql(
        bed.env.warehouse,
        "SELECT value FROM sync.cursors WHERE realm_id = :r AND name = :n",
        r=bed.realm,
        n=feed.cursor_name("push", entity),
    )
    return int(rows[0][0])


def _window(bed: PushBed, run_id: str, entity: str) -> sa.Row[Any]:
    rows = bed.sql(
        bed.env.warehouse,
        "SELECT * FROM sync.run_windows WHERE run_id = :run AND realm_id = :r AND entity = :e",
        run=run_id,
        r=bed.realm,
        e=entity,
    )
    return rows[0]


def test_R40_an_edit_between_the_steps_of_a_run_is_pushed_by_the_next_run_never_skipped(
    push_bed: PushBed,
) -> None:
    bed = push_bed
    _steps(bed, "base")
    (x_id, x_qbo), (y_id, y_qbo), (z_id, z_qbo) = _synced_contacts(bed, 3)
    before = {q: _phone_in_qbo(bed, q) for q in (x_qbo, y_qbo, z_qbo)}
    set_phone = "UPDATE app.contacts SET phone = :p WHERE id = :i"
    _source(bed, set_phone, p="+1 555 0100", i=int(x_id))  # before the run: in its snapshot

    def after_extract() -> None:  # the stage checks what the extract read, not this
        _source(bed, set_phone, p="+1 555 0101", i=int(x_id))
        _source(bed, set_phone, p="+1 555 0200", i=int(y_id))

    def after_stage() -> None:  # the push writes what was staged, not this
        _source(bed, set_phone, p="+1 555 0300", i=int(z_id))

    reports = _steps(bed, "edited", after_extract=after_extract, after_stage=after_stage)

    # This run pushed exactly its snapshot: X as extracted, Y and Z untouched.
    assert _phone_in_qbo(bed, x_qbo) == "+1 555 0100"
    assert _phone_in_qbo(bed, y_qbo) == before[y_qbo]
    assert _phone_in_qbo(bed, z_qbo) == before[z_qbo]
    assert reports["customers"].counts["updated"] == 1
    staged_x = bed.sql(
        bed.env.warehouse,
        "SELECT s.content_hash, st.source_hash, s.data->>'phone' FROM staging.customers s"
        " JOIN sync.record_state st ON st.realm_id = s.realm_id AND st.entity = 'customers'"
        " AND st.source_id = s.source_id WHERE s.realm_id = :r AND s.source_id = :s",
        r=bed.realm,
        s=x_id,
    )[0]
    assert staged_x[2] == "+1 555 0100"
    assert staged_x[0] == staged_x[1]  # the synced base is the staged record
    # The feed moved to the window the extract covered, which ends before the later edits.
    window = _window(bed, "edited", "customers")
    assert _position(bed, "customers") == window.feed_hi == reports["customers"].cursor
    assert window.pushed_at is not None
    assert window.staged == window.extracted

    reports = _steps(bed, "next")
    assert _phone_in_qbo(bed, x_qbo) == "+1 555 0101"
    assert _phone_in_qbo(bed, y_qbo) == "+1 555 0200"
    assert _phone_in_qbo(bed, z_qbo) == "+1 555 0300"
    assert reports["customers"].counts["updated"] == 3
    quiet = _steps(bed, "quiet")
    assert sum(r.counts["updated"] + r.counts["created"] for r in quiet.values()) == 0


def test_R40_a_source_delete_after_the_extract_waits_for_the_next_run(push_bed: PushBed) -> None:
    """A sale deleted after the extract: this run pushes the staged version; the next run
    carries the delete out (the ids the extract flagged deleted are this run's deletes)."""
    bed = push_bed
    _steps(bed, "base")
    rows = bed.sql(
        bed.env.warehouse,
        "SELECT source_id, qbo_id FROM sync.record_state WHERE realm_id = :r AND entity ="
        " 'invoices' AND qbo_entity = 'Invoice' AND status = 'synced' ORDER BY source_id",
        r=bed.realm,
    )
    paid = {str(r[0]) for r in bed.sql(bed.env.source, "SELECT sale_id FROM app.receipts")}
    sale, invoice = next((str(s), str(q)) for s, q in rows if str(s) not in paid)

    def delete_sale() -> None:
        _source(bed, "DELETE FROM app.sale_lines WHERE sale_id = :s", s=int(sale))
        _source(bed, "DELETE FROM app.sales WHERE id = :s", s=int(sale))

    _steps(bed, "deleting", after_stage=delete_sale)
    ids = {e["Id"] for e in bed.sandbox.control.entities(bed.realm, "Invoice")}
    assert invoice in ids
    reports = _steps(bed, "deleted")
    assert reports["invoices"].counts["deleted"] == 1
    assert sale in _window(bed, "deleted", "invoices").deleted_ids
    ids = {e["Id"] for e in bed.sandbox.control.entities(bed.realm, "Invoice")}
    assert invoice not in ids


def test_R40_a_push_without_a_staged_snapshot_is_refused_with_the_step_to_run(
    push_bed: PushBed,
) -> None:
    bed = push_bed
    customers = bed.count("Customer")
    with pytest.raises(staged.NoSnapshotError, match="materialize raw/source/customers"):
        pipeline.push_staged(bed.env, bed.realm, "customers", run_id="nothing")
    pipeline.extract(bed.env, bed.realm, "customers", run_id="unstaged")
    with pytest.raises(staged.NoSnapshotError, match="did not stage"):
        pipeline.push_staged(bed.env, bed.realm, "customers", run_id="unstaged")
    assert bed.count("Customer") == customers  # nothing written
    assert not bed.sql(bed.env.warehouse, "SELECT 1 FROM sync.record_state")
    # A run re-executed from its failed push step has no snapshot of its own: it pushes the
    # one of the run it re-executes (the asset names the parent and root runs).
    pipeline.stage(bed.env, "customers", run_id="unstaged", realm_id=bed.realm)
    again = pipeline.push_staged(
        bed.env, bed.realm, "customers", run_id="re-executed", snapshot_of=["unstaged"]
    )
    assert again.counts["created"] + again.counts["matched"] > 0
    assert bed.count("Customer") > customers
    runs = {
        str(r[0]) for r in bed.sql(bed.env.warehouse, "SELECT last_run_id FROM sync.record_state")
    }
    assert runs == {"re-executed"}


def _staged_rows(bed: PushBed, entity: str, run_id: str) -> list[tuple[str, ...]]:
    """A run's staged rows as text; numbers without trailing zeros (a record decoded from its
    JSON carries 255 where the record read from the source carried 255.00: equal values)."""
    types = {c.name: c.sql_type for c in constraints.TABLES[entity].columns}
    cols = ", ".join(
        f"trim_scale({c})::text" if types[c] == "numeric" else f"{c}::text"
        for c in loaders.staged_columns(entity)
    )
    rows = bed.sql(
        bed.env.warehouse,
        f"SELECT source_id, data::text, content_hash, {cols} FROM staging.{entity}"  # noqa: S608
        " WHERE realm_id = :r AND run_id = :run ORDER BY source_id",
        r=bed.realm,
        run=run_id,
    )
    return [tuple(str(v) for v in row) for row in rows]


def test_R40_a_run_extracted_before_the_staged_values_were_kept_stages_the_same(
    push_bed: PushBed,
) -> None:
    """The stage copies a run's raw rows into staging in Postgres, casting the values the
    extract computed; raw rows an older version extracted (no staged values) are staged from
    their records instead, to the same rows, and pushed."""
    bed = push_bed
    for entity in ("customers", "invoices"):
        pipeline.extract(bed.env, bed.realm, entity, run_id="kept")
        assert pipeline.stage(bed.env, entity, run_id="kept", realm_id=bed.realm).staged > 0
        now = _staged_rows(bed, entity, "kept")
        bed.sql(
            bed.env.warehouse,
            f"UPDATE raw_source.{entity} SET staged = NULL WHERE run_id = 'kept'",  # noqa: S608
        )
        bed.sql(bed.env.warehouse, f"DELETE FROM staging.{entity}")  # noqa: S608
        assert pipeline.stage(bed.env, entity, run_id="kept", realm_id=bed.realm).staged == len(now)
        assert _staged_rows(bed, entity, "kept") == now
    pipeline.push_staged(bed.env, bed.realm, "customers", run_id="kept")
    assert bed.count("Customer") > 0


def test_R40_a_snapshot_another_run_restaged_leaves_the_feed_for_the_next_run(
    push_bed: PushBed,
) -> None:
    """Two runs of one company interleaved (library callers can): the later stage takes the
    rows; the earlier run's push writes what is still its own and does not move the position
    past changes it did not push; the later run pushes the rest and moves it."""
    bed = push_bed
    _steps(bed, "base")
    ((x_id, x_qbo),) = _synced_contacts(bed, 1)
    _source(bed, "UPDATE app.contacts SET phone = '+1 555 0400' WHERE id = :i", i=int(x_id))
    before = _position(bed, "customers")
    _settle(bed)
    for run in ("a", "b"):
        pipeline.extract(bed.env, bed.realm, "customers", run_id=run)
        pipeline.stage(bed.env, "customers", run_id=run, realm_id=bed.realm)
    first = pipeline.push_staged(bed.env, bed.realm, "customers", run_id="a")
    assert first.counts["updated"] == 0
    assert first.cursor is None
    assert _position(bed, "customers") == before
    second = pipeline.push_staged(bed.env, bed.realm, "customers", run_id="b")
    assert second.counts["updated"] == 1
    assert _phone_in_qbo(bed, x_qbo) == "+1 555 0400"
    assert _position(bed, "customers") == _window(bed, "b", "customers").feed_hi > before



def test_issue9_a_staged_page_reads_the_states_of_its_own_rows(
    temp_database: Callable[..., sa.Engine],
) -> None:
    """The push reads a run's staged rows page by page with their sync states; a page reads
    the states of its rows, not every state before it. Before, a merge join walked the
    entity's states from the first one on every page (100k staged sales in pages of 500: 72 ms
    a page and 7 s of the read, instead of 5 ms). Hash and nested-loop joins are turned off so
    the small test company gets the merge join Postgres picks at scale."""
    warehouse = temp_database("pagewh", migrated="warehouse")
    with warehouse.begin() as conn:
        conn.exec_driver_sql(
            "INSERT INTO sync.record_state (realm_id, entity, source_id, qbo_entity, qbo_id,"
            " status, source_hash) SELECT '1', 'customers', lpad(g::text, 6, '0'), 'Customer',"
            " g::text, 'synced', 'h' FROM generate_series(1, 600) g"
        )
        conn.exec_driver_sql(
            "INSERT INTO staging.customers (realm_id, run_id, source_id, content_hash, data)"
            " SELECT '1', 'run', lpad(g::text, 6, '0'), 'x', jsonb_build_object('source_id',"
            " lpad(g::text, 6, '0'), 'display_name', 'C' || g) FROM generate_series(1, 600) g"
        )
    with warehouse.connect() as conn:
        conn.execution_options(isolation_level="AUTOCOMMIT").exec_driver_sql("ANALYZE")
    snapshot = staged.Snapshot(
        "run", "1", "customers", None, None, True, False, frozenset(), 600, 600
    )
    sql, params = staged.page_query(snapshot, 20)
    with warehouse.connect() as conn:
        for setting in ("enable_hashjoin", "enable_nestloop"):
            conn.exec_driver_sql(f"SET LOCAL {setting} = off")
        plan = conn.execute(
            sa.text(f"EXPLAIN (ANALYZE, FORMAT JSON) {sql.text}"), {**params, "after": "000400"}
        ).scalar_one()[0]["Plan"]
    assert "Merge" in json.dumps(plan)
    assert rows_scanned(plan, "record_state") <= 2 * 20
    pages = list(staged.iter_staged(warehouse, snapshot, 20))
    assert sum(p.rows for p in pages) == 600
    assert [r.display_name for r in pages[-1].records][-1] == "C600"
