"""``qbo-pipelines connect | disconnect | companies | choices | status`` (SPEC R1, R3, R30, R32).

The QBO app comes from the environment (the same variables as :mod:`qbo_pipelines.sync.env`:
``QBO_PIPELINES_QBO_CLIENT_ID``, ``QBO_PIPELINES_QBO_CLIENT_SECRET``,
``QBO_PIPELINES_QBO_REDIRECT_URI`` (default ``http://127.0.0.1:8910/callback``),
``QBO_PIPELINES_QBO_API_URL`` and ``QBO_PIPELINES_QBO_OAUTH_URL``), else from the configuration
stored by ``make demo`` or by the last ``connect`` (:func:`qbo_pipelines.qbo.app.QboApp.resolve`);
``--base-url`` points both API and OAuth at one host (the local sandbox). Every command that
names a company refuses one that is not connected. Tokens are encrypted with
``QBO_PIPELINES_TOKEN_KEY``, or locally with a key file created under the data directory
(see :mod:`qbo_pipelines.qbo.auth`). Nothing here ever prints a token.
"""

from __future__ import annotations

import argparse
import contextlib
import html
import json
import os
import secrets
import sys
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, replace
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import sqlalchemy as sa

from qbo_pipelines import cli_args, companies, settings
from qbo_pipelines.qbo.app import (
    DEFAULT_REDIRECT_URI,
    ENV_API_URL,
    ENV_CLIENT_ID,
    ENV_CLIENT_SECRET,
    ENV_OAUTH_URL,
    ENV_REDIRECT_URI,
    NOT_CONFIGURED,
    ConfigError,
    QboApp,
    save_app,
)
from qbo_pipelines.qbo.auth import (
    OAuthClient,
    TokenStore,
    list_companies,
    new_state,
    token_cipher,
)
from qbo_pipelines.qbo.client import PRODUCTION_BASE_URL, QboClient
from qbo_pipelines.qbo.errors import QboError
from qbo_pipelines.qbo.ids import RealmId
from qbo_pipelines.qbo.secret import Secret


class ConnectError(RuntimeError):
    """The consent did not complete (denied, wrong state, timeout)."""


# ---------------------------------------------------------------------------------------------
# The one-shot callback listener


@dataclass
class CallbackListener:
    """Listens on the redirect URI's 127.0.0.1 port for exactly one OAuth callback."""

    redirect_uri: str
    timeout: float = 300.0
    expected_state: str | None = None
    """The consent's state: a callback carrying another one (forged, or a stale browser tab) is
    answered 400 and does not end the wait."""

    def __post_init__(self) -> None:
        parts = urlsplit(self.redirect_uri)
        if parts.hostname not in ("127.0.0.1", "localhost"):
            raise ConnectError("the redirect URI must be on 127.0.0.1 for the local listener")
        self._path = parts.path or "/"
        self._result: dict[str, str] | None = None
        self._done = threading.Event()
        listener = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server API
                url = urlsplit(self.path)
                if url.path != listener._path:
                    self.send_error(404)
                    return
                params = dict(parse_qsl(url.query))
                expected = listener.expected_state
                if expected is not None and not secrets.compare_digest(
                    params.get("state", "").encode(), expected.encode()
                ):
                    self._answer(
                        400,
                        "This callback is not for the connect waiting in the terminal (its"
                        " state differs); nothing was connected.",
                    )
                    return
                listener._result = params
                ok = "code" in params
                text = "Connected. You can close this window." if ok else "Connection failed."
                self._answer(200, text)
                listener._done.set()

            def _answer(self, status: int, text: str) -> None:
                body = f"<!doctype html><p>{html.escape(text)}</p>".encode()
                self.send_response(status)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:  # query holds the code
                return

        try:
            port = parts.port or 80
        except ValueError:  # e.g. 99999
            raise ConnectError(f"the redirect URI's port is no port: {self.redirect_uri}") from None
        try:
            self._server = HTTPServer(("127.0.0.1", port), Handler)
        except OSError as exc:
            raise ConnectError(
                f"cannot listen for the OAuth callback on 127.0.0.1:{port} ({exc.strerror}):"
                " another connect may be waiting; or give another --redirect-uri (registered"
                " with the app)"
            ) from None

    def wait(self) -> dict[str, str]:
        """Serve until the callback arrives (or ``timeout``); return its query parameters."""
        thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        thread.start()
        try:
            if not self._done.wait(self.timeout):
                raise ConnectError(f"no OAuth callback within {self.timeout:.0f} s")
        finally:
            self._server.shutdown()
            self._server.server_close()
        assert self._result is not None
        return self._result


