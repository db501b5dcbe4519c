"""The Dagster layer: the ONLY package that imports dagster.

Assets get clients from resources, call one library function, and return metadata. Each area
module below exposes ``definitions`` (its assets, checks, jobs, sensors, schedules); the code
location (:mod:`qbo_pipelines.defs.definitions`) is their merge with the shared resources.
"""

import warnings

import dagster as dg

# Beta parameters we use on purpose (per-asset resource_defs, backfill_policy, code references):
# said once here, not once per generated asset in every run's log.
warnings.filterwarnings("ignore", category=dg.BetaWarning)
warnings.filterwarnings("ignore", category=dg.PreviewWarning)

from qbo_pipelines.defs import backfill, marts, notify, reconcile  # noqa: E402
from qbo_pipelines.defs.platform import warehouse_schema  # noqa: E402
from qbo_pipelines.defs.pull import (  # noqa: E402
    PULL_ASSETS,
    pull_interval_schedule,
    pull_job,
    qbo_webhooks_sensor,
)
from qbo_pipelines.defs.push import PUSH_ASSETS, push_job, source_changes_sensor  # noqa: E402
from qbo_pipelines.defs.resources import shared_resources  # noqa: E402

AREAS = (notify, reconcile, marts, backfill)
"""Area modules, each with a module-level ``definitions``."""


def build_definitions() -> dg.Definitions:
    """Every asset, check, job, sensor and schedule with its resources."""
    core = dg.Definitions(
        assets=[warehouse_schema, *PUSH_ASSETS, *PULL_ASSETS],
        jobs=[push_job, pull_job],
        sensors=[source_changes_sensor, qbo_webhooks_sensor],
        schedules=[pull_interval_schedule],
        resources=shared_resources(),  # the QBO app's id and secret as dg.EnvVar when set
    )
    return dg.Definitions.merge(core, *(area.definitions for area in AREAS))
