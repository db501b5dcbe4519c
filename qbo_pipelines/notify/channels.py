"""Notification channels: where R31 notifications are sent (``sync.notification_channels``).

Two kinds:

* ``email``: a list of addresses, sent over SMTP with :mod:`smtplib`. Settings ``host``,
  ``port``, ``security`` (``starttls``, ``ssl`` or ``none``), ``from`` and ``username``; any left
  out come from ``QBO_PIPELINES_SMTP_HOST``, ``_PORT``, ``_SECURITY``, ``_FROM``, ``_USERNAME``
  and ``_PASSWORD`` when the message is sent (so one SMTP relay can serve every channel).
* ``webhook``: an HTTP POST of a JSON message that Slack incoming webhooks accept; with a
  secret, the body is signed (HMAC-SHA256, header ``X-QBO-Pipelines-Signature``).

A channel serves one company (``realm_id``) or every company (None). The SMTP password or the
webhook signing secret is stored encrypted with the token store's Fernet key
(:func:`qbo_pipelines.qbo.auth.token_cipher`, ``QBO_PIPELINES_TOKEN_KEY``) and only ever travels
as a :class:`~qbo_pipelines.qbo.secret.Secret`.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final, Literal
from urllib.parse import urlsplit

import sqlalchemy as sa
from cryptography.fernet import InvalidToken, MultiFernet

from qbo_pipelines.qbo.auth import ENV_TOKEN_KEY, token_cipher
from qbo_pipelines.qbo.secret import Secret

ChannelKind = Literal["email", "webhook"]
Security = Literal["starttls", "ssl", "none"]

ENV_SMTP_HOST: Final = "QBO_PIPELINES_SMTP_HOST"
ENV_SMTP_PORT: Final = "QBO_PIPELINES_SMTP_PORT"
ENV_SMTP_SECURITY: Final = "QBO_PIPELINES_SMTP_SECURITY"
ENV_SMTP_FROM: Final = "QBO_PIPELINES_SMTP_FROM"
ENV_SMTP_USERNAME: Final = "QBO_PIPELINES_SMTP_USERNAME"
ENV_SMTP_PASSWORD: Final = "QBO_PIPELINES_SMTP_PASSWORD"  # noqa: S105 - a variable name

DEFAULT_MAX_LINES: Final = 20
"""Records listed one by one in a digest; the rest are counted."""

SECURITIES: Final = ("starttls", "ssl", "none")
_DEFAULT_PORTS: Final = {"starttls": 587, "ssl": 465, "none": 25}
_EMAIL_RE = re.compile(r"^[^@\s,;<>]+@[^@\s,;<>]+$")


class ChannelError(ValueError):
    """A channel definition that cannot work (bad address, URL, option or unknown id)."""


@dataclass(frozen=True, slots=True)
class Channel:
    """One row of ``sync.notification_channels`` (the secret stays encrypted)."""

    id: int
    realm_id: str | None
    kind: ChannelKind
    target: str
    settings: Mapping[str, Any] = field(default_factory=dict)
    secret_enc: str | None = field(default=None, repr=False)
    enabled: bool = True
    created_at: datetime | None = None
    target_enc: str | None = field(default=None, repr=False)

    @property
    def has_secret(self) -> bool:
        return self.secret_enc is not None

    @property
    def max_lines(self) -> int:
        value = self.settings.get("max_lines", DEFAULT_MAX_LINES)
        return max(1, int(value))

    @property
    def recipients(self) -> list[str]:
        """Email channels: the addresses in ``target``."""
        return split_addresses(self.target)

    def shown_target(self) -> str:
        """The target as it may be printed: a webhook URL loses its path and query (a Slack
        webhook URL is itself a credential)."""
        return self.target if self.kind == "email" else mask_url(self.target)

    def describe(self) -> str:
        scope = f"company {self.realm_id}" if self.realm_id else "every company"
        return f"{self.kind} to {self.shown_target()} ({scope})"


@dataclass(frozen=True, slots=True)
class SmtpSettings:
    """Where and how an email channel sends (channel settings over the environment)."""

    host: str
    port: int
    security: Security
    from_address: str
    username: str | None
    password: Secret | None = field(default=None, repr=False)
    timeout: float = 15.0


def cleartext_login(host: str, security: str, username: str | None) -> str | None:
    """Why logging in to ``host`` would send the SMTP password unencrypted (security ``none``
    to a relay not on this machine); None when it would not."""
    if not username or security != "none" or _loopback(host):
        return None
    return (
        f"SMTP: refusing to send user {username}'s password unencrypted to {host} (security "
        "none): use --smtp-security starttls or ssl (none is for a relay on this machine)"
    )


def _loopback(host: str) -> bool:
    name = host.strip().strip("[]").lower()
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def split_addresses(text: str) -> list[str]:
    return [a.strip() for a in re.split(r"[,;\s]+", text) if a.strip()]


def mask_url(url: str) -> str:
    """``https://hooks.slack.com/services/T0/B0/XYZ`` -> ``https://hooks.slack.com/…``."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or "?"
        port = f":{parts.port}" if parts.port else ""
    except ValueError:  # stored before the URL was checked as it is now
        return "(an invalid URL)"
    if ":" in host:  # an IPv6 address keeps its brackets (the masked URL is parsed again)
        host = f"[{host}]"
    tail = "/…" if (parts.path not in ("", "/") or parts.query) else "/"
    return f"{parts.scheme}://{host}{port}{tail}"