def complete_consent(
    params: Mapping[str, str],
    expected_state: str,
    oauth: OAuthClient,
    store: TokenStore,
    api_url: str,
    client_options: Mapping[str, Any] | None = None,
) -> tuple[RealmId, str | None]:
    """Verify the callback, exchange the code, store the tokens; returns (realm, company name)."""
    if "error" in params:
        raise ConnectError(f"QuickBooks refused the connection: {params['error']}")
    if not secrets.compare_digest(params.get("state", ""), expected_state):
        raise ConnectError("OAuth state mismatch: the callback was not for this request")
    code, realm = params.get("code"), params.get("realmId")
    if not code or not realm:
        raise ConnectError("the callback carried no code or realmId")
    realm_id = RealmId(realm)
    tokens = oauth.exchange_code(code)
    store.save_connection(realm_id, tokens, api_base_url=api_url)
    name: str | None = None
    try:
        options = {"budget": store.engine, **dict(client_options or {})}
        client = QboClient(api_url, realm_id, store, **options)  # type: ignore[arg-type]
        name = str(client.company_info().get("CompanyName") or "") or None
    except QboError:
        name = None
    if name:
        store.save_connection(realm_id, tokens, api_base_url=api_url, company_name=name)
    return realm_id, name


def connect(
    oauth: OAuthClient,
    store: TokenStore,
    api_url: str,
    *,
    timeout: float = 300.0,
    announce: Callable[[str], None] = print,
    client_options: Mapping[str, Any] | None = None,
) -> tuple[RealmId, str | None]:
    """The whole R1 flow: print the authorize URL, wait for the callback, store tokens."""
    state = new_state()
    listener = CallbackListener(oauth.config.redirect_uri, timeout=timeout, expected_state=state)
    announce(f"Open this URL to connect a QuickBooks company:\n{oauth.authorization_url(state)}")
    params = listener.wait()
    return complete_consent(params, state, oauth, store, api_url, client_options)


# ---------------------------------------------------------------------------------------------
# Wiring


def _env(name: str, default: str = "") -> str:
    return os.environ.get(name, "").strip() or default


def _warehouse() -> sa.Engine:
    from qbo_pipelines.warehouse import db, migrations, postgres

    pg = postgres.ensure_databases()
    engine = db.warehouse_engine(pg)
    migrations.migrate_warehouse(engine)
    return engine


def _user_error(exc: Exception | str) -> Exception:
    from qbo_pipelines.cli import UserError

    return UserError(str(exc))


def resolve_app(args: argparse.Namespace, engine: sa.Engine) -> QboApp:
    """The QBO app for a command: the environment's, else the stored one; ``--client-id``,
    ``--base-url`` and ``--redirect-uri`` override (a new client id needs its secret in
    ``QBO_PIPELINES_QBO_CLIENT_SECRET``)."""
    try:
        app: QboApp | None = QboApp.resolve(engine)
    except ConfigError:
        app = None
    client_id = getattr(args, "client_id", None)
    if client_id and (app is None or app.client_id != client_id):
        secret = _env(ENV_CLIENT_SECRET)
        if not secret:
            raise _user_error(f"set {ENV_CLIENT_SECRET} to the secret of client id {client_id}")
        app = QboApp(
            client_id=client_id,
            client_secret=Secret(secret),
            api_url=_env(ENV_API_URL, PRODUCTION_BASE_URL).rstrip("/"),
            oauth_url=_env(ENV_OAUTH_URL) or None,
            redirect_uri=_env(ENV_REDIRECT_URI, DEFAULT_REDIRECT_URI),
            origin="env",
        )
    if app is None:
        raise _user_error(NOT_CONFIGURED)
    if getattr(args, "base_url", None):
        app = app.with_api_url(args.base_url.rstrip("/"))
    if getattr(args, "redirect_uri", None):
        app = replace(app, redirect_uri=args.redirect_uri)
    return app


