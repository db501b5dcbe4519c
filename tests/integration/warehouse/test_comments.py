"""Every table, view and column of the warehouse says what it is (issue 13: analysts read the
catalog, not the code)."""

from __future__ import annotations

from collections.abc import Callable

import sqlalchemy as sa

from qbo_pipelines.marts import run as marts
from qbo_pipelines.warehouse import migrations

_SYSTEM = ("pg_catalog", "information_schema", "pg_toast")

_RELATIONS = """
SELECT n.nspname AS schema, c.relname AS name, c.relkind AS kind,
       obj_description(c.oid, 'pg_class') AS comment
  FROM pg_class c
  JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f')
   AND n.nspname NOT IN :system AND n.nspname NOT LIKE 'pg_temp%%'
   AND n.nspname NOT LIKE 'pg_toast%%'
   AND NOT c.relispartition
"""

_COLUMNS = """
SELECT n.nspname AS schema, c.relname AS name, a.attname AS column,
       col_description(c.oid, a.attnum) AS comment
  FROM pg_attribute a
  JOIN pg_class c ON c.oid = a.attrelid
  JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f') AND a.attnum > 0 AND NOT a.attisdropped
   AND n.nspname NOT IN :system AND n.nspname NOT LIKE 'pg_temp%%'
   AND n.nspname NOT LIKE 'pg_toast%%'
   AND NOT c.relispartition
"""


def _blank(comment: str | None) -> bool:
    return comment is None or not comment.strip()


def test_every_table_view_and_column_has_a_comment(
    temp_database: Callable[[str], sa.Engine],
) -> None:
    engine = temp_database("comments")
    migrations.migrate_warehouse(engine)
    # The marts are a dbt project (persist_docs writes their comments): built as `make demo` does.
    outcome = marts.run("run", engine.url)
    assert outcome.success, outcome.summary()
    params = {"system": _SYSTEM}
    with engine.connect() as conn:
        relations = (
            conn.execute(
                sa.text(_RELATIONS).bindparams(sa.bindparam("system", expanding=True)), params
            )
            .mappings()
            .all()
        )
        columns = (
            conn.execute(
                sa.text(_COLUMNS).bindparams(sa.bindparam("system", expanding=True)), params
            )
            .mappings()
            .all()
        )
    schemas = {r["schema"] for r in relations}
    # The check looks at the real warehouse: every schema of the design is there.
    assert {"sync", "raw_source", "raw_qbo", "staging", "mapping", "marts", "public"} <= schemas
    assert len(columns) > 500
    missing_tables = sorted(f"{r['schema']}.{r['name']}" for r in relations if _blank(r["comment"]))
    missing_columns = sorted(
        f"{r['schema']}.{r['name']}.{r['column']}" for r in columns if _blank(r["comment"])
    )
    # The managed connectors' sync columns on every raw table (lines included).
    raw_tables = {
        (r["schema"], r["name"])
        for r in relations
        if r["schema"] in ("raw_qbo", "raw_source") and r["kind"] == "r"
    }
    have = {(r["schema"], r["name"], r["column"]) for r in columns}
    lacking = sorted(
        f"{s}.{t}.{c}"
        for s, t in raw_tables
        for c in ("_synced_at", "_deleted")
        if (s, t, c) not in have
    )
    assert raw_tables
    assert lacking == []
    assert missing_tables == [], f"{len(missing_tables)} tables/views without a comment"
    assert missing_columns == [], f"{len(missing_columns)} columns without a comment"
