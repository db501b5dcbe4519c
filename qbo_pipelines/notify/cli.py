"""``qbo-pipelines notify ...``: the channels R31 notifications are sent to, and sending now."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa

from qbo_pipelines import cli_args
from qbo_pipelines.qbo.secret import Secret


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "notify", help="where operator notifications go (email, Slack-style webhook)"
    )
    sub = parser.add_subparsers(dest="notify_command", required=True)

    email = sub.add_parser("add-email", help="send notifications by email (SMTP)")
    email.add_argument(
        "--to", action="append", required=True, help="recipient(s); repeat or separate by commas"
    )
    email.add_argument("--realm", help="only this company's notifications (default: every one)")
    email.add_argument("--smtp-host", help="default: $QBO_PIPELINES_SMTP_HOST, else localhost")
    email.add_argument(
        "--smtp-port", type=cli_args.PORT, help="default: $QBO_PIPELINES_SMTP_PORT or 587/465/25"
    )
    email.add_argument(
        "--smtp-security",
        choices=["starttls", "ssl", "none"],
        help="default: $QBO_PIPELINES_SMTP_SECURITY, else starttls",
    )
    email.add_argument("--from", dest="from_address", help="sender address")
    email.add_argument("--smtp-user", help="SMTP login (default: $QBO_PIPELINES_SMTP_USERNAME)")
    email.add_argument(
        "--smtp-password-stdin",
        action="store_true",
        help="read the SMTP password from stdin and store it encrypted "
        "(default: $QBO_PIPELINES_SMTP_PASSWORD at send time)",
    )
    email.add_argument(
        "--max-lines", type=cli_args.LINES, help="records listed in full per digest (20)"
    )
    email.set_defaults(func=_add_email)

    hook = sub.add_parser("add-webhook", help="POST notifications as JSON (Slack incoming webhook)")
    hook.add_argument("--url", required=True, help="e.g. https://hooks.slack.com/services/...")
    hook.add_argument("--realm", help="only this company's notifications (default: every one)")
    hook.add_argument(
        "--secret-stdin",
        action="store_true",
        help="read a signing secret from stdin: bodies are signed with HMAC-SHA256",
    )
    hook.add_argument(
        "--max-lines", type=cli_args.LINES, help="records listed in full per digest (20)"
    )
    hook.set_defaults(func=_add_webhook)

    sub.add_parser("list", help="the channels and their deliveries").set_defaults(func=_list)

    remove = sub.add_parser("remove", help="remove a channel")
    remove.add_argument("id", type=cli_args.ROW_ID)
    remove.set_defaults(func=_remove)

    for name, on in (("enable", True), ("disable", False)):
        p = sub.add_parser(name, help=f"{name} a channel")
        p.add_argument("id", type=cli_args.ROW_ID)
        p.set_defaults(func=_enable, on=on)

    test = sub.add_parser("test", help="send a test message (one channel, or every enabled one)")
    test.add_argument("id", type=cli_args.ROW_ID, nargs="?")
    test.set_defaults(func=_test)

    send = sub.add_parser("send", help="deliver the pending notifications now")
    send.add_argument(
        "--retry-now", action="store_true", help="retry failed deliveries without waiting"
    )
    send.set_defaults(func=_send)


@contextmanager
def _engine() -> Iterator[sa.Engine]:
    from qbo_pipelines.warehouse import db

    stack = db.bootstrap()
    engine = db.make_engine(stack.warehouse_url)
    try:
        yield engine
    finally:
        engine.dispose()


def _user_error(message: str) -> Exception:
    from qbo_pipelines.cli import UserError

    return UserError(message)


def _check_realm(engine: sa.Engine, realm: str | None) -> None:
    if realm is None:
        return
    with engine.connect() as conn:
        known = [str(r[0]) for r in conn.execute(sa.text("SELECT realm_id FROM sync.companies"))]
    if realm not in known:
        listed = ", ".join(sorted(known)) or "none (run `qbo-pipelines connect`)"
        raise _user_error(f"company {realm} is not connected; connected companies: {listed}")


def _read_secret(what: str) -> Secret:
    if sys.stdin.isatty():
        import getpass

        value = getpass.getpass(f"{what}: ")
    else:
        value = sys.stdin.readline().rstrip("\r\n")
    if not value:
        raise _user_error(f"empty {what}")
    return Secret(value)


def _add_email(args: argparse.Namespace) -> int:
    from qbo_pipelines.notify import channels

    password = _read_secret("SMTP password") if args.smtp_password_stdin else None
    with _engine() as engine:
        _check_realm(engine, args.realm)
        try:
            channel = channels.add_email_channel(
                engine,
                ",".join(args.to),
                realm_id=args.realm,
                host=args.smtp_host,
                port=args.smtp_port,
                security=args.smtp_security,
                from_address=args.from_address,
                username=args.smtp_user,
                password=password,
                max_lines=args.max_lines,
            )
        except channels.ChannelError as exc:
            raise _user_error(str(exc)) from None
    print(
        f"channel {channel.id}: {channel.describe()};"
        f" try it: qbo-pipelines notify test {channel.id}"
    )
    return 0


def _add_webhook(args: argparse.Namespace) -> int:
    from qbo_pipelines.notify import channels

    secret = _read_secret("webhook signing secret") if args.secret_stdin else None
    with _engine() as engine:
        _check_realm(engine, args.realm)
        try:
            channel = channels.add_webhook_channel(
                engine, args.url, realm_id=args.realm, secret=secret, max_lines=args.max_lines
            )
        except channels.ChannelError as exc:
            raise _user_error(str(exc)) from None
    print(
        f"channel {channel.id}: {channel.describe()};"
        f" try it: qbo-pipelines notify test {channel.id}"
    )
    return 0


def _list(args: argparse.Namespace) -> int:
    from qbo_pipelines.notify import channels

    with _engine() as engine:
        found = channels.list_channels(engine)
        with engine.connect() as conn:
            stats = {
                int(r.channel_id): r
                for r in conn.execute(
                    sa.text(
                        "SELECT channel_id, count(*) FILTER (WHERE status = 'sent') AS sent,"
                        " count(*) FILTER (WHERE status = 'failed') AS failed,"
                        " max(sent_at) AS last_sent,"
                        " (array_agg(last_error ORDER BY updated_at DESC)"
                        "   FILTER (WHERE status = 'failed'))[1] AS last_error"
                        " FROM sync.notification_deliveries GROUP BY channel_id"
                    )
                )
            }
    if not found:
        print(
            "no notification channel: add one with `qbo-pipelines notify add-email --to ...`"
            " or `notify add-webhook --url ...`"
        )
        return 0
    for c in found:
        s = stats.get(c.id)
        state = "enabled" if c.enabled else "disabled"
        secret = ", secret stored (encrypted)" if c.has_secret else ""
        print(
            f"{c.id:>4}  {c.kind:<7}  {c.shown_target()}  [{c.realm_id or 'every company'}]"
            f"  {state}{secret}"
        )
        if c.kind == "email" and c.settings:
            shown = ", ".join(f"{k}={v}" for k, v in sorted(c.settings.items()))
            print(f"      settings: {shown}")
        if s is not None:
            last = f", last sent {s.last_sent:%Y-%m-%d %H:%M}" if s.last_sent else ""
            print(f"      deliveries: {s.sent} sent, {s.failed} failed{last}")
            if s.failed and s.last_error:
                print(f"      last error: {s.last_error}")
    return 0


def _remove(args: argparse.Namespace) -> int:
    from qbo_pipelines.notify import channels

    with _engine() as engine:
        try:
            channel = channels.remove_channel(engine, args.id)
        except channels.ChannelError as exc:
            raise _user_error(str(exc)) from None
    print(f"removed channel {channel.id}: {channel.describe()}")
    return 0


def _enable(args: argparse.Namespace) -> int:
    from qbo_pipelines.notify import channels

    with _engine() as engine:
        try:
            channel = channels.set_enabled(engine, args.id, args.on)
        except channels.ChannelError as exc:
            raise _user_error(str(exc)) from None
    print(f"channel {channel.id}: {'enabled' if channel.enabled else 'disabled'}")
    return 0


def _test(args: argparse.Namespace) -> int:
    from qbo_pipelines.notify import channels, delivery

    with _engine() as engine:
        try:
            outcomes = delivery.send_test(engine, args.id)
        except channels.ChannelError as exc:
            raise _user_error(str(exc)) from None
    if not outcomes:
        print("no enabled notification channel")
        return 0
    for o in outcomes:
        print(
            f"channel {o.channel_id} ({o.channel}): "
            + ("test message sent" if o.sent else f"FAILED: {o.error}")
        )
    return 0 if all(o.sent for o in outcomes) else 1


def _send(args: argparse.Namespace) -> int:
    from qbo_pipelines.notify import delivery

    with _engine() as engine:
        report = delivery.deliver_pending(engine, retry_now=args.retry_now)
    for o in report.outcomes:
        print(o.describe())
    for cid, until in sorted(report.waiting.items()):
        print(
            f"channel {cid}: backing off after a failure until {until:%Y-%m-%d %H:%M:%S %Z}"
            " (--retry-now to retry now)"
        )
    print(report.summary())
    return 0 if report.messages_failed == 0 else 1
