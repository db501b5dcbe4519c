"""Notifications that do not come from a single record: failed runs and companies to reconnect.

Record problems (held back by a rule or a missing mapping, refused by QBO, an invoice QBO would
not email) are opened and resolved by the push itself through
:mod:`qbo_pipelines.quality.quarantine`. This module adds the two other causes R31 names, in the
same table (``sync.notifications``) and with the same rules: ONE open notification per cause
(a repeat refreshes its reason instead of piling up), resolved when the cause is gone.

* A failed Dagster run: one per company and job while open (entity ``run``, record id the job
  name); resolved when a later run of that job for that company succeeds.
* A company whose refresh token QBO rejected (``needs_reconnect``): one per company (entity
  ``company``, record id the realm id); resolved when it is connected again.
"""

from __future__ import annotations

from typing import Final

from qbo_pipelines.quality import quarantine
from qbo_pipelines.quality.quarantine import Bind

RUN_ENTITY: Final = "run"
RUN_FAILED_TITLE: Final = "Sync run failed"
COMPANY_ENTITY: Final = "company"
RECONNECT_TITLE: Final = "Company needs reconnecting"
NO_COMPANY: Final = "*"
"""Realm id recorded for a failed run that belongs to no company (launched without one)."""

_ERROR_CHARS = 1500


def notify_run_failed(
    engine: Bind, realm_id: str | None, run_id: str, job: str, error: str | None
) -> int:
    """Open (or refresh) the notification for a failed run of ``job`` for a company.

    Deduplicated per company and job while open: a second failure of the same job refreshes the
    reason (latest run id and error) and is not announced again.

    Args:
        engine: the warehouse engine, or a connection inside the caller's transaction.
        realm_id: the run's company (None: a run for no company, recorded as ``*``).
        run_id: the Dagster run id (named in the reason, to find the run in the UI).
        job: the Dagster job name.
        error: what failed (the failure message; shortened).

    Returns:
        The notification id.
    """
    detail = " ".join((error or "no error message").split())
    if len(detail) > _ERROR_CHARS:
        detail = detail[: _ERROR_CHARS - 1] + "…"
    return quarantine.notify_failure(
        engine,
        realm_id or NO_COMPANY,
        RUN_ENTITY,
        job,
        title=RUN_FAILED_TITLE,
        reason=f"Run {run_id} of {job} failed: {detail}",
        fix=(
            f"Open run {run_id} in the Dagster UI to see the failing step and its log. Records "
            "the run did not reach are picked up by the next run (writes are idempotent); this "
            "notification resolves itself when a run of the same job succeeds."
        ),
    )


def resolve_run_failed(engine: Bind, realm_id: str | None, job: str) -> int:
    """Resolve the open failed-run notification of a company and job (a later run succeeded).

    Returns:
        How many notifications were resolved (0 or 1).
    """
    return quarantine.resolve_notifications(
        engine, realm_id or NO_COMPANY, RUN_ENTITY, [job], title=RUN_FAILED_TITLE
    )


def notify_needs_reconnect(engine: Bind, realm_id: str, reason: str) -> int:
    """Open (or refresh) the notification of a company whose QBO connection must be renewed.

    Args:
        engine: the warehouse engine, or a connection inside the caller's transaction.
        realm_id: the QBO company.
        reason: why (e.g. QBO rejected the refresh token with ``invalid_grant``).

    Returns:
        The notification id.
    """
    return quarantine.notify_failure(
        engine,
        realm_id,
        COMPANY_ENTITY,
        realm_id,
        title=RECONNECT_TITLE,
        reason=f"Company {realm_id} cannot be synced: {reason}",
        fix=(
            f"Reconnect it: `qbo-pipelines connect` and approve company {realm_id} on the "
            "QuickBooks consent page. Its runs fail until then; everything waiting is synced "
            "by the first run after the reconnect."
        ),
    )


def resolve_needs_reconnect(engine: Bind, realm_id: str) -> int:
    """Resolve the reconnect notification of a company (it was connected again).

    Returns:
        How many notifications were resolved (0 or 1).
    """
    return quarantine.resolve_notifications(
        engine, realm_id, COMPANY_ENTITY, [realm_id], title=RECONNECT_TITLE
    )


__all__ = [
    "COMPANY_ENTITY",
    "NO_COMPANY",
    "RECONNECT_TITLE",
    "RUN_ENTITY",
    "RUN_FAILED_TITLE",
    "notify_needs_reconnect",
    "notify_run_failed",
    "resolve_needs_reconnect",
    "resolve_run_failed",
]
