"""R31: notifications reach a local SMTP server and a local webhook, once per channel, as one
digest, retried with backoff, resolutions announced once (real Postgres, real sockets)."""

from __future__ import annotations

import hashlib
import hmac
import socket
import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from notifybed import SMTP_PASSWORD, SMTP_USER, SmtpSink, WebhookSink, free_port

from qbo_pipelines import notify
from qbo_pipelines.notify import delivery
from qbo_pipelines.notify.senders import SIGNATURE_HEADER, TIMESTAMP_HEADER
from qbo_pipelines.qbo.secret import Secret
from qbo_pipelines.quality import quarantine
from qbo_pipelines.quality.rules import Violation

pytestmark = pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")

REALM = "9130350000000001"
OTHER = "9130350000000002"


def _company(engine: sa.Engine, realm: str, name: str) -> None:
    with engine.begin() as conn:
        conn.execute(
            sa.text("INSERT INTO sync.companies (realm_id, company_name) VALUES (:r, :n)"),
            {"r": realm, "n": name},
        )


def _hold(engine: sa.Engine, realm: str, ids: list[str], entity: str = "invoices") -> None:
    quarantine.hold(
        engine,
        realm,
        entity,
        "run-1",
        {
            sid: [
                Violation(
                    "tax_rate.unmapped",
                    f"sale {sid}: tax rate 'Luxury 25%' has no QBO mapping",
                    "Map 'Luxury 25%' to a QBO tax code: qbo-pipelines mappings set ...",
                )
            ]
            for sid in ids
        },
    )


def _deliveries(engine: sa.Engine) -> list[Any]:
    with engine.connect() as conn:
        return list(
            conn.execute(
                sa.text(
                    "SELECT notification_id, channel_id, kind, status, attempts, last_error,"
                    " next_attempt_at, sent_at FROM sync.notification_deliveries"
                    " ORDER BY notification_id, channel_id, kind"
                )
            )
        )


def _email_channel(engine: sa.Engine, smtp: SmtpSink, **kw: Any) -> notify.Channel:
    return notify.add_email_channel(
        engine,
        "ops@example.com, books@example.com",
        host=smtp.host,
        port=smtp.port,
        security="none",
        from_address="sync@example.com",
        username=SMTP_USER,
        password=Secret(SMTP_PASSWORD),
        **kw,
    )


def test_R31_a_held_record_reaches_a_local_smtp_server_with_record_reason_and_fix(
    wh: sa.Engine, smtp_server: SmtpSink
) -> None:
    _company(wh, REALM, "Zoë's Café")
    channel = _email_channel(wh, smtp_server)
    with wh.connect() as conn:
        stored = conn.execute(sa.text("SELECT secret_enc FROM sync.notification_channels")).scalar()
    assert stored is not None
    assert stored.startswith("gAAAAA")
    assert SMTP_PASSWORD not in stored
    assert SMTP_PASSWORD not in repr(channel)

    _hold(wh, REALM, ["S-000024"])
    report = notify.deliver_pending(wh)

    assert (report.messages_sent, report.messages_failed) == (1, 0), report.summary()
    assert smtp_server.logins == [SMTP_USER]  # logged in with the decrypted password
    [msg] = smtp_server.messages
    assert smtp_server.envelopes == [("sync@example.com", ["ops@example.com", "books@example.com"])]
    subject = str(msg["Subject"])
    assert "Held back before writing to QuickBooks" in subject
    assert "invoices S-000024" in subject
    assert "Zoë's Café" in subject
    body = msg.get_content()
    for expected in (
        f"Zoë's Café (company {REALM})",
        "Entity:     invoices",
        "Record:     S-000024",
        "tax rate 'Luxury 25%' has no QBO mapping",
        "Fix:        Map 'Luxury 25%' to a QBO tax code",
        "First seen: ",
        "marts.open_problems",
    ):
        assert expected in body, expected
    assert SMTP_PASSWORD not in body
    [row] = _deliveries(wh)
    assert (row.channel_id, row.kind, row.status, row.attempts) == (channel.id, "opened", "sent", 1)


