"""The QBO app's configuration: credentials and hosts, from the environment or the warehouse.

Resolution order (:meth:`QboApp.resolve`): the environment variables below when the client id
and secret are both set, else the configuration stored in ``sync.qbo_app`` (written by
``make demo`` for the local sandbox and by ``qbo-pipelines connect``), else
:class:`ConfigError` naming what to set. The stored client secret is encrypted at rest with the
tokens' Fernet key (:func:`qbo_pipelines.qbo.auth.token_cipher`); it is never printed.

* ``QBO_PIPELINES_QBO_CLIENT_ID`` / ``QBO_PIPELINES_QBO_CLIENT_SECRET``: the app's OAuth
  credentials.
* ``QBO_PIPELINES_QBO_API_URL``: the Accounting API host (default Intuit's production
  ``https://quickbooks.api.intuit.com``; the local sandbox is ``http://127.0.0.1:PORT``). A
  company's own API URL, stored when it was connected, wins over this.
* ``QBO_PIPELINES_QBO_OAUTH_URL``: the host of the OAuth endpoints when they are not Intuit's
  (the local sandbox serves both on one host).
* ``QBO_PIPELINES_QBO_REDIRECT_URI``: the registered redirect URI.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Literal

import sqlalchemy as sa
from cryptography.fernet import InvalidToken, MultiFernet

from qbo_pipelines.qbo.auth import OAuthConfig, token_cipher
from qbo_pipelines.qbo.client import PRODUCTION_BASE_URL
from qbo_pipelines.qbo.secret import Secret

ENV_CLIENT_ID = "QBO_PIPELINES_QBO_CLIENT_ID"
ENV_CLIENT_SECRET = "QBO_PIPELINES_QBO_CLIENT_SECRET"  # noqa: S105 - a variable name
ENV_API_URL = "QBO_PIPELINES_QBO_API_URL"
ENV_OAUTH_URL = "QBO_PIPELINES_QBO_OAUTH_URL"
ENV_REDIRECT_URI = "QBO_PIPELINES_QBO_REDIRECT_URI"
DEFAULT_REDIRECT_URI = "http://127.0.0.1:8910/callback"

Origin = Literal["env", "cli", "demo-sandbox"]


class ConfigError(RuntimeError):
    """The QBO app is not configured; the message names the variable to set."""


NOT_CONFIGURED = (
    f"the QBO app is not configured: set {ENV_CLIENT_ID} and {ENV_CLIENT_SECRET} (then "
    "`qbo-pipelines connect` stores them), or run `make demo` for the local sandbox"
)


@dataclass(frozen=True)
class QboApp:
    """The QBO app's credentials and hosts. ``origin`` says where they came from."""

    client_id: str
    client_secret: Secret = field(repr=False)
    api_url: str = PRODUCTION_BASE_URL
    oauth_url: str | None = None
    redirect_uri: str = DEFAULT_REDIRECT_URI
    origin: Origin = "env"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> QboApp:
        """The app from the environment only (:class:`ConfigError` when it is not set)."""
        source = os.environ if env is None else env
        client_id = source.get(ENV_CLIENT_ID, "").strip()
        secret = source.get(ENV_CLIENT_SECRET, "").strip()
        if not client_id or not secret:
            raise ConfigError(NOT_CONFIGURED)
        return cls(
            client_id=client_id,
            client_secret=Secret(secret),
            api_url=source.get(ENV_API_URL, "").strip() or PRODUCTION_BASE_URL,
            oauth_url=source.get(ENV_OAUTH_URL, "").strip() or None,
            redirect_uri=source.get(ENV_REDIRECT_URI, "").strip() or DEFAULT_REDIRECT_URI,
        )

    @classmethod
    def resolve(
        cls,
        engine: sa.Engine | None = None,
        env: Mapping[str, str] | None = None,
        cipher: MultiFernet | None = None,
    ) -> QboApp:
        """The environment's app when its credentials are set, else the stored one.

        Args:
            engine: the (migrated) warehouse; default: the project's own warehouse database.
            env: environment to read (default ``os.environ``).
            cipher: decrypts the stored secret (default :func:`token_cipher`).
        """
        source = os.environ if env is None else env
        if source.get(ENV_CLIENT_ID, "").strip() and source.get(ENV_CLIENT_SECRET, "").strip():
            return cls.from_env(source)
        own = engine is None
        if engine is None:
            from qbo_pipelines.warehouse import db

            engine = db.warehouse_engine()
        try:
            stored = load_app(engine, cipher)
        finally:
            if own:
                engine.dispose()
        if stored is None:
            raise ConfigError(NOT_CONFIGURED)
        return stored

    def oauth_config(self) -> OAuthConfig:
        if self.oauth_url:
            return OAuthConfig.for_base_url(
                self.oauth_url, self.client_id, self.client_secret, self.redirect_uri
            )
        return OAuthConfig.intuit(self.client_id, self.client_secret, self.redirect_uri)

    def with_api_url(self, base_url: str) -> QboApp:
        """The same app with API and OAuth on ``base_url`` (the local sandbox)."""
        return replace(self, api_url=base_url, oauth_url=base_url)


_TABLE_EXISTS = sa.text("SELECT to_regclass('sync.qbo_app') IS NOT NULL")


def load_app(engine: sa.Engine, cipher: MultiFernet | None = None) -> QboApp | None:
    """The stored app (secret decrypted into a :class:`Secret`), or None when none is stored."""
    with engine.connect() as conn:
        if not conn.execute(_TABLE_EXISTS).scalar():
            return None
        row = conn.execute(
            sa.text(
                "SELECT client_id, client_secret_enc, api_url, oauth_url, redirect_uri, origin"
                " FROM sync.qbo_app WHERE name = 'default'"
            )
        ).one_or_none()
    if row is None:
        return None
    try:
        secret = (cipher or token_cipher()).decrypt(row.client_secret_enc.encode("ascii"))
    except InvalidToken:
        raise ConfigError(
            "the stored QBO app secret cannot be decrypted with the configured "
            "QBO_PIPELINES_TOKEN_KEY; set the app's variables or connect again"
        ) from None
    return QboApp(
        client_id=str(row.client_id),
        client_secret=Secret(secret.decode("utf-8")),
        api_url=str(row.api_url),
        oauth_url=row.oauth_url,
        redirect_uri=str(row.redirect_uri),
        origin="demo-sandbox" if row.origin == "demo-sandbox" else "cli",
    )


def save_app(
    engine: sa.Engine,
    app: QboApp,
    *,
    origin: Literal["cli", "demo-sandbox"] = "cli",
    cipher: MultiFernet | None = None,
) -> None:
    """Store ``app`` as the default configuration (secret encrypted with the token key)."""
    encrypted = (cipher or token_cipher(create=True)).encrypt(
        app.client_secret.reveal().encode("utf-8")
    )
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO sync.qbo_app (name, client_id, client_secret_enc, api_url, oauth_url,"
                "   redirect_uri, origin) VALUES ('default', :c, :s, :a, :o, :r, :g)"
                " ON CONFLICT (name) DO UPDATE SET client_id = EXCLUDED.client_id,"
                "   client_secret_enc = EXCLUDED.client_secret_enc, api_url = EXCLUDED.api_url,"
                "   oauth_url = EXCLUDED.oauth_url, redirect_uri = EXCLUDED.redirect_uri,"
                "   origin = EXCLUDED.origin, updated_at = now()"
            ),
            {
                "c": app.client_id,
                "s": encrypted.decode("ascii"),
                "a": app.api_url,
                "o": app.oauth_url,
                "r": app.redirect_uri,
                "g": origin,
            },
        )
