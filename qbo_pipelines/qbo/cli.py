"""``qbo-pipelines connect | disconnect | companies | choices`` (SPEC R1, R3, R32).

Configuration comes from the environment (the same variables as :mod:`qbo_pipelines.sync.env`):
``QBO_PIPELINES_QBO_CLIENT_ID``, ``QBO_PIPELINES_QBO_CLIENT_SECRET``,
``QBO_PIPELINES_QBO_REDIRECT_URI`` (default ``http://127.0.0.1:8910/callback``),
``QBO_PIPELINES_QBO_API_URL`` and ``QBO_PIPELINES_QBO_OAUTH_URL``; ``--base-url`` points both API
and OAuth at one host (the local sandbox). Tokens are encrypted with ``QBO_PIPELINES_TOKEN_KEY``,
or locally with a key file created under the data directory (see :mod:`qbo_pipelines.qbo.auth`).
Nothing here ever prints a token.
"""

from __future__ import annotations

import argparse
import html
import os
import secrets
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import sqlalchemy as sa

from qbo_pipelines.qbo.app import (
    DEFAULT_REDIRECT_URI,
    ENV_API_URL,
    ENV_CLIENT_ID,
    ENV_CLIENT_SECRET,
    ENV_OAUTH_URL,
    ENV_REDIRECT_URI,
)
from qbo_pipelines.qbo.auth import (
    OAuthClient,
    OAuthConfig,
    TokenStore,
    list_companies,
    new_state,
    token_cipher,
)
from qbo_pipelines.qbo.client import PRODUCTION_BASE_URL, QboClient
from qbo_pipelines.qbo.errors import QboError
from qbo_pipelines.qbo.ids import RealmId


class ConnectError(RuntimeError):
    """The consent did not complete (denied, wrong state, timeout)."""


# ---------------------------------------------------------------------------------------------
# The one-shot callback listener


@dataclass
class CallbackListener:
    """Listens on the redirect URI's 127.0.0.1 port for exactly one OAuth callback."""

    redirect_uri: str
    timeout: float = 300.0

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
                listener._result = dict(parse_qsl(url.query))
                ok = "code" in listener._result
                text = "Connected. You can close this window." if ok else "Connection failed."
                body = f"<!doctype html><p>{html.escape(text)}</p>".encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
                listener._done.set()

            def log_message(self, format: str, *args: Any) -> None:  # query holds the code
                return

        self._server = HTTPServer(("127.0.0.1", parts.port or 80), Handler)

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
    listener = CallbackListener(oauth.config.redirect_uri, timeout=timeout)
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


def _oauth(args: argparse.Namespace) -> tuple[OAuthClient, str]:
    client_id = args.client_id or _env(ENV_CLIENT_ID)
    secret = _env(ENV_CLIENT_SECRET)
    if not client_id or not secret:
        from qbo_pipelines.cli import UserError

        raise UserError(f"set {ENV_CLIENT_ID} and {ENV_CLIENT_SECRET} (the QBO app's credentials)")
    redirect = args.redirect_uri or _env(ENV_REDIRECT_URI, DEFAULT_REDIRECT_URI)
    if args.base_url:
        config = OAuthConfig.for_base_url(args.base_url, client_id, secret, redirect)
        return OAuthClient(config), args.base_url.rstrip("/")
    oauth_url = _env(ENV_OAUTH_URL)
    if oauth_url:
        config = OAuthConfig.for_base_url(oauth_url, client_id, secret, redirect)
    else:
        config = OAuthConfig.intuit(client_id, secret, redirect)
    return OAuthClient(config), _env(ENV_API_URL, PRODUCTION_BASE_URL).rstrip("/")


def _store(oauth: OAuthClient, create_key: bool) -> TokenStore:
    return TokenStore(_warehouse(), oauth, token_cipher(create=create_key))


def _user_error(exc: Exception) -> Exception:
    from qbo_pipelines.cli import UserError

    return UserError(str(exc))


def _connect(args: argparse.Namespace) -> int:
    oauth, api_url = _oauth(args)
    store = _store(oauth, create_key=True)
    try:
        realm, name = connect(oauth, store, api_url, timeout=args.timeout)
    except (ConnectError, QboError) as exc:
        raise _user_error(exc) from None
    print(f"connected: realm {realm}{f' ({name})' if name else ''} at {api_url}")
    return 0


def _disconnect(args: argparse.Namespace) -> int:
    oauth, _ = _oauth(args)
    store = _store(oauth, create_key=False)
    store.disconnect(RealmId(args.realm), revoke=not args.no_revoke)
    print(f"disconnected: realm {args.realm} (tokens revoked and deleted, mappings removed)")
    return 0


def _companies(args: argparse.Namespace) -> int:
    rows = list_companies(_warehouse())
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

    oauth, api_url = _oauth(args)
    store = _store(oauth, create_key=False)
    realm = RealmId(args.realm)
    client = QboClient(store.api_base_url(realm) or api_url, realm, store, budget=store.engine)
    try:
        found = discovery.discover(client)
    except QboError as exc:
        raise _user_error(exc) from None
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


def _add_app_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--base-url", help="one host for API and OAuth (the local sandbox)")
    parser.add_argument("--client-id", help=f"overrides {ENV_CLIENT_ID}")
    parser.add_argument("--redirect-uri", help=f"overrides {ENV_REDIRECT_URI}")


def register(subparsers: Any) -> None:
    """Add the QBO connection commands to the top-level CLI."""
    p = subparsers.add_parser("connect", help="connect a QuickBooks company (OAuth 2.0)")
    _add_app_args(p)
    p.add_argument("--timeout", type=float, default=300.0, help="seconds to wait for consent")
    p.set_defaults(func=_connect)

    p = subparsers.add_parser("disconnect", help="revoke, delete tokens, remove mappings")
    p.add_argument("realm")
    _add_app_args(p)
    p.add_argument("--no-revoke", action="store_true", help="skip revoking at Intuit")
    p.set_defaults(func=_disconnect)

    p = subparsers.add_parser("companies", help="list connected companies and their status")
    p.set_defaults(func=_companies)

    p = subparsers.add_parser("choices", help="print the QBO choices a company can map to")
    p.add_argument("realm")
    _add_app_args(p)
    p.set_defaults(func=_choices)