def test_R31_webhook_gets_a_slack_message_signed_with_the_channel_secret(
    wh: sa.Engine, webhook_server: WebhookSink
) -> None:
    _company(wh, REALM, "Acme & Sons <UK>")
    secret = "whsec-signing-secret-123"
    channel = notify.add_webhook_channel(wh, webhook_server.url, secret=Secret(secret))
    assert "s3cr3tT0k3n" not in channel.describe()  # the URL's token is never shown
    with wh.connect() as conn:  # nor stored in clear (a Slack webhook URL is a credential)
        stored = conn.execute(
            sa.text("SELECT row_to_json(c)::text FROM sync.notification_channels c")
        ).scalar_one()
    assert "s3cr3tT0k3n" not in stored
    assert "gAAAAA" in stored
    _hold(wh, REALM, ["S-7"])

    notify.deliver_pending(wh)

    [got] = webhook_server.received
    assert got.path == "/services/T000/B000/s3cr3tT0k3n"
    assert got.headers["Content-Type"].startswith("application/json")
    expected = hmac.new(
        secret.encode(), got.headers[TIMESTAMP_HEADER].encode() + b"." + got.body, hashlib.sha256
    ).hexdigest()
    assert got.headers[SIGNATURE_HEADER] == f"v1={expected}"
    payload = got.json
    # Slack incoming webhooks: text (required fallback), blocks, metadata; nothing else.
    assert set(payload) == {"text", "blocks", "metadata"}
    assert "S-7" in payload["text"]
    assert "Luxury 25%" in payload["text"]
    blocks = payload["blocks"]
    assert blocks[0]["type"] == "header"
    assert len(blocks[0]["text"]["text"]) <= 150
    assert [b["type"] for b in blocks] == ["header", "section", "context"]
    section = blocks[1]["text"]["text"]
    assert "Acme &amp; Sons &lt;UK&gt;" in section  # Slack mrkdwn escaping
    assert "Acme &amp; Sons &lt;UK&gt;" in payload["text"]  # the fallback is mrkdwn too
    assert "<UK>" not in payload["text"]
    assert "*Reason:*" in section
    assert "*Fix:*" in section
    assert "`S-7`" in section
    meta = payload["metadata"]
    assert meta["event_type"] == "qbo_pipelines_notifications"
    [item] = meta["event_payload"]["notifications"]
    assert item["realm_id"] == REALM
    assert item["entity"] == "invoices"
    assert item["record_id"] == "S-7"
    assert item["resolved"] is False
    assert "Luxury 25%" in item["reason"]
    assert item["fix"].startswith("Map 'Luxury 25%'")
    assert item["first_seen"]
    assert secret not in got.body.decode()


def test_R31_each_notification_is_delivered_once_per_channel(
    wh: sa.Engine, smtp_server: SmtpSink, webhook_server: WebhookSink
) -> None:
    _email_channel(wh, smtp_server)
    notify.add_webhook_channel(wh, webhook_server.url)
    notify.add_webhook_channel(wh, webhook_server.url, realm_id=OTHER)  # another company's
    _hold(wh, REALM, ["1", "2"])

    first = notify.deliver_pending(wh)
    again = notify.deliver_pending(wh)
    _hold(wh, REALM, ["1", "2"])  # the same problems seen again by the next run: not news
    third = notify.deliver_pending(wh)

    assert (first.messages_sent, again.messages_sent, third.messages_sent) == (2, 0, 0)
    assert len(smtp_server.messages) == 1
    assert len(webhook_server.received) == 1
    rows = _deliveries(wh)
    assert len(rows) == 4  # 2 notifications x 2 channels of this company
    assert {r.status for r in rows} == {"sent"}

    _hold(wh, REALM, ["3"])  # a new problem: only it is announced
    notify.deliver_pending(wh)
    assert len(webhook_server.received) == 2
    [item] = webhook_server.received[1].json["metadata"]["event_payload"]["notifications"]
    assert item["record_id"] == "3"


