"""Date-range backfills (R39): transaction assets partitioned by day x company.

``backfill/qbo/<table>`` re-extracts one QBO transaction entity of the selected days into
``raw_qbo`` (and writes what changed back to the source app); ``backfill/source/<entity>``
re-pushes the source records of those days through the engine. Both are partitioned by
``date`` (daily) x ``company`` (the same dynamic ``qbo_companies`` the sync uses) and carry
``BackfillPolicy.single_run()``: a backfill of any range of days is ONE run per company, which
reads the range as one window (``context.partition_time_window``). Each asset calls one library
function (:mod:`qbo_pipelines.sync.backfill`) per company of the run.

They sit next to the company-partitioned sync assets instead of re-partitioning them: the
sensor, the schedules, ``sync push|pull``, ``runner.submit`` and the demo keep launching runs
keyed by the company alone (see docs/backfills.md).

The code location's default executor is in-process (set here, merged into the location): a
backfill run, or any asset run the UI launches, imports the pipeline once, not once per step.
"""

from collections.abc import Callable, Mapping

import dagster as dg
from pydantic import Field

from qbo_pipelines import entities as catalogue
from qbo_pipelines.canonical import RealmId
from qbo_pipelines.defs.pull import RAW_QBO_SCHEMA
from qbo_pipelines.defs.push import OWNERS, RECORD_STATE_SCHEMA, companies
from qbo_pipelines.defs.resources import (
    COMPANY_DIMENSION,
    COMPANY_RUN,
    DATE_DIMENSION,
    DIRECTION_TAG,
    CompanyRunResource,
    QboResource,
    SourceAppResource,
    WarehouseResource,
    refuse_run,
    refuse_unless_connected,
)
from qbo_pipelines.sync import backfill
from qbo_pipelines.warehouse.raw_qbo import ENTITY_TABLES

BACKFILL_START = "2015-01-01"
"""The first day a backfill can select."""

days = dg.DailyPartitionsDefinition(start_date=BACKFILL_START, end_offset=2)
"""Up to tomorrow in UTC (``end_offset`` 1 is today): a company's today in QBO may be ahead
of ours, and transactions dated tomorrow are backfilled like any others."""
by_day_and_company = dg.MultiPartitionsDefinition(
    {COMPANY_DIMENSION: companies, DATE_DIMENSION: days}
)
SINGLE_RUN = dg.BackfillPolicy.single_run()


def run_window(context: dg.AssetExecutionContext) -> tuple[list[str], backfill.Window]:
    """The companies and the days a backfill run covers (one company unless the backfill
    selected more companies than days)."""
    window = context.partition_time_window
    found: dict[str, None] = {}
    for key in context.partition_keys:
        parsed = by_day_and_company.get_partition_key_from_str(key)
        found[parsed.keys_by_dimension[COMPANY_DIMENSION]] = None
    return list(found), backfill.Window.of(window.start, window.end)


def _metadata(per_company: Mapping[str, Mapping[str, int]], window: str) -> dict[str, object]:
    single = len(per_company) == 1
    out: dict[str, object] = {"window": window, "companies": len(per_company)}
    for realm, counts in per_company.items():
        out.update({(k if single else f"{realm}.{k}"): v for k, v in counts.items()})
    return out


def _run(
    context: dg.AssetExecutionContext,
    qbo: QboResource,
    warehouse: WarehouseResource,
    source_app: SourceAppResource,
    step: Callable[..., backfill.ReextractReport | backfill.RepushReport],
    name: str,
) -> dg.MaterializeResult:  # type: ignore[type-arg]
    realms, window = run_window(context)
    refuse_unless_connected(context, warehouse, realms)
    per_company: dict[str, dict[str, int]] = {}
    with qbo.session(warehouse, source_app) as env:
        for realm in realms:
            report = step(env, RealmId(realm), name, window, run_id=context.run_id)
            per_company[realm] = report.as_metadata()
            context.log.info("%s %s for %s: %s", name, window, realm, per_company[realm])
    return dg.MaterializeResult(metadata=_metadata(per_company, str(window)))  # type: ignore[arg-type]


def _qbo_asset(qbo_entity: str) -> dg.AssetsDefinition:
    table = ENTITY_TABLES[qbo_entity]
    back = ", ".join(backfill.write_backs(qbo_entity)) or "none"

    @dg.asset(
        key=["backfill", "qbo", table],
        partitions_def=by_day_and_company,
        backfill_policy=SINGLE_RUN,
        resource_defs={"company_run": COMPANY_RUN},
        group_name="backfill_qbo",
        kinds={"quickbooks", "postgres"},
        owners=OWNERS,
        tags={DIRECTION_TAG: "pull", "qbo_pipelines/entity": qbo_entity},
        metadata={"dagster/column_schema": RAW_QBO_SCHEMA},
        description=(
            f"QBO {qbo_entity} of the selected days (TxnDate) re-extracted into raw_qbo.{table}, "
            f"then written back to the source app (write-backs: {back}). R39.\n\n"
            "Load semantics: paged queries of 1000 rows through the company's one rate budget; "
            "merge by (realm_id, qbo_id), newer version wins (an unchanged object writes "
            "nothing); rows of the window QBO no longer has are flagged deleted, never "
            "removed. One run per company for any range of days."
        ),
    )
    def _asset(
        context: dg.AssetExecutionContext,
        warehouse: WarehouseResource,
        source_app: SourceAppResource,
        qbo: QboResource,
        company_run: CompanyRunResource,
    ) -> dg.MaterializeResult:  # type: ignore[type-arg]
        return _run(context, qbo, warehouse, source_app, backfill.reextract_window, qbo_entity)

    return _asset


