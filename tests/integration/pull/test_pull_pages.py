"""The pull's candidate pages (issue 9, speed): each keyset page of a raw QBO table reads the
sync states of its own rows, never every state before the page."""

from __future__ import annotations

from collections.abc import Callable

import sqlalchemy as sa
from explain import rows_scanned

from qbo_pipelines.sync import pull


def test_issue9_a_pull_candidate_page_reads_the_states_of_its_own_rows(
    temp_database: Callable[..., sa.Engine],
) -> None:
    """Before, a merge join walked the entity's states from the first one on every page of
    candidates (quadratic in the company's size). Hash and nested-loop joins are turned off so
    the small test company gets the merge join Postgres picks at scale."""
    warehouse = temp_database("pullpages", migrated="warehouse")
    with warehouse.begin() as conn:
        conn.exec_driver_sql(
            "INSERT INTO raw_qbo.customers (realm_id, qbo_id, sync_token, data)"
            " SELECT '1', lpad(g::text, 6, '0'), '1', '{}' FROM generate_series(1, 600) g"
        )
        conn.exec_driver_sql(
            "INSERT INTO sync.record_state (realm_id, entity, source_id, qbo_entity, qbo_id,"
            " status, sync_token, pulled_token, qbo_base, pull_due) SELECT '1', 'customers',"
            " g::text, 'Customer', lpad(g::text, 6, '0'), 'synced', '1', '1', '{}', mod(g, 2) = 0"
            " FROM generate_series(1, 600) g"
        )
    with warehouse.connect() as conn:
        conn.execution_options(isolation_level="AUTOCOMMIT").exec_driver_sql("ANALYZE")
    params = {
        "qbo_entity": "Customer",
        "realm": "1",
        "after": "000400",
        "creates": True,
        "entity": "customers",
        "limit": 20,
    }
    with warehouse.connect() as conn:
        for setting in ("enable_hashjoin", "enable_nestloop"):
            conn.exec_driver_sql(f"SET LOCAL {setting} = off")
        sql = pull._CANDIDATES.format(table="customers")
        plan = conn.execute(sa.text(f"EXPLAIN (ANALYZE, FORMAT JSON) {sql}"), params).scalar_one()[
            0
        ]["Plan"]
        due = conn.execute(sa.text(sql), params).all()
    assert "Merge" in str(plan)
    assert [r.qbo_id for r in due] == [f"{n:06d}" for n in range(402, 442, 2)]
    assert rows_scanned(plan, "record_state") <= 2 * 20 + 1
