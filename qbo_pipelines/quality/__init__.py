"""Data quality before writing to QBO (R40, R12, R31). Plain library: no Dagster here.

* :mod:`~qbo_pipelines.quality.constraints`: ONE table of constraints per entity (QBO's limits,
  required fields, formats, ranges, name rules, totals): it drives both of the following;
* :mod:`~qbo_pipelines.quality.rules`: pure per-record rules over canonical records, returning
  :class:`~qbo_pipelines.quality.rules.Violation` s (and constructors for the mapping and
  reference violations the push planner finds);
* :mod:`~qbo_pipelines.quality.quarantine`: holds failing records in ``sync.quarantine`` with an
  operator notification, releases them once they pass;
* :mod:`~qbo_pipelines.quality.gx_suites`: Great Expectations 1.x suites over the Postgres
  staging tables, returning plain :class:`~qbo_pipelines.quality.gx_suites.SuiteOutcome` s
  (failing rows, Data Docs) for asset checks (GX is imported lazily: importing this package
  stays cheap).
"""

from qbo_pipelines.quality.rules import (
    Violation,
    check,
    merge_by_rule,
    missing_mapping,
    record_label,
    unresolved_reference,
)

__all__ = [
    "Violation",
    "check",
    "merge_by_rule",
    "missing_mapping",
    "record_label",
    "unresolved_reference",
]
