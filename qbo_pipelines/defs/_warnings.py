"""Imported first by the Dagster layer (``qbo_pipelines/defs/__init__.py``): the Beta and
Preview parameters we use on purpose (per-asset ``resource_defs``, ``backfill_policy``, code
references) are said once here, not once per generated asset in every run's log."""

import warnings

import dagster as dg

warnings.filterwarnings("ignore", category=dg.BetaWarning)
warnings.filterwarnings("ignore", category=dg.PreviewWarning)
