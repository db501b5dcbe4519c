"""Push assets (source app -> QBO), generated from the entity catalogue, plus job and sensor.

Asset keys ``pushed/qbo/<entity>``, one partition per connected QBO company. Each asset calls
one library function (:func:`qbo_pipelines.sync.pipeline.push`) and reports its counts; the
per-record story is in ``sync.ledger`` (query shown in the metadata).
"""

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Literal

import dagster as dg

from qbo_pipelines import entities as catalogue
from qbo_pipelines.defs.resources import QboResource, SourceAppResource, WarehouseResource
from qbo_pipelines.sync import pipeline, triggers
from qbo_pipelines.sync import settings as sync_settings

REALM_TAG = "qbo_pipelines/realm"
COMPANIES = "qbo_companies"
companies = dg.DynamicPartitionsDefinition(name=COMPANIES)


class PushConfig(dg.Config):
    """Run options for a push (launchpad / backfill)."""

    mode: str = "incremental"  # "full" re-plans every record (no write when unchanged)
    source_ids: list[str] = []  # push just these records (a targeted backfill)


def _mode(config: PushConfig) -> Literal["incremental", "full"]:
    return "full" if config.mode == "full" else "incremental"


def _raw_asset(entity: catalogue.Entity) -> dg.AssetsDefinition:
    @dg.asset(
        name=entity.name,
        key_prefix=["raw", "source"],
        partitions_def=companies,
        group_name="raw",
        kinds={"postgres"},
        description=(
            f"Source {entity.source_table} this run covers, copied into raw_source.{entity.name}."
            "\n\nLoad semantics: merge by source_id (canonical JSON + content hash); records "
            "hard-deleted in the source are flagged deleted, never removed. Incremental: the "
            "records changed since the company's push cursor (source change log), plus those "
            "held back or failed before; every record on the first run or with mode=full."
        ),
    )
    def _asset(
        context: dg.AssetExecutionContext,
        config: PushConfig,
        warehouse: WarehouseResource,
        source_app: SourceAppResource,
        qbo: QboResource,
    ) -> dg.MaterializeResult:  # type: ignore[type-arg]
        env = qbo.sync_env(warehouse.engine(), source_app.engine())
        report = pipeline.extract(
            env,
            context.partition_key,
            entity.name,
            run_id=context.run_id,  # type: ignore[arg-type]
            mode=_mode(config),
            source_ids=config.source_ids or None,
        )
        return dg.MaterializeResult(
            metadata={"read": report.read, "deleted": report.deleted, "full": report.full}
        )

    return _asset


def _staged_asset(entity: catalogue.Entity) -> dg.AssetsDefinition:
    key = dg.AssetKey(["staged", "qbo", entity.name])

    @dg.asset(
        key=key,
        deps=[dg.AssetKey(["raw", "source", entity.name])],
        partitions_def=companies,
        group_name="staged",
        kinds={"postgres"},
        check_specs=[
            dg.AssetCheckSpec(
                "great_expectations",
                asset=key,
                description=f"Great Expectations suite for staged {entity.name} (R40).",
            )
        ],
        description=(
            f"Canonical {entity.name} ready to become QBO {entity.qbo_name} payloads, in "
            f"staging.{entity.name}, validated by a Great Expectations suite (asset check).\n\n"
            "Load semantics: merge by source_id of the records extracted in the same run. A "
            "failing expectation warns here; the records that break a rule are held back "
            "(quarantined with the reason) by the push, and the rest go on."
        ),
    )
    def _asset(
        context: dg.AssetExecutionContext,
        warehouse: WarehouseResource,
        source_app: SourceAppResource,
        qbo: QboResource,
    ) -> Iterator[dg.MaterializeResult | dg.AssetCheckResult]:  # type: ignore[type-arg]
        env = qbo.sync_env(warehouse.engine(), source_app.engine())
        report = pipeline.stage(env, entity.name, run_id=context.run_id)
        yield dg.MaterializeResult(metadata={"staged": report.staged})
        yield dg.AssetCheckResult(
            check_name="great_expectations",
            passed=report.suite.success,
            severity=dg.AssetCheckSeverity.WARN,
            metadata={"suite": dg.MetadataValue.json(report.suite.metadata())},
        )

    return _asset


