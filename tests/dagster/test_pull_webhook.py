"""R29: a change in QBO reaches the source app through the signed webhook, the inbox, the sensor
and the pull run (the path production takes), over the sandbox's real webhooks, the real
receiver (uvicorn), real Postgres and a real Dagster instance on dagster-postgres."""

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import dagster as dg
import pytest
import sqlalchemy as sa
from integration.webhooks.webhookbed import VERIFIER, ReceiverServer, wait_for
from pushbed import PushBed

from qbo_pipelines.defs.pull import PULL_ASSETS, pull_job, qbo_webhooks_sensor
from qbo_pipelines.defs.push import COMPANIES
from qbo_pipelines.defs.resources import QboResource, SourceAppResource, WarehouseResource
from qbo_pipelines.sandbox.webhooks import DEFAULT_WINDOW_SECONDS
from qbo_pipelines.sync import pipeline, pull_triggers
from qbo_pipelines.webhooks import inbox
from qbo_pipelines.webhooks.receiver import create_app


def _url(engine: sa.Engine) -> str:
    return engine.url.render_as_string(hide_password=False)


def _rows(engine: sa.Engine, sql: str, **params: object) -> list[Any]:
    with engine.begin() as conn:
        return list(conn.execute(sa.text(sql), params))


class Bed:
    def __init__(self, bed: PushBed, instance: dg.DagsterInstance) -> None:
        self.bed, self.instance = bed, instance
        sb = bed.sandbox
        self.resources = {
            "warehouse": WarehouseResource(database_url=_url(bed.env.warehouse)),
            "source_app": SourceAppResource(database_url=_url(bed.env.source)),
            "qbo": QboResource(
                client_id=sb.client_id,
                client_secret=sb.client_secret,
                api_url=sb.base_url,
                oauth_url=sb.base_url,
            ),
        }
        self.defs = dg.Definitions(assets=PULL_ASSETS, jobs=[pull_job], resources=self.resources)

    def tick(self) -> dg.SensorResult:
        context = dg.build_sensor_context(instance=self.instance, resources=self.resources)
        result = qbo_webhooks_sensor(context)
        assert isinstance(result, dg.SensorResult)
        return result

    def launch(self, request: dg.RunRequest) -> dg.ExecuteInProcessResult:
        realm = str(request.partition_key)
        if not self.instance.has_dynamic_partition(COMPANIES, realm):
            self.instance.add_dynamic_partitions(COMPANIES, [realm])
        job = self.defs.resolve_job_def("pull_job")
        return job.execute_in_process(
            partition_key=realm, instance=self.instance, tags=dict(request.tags)
        )


@pytest.fixture
def bed(push_bed: PushBed, dagster_instance: dg.DagsterInstance) -> Iterator[Bed]:
    pipeline.push_all(push_bed.env, push_bed.realm, run_id="push-1")
    pipeline.pull_all(push_bed.env, push_bed.realm, run_id="pull-1")
    server = ReceiverServer(
        create_app(
            push_bed.env.warehouse,
            VERIFIER,
            connected_realms=lambda: inbox.connected_realms(push_bed.env.warehouse),
        )
    ).start()
    push_bed.sandbox.control.register_webhook(
        push_bed.realm, server.url, VERIFIER.reveal(), batch_seconds=1
    )
    try:
        yield Bed(push_bed, dagster_instance)
    finally:
        server.stop()


def test_R29_customer_email_changed_in_qbo_reaches_the_source_through_the_webhook(
    bed: Bed,
) -> None:
    b = bed.bed
    contact, qbo_id = _rows(
        b.env.warehouse,
        "SELECT source_id, qbo_id FROM sync.record_state WHERE realm_id = :r"
        " AND entity = 'customers' AND created_by = 'sync' AND status = 'synced'"
        " ORDER BY source_id::int LIMIT 1",
        r=b.realm,
    )[0]
    assert bed.tick().run_requests == []  # nothing waiting
    b.sandbox.control.user_update(
        b.realm,
        "Customer",
        {"Id": qbo_id, "PrimaryEmailAddr": {"Address": "via.webhook@example.com"}, "sparse": True},
    )
    assert wait_for(lambda: bool(inbox.pending(b.env.warehouse, b.realm)), timeout=20)
    requests = bed.tick().run_requests
    assert [r.partition_key for r in requests] == [b.realm]
    assert requests[0].tags["qbo_pipelines/trigger"] == "webhook"
    b.sandbox.control.reset_requests()
    result = bed.launch(requests[0])
    assert result.success
    email = _rows(b.env.source, "SELECT email FROM app.contacts WHERE id = :i", i=int(contact))
    assert email[0][0] == "via.webhook@example.com"
    # read only what changed: the id the webhook named and one CDC call (R44)
    counts = b.sandbox.control.request_counts(b.realm)
    assert counts.get("cdc", 0) == 1, counts
    assert not inbox.pending(b.env.warehouse, b.realm)  # processed
    assert bed.tick().run_requests == []
    # the run counts as the company's pull: the interval schedule (R28) waits its 12 hours
    due, _ = pull_triggers.scheduled_requests(b.env.warehouse, datetime.now(UTC))
    assert [r.realm_id for r in due] == []
    # within two minutes by construction: the sandbox's aggregation window plus the sensor's
    # interval leave the run the rest of the budget
    interval = qbo_webhooks_sensor.minimum_interval_seconds or 30
    assert DEFAULT_WINDOW_SECONDS + interval < 120
