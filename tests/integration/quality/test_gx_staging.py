"""Great Expectations on the Postgres staging tables, driven by the constraint table (R40).

The suites run in Postgres over what one company's run staged; they agree with the per-record
rules that hold records back, because both come from one table of constraints.
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Callable, Iterator
from datetime import date
from decimal import Decimal as D
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from qbo_pipelines.canonical import CanonicalAddress, CanonicalBillLine, SourceId
from qbo_pipelines.quality import constraints, gx_suites, rules
from qbo_pipelines.warehouse import loaders, migrations

sys.path.insert(0, str(Path(__file__).parents[2] / "unit" / "quality"))
from quality_factories import bill, customer, item, line, receipt, sale, vendor  # noqa: E402

REALM = "9130"

CLEAN: dict[str, list[Any]] = {
    "customers": [
        customer(),
        customer(source_id=SourceId("18"), display_name="Beta Co", email=None, billing_email=""),
    ],
    "items": [item(), item(source_id=SourceId("4"), name="Travel", kind="product")],
    "invoices": [
        sale(),
        sale(source_id=SourceId("78"), doc_number=None, due_date=None),
        # a credit note (negative total) is pushed as a CreditMemo, not held (R11)
        sale(
            source_id=SourceId("79"),
            doc_number="S-0079",
            lines=(line(1, qty=D("-1"), unit_price=D("5"), amount=D("-5.00")),),
            subtotal=D("-5.00"),
            discount_total=D("0"),
            tax_total=D("0"),
            total=D("-5.00"),
        ),
    ],
    "payments": [receipt(), receipt(source_id=SourceId("6"), sale_source_id=None, reference=None)],
    "vendors": [vendor(), vendor(source_id=SourceId("9"), display_name="Bob Builder", email=None)],
    "bills": [bill(), bill(source_id=SourceId("10"), doc_number=None, due_date=None)],
}

BAD: dict[str, list[Any]] = {
    "customers": [
        customer(),
        customer(source_id=SourceId("23"), display_name="Acme: Ltd"),
        customer(source_id=SourceId("19"), display_name="  ", email="bob@@x.example"),
        customer(source_id=SourceId("20"), display_name="A" * 499 + "😀", phone="1" * 31),
        customer(
            source_id=SourceId("21"),
            display_name="Bell\x07 Co",
            bill_addr=CanonicalAddress(line1="1 Main St", postal_code="9" * 31),
        ),
        customer(source_id=SourceId("22"), display_name="O'Brien & Sons", email=" a@b.co"),
    ],
    "items": [
        item(),
        item(source_id=SourceId("5"), name="A:B"),
        item(source_id=SourceId("6"), name="Pricey", unit_price=D("1.123456")),
        item(source_id=SourceId("7"), name="Nan", unit_price=D("NaN")),
    ],
    "invoices": [
        sale(),
        sale(source_id=SourceId("78"), total=D("70.00")),
        sale(source_id=SourceId("79"), due_date=date(2024, 4, 1)),
        sale(
            source_id=SourceId("80"),
            doc_number="S-1042",
            lines=(line(1, amount=D("40.00")),),
            subtotal=D("40.00"),
            discount_total=D("0"),
            tax_total=D("0"),
            total=D("40.00"),
        ),
        sale(
            source_id=SourceId("81"),
            doc_number="S-0081",
            lines=(),
            subtotal=D("0"),
            discount_total=D("0"),
            tax_total=D("0"),
            total=D("0"),
        ),
        sale(
            source_id=SourceId("82"),
            doc_number="S-0082",
            customer_source_id=SourceId(""),
            billing_email="ap@acme",
        ),
        sale(source_id=SourceId("83"), doc_number="   ", txn_date=date(1899, 12, 31)),
        sale(source_id=SourceId("84"), doc_number="S-0084", total=D("9E+999999")),
        sale(source_id=SourceId("85"), doc_number="S-0085", memo="x" * 4001),
    ],
    "payments": [
        receipt(),
        receipt(source_id=SourceId("6"), amount=D("0")),
        receipt(source_id=SourceId("7"), amount=D("-3")),
        receipt(source_id=SourceId("8"), amount=D("NaN"), reference="R" * 22),
        receipt(source_id=SourceId("9"), amount=D("1.005")),
    ],
    "vendors": [
        vendor(),
        vendor(source_id=SourceId("5"), display_name="Jane\tRoe", email="jane@roe"),
    ],
    "bills": [
        bill(),
        bill(
            source_id=SourceId("11"),
            total=D("-10.00"),
            lines=(CanonicalBillLine(line_no=1, concept="Refund", amount=D("-10.00")),),
        ),
        bill(source_id=SourceId("12"), vendor_source_id=SourceId(""), total=D("1.00")),
        bill(source_id=SourceId("13"), lines=(), total=D("0")),
        bill(
            source_id=SourceId("14"),
            lines=(
                CanonicalBillLine(line_no=1, concept="", amount=D("1.001")),
                CanonicalBillLine(line_no=1, concept="Dev", amount=D("2.00")),
            ),
            total=D("3.00"),
        ),
    ],
}


@pytest.fixture(scope="module")
def warehouse(
    make_database: Callable[[str], sa.Engine], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[sa.Engine]:
    engine = make_database("gxstaging")
    migrations.migrate_warehouse(engine)
    mp = pytest.MonkeyPatch()
    mp.setenv(gx_suites.ENV_DOCS_DIR, str(tmp_path_factory.mktemp("gx_docs")))
    mp.setenv(gx_suites.ENV_DATA_DOCS, "1")  # the suite's default is off (tests/conftest.py)
    yield engine
    mp.undo()


def _stage(engine: sa.Engine, entity: str, records: list[Any], run_id: str) -> None:
    """As the push job stages: the extract's load into raw_source (with each record's staged
    values), then the stage's copy into staging in Postgres."""
    with engine.begin() as conn:
        loaders.write_raw_source(
            conn, entity, loaders.raw_source_rows(entity, records, run_id, realm_id=REALM)
        )
        assert loaders.stage_run(conn, entity, run_id, realm_id=REALM) == len(
            {r.source_id for r in records}
        )


