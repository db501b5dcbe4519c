"""Notifications in Dagster (R31): failed runs open one, successful runs resolve it, and a sensor
delivers what is pending to the configured channels every 30 seconds.

Thin: each sensor calls one function of :mod:`qbo_pipelines.notify` (no SQL, SMTP or HTTP
here). All three are on by default.

* ``notify_run_failure_sensor``: a run of any job in this code location fails -> one open
  notification per company and job (:func:`~qbo_pipelines.notify.sources.notify_run_failed`),
  naming the run, the failed steps and the first error.
* ``notify_run_success_sensor``: a run succeeds -> that company's failed-run notification for
  the same job is resolved (its resolution is announced once where the failure was).
* ``notify_delivery_sensor``: :func:`~qbo_pipelines.notify.delivery.deliver_pending` (digests,
  once per channel, retries with backoff); its tick shows what was sent.
"""

from __future__ import annotations

import dagster as dg
import sqlalchemy as sa

from qbo_pipelines import companies
from qbo_pipelines.defs.push import REALM_TAG
from qbo_pipelines.defs.reconcile import JOB as RECONCILE_JOB
from qbo_pipelines.defs.resources import COMPANY_JOBS, WarehouseResource
from qbo_pipelines.defs.runner import describe_failure
from qbo_pipelines.notify import delivery, sources

PARTITION_TAG = "dagster/partition"
DELIVERY_BUDGET_SECONDS = 40.0
"""A delivery tick starts no new channel after this long (ticks must end well within 60 s)."""


def run_realm(run: dg.DagsterRun) -> str | None:
    """The QBO company a run is for: our realm tag, else its (company) partition."""
    tags = run.tags
    if tags.get(REALM_TAG):
        return tags[REALM_TAG]
    for key, value in sorted(tags.items()):  # multi-partitions: dagster/partition/<dimension>
        dimension = key.removeprefix(f"{PARTITION_TAG}/")
        if key.startswith(f"{PARTITION_TAG}/") and ("compan" in dimension or "realm" in dimension):
            return value
    return tags.get(PARTITION_TAG)


def _notifiable(engine: sa.Engine, realm: str | None, job: str) -> bool:
    """Whether a failed run opens a notification: a run of a connected company (one that needs
    reconnecting included), or a run for no company of a job that is not a company's. A run
    for a company never connected or disconnected since (launched by hand, or the retry of an
    older failure) would open a notification nothing can resolve."""
    if realm is None:
        return job not in COMPANY_JOBS and job != RECONCILE_JOB
    return any(c.realm_id == realm for c in companies.connected(engine))


def failure_text(context: dg.RunFailureSensorContext) -> str:
    """The run's failure message plus the first failed step's error (no stack trace)."""
    return describe_failure(context.failure_event.message, context.get_step_failure_events())


@dg.run_failure_sensor(
    name="notify_run_failure_sensor",
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="A failed run opens one notification per company and job (R31).",
)
def notify_run_failure_sensor(
    context: dg.RunFailureSensorContext, warehouse: WarehouseResource
) -> None:
    run = context.dagster_run
    realm = run_realm(run)
    engine = warehouse.engine()
    try:
        if not _notifiable(engine, realm, run.job_name):
            context.log.info(
                "run %s of %s for %s: not a connected company, no notification",
                run.run_id,
                run.job_name,
                realm,
            )
            return
        nid = sources.notify_run_failed(
            engine, realm, run.run_id, run.job_name, failure_text(context)
        )
    finally:
        engine.dispose()
    context.log.info("run %s of %s for %s: notification %s", run.run_id, run.job_name, realm, nid)


@dg.run_status_sensor(
    run_status=dg.DagsterRunStatus.SUCCESS,
    name="notify_run_success_sensor",
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="A successful run resolves its company's failed-run notification (R31).",
)
def notify_run_success_sensor(
    context: dg.RunStatusSensorContext, warehouse: WarehouseResource
) -> None:
    run = context.dagster_run
    engine = warehouse.engine()
    try:
        resolved = sources.resolve_run_failed(engine, run_realm(run), run.job_name)
    finally:
        engine.dispose()
    if resolved:
        context.log.info("run %s of %s: failure notification resolved", run.run_id, run.job_name)


@dg.sensor(
    name="notify_delivery_sensor",
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description=(
        "Sends pending notifications (R31) to the channels of `qbo-pipelines notify list`: one "
        "digest per channel, once each, failed sends retried with backoff."
    ),
)
def notify_delivery_sensor(
    context: dg.SensorEvaluationContext, warehouse: WarehouseResource
) -> dg.SkipReason:
    engine = warehouse.engine()
    try:
        report = delivery.deliver_pending(engine, max_seconds=DELIVERY_BUDGET_SECONDS)
    finally:
        engine.dispose()
    for outcome in report.outcomes:
        (context.log.info if outcome.sent else context.log.warning)(outcome.describe())
    return dg.SkipReason(report.summary())


NOTIFY_SENSORS: list[dg.SensorDefinition] = [
    notify_run_failure_sensor,
    notify_run_success_sensor,
    notify_delivery_sensor,
]
definitions = dg.Definitions(sensors=NOTIFY_SENSORS)

__all__ = [
    "NOTIFY_SENSORS",
    "definitions",
    "failure_text",
    "notify_delivery_sensor",
    "notify_run_failure_sensor",
    "notify_run_success_sensor",
    "run_realm",
]
