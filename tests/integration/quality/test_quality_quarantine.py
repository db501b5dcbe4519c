"""The quarantine over real Postgres: hold, release, notifications (R40, R12, R31)."""

from __future__ import annotations

import uuid

import sqlalchemy as sa

from qbo_pipelines.quality import quarantine as q
from qbo_pipelines.quality.rules import Violation, missing_mapping


def realm() -> str:
    return f"r{uuid.uuid4().hex[:10]}"


TAX = missing_mapping(
    "tax_rate", "GST 15%", "qbo-pipelines mappings set tax-rate 'GST 15%'", record="sale S-1 (#1)"
)
TOTAL = Violation("sale.total_mismatch", "sale S-1 (#1): total 9.00 is not 10.00", "Recalculate.")
EMAIL = Violation("sale.billing_email.format", "sale S-2 (#2): billing_email 'x' is not valid",
                  "Correct billing_email.")


def rows(engine: sa.Engine, realm_id: str) -> list[sa.Row[tuple[object, ...]]]:
    with engine.connect() as conn:
        return list(conn.execute(
            sa.text("SELECT source_id, rule, first_seen, last_seen, last_run_id, resolved_at "
                    "FROM sync.quarantine WHERE realm_id = :r ORDER BY source_id, rule"),
            {"r": realm_id},
        ))


def notifications(engine: sa.Engine, realm_id: str) -> list[sa.Row[tuple[object, ...]]]:
    with engine.connect() as conn:
        return list(conn.execute(
            sa.text("SELECT record_id, title, reason, fix, resolved_at FROM sync.notifications "
                    "WHERE realm_id = :r ORDER BY id"),
            {"r": realm_id},
        ))


def test_R40_hold_quarantines_records_with_rule_reason_and_fix(
    warehouse_engine: sa.Engine,
) -> None:
    r = realm()
    held = q.hold(warehouse_engine, r, "invoices", "run-1", {"1": [TAX, TOTAL], "2": [EMAIL],
                                                             "3": []})
    assert held == 2
    items = q.open_items(warehouse_engine, r)
    assert [(i.source_id, i.rule) for i in items] == [
        ("1", "mapping.tax_rate.missing"), ("1", "sale.total_mismatch"),
        ("2", "sale.billing_email.format"),
    ]
    assert items[0].reason == "sale S-1 (#1): tax rate 'GST 15%' has no QBO mapping"
    assert items[0].fix is not None
    assert "mappings set tax-rate" in items[0].fix
    assert {i.last_run_id for i in items} == {"run-1"}
    assert q.held_ids(warehouse_engine, r, "invoices") == {"1", "2"}
    assert q.open_items(warehouse_engine, r, "customers") == []


def test_R31_one_notification_per_held_record_with_reason_and_fix(
    warehouse_engine: sa.Engine,
) -> None:
    r = realm()
    q.hold(warehouse_engine, r, "invoices", "run-1", {"1": [TAX, TOTAL], "2": [EMAIL]})
    notes = q.open_notifications(warehouse_engine, r, "invoices")
    assert [n.record_id for n in notes] == ["1", "2"]
    first = notes[0]
    assert first.title == q.HOLD_TITLE
    assert first.severity == "error"
    assert "tax rate 'GST 15%' has no QBO mapping" in first.reason
    assert "total 9.00 is not 10.00" in first.reason
    assert first.reason.startswith("Record 1 was not written to QBO (2 problems: ")
    assert first.fix is not None
    assert "mappings set tax-rate" in first.fix
    assert "Recalculate." in first.fix


def test_R40_rehold_is_idempotent_and_keeps_first_seen(warehouse_engine: sa.Engine) -> None:
    r = realm()
    q.hold(warehouse_engine, r, "invoices", "run-1", {"1": [TAX]})
    before = rows(warehouse_engine, r)
    q.hold(warehouse_engine, r, "invoices", "run-2", {"1": [TAX]})
    q.hold(warehouse_engine, r, "invoices", "run-2", {"1": [TAX]})
    after = rows(warehouse_engine, r)
    assert len(after) == 1
    assert after[0].first_seen == before[0].first_seen
    assert after[0].last_seen >= before[0].last_seen
    assert after[0].last_run_id == "run-2"
    assert len(notifications(warehouse_engine, r)) == 1


