"""The Dagster code location: ``dagster dev -m qbo_pipelines.definitions`` or workspace.yaml."""

import dagster as dg

from qbo_pipelines.defs import build_definitions
from qbo_pipelines.defs.notify import NOTIFY_SENSORS

defs = dg.Definitions.merge(build_definitions(), dg.Definitions(sensors=NOTIFY_SENSORS))
