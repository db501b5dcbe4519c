"""The Dagster layer: the ONLY package that imports dagster.

Assets get clients from resources, call one library function, and return metadata. Each area
module below exposes ``definitions`` (its assets, checks, jobs, sensors, schedules); the code
location (:mod:`qbo_pipelines.defs.definitions`) is their merge with the shared resources.
"""

import importlib

import dagster as dg

from qbo_pipelines.defs.platform import warehouse_schema
from qbo_pipelines.defs.pull import (
    PULL_ASSETS,
    pull_interval_schedule,
    pull_job,
    qbo_webhooks_sensor,
)
from qbo_pipelines.defs.push import PUSH_ASSETS, push_job, source_changes_sensor
from qbo_pipelines.defs.resources import shared_resources

AREAS = (
    "qbo_pipelines.defs.notify",
    "qbo_pipelines.defs.reconcile",
    "qbo_pipelines.defs.marts",
    "qbo_pipelines.defs.backfill",
)
"""Area modules, each with a module-level ``definitions``."""


def _areas() -> list[dg.Definitions]:
    found = []
    for name in AREAS:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name:
                continue
            raise
        found.append(module.definitions)
    return found


def build_definitions() -> dg.Definitions:
    """Every asset, check, job, sensor and schedule with its resources."""
    core = dg.Definitions(
        assets=[warehouse_schema, *PUSH_ASSETS, *PULL_ASSETS],
        jobs=[push_job, pull_job],
        sensors=[source_changes_sensor, qbo_webhooks_sensor],
        schedules=[pull_interval_schedule],
        resources=shared_resources(),  # the QBO app's id and secret as dg.EnvVar when set
    )
    return dg.Definitions.merge(core, *_areas())
