"""Ordered, idempotent SQL migrations, recorded per database.

Files are ``NNN_name.sql`` under a directory (``sql/warehouse`` for the warehouse,
``sql/source_app/schema`` for the demo app). Each file is applied once, in version order, in its
own transaction, and recorded in ``public.schema_migrations`` with its checksum. Files are also
written to be idempotent themselves (``IF NOT EXISTS`` / ``CREATE OR REPLACE``), so a partially
applied history or a re-run does no harm. Views under ``sql/views`` are re-applied on every run
(``CREATE OR REPLACE VIEW``), after the numbered files.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa

from qbo_pipelines import settings

_FILE_RE = re.compile(r"^(\d{3,})_([a-z0-9_]+)\.sql$")

_LEDGER_DDL = """
CREATE TABLE IF NOT EXISTS public.schema_migrations (
    scope       text        NOT NULL,
    version     integer     NOT NULL,
    name        text        NOT NULL,
    checksum    text        NOT NULL,
    applied_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (scope, version)
);
COMMENT ON TABLE public.schema_migrations IS
    'Applied migrations per database scope (warehouse/migrations.py): one row per SQL file.';
COMMENT ON COLUMN public.schema_migrations.scope IS 'Which migration set: warehouse or source_app.';
COMMENT ON COLUMN public.schema_migrations.version IS 'The file''s number (NNN in NNN_name.sql).';
COMMENT ON COLUMN public.schema_migrations.name IS 'The file''s name after the number.';
COMMENT ON COLUMN public.schema_migrations.checksum IS 'SHA-256 of the file as applied.';
COMMENT ON COLUMN public.schema_migrations.applied_at IS 'When it was applied.'
"""


class MigrationError(RuntimeError):
    """A migration file is malformed or failed; the message names the file."""


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    path: Path

    @property
    def sql(self) -> str:
        return self.path.read_text(encoding="utf-8")

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode("utf-8")).hexdigest()


def discover(directory: Path) -> list[Migration]:
    """Numbered migrations in ``directory``, sorted; duplicate versions are an error."""
    found: dict[int, Migration] = {}
    for path in sorted(directory.glob("*.sql")):
        match = _FILE_RE.match(path.name)
        if not match:
            raise MigrationError(f"{path}: migration files must be named NNN_lower_name.sql")
        version = int(match.group(1))
        if version in found:
            raise MigrationError(f"{path}: version {version} also used by {found[version].path}")
        found[version] = Migration(version, match.group(2), path)
    return [found[v] for v in sorted(found)]


def run_script(conn: sa.Connection, sql: str) -> None:
    """Run a multi-statement script as-is, in the connection's transaction.

    The raw DB-API cursor is called with no parameters at all, so a ``%`` in the SQL (a LIKE
    pattern, a format string) is never taken for a placeholder.
    """
    cursor = conn.connection.cursor()
    try:
        cursor.execute(sql)
    finally:
        cursor.close()


def apply(
    engine: sa.Engine,
    directory: Path,
    scope: str,
    views_dir: Path | None = None,
) -> list[Migration]:
    """Apply pending migrations in ``directory``; return those applied now."""
    applied_now: list[Migration] = []
    with engine.begin() as conn:
        conn.exec_driver_sql("SELECT pg_advisory_xact_lock(hashtext('qbo_pipelines.migrations'))")
        conn.exec_driver_sql(_LEDGER_DDL)
        done = {
            row.version
            for row in conn.execute(
                sa.text("SELECT version FROM public.schema_migrations WHERE scope = :s"),
                {"s": scope},
            )
        }
        for migration in discover(directory):
            if migration.version in done:
                continue
            try:
                run_script(conn, migration.sql)
            except sa.exc.DBAPIError as exc:
                raise MigrationError(f"{migration.path.name} failed: {exc.orig}") from None
            conn.execute(
                sa.text(
                    "INSERT INTO public.schema_migrations (scope, version, name, checksum)"
                    " VALUES (:s, :v, :n, :c)"
                ),
                {"s": scope, "v": migration.version, "n": migration.name, "c": migration.checksum},
            )
            applied_now.append(migration)
        if views_dir is not None and views_dir.is_dir():
            for path in sorted(views_dir.glob("*.sql")):
                try:
                    run_script(conn, path.read_text(encoding="utf-8"))
                except sa.exc.DBAPIError as exc:
                    raise MigrationError(f"{path.name} failed: {exc.orig}") from None
    return applied_now


def changed_since_applied(engine: sa.Engine, directory: Path, scope: str) -> list[str]:
    """The applied migration files of ``scope`` whose text is not the one applied (the
    checksum recorded then against the file now): a note for each, naming it. Nothing is
    applied again: the database keeps the version it has."""
    with engine.connect() as conn:
        if conn.execute(sa.text("SELECT to_regclass('public.schema_migrations')")).scalar() is None:
            return []
        applied: dict[int, str] = {
            row.version: row.checksum
            for row in conn.execute(
                sa.text("SELECT version, checksum FROM public.schema_migrations WHERE scope = :s"),
                {"s": scope},
            )
        }
    return [
        f"migration {m.path.name} changed since it was applied on this database, which keeps "
        "the version applied (files are never applied twice: a further change is a new "
        "numbered file)"
        for m in discover(directory)
        if m.version in applied and applied[m.version] != m.checksum
    ]


SCOPES: dict[str, Path] = {
    "warehouse": settings.SQL_DIR / "warehouse",
    "source_app": settings.SQL_DIR / "source_app" / "schema",
}
"""Each database's migration files, by scope."""


def migrate_warehouse(engine: sa.Engine) -> list[Migration]:
    """Apply ``sql/warehouse`` then the views in ``sql/views`` to the warehouse database."""
    return apply(engine, SCOPES["warehouse"], "warehouse", settings.SQL_DIR / "views")


def migrate_source_app(engine: sa.Engine) -> list[Migration]:
    """Apply the demo source app's schema (``sql/source_app/schema``)."""
    directory = SCOPES["source_app"]
    if not directory.is_dir():
        return []
    return apply(engine, directory, "source_app")