def _typed_rows(
    engine: sa.Engine, entity: str, run_id: str, realm: str
) -> dict[str, tuple[Any, ...]]:
    """Each staged row's JSON, hash and typed values as Postgres prints them (NaN = NaN)."""
    cols = ", ".join(f"{c}::text" for c in loaders.staged_columns(entity))
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text(
                f"SELECT source_id, data::text, content_hash, {cols}"  # noqa: S608
                f" FROM staging.{entity}"
                " WHERE realm_id = :r AND run_id = :run"
            ),
            {"r": realm, "run": run_id},
        ).all()
    return {str(row[0]): tuple(row[1:]) for row in rows}


@pytest.mark.parametrize("entity", gx_suites.ENTITIES)
def test_R40_the_stage_in_postgres_stages_what_the_records_give(
    warehouse: sa.Engine, entity: str
) -> None:
    """The stage's copy in Postgres (values computed at extract, cast in SQL) stages the same
    JSON, hash and typed values, hostile ones included (NaN, Infinity, 1E-999999, control
    characters, emoji), as staging each record from Python."""
    records = [*CLEAN[entity], *BAD[entity]]
    _stage(warehouse, entity, records, f"sql-{entity}")
    with warehouse.begin() as conn:
        loaders.load_staging(conn, entity, records, f"py-{entity}", realm_id="py" + REALM)
    in_sql = _typed_rows(warehouse, entity, f"sql-{entity}", REALM)
    assert in_sql == _typed_rows(warehouse, entity, f"py-{entity}", "py" + REALM)
    assert len(in_sql) == len({r.source_id for r in records})


def _violations(records: list[Any]) -> dict[str, list[rules.Violation]]:
    return {str(r.source_id): rules.check(r) for r in records}


@pytest.mark.parametrize("entity", gx_suites.ENTITIES)
def test_R40_suites_are_green_on_clean_staged_data(warehouse: sa.Engine, entity: str) -> None:
    assert all(v == [] for v in _violations(CLEAN[entity]).values())
    _stage(warehouse, entity, CLEAN[entity], f"clean-{entity}")
    outcome = gx_suites.validate_staged(warehouse, entity, REALM, f"clean-{entity}")
    assert outcome.failed == []
    assert outcome.rows == []
    assert outcome.success
    assert outcome.evaluated == len(gx_suites.SUITES[entity])
    assert outcome.batch_rows == len(CLEAN[entity])
    assert outcome.docs_url is not None
    assert outcome.docs_url.startswith("file://")
    assert Path(outcome.docs_url.removeprefix("file://")).is_file()
    assert "held on" in outcome.markdown()


