"""Engines for the warehouse and the source app, and the one-call bootstrap (``db up``)."""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa

from qbo_pipelines.warehouse import migrations, postgres


def make_engine(url: str) -> sa.Engine:
    """An engine with sane pool settings for short-lived CLI and Dagster processes."""
    return sa.create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=5)


def warehouse_engine(pg: postgres.PgServer | None = None) -> sa.Engine:
    return make_engine(postgres.database_url("warehouse", pg=pg))


def source_app_engine(pg: postgres.PgServer | None = None) -> sa.Engine:
    return make_engine(postgres.database_url("source_app", pg=pg))


@dataclass(frozen=True)
class Stack:
    """What ``db up`` brought up: the server and the three database URLs."""

    pg: postgres.PgServer
    warehouse_url: str
    source_app_url: str
    dagster_url: str
    applied: tuple[str, ...]
    changed: tuple[str, ...] = ()


def bootstrap() -> Stack:
    """Start or reuse Postgres, create the three databases, migrate warehouse and source app."""
    pg = postgres.ensure_databases()
    applied: list[str] = []
    changed: list[str] = []
    for url, run, scope in (
        (postgres.database_url("warehouse", pg=pg), migrations.migrate_warehouse, "warehouse"),
        (postgres.database_url("source_app", pg=pg), migrations.migrate_source_app, "source_app"),
    ):
        engine = make_engine(url)
        try:
            applied.extend(f"{m.version:03d}_{m.name}" for m in run(engine))
            directory = migrations.SCOPES[scope]
            changed.extend(migrations.changed_since_applied(engine, directory, scope))
        finally:
            engine.dispose()
    return Stack(
        pg=pg,
        warehouse_url=postgres.database_url("warehouse", pg=pg),
        source_app_url=postgres.database_url("source_app", pg=pg),
        dagster_url=postgres.dagster_storage_url(pg=pg),
        applied=tuple(applied),
        changed=tuple(changed),
    )