def test_R31_many_notifications_make_one_digest_per_channel(
    wh: sa.Engine, smtp_server: SmtpSink, webhook_server: WebhookSink
) -> None:
    _company(wh, REALM, "Big Co")
    _email_channel(wh, smtp_server)
    notify.add_webhook_channel(wh, webhook_server.url)
    _hold(wh, REALM, [f"S-{i:04d}" for i in range(300)])
    quarantine.notify_failure(
        wh, REALM, "customers", "C-1", "QBO rejected the write", "Duplicate Name Exists", "Rename"
    )

    report = notify.deliver_pending(wh)

    assert report.messages_sent == 2
    assert report.notifications_sent == 602
    [msg] = smtp_server.messages
    assert "301 new problems (Big Co" in str(msg["Subject"])
    body = msg.get_content()
    assert body.count("Record:     ") == 20  # max_lines listed in full
    assert "... and 281 more not listed here:" in body
    assert "Held back before writing to QuickBooks, invoices (Big Co" in body
    [got] = webhook_server.received
    payload = got.json
    assert len(payload["blocks"]) <= 50
    assert all(len(b.get("text", {}).get("text", "")) <= 3000 for b in payload["blocks"])
    event = payload["metadata"]["event_payload"]
    assert (event["opened"], event["resolved"], event["not_listed"]) == (301, 0, 281)
    assert len(event["notifications"]) == 20
    assert len(_deliveries(wh)) == 602


def test_R31_a_failing_endpoint_is_retried_with_backoff_then_delivered(
    wh: sa.Engine, webhook_server: WebhookSink
) -> None:
    channel = notify.add_webhook_channel(wh, webhook_server.url)
    webhook_server.fail_next = 2
    t0 = datetime.now(UTC)
    _hold(wh, REALM, ["A"])

    failed = notify.deliver_pending(wh, now=t0)
    [outcome] = failed.outcomes
    assert not outcome.sent
    assert outcome.error is not None
    assert "HTTP 500" in outcome.error
    assert "s3cr3tT0k3n" not in outcome.error  # the URL is masked in stored errors
    [row] = _deliveries(wh)
    assert (row.status, row.attempts, row.sent_at) == ("failed", 1, None)
    assert row.next_attempt_at == t0 + timedelta(minutes=1)
    assert "HTTP 500" in row.last_error
    assert "s3cr3tT0k3n" not in row.last_error

    _hold(wh, REALM, ["B"])  # new while the channel backs off: waits for the retry
    waiting = notify.deliver_pending(wh, now=t0 + timedelta(seconds=30))
    assert waiting.outcomes == []
    assert channel.id in waiting.waiting
    assert webhook_server.attempts == 1

    second = notify.deliver_pending(wh, now=t0 + timedelta(seconds=61))  # fails again
    assert second.messages_failed == 1
    assert webhook_server.attempts == 2
    rows = {r.notification_id: r for r in _deliveries(wh)}
    assert sorted(r.attempts for r in rows.values()) == [1, 2]
    t2 = t0 + timedelta(seconds=61)
    assert {r.next_attempt_at for r in rows.values()} == {t2 + timedelta(minutes=2)}  # doubled

    early = notify.deliver_pending(wh, now=t2 + timedelta(minutes=1))
    assert early.outcomes == []
    assert webhook_server.attempts == 2

    third = notify.deliver_pending(wh, now=t2 + timedelta(minutes=2, seconds=1))
    assert third.messages_sent == 1
    assert third.notifications_sent == 2
    [got] = webhook_server.received  # one digest with both records
    ids = {i["record_id"] for i in got.json["metadata"]["event_payload"]["notifications"]}
    assert ids == {"A", "B"}
    assert {r.status for r in _deliveries(wh)} == {"sent"}
    assert notify.deliver_pending(wh, now=t2 + timedelta(hours=1)).outcomes == []


def test_R31_a_resolution_is_announced_once_and_only_after_the_problem_was(
    wh: sa.Engine, webhook_server: WebhookSink, smtp_server: SmtpSink
) -> None:
    notify.add_webhook_channel(wh, webhook_server.url)
    _email_channel(wh, smtp_server)
    _hold(wh, REALM, ["R-1"])
    notify.deliver_pending(wh)
    _hold(wh, REALM, ["R-2"])  # held and fixed before any delivery: never announced
    quarantine.release(wh, REALM, "invoices", ["R-1", "R-2"], "run-2")
    with wh.connect() as conn:
        resolved = conn.execute(
            sa.text(
                "SELECT record_id FROM sync.notifications WHERE resolved_at IS NOT NULL"
                " ORDER BY record_id"
            )
        ).scalars()
        assert list(resolved) == ["R-1", "R-2"]

    report = notify.deliver_pending(wh)
    later = notify.deliver_pending(wh)

    assert report.messages_sent == 2
    assert later.messages_sent == 0
    assert len(webhook_server.received) == 2
    payload = webhook_server.received[1].json
    [item] = payload["metadata"]["event_payload"]["notifications"]
    assert (item["record_id"], item["resolved"]) == ("R-1", True)
    assert item["resolved_at"] is not None
    assert "Resolved" in payload["blocks"][1]["text"]["text"]
    email = smtp_server.messages[1]
    assert str(email["Subject"]).startswith("[qbo-pipelines] Resolved: ")
    assert "Resolved:   " in email.get_content()
    kinds = sorted((r.kind, r.status) for r in _deliveries(wh))
    assert kinds == [
        ("opened", "sent"),
        ("opened", "sent"),
        ("resolved", "sent"),
        ("resolved", "sent"),
    ]