@contextlib.contextmanager
def _qbo(args: argparse.Namespace, engine: sa.Engine) -> Iterator[QboApp]:
    """The app, with the demo's sandbox served for the block when it is the configured QBO
    and nothing answers (see :func:`qbo_pipelines.demo.setup.demo_sandbox_served`)."""
    from qbo_pipelines.demo.setup import demo_sandbox_served
    from qbo_pipelines.sandbox.state import DEFAULT_CLIENT_ID

    if getattr(args, "base_url", None):
        yield resolve_app(args, engine)
        return
    with demo_sandbox_served(engine) as served:
        if served:
            print(f"serving the demo's QBO sandbox at {served} for this command")
        app = resolve_app(args, engine)
        if served and app.api_url == served and app.client_id == DEFAULT_CLIENT_ID:
            # serving it put the sandbox's app in this process's environment: still the demo's
            app = replace(app, origin="demo-sandbox")
        yield app


def _store(engine: sa.Engine, app: QboApp, create_key: bool) -> TokenStore:
    return TokenStore(engine, OAuthClient(app.oauth_config()), token_cipher(create=create_key))


def _company(engine: sa.Engine, args: argparse.Namespace) -> RealmId:
    realm = getattr(args, "realm_opt", None) or getattr(args, "realm", None)
    if not realm:
        raise _user_error("name the company: --realm REALM")
    try:
        return RealmId(companies.require_connected(engine, realm).realm_id)
    except companies.NotConnectedError as exc:
        raise _user_error(exc) from None


def _connect(args: argparse.Namespace) -> int:
    engine = _warehouse()
    try:
        with _qbo(args, engine) as app:
            oauth = OAuthClient(app.oauth_config())
            store = TokenStore(engine, oauth, token_cipher(create=True))
            try:
                realm, name = connect(oauth, store, app.api_url, timeout=args.timeout)
            except (ConnectError, QboError) as exc:
                raise _user_error(exc) from None
            # Later commands and Dagster runs find the app without environment variables.
            save_app(engine, app, origin="demo-sandbox" if app.origin == "demo-sandbox" else "cli")
    finally:
        engine.dispose()
    print(f"connected: realm {realm}{f' ({name})' if name else ''} at {app.api_url}")
    print(
        f"next: `qbo-pipelines mappings suggest --realm {realm}`, then "
        f"`qbo-pipelines mappings check --realm {realm}`"
    )
    return 0


def _disconnect(args: argparse.Namespace) -> int:
    engine = _warehouse()
    try:
        realm = _company(engine, args)
        revoke = not args.no_revoke
        if revoke:
            with _qbo(args, engine) as app:
                _store(engine, app, create_key=False).disconnect(realm, revoke=True)
        else:
            try:
                app = resolve_app(args, engine)
            except Exception:  # noqa: BLE001 - nothing to revoke with; forget locally anyway
                app = QboApp("unconfigured", Secret("-"))
            _store(engine, app, create_key=False).disconnect(realm, revoke=False)
    finally:
        engine.dispose()
    done = "tokens revoked and deleted" if revoke else "tokens deleted (not revoked)"
    print(f"disconnected: realm {realm} ({done}, settings and mappings removed)")
    return 0


def _companies(args: argparse.Namespace) -> int:
    engine = _warehouse()
    try:
        rows = list_companies(engine)
    finally:
        engine.dispose()
    if not rows:
        print("no companies connected (run `qbo-pipelines connect`)")
        return 0
    print(f"{'realm':<22} {'status':<16} {'tokens':<7} {'name':<30} reason")
    for r in rows:
        print(
            f"{r.realm_id:<22} {r.status:<16} {'yes' if r.has_tokens else 'no':<7} "
            f"{(r.company_name or '-')[:30]:<30} {r.status_reason or ''}"
        )
    return 0


