"""R27/R30: the source-changes sensor, evaluated with build_sensor_context on real databases."""

from collections.abc import Callable

import dagster as dg
import pytest
import sqlalchemy as sa

from qbo_pipelines.defs.push import REALM_TAG, source_changes_sensor
from qbo_pipelines.defs.resources import SourceAppResource, WarehouseResource
from qbo_pipelines.source_app import demo
from qbo_pipelines.sync import settings as sync_settings

REALM = "4620816365000000001"


class Bed:
    def __init__(
        self, warehouse: sa.Engine, source: sa.Engine, instance: dg.DagsterInstance
    ) -> None:
        self.warehouse, self.source, self.instance = warehouse, source, instance

    def sql(self, engine: sa.Engine, text: str, **params: object) -> None:
        with engine.begin() as conn:
            conn.execute(sa.text(text), params)

    def evaluate(self, cursor: str | None = None) -> dg.SensorResult:
        context = dg.build_sensor_context(
            cursor=cursor,
            instance=self.instance,
            resources={
                "warehouse": WarehouseResource(database_url=_url(self.warehouse)),
                "source_app": SourceAppResource(database_url=_url(self.source)),
            },
        )
        result = source_changes_sensor(context)
        assert isinstance(result, dg.SensorResult)
        return result

    def last_seq(self) -> int:
        with self.source.connect() as conn:
            return int(conn.execute(sa.text("SELECT max(seq) FROM app.change_log")).scalar_one())

    def age_changes(self, first_ago: int, last_ago: int) -> None:
        """Make the pending changes look first_ago..last_ago seconds old."""
        self.sql(
            self.source,
            "UPDATE app.change_log SET at = now() - make_interval(secs => :a)",
            a=first_ago,
        )
        self.sql(
            self.source,
            "UPDATE app.change_log SET at = now() - make_interval(secs => :a)"
            " WHERE seq = (SELECT max(seq) FROM app.change_log)",
            a=last_ago,
        )


def _url(engine: sa.Engine) -> str:
    return engine.url.render_as_string(hide_password=False)


@pytest.fixture
def bed(
    temp_database: Callable[..., sa.Engine],
    dagster_instance: dg.DagsterInstance,
    monkeypatch: pytest.MonkeyPatch,
) -> Bed:
    monkeypatch.setenv("QBO_PIPELINES_QBO_CLIENT_ID", "app")
    monkeypatch.setenv("QBO_PIPELINES_QBO_CLIENT_SECRET", "secret")
    warehouse = temp_database("sensorwh", migrated="warehouse")
    source = temp_database("sensorsrc", migrated="source_app")
    demo.seed(source, contacts=5, sales=5, workers=1, seed_value=3)
    b = Bed(warehouse, source, dagster_instance)
    b.sql(
        warehouse, "INSERT INTO sync.companies (realm_id, status) VALUES (:r, 'connected')", r=REALM
    )
    return b


def test_R27_no_changes_requests_no_run(bed: Bed) -> None:
    cursor = sync_settings.dump_cursor({REALM: bed.last_seq()})
    result = bed.evaluate(cursor)
    assert result.run_requests == []
    assert "no source changes" in _skip(result)


def test_R27_changes_still_settling_wait(bed: Bed) -> None:
    bed.age_changes(first_ago=30, last_ago=5)
    result = bed.evaluate()
    assert result.run_requests == []
    assert "settling" in _skip(result)


def test_R27_settled_changes_start_one_run_per_company(bed: Bed) -> None:
    bed.age_changes(first_ago=300, last_ago=130)
    result = bed.evaluate()
    [request] = result.run_requests or []
    assert request.partition_key == REALM
    assert request.tags[REALM_TAG] == REALM
    assert request.run_key == f"push:{REALM}:{bed.last_seq()}"
    assert sync_settings.parse_cursor(result.cursor) == {REALM: bed.last_seq()}
    # The next tick, with nothing new, requests nothing (the run key is never reused).
    again = bed.evaluate(result.cursor)
    assert again.run_requests == []


