"""Dagster resources: thin adapters that hand out plain library clients.

Nothing here reads the environment at import time; URLs default to the project's own Postgres
(embedded or ``QBO_PIPELINES_PG_URL``) and can be overridden per deployment.
"""


import dagster as dg
import sqlalchemy as sa

from qbo_pipelines.warehouse import db, postgres


class WarehouseResource(dg.ConfigurableResource):  # type: ignore[type-arg]
    """The analyst warehouse (schemas raw_source, raw_qbo, staging, mapping, sync, marts)."""

    database_url: str | None = None

    def engine(self) -> sa.Engine:
        return db.make_engine(self.database_url or postgres.database_url("warehouse"))


class SourceAppResource(dg.ConfigurableResource):  # type: ignore[type-arg]
    """The source application's database (the demo app by default)."""

    database_url: str | None = None

    def engine(self) -> sa.Engine:
        return db.make_engine(self.database_url or postgres.database_url("source_app"))
