"""R31: where notifications come from (a real push over the sandbox, failed Dagster runs, a
company that needs reconnecting) and the Dagster sensors and CLI that send them."""

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import dagster as dg
import pytest
import sqlalchemy as sa
from notifybed import WebhookSink
from pushbed import PushBed

from qbo_pipelines import notify
from qbo_pipelines.defs.definitions import defs
from qbo_pipelines.defs.notify import (
    NOTIFY_SENSORS,
    notify_delivery_sensor,
    notify_run_failure_sensor,
    notify_run_success_sensor,
)
from qbo_pipelines.defs.push import REALM_TAG
from qbo_pipelines.defs.resources import WarehouseResource
from qbo_pipelines.demo import setup
from qbo_pipelines.notify import sources
from qbo_pipelines.qbo import NeedsReconnectError, RealmId, auth
from qbo_pipelines.quality import quarantine
from qbo_pipelines.sync import pipeline

REALM = "9130350000000011"


def _open(engine: sa.Engine, entity: str | None = None) -> list[Any]:
    with engine.connect() as conn:
        return list(
            conn.execute(
                sa.text(
                    "SELECT id, realm_id, entity, record_id, title, reason, fix, resolved_at"
                    " FROM sync.notifications WHERE resolved_at IS NULL"
                    " AND (CAST(:e AS text) IS NULL OR entity = CAST(:e AS text)) ORDER BY id"
                ),
                {"e": entity},
            )
        )


def _url(engine: sa.Engine) -> str:
    return engine.url.render_as_string(hide_password=False)


def _events(sink: WebhookSink, index: int) -> list[dict[str, Any]]:
    items = sink.received[index].json["metadata"]["event_payload"]["notifications"]
    assert isinstance(items, list)
    return items


# -- a real push ------------------------------------------------------------------------------


def test_R31_a_held_record_from_a_real_push_reaches_the_webhook_then_its_resolution(
    push_bed: PushBed, webhook_server: WebhookSink
) -> None:
    wh = push_bed.env.warehouse
    notify.add_webhook_channel(wh, webhook_server.url, realm_id=push_bed.realm, max_lines=1000)
    pipeline.push_all(push_bed.env, push_bed.realm, run_id="notify-1")
    held = {
        str(r[0])
        for r in push_bed.sql(
            wh,
            "SELECT source_id FROM sync.quarantine WHERE entity = 'invoices'"
            " AND rule = 'mapping.tax_rate.missing' AND resolved_at IS NULL",
        )
    }
    assert held, "the demo data holds the sales using the unmapped 'Luxury 25%' rate"

    report = notify.deliver_pending(wh)

    assert report.messages_sent == 1
    [got] = webhook_server.received
    items = {(i["entity"], i["record_id"]): i for i in _events(webhook_server, 0)}
    for sid in held:
        item = items[("invoices", sid)]
        assert item["realm_id"] == push_bed.realm
        assert "Luxury 25%" in item["reason"]
        assert item["fix"]
        assert item["resolved"] is False
    assert "Luxury 25%" in got.json["text"]
    assert notify.deliver_pending(wh).messages_sent == 0  # the next tick: nothing new

    # The fix: map the rate. The next run syncs the records and resolves their notifications.
    control = push_bed.sandbox.control
    [rate] = control.bulk_create(
        push_bed.realm, "TaxRate", [{"Name": "Luxury 25%", "RateValue": 25}]
    )
    control.bulk_create(
        push_bed.realm,
        "TaxCode",
        [
            {
                "Name": "Luxury",
                "Active": True,
                "Taxable": True,
                "SalesTaxRateList": {"TaxRateDetail": [{"TaxRateRef": {"value": rate["Id"]}}]},
            }
        ],
    )
    setup.DEMO_TAX_CODES["Luxury 25%"] = "Luxury"
    try:
        setup.apply_demo_mappings(push_bed.env, push_bed.realm)
    finally:
        del setup.DEMO_TAX_CODES["Luxury 25%"]
    pipeline.push_all(push_bed.env, push_bed.realm, run_id="notify-2")
    still_held = {
        str(r[0])
        for r in push_bed.sql(
            wh,
            "SELECT source_id FROM sync.quarantine WHERE entity = 'invoices'"
            " AND resolved_at IS NULL",
        )
    }
    released = held - still_held
    assert released

    notify.deliver_pending(wh)

    resolved = {
        i["record_id"]
        for i in _events(webhook_server, 1)
        if i["resolved"] and i["entity"] == "invoices"
    }
    assert released <= resolved
    assert notify.deliver_pending(wh).messages_sent == 0  # announced once


