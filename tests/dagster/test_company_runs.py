"""Dagster as its users expect: typed run config, partitionless company runs refused before any
step (and not retried), company/trigger/direction tags on UI and backfill runs."""

import dagster as dg
import pytest

from qbo_pipelines.defs import runner
from qbo_pipelines.defs.push import PUSH_ASSETS, PushMode, push_job
from qbo_pipelines.defs.resources import (
    DIRECTION_TAG,
    REALM_TAG,
    TRIGGER_TAG,
    PartitionlessRunError,
    QboResource,
    SourceAppResource,
    WarehouseResource,
    run_company_tags,
)

RESOURCES = {
    "warehouse": WarehouseResource(),
    "source_app": SourceAppResource(),
    "qbo": QboResource(),
}


def _job() -> dg.JobDefinition:
    defs = dg.Definitions(assets=PUSH_ASSETS, jobs=[push_job], resources=RESOURCES)
    return defs.resolve_job_def("push_job")


def test_unknown_push_mode_is_refused_with_the_allowed_values() -> None:
    config = runner.push_run_config("full")
    dg.validate_run_config(_job(), config)
    bad = {"ops": {name: {"config": {"mode": "Full"}} for name in config["ops"]}}
    with pytest.raises(dg.DagsterInvalidConfigError) as err:
        dg.validate_run_config(_job(), bad)
    assert "Full" in str(err.value)
    with pytest.raises(ValueError, match="'incremental', 'full'"):
        runner.push_run_config("Full")
    assert [m.value for m in PushMode] == ["incremental", "full"]


def test_partitionless_push_run_is_refused_before_any_step_and_not_retried(
    dagster_instance: dg.DagsterInstance,
) -> None:
    result = _job().execute_in_process(instance=dagster_instance, raise_on_error=False)
    assert not result.success
    assert not [e for e in result.all_events if e.event_type_value == "STEP_START"]
    failures = [str(e.event_specific_data) for e in result.all_events if e.is_failure]
    assert any("launch it for a partition" in f for f in failures), failures
    run = dagster_instance.get_run_by_id(result.run_id)
    assert run is not None
    assert run.tags["dagster/max_retries"] == "0"
    assert run.tags.get("dagster/will_retry") in (None, "false")


def test_ui_and_backfill_runs_get_company_trigger_and_direction() -> None:
    ui = run_company_tags("push_job", {"dagster/partition": "42"}, None)
    assert ui == {REALM_TAG: "42", TRIGGER_TAG: "ui", DIRECTION_TAG: "push"}
    ranged = run_company_tags(
        "__ASSET_JOB",
        {
            "dagster/backfill": "abc",
            "dagster/asset_partition_range_start": "42|2025-01-01",
            "dagster/asset_partition_range_end": "42|2025-03-31",
        },
        [("backfill", "qbo", "invoices"), ("backfill", "source", "invoices")],
    )
    assert ranged == {REALM_TAG: "42", TRIGGER_TAG: "backfill", DIRECTION_TAG: "both"}
    # tags a sensor or the CLI already set are kept
    assert run_company_tags(
        "pull_job",
        {"dagster/partition": "42", REALM_TAG: "42", TRIGGER_TAG: "webhook"},
        None,
    ) == {DIRECTION_TAG: "pull"}
    assert run_company_tags("marts_job", {}, [("marts", "pnl")]) is None
    with pytest.raises(PartitionlessRunError):
        run_company_tags("__ASSET_JOB", {}, [("pushed", "qbo", "invoices")])
