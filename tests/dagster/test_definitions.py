"""Definitions load, every resource resolves, and assets materialize on dagster-postgres."""

import dagster as dg
import sqlalchemy as sa

from qbo_pipelines.defs import build_definitions
from qbo_pipelines.defs.platform import warehouse_schema
from qbo_pipelines.defs.resources import SourceAppResource, WarehouseResource


def test_definitions_load_and_resolve() -> None:
    defs = build_definitions()
    dg.Definitions.validate_loadable(defs)
    repo = defs.get_repository_def()
    repo.load_all_definitions()
    keys = defs.resolve_asset_graph().get_all_asset_keys()
    assert dg.AssetKey(["platform", "warehouse", "schema"]) in keys


def test_instance_uses_postgres_storage(dagster_instance: dg.DagsterInstance) -> None:
    from dagster_postgres import PostgresEventLogStorage, PostgresRunStorage

    assert isinstance(dagster_instance.run_storage, PostgresRunStorage)
    assert isinstance(dagster_instance.event_log_storage, PostgresEventLogStorage)
    from qbo_pipelines.defs.coordinator import CompanyRunCoordinator

    coordinator = dagster_instance.run_coordinator
    assert isinstance(coordinator, CompanyRunCoordinator)  # Dagster's queue, company-tagged
    assert isinstance(coordinator, dg.QueuedRunCoordinator)


def test_warehouse_schema_materializes(
    dagster_instance: dg.DagsterInstance, warehouse_engine: sa.Engine, source_app_engine: sa.Engine
) -> None:
    result = dg.materialize(
        [warehouse_schema],
        instance=dagster_instance,
        resources={
            "warehouse": WarehouseResource(
                database_url=warehouse_engine.url.render_as_string(hide_password=False)
            ),
            "source_app": SourceAppResource(
                database_url=source_app_engine.url.render_as_string(hide_password=False)
            ),
        },
    )
    assert result.success
    [mat] = [
        e.materialization
        for e in result.get_asset_materialization_events()
        if e.asset_key == dg.AssetKey(["platform", "warehouse", "schema"])
    ]
    assert mat.metadata["applied_count"] == dg.MetadataValue.int(0)  # fixtures migrated already
    run = dagster_instance.get_run_by_id(result.run_id)
    assert run is not None
    assert run.is_success