def test_R31_channels_for_one_company_only_get_that_company(
    wh: sa.Engine, webhook_server: WebhookSink
) -> None:
    notify.add_webhook_channel(wh, webhook_server.url, realm_id=OTHER)
    _hold(wh, REALM, ["X"])
    assert notify.deliver_pending(wh).outcomes == []
    _hold(wh, OTHER, ["Y"])
    notify.deliver_pending(wh)
    [got] = webhook_server.received
    [item] = got.json["metadata"]["event_payload"]["notifications"]
    assert (item["realm_id"], item["record_id"]) == (OTHER, "Y")


def test_R31_unreachable_smtp_server_is_a_failed_delivery_without_the_password(
    wh: sa.Engine,
) -> None:
    notify.add_email_channel(
        wh,
        "ops@example.com",
        host="127.0.0.1",
        port=1,
        security="none",
        username="u",
        password=Secret(SMTP_PASSWORD),
    )
    _hold(wh, REALM, ["Z"])
    [outcome] = notify.deliver_pending(wh).outcomes
    assert not outcome.sent
    assert outcome.error is not None
    assert "127.0.0.1:1" in outcome.error
    assert SMTP_PASSWORD not in outcome.error


def test_R31_test_message_reaches_every_channel_and_records_nothing(
    wh: sa.Engine, smtp_server: SmtpSink, webhook_server: WebhookSink
) -> None:
    _email_channel(wh, smtp_server)
    notify.add_webhook_channel(wh, webhook_server.url)
    outcomes = delivery.send_test(wh)
    assert [o.sent for o in outcomes] == [True, True]
    assert "Test message" in str(smtp_server.messages[0]["Subject"])
    assert webhook_server.received[0].json["metadata"]["event_payload"]["test"] is True
    assert _deliveries(wh) == []


def test_R31_a_webhook_url_stored_in_clear_before_is_sealed_when_channels_are_read(
    wh: sa.Engine, webhook_server: WebhookSink
) -> None:
    """A channel added before URLs were encrypted (migration 127) is encrypted the first time
    channels are read, and still delivers."""
    with wh.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO sync.notification_channels (realm_id, kind, target)"
                " VALUES (NULL, 'webhook', :u)"
            ),
            {"u": webhook_server.url},
        )
    [channel] = notify.list_channels(wh)
    assert "s3cr3tT0k3n" not in channel.target
    with wh.connect() as conn:
        stored = conn.execute(
            sa.text("SELECT row_to_json(c)::text FROM sync.notification_channels c")
        ).scalar_one()
    assert "s3cr3tT0k3n" not in stored
    _company(wh, REALM, "Acme")
    _hold(wh, REALM, ["S-9"])
    notify.deliver_pending(wh)
    [got] = webhook_server.received
    assert got.path == "/services/T000/B000/s3cr3tT0k3n"


