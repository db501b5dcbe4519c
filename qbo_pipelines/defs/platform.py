"""Platform assets: the warehouse schema itself."""

import dagster as dg

from qbo_pipelines.defs.resources import SourceAppResource, WarehouseResource
from qbo_pipelines.warehouse import migrations


@dg.asset(key=["platform", "warehouse", "schema"], group_name="platform", kinds={"postgres"})
def warehouse_schema(
    context: dg.AssetExecutionContext,
    warehouse: WarehouseResource,
    source_app: SourceAppResource,
) -> dg.MaterializeResult:  # type: ignore[type-arg]
    """Applies the ordered, idempotent SQL migrations to the warehouse and the source app.

    Load semantics: idempotent DDL; versions applied are recorded in public.schema_migrations,
    so re-materializing changes nothing when the schema is up to date.
    """
    engine = warehouse.engine()
    source_engine = source_app.engine()
    try:
        applied = migrations.migrate_warehouse(engine) + migrations.migrate_source_app(
            source_engine
        )
    finally:
        engine.dispose()
        source_engine.dispose()
    names = [f"{m.version:03d}_{m.name}" for m in applied]
    context.log.info("migrations applied now: %s", names or "none")
    return dg.MaterializeResult(
        metadata={"applied_now": dg.MetadataValue.json(names), "applied_count": len(names)}
    )
