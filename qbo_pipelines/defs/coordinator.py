"""The run queue of the project's Dagster instance (``dagster_home/dagster.yaml``).

Dagster's queued run coordinator limits runs per value of a tag; the project's limit is one run
per company, on ``qbo_pipelines/realm`` (and ``dagster/partition``). A run the sensors,
schedules or CLI submit carries the company tag from the start, but Dagster gives a backfill's
runs only its own tags and their partition range (``dagster/asset_partition_range_start`` =
``<company>|<first day>``): :class:`CompanyRunCoordinator` tags each company run with its
company, trigger and direction as it is queued, so the per-company limit holds a backfill run
back while another run of its company is in progress, as it does every other run.
"""

from __future__ import annotations

from dagster._core.run_coordinator.base import SubmitRunContext
from dagster._core.run_coordinator.queued_run_coordinator import QueuedRunCoordinator
from dagster._core.storage.dagster_run import DagsterRun

from qbo_pipelines.defs.resources import PartitionlessRunError, run_company_tags


class CompanyRunCoordinator(QueuedRunCoordinator):  # type: ignore[type-arg]
    """Dagster's queued run coordinator, with each company run tagged with its company (and
    trigger and direction) when it is queued, not only when it starts (``company_run``). A
    run for no company (the marts, a stray asset) is queued as it is; a company run launched
    without a company is queued as it is too, and refused when it starts."""

    def submit_run(self, context: SubmitRunContext) -> DagsterRun:
        run = context.dagster_run
        keys = [tuple(k.path) for k in run.asset_selection] if run.asset_selection else None
        try:
            missing = run_company_tags(run.job_name, run.tags, keys)
        except PartitionlessRunError:
            missing = None
        if missing:
            self._instance.add_run_tags(run.run_id, missing)
        return super().submit_run(context)
