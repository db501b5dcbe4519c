"""The Dagster layer: the ONLY package that imports dagster.

Assets get clients from resources, call one library function, and return metadata.
"""


import dagster as dg

from qbo_pipelines.defs.platform import warehouse_schema
from qbo_pipelines.defs.resources import SourceAppResource, WarehouseResource


def build_definitions() -> dg.Definitions:
    """Every asset, check, job, sensor and schedule with its resources."""
    return dg.Definitions(
        assets=[warehouse_schema],
        resources={
            "warehouse": WarehouseResource(),
            "source_app": SourceAppResource(),
        },
    )