# -- failed runs, in Dagster ------------------------------------------------------------------


@dg.op(config_schema={"fail": bool})
def _step(context: dg.OpExecutionContext) -> None:
    if context.op_config["fail"]:
        raise RuntimeError("QBO answered 503 three times")


@dg.job(name="push_job")
def _push_job() -> None:
    _step()


def _run(instance: dg.DagsterInstance, fail: bool, realm: str) -> dg.ExecuteInProcessResult:
    return _push_job.execute_in_process(
        run_config={"ops": {"_step": {"config": {"fail": fail}}}},
        instance=instance,
        raise_on_error=False,
        tags={REALM_TAG: realm},
    )


def _connected(wh: sa.Engine, realm: str, status: str = "connected") -> None:
    with wh.begin() as conn:
        conn.execute(
            sa.text("INSERT INTO sync.companies (realm_id, status) VALUES (:r, :s)"),
            {"r": realm, "s": status},
        )


def _status_context(
    instance: dg.DagsterInstance, run_id: str, event_type: dg.DagsterEventType, wh: sa.Engine
) -> dg.RunStatusSensorContext:
    [record] = instance.get_records_for_run(run_id=run_id, of_type=event_type).records
    event = record.event_log_entry.dagster_event
    run = instance.get_run_by_id(run_id)
    assert event is not None
    assert run is not None
    return dg.build_run_status_sensor_context(
        sensor_name="notify",
        dagster_event=event,
        dagster_instance=instance,
        dagster_run=run,
        resources={"warehouse": WarehouseResource(database_url=_url(wh))},
    )


def test_R31_run_failure_sensor_opens_one_notification_and_a_later_success_resolves_it(
    wh: sa.Engine, webhook_server: WebhookSink
) -> None:
    _connected(wh, REALM)
    notify.add_webhook_channel(wh, webhook_server.url)
    with dg.instance_for_test() as instance:
        runs = [_run(instance, fail=True, realm=REALM) for _ in range(2)]
        assert not any(r.success for r in runs)
        for result in runs:  # the same job failing twice: one notification
            context = _status_context(instance, result.run_id, dg.DagsterEventType.RUN_FAILURE, wh)
            notify_run_failure_sensor(context.for_run_failure())

        [row] = _open(wh, sources.RUN_ENTITY)
        assert (row.realm_id, row.record_id, row.title) == (REALM, "push_job", "Sync run failed")
        assert runs[1].run_id in row.reason  # refreshed with the latest run
        assert "QBO answered 503 three times" in row.reason
        assert "Dagster UI" in row.fix

        notify.deliver_pending(wh)
        [item] = _events(webhook_server, 0)
        assert (item["entity"], item["record_id"], item["realm_id"]) == ("run", "push_job", REALM)
        assert "QBO answered 503 three times" in item["reason"]

        ok = _run(instance, fail=False, realm=REALM)
        assert ok.success
        notify_run_success_sensor(
            _status_context(instance, ok.run_id, dg.DagsterEventType.RUN_SUCCESS, wh)
        )
    assert _open(wh, sources.RUN_ENTITY) == []
    notify.deliver_pending(wh)
    [resolution] = _events(webhook_server, 1)
    assert resolution["record_id"] == "push_job"
    assert resolution["resolved"] is True


def test_R31_a_company_not_connected_opens_nothing_and_a_disconnected_ones_problems_wait(
    wh: sa.Engine, webhook_server: WebhookSink
) -> None:
    """A failed run for a company never connected (launched by hand for partition 999) or
    disconnected since (the retry of an older failure) opens no notification nothing could
    resolve; a disconnected company's open problems are not delivered while it is."""
    gone = "9130350000000099"
    _connected(wh, gone, status="disconnected")
    notify.add_webhook_channel(wh, webhook_server.url)
    with dg.instance_for_test() as instance:
        for realm in ("999", gone):
            result = _run(instance, fail=True, realm=realm)
            context = _status_context(instance, result.run_id, dg.DagsterEventType.RUN_FAILURE, wh)
            notify_run_failure_sensor(context.for_run_failure())
    assert _open(wh, sources.RUN_ENTITY) == []
    quarantine.notify_failure(wh, gone, "invoices", "S-1", "QBO rejected the write", "r", "f")
    assert notify.deliver_pending(wh).messages_sent == 0
    with wh.begin() as conn:  # connected again: its problem is news again
        conn.execute(sa.text("UPDATE sync.companies SET status = 'connected' WHERE realm_id = :r"),
                     {"r": gone})  # fmt: skip
    assert notify.deliver_pending(wh).messages_sent == 1


