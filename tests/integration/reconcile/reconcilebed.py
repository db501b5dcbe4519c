"""The reconciliation tests' bed (a module of its own: ``from conftest import`` resolves to
another folder's conftest when the whole suite runs): the project's databases under a prefix on
the test server (so the CLI finds them as a user's terminal would), a Postgres-backed Dagster
instance, the demo source app and a QBO sandbox over HTTP, after a full two-way sync."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import dagster as dg
import sqlalchemy as sa

from qbo_pipelines.defs.push import COMPANIES
from qbo_pipelines.defs.reconcile import JOB, definitions
from qbo_pipelines.defs.resources import QboResource, SourceAppResource, WarehouseResource
from qbo_pipelines.sandbox.testing import SandboxHandle
from qbo_pipelines.sync.env import SyncEnv


@dataclass
class ReconcileBed:
    env: SyncEnv
    sandbox: SandboxHandle
    realm: str
    instance: dg.DagsterInstance

    def rows(self, engine: sa.Engine, sql: str, **params: object) -> list[Any]:
        with engine.begin() as conn:
            result = conn.execute(sa.text(sql), params)
            return list(result) if result.returns_rows else []

    def resources(self) -> dict[str, Any]:
        sb = self.sandbox
        return {
            "warehouse": WarehouseResource(
                database_url=self.env.warehouse.url.render_as_string(hide_password=False)
            ),
            "source_app": SourceAppResource(
                database_url=self.env.source.url.render_as_string(hide_password=False)
            ),
            "qbo": QboResource(
                client_id=sb.client_id,
                client_secret=sb.client_secret,
                api_url=sb.base_url,
                oauth_url=sb.base_url,
            ),
        }

    def run_job(self, realm: str | None = None) -> dg.ExecuteInProcessResult:
        """The reconcile_job for one company partition, as a launched run executes it."""
        realm = realm or self.realm
        if not self.instance.has_dynamic_partition(COMPANIES, realm):
            self.instance.add_dynamic_partitions(COMPANIES, [realm])
        defs = dg.Definitions.merge(definitions, dg.Definitions(resources=self.resources()))
        return defs.resolve_job_def(JOB).execute_in_process(
            instance=self.instance,
            partition_key=realm,
            tags={"qbo_pipelines/trigger": "test"},
        )

    def qbo_writes(self) -> int:
        counts = self.sandbox.control.request_counts(self.realm)
        return sum(
            n
            for label, n in counts.items()
            if label == "batch" or label.startswith(("create", "update", "delete", "send", "void"))
        )
