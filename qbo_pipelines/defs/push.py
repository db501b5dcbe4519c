"""Push assets (source app -> QBO), generated from the entity catalogue, plus job and sensor.

Asset keys ``raw/source/<entity>``, ``staged/qbo/<entity>`` and ``pushed/qbo/<entity>``, one
partition per connected QBO company. Each asset calls one library function
(:func:`qbo_pipelines.sync.pipeline.extract`, :func:`~qbo_pipelines.sync.pipeline.stage`,
:func:`~qbo_pipelines.sync.pipeline.push_staged`) and reports its counts: the extract reads the
source once (the run's snapshot), the stage checks that snapshot, and the push writes exactly
what was staged. The per-record story is in ``sync.ledger`` (query shown in the metadata).
"""

from collections.abc import Iterator
from datetime import UTC, datetime
from enum import Enum
from typing import Any

import dagster as dg

from qbo_pipelines import entities as catalogue
from qbo_pipelines.canonical import RealmId
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
from qbo_pipelines.quality import constraints
from qbo_pipelines.sync import pipeline, triggers
from qbo_pipelines.sync import settings as sync_settings

COMPANIES = "qbo_companies"
companies = dg.DynamicPartitionsDefinition(name=COMPANIES)
OWNERS = ["team:qbo-pipelines"]


class PushMode(Enum):
    """How much a push looks at: ``incremental`` (the changes since the company's position,
    plus records held back or due for retry) or ``full`` (every record re-planned; unchanged
    records still cost no QBO call)."""

    incremental = "incremental"
    full = "full"


class PushConfig(dg.Config):
    """Run options for a push (launchpad / backfill). Unknown values are refused.

    ``raw/source/<entity>`` applies them when it reads the source (the run's snapshot); the
    push writes exactly what the run staged, so its own copy only has to agree."""

    mode: PushMode = PushMode.incremental
    source_ids: list[str] = []  # push just these records (a targeted backfill)
    delete_missing: bool = False
    """With mode full: carry out as deletes however many records are gone from the source
    without a delete in its change log (else more than a few at once are held as missing)."""


def table_schema(*columns: tuple[str, str, str]) -> dg.TableSchema:
    """A column schema from (name, type, description) rows."""
    return dg.TableSchema(columns=[dg.TableColumn(n, t, description=d) for n, t, d in columns])


LOADED_COLUMNS = (
    ("loaded_at", "timestamptz", "When the row was last written."),
    ("run_id", "text", "Run that last wrote the row."),
)
CONNECTOR_COLUMNS = (
    ("_synced_at", "timestamptz", "= loaded_at, under the name managed connectors use."),
    ("_deleted", "boolean", "= deleted, under the name managed connectors use."),
)
COMPANY_COLUMN = ("realm_id", "text", "The QBO company whose push read it (key with source_id).")
RAW_SOURCE_SCHEMA = table_schema(
    COMPANY_COLUMN,
    ("source_id", "text", "The record's id in the source app (key with realm_id)."),
    ("data", "jsonb", "The canonical record as read."),
    ("content_hash", "text", "Hash of the canonical record."),
    ("source_updated_at", "timestamptz", "updated_at in the source app."),
    ("deleted", "boolean", "Hard-deleted in the source (flagged, never removed)."),
    ("deleted_at", "timestamptz", "When the delete was seen."),
    ("first_seen_at", "timestamptz", "When the warehouse first stored it."),
    ("row_hash", "text", "Hash of the source row a full read took (NULL for other reads)."),
    ("staged", "jsonb", "The record's staged column values, cast into staging by the stage."),
    *LOADED_COLUMNS,
    *CONNECTOR_COLUMNS,
)
STAGING_COLUMNS = (
    COMPANY_COLUMN,
    ("source_id", "text", "The record's id in the source app (key with realm_id)."),
    ("content_hash", "text", "Hash of the canonical record (unchanged test)."),
    ("data", "jsonb", "The canonical record, ready to become a QBO payload."),
    ("updated_at", "timestamptz", "updated_at in the source app."),
    ("staged_at", "timestamptz", "When it was staged."),
    ("run_id", "text", "Run that staged it."),
)


def staging_schema(entity: str) -> dg.TableSchema:
    """``staging.<entity>``'s columns: the canonical JSON and, for an entity with a constraint
    table, the typed columns its Great Expectations suite checks."""
    table = constraints.TABLES.get(entity)
    typed = table.columns[1:] if table is not None else ()
    return table_schema(
        *STAGING_COLUMNS,
        *((c.name, c.sql_type, "Staged value the Great Expectations suite checks.") for c in typed),
    )