def test_R27_maximum_wait_reached_runs_despite_ongoing_changes(bed: Bed) -> None:
    bed.age_changes(first_ago=1000, last_ago=1)  # default max wait: 900 s
    result = bed.evaluate()
    assert len(result.run_requests or []) == 1


def test_R30_paused_company_gets_no_run(bed: Bed) -> None:
    bed.age_changes(first_ago=300, last_ago=200)
    bed.sql(
        bed.warehouse, "INSERT INTO mapping.settings (realm_id, paused) VALUES (:r, true)", r=REALM
    )
    result = bed.evaluate()
    assert result.run_requests == []
    assert "paused" in _skip(result)


def test_R30_no_runs_while_the_qbo_app_is_not_configured(
    bed: Bed, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("QBO_PIPELINES_QBO_CLIENT_ID")
    bed.age_changes(first_ago=300, last_ago=200)
    result = bed.evaluate()
    assert result.run_requests == []
    assert "QBO_PIPELINES_QBO_CLIENT_ID" in _skip(result)


def _skip(result: dg.SensorResult) -> str:
    reason = result.skip_reason
    return reason.skip_message or "" if reason is not None else ""


def test_R27_changes_another_route_already_pushed_start_no_run(bed: Bed) -> None:
    """`sync push` or a backfill moved every entity's feed position past the changes: the
    sensor starts no (no-op) run and moves its cursor past them."""
    from qbo_pipelines import entities
    from qbo_pipelines.source_app.connector import SourceAppConnector
    from qbo_pipelines.sync import state
    from qbo_pipelines.sync.engine import feed

    bed.age_changes(first_ago=300, last_ago=130)
    horizon = SourceAppConnector(bed.source).feed_horizon()
    for entity in entities.push_order():
        state.set_cursor(bed.warehouse, REALM, feed.cursor_name("push", entity.name), str(horizon))
    # the demo's reference tables (tax rates, payment methods) have no push position of their own
    pushed = [e.name for e in entities.push_order()]
    bed.sql(
        bed.source,
        "DELETE FROM app.change_log WHERE NOT (entity = ANY(CAST(:e AS text[])))",
        e=pushed,
    )
    result = bed.evaluate()
    assert result.run_requests == []
    assert "no source changes" in _skip(result)
    assert sync_settings.parse_cursor(result.cursor) == {REALM: bed.last_seq()}
    # a new change after the positions is pending again
    bed.sql(bed.source, "UPDATE app.contacts SET email = 'new@example.com' WHERE id = 1")
    bed.age_changes(first_ago=300, last_ago=130)
    again = bed.evaluate(result.cursor)
    assert len(again.run_requests or []) == 1


def test_R12_R27_a_mapping_changed_under_synced_records_starts_a_run_once_settled(
    bed: Bed,
) -> None:
    """A mapping change moves nothing in the source, but the records written with the old
    mapping must be re-planned: the sensor starts a run once the mappings are left alone for
    the debounce window, and the run's re-plan clears the marker (no second run)."""
    bed.sql(
        bed.warehouse,
        "INSERT INTO sync.record_state (realm_id, entity, source_id, qbo_entity, qbo_id,"
        " status) VALUES (:r, 'invoices', '1', 'Invoice', '77', 'synced')",
        r=REALM,
    )
    bed.sql(  # what `mappings set tax-rate` writes; the table's trigger leaves the marker
        bed.warehouse,
        "INSERT INTO mapping.tax_rates (realm_id, source_id, source_name, qbo_tax_code_id,"
        " qbo_tax_code_name) VALUES (:r, '1', 'GST 10%', '5', 'NON')",
        r=REALM,
    )
    cursor = sync_settings.dump_cursor({REALM: bed.last_seq()})  # no source change waits
    settling = bed.evaluate(cursor)
    assert settling.run_requests == []
    assert "mappings changed, still settling" in _skip(settling)

    bed.sql(
        bed.warehouse,
        "UPDATE sync.cursors SET updated_at = now() - interval '200 seconds'"
        " WHERE realm_id = :r AND name = 'push:invoices:replan'",
        r=REALM,
    )
    result = bed.evaluate(cursor)
    [request] = result.run_requests or []
    assert request.partition_key == REALM
    assert str(request.run_key).startswith(f"push:{REALM}:replan:")
    assert sync_settings.parse_cursor(result.cursor) == {REALM: bed.last_seq()}

    bed.sql(  # the run re-planned the invoices
        bed.warehouse,
        "DELETE FROM sync.cursors WHERE realm_id = :r AND name LIKE 'push:%'",
        r=REALM,
    )
    assert bed.evaluate(result.cursor).run_requests == []


def test_R31_R27_writes_qbo_refused_start_a_run_when_their_retry_is_due(bed: Bed) -> None:
    """A refused write is retried after its backoff: with no source change to start a run, the
    sensor starts one when the retry is due, once per backoff step (the run key names it)."""
    bed.sql(
        bed.warehouse,
        "INSERT INTO sync.record_state (realm_id, entity, source_id, status, retry_at)"
        " VALUES (:r, 'customers', '1', 'failed', now() + interval '4 minutes')",
        r=REALM,
    )
    cursor = sync_settings.dump_cursor({REALM: bed.last_seq()})
    assert bed.evaluate(cursor).run_requests == []  # not due yet

    bed.sql(
        bed.warehouse,
        "UPDATE sync.record_state SET retry_at = now() - interval '1 second' WHERE realm_id = :r",
        r=REALM,
    )
    result = bed.evaluate(cursor)
    [request] = result.run_requests or []
    assert request.partition_key == REALM
    assert str(request.run_key).startswith(f"push:{REALM}:retry:")
    assert sync_settings.parse_cursor(result.cursor) == {REALM: bed.last_seq()}

    bed.sql(  # the retry failed again: the next backoff step is a later key
        bed.warehouse,
        "UPDATE sync.record_state SET retry_at = now() - interval '0.5 second' WHERE realm_id = :r",
        r=REALM,
    )
    [later] = bed.evaluate(result.cursor).run_requests or []
    assert later.run_key != request.run_key

    bed.sql(
        bed.warehouse,
        "INSERT INTO mapping.settings (realm_id, paused) VALUES (:r, true)",
        r=REALM,
    )
    paused = bed.evaluate(result.cursor)
    assert paused.run_requests == []
    assert "retries due; automatic sync is off or paused" in _skip(paused)


def test_R31_R27_a_delete_qbo_refused_starts_a_run_when_its_retry_is_due(bed: Bed) -> None:
    """A source delete QBO refused (payments applied to the invoice, unapplied by the same
    run) is retried like any refused write: the sensor starts a run when it is due (found by
    an attack: deletes were left out, and the invoice stayed in QBO until another change)."""
    bed.sql(
        bed.warehouse,
        "INSERT INTO sync.record_state (realm_id, entity, source_id, qbo_id, status,"
        " deleted_in_source, retry_at) VALUES (:r, 'invoices', '1', '7', 'failed', true,"
        " now() - interval '1 second')",
        r=REALM,
    )
    cursor = sync_settings.dump_cursor({REALM: bed.last_seq()})
    [request] = bed.evaluate(cursor).run_requests or []
    assert request.partition_key == REALM
    assert str(request.run_key).startswith(f"push:{REALM}:retry:")


def _markers(bed: Bed) -> list[str]:
    with bed.warehouse.connect() as conn:
        return list(
            conn.execute(
                sa.text(
                    "SELECT name FROM sync.cursors WHERE realm_id = :r AND name LIKE :n"
                    " ORDER BY name"
                ),
                {"r": REALM, "n": "push:%:replan"},
            ).scalars()
        )


def test_R12_mappings_truncated_or_re_keyed_by_hand_leave_a_re_plan_marker(bed: Bed) -> None:
    """Found by an attack: TRUNCATE and an UPDATE of a mapping's source key (two rates' mappings
    swapped by hand) left no marker, so the invoices kept the codes of the old mappings."""
    for entity in ("invoices", "bills"):
        bed.sql(
            bed.warehouse,
            "INSERT INTO sync.record_state (realm_id, entity, source_id, qbo_entity, qbo_id,"
            " status) VALUES (:r, :e, '1', 'Invoice', :q, 'synced')",
            r=REALM,
            e=entity,
            q=f"{entity}-1",
        )
    bed.sql(
        bed.warehouse,
        "INSERT INTO mapping.tax_rates (realm_id, source_id, source_name, qbo_tax_code_id,"
        " qbo_tax_code_name) VALUES (:r, '1', 'GST 10%', '1', 'GST'),"
        " (:r, '3', 'Zero rated', '3', 'Exempt')",
        r=REALM,
    )
    bed.sql(
        bed.warehouse,
        "INSERT INTO mapping.expense_concepts (realm_id, concept, expense_account_id,"
        " expense_account_name) VALUES (:r, 'Bonus', '9', 'Bonuses')",
        r=REALM,
    )
    cleared = "DELETE FROM sync.cursors WHERE realm_id = :r"
    bed.sql(bed.warehouse, cleared, r=REALM)
    bed.sql(
        bed.warehouse,
        "UPDATE mapping.tax_rates SET source_id = 'tmp' WHERE realm_id = :r AND source_id = '1'",
        r=REALM,
    )
    assert _markers(bed) == ["push:invoices:replan"]
    bed.sql(bed.warehouse, cleared, r=REALM)
    bed.sql(
        bed.warehouse,
        "UPDATE mapping.expense_concepts SET concept = 'Bonus 2' WHERE realm_id = :r",
        r=REALM,
    )
    assert _markers(bed) == ["push:bills:replan"]
    bed.sql(bed.warehouse, cleared, r=REALM)
    bed.sql(bed.warehouse, "TRUNCATE mapping.tax_rates, mapping.expense_concepts")
    assert _markers(bed) == ["push:bills:replan", "push:invoices:replan"]
    bed.sql(bed.warehouse, cleared, r=REALM)
    bed.sql(
        bed.warehouse,
        "INSERT INTO mapping.settings (realm_id, debounce_seconds) VALUES (:r, 30)"
        " ON CONFLICT (realm_id) DO UPDATE SET debounce_seconds = 30",
        r=REALM,
    )
    bed.sql(bed.warehouse, cleared, r=REALM)  # the row's first insert counts as a change
    bed.sql(
        bed.warehouse,
        "UPDATE mapping.settings SET debounce_seconds = 45 WHERE realm_id = :r",
        r=REALM,
    )
    assert _markers(bed) == []  # a switch, not a mapping


def test_R27_edits_of_what_is_mapped_but_never_pushed_start_no_run(bed: Bed) -> None:
    """Found by an attack: an edit of a source tax rate or payment method (mapped, never
    written to QBO) counted as a change to push and started a run with nothing to do."""
    cursor = sync_settings.dump_cursor({REALM: bed.last_seq()})
    bed.sql(bed.source, "UPDATE app.tax_rates SET name = name || ' (old)'")
    bed.sql(bed.source, "UPDATE app.payment_methods SET name = name || ' (old)'")
    bed.age_changes(first_ago=300, last_ago=200)
    result = bed.evaluate(cursor)
    assert result.run_requests == []
    assert "no source changes" in _skip(result)
    # the sensor's cursor moves past them
    assert sync_settings.parse_cursor(result.cursor) == {REALM: bed.last_seq()}
