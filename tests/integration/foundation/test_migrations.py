"""Warehouse migrations apply on a fresh database and again with no change."""

from collections.abc import Callable
from pathlib import Path

import pytest
import sqlalchemy as sa

from qbo_pipelines import settings
from qbo_pipelines.warehouse import migrations

REQUIRED_SCHEMAS = {"raw_source", "raw_qbo", "staging", "mapping", "sync", "marts"}


def _schema_snapshot(engine: sa.Engine) -> list[tuple[str, ...]]:
    sql = """
        SELECT table_schema, table_name, column_name, data_type
        FROM information_schema.columns
        WHERE table_schema NOT IN ('pg_catalog', 'information_schema')
        ORDER BY 1, 2, 3
    """
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(sa.text(sql))]


def test_migrations_apply_fresh_then_noop(make_database: Callable[[str], sa.Engine]) -> None:
    engine = make_database("migrate")
    first = migrations.migrate_warehouse(engine)
    expected = migrations.discover(settings.SQL_DIR / "warehouse")
    assert [m.version for m in first] == [m.version for m in expected]
    with engine.connect() as conn:
        schemas = set(conn.execute(sa.text("SELECT nspname FROM pg_namespace")).scalars())
    assert schemas >= REQUIRED_SCHEMAS

    before = _schema_snapshot(engine)
    second = migrations.migrate_warehouse(engine)
    assert second == []
    assert _schema_snapshot(engine) == before


def test_every_migration_file_is_idempotent_on_its_own(
    make_database: Callable[[str], sa.Engine],
) -> None:
    """Running each file twice (as after a lost ledger row) must not fail."""
    engine = make_database("idem")
    for migration in migrations.discover(settings.SQL_DIR / "warehouse"):
        for _ in range(2):
            with engine.begin() as conn:
                migrations.run_script(conn, migration.sql)


def test_bad_migration_name_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "first.sql").write_text("SELECT 1")
    with pytest.raises(migrations.MigrationError, match="NNN_lower_name.sql"):
        migrations.discover(tmp_path)


def test_a_migration_file_changed_after_it_was_applied_is_named_not_re_applied(
    make_database: Callable[[str], sa.Engine], tmp_path: Path
) -> None:
    """The checksum recorded when a file was applied is compared with the file (``db up``
    prints the note as a warning): a file edited since is named, and is not run again."""
    engine = make_database("changed")
    first = tmp_path / "001_first.sql"
    first.write_text("CREATE TABLE IF NOT EXISTS public.t_first (a int);")
    (tmp_path / "002_second.sql").write_text("CREATE TABLE IF NOT EXISTS public.t_second (a int);")
    assert migrations.changed_since_applied(engine, tmp_path, "changed") == []
    assert len(migrations.apply(engine, tmp_path, "changed")) == 2
    assert migrations.apply(engine, tmp_path, "changed") == []
    assert migrations.changed_since_applied(engine, tmp_path, "changed") == []

    first.write_text("CREATE TABLE IF NOT EXISTS public.t_first (a int, b text);")
    assert migrations.apply(engine, tmp_path, "changed") == []
    [note] = migrations.changed_since_applied(engine, tmp_path, "changed")
    assert "001_first.sql changed since it was applied" in note
    assert "new numbered file" in note
    with engine.connect() as conn:
        columns = conn.execute(
            sa.text(
                "SELECT column_name FROM information_schema.columns WHERE table_name = 't_first'"
            )
        ).scalars()
        assert list(columns) == ["a"]