RECORD_STATE_SCHEMA = table_schema(
    ("realm_id", "text", "The QBO company."),
    ("entity", "text", "Catalogue entity."),
    ("source_id", "text", "The record's id in the source app."),
    ("qbo_id", "text", "Its id in QBO once created or matched."),
    ("status", "text", "synced, held (quarantined with a reason) or failed."),
    ("source_hash", "text", "Hash of the last synced source version."),
)


def _raw_asset(entity: catalogue.Entity) -> dg.AssetsDefinition:
    @dg.asset(
        name=entity.name,
        key_prefix=["raw", "source"],
        partitions_def=companies,
        resource_defs={"company_run": COMPANY_RUN},
        group_name="raw",
        kinds={"postgres"},
        owners=OWNERS,
        tags={"qbo_pipelines/direction": "push", "qbo_pipelines/entity": entity.name},
        metadata={"dagster/column_schema": RAW_SOURCE_SCHEMA},
        description=(
            f"Source {entity.source_table} this run covers, copied into raw_source.{entity.name}."
            "\n\nLoad semantics: merge by source_id (canonical JSON + content hash); records "
            "hard-deleted in the source are flagged deleted, never removed. Incremental: the "
            "records changed since the company's push cursor (source change log), plus those "
            "held back or failed before. On the first run or with mode=full every record is "
            "looked at: Postgres hashes each source row and only records whose row moved since "
            "they were last in step are copied (the rest are counted as unchanged)."
        ),
    )
    def _asset(
        context: dg.AssetExecutionContext,
        config: PushConfig,
        warehouse: WarehouseResource,
        source_app: SourceAppResource,
        qbo: QboResource,
        company_run: CompanyRunResource,
    ) -> dg.MaterializeResult:  # type: ignore[type-arg]
        refuse_unless_connected(context, warehouse, [context.partition_key])
        with qbo.session(warehouse, source_app) as env:
            report = pipeline.extract(
                env,
                context.partition_key,  # type: ignore[arg-type]
                entity.name,
                run_id=context.run_id,
                mode=config.mode.value,
                source_ids=config.source_ids or None,
                delete_missing=config.delete_missing,
            )
        if report.missing:
            context.log.warning(
                f"{report.missing} {entity.name} are missing from the source app without a "
                "delete in its change log: held, nothing deleted in QBO (see the notification)"
            )
        return dg.MaterializeResult(
            metadata={
                "read": report.read,
                "unchanged": report.unchanged,
                "deleted": report.deleted,
                "missing": report.missing,
                "full": report.full,
            }
        )

    return _asset


def _staged_asset(entity: catalogue.Entity) -> dg.AssetsDefinition:
    key = dg.AssetKey(["staged", "qbo", entity.name])

    @dg.asset(
        key=key,
        deps=[dg.AssetKey(["raw", "source", entity.name])],
        partitions_def=companies,
        resource_defs={"company_run": COMPANY_RUN},
        group_name="staged",
        kinds={"postgres"},
        owners=OWNERS,
        tags={"qbo_pipelines/direction": "push", "qbo_pipelines/entity": entity.name},
        metadata={"dagster/column_schema": staging_schema(entity.name)},
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
            "Load semantics: merge by source_id of the records extracted in the same run "
            "(read from raw_source, never from the source app again). A "
            "failing expectation warns here; the records that break a rule are held back "
            "(quarantined with the reason) by the push, and the rest go on."
        ),
    )
    def _asset(
        context: dg.AssetExecutionContext,
        warehouse: WarehouseResource,
        source_app: SourceAppResource,
        qbo: QboResource,
        company_run: CompanyRunResource,
    ) -> Iterator[dg.MaterializeResult | dg.AssetCheckResult]:  # type: ignore[type-arg]
        with qbo.session(warehouse, source_app) as env:
            report = pipeline.stage(
                env, entity.name, run_id=context.run_id, realm_id=RealmId(context.partition_key)
            )
        yield dg.MaterializeResult(metadata={"staged": report.staged})
        summary = report.suite.metadata()
        metadata: dict[str, Any] = {
            "failing_rows": dg.MetadataValue.md(report.suite.markdown()),
            "suite": dg.MetadataValue.json(summary),
        }
        docs = str(summary.get("data_docs") or "")
        if docs:
            metadata["data_docs"] = (
                dg.MetadataValue.url(docs) if "://" in docs else dg.MetadataValue.path(docs)
            )
        yield dg.AssetCheckResult(
            check_name="great_expectations",
            passed=report.suite.success,
            severity=dg.AssetCheckSeverity.WARN,
            metadata=metadata,
        )

    return _asset