def test_R31_a_company_name_with_line_breaks_stays_one_subject_line_and_delivery_goes_on(
    wh: sa.Engine, smtp_server: SmtpSink, webhook_server: WebhookSink
) -> None:
    """The company's name comes from QBO (its administrator sets it): a CR or U+2028 in it
    made the email header refused with a ValueError nobody caught, so every delivery of every
    channel and company crashed at the same point, for good. Now the subject is one line, no
    header is smuggled in, and every channel gets its message."""
    _company(wh, REALM, "Evil\u2028Co\rBcc: victim@evil.example")
    _email_channel(wh, smtp_server)
    notify.add_webhook_channel(wh, webhook_server.url)
    _hold(wh, REALM, ["S-1"])
    report = notify.deliver_pending(wh)
    assert (report.messages_sent, report.messages_failed) == (2, 0), report.summary()
    [msg] = smtp_server.messages
    assert msg["Bcc"] is None
    assert "\r" not in str(msg["Subject"])
    assert "\u2028" not in str(msg["Subject"])
    assert "Evil Co Bcc: victim@evil.example" in str(msg["Subject"])
    assert smtp_server.envelopes == [("sync@example.com", ["ops@example.com", "books@example.com"])]
    assert len(webhook_server.received) == 1


def test_R31_an_endpoint_answering_a_byte_at_a_time_is_given_up_and_the_others_get_theirs(
    wh: sa.Engine, webhook_server: WebhookSink, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A timeout bounds each wait for bytes, so an endpoint trickling its answer (a byte every
    half second) held ``notify send`` and the one delivery lock of every channel for good.
    Each send now has a deadline in all (three timeouts; shortened here): the trickling
    channel fails with the reason and backs off, the next channel is served."""
    from qbo_pipelines.notify import senders

    monkeypatch.setattr(senders, "DEADLINE_FACTOR", 0.2)  # 10 s timeout: given up after 2 s
    listener = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def trickle() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            with conn:
                conn.recv(65536)
                for byte in b"HTTP/1.1 200 OK\r\nX-Slow: " + b"a" * 1000:
                    if stop.wait(0.5):
                        break
                    try:
                        conn.sendall(bytes([byte]))
                    except OSError:
                        break

    thread = threading.Thread(target=trickle, daemon=True)
    thread.start()
    try:
        slow = notify.add_webhook_channel(
            wh, f"http://127.0.0.1:{listener.getsockname()[1]}/services/T/B/trickle"
        )
        fast = notify.add_webhook_channel(wh, webhook_server.url)
        _hold(wh, REALM, ["S-1"])
        report = notify.deliver_pending(wh)
    finally:
        stop.set()
        thread.join(5)
        listener.close()
    outcomes = {o.channel_id: o for o in report.outcomes}
    assert outcomes[fast.id].sent
    assert not outcomes[slow.id].sent
    assert "no complete answer within 2 s" in (outcomes[slow.id].error or "")
    assert "trickle" not in (outcomes[slow.id].error or "")
    assert len(webhook_server.received) == 1


def test_R31_a_webhook_url_requests_rewrites_never_shows_its_secret_part(wh: sa.Engine) -> None:
    """requests writes the URL into its errors re-encoded (é as %C3%A9), which the masking of
    the URL as given did not catch: the path and query token were stored and printed."""
    port = free_port()  # nothing listens there
    url = f"http://127.0.0.1:{port}/services/T000/B000/Unreachable_Sécret?token=QueryTok55"
    notify.add_webhook_channel(wh, url)
    _hold(wh, REALM, ["S-1"])
    [outcome] = notify.deliver_pending(wh).outcomes
    assert not outcome.sent
    assert "Connection refused" in (outcome.error or ""), outcome.error
    [row] = _deliveries(wh)
    for text in (outcome.error or "", row.last_error or ""):
        for secret in ("Unreachable", "S%C3%A9cret", "Sécret", "QueryTok55", "services"):
            assert secret not in text, (secret, text)


def test_R31_ipv6_webhook_urls_work_and_bad_ports_are_refused_before_storing(
    wh: sa.Engine,
) -> None:
    """An IPv6 URL was stored, then its masked form (brackets lost) broke `notify list` and
    `notify send` for every channel; a port that is no port was stored with a traceback."""
    channel = notify.add_webhook_channel(wh, "http://[::1]:40126/services/x")
    assert channel.describe().startswith("webhook to http://[::1]:40126/…")
    assert [c.id for c in notify.list_channels(wh)] == [channel.id]
    for bad in (
        "http://host:99999/x",
        "http://example.com:abc/x",
        "http://example.com:0/x",
        "http://exa mple.com/x",
    ):
        with pytest.raises(notify.ChannelError):
            notify.add_webhook_channel(wh, bad)
    assert [c.id for c in notify.list_channels(wh)] == [channel.id]