def test_R31_delivery_sensor_sends_what_is_pending(
    wh: sa.Engine, webhook_server: WebhookSink
) -> None:
    notify.add_webhook_channel(wh, webhook_server.url)
    sources.notify_run_failed(wh, None, "run-x", "push_job", "boom")  # a run for no company
    with dg.instance_for_test() as instance:
        context = dg.build_sensor_context(
            instance=instance, resources={"warehouse": WarehouseResource(database_url=_url(wh))}
        )
        result = notify_delivery_sensor(context)
    assert isinstance(result, dg.SkipReason)
    assert result.skip_message is not None
    assert "1 message(s) sent" in result.skip_message
    [item] = _events(webhook_server, 0)
    assert (item["realm_id"], item["record_id"]) == ("*", "push_job")


def test_R31_notify_sensors_are_defined_and_running_by_default() -> None:
    names = {s.name for s in defs.sensors or []}
    assert {s.name for s in NOTIFY_SENSORS} <= names
    assert {
        "notify_run_failure_sensor",
        "notify_run_success_sensor",
        "notify_delivery_sensor",
    } <= names
    for sensor in NOTIFY_SENSORS:
        assert sensor.default_status == dg.DefaultSensorStatus.RUNNING
    assert notify_delivery_sensor.minimum_interval_seconds == 30
    dg.Definitions.validate_loadable(defs)


# -- a company to reconnect --------------------------------------------------------------------


def test_R31_invalid_grant_opens_a_reconnect_notification_and_reconnecting_resolves_it(
    sandbox: Any, wh: sa.Engine, token_key: str
) -> None:
    config = auth.OAuthConfig.for_base_url(
        sandbox.base_url, sandbox.client_id, sandbox.client_secret, sandbox.redirect_uri
    )
    store = auth.TokenStore(wh, auth.OAuthClient(config), auth.token_cipher())
    realm = RealmId(sandbox.control.create_company(name="Reconnect Co", seed=False))

    def connect() -> None:
        minted = sandbox.control.mint_tokens(realm)
        tokens = auth.TokenSet.from_response(minted, datetime.now(UTC))
        store.save_connection(realm, tokens, api_base_url=sandbox.base_url, company_name="R Co")

    connect()
    current = store.load(realm)
    assert current is not None
    store.oauth.revoke(current.refresh_token)  # the user disconnected the app in QBO
    for _ in range(2):
        with pytest.raises(NeedsReconnectError):
            store.refresh(realm, force=True)

    [row] = _open(wh)
    assert (row.entity, row.record_id, row.title) == ("company", realm, sources.RECONNECT_TITLE)
    assert "invalid_grant" in row.reason
    assert "qbo-pipelines connect" in row.fix

    connect()
    assert _open(wh) == []


def test_R31_run_failed_and_reconnect_are_deduplicated_while_open(wh: sa.Engine) -> None:
    first = sources.notify_run_failed(wh, REALM, "r1", "push_job", "x" * 5000)
    assert sources.notify_run_failed(wh, REALM, "r2", "push_job", "again") == first
    other_job = sources.notify_run_failed(wh, REALM, "r3", "pull_job", "y")
    assert other_job != first
    reconnect = sources.notify_needs_reconnect(wh, REALM, "invalid_grant")
    assert sources.notify_needs_reconnect(wh, REALM, "invalid_grant") == reconnect
    assert len(_open(wh)) == 3
    assert sources.resolve_run_failed(wh, REALM, "push_job") == 1
    assert sources.resolve_run_failed(wh, REALM, "push_job") == 0
    assert sources.resolve_needs_reconnect(wh, REALM) == 1
    assert [r.record_id for r in _open(wh)] == ["pull_job"]
    # a new failure after the resolution is a new notification (announced again)
    assert sources.notify_run_failed(wh, REALM, "r4", "push_job", "z") not in (first, other_job)