def ledger_query(run_id: str, direction: str, entity: str) -> dg.MetadataValue:
    """The SQL that lists a run's per-record history for one entity (shown in the UI)."""
    return dg.MetadataValue.md(
        "```sql\nSELECT * FROM sync.ledger\n"
        f"WHERE run_id = '{run_id}' AND direction = '{direction}'\n"
        f"  AND entity = '{entity}' ORDER BY id;\n```"
    )


def _push_asset(entity: catalogue.Entity) -> dg.AssetsDefinition:
    deps = [dg.AssetKey(["pushed", "qbo", d]) for d in entity.depends_on]
    deps.append(dg.AssetKey(["staged", "qbo", entity.name]))

    @dg.asset(
        name=entity.name,
        key_prefix=["pushed", "qbo"],
        deps=deps,
        partitions_def=companies,
        resource_defs={"company_run": COMPANY_RUN},
        group_name="push",
        kinds={"quickbooks", "postgres"},
        owners=OWNERS,
        tags={"qbo_pipelines/direction": "push", "qbo_pipelines/entity": entity.name},
        metadata={"dagster/column_schema": RECORD_STATE_SCHEMA},
        description=(
            f"Source {entity.source_table} pushed to QBO as {entity.qbo_name} "
            f"(SPEC {', '.join(entity.spec_rules)}).\n\n"
            f"Writes exactly the records staged/qbo/{entity.name} staged and checked in the "
            "same run (never re-read from the source); the change-feed position moves to the "
            "window that run's extract covered, so a later edit is pushed by the next run.\n\n"
            "Load semantics: merge by source id through sync.record_state; idempotent (every "
            "write carries a requestid per record and base version, and an unanswered call is "
            "replayed verbatim before anything new; unchanged records make no API call). "
            "Deletes: "
            f"{entity.delete.replace('_', ' ')}. Conflicts: {entity.conflict.replace('_', ' ')}. "
            "Per-record history: sync.ledger where entity = "
            f"'{entity.name}' and run_id = this run."
        ),
    )
    def _asset(
        context: dg.AssetExecutionContext,
        config: PushConfig,
        warehouse: WarehouseResource,
        source_app: SourceAppResource,
        qbo: QboResource,
        company_run: CompanyRunResource,
    ) -> dg.MaterializeResult:  # type: ignore[type-arg]
        realm = context.partition_key
        run = context.run
        with qbo.session(warehouse, source_app) as env:
            report = pipeline.push_staged(
                env,
                realm,  # type: ignore[arg-type]
                entity.name,
                run_id=context.run_id,
                snapshot_of=[r for r in (run.parent_run_id, run.root_run_id) if r],
            )
        counts = report.as_metadata()
        context.log.info("%s for %s: %s", entity.name, realm, counts)
        unanswered = report.unanswered()
        if unanswered is not None:  # a failed run: retried, notified, never a quiet success
            raise dg.Failure(description=unanswered, metadata={**counts})
        return dg.MaterializeResult(
            metadata={
                **counts,
                "api_calls": report.api_calls,
                "source_cursor": report.cursor or 0,
                "ledger_query": ledger_query(context.run_id, "push", entity.name),
            }
        )

    return _asset


PUSH_ASSETS: list[dg.AssetsDefinition] = list(
    dg.with_source_code_references(  # type: ignore[arg-type]
        [
            build(e)
            for e in catalogue.push_order()
            for build in (_raw_asset, _staged_asset, _push_asset)
        ]
    )
)

push_job = dg.define_asset_job(
    "push_job",
    selection=dg.AssetSelection.groups("raw", "staged", "push"),
    partitions_def=companies,
    executor_def=dg.in_process_executor,
    tags={DIRECTION_TAG: "push"},
    description="Push every entity of one company to QBO (also `qbo-pipelines sync push`). "
    "One process per run: an empty push takes seconds.",
)


@dg.sensor(
    job=push_job,
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Starts one push per company once source changes have settled (R27, R30); "
    "changes another route already pushed (`sync push`, a backfill) start nothing.",
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
            tags={REALM_TAG: realm, TRIGGER_TAG: "source_changes", DIRECTION_TAG: "push"},
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


__all__ = [
    "COMPANIES",
    "PUSH_ASSETS",
    "REALM_TAG",
    "PushConfig",
    "PushMode",
    "companies",
    "push_job",
    "source_changes_sensor",
    "triggers",
]
