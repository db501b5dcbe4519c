"""OAuth 2.0 for QBO (SPEC R1, R2) and the encrypted token store in the warehouse.

OAuth: :class:`OAuthConfig` holds the app credentials and the three endpoints, either Intuit's
(:meth:`OAuthConfig.intuit`) or those of another host such as the local sandbox
(:meth:`OAuthConfig.for_base_url`: ``/connect/oauth2``, ``/oauth2/v1/tokens/bearer``,
``/v2/oauth2/tokens/revoke`` on that host). :class:`OAuthClient` builds the authorize URL
(scope ``com.intuit.quickbooks.accounting`` plus a random ``state``), exchanges a code, refreshes
and revokes.

Token store: :class:`TokenStore` keeps one row per realm in ``sync.qbo_tokens`` (migration
``sql/warehouse/010_qbo_tokens.sql``) holding the access and refresh tokens **encrypted** with
Fernet; company status lives in ``sync.companies``. It implements the client's
:class:`~qbo_pipelines.qbo.client.TokenProvider`.

Encryption key:

* ``QBO_PIPELINES_TOKEN_KEY``: one Fernet key, or several separated by commas (the first
  encrypts; all decrypt, so keys can be rotated). Generate one with
  ``python -c "from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())"``.
* Local demo only: when the variable is absent, :func:`token_cipher` with ``create=True`` creates
  ``settings.data_dir()/token.key`` (git-ignored, mode 0600) and uses it on later runs.

Refresh safety (the peers' top complaint, "invalid_grant after two workers refreshed"):

* A refresh runs inside a transaction holding ``SELECT ... FOR UPDATE`` on the realm's row, so two
  processes never refresh the same company at once.
* The rotated refresh token is written and **committed before** the new access token is handed
  out, so nothing uses a token that is not yet durable.
* A caller that waited for the lock re-reads the row: if the access token it wanted to replace has
  already been replaced, it uses the new one instead of refreshing again (which would spend the
  refresh token the other process just stored).
* ``invalid_grant`` marks the company ``needs_reconnect`` (with a message saying what to do) and
  raises :class:`~qbo_pipelines.qbo.errors.NeedsReconnectError`; nothing retries it.

Tokens never appear in logs, exceptions or reprs: they travel as
:class:`~qbo_pipelines.qbo.secret.Secret`.

Disconnect (:meth:`TokenStore.disconnect`) revokes the refresh token at Intuit, deletes the token
row, marks the company ``disconnected`` and removes the company's settings and mappings: every
table in the ``mapping`` schema with a ``realm_id`` column is cleared for that realm, then every
callable registered with :func:`register_disconnect_cleanup` runs in the same transaction.
"""

from __future__ import annotations

import base64
import contextlib
import logging
import os
import secrets
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import requests
import sqlalchemy as sa
from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from qbo_pipelines import settings
from qbo_pipelines.qbo.errors import (
    AuthError,
    NeedsReconnectError,
    QboError,
    ServerError,
    TransportError,
    error_from_response,
)
from qbo_pipelines.qbo.ids import RealmId
from qbo_pipelines.qbo.secret import Secret

log = logging.getLogger(__name__)

ENV_TOKEN_KEY = "QBO_PIPELINES_TOKEN_KEY"  # noqa: S105 - a variable name
ACCOUNTING_SCOPE = "com.intuit.quickbooks.accounting"
INTUIT_AUTHORIZE_URL = "https://appcenter.intuit.com/connect/oauth2"
INTUIT_TOKEN_URL = "https://oauth.platform.intuit.com/oauth2/v1/tokens/bearer"  # noqa: S105
INTUIT_REVOKE_URL = "https://developer.api.intuit.com/v2/oauth2/tokens/revoke"
AUTHORIZE_PATH = "/connect/oauth2"
TOKEN_PATH = "/oauth2/v1/tokens/bearer"  # noqa: S105 - a URL path
REVOKE_PATH = "/v2/oauth2/tokens/revoke"

RECONNECT_MESSAGE = (
    "QuickBooks rejected the saved refresh token (invalid_grant): the connection was revoked, "
    "expired or superseded. Reconnect this company with `qbo-pipelines connect`."
)


# ---------------------------------------------------------------------------------------------
# OAuth


