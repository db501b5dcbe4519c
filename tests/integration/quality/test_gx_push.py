"""R40 through the product path: bad source records go through the push job (Dagster, the QBO
sandbox over HTTP, real Postgres); they are held back with reason and fix, the rest reach QBO,
and the staged asset's Great Expectations check is red with exactly those rows, green where the
staged batch is clean."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
import sqlalchemy as sa
from pushbed import PushBed

from qbo_pipelines.defs.push import PUSH_ASSETS, companies
from qbo_pipelines.defs.resources import QboResource, SourceAppResource, WarehouseResource
from qbo_pipelines.quality import constraints, gx_suites


def _resources(bed: PushBed) -> dict[str, object]:
    def url(engine: sa.Engine) -> str:
        return engine.url.render_as_string(hide_password=False)

    app = bed.env.app
    return {
        "warehouse": WarehouseResource(database_url=url(bed.env.warehouse)),
        "source_app": SourceAppResource(database_url=url(bed.env.source)),
        "qbo": QboResource(
            client_id=app.client_id,
            client_secret=app.client_secret.reveal(),
            api_url=app.api_url,
            oauth_url=app.oauth_url,
        ),
    }


def _seed_bad(bed: PushBed) -> dict[str, set[tuple[str, str]]]:
    """Break two workers and a receipt in the source app; returns what must be held."""
    workers = bed.sql(bed.env.source, "SELECT id FROM app.workers ORDER BY id LIMIT 2")
    receipt = bed.sql(
        bed.env.source, "SELECT id FROM app.receipts WHERE origin = 'source' ORDER BY id LIMIT 1"
    )
    colon, phone = (str(w.id) for w in workers)
    bed.sql(
        bed.env.source,
        "UPDATE app.workers SET trading_name = 'Bad: Builders' WHERE id = :i",
        i=int(colon),
    )
    bed.sql(
        bed.env.source, "UPDATE app.workers SET phone = repeat('9', 31) WHERE id = :i", i=int(phone)
    )
    bed.sql(
        bed.env.source,
        "UPDATE app.receipts SET reference = repeat('R', 22) WHERE id = :i",
        i=receipt[0].id,
    )
    return {
        "vendors": {
            (colon, "vendor.display_name.forbidden_character"),
            (phone, "vendor.phone.too_long"),
        },
        "payments": {(str(receipt[0].id), "receipt.reference.too_long")},
    }


def test_R40_bad_records_are_held_the_rest_pushed_and_the_gx_check_shows_them(
    push_bed: PushBed, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(gx_suites.ENV_DOCS_DIR, str(tmp_path / "gx_docs"))
    monkeypatch.setenv(gx_suites.ENV_DATA_DOCS, "1")  # off by default in the suite
    seeded = _seed_bad(push_bed)
    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions(companies.name, [push_bed.realm])
    result = dg.materialize(
        PUSH_ASSETS, partition_key=push_bed.realm, instance=instance, resources=_resources(push_bed)
    )
    assert result.success
    checks = {e.asset_key.path[-1]: e for e in result.get_asset_check_evaluations()}
    assert set(checks) >= set(gx_suites.ENTITIES)

    held = push_bed.sql(
        push_bed.env.warehouse,
        "SELECT entity, source_id, rule, reason, fix FROM sync.quarantine"
        " WHERE realm_id = :r AND resolved_at IS NULL",
        r=push_bed.realm,
    )
    # The seeded records are held back, with a reason naming the value and a fix.
    by_key = {(h.entity, h.source_id, h.rule): h for h in held}
    for entity, pairs in seeded.items():
        for source_id, rule in pairs:
            row = by_key[(entity, source_id, rule)]
            assert row.reason
            assert row.fix
    assert "'Bad: Builders'" in next(
        h.reason for h in held if h.rule == "vendor.display_name.forbidden_character"
    )

    # The rest of the batch went on: the other workers and receipts are in QBO.
    synced = dict(
        push_bed.sql(
            push_bed.env.warehouse,
            "SELECT entity, count(*) FROM sync.record_state WHERE realm_id = :r"
            " AND status = 'synced' GROUP BY entity",
            r=push_bed.realm,
        )
    )
    assert synced.get("vendors", 0) >= 2
    assert synced.get("payments", 0) > 0
    assert push_bed.count("Vendor") >= synced["vendors"]

    for entity in gx_suites.ENTITIES:
        covered = {s.rule for s in gx_suites.SUITES[entity]}
        expected = {(h.source_id, h.rule) for h in held if h.entity == entity and h.rule in covered}
        evaluation = checks[entity]
        suite: dict[str, Any] = evaluation.metadata["suite"].value  # type: ignore[assignment]
        shown = {(r["source_id"], r["rule"]) for r in suite["failing_rows"]}
        # Red with exactly the held rows where the rules hold records; green where none.
        assert shown == expected, entity
        assert evaluation.passed is (not expected), entity
        assert seeded.get(entity, set()) <= shown
        for row in suite["failing_rows"]:
            assert row["reason"]
            assert row["fix"]
        assert suite["data_docs"].startswith(("file://", str(tmp_path)))
        json.dumps(suite)
    assert not checks["vendors"].passed
    assert not checks["payments"].passed
    assert any(checks[e].passed for e in gx_suites.ENTITIES)  # clean batches are green
    assert constraints.TABLES["vendors"].kind == "vendor"