@pytest.mark.parametrize("entity", gx_suites.ENTITIES)
def test_R40_failing_rows_are_exactly_the_records_the_rules_hold(
    warehouse: sa.Engine, entity: str
) -> None:
    """GX and the per-record rules agree, rule by rule and record by record: both come from
    the constraint table (the create-only billing contact aside, which GX cannot see)."""
    records = BAD[entity]
    _stage(warehouse, entity, records, f"bad-{entity}")
    violations = _violations(records)
    outcome = gx_suites.validate_staged(
        warehouse, entity, REALM, f"bad-{entity}", gx_suites.explain(violations)
    )
    covered = {spec.rule for spec in gx_suites.SUITES[entity]}
    held = {(sid, v.rule) for sid, vs in violations.items() for v in vs if v.rule in covered}
    shown = {(r.source_id, r.rule) for r in outcome.rows}
    assert not outcome.success
    assert shown == held
    assert outcome.row_count == len(held)
    for row in outcome.rows:  # each row carries the hold's reason and fix
        label = rules.record_label(_by_id(records, row.source_id))
        assert row.reason
        assert row.reason.startswith(label)
        assert row.fix
    table = outcome.rows_table()
    assert set(table[0]) == {"source_id", "rule", "column", "value", "reason", "fix"}
    md = outcome.markdown()
    assert md.splitlines()[2].startswith("| source_id | rule |")
    assert all(f"| {r.source_id} | {r.rule} |" in md for r in outcome.rows)
    meta = outcome.metadata()
    assert meta["failing_row_count"] == len(held)
    assert meta["data_docs"].startswith("file://")


