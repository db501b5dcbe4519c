"""Nightly reconciliation (R38): source app, QBO and warehouse compared per company and entity
(counts, totals, per-record fields), safe differences repaired through the sync engine, the
rest recorded as problems; results in ``marts.reconciliation_*``, notifications and an HTML
report (``qbo-pipelines report``). No Dagster here (``qbo_pipelines/defs/reconcile.py``)."""

from qbo_pipelines.reconcile.run import ReconcileFailed, Result, reconcile_company

__all__ = ["ReconcileFailed", "Result", "reconcile_company"]