# -- the CLI ----------------------------------------------------------------------------------


@pytest.fixture
def cli_on(wh: sa.Engine, monkeypatch: pytest.MonkeyPatch) -> Callable[..., int]:
    from qbo_pipelines import cli as top
    from qbo_pipelines.notify import cli as notify_cli

    @contextmanager
    def engine() -> Iterator[sa.Engine]:
        yield wh

    monkeypatch.setattr(notify_cli, "_engine", engine)  # the test database, not .data's
    return lambda *argv: top.main(["notify", *argv])


def test_R31_cli_adds_lists_tests_sends_and_removes_channels(
    cli_on: Callable[..., int],
    wh: sa.Engine,
    webhook_server: WebhookSink,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import io

    monkeypatch.setattr("sys.stdin", io.StringIO("hook-secret-xyz\n"))
    assert cli_on("add-webhook", "--url", webhook_server.url, "--secret-stdin") == 0
    assert cli_on("add-email", "--to", "ops@example.com", "--smtp-host", "127.0.0.1",
                  "--smtp-port", "1", "--smtp-security", "none") == 0  # fmt: skip
    assert cli_on("add-webhook", "--url", webhook_server.url, "--realm", "404") == 2
    out = capsys.readouterr()
    assert "channel 1: webhook to http://127.0.0.1:" in out.out
    assert "company 404 is not connected" in out.err

    assert cli_on("list") == 0
    listed = capsys.readouterr().out
    assert "secret stored (encrypted)" in listed
    assert "s3cr3tT0k3n" not in listed
    assert "hook-secret-xyz" not in listed

    assert cli_on("test", "1") == 0
    assert "test message sent" in capsys.readouterr().out
    assert webhook_server.received[0].headers.get("X-QBO-Pipelines-Signature")

    quarantine.notify_failure(wh, REALM, "invoices", "S-1", "QBO rejected the write", "r", "f")
    assert cli_on("send") == 1  # the email channel cannot connect
    out = capsys.readouterr().out
    assert "channel 1 (webhook" in out
    assert "sent 1 new" in out
    assert "channel 2 (email" in out
    assert "FAILED" in out
    assert cli_on("remove", "2") == 0
    assert cli_on("send") == 0
    assert cli_on("remove", "2") == 2
    assert "no notification channel 2" in capsys.readouterr().err


def test_R31_an_smtp_password_is_never_sent_unencrypted_to_a_relay_off_this_machine(
    cli_on: Callable[..., int],
    wh: sa.Engine,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import io

    from qbo_pipelines import notify

    monkeypatch.setattr("sys.stdin", io.StringIO("smtp-pass-123\n"))
    argv = ("add-email", "--to", "ops@example.com", "--smtp-security", "none")
    login = ("--smtp-user", "u", "--smtp-password-stdin")
    assert cli_on(*argv, "--smtp-host", "mail.example.com", *login) == 2
    err = capsys.readouterr().err
    assert "unencrypted" in err
    assert "starttls" in err
    assert len(err.strip().splitlines()) == 1
    with wh.connect() as conn:
        stored = conn.execute(sa.text("SELECT count(*) FROM sync.notification_channels"))
        assert stored.scalar() == 0

    # The relay given by the environment at send time: refused before connecting, recorded as a
    # failed delivery with the reason (the relay's address is a black hole: a connection would
    # time out, not be refused).
    monkeypatch.setenv("QBO_PIPELINES_SMTP_HOST", "192.0.2.1")
    monkeypatch.setenv("QBO_PIPELINES_SMTP_PASSWORD", "smtp-pass-123")
    notify.add_email_channel(wh, "ops@example.com", security="none", username="u", port=25)
    quarantine.notify_failure(wh, REALM, "invoices", "S-1", "QBO rejected the write", "r", "f")
    [outcome] = notify.deliver_pending(wh).outcomes
    assert not outcome.sent
    assert outcome.error is not None
    assert "unencrypted" in outcome.error
    assert "smtp-pass-123" not in outcome.error

    # On this machine, security none is allowed (a local relay).
    monkeypatch.setattr("sys.stdin", io.StringIO("smtp-pass-123\n"))
    assert cli_on(*argv, "--smtp-host", "localhost", *login) == 0
