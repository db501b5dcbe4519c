"""Delivering notifications to their channels: once each, as digests, retried with backoff.

:func:`deliver_pending` is what the Dagster sensor calls every ~30 s (and ``qbo-pipelines
notify send``). Per enabled channel it gathers what is due:

* **opened**: every open notification of the channel's company (or of every company) not yet
  announced on that channel;
* **resolved**: every notification announced on that channel and resolved since, whose
  resolution is not yet announced. A problem resolved before it was ever announced is not
  announced at all (nothing happened that the operator needs to hear about);

and sends it as ONE message (a digest when there are several), then records one row per
notification, channel and kind in ``sync.notification_deliveries``. A failed send marks those
rows ``failed`` with the (secret-free) error and a ``next_attempt_at`` that doubles with each
attempt (1 min, 2, 4 ... capped at 1 h); the whole channel waits until then, and the next
attempt carries whatever became due meanwhile in the same digest. A failed announcement of a
problem that has since been resolved is dropped.

Delivery is at-least-once: a process killed between the send and the record sends that digest
again. Two deliveries never run at once (a Postgres advisory lock; the loser returns at once).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Final

import sqlalchemy as sa
from cryptography.fernet import MultiFernet

from qbo_pipelines.notify import channels as ch
from qbo_pipelines.notify.channels import Channel, ChannelError
from qbo_pipelines.notify.messages import Item, Message, render
from qbo_pipelines.notify.senders import SendError, send_email, send_webhook
from qbo_pipelines.qbo.auth import token_cipher
from qbo_pipelines.qbo.errors import AuthError
from qbo_pipelines.qbo.secret import Secret

log = logging.getLogger(__name__)

BACKOFF_BASE: Final = timedelta(minutes=1)
BACKOFF_CAP: Final = timedelta(hours=1)
_LOCK_KEY: Final = 0x716E6F74696679  # "qnotify": one delivery at a time across processes


@dataclass(frozen=True, slots=True)
class ChannelOutcome:
    """What one channel got in one delivery."""

    channel_id: int
    channel: str
    opened: int
    resolved: int
    sent: bool
    error: str | None = None
    next_attempt_at: datetime | None = None

    def describe(self) -> str:
        what = f"{self.opened} new, {self.resolved} resolved"
        if self.sent:
            return f"channel {self.channel_id} ({self.channel}): sent {what}"
        retry = f"; retry after {self.next_attempt_at:%H:%M:%S}" if self.next_attempt_at else ""
        return f"channel {self.channel_id} ({self.channel}): FAILED ({what}): {self.error}{retry}"


@dataclass(slots=True)
class DeliveryReport:
    """What :func:`deliver_pending` did."""

    outcomes: list[ChannelOutcome] = field(default_factory=list)
    waiting: dict[int, datetime] = field(default_factory=dict)
    """Channels backing off after a failure -> when they are due again."""
    skipped: str | None = None
    """Set when nothing was attempted (another delivery was running, or the time ran out)."""

    @property
    def messages_sent(self) -> int:
        return sum(1 for o in self.outcomes if o.sent)

    @property
    def messages_failed(self) -> int:
        return sum(1 for o in self.outcomes if not o.sent)

    @property
    def notifications_sent(self) -> int:
        return sum(o.opened + o.resolved for o in self.outcomes if o.sent)

    def summary(self) -> str:
        if self.skipped and not self.outcomes:
            return f"nothing sent: {self.skipped}"
        parts = [
            f"{self.messages_sent} message(s) sent ({self.notifications_sent} notification "
            f"event(s)), {self.messages_failed} failed"
        ]
        if self.waiting:
            parts.append(f"{len(self.waiting)} channel(s) backing off")
        if self.skipped:
            parts.append(self.skipped)
        return "; ".join(parts)


_DUE = sa.text(
    """
    SELECT * FROM (
        SELECT n.id, 'opened' AS kind, n.realm_id, c.company_name, n.entity, n.record_id,
               n.severity, n.title, n.reason, n.fix, n.created_at, n.resolved_at,
               COALESCE(d.attempts, 0) AS attempts
        FROM sync.notifications n
        LEFT JOIN sync.notification_deliveries d
               ON d.notification_id = n.id AND d.channel_id = :ch AND d.kind = 'opened'
        LEFT JOIN sync.companies c ON c.realm_id = n.realm_id
        WHERE n.resolved_at IS NULL
          AND c.status IS DISTINCT FROM 'disconnected'  -- suspended while it is
          AND (CAST(:realm AS text) IS NULL OR n.realm_id = CAST(:realm AS text))
          AND (d.status IS NULL
               OR (d.status = 'failed' AND (:retry_now OR d.next_attempt_at <= :now)))
        UNION ALL
        SELECT n.id, 'resolved', n.realm_id, c.company_name, n.entity, n.record_id,
               n.severity, n.title, n.reason, n.fix, n.created_at, n.resolved_at,
               COALESCE(d.attempts, 0)
        FROM sync.notification_deliveries o
        JOIN sync.notifications n ON n.id = o.notification_id AND n.resolved_at IS NOT NULL
        LEFT JOIN sync.notification_deliveries d
               ON d.notification_id = n.id AND d.channel_id = :ch AND d.kind = 'resolved'
        LEFT JOIN sync.companies c ON c.realm_id = n.realm_id
        WHERE o.channel_id = :ch AND o.kind = 'opened' AND o.status = 'sent'
          AND (d.status IS NULL
               OR (d.status = 'failed' AND (:retry_now OR d.next_attempt_at <= :now)))
    ) due
    ORDER BY id, kind
    """
)

_BACKING_OFF = sa.text(
    """
    SELECT max(next_attempt_at) FROM sync.notification_deliveries
    WHERE channel_id = :ch AND status = 'failed' AND next_attempt_at > :now
    """
)

_RECORD = sa.text(
    """
    INSERT INTO sync.notification_deliveries AS d
        (notification_id, channel_id, kind, status, attempts, last_error, next_attempt_at,
         sent_at, updated_at)
    SELECT u.id, :ch, u.kind, :status, 1, :error, :next, :sent_at, :now
    FROM unnest(CAST(:ids AS bigint[]), CAST(:kinds AS text[])) AS u(id, kind)
    ON CONFLICT (notification_id, channel_id, kind) DO UPDATE SET
        status          = EXCLUDED.status,
        attempts        = d.attempts + 1,
        last_error      = EXCLUDED.last_error,
        next_attempt_at = EXCLUDED.next_attempt_at,
        sent_at         = EXCLUDED.sent_at,
        updated_at      = EXCLUDED.updated_at
    WHERE d.status <> 'sent'
    """
)


def backoff(attempts_before: int) -> timedelta:
    """Wait after a failure when the items had already failed ``attempts_before`` times."""
    delay: timedelta = BACKOFF_BASE * (2 ** min(attempts_before, 16))
    return min(delay, BACKOFF_CAP)


def due_items(
    engine: sa.Engine | sa.Connection,
    channel: Channel,
    now: datetime,
    *,
    retry_now: bool = False,
) -> list[tuple[Item, int]]:
    """What is due on a channel: (item, attempts so far) pairs, oldest notification first."""
    params = {"ch": channel.id, "realm": channel.realm_id, "now": now, "retry_now": retry_now}
    if isinstance(engine, sa.Connection):
        rows = engine.execute(_DUE, params).all()
    else:
        with engine.connect() as conn:
            rows = conn.execute(_DUE, params).all()
    return [
        (
            Item(
                notification_id=int(r.id),
                event=r.kind,
                realm_id=str(r.realm_id),
                company_name=r.company_name,
                entity=str(r.entity),
                record_id=str(r.record_id),
                severity=str(r.severity),
                title=str(r.title),
                reason=str(r.reason),
                fix=r.fix,
                first_seen=r.created_at,
                resolved_at=r.resolved_at,
            ),
            int(r.attempts),
        )
        for r in rows
    ]


class _Secrets:
    """Decrypts channel secrets, building the cipher only when a channel has one."""

    def __init__(self, cipher: MultiFernet | None) -> None:
        self._cipher = cipher

    def get(self, channel: Channel) -> Secret | None:
        if channel.secret_enc is None:
            return None
        if self._cipher is None:
            try:
                self._cipher = token_cipher(create=False)
            except AuthError as exc:
                raise ChannelError(f"channel {channel.id}: {exc}") from None
        return ch.decrypt_secret(channel, self._cipher)


def send_message(
    channel: Channel,
    message: Message,
    secrets: _Secrets | None = None,
    env: Mapping[str, str] | None = None,
) -> None:
    """Send one message on one channel.

    Raises:
        SendError: the send failed (message safe to show).
        ChannelError: the channel cannot work (e.g. its secret cannot be decrypted).
    """
    secret = (secrets or _Secrets(None)).get(channel)
    if channel.kind == "email":
        settings = ch.smtp_settings(channel, secret, env)
        send_email(settings, channel.recipients, message)
    else:
        send_webhook(ch.webhook_url(channel), message.payload, secret)


def _deliver_channel(
    conn: sa.Connection,
    channel: Channel,
    due: Sequence[tuple[Item, int]],
    now: datetime,
    secrets: _Secrets,
    env: Mapping[str, str] | None,
) -> ChannelOutcome:
    items = [item for item, _ in due]
    opened = sum(1 for i in items if i.event == "opened")
    error: str | None = None
    try:
        send_message(channel, render(items, max_lines=channel.max_lines), secrets, env)
    except (SendError, ChannelError) as exc:
        error = str(exc)
    except Exception as exc:  # noqa: BLE001 - one channel's failure never stops the others
        # (its text is not shown: it may hold what the channel keeps secret)
        error = f"could not send: {type(exc).__name__} (see the delivering process's log)"
        log.warning("channel %s: %s", channel.id, error)
    sent = error is None
    next_at = None if sent else now + backoff(max(a for _, a in due))
    conn.execute(
        _RECORD,
        {
            "ch": channel.id,
            "ids": [i.notification_id for i in items],
            "kinds": [i.event for i in items],
            "status": "sent" if sent else "failed",
            "error": error,
            "next": next_at,
            "sent_at": now if sent else None,
            "now": now,
        },
    )
    conn.commit()
    outcome = ChannelOutcome(
        channel_id=channel.id,
        channel=channel.describe(),
        opened=opened,
        resolved=len(items) - opened,
        sent=sent,
        error=error,
        next_attempt_at=next_at,
    )
    (log.info if sent else log.warning)("%s", outcome.describe())
    return outcome


def deliver_pending(
    engine: sa.Engine,
    *,
    now: datetime | None = None,
    retry_now: bool = False,
    max_seconds: float | None = None,
    cipher: MultiFernet | None = None,
    env: Mapping[str, str] | None = None,
) -> DeliveryReport:
    """Send every due notification event, one message per channel (see the module docstring).

    Args:
        engine: the warehouse engine (migrated).
        now: the time that decides what is due and stamps the deliveries (default: now, UTC).
        retry_now: ignore the backoff of failed deliveries (``notify send --retry-now``).
        max_seconds: start no new channel after this long (a sensor tick must stay short).
        cipher: to decrypt channel secrets (default: the token store's key, when needed).
        env: environment for the SMTP defaults (default ``os.environ``).

    Returns:
        What was sent, what failed and which channels are backing off.
    """
    now = now or datetime.now(UTC)
    started = time.monotonic()
    report = DeliveryReport()
    secrets = _Secrets(cipher)
    with engine.connect() as conn:
        if not conn.execute(sa.text("SELECT pg_try_advisory_lock(:k)"), {"k": _LOCK_KEY}).scalar():
            conn.rollback()
            report.skipped = "another delivery is running"
            return report
        conn.commit()
        try:
            for channel in ch.list_channels(engine, enabled_only=True):
                if max_seconds is not None and time.monotonic() - started > max_seconds:
                    report.skipped = f"time budget of {max_seconds:.0f} s used; the rest next time"
                    break
                if not retry_now:
                    until = conn.execute(_BACKING_OFF, {"ch": channel.id, "now": now}).scalar()
                    conn.commit()
                    if until is not None:
                        report.waiting[channel.id] = until
                        continue
                due = due_items(conn, channel, now, retry_now=retry_now)
                conn.commit()
                if due:
                    report.outcomes.append(_deliver_channel(conn, channel, due, now, secrets, env))
        finally:
            conn.rollback()
            conn.execute(sa.text("SELECT pg_advisory_unlock(:k)"), {"k": _LOCK_KEY})
            conn.commit()
    return report


def send_test(
    engine: sa.Engine,
    channel_id: int | None = None,
    *,
    cipher: MultiFernet | None = None,
    env: Mapping[str, str] | None = None,
) -> list[ChannelOutcome]:
    """Send a test message to one channel (or every enabled one); nothing is recorded.

    Raises:
        ChannelError: ``channel_id`` does not exist.
    """
    targets = (
        [ch.get_channel(engine, channel_id)]
        if channel_id is not None
        else ch.list_channels(engine, enabled_only=True)
    )
    secrets = _Secrets(cipher)
    now = datetime.now(UTC)
    outcomes = []
    for channel in targets:
        item = Item(
            notification_id=0,
            event="opened",
            realm_id=channel.realm_id or "*",
            company_name=None,
            entity="invoices",
            record_id="TEST-1",
            severity="info",
            title="Test notification",
            reason=f"A test of channel {channel.id} ({channel.describe()}).",
            fix="Nothing to do: if you can read this, the channel works.",
            first_seen=now,
        )
        message = render([item], test=True)
        error = None
        try:
            send_message(channel, message, secrets, env)
        except (SendError, ChannelError) as exc:
            error = str(exc)
        outcomes.append(
            ChannelOutcome(channel.id, channel.describe(), 1, 0, sent=error is None, error=error)
        )
    return outcomes


__all__ = [
    "BACKOFF_BASE",
    "BACKOFF_CAP",
    "ChannelOutcome",
    "DeliveryReport",
    "backoff",
    "deliver_pending",
    "due_items",
    "send_message",
    "send_test",
]
