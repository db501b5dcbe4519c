"""The push assets materialize through Dagster (dagster-postgres instance) against the sandbox."""

import dagster as dg
import sqlalchemy as sa
from pushbed import PushBed

from qbo_pipelines import entities
from qbo_pipelines.defs.push import PUSH_ASSETS, companies, push_job
from qbo_pipelines.defs.resources import QboResource, SourceAppResource, WarehouseResource


def _url(engine: sa.Engine) -> str:
    return engine.url.render_as_string(hide_password=False)


def _resources(bed: PushBed) -> dict[str, object]:
    app = bed.env.app
    return {
        "warehouse": WarehouseResource(database_url=_url(bed.env.warehouse)),
        "source_app": SourceAppResource(database_url=_url(bed.env.source)),
        "qbo": QboResource(
            client_id=app.client_id,
            client_secret=app.client_secret.reveal(),
            api_url=app.api_url,
            oauth_url=app.oauth_url,
        ),
    }


def test_asset_keys_follow_the_catalogue() -> None:
    keys = {a.key.to_user_string() for a in PUSH_ASSETS}
    assert keys == {
        f"{stage}/{e.name}"
        for e in entities.push_order()
        for stage in ("raw/source", "staged/qbo", "pushed/qbo")
    }
    invoices = next(a for a in PUSH_ASSETS if a.key == dg.AssetKey(["pushed", "qbo", "invoices"]))
    deps = {k.to_user_string() for k in invoices.asset_deps[invoices.key]}
    assert deps == {"pushed/qbo/customers", "pushed/qbo/items", "staged/qbo/invoices"}
    staged = next(a for a in PUSH_ASSETS if a.key == dg.AssetKey(["staged", "qbo", "invoices"]))
    assert {c.name for c in staged.check_specs} == {"great_expectations"}
    assert "Load semantics" in (invoices.descriptions_by_key[invoices.key] or "")


def test_R37_push_materializes_per_company_with_counts_and_ledger_link(
    push_bed: PushBed, dagster_instance: dg.DagsterInstance
) -> None:
    dagster_instance.add_dynamic_partitions(companies.name, [push_bed.realm])
    result = dg.materialize(
        PUSH_ASSETS,
        partition_key=push_bed.realm,
        instance=dagster_instance,
        resources=_resources(push_bed),
    )
    assert result.success
    by_key = {
        e.asset_key.to_user_string(): e.materialization.metadata
        for e in result.get_asset_materialization_events()
    }
    invoices = by_key["pushed/qbo/invoices"]
    assert invoices["created"].value > 0
    assert invoices["held_back"].value > 0  # the demo's unmapped tax rate (R12)
    assert result.run_id in invoices["ledger_query"].value
    with push_bed.env.warehouse.connect() as conn:
        ledger_runs = set(
            conn.execute(sa.text("SELECT DISTINCT run_id FROM sync.ledger")).scalars()
        )
    assert result.run_id in ledger_runs
    staged = by_key["staged/qbo/invoices"]
    assert staged["staged"].value > 0
    checks = (
        {e.asset_key.to_user_string(): e for e in result.get_asset_check_evaluations()}
        if hasattr(result, "get_asset_check_evaluations")
        else {}
    )
    assert "staged/qbo/invoices" in checks
    # The demo's mess (negative totals, bad emails) fails expectations: shown, not blocking.
    assert checks["staged/qbo/invoices"].passed is False


def test_push_job_resolves_with_its_partitions() -> None:
    defs = dg.Definitions(
        assets=PUSH_ASSETS,
        jobs=[push_job],
        resources={
            "warehouse": WarehouseResource(),
            "source_app": SourceAppResource(),
            "qbo": QboResource(),
        },
    )
    job = defs.resolve_job_def("push_job")
    assert job.partitions_def == companies