def test_R40_same_rule_twice_on_one_record_is_one_row(warehouse_engine: sa.Engine) -> None:
    r = realm()
    a = Violation("sale.lines.amount_mismatch", "line 1 is wrong", "Fix the line.")
    b = Violation("sale.lines.amount_mismatch", "line 2 is wrong", "Fix the line.")
    q.hold(warehouse_engine, r, "invoices", "run-1", {"1": [a, b, a]})
    items = q.open_items(warehouse_engine, r)
    assert len(items) == 1
    assert items[0].reason == "line 1 is wrong; line 2 is wrong"
    assert items[0].fix == "Fix the line."


def test_R12_release_when_fixed_resolves_rows_and_notification(
    warehouse_engine: sa.Engine,
) -> None:
    r = realm()
    q.hold(warehouse_engine, r, "invoices", "run-1", {"1": [TAX], "2": [EMAIL]})
    released = q.release(warehouse_engine, r, "invoices", ["1", "99"], "run-2")
    assert released == ["1"]
    assert q.held_ids(warehouse_engine, r, "invoices") == {"2"}
    assert [n.record_id for n in q.open_notifications(warehouse_engine, r)] == ["2"]
    resolved = [row for row in rows(warehouse_engine, r) if row.source_id == "1"]
    assert resolved[0].resolved_at is not None
    assert resolved[0].last_run_id == "run-2"
    # Releasing again changes nothing.
    assert q.release(warehouse_engine, r, "invoices", ["1"], "run-3") == []
    assert q.release(warehouse_engine, r, "invoices", [], "run-3") == []


def test_R40_a_held_record_that_fixes_one_rule_keeps_only_the_other(
    warehouse_engine: sa.Engine,
) -> None:
    r = realm()
    q.hold(warehouse_engine, r, "invoices", "run-1", {"1": [TAX, TOTAL]})
    q.hold(warehouse_engine, r, "invoices", "run-2", {"1": [TOTAL]})
    assert [i.rule for i in q.open_items(warehouse_engine, r)] == ["sale.total_mismatch"]
    notes = q.open_notifications(warehouse_engine, r)
    assert len(notes) == 1
    assert "GST" not in notes[0].reason
    assert "(1 problem: sale.total_mismatch)" in notes[0].reason


def test_R40_a_record_that_breaks_again_is_a_new_episode(warehouse_engine: sa.Engine) -> None:
    r = realm()
    q.hold(warehouse_engine, r, "invoices", "run-1", {"1": [TAX]})
    first = rows(warehouse_engine, r)[0]
    q.release(warehouse_engine, r, "invoices", ["1"], "run-2")
    q.hold(warehouse_engine, r, "invoices", "run-3", {"1": [TAX]})
    again = rows(warehouse_engine, r)
    assert len(again) == 1
    assert again[0].resolved_at is None
    assert again[0].first_seen > first.first_seen
    notes = notifications(warehouse_engine, r)
    assert [(n.record_id, n.resolved_at is None) for n in notes] == [("1", False), ("1", True)]


def test_R12_record_checks_holds_then_syncs_after_the_fix(warehouse_engine: sa.Engine) -> None:
    r = realm()
    out = q.record_checks(warehouse_engine, r, "invoices", "run-1", {"1": [TAX], "2": []})
    assert out == q.CheckOutcome(held=("1",), released=())
    # The mapping was added: the next run finds no violation and releases it, no other action.
    out = q.record_checks(warehouse_engine, r, "invoices", "run-2", {"1": [], "2": []})
    assert out == q.CheckOutcome(held=(), released=("1",))
    assert q.open_items(warehouse_engine, r) == []
    assert q.open_notifications(warehouse_engine, r) == []


