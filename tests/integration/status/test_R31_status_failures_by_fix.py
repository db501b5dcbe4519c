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
