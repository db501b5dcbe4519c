"""The QBO app's configuration: credentials and hosts, from the environment (read on demand).

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
from dataclasses import dataclass, field

from qbo_pipelines.qbo.auth import OAuthConfig
from qbo_pipelines.qbo.client import PRODUCTION_BASE_URL
from qbo_pipelines.qbo.secret import Secret

ENV_CLIENT_ID = "QBO_PIPELINES_QBO_CLIENT_ID"
ENV_CLIENT_SECRET = "QBO_PIPELINES_QBO_CLIENT_SECRET"  # noqa: S105 - a variable name
ENV_API_URL = "QBO_PIPELINES_QBO_API_URL"
ENV_OAUTH_URL = "QBO_PIPELINES_QBO_OAUTH_URL"
ENV_REDIRECT_URI = "QBO_PIPELINES_QBO_REDIRECT_URI"
DEFAULT_REDIRECT_URI = "http://127.0.0.1:8910/callback"


class ConfigError(RuntimeError):
    """The QBO app is not configured; the message names the variable to set."""


@dataclass(frozen=True)
class QboApp:
    """The QBO app's credentials and hosts."""

    client_id: str
    client_secret: Secret = field(repr=False)
    api_url: str = PRODUCTION_BASE_URL
    oauth_url: str | None = None
    redirect_uri: str = DEFAULT_REDIRECT_URI

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> QboApp:
        source = os.environ if env is None else env
        client_id = source.get(ENV_CLIENT_ID, "").strip()
        secret = source.get(ENV_CLIENT_SECRET, "").strip()
        if not client_id or not secret:
            raise ConfigError(
                f"the QBO app is not configured: set {ENV_CLIENT_ID} and {ENV_CLIENT_SECRET}"
            )
        return cls(
            client_id=client_id,
            client_secret=Secret(secret),
            api_url=source.get(ENV_API_URL, "").strip() or PRODUCTION_BASE_URL,
            oauth_url=source.get(ENV_OAUTH_URL, "").strip() or None,
            redirect_uri=source.get(ENV_REDIRECT_URI, "").strip() or DEFAULT_REDIRECT_URI,
        )

    def oauth_config(self) -> OAuthConfig:
        if self.oauth_url:
            return OAuthConfig.for_base_url(
                self.oauth_url, self.client_id, self.client_secret, self.redirect_uri
            )
        return OAuthConfig.intuit(self.client_id, self.client_secret, self.redirect_uri)