def _cipher(create: bool) -> MultiFernet:
    return token_cipher(create=create)


def encrypt_secret(secret: Secret, cipher: MultiFernet | None = None) -> str:
    """Fernet ciphertext of a channel secret (the token store's key)."""
    return (cipher or _cipher(create=True)).encrypt(secret.reveal().encode("utf-8")).decode()


def decrypt_secret(channel: Channel, cipher: MultiFernet | None = None) -> Secret | None:
    """The channel's secret, or None when it has none."""
    if channel.secret_enc is None:
        return None
    return Secret(_decrypt(channel, channel.secret_enc, "secret", cipher))


def _decrypt(channel: Channel, sealed: str, what: str, cipher: MultiFernet | None) -> str:
    try:
        plain = (cipher or _cipher(create=False)).decrypt(sealed.encode("ascii"))
    except InvalidToken:
        raise ChannelError(
            f"channel {channel.id}: its {what} cannot be decrypted with the configured "
            f"{ENV_TOKEN_KEY}"
        ) from None
    return plain.decode("utf-8")


def smtp_settings(
    channel: Channel, secret: Secret | None, env: Mapping[str, str] | None = None
) -> SmtpSettings:
    """The SMTP settings of an email channel: its own, else ``QBO_PIPELINES_SMTP_*``."""
    source = os.environ if env is None else env
    s = channel.settings
    security = str(s.get("security") or source.get(ENV_SMTP_SECURITY) or "starttls").lower()
    if security not in SECURITIES:
        raise ChannelError(f"SMTP security must be one of {', '.join(SECURITIES)}: {security!r}")
    port_value = s.get("port") or source.get(ENV_SMTP_PORT) or _DEFAULT_PORTS[security]
    password = secret
    if password is None and source.get(ENV_SMTP_PASSWORD):
        password = Secret(source[ENV_SMTP_PASSWORD])
    try:
        port = int(port_value)
    except (TypeError, ValueError):
        port = -1
    if not 0 < port < 65536:
        raise ChannelError(f"SMTP port must be a number from 1 to 65535: {str(port_value)[:20]!r}")
    return SmtpSettings(
        host=str(s.get("host") or source.get(ENV_SMTP_HOST) or "localhost"),
        port=port,
        security=security,  # type: ignore[arg-type]
        from_address=str(s.get("from") or source.get(ENV_SMTP_FROM) or "qbo-pipelines@localhost"),
        username=(s.get("username") or source.get(ENV_SMTP_USERNAME) or None),
        password=password,
        timeout=float(s.get("timeout", 15.0)),
    )


_COLUMNS = "id, realm_id, kind, target, settings, secret_enc, enabled, created_at, target_enc"


