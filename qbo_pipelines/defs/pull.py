"""Pull assets (QBO -> warehouse -> source app), job, webhook sensor and interval schedule.

``raw/qbo/<table>`` are materialized together by one extract per company (webhook ids, then
one CDC call); ``pushed/source/<entity>`` write QBO's changes into the source app through the
engine. One partition per connected company, like the push.
"""

from collections.abc import Iterator
from datetime import UTC, datetime

import dagster as dg

from qbo_pipelines.defs.push import (
    COMPANIES,
    CONNECTOR_COLUMNS,
    LOADED_COLUMNS,
    OWNERS,
    companies,
    ledger_query,
    table_schema,
)
from qbo_pipelines.defs.resources import (
    COMPANY_RUN,
    DIRECTION_TAG,
    REALM_TAG,
    TRIGGER_TAG,
    CompanyRunResource,
    QboResource,
    SourceAppResource,
    WarehouseResource,
    refuse_unless_connected,
)
from qbo_pipelines.sync import pipeline, pull_triggers
from qbo_pipelines.sync.extract import ENTITIES
from qbo_pipelines.sync.pull import SPECS
from qbo_pipelines.transforms import from_qbo
from qbo_pipelines.warehouse.raw_qbo import ENTITY_TABLES

RAW_TABLES = {e: ENTITY_TABLES[e] for e in ENTITIES if e in ENTITY_TABLES}


class PullConfig(dg.Config):
    """Run options for a pull (launchpad / backfill)."""

    full: bool = False  # re-read every QBO entity instead of webhook ids + one CDC call


def _raw_key(table: str) -> dg.AssetKey:
    return dg.AssetKey(["raw", "qbo", table])


RAW_QBO_SCHEMA = table_schema(
    ("realm_id", "text", "QBO company (realmId)."),
    ("qbo_id", "text", "QBO Id (unique per company and entity)."),
    ("name", "text", "DisplayName, else Name (name lists)."),
    ("doc_number", "text", "DocNumber, when the entity has one."),
    ("type", "text", "AccountType, Item type, ..."),
    ("sub_type", "text", "AccountSubType (accounts)."),
    ("active", "boolean", "Active flag of name-list entities."),
    ("ref_id", "text", "CustomerRef, else VendorRef, EntityRef or ParentRef."),
    ("ref_name", "text", "The name QBO gave with ref_id."),
    ("txn_date", "date", "TxnDate (company-local transaction date)."),
    ("due_date", "date", "DueDate."),
    ("total_amt", "numeric(18,5)", "TotalAmt in the transaction currency."),
    ("balance", "numeric(18,5)", "Open balance as QBO computed it."),
    ("sync_token", "text", "SyncToken of the stored version."),
    ("created_time", "timestamptz", "MetaData.CreateTime."),
    ("updated_time", "timestamptz", "MetaData.LastUpdatedTime of the stored version."),
    ("data", "jsonb", "The full QBO object."),
    ("deleted", "boolean", "Deleted in QBO (flagged, never removed; R36)."),
    ("deleted_at", "timestamptz", "When QBO deleted it."),
    ("first_seen_at", "timestamptz", "When the warehouse first stored it."),
    *LOADED_COLUMNS,
    *CONNECTOR_COLUMNS,
)


@dg.multi_asset(
    specs=[
        dg.AssetSpec(
            _raw_key(table),
            group_name="raw_qbo",
            kinds={"quickbooks", "postgres"},
            owners=OWNERS,
            tags={DIRECTION_TAG: "pull", "qbo_pipelines/entity": entity},
            metadata={"dagster/column_schema": RAW_QBO_SCHEMA},
            description=(
                f"QBO {entity} objects of the company in raw_qbo.{table} (lines in their own "
                "tables where the entity has lines).\n\nLoad semantics: merge by (realm_id, "
                "qbo_id); an older version never overwrites a newer one; hard deletes are "
                "flagged deleted (R36), never removed. Incremental: the ids the webhook inbox "
                "names, then one CDC call; full on the first run or with full=true."
            ),
        )
        for entity, table in RAW_TABLES.items()
    ],
    partitions_def=companies,
    resource_defs={"company_run": COMPANY_RUN},
    can_subset=False,
    name="raw_qbo",
    op_tags={DIRECTION_TAG: "pull"},
)
def raw_qbo(
    context: dg.AssetExecutionContext,
    config: PullConfig,
    warehouse: WarehouseResource,
    source_app: SourceAppResource,
    qbo: QboResource,
    company_run: CompanyRunResource,
) -> Iterator[dg.MaterializeResult]:  # type: ignore[type-arg]
    refuse_unless_connected(context, warehouse, [context.partition_key])
    with qbo.session(warehouse, source_app) as env:
        report = pipeline.pull_extract(
            env,
            context.partition_key,  # type: ignore[arg-type]
            run_id=context.run_id,
            full=config.full,
        )
    context.log.info(
        "extract for %s: %d changed, %d deleted, %d webhook events, %d reads",
        context.partition_key,
        report.changed,
        report.deleted,
        report.webhook_events,
        report.reads,
    )
    for entity, table in RAW_TABLES.items():
        yield dg.MaterializeResult(
            asset_key=_raw_key(table),
            metadata={
                "rows": report.rows.get(entity, 0),
                "full": report.full,
                "api_reads": report.reads,
                "webhook_events": report.webhook_events,
            },
        )


_PULL_NAMES = [*SPECS, "customer_transactions"]