def _choices(args: argparse.Namespace) -> int:
    from qbo_pipelines.qbo import discovery

    engine = _warehouse()
    try:
        realm = _company(engine, args)
        with _qbo(args, engine) as app:
            store = _store(engine, app, create_key=False)
            client = QboClient(
                store.api_base_url(realm) or app.api_url, realm, store, budget=store.engine
            )
            try:
                found = discovery.discover(client)
            except QboError as exc:
                raise _user_error(exc) from None
    finally:
        engine.dispose()
    print(
        f"company: {found.company.realm_company_name} (home currency "
        f"{found.company.home_currency or '?'})"
    )
    for a in found.accounts:
        print(f"account  {a.id:>6}  {a.account_type:<24} {a.account_sub_type or '':<28} {a.name}")
    for t in found.tax_codes:
        print(f"taxcode  {t.id:>6}  {t.name}")
    for r in found.tax_rates:
        print(f"taxrate  {r.id:>6}  {r.rate if r.rate is not None else '':<8} {r.name}")
    for m in found.payment_methods:
        print(f"payment  {m.id:>6}  {m.name}")
    for t2 in found.terms:
        print(f"term     {t2.id:>6}  {t2.name}")
    for i in found.items:
        print(f"item     {i.id:>6}  {i.kind or '':<12} {i.name}")
    return 0


def _status(args: argparse.Namespace) -> int:
    from qbo_pipelines import status
    from qbo_pipelines.warehouse import db

    stack = db.bootstrap()
    os.environ.setdefault("DAGSTER_HOME", str(settings.DAGSTER_HOME))
    os.environ.setdefault("QBO_PIPELINES_DAGSTER_PG_URL", stack.dagster_url)
    warehouse = db.make_engine(stack.warehouse_url)
    source = db.make_engine(stack.source_app_url)
    try:
        history: status.RunHistory | None = None
        if not args.no_runs:
            try:
                from qbo_pipelines.defs.runner import InstanceHistory  # Dagster from here on

                history = InstanceHistory()
            except Exception as exc:  # noqa: BLE001 - the warehouse's status still stands
                print(f"warning: Dagster run history unavailable ({exc})", file=sys.stderr)
        try:
            reports = status.company_status(warehouse, source, args.realm, history=history)
        except companies.NotConnectedError as exc:
            raise _user_error(exc) from None
    finally:
        warehouse.dispose()
        source.dispose()
        close = getattr(history, "close", None)
        if close is not None:
            close()
    if args.json:
        print(json.dumps([r.to_dict() for r in reports], indent=2))
    else:
        print(status.render(reports))
    return 0


def _add_app_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--base-url", help="one host for API and OAuth (the local sandbox)")
    parser.add_argument("--client-id", help=f"overrides {ENV_CLIENT_ID} and the stored app")
    parser.add_argument("--redirect-uri", help=f"overrides {ENV_REDIRECT_URI}")


def _add_realm_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("realm", nargs="?", help="the company (or --realm)")
    parser.add_argument("--realm", dest="realm_opt", metavar="REALM", help="the company")


def register(subparsers: Any) -> None:
    """Add the QBO connection commands to the top-level CLI."""
    p = subparsers.add_parser("connect", help="connect a QuickBooks company (OAuth 2.0)")
    _add_app_args(p)
    p.add_argument(
        "--timeout",
        type=cli_args.positive(86_400),
        default=300.0,
        help="seconds to wait for consent (300)",
    )
    p.set_defaults(func=_connect)

    p = subparsers.add_parser("disconnect", help="revoke, delete tokens, remove mappings")
    _add_realm_args(p)
    _add_app_args(p)
    p.add_argument("--no-revoke", action="store_true", help="skip revoking at Intuit")
    p.set_defaults(func=_disconnect)

    p = subparsers.add_parser("companies", help="list connected companies and their status")
    p.set_defaults(func=_companies)

    p = subparsers.add_parser("choices", help="print the QBO choices a company can map to")
    _add_realm_args(p)
    _add_app_args(p)
    p.set_defaults(func=_choices)

    p = subparsers.add_parser(
        "status", help="per company: connection, last push/pull, pending, held, failed, next runs"
    )
    p.add_argument("--realm", help="one company (default: every connected company)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--no-runs", action="store_true", help="skip the Dagster run history")
    p.set_defaults(func=_status)