@dataclass(frozen=True)
class OAuthConfig:
    """App credentials and OAuth endpoints. ``client_secret`` never shows in a repr."""

    client_id: str
    client_secret: Secret = field(repr=False)
    redirect_uri: str
    authorize_url: str = INTUIT_AUTHORIZE_URL
    token_url: str = INTUIT_TOKEN_URL
    revoke_url: str = INTUIT_REVOKE_URL
    scope: str = ACCOUNTING_SCOPE

    @classmethod
    def intuit(cls, client_id: str, client_secret: str | Secret, redirect_uri: str) -> OAuthConfig:
        """Intuit's production/sandbox endpoints (the same for both; credentials differ)."""
        return cls(client_id, _secret(client_secret), redirect_uri)

    @classmethod
    def for_base_url(
        cls, base_url: str, client_id: str, client_secret: str | Secret, redirect_uri: str
    ) -> OAuthConfig:
        """Endpoints on one host, e.g. the local sandbox ``http://127.0.0.1:8765``."""
        root = base_url.rstrip("/")
        return cls(
            client_id,
            _secret(client_secret),
            redirect_uri,
            authorize_url=root + AUTHORIZE_PATH,
            token_url=root + TOKEN_PATH,
            revoke_url=root + REVOKE_PATH,
        )


def _secret(value: str | Secret) -> Secret:
    return value if isinstance(value, Secret) else Secret(value)


@dataclass(frozen=True)
class TokenSet:
    """An access token, its refresh token and their expiry times (aware, UTC)."""

    access_token: Secret
    refresh_token: Secret
    access_expires_at: datetime
    refresh_expires_at: datetime | None = None

    @classmethod
    def from_response(cls, payload: Mapping[str, Any], now: datetime) -> TokenSet:
        try:
            access = str(payload["access_token"])
            refresh = str(payload["refresh_token"])
        except KeyError:
            raise AuthError("token response lacks access_token/refresh_token") from None
        expires_in = int(payload.get("expires_in") or 3600)
        refresh_in = payload.get("x_refresh_token_expires_in")
        return cls(
            access_token=Secret(access),
            refresh_token=Secret(refresh),
            access_expires_at=now + timedelta(seconds=expires_in),
            refresh_expires_at=now + timedelta(seconds=int(refresh_in)) if refresh_in else None,
        )

    def expires_within(self, margin: timedelta, now: datetime) -> bool:
        return self.access_expires_at - margin <= now


def new_state() -> str:
    """A random, URL-safe CSRF ``state`` value."""
    return secrets.token_urlsafe(24)