def test_R40_without_data_docs_the_checks_and_failing_rows_are_the_same(
    warehouse: sa.Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    entity = "customers"
    records = BAD[entity]
    _stage(warehouse, entity, records, "bad-no-docs")
    explained = gx_suites.explain(_violations(records))
    with_docs = gx_suites.validate_staged(warehouse, entity, REALM, "bad-no-docs", explained)
    monkeypatch.setenv(gx_suites.ENV_DATA_DOCS, "0")
    without = gx_suites.validate_staged(warehouse, entity, REALM, "bad-no-docs", explained)
    assert with_docs.docs_url is not None
    assert without.docs_url is None
    assert without.metadata()["data_docs"] is None
    assert (without.success, without.failed, without.rows) == (
        with_docs.success,
        with_docs.failed,
        with_docs.rows,
    )
    assert without.rows


def _by_id(records: list[Any], source_id: str) -> Any:
    return next(r for r in records if str(r.source_id) == source_id)


def test_R40_the_batch_is_one_company_and_one_run(warehouse: sa.Engine) -> None:
    bad = customer(source_id=SourceId("90"), email="nope@")
    _stage(warehouse, "customers", [bad], "run-a")
    with warehouse.begin() as conn:  # another company staging the same record: its own row
        loaders.load_staging(
            conn, "customers", [customer(source_id=SourceId("90"))], "run-a", realm_id="other"
        )
    assert not gx_suites.validate_staged(warehouse, "customers", REALM, "run-a").success
    assert gx_suites.validate_staged(warehouse, "customers", "other", "run-a").success
    empty = gx_suites.validate_staged(warehouse, "customers", REALM, "no-such-run")
    assert empty.success
    assert empty.evaluated == 0
    assert empty.batch_rows == 0


def test_R40_hostile_values_stage_and_validate(warehouse: sa.Engine) -> None:
    """Absurd money, quotes, emoji, RTL text and backslashes never break the load or the SQL."""
    hostile = [
        sale(
            source_id=SourceId("200"),
            doc_number="Ω'\"\\%_",
            memo="שלום 🙂 %s {batch} $$",
            total=D("-Infinity"),
        ),
        sale(source_id=SourceId("201"), doc_number="S-201", subtotal=D("1E-999999")),
    ]
    _stage(warehouse, "invoices", hostile, "hostile")
    violations = _violations(hostile)
    outcome = gx_suites.validate_staged(
        warehouse, "invoices", REALM, "hostile", gx_suites.explain(violations)
    )
    assert {(r.source_id, r.rule) for r in outcome.rows} == {
        (sid, v.rule)
        for sid, vs in violations.items()
        for v in vs
        if v.rule in {s.rule for s in gx_suites.SUITES["invoices"]}
    }
    assert ("200", "sale.total.invalid") in {(r.source_id, r.rule) for r in outcome.rows}


def test_R40_staged_columns_match_the_constraint_table(warehouse: sa.Engine) -> None:
    types = {
        "text": "text",
        "numeric": "numeric",
        "date": "date",
        "integer": "integer",
        "boolean": "boolean",
    }
    with warehouse.connect() as conn:
        for entity, table in constraints.TABLES.items():
            got = dict(
                conn.execute(
                    sa.text(
                        "SELECT column_name, data_type FROM information_schema.columns"
                        " WHERE table_schema = 'staging' AND table_name = :t"
                    ),
                    {"t": entity},
                )
                .tuples()
                .all()
            )
            for col in table.columns:
                assert got.get(col.name) == types[col.sql_type], (entity, col.name)
            assert table.columns[0].name == "source_id"


def test_R40_every_table_rule_is_in_a_suite_or_create_only() -> None:
    for entity, table in constraints.TABLES.items():
        in_suite = {s.rule for s in gx_suites.SUITES[entity]}
        for col, c in table.constraints:
            assert (c.rule in in_suite) != col.create_only, c.rule


def test_R40_a_date_outside_the_window_is_held_and_shown(warehouse: sa.Engine) -> None:
    b = dataclasses.replace(
        bill(source_id=SourceId("300")), txn_date=date(2100, 1, 1), due_date=date(2100, 2, 1)
    )
    _stage(warehouse, "bills", [b], "dates")
    outcome = gx_suites.validate_staged(warehouse, "bills", REALM, "dates")
    assert {(r.source_id, r.rule) for r in outcome.rows} == {
        ("300", "bill.txn_date.out_of_range"),
        ("300", "bill.due_date.out_of_range"),
    }


_TEXT = st.text(alphabet="aZ09!#$%&'*+/=?^_`{|}~-.@ \t\néß\u00a0:", max_size=110)


def _near_limits() -> list[str]:
    """Every address built from parts whose lengths sit on the pattern's limits: local parts
    of 1, 63, 64 and 65 (with and without an inner dot, a leading or a trailing one), labels
    of 1, 63 and 64 (good, or with a hyphen at an end), top-level domains of 1, 2, 63 and 64
    letters; some are 100 characters in all, some over."""
    locals_ = []
    for n in (1, 2, 63, 64, 65):
        plain = "".join("aZ9'{|}"[i % 7] for i in range(n))
        locals_ += [plain, plain[:1] + "." + plain[2:], "." + plain[1:], plain[:-1] + "."]
    labels = [p + "k" * n for p in ("a", "b9", "-a", "a-") for n in (0, 61, 62)]
    tlds = ["c" * n for n in (0, 1, 2, 3, 63, 64)]
    sized = [  # 99, 100 and 101 characters in all, otherwise good
        "a" * 60 + "@" + "b" * (size - 64) + ".cc" for size in (99, 100, 101)
    ]
    return sized + [
        f"{local}@{'.'.join(parts)}.{tld}"
        for local in locals_
        for parts in [(label,) for label in labels] + [("x", labels[1]), (labels[2], "y")]
        for tld in tlds
    ]


def _refused_by_the_suite(warehouse: sa.Engine, values: list[str]) -> list[bool]:
    refused_sql = f"NOT (v ~ :shape) OR ({constraints.email_lengths_sql('v')})"
    with warehouse.connect() as conn:
        return list(
            conn.execute(
                sa.text(f"SELECT {refused_sql} FROM unnest(CAST(:vals AS text[])) AS t(v)"),  # noqa: S608
                {"vals": values, "shape": constraints.EMAIL_SHAPE},
            ).scalars()
        )


def test_R40_the_suites_email_check_is_the_rules_at_every_limit(warehouse: sa.Engine) -> None:
    """The suite checks emails with a regex Postgres runs fast (no lookarounds, no counted
    repeats) and the lengths in SQL; together they refuse exactly what the rules refuse."""
    values = _near_limits()
    expected = [not rules.is_valid_email(v) for v in values]
    assert 100 < sum(expected) < len(values) - 20  # both verdicts, many of each
    got = _refused_by_the_suite(warehouse, values)
    assert [v for v, e, g in zip(values, expected, got, strict=True) if e != g] == []


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(values=st.lists(_TEXT, min_size=1, max_size=40))
def test_R40_the_suites_email_check_is_the_rules_on_any_text(
    warehouse: sa.Engine, values: list[str]
) -> None:
    """Any text (dots, at signs, spaces, line breaks, letters beyond ASCII): the suite's
    check and the rules agree."""
    got = _refused_by_the_suite(warehouse, values)
    assert [not rules.is_valid_email(v) for v in values] == got


def test_R40_the_suite_reconnects_after_its_database_connections_are_cut(
    warehouse: sa.Engine,
) -> None:
    """Postgres restarted (or a pooler cut its connections) between two validations in one
    process: the suite's pooled connection is tested before use and replaced, so the stage
    validates instead of failing on a dead connection (found by the soak with Postgres
    SIGKILLed: the convergence run died on the suite's stale connection)."""
    entity = "customers"
    _stage(warehouse, entity, CLEAN[entity], "cut-1")
    assert gx_suites.validate_staged(warehouse, entity, REALM, "cut-1").success
    with warehouse.connect() as conn:
        conn.execute(
            sa.text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        )
    _stage(warehouse, entity, CLEAN[entity], "cut-2")
    outcome = gx_suites.validate_staged(warehouse, entity, REALM, "cut-2")
    assert outcome.success
    assert outcome.batch_rows == len(CLEAN[entity])