def test_R40_entities_and_realms_are_independent(warehouse_engine: sa.Engine) -> None:
    r1, r2 = realm(), realm()
    q.hold(warehouse_engine, r1, "invoices", "run", {"1": [TAX]})
    q.hold(warehouse_engine, r1, "payments", "run", {"1": [TOTAL]})
    q.hold(warehouse_engine, r2, "invoices", "run", {"1": [TAX]})
    q.release(warehouse_engine, r1, "invoices", ["1"], "run")
    assert [(i.entity, i.source_id) for i in q.open_items(warehouse_engine, r1)] == [
        ("payments", "1")]
    assert len(q.open_items(warehouse_engine, r2)) == 1


def test_R40_hold_in_the_callers_transaction_rolls_back_with_it(
    warehouse_engine: sa.Engine,
) -> None:
    r = realm()
    with warehouse_engine.connect() as conn:
        q.hold(conn, r, "invoices", "run", {"1": [TAX]})
        assert q.held_ids(conn, r, "invoices") == {"1"}
        conn.rollback()
    assert q.open_items(warehouse_engine, r) == []


def test_R40_bulk_hold_of_many_records(warehouse_engine: sa.Engine) -> None:
    r = realm()
    many = {str(i): [TAX, TOTAL] for i in range(2000)}
    assert q.hold(warehouse_engine, r, "invoices", "run", many) == 2000
    assert len(q.open_items(warehouse_engine, r)) == 4000
    assert len(q.open_notifications(warehouse_engine, r)) == 2000
    assert len(q.release(warehouse_engine, r, "invoices", list(many), "run2")) == 2000
    assert q.open_notifications(warehouse_engine, r) == []


def test_R31_notify_failure_opens_one_notification_and_refreshes_it(
    warehouse_engine: sa.Engine,
) -> None:
    r = realm()
    first = q.notify_failure(
        warehouse_engine, r, "invoices", "77", "QBO rejected the invoice",
        "sale S-1042 (#77): QBO said 6140 Duplicate Document Number (DocNumber=S-1042)",
        "Give the sale a different number in the source app.",
    )
    second = q.notify_failure(
        warehouse_engine, r, "invoices", "77", "QBO rejected the invoice",
        "sale S-1042 (#77): still a duplicate", None, severity="warning",
    )
    assert first == second
    notes = q.open_notifications(warehouse_engine, r)
    assert len(notes) == 1
    assert notes[0].reason == "sale S-1042 (#77): still a duplicate"
    assert notes[0].fix is None
    assert notes[0].severity == "warning"
    # Releasing a quarantine hold does not touch a write-failure notification.
    q.release(warehouse_engine, r, "invoices", ["77"], "run")
    assert len(q.open_notifications(warehouse_engine, r)) == 1
    # The retry succeeded: the push layer resolves it.
    assert q.resolve_notifications(warehouse_engine, r, "invoices", ["77"],
                                   title="QBO rejected the invoice") == 1
    assert q.open_notifications(warehouse_engine, r) == []
    third = q.notify_failure(warehouse_engine, r, "invoices", "77", "QBO rejected the invoice",
                             "again", None)
    assert third != first


def test_R31_resolve_notifications_without_title_resolves_all_of_the_record(
    warehouse_engine: sa.Engine,
) -> None:
    r = realm()
    q.notify_failure(warehouse_engine, r, "bills", "8", "A", "a", None)
    q.notify_failure(warehouse_engine, r, "bills", "8", "B", "b", None)
    q.notify_failure(warehouse_engine, r, "bills", "9", "A", "a", None)
    assert q.resolve_notifications(warehouse_engine, r, "bills", ["8"]) == 2
    assert [n.record_id for n in q.open_notifications(warehouse_engine, r)] == ["9"]
    assert q.resolve_notifications(warehouse_engine, r, "bills", []) == 0
