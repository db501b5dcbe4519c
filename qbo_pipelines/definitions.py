"""The Dagster code location: ``dagster dev -m qbo_pipelines.definitions`` or workspace.yaml."""

from qbo_pipelines.defs import build_definitions

defs = build_definitions()