def webhook_url(channel: Channel, cipher: MultiFernet | None = None) -> str:
    """A webhook channel's URL, decrypted (it is stored encrypted: a credential)."""
    if channel.target_enc is None:
        return channel.target
    return _decrypt(channel, channel.target_enc, "URL", cipher)


def _seal_urls(conn: sa.Connection) -> None:
    """Encrypt the URLs of webhook channels stored before URLs were (migration 127)."""
    rows = conn.execute(
        sa.text(
            "SELECT id, target FROM sync.notification_channels"
            " WHERE kind = 'webhook' AND target_enc IS NULL FOR UPDATE"
        )
    ).all()
    if not rows:
        return
    cipher = _cipher(create=True)
    conn.execute(
        sa.text(
            "UPDATE sync.notification_channels SET target_enc = :e, target = :t WHERE id = :i"
        ),
        [
            {"i": r.id, "t": mask_url(r.target), "e": encrypt_secret(Secret(r.target), cipher)}
            for r in rows
        ],
    )


def _from_row(row: sa.Row[Any]) -> Channel:
    settings = row.settings if isinstance(row.settings, dict) else json.loads(row.settings or "{}")
    return Channel(
        id=int(row.id),
        realm_id=row.realm_id,
        kind=row.kind,
        target=str(row.target),
        settings=settings,
        secret_enc=row.secret_enc,
        enabled=bool(row.enabled),
        created_at=row.created_at,
        target_enc=row.target_enc,
    )


def _insert(
    engine: sa.Engine,
    kind: ChannelKind,
    target: str,
    realm_id: str | None,
    settings: Mapping[str, Any],
    secret: Secret | None,
) -> Channel:
    secret_enc = encrypt_secret(secret) if secret else None
    sealed = encrypt_secret(Secret(target)) if kind == "webhook" else None
    with engine.begin() as conn:
        row = conn.execute(
            sa.text(
                "INSERT INTO sync.notification_channels (realm_id, kind, target, settings,"
                " secret_enc, target_enc) VALUES (:r, :k, :t, CAST(:s AS jsonb), :e, :u)"
                f" RETURNING {_COLUMNS}"
            ),
            {
                "r": realm_id,
                "k": kind,
                "t": mask_url(target) if sealed else target,
                "s": json.dumps(dict(settings)),
                "e": secret_enc,
                "u": sealed,
            },
        ).one()
    return _from_row(row)


def add_email_channel(
    engine: sa.Engine,
    to: str | list[str],
    *,
    realm_id: str | None = None,
    host: str | None = None,
    port: int | None = None,
    security: Security | None = None,
    from_address: str | None = None,
    username: str | None = None,
    password: Secret | None = None,
    max_lines: int | None = None,
) -> Channel:
    """Add an email channel; unset SMTP options come from ``QBO_PIPELINES_SMTP_*`` at send time.

    Args:
        engine: the warehouse engine.
        to: one address, a comma-separated list, or a list.
        realm_id: only this company's notifications (None: every company).
        host, port, security, from_address, username: the SMTP relay.
        password: the SMTP password, stored encrypted.
        max_lines: records listed one by one in a digest.

    Raises:
        ChannelError: an address or option is invalid.
    """
    addresses = split_addresses(to) if isinstance(to, str) else [a.strip() for a in to]
    if not addresses:
        raise ChannelError("give at least one recipient address")
    bad = [a for a in addresses if not _EMAIL_RE.match(a)]
    if bad:
        raise ChannelError(f"not an email address: {', '.join(bad)}")
    if security is not None and security not in SECURITIES:
        raise ChannelError(f"SMTP security must be one of {', '.join(SECURITIES)}")
    if from_address is not None and not _EMAIL_RE.match(from_address):
        raise ChannelError(f"not an email address: {from_address}")
    refused = cleartext_login(host, security, username) if host and security else None
    if refused:
        raise ChannelError(refused)
    settings: dict[str, Any] = {
        k: v
        for k, v in (
            ("host", host),
            ("port", port),
            ("security", security),
            ("from", from_address),
            ("username", username),
            ("max_lines", max_lines),
        )
        if v is not None
    }
    return _insert(engine, "email", ", ".join(addresses), realm_id, settings, password)


