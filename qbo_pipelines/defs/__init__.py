"""The Dagster layer: the ONLY package that imports dagster.

Assets get clients from resources, call one library function, and return metadata.
"""

import dagster as dg

from qbo_pipelines.defs.platform import warehouse_schema
from qbo_pipelines.defs.pull import (
    PULL_ASSETS,
    pull_interval_schedule,
    pull_job,
    qbo_webhooks_sensor,
)
from qbo_pipelines.defs.push import PUSH_ASSETS, push_job, source_changes_sensor
from qbo_pipelines.defs.resources import QboResource, SourceAppResource, WarehouseResource


def build_definitions() -> dg.Definitions:
    """Every asset, check, job, sensor and schedule with its resources."""
    return dg.Definitions(
        assets=[warehouse_schema, *PUSH_ASSETS, *PULL_ASSETS],
        jobs=[push_job, pull_job],
        sensors=[source_changes_sensor, qbo_webhooks_sensor],
        schedules=[pull_interval_schedule],
        resources={
            "warehouse": WarehouseResource(),
            "source_app": SourceAppResource(),
            "qbo": QboResource(),
        },
    )
