"""Run the pipeline's jobs in-process on the project's Dagster instance (CLI entry points).

The CLI calls these so that a run started from a terminal is recorded exactly like one started
from the UI: same instance (dagster-postgres, ``DAGSTER_HOME``), same assets, same run history.
"""

from typing import Any

import dagster as dg

from qbo_pipelines.defs.push import COMPANIES, PUSH_ASSETS, REALM_TAG
from qbo_pipelines.defs.resources import QboResource, SourceAppResource, WarehouseResource


def push_company(realm_id: str, *, mode: str = "incremental") -> dict[str, Any]:
    """Materialize every push asset for one company; returns the run id and counts per asset."""
    instance = dg.DagsterInstance.get()
    if not instance.has_dynamic_partition(COMPANIES, realm_id):
        instance.add_dynamic_partitions(COMPANIES, [realm_id])
    result = dg.materialize(
        PUSH_ASSETS,
        partition_key=realm_id,
        instance=instance,
        resources={
            "warehouse": WarehouseResource(),
            "source_app": SourceAppResource(),
            "qbo": QboResource(),
        },
        run_config={
            "loggers": {"console": {"config": {"log_level": "WARNING"}}},  # full log: the UI
            "ops": {
                a.node_def.name: {"config": {"mode": mode}}
                for a in PUSH_ASSETS
                if a.key.path[0] in ("raw", "pushed")  # the assets that take PushConfig
            },
        },
        tags={REALM_TAG: realm_id, "qbo_pipelines/trigger": "cli"},
        raise_on_error=False,
    )
    counts: dict[str, dict[str, int]] = {}
    for event in result.get_asset_materialization_events():
        mat = event.materialization
        counts[mat.asset_key.to_user_string()] = {
            k: v.value for k, v in mat.metadata.items() if isinstance(v.value, int)
        }
    checks = {
        f"{e.asset_key.to_user_string()}:{e.check_name}": e.passed
        for e in result.get_asset_check_evaluations()
    }
    return {"run_id": result.run_id, "success": result.success, "counts": counts, "checks": checks}
