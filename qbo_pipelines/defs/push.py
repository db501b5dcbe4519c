"""Push assets (source app -> QBO), generated from the entity catalogue, plus job and sensor.

Asset keys ``pushed/qbo/<entity>``, one partition per connected QBO company. Each asset calls
one library function (:func:`qbo_pipelines.sync.pipeline.push`) and reports its counts; the
per-record story is in ``sync.ledger`` (query shown in the metadata).
"""

from datetime import UTC, datetime

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


def _push_asset(entity: catalogue.Entity) -> dg.AssetsDefinition:
    deps = [dg.AssetKey(["pushed", "qbo", d]) for d in entity.depends_on]

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
            "Load semantics: merge by source id through sync.id_map; idempotent (every write "
            "carries a deterministic requestid; unchanged records make no API call). Deletes: "
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
            mode="full" if config.mode == "full" else "incremental",
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


PUSH_ASSETS = [_push_asset(e) for e in catalogue.push_order()]

push_job = dg.define_asset_job(
    "push_job",
    selection=dg.AssetSelection.groups("push"),
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