def _source_asset(entity: catalogue.Entity) -> dg.AssetsDefinition:
    deps = [
        dg.AssetKey(["backfill", "source", d])
        for d in entity.depends_on
        if d in backfill.SOURCE_TRANSACTIONS
    ]

    @dg.asset(
        key=["backfill", "source", entity.name],
        deps=deps,
        partitions_def=by_day_and_company,
        backfill_policy=SINGLE_RUN,
        resource_defs={"company_run": COMPANY_RUN},
        group_name="backfill_source",
        kinds={"quickbooks", "postgres"},
        owners=OWNERS,
        tags={DIRECTION_TAG: "push", "qbo_pipelines/entity": entity.name},
        metadata={"dagster/column_schema": RECORD_STATE_SCHEMA},
        description=(
            f"Source {entity.source_table} dated in the selected days re-pushed to QBO as "
            f"{entity.qbo_name} through the engine (R39), after the entity's pending changes."
            "\n\nLoad semantics: as pushed/qbo: merge by source id through sync.record_state; "
            "a record in step with its last synced version makes no QBO call, so a repeated "
            "backfill writes nothing. One run per company for any range of days."
        ),
    )
    def _asset(
        context: dg.AssetExecutionContext,
        warehouse: WarehouseResource,
        source_app: SourceAppResource,
        qbo: QboResource,
        company_run: CompanyRunResource,
    ) -> dg.MaterializeResult:  # type: ignore[type-arg]
        return _run(context, qbo, warehouse, source_app, backfill.repush_window, entity.name)

    return _asset


class RangeConfig(dg.Config):
    """A backfill of any range of days (R39), both days included: ISO dates from 0001-01-01 to
    9999-12-31, where the date partitions of the backfill assets start at 2015-01-01 and end
    tomorrow. Empty entity lists take every dated entity of that side; ``[]`` on both is
    refused."""

    first_day: str = Field(description="first day of the range, YYYY-MM-DD (included)")
    last_day: str = Field(description="last day of the range, YYYY-MM-DD (included)")
    qbo_entities: list[str] = Field(
        default_factory=lambda: list(backfill.QBO_TRANSACTIONS),
        description="QBO transaction entities re-extracted by TxnDate (then written back), "
        f"any of: {', '.join(backfill.QBO_TRANSACTIONS)}",
    )
    source_entities: list[str] = Field(
        default_factory=lambda: list(backfill.SOURCE_TRANSACTIONS),
        description="source entities re-pushed by their date, any of: "
        f"{', '.join(backfill.SOURCE_TRANSACTIONS)}",
    )


@dg.op(
    description="Re-extract the chosen QBO transactions of the range (then their write-back "
    "into the source app), then re-push the chosen source transactions of the range (R39).",
)
def backfill_range(
    context: dg.OpExecutionContext,
    config: RangeConfig,
    warehouse: WarehouseResource,
    source_app: SourceAppResource,
    qbo: QboResource,
    range_company_run: CompanyRunResource,
) -> dg.Output[None]:
    try:
        window = backfill.range_window(
            config.first_day, config.last_day, config.qbo_entities, config.source_entities
        )
    except ValueError as exc:
        refuse_run(context, f"{exc}.")
    realm = context.partition_key
    refuse_unless_connected(context, warehouse, [realm])
    done: dict[str, dict[str, int]] = {}
    with qbo.session(warehouse, source_app) as env:
        for name in config.qbo_entities:
            done[f"qbo/{ENTITY_TABLES[name]}"] = backfill.reextract_window(
                env, RealmId(realm), name, window, run_id=context.run_id
            ).as_metadata()
        for entity in catalogue.push_order():
            if entity.name in config.source_entities:
                done[f"source/{entity.name}"] = backfill.repush_window(
                    env, RealmId(realm), entity.name, window, run_id=context.run_id
                ).as_metadata()
    for key, counts in done.items():
        context.log.info("%s %s for %s: %s", key, window, realm, counts)
    return dg.Output(None, metadata=_metadata({realm: _flat(done)}, str(window)))  # type: ignore[arg-type]


def _flat(done: Mapping[str, Mapping[str, int]]) -> dict[str, int]:
    return {f"{key}.{k}": v for key, counts in done.items() for k, v in counts.items()}


@dg.job(
    partitions_def=companies,
    executor_def=dg.in_process_executor,
    tags={DIRECTION_TAG: "both"},
    description="Backfill any range of days of one company (R39): in the launchpad, pick the "
    "company partition and give first_day and last_day (any dates, 0001-01-01 to 9999-12-31) "
    "and the entities. Idempotent: a record in step makes no QBO write and no source write.",
)
def backfill_range_job() -> None:
    backfill_range()


BACKFILL_ASSETS: list[dg.AssetsDefinition] = list(
    dg.with_source_code_references(  # type: ignore[arg-type]
        [
            *(_qbo_asset(e) for e in backfill.QBO_TRANSACTIONS),
            *(
                _source_asset(e)
                for e in catalogue.push_order()
                if e.name in backfill.SOURCE_TRANSACTIONS
            ),
        ]
    )
)

definitions = dg.Definitions(
    assets=BACKFILL_ASSETS,
    jobs=[backfill_range_job],
    # the job's company check and tags (the assets bind COMPANY_RUN under "company_run")
    resources={"range_company_run": CompanyRunResource()},
    executor=dg.in_process_executor,
)
