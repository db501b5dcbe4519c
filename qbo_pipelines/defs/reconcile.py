"""Nightly reconciliation (R38) in Dagster: ``reconciled/<entity>`` materialized together by
one reconciliation per company (:func:`qbo_pipelines.reconcile.reconcile_company`), its job,
and a nightly schedule (on by default) that honours pause and automatic sync (R30)."""

from collections.abc import Iterator

import dagster as dg

from qbo_pipelines.defs.push import companies
from qbo_pipelines.defs.resources import (
    DIRECTION_TAG,
    REALM_TAG,
    TRIGGER_TAG,
    QboResource,
    SourceAppResource,
    WarehouseResource,
)
from qbo_pipelines.reconcile import ReconcileFailed, reconcile_company, triggers
from qbo_pipelines.reconcile.compare import COMPARED

JOB = "reconcile_job"


def _key(entity: str) -> dg.AssetKey:
    return dg.AssetKey(["reconciled", entity])


@dg.multi_asset(
    specs=[
        dg.AssetSpec(
            _key(c.entity),
            group_name="reconcile",
            kinds={"quickbooks", "postgres"},
            tags={DIRECTION_TAG: "reconcile"},
            description=(
                f"{c.entity} of the company compared across the source app, QBO "
                f"({', '.join(c.qbo_entities)}: COUNT queries and QBO's reports) and the "
                "warehouse (raw_qbo, sync.record_state): counts, totals and per-record fields. "
                "Safe differences are repaired through the sync (re-push, re-pull) and "
                "verified; the rest become notifications (marts.open_problems). Results: "
                "marts.reconciliation_runs, _figures, _findings, _states; the HTML report: "
                "`qbo-pipelines report`."
            ),
        )
        for c in COMPARED
    ],
    partitions_def=companies,
    can_subset=False,
    name="reconciliation",
    op_tags={DIRECTION_TAG: "reconcile"},
)
def reconciliation(
    context: dg.AssetExecutionContext,
    warehouse: WarehouseResource,
    source_app: SourceAppResource,
    qbo: QboResource,
) -> Iterator[dg.MaterializeResult]:  # type: ignore[type-arg]
    env = qbo.sync_env(warehouse.engine(), source_app.engine())
    trigger = context.run.tags.get(TRIGGER_TAG, "ui")
    try:
        result = reconcile_company(
            env,
            context.partition_key,  # type: ignore[arg-type]
            run_id=context.run_id,
            trigger=trigger,
        )
    except ReconcileFailed as exc:  # recorded as failed, with the reason: no stack trace
        raise dg.Failure(description=str(exc)) from None
    context.log.info(result.run.summary)
    summary = dg.MetadataValue.md(result.summary_markdown())
    for c in COMPARED:
        figures = [f for f in result.figures if f.entity == c.entity]
        found = [o for o in result.outcomes if o.finding.entity == c.entity]
        yield dg.MaterializeResult(
            asset_key=_key(c.entity),
            metadata={
                "differences": len(found),
                "repaired": sum(1 for o in found if o.repaired),
                "problems": sum(1 for o in found if not o.repaired),
                "figures": dg.MetadataValue.table(
                    [
                        dg.TableRecord(
                            {
                                "measure": f.measure,
                                "source": "" if f.source is None else str(f.source),
                                "qbo": "" if f.qbo is None else str(f.qbo),
                                "warehouse": "" if f.warehouse is None else str(f.warehouse),
                                "agrees": f.agrees,
                            }
                        )
                        for f in figures
                    ],
                    schema=_FIGURES_SCHEMA,
                ),
                "findings": dg.MetadataValue.table(
                    [
                        dg.TableRecord(
                            {
                                "record": o.finding.record_id,
                                "kind": o.finding.kind,
                                "field": o.finding.field,
                                "source": o.finding.source_value or "",
                                "qbo": o.finding.qbo_value or "",
                                "action": o.action,
                                "repaired": o.repaired,
                            }
                        )
                        for o in found[:100]
                    ],
                    schema=_FINDINGS_SCHEMA,
                ),
                "summary": summary,
                "qbo_reads": result.run.qbo_reads,
                "qbo_writes": result.run.qbo_writes,
            },
        )


_FIGURES_SCHEMA = dg.TableSchema(
    columns=[
        dg.TableColumn("measure", "string"),
        dg.TableColumn("source", "string"),
        dg.TableColumn("qbo", "string"),
        dg.TableColumn("warehouse", "string"),
        dg.TableColumn("agrees", "bool"),
    ]
)
_FINDINGS_SCHEMA = dg.TableSchema(
    columns=[
        dg.TableColumn("record", "string"),
        dg.TableColumn("kind", "string"),
        dg.TableColumn("field", "string"),
        dg.TableColumn("source", "string"),
        dg.TableColumn("qbo", "string"),
        dg.TableColumn("action", "string"),
        dg.TableColumn("repaired", "bool"),
    ]
)

reconcile_job = dg.define_asset_job(
    JOB,
    selection=dg.AssetSelection.groups("reconcile"),
    partitions_def=companies,
    executor_def=dg.in_process_executor,
    tags={DIRECTION_TAG: "reconcile"},
    description="Reconcile one company: source app, QBO and warehouse compared, safe "
    "differences repaired, the rest reported (also `qbo-pipelines reconcile`).",
)


@dg.schedule(
    job=reconcile_job,
    cron_schedule="30 2 * * *",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Every night at 02:30 UTC, a reconciliation of every connected company that is "
    "not paused and has automatic sync on (R38, R30).",
)
def nightly_reconciliation_schedule(
    context: dg.ScheduleEvaluationContext, warehouse: WarehouseResource
) -> list[dg.RunRequest] | dg.SkipReason:
    wh = warehouse.engine()
    try:
        now = context.scheduled_execution_time
        requests, skips = triggers.nightly_requests(wh, now)
    finally:
        wh.dispose()
    if not requests:
        return dg.SkipReason("; ".join(skips) or "no connected company")
    return [
        dg.RunRequest(
            run_key=r.run_key,
            partition_key=r.realm_id,
            tags={REALM_TAG: r.realm_id, TRIGGER_TAG: r.trigger, DIRECTION_TAG: "reconcile"},
        )
        for r in requests
    ]


definitions = dg.Definitions(
    assets=[reconciliation],
    jobs=[reconcile_job],
    schedules=[nightly_reconciliation_schedule],
)

__all__ = ["definitions", "nightly_reconciliation_schedule", "reconcile_job", "reconciliation"]
