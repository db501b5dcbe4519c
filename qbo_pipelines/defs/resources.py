"""Dagster resources: thin adapters that hand out plain library clients.

Nothing here reads the environment at import time; URLs default to the project's own Postgres
(embedded or ``QBO_PIPELINES_PG_URL``) and can be overridden per deployment.
"""

import os

import dagster as dg
import sqlalchemy as sa

from qbo_pipelines.sync.env import (
    ENV_API_URL,
    ENV_CLIENT_ID,
    ENV_CLIENT_SECRET,
    ENV_OAUTH_URL,
    QboApp,
    SyncEnv,
)
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


class QboResource(dg.ConfigurableResource):  # type: ignore[type-arg]
    """The QBO app. Unset fields come from the QBO_PIPELINES_QBO_* environment variables
    (read when a run starts), else from the app stored in the warehouse by ``make demo`` or
    ``qbo-pipelines connect``; secrets are never shown in the UI."""

    client_id: str | None = None
    client_secret: str | None = None
    api_url: str | None = None
    oauth_url: str | None = None

    def app(self, warehouse: sa.Engine | None = None) -> QboApp:
        env = dict(os.environ)
        for key, value in (
            (ENV_CLIENT_ID, self.client_id),
            (ENV_CLIENT_SECRET, self.client_secret),
            (ENV_API_URL, self.api_url),
            (ENV_OAUTH_URL, self.oauth_url),
        ):
            if value:
                env[key] = value
        return QboApp.resolve(warehouse, env=env)

    def sync_env(self, warehouse: sa.Engine, source: sa.Engine) -> SyncEnv:
        return SyncEnv(warehouse=warehouse, source=source, app=self.app(warehouse))
