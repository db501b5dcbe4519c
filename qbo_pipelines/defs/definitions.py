"""The Dagster code location (workspace.yaml; ``dagster dev -m qbo_pipelines.defs.definitions``)."""

from qbo_pipelines.defs import build_definitions

defs = build_definitions()
