"""``qbo-pipelines webhooks serve``: run the webhook receiver with uvicorn (R29).

The verifier token comes from ``QBO_PIPELINES_QBO_WEBHOOK_VERIFIER`` (the Intuit developer
portal shows it on the app's webhooks page); it is wrapped in a
:class:`~qbo_pipelines.qbo.secret.Secret` at once and never printed. The server binds
127.0.0.1 by default: in production a TLS-terminating reverse proxy (QBO posts to https only)
forwards to it. Events are stored for the companies in ``sync.companies`` whose status is
``connected``.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
from types import FrameType
from typing import Any

from qbo_pipelines import cli_args

ENV_WEBHOOK_VERIFIER = "QBO_PIPELINES_QBO_WEBHOOK_VERIFIER"  # noqa: S105 - a variable name
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8920


def _user_error(message: str) -> Exception:
    """A configuration error ``qbo-pipelines`` prints as one line (exit code 2).

    A :class:`qbo_pipelines.qbo.app.ConfigError`, which the entry point catches
    however it was started (``qbo-pipelines`` or ``python -m qbo_pipelines.cli``).
    """
    from qbo_pipelines.qbo.app import ConfigError

    return ConfigError(message)


def _stopped(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(0)


def _serve(args: argparse.Namespace) -> int:
    from qbo_pipelines.qbo.secret import Secret

    token = os.environ.get(ENV_WEBHOOK_VERIFIER, "").strip()
    if not token:
        raise _user_error(
            f"set {ENV_WEBHOOK_VERIFIER} to the app's webhook verifier token "
            "(Intuit developer portal, Webhooks)"
        )
    if not args.path.startswith("/"):
        raise _user_error(f"--path must start with '/', got {args.path!r}")
    verifier = Secret(token)

    import uvicorn

    from qbo_pipelines.warehouse import db, migrations, postgres
    from qbo_pipelines.webhooks import inbox
    from qbo_pipelines.webhooks.receiver import create_app

    engine = db.warehouse_engine(postgres.ensure_databases())
    migrations.migrate_warehouse(engine)
    app = create_app(
        engine,
        verifier,
        connected_realms=lambda: inbox.connected_realms(engine),
        max_body=args.max_body,
        path=args.path,
    )
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    print(f"webhook receiver: http://{args.host}:{args.port}{args.path}", flush=True)
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        print("note: not bound to loopback; QBO requires https, put a TLS proxy in front")
    # uvicorn shuts down gracefully on SIGTERM, then re-raises it; by then the receiver has
    # stopped cleanly, so exit 0 instead of dying of the signal.
    previous = signal.signal(signal.SIGTERM, _stopped)
    try:
        uvicorn.run(
            app,
            host=args.host,
            port=args.port,
            log_level="info",
            proxy_headers=True,
            forwarded_allow_ips="127.0.0.1",
            timeout_graceful_shutdown=5,
        )
    finally:
        signal.signal(signal.SIGTERM, previous)
        engine.dispose()
    return 0


def register(subparsers: Any) -> None:
    """Add ``webhooks serve`` to the top-level CLI."""
    parser = subparsers.add_parser("webhooks", help="the QBO webhook receiver")
    sub = parser.add_subparsers(dest="webhooks_command", required=True)
    serve = sub.add_parser(
        "serve",
        help=f"receive QBO webhooks into sync.webhook_inbox (token from {ENV_WEBHOOK_VERIFIER})",
    )
    serve.add_argument("--host", default=DEFAULT_HOST, help="bind address (default 127.0.0.1)")
    serve.add_argument("--port", type=cli_args.PORT, default=DEFAULT_PORT, help="default 8920")
    serve.add_argument("--path", default="/webhooks/qbo", help="where QBO posts")
    serve.add_argument(
        "--max-body", type=int, default=1024 * 1024, help="largest body accepted, bytes"
    )
    serve.set_defaults(func=_serve)
