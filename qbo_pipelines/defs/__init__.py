"""The Dagster layer: the ONLY package that imports dagster.

Assets get clients from resources, call one library function, and return metadata. Each area
module below exposes ``definitions`` (its assets, checks, jobs, sensors, schedules); the code
location (:mod:`qbo_pipelines.defs.definitions`) is their merge with the shared resources.
"""

import dagster as dg

from qbo_pipelines.defs import (
    _warnings,  # noqa: F401 - imported first: silences Beta/Preview warnings
    backfill,
    marts,
    notify,
    reconcile,
)
from qbo_pipelines.defs.platform import warehouse_schema
from qbo_pipelines.defs.pull import (
    PULL_ASSETS,
    pull_interval_schedule,
    pull_job,
    qbo_webhooks_sensor,
)
from qbo_pipelines.defs.push import PUSH_ASSETS, push_job, source_changes_sensor
from qbo_pipelines.defs.resources import shared_resources

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
