"""The analysts' marts (issue 13): the dbt project ``sql/marts`` as Dagster assets.

Every dbt model is an asset ``marts/<model>`` downstream of the assets that load its sources
(``raw_qbo.<table>`` -> ``raw/qbo/<table>``, a line table -> its parent's asset;
``raw_source.<entity>`` -> ``raw/source/<entity>``; ``sync.<table>`` -> ``sync/<table>``), so
lineage shows in the UI. dbt's tests run as asset checks; ``ties_out_to_qbo_reports`` (R43)
compares the P&L, balance sheet and A/R aging with QBO's own reports.

Loading stays cheap: the manifest is parsed once (``qbo_pipelines.marts.project.
ensure_manifest``: on a fresh clone, or when a project file changed) and read from
``sql/marts/target/manifest.json`` afterwards; no database is touched at import.
"""

import contextlib
from collections.abc import Iterator, Mapping
from typing import Any

import dagster as dg
from dagster_dbt import (
    DagsterDbtTranslator,
    DagsterDbtTranslatorSettings,
    DbtCliResource,
    DbtProject,
    dbt_assets,
)

from qbo_pipelines.defs.resources import (
    QboResource,
    SourceAppResource,
    WarehouseResource,
    shared_resources,
)
from qbo_pipelines.defs.runner import failure_reason, quiet_console, run_counts
from qbo_pipelines.marts import project, tieout
from qbo_pipelines.warehouse.raw_qbo import ENTITY_TABLES, LINE_TABLES

LINE_PARENTS = {line: ENTITY_TABLES[entity] for entity, line in LINE_TABLES.items()}
"""raw_qbo line table -> the parent table whose asset loads it."""

GROUP = "marts"


class MartsTranslator(DagsterDbtTranslator):
    """dbt sources onto the assets that load them; models under ``marts/``."""

    def get_asset_key(self, dbt_resource_props: Mapping[str, Any]) -> dg.AssetKey:
        if dbt_resource_props["resource_type"] == "source":
            schema, table = dbt_resource_props["source_name"], dbt_resource_props["name"]
            if schema == "raw_qbo":
                return dg.AssetKey(["raw", "qbo", LINE_PARENTS.get(table, table)])
            if schema == "raw_source":
                return dg.AssetKey(["raw", "source", table])
            return dg.AssetKey([schema, table])
        return dg.AssetKey(["marts", dbt_resource_props["name"]])

    def get_group_name(self, dbt_resource_props: Mapping[str, Any]) -> str | None:
        return GROUP


DBT_PROJECT = DbtProject(project_dir=project.PROJECT_DIR, target_path=project.TARGET_DIR)
TRANSLATOR = MartsTranslator(
    settings=DagsterDbtTranslatorSettings(
        enable_asset_checks=True, enable_duplicate_source_asset_keys=True
    )
)


@dbt_assets(
    manifest=project.ensure_manifest(),
    project=DBT_PROJECT,
    dagster_dbt_translator=TRANSLATOR,
    name="marts_dbt",
    op_tags={"qbo_pipelines/area": "marts"},
)
def marts_dbt(context: dg.AssetExecutionContext, warehouse: WarehouseResource) -> Iterator[Any]:
    """``dbt build`` of the selected models (views in schema ``marts``) and their tests, under
    the warehouse's build lock, with the profile generated for the warehouse."""
    engine = warehouse.engine()
    url = engine.url
    engine.dispose()
    with project.build_lock(url) as profile:
        dbt = DbtCliResource(
            project_dir=DBT_PROJECT,
            profiles_dir=str(profile.profiles_dir),
            dbt_executable=project.dbt_executable(),
        )
        yield from dbt.cli(["build"], context=context).stream()


TIE_OUT_ASSETS = [dg.AssetKey(["marts", m]) for m in ("balance_sheet", "ar_aging")]


@dg.asset_check(
    asset=dg.AssetKey(["marts", "profit_and_loss"]),
    additional_deps=TIE_OUT_ASSETS,
    name="ties_out_to_qbo_reports",
    description="R43: marts.profit_and_loss and marts.balance_sheet (by month) and "
    "marts.ar_aging (as of today) equal, to the cent, QBO's ProfitAndLoss, BalanceSheet and "
    "AgedReceivables reports for the same dates, for every connected company.",
)
def ties_out_to_qbo_reports(
    warehouse: WarehouseResource, source_app: SourceAppResource, qbo: QboResource
) -> dg.AssetCheckResult:
    with qbo.session(warehouse, source_app) as env:
        results = tieout.tie_out_companies(env)
    mismatches = [m for r in results for m in r.mismatches]
    return dg.AssetCheckResult(
        passed=all(r.ok for r in results),
        severity=dg.AssetCheckSeverity.ERROR,
        description="; ".join(r.summary() for r in results) or "no connected company",
        metadata={
            "companies": len(results),
            "cells_compared": sum(sum(r.cells.values()) for r in results),
            "mismatches": len(mismatches),
            "unread": len([r for r in results if r.error is not None]),
            "first_mismatches": dg.MetadataValue.md(
                "\n".join(f"- {m.describe()}" for m in mismatches[:20]) or "none"
            ),
        },
    )


marts_job = dg.define_asset_job(
    "marts_job",
    selection=dg.AssetSelection.groups(GROUP),
    description="Build the analysts' marts (dbt views in schema marts), run the dbt tests and "
    "the tie-out to QBO's reports (also `qbo-pipelines marts build`).",
)

definitions = dg.Definitions(
    assets=[marts_dbt],
    asset_checks=[ties_out_to_qbo_reports],
    jobs=[marts_job],
)


def build_marts(instance: dg.DagsterInstance | None = None) -> dict[str, Any]:
    """Materialize the marts and their checks in this process (``make demo``); the run id,
    success, the models built and each check's result. dbt's console output goes to
    ``<data dir>/dbt/last_build.log`` (the run's events are in the UI)."""
    instance = instance or dg.DagsterInstance.get()
    log = project.build_log_path()
    with log.open("w", encoding="utf-8") as sink, contextlib.redirect_stdout(sink):
        result = dg.materialize(
            [marts_dbt, ties_out_to_qbo_reports],
            instance=instance,
            resources=shared_resources(),
            run_config={"loggers": quiet_console()},
            tags={"qbo_pipelines/trigger": "demo"},
            raise_on_error=False,
        )
    counts, checks = run_counts(instance, result.run_id)
    return {
        "run_id": result.run_id,
        "success": result.success,
        "models": sorted(counts),
        "checks": checks,
        "failure": "" if result.success else failure_reason(instance, result.run_id),
    }