def _push_asset(entity: catalogue.Entity) -> dg.AssetsDefinition:
    deps = [dg.AssetKey(["pushed", "qbo", d]) for d in entity.depends_on]
    deps.append(dg.AssetKey(["staged", "qbo", entity.name]))

    @dg.asset(
        name=entity.name,
        key_prefix=["pushed", "qbo"],
        deps=deps,
        partitions_def=companies,
        group_name="push",
        kinds={"quickbooks", "postgres"},
        description=(
            f"Source {entity.source_table} pushed to QBO as {entity.qbo_name} "
            f"(SPEC {', '.join(entity.spec_rules)}).\n\n"
            "Load semantics: merge by source id through sync.record_state; idempotent (every "
            "write carries a requestid per record and base version, and an unanswered call is "
            "replayed verbatim before anything new; unchanged records make no API call). "
            "Deletes: "
            f"{entity.delete.replace('_', ' ')}. Conflicts: {entity.conflict.replace('_', ' ')}. "
            "Per-record history: sync.ledger where entity = "
            f"'{entity.name}' and run_id = this run."
        ),
        tags={"qbo_pipelines/direction": "push"},
    )
    def _asset(
        context: dg.AssetExecutionContext,
        config: PushConfig,
        warehouse: WarehouseResource,
        source_app: SourceAppResource,
        qbo: QboResource,
    ) -> dg.MaterializeResult:  # type: ignore[type-arg]
        realm = context.partition_key
        env = qbo.sync_env(warehouse.engine(), source_app.engine())
        report = pipeline.push(
            env,
            realm,  # type: ignore[arg-type]
            entity.name,
            run_id=context.run_id,
            mode=_mode(config),
            source_ids=config.source_ids or None,
        )
        counts = report.as_metadata()
        context.log.info("%s for %s: %s", entity.name, realm, counts)
        return dg.MaterializeResult(
            metadata={
                **counts,
                "api_calls": report.api_calls,
                "source_cursor": report.cursor or 0,
                "ledger_query": dg.MetadataValue.md(
                    "```sql\nSELECT * FROM sync.ledger\n"
                    f"WHERE run_id = '{context.run_id}' AND entity = '{entity.name}'\n"
                    "ORDER BY id;\n```"
                ),
            }
        )

    return _asset


PUSH_ASSETS = [
    build(e) for e in catalogue.push_order() for build in (_raw_asset, _staged_asset, _push_asset)
]

push_job = dg.define_asset_job(
    "push_job",
    selection=dg.AssetSelection.groups("raw", "staged", "push"),
    partitions_def=companies,
    description="Push every entity of one company to QBO (also `qbo-pipelines sync push`).",
)


@dg.sensor(
    job=push_job,
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Starts one push per company once source changes have settled (R27, R30).",
)
def source_changes_sensor(
    context: dg.SensorEvaluationContext,
    warehouse: WarehouseResource,
    source_app: SourceAppResource,
) -> dg.SensorResult:
    """Debounced push trigger: quiet for the debounce window, or the maximum wait reached."""
    cursor = sync_settings.parse_cursor(context.cursor)
    wh, src = warehouse.engine(), source_app.engine()
    try:
        requests, skips, cursor = sync_settings.plan_push_requests(
            wh, src, cursor, datetime.now(UTC)
        )
    finally:
        wh.dispose()
        src.dispose()
    run_requests = [
        dg.RunRequest(
            run_key=d.run_key,
            partition_key=realm,
            tags={REALM_TAG: realm, "qbo_pipelines/trigger": "source_changes"},
        )
        for realm, d in requests
    ]
    new_partitions = [realm for realm, _ in requests]
    return dg.SensorResult(
        run_requests=run_requests,
        skip_reason="; ".join(skips) if not run_requests else None,
        cursor=sync_settings.dump_cursor(cursor),
        dynamic_partitions_requests=(
            [companies.build_add_request(new_partitions)] if new_partitions else []
        ),
    )


__all__ = ["PUSH_ASSETS", "companies", "push_job", "source_changes_sensor", "triggers"]