def add_webhook_channel(
    engine: sa.Engine,
    url: str,
    *,
    realm_id: str | None = None,
    secret: Secret | None = None,
    max_lines: int | None = None,
) -> Channel:
    """Add a webhook channel (a Slack incoming webhook URL, or any JSON endpoint).

    Args:
        engine: the warehouse engine.
        url: ``https://...`` (``http://`` is accepted for endpoints on this machine or network).
        realm_id: only this company's notifications (None: every company).
        secret: when set, every body is signed with HMAC-SHA256; stored encrypted.
        max_lines: records listed one by one in a digest.

    Raises:
        ChannelError: the URL is not an http(s) URL.
    """
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ChannelError("the webhook URL must start with https:// (or http://) and name a host")
    try:
        port = parts.port
    except ValueError:
        port = 0
    if port == 0:
        raise ChannelError("the webhook URL's port must be a number from 1 to 65535")
    if any(c.isspace() or ord(c) < 32 for c in url.strip()):
        raise ChannelError("the webhook URL must not hold spaces or control characters")
    settings = {"max_lines": max_lines} if max_lines is not None else {}
    return _insert(engine, "webhook", url.strip(), realm_id, settings, secret)


def list_channels(engine: sa.Engine, *, enabled_only: bool = False) -> list[Channel]:
    """Every channel, by id."""
    where = " WHERE enabled" if enabled_only else ""
    with engine.begin() as conn:
        _seal_urls(conn)
        rows = conn.execute(
            sa.text(f"SELECT {_COLUMNS} FROM sync.notification_channels{where} ORDER BY id")
        ).all()
    return [_from_row(r) for r in rows]


def _found(row: Any, channel_id: int) -> Channel:
    """The channel of a row read by id; a clear error when there was none."""
    if row is None:
        raise ChannelError(
            f"no notification channel {channel_id} (see `qbo-pipelines notify list`)"
        )
    return _from_row(row)


def get_channel(engine: sa.Engine, channel_id: int) -> Channel:
    """One channel.

    Raises:
        ChannelError: no such channel.
    """
    with engine.connect() as conn:
        row = conn.execute(
            sa.text(f"SELECT {_COLUMNS} FROM sync.notification_channels WHERE id = :i"),
            {"i": channel_id},
        ).one_or_none()
    return _found(row, channel_id)


def remove_channel(engine: sa.Engine, channel_id: int) -> Channel:
    """Delete a channel and its delivery history.

    Raises:
        ChannelError: no such channel.
    """
    with engine.begin() as conn:
        row = conn.execute(
            sa.text(f"DELETE FROM sync.notification_channels WHERE id = :i RETURNING {_COLUMNS}"),
            {"i": channel_id},
        ).one_or_none()
    return _found(row, channel_id)


def set_enabled(engine: sa.Engine, channel_id: int, enabled: bool) -> Channel:
    """Switch a channel on or off (its history is kept).

    Raises:
        ChannelError: no such channel.
    """
    with engine.begin() as conn:
        row = conn.execute(
            sa.text(
                "UPDATE sync.notification_channels SET enabled = :on WHERE id = :i"
                f" RETURNING {_COLUMNS}"
            ),
            {"i": channel_id, "on": enabled},
        ).one_or_none()
    return _found(row, channel_id)


__all__ = [
    "DEFAULT_MAX_LINES",
    "ENV_SMTP_FROM",
    "ENV_SMTP_HOST",
    "ENV_SMTP_PASSWORD",
    "ENV_SMTP_PORT",
    "ENV_SMTP_SECURITY",
    "ENV_SMTP_USERNAME",
    "Channel",
    "ChannelError",
    "ChannelKind",
    "SmtpSettings",
    "add_email_channel",
    "add_webhook_channel",
    "decrypt_secret",
    "encrypt_secret",
    "get_channel",
    "list_channels",
    "mask_url",
    "remove_channel",
    "set_enabled",
    "smtp_settings",
    "split_addresses",
]