def _pull_asset(name: str, previous: str | None) -> dg.AssetsDefinition:
    spec = SPECS.get(name)
    tables = (
        list(spec.raw_tables.values())
        if spec
        else [ENTITY_TABLES[t] for t in from_qbo.CUSTOMER_TXN_TYPES]
    )
    deps = [_raw_key(t) for t in tables]
    if previous is not None:
        deps.append(dg.AssetKey(["pushed", "source", previous]))
    what = (
        f"QBO {', '.join(spec.raw_tables)} written into the source's {spec.table} "
        f"(SPEC {', '.join(spec.entity.spec_rules)})"
        if spec
        else "Every QBO transaction of a customer listed for its source contact with a link "
        "that opens it in QBO (R26)"
    )

    @dg.asset(
        name=name,
        key_prefix=["pushed", "source"],
        deps=deps,
        partitions_def=companies,
        resource_defs={"company_run": COMPANY_RUN},
        group_name="pull",
        kinds={"postgres"},
        owners=OWNERS,
        tags={DIRECTION_TAG: "pull", "qbo_pipelines/entity": name},
        description=(
            f"{what}.\n\nLoad semantics: the QBO records out of step with sync.record_state "
            "are merged field by field (three-way against the last synced base; conflicts by "
            "the entity's policy, recorded in sync.ledger); writes are keyed upserts and "
            "compare-and-set column updates made as the sync (never pushed back, R35); deletes "
            "in QBO mark the source record, never remove it. Per-record history: sync.ledger "
            f"where direction = 'pull' and entity = '{name}'."
        ),
    )
    def _asset(
        context: dg.AssetExecutionContext,
        warehouse: WarehouseResource,
        source_app: SourceAppResource,
        qbo: QboResource,
        company_run: CompanyRunResource,
    ) -> dg.MaterializeResult:  # type: ignore[type-arg]
        with qbo.session(warehouse, source_app) as env:
            report = pipeline.pull(
                env,
                context.partition_key,  # type: ignore[arg-type]
                name,
                run_id=context.run_id,
            )
        counts = report.as_metadata()
        context.log.info("%s for %s: %s", name, context.partition_key, counts)
        return dg.MaterializeResult(
            metadata={
                **counts,
                "ledger_query": ledger_query(context.run_id, "pull", name),
            }
        )

    return _asset


PULL_ASSETS: list[dg.AssetsDefinition] = list(
    dg.with_source_code_references(  # type: ignore[arg-type]
        [
            raw_qbo,
            *(
                _pull_asset(name, _PULL_NAMES[i - 1] if i else None)
                for i, name in enumerate(_PULL_NAMES)
            ),
        ]
    )
)

pull_job = dg.define_asset_job(
    "pull_job",
    selection=dg.AssetSelection.groups("raw_qbo", "pull"),
    partitions_def=companies,
    executor_def=dg.in_process_executor,
    tags={DIRECTION_TAG: "pull"},
    description="Pull one company's QBO changes into the warehouse and the source app "
    "(also `qbo-pipelines sync pull`).",
)


def _run_requests(requests: list[pull_triggers.PullRequest]) -> list[dg.RunRequest]:
    return [
        dg.RunRequest(
            run_key=r.run_key,
            partition_key=r.realm_id,
            tags={REALM_TAG: r.realm_id, TRIGGER_TAG: r.trigger, DIRECTION_TAG: "pull"},
        )
        for r in requests
    ]


@dg.sensor(
    job=pull_job,
    minimum_interval_seconds=15,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Starts a pull of each company with webhook events waiting in the inbox (R29).",
)
def qbo_webhooks_sensor(
    context: dg.SensorEvaluationContext, warehouse: WarehouseResource
) -> dg.SensorResult:
    wh = warehouse.engine()
    try:
        requests, skips = pull_triggers.webhook_requests(wh)
    finally:
        wh.dispose()
    return dg.SensorResult(
        run_requests=_run_requests(requests),
        skip_reason="; ".join(skips) if not requests else None,
        dynamic_partitions_requests=(
            [companies.build_add_request(sorted({r.realm_id for r in requests}))]
            if requests
            else []
        ),
    )


@dg.schedule(
    job=pull_job,
    cron_schedule="*/15 * * * *",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Pulls every company whose last pull is older than its pull_interval_hours "
    "(R28, 12 by default), with or without changes; the CDC call is the safety net for lost "
    "webhooks.",
)
def pull_interval_schedule(
    context: dg.ScheduleEvaluationContext, warehouse: WarehouseResource
) -> list[dg.RunRequest] | dg.SkipReason:
    wh = warehouse.engine()
    try:
        now = context.scheduled_execution_time or datetime.now(UTC)
        requests, skips = pull_triggers.scheduled_requests(wh, now)
    finally:
        wh.dispose()
    if not requests:
        return dg.SkipReason("; ".join(skips) or "no connected company")
    return _run_requests(requests)


__all__ = [
    "COMPANIES",
    "PULL_ASSETS",
    "pull_company",
    "pull_interval_schedule",
    "pull_job",
    "qbo_webhooks_sensor",
]


def pull_company(realm_id: str, *, full: bool = False, trigger: str = "cli") -> dict[str, object]:
    """Materialize every pull asset for one company in this process (the demo; the CLI queues
    a run instead); returns the run id, success and the counts per asset."""
    from qbo_pipelines.defs import runner

    return runner.materialize_company(
        PULL_ASSETS,
        realm_id,
        run_config={"ops": {"raw_qbo": {"config": {"full": full}}}},
        tags={TRIGGER_TAG: trigger, DIRECTION_TAG: "pull"},
    )