class OAuthClient:
    """Authorize URL, code exchange, refresh and revoke against ``config``'s endpoints."""

    def __init__(
        self,
        config: OAuthConfig,
        *,
        session: requests.Session | None = None,
        timeout: float = 30.0,
        max_retries: int = 2,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.config = config
        self.session = session or requests.Session()
        self.timeout = timeout
        self.max_retries = max_retries
        self._clock = clock

    def __repr__(self) -> str:
        return (
            f"OAuthClient(client_id={self.config.client_id!r}, token_url={self.config.token_url!r})"
        )

    def authorization_url(self, state: str) -> str:
        """Where to send the user to pick a company and consent."""
        params = {
            "client_id": self.config.client_id,
            "response_type": "code",
            "scope": self.config.scope,
            "redirect_uri": self.config.redirect_uri,
            "state": state,
        }
        return f"{self.config.authorize_url}?{urlencode(params)}"

    def _basic(self) -> str:
        raw = f"{self.config.client_id}:{self.config.client_secret.reveal()}".encode()
        return "Basic " + base64.b64encode(raw).decode("ascii")

    def _post(
        self,
        url: str,
        *,
        form: Mapping[str, str] | None = None,
        json_body: Mapping[str, str] | None = None,
    ) -> requests.Response:
        headers = {"Accept": "application/json", "Authorization": self._basic()}
        attempt = 0
        while True:
            try:
                response = self.session.post(
                    url, data=form, json=json_body, headers=headers, timeout=self.timeout
                )
            except (requests.Timeout, requests.ConnectionError) as exc:
                error: QboError = TransportError(
                    f"OAuth endpoint unreachable: {type(exc).__name__}"
                )
            else:
                if response.status_code < 500:
                    return response
                error = ServerError(
                    f"OAuth endpoint HTTP {response.status_code}", status=response.status_code
                )
            if attempt >= self.max_retries:
                raise error
            attempt += 1
            time.sleep(min(4.0, 0.5 * 2**attempt))

    def _token_request(self, form: Mapping[str, str]) -> TokenSet:
        response = self._post(self.config.token_url, form=form)
        tid = response.headers.get("intuit_tid")
        if response.status_code == 200:
            try:
                payload = response.json()
            except ValueError:
                raise ServerError("token endpoint returned no JSON", intuit_tid=tid) from None
            return TokenSet.from_response(payload, self._clock())
        error_code = ""
        with contextlib.suppress(ValueError, AttributeError):
            error_code = str(response.json().get("error", ""))
        if error_code == "invalid_grant":
            raise NeedsReconnectError(
                RECONNECT_MESSAGE, code="invalid_grant", status=response.status_code, intuit_tid=tid
            )
        error = error_from_response(response.status_code, response.content, tid)
        raise error or AuthError(f"token endpoint HTTP {response.status_code}")

    def exchange_code(self, code: str) -> TokenSet:
        """Trade a (single-use) authorization code for tokens."""
        return self._token_request(
            {
                "grant_type": "authorization_code",
                "code": code,
                "redirect_uri": self.config.redirect_uri,
            }
        )

    def refresh(self, refresh_token: Secret) -> TokenSet:
        """New tokens from a refresh token; ``invalid_grant`` -> :class:`NeedsReconnectError`."""
        return self._token_request(
            {"grant_type": "refresh_token", "refresh_token": refresh_token.reveal()}
        )

    def revoke(self, token: Secret) -> None:
        """Revoke a refresh (or access) token; Intuit then drops the whole grant."""
        response = self._post(self.config.revoke_url, json_body={"token": token.reveal()})
        if response.status_code != 200:
            error = error_from_response(
                response.status_code, response.content, response.headers.get("intuit_tid")
            )
            raise error or AuthError(f"revoke failed: HTTP {response.status_code}")


# ---------------------------------------------------------------------------------------------
# Encryption key


def key_file_path() -> Path:
    return settings.data_dir() / "token.key"


def token_cipher(create: bool = False, env: Mapping[str, str] | None = None) -> MultiFernet:
    """The Fernet cipher for tokens: ``QBO_PIPELINES_TOKEN_KEY`` or the local key file.

    Args:
        create: when neither the variable nor the key file exists, create the key file (mode
            0600) under the data directory. For the local demo only; production sets the
            variable from a secret manager.
        env: environment to read (default ``os.environ``).
    """
    source = os.environ if env is None else env
    raw = source.get(ENV_TOKEN_KEY, "").strip()
    if raw:
        keys = [k.strip() for k in raw.split(",") if k.strip()]
    else:
        path = key_file_path()
        if not path.exists():
            if not create:
                raise AuthError(
                    f"no token encryption key: set {ENV_TOKEN_KEY} (a Fernet key) "
                    f"or run `qbo-pipelines connect` locally to create {path}"
                )
            _create_key_file(path)
        keys = [path.read_text(encoding="ascii").strip()]
    try:
        return MultiFernet([Fernet(k.encode("ascii")) for k in keys])
    except (ValueError, TypeError):
        raise AuthError(
            f"{ENV_TOKEN_KEY} is not a valid Fernet key (32 url-safe base64 bytes)"
        ) from None


def _create_key_file(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    key = Fernet.generate_key()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, key + b"\n")
    finally:
        os.close(fd)
    log.info("created a local token encryption key at %s (mode 0600)", path)


# ---------------------------------------------------------------------------------------------
# Disconnect cleanups (extension point for the mapping module and others)

DisconnectCleanup = Callable[[sa.Connection, RealmId], None]
DISCONNECT_CLEANUPS: list[DisconnectCleanup] = []


def register_disconnect_cleanup(cleanup: DisconnectCleanup) -> DisconnectCleanup:
    """Register ``cleanup(conn, realm_id)`` to run inside the disconnect transaction.

    Usable as a decorator. Tables in the ``mapping`` schema with a ``realm_id`` column are already
    cleared automatically; register a function only for anything else.
    """
    if cleanup not in DISCONNECT_CLEANUPS:
        DISCONNECT_CLEANUPS.append(cleanup)
    return cleanup


def delete_mapping_rows(conn: sa.Connection, realm_id: RealmId) -> dict[str, int]:
    """Delete the realm's rows from every ``mapping.*`` table that has a ``realm_id`` column."""
    tables: list[str] = list(
        conn.execute(
            sa.text(
                "SELECT c.table_name FROM information_schema.columns c"
                " JOIN information_schema.tables t"
                "   ON t.table_schema = c.table_schema AND t.table_name = c.table_name"
                " WHERE c.table_schema = 'mapping' AND c.column_name = 'realm_id'"
                "   AND t.table_type = 'BASE TABLE' ORDER BY c.table_name"
            )
        )
        .scalars()
        .all()
    )
    preparer = conn.dialect.identifier_preparer
    deleted: dict[str, int] = {}
    for table in tables:
        qualified = f"mapping.{preparer.quote_identifier(str(table))}"
        result = conn.execute(
            sa.text(f"DELETE FROM {qualified} WHERE realm_id = :r"), {"r": realm_id}
        )
        deleted[str(table)] = result.rowcount
    return deleted


# ---------------------------------------------------------------------------------------------
# Token store


@dataclass(frozen=True)
class CompanyStatus:
    """A row of ``sync.companies`` joined with whether tokens are stored (never the tokens)."""

    realm_id: RealmId
    company_name: str | None
    status: str
    status_reason: str | None
    has_tokens: bool
    api_base_url: str | None
    access_expires_at: datetime | None
    refresh_generation: int | None


_SELECT_FOR_UPDATE = sa.text(
    "SELECT t.access_token_enc, t.refresh_token_enc, t.access_expires_at,"
    "       t.refresh_expires_at, t.generation, c.status"
    "  FROM sync.qbo_tokens t JOIN sync.companies c USING (realm_id)"
    " WHERE t.realm_id = :r FOR UPDATE OF t"
)
_SELECT = sa.text(
    "SELECT t.access_token_enc, t.refresh_token_enc, t.access_expires_at,"
    "       t.refresh_expires_at, t.generation, c.status"
    "  FROM sync.qbo_tokens t JOIN sync.companies c USING (realm_id)"
    " WHERE t.realm_id = :r"
)


class TokenStore:
    """Per-realm encrypted tokens in ``sync.qbo_tokens``; a client ``TokenProvider``.

    Args:
        engine: the warehouse engine (migrated).
        oauth: used to refresh and revoke.
        cipher: from :func:`token_cipher`.
        refresh_margin: refresh an access token this long before it expires.
    """

    def __init__(
        self,
        engine: sa.Engine,
        oauth: OAuthClient,
        cipher: MultiFernet,
        *,
        refresh_margin: timedelta = timedelta(minutes=5),
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.engine = engine
        self.oauth = oauth
        self._cipher = cipher
        self.refresh_margin = refresh_margin
        self._clock = clock
        self._cache: dict[RealmId, TokenSet] = {}
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"TokenStore(engine={self.engine.url.render_as_string(hide_password=True)!r})"

    # -- encryption --------------------------------------------------------------------------

    def _encrypt(self, secret: Secret) -> str:
        return self._cipher.encrypt(secret.reveal().encode("utf-8")).decode("ascii")

    def _decrypt(self, ciphertext: str) -> Secret:
        try:
            return Secret(self._cipher.decrypt(ciphertext.encode("ascii")).decode("utf-8"))
        except InvalidToken:
            raise AuthError(
                f"stored tokens cannot be decrypted with the configured {ENV_TOKEN_KEY}"
            ) from None

    def _tokens_from_row(self, row: sa.Row[Any]) -> TokenSet:
        return TokenSet(
            access_token=self._decrypt(row.access_token_enc),
            refresh_token=self._decrypt(row.refresh_token_enc),
            access_expires_at=row.access_expires_at,
            refresh_expires_at=row.refresh_expires_at,
        )

    # -- connect -----------------------------------------------------------------------------

    def save_connection(
        self,
        realm_id: RealmId,
        tokens: TokenSet,
        *,
        api_base_url: str | None = None,
        company_name: str | None = None,
    ) -> None:
        """Store tokens from a fresh consent and mark the company connected (R1 reconnect too)."""
        with self.engine.begin() as conn:
            conn.execute(
                sa.text(
                    "INSERT INTO sync.companies (realm_id, company_name, status, status_reason)"
                    " VALUES (:r, :n, 'connected', NULL)"
                    " ON CONFLICT (realm_id) DO UPDATE SET status = 'connected',"
                    "   status_reason = NULL, connected_at = now(), updated_at = now(),"
                    "   company_name = COALESCE(EXCLUDED.company_name, sync.companies.company_name)"
                ),
                {"r": realm_id, "n": company_name},
            )
            from qbo_pipelines.notify.sources import resolve_needs_reconnect  # R31

            resolve_needs_reconnect(conn, realm_id)
            conn.execute(
                sa.text(
                    "INSERT INTO sync.qbo_tokens (realm_id, api_base_url, access_token_enc,"
                    "   refresh_token_enc, access_expires_at, refresh_expires_at)"
                    " VALUES (:r, :u, :a, :f, :ae, :fe)"
                    " ON CONFLICT (realm_id) DO UPDATE SET api_base_url = EXCLUDED.api_base_url,"
                    "   access_token_enc = EXCLUDED.access_token_enc,"
                    "   refresh_token_enc = EXCLUDED.refresh_token_enc,"
                    "   access_expires_at = EXCLUDED.access_expires_at,"
                    "   refresh_expires_at = EXCLUDED.refresh_expires_at,"
                    "   generation = sync.qbo_tokens.generation + 1, refreshed_at = now()"
                ),
                {
                    "r": realm_id,
                    "u": api_base_url,
                    "a": self._encrypt(tokens.access_token),
                    "f": self._encrypt(tokens.refresh_token),
                    "ae": tokens.access_expires_at,
                    "fe": tokens.refresh_expires_at,
                },
            )
        with self._lock:
            self._cache[realm_id] = tokens

    # -- read --------------------------------------------------------------------------------

    def load(self, realm_id: RealmId) -> TokenSet | None:
        """The stored tokens (decrypted), or None when the company has none."""
        with self.engine.connect() as conn:
            row = conn.execute(_SELECT, {"r": realm_id}).one_or_none()
        if row is None:
            return None
        self._check_status(realm_id, row.status)
        return self._tokens_from_row(row)

    def api_base_url(self, realm_id: RealmId) -> str | None:
        with self.engine.connect() as conn:
            value = conn.execute(
                sa.text("SELECT api_base_url FROM sync.qbo_tokens WHERE realm_id = :r"),
                {"r": realm_id},
            ).scalar()
        return None if value is None else str(value)

    def generation(self, realm_id: RealmId) -> int | None:
        with self.engine.connect() as conn:
            value = conn.execute(
                sa.text("SELECT generation FROM sync.qbo_tokens WHERE realm_id = :r"),
                {"r": realm_id},
            ).scalar()
        return None if value is None else int(value)

    @staticmethod
    def _check_status(realm_id: RealmId, status: str) -> None:
        if status == "needs_reconnect":
            raise NeedsReconnectError(RECONNECT_MESSAGE, code="needs_reconnect")
        if status == "disconnected":
            raise NeedsReconnectError(
                f"company {realm_id} is disconnected; connect it again", code="disconnected"
            )

    # -- TokenProvider -----------------------------------------------------------------------

    def access_token(self, realm_id: RealmId) -> Secret:
        """A valid access token, refreshed first when it expires within ``refresh_margin``."""
        now = self._clock()
        with self._lock:
            cached = self._cache.get(realm_id)
        if cached is not None and not cached.expires_within(self.refresh_margin, now):
            return cached.access_token
        tokens = self.load(realm_id)
        if tokens is None:
            raise NeedsReconnectError(
                f"company {realm_id} has no stored tokens; connect it first", code="not_connected"
            )
        if tokens.expires_within(self.refresh_margin, now):
            tokens = self.refresh(realm_id, stale=tokens.access_token)
        with self._lock:
            self._cache[realm_id] = tokens
        return tokens.access_token

    def refresh_access_token(self, realm_id: RealmId, rejected: Secret) -> Secret:
        """After a 401: a new access token (or the one another process already got)."""
        return self.refresh(realm_id, stale=rejected).access_token

    # -- refresh -----------------------------------------------------------------------------

    def refresh(
        self, realm_id: RealmId, stale: Secret | None = None, force: bool = False
    ) -> TokenSet:
        """Refresh the realm's tokens under a row lock; see the module docstring.

        Args:
            stale: the access token the caller holds and wants replaced. When the stored one
                differs, another process already refreshed: its tokens are returned unchanged.
            force: refresh even when the stored access token is still fresh (and ``stale`` is
                None).
        """
        failure: NeedsReconnectError | None = None
        with self.engine.begin() as conn:
            row = conn.execute(_SELECT_FOR_UPDATE, {"r": realm_id}).one_or_none()
            if row is None:
                raise NeedsReconnectError(
                    f"company {realm_id} has no stored tokens; connect it first",
                    code="not_connected",
                )
            self._check_status(realm_id, row.status)
            current = self._tokens_from_row(row)
            now = self._clock()
            if stale is not None and current.access_token != stale:
                log.info("realm %s: tokens already refreshed by another worker", realm_id)
                new = current
            elif (
                stale is None and not force and not current.expires_within(self.refresh_margin, now)
            ):
                new = current
            else:
                try:
                    new = self.oauth.refresh(current.refresh_token)
                except NeedsReconnectError as exc:
                    self._mark(conn, realm_id, "needs_reconnect", RECONNECT_MESSAGE)
                    from qbo_pipelines.notify.sources import notify_needs_reconnect  # R31

                    notify_needs_reconnect(conn, realm_id, RECONNECT_MESSAGE)
                    failure = exc
                    new = current
                else:
                    conn.execute(
                        sa.text(
                            "UPDATE sync.qbo_tokens SET access_token_enc = :a,"
                            " refresh_token_enc = :f, access_expires_at = :ae,"
                            " refresh_expires_at = COALESCE(:fe, refresh_expires_at),"
                            " generation = generation + 1, refreshed_at = now()"
                            " WHERE realm_id = :r"
                        ),
                        {
                            "r": realm_id,
                            "a": self._encrypt(new.access_token),
                            "f": self._encrypt(new.refresh_token),
                            "ae": new.access_expires_at,
                            "fe": new.refresh_expires_at,
                        },
                    )
                    log.info("realm %s: access token refreshed", realm_id)
        # committed: only now may the new tokens be used
        if failure is not None:
            with self._lock:
                self._cache.pop(realm_id, None)
            raise failure
        with self._lock:
            self._cache[realm_id] = new
        return new

    @staticmethod
    def _mark(conn: sa.Connection, realm_id: RealmId, status: str, reason: str) -> None:
        conn.execute(
            sa.text(
                "UPDATE sync.companies SET status = :s, status_reason = :m, updated_at = now()"
                " WHERE realm_id = :r"
            ),
            {"r": realm_id, "s": status, "m": reason},
        )

    # -- disconnect --------------------------------------------------------------------------

    def disconnect(self, realm_id: RealmId, *, revoke: bool = True) -> None:
        """Revoke at Intuit, delete the tokens, mark disconnected, clear settings and mappings."""
        if revoke:
            try:
                tokens = self.load(realm_id)
            except NeedsReconnectError:
                tokens = None
            if tokens is not None:
                try:
                    self.oauth.revoke(tokens.refresh_token)
                except QboError as exc:  # the grant may already be gone; still forget it here
                    log.warning(
                        "realm %s: revoke failed (%s); deleting tokens anyway", realm_id, exc
                    )
        with self.engine.begin() as conn:
            conn.execute(
                sa.text("DELETE FROM sync.qbo_tokens WHERE realm_id = :r"), {"r": realm_id}
            )
            self._mark(
                conn,
                realm_id,
                "disconnected",
                f"disconnected at {self._clock().isoformat(timespec='seconds')}",
            )
            delete_mapping_rows(conn, realm_id)
            for cleanup in DISCONNECT_CLEANUPS:
                cleanup(conn, realm_id)
        with self._lock:
            self._cache.pop(realm_id, None)

    # -- listing -----------------------------------------------------------------------------

    def companies(self) -> list[CompanyStatus]:
        """Every known company with its status (no tokens)."""
        return list_companies(self.engine)


def list_companies(engine: sa.Engine) -> list[CompanyStatus]:
    """Every company in ``sync.companies`` with its status and token metadata (never tokens)."""
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text(
                "SELECT c.realm_id, c.company_name, c.status, c.status_reason,"
                "       t.realm_id IS NOT NULL AS has_tokens, t.api_base_url,"
                "       t.access_expires_at, t.generation"
                "  FROM sync.companies c LEFT JOIN sync.qbo_tokens t USING (realm_id)"
                " ORDER BY c.realm_id"
            )
        ).all()
    return [
        CompanyStatus(
            realm_id=RealmId(str(r.realm_id)),
            company_name=r.company_name,
            status=str(r.status),
            status_reason=r.status_reason,
            has_tokens=bool(r.has_tokens),
            api_base_url=r.api_base_url,
            access_expires_at=r.access_expires_at,
            refresh_generation=r.generation,
        )
        for r in rows
    ]
