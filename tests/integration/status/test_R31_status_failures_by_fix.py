"""`status` groups records QBO refused by their fix, not by QBO's code alone (found by an
attack: QBO's 6000 is any business rule, so invoices refused because their total fell below
the payments applied were counted under the daily email limit's reason and fix)."""

from __future__ import annotations

from collections.abc import Callable

import sqlalchemy as sa

from qbo_pipelines.status import problems

REALM = "4620816365000000009"


def test_R31_failures_sharing_a_code_but_not_a_fix_are_listed_apart(
    temp_database: Callable[..., sa.Engine],
) -> None:
    warehouse = temp_database("statuswh", migrated="warehouse")
    rows = [
        ("1", "QBO did not email the invoice: limit of 40 emails a day", "try tomorrow"),
        ("2", "QBO did not email the invoice: limit of 40 emails a day", "try tomorrow"),
        ("3", "The invoice total cannot be less than the payments applied", "map the rate"),
    ]
    with warehouse.begin() as conn:
        for sid, message, fix in rows:
            conn.execute(
                sa.text(
                    "INSERT INTO sync.record_state (realm_id, entity, source_id, status,"
                    " error_code, error_message, fix) VALUES (:r, 'invoices', :s, 'failed',"
                    " '6000', :m, :f)"
                ),
                {"r": REALM, "s": sid, "m": message, "f": fix},
            )
        _, failed = problems(conn, REALM)
    assert [(f.count, f.fix) for f in failed] == [(2, "try tomorrow"), (1, "map the rate")]
    assert "payments applied" in str(failed[1].example)


def test_R31_status_counts_a_record_held_for_several_reasons_once(
    temp_database: Callable[..., sa.Engine],
) -> None:
    from qbo_pipelines.quality.quarantine import hold
    from qbo_pipelines.quality.rules import Violation
    from qbo_pipelines.status import company_status, render

    warehouse = temp_database("statusheld", migrated="warehouse")
    with warehouse.begin() as conn:
        conn.execute(sa.text("INSERT INTO sync.companies (realm_id) VALUES (:r)"), {"r": REALM})
    two = [
        Violation("customer.email.format", "email 'x@' is not a valid address", "fix it"),
        Violation("customer.billing_email.format", "billing_email 'x@' is not valid", "fix it"),
    ]
    hold(warehouse, REALM, "customers", "run-1", {"1": two, "2": two[:1]})
    [report] = company_status(warehouse, None, REALM)
    assert report.held_total == 2  # records, not the three reasons
    assert sum(h.count for h in report.held) == 3  # by rule, as listed
    assert "held back:       2 record(s)" in render([report])
    assert report.to_dict()["held_total"] == 2
