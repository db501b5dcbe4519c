"""Where a sync run gets its clients: warehouse and source-app engines, the token store and a
QBO client per company, from the QBO app's configuration (:mod:`qbo_pipelines.qbo.app`) and
``QBO_PIPELINES_TOKEN_KEY`` (see :mod:`qbo_pipelines.qbo.auth`)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property

import sqlalchemy as sa

from qbo_pipelines.canonical import RealmId
from qbo_pipelines.qbo.app import (
    ENV_API_URL,
    ENV_CLIENT_ID,
    ENV_CLIENT_SECRET,
    ENV_OAUTH_URL,
    ENV_REDIRECT_URI,
    ConfigError,
    QboApp,
)
from qbo_pipelines.qbo.auth import OAuthClient, TokenStore, token_cipher
from qbo_pipelines.qbo.client import QboClient
from qbo_pipelines.source_app.connector import SourceAppConnector


@dataclass
class SyncEnv:
    """Plain clients for one sync run (no Dagster): warehouse, source app, QBO."""

    warehouse: sa.Engine
    source: sa.Engine
    app: QboApp
    client_options: Mapping[str, object] = field(default_factory=dict)

    @cached_property
    def tokens(self) -> TokenStore:
        return TokenStore(self.warehouse, OAuthClient(self.app.oauth_config()), token_cipher())

    @cached_property
    def connector(self) -> SourceAppConnector:
        return SourceAppConnector(self.source)

    def client(self, realm_id: RealmId) -> QboClient:
        """A client for one company, at the API URL stored when it was connected.

        Its request budget lives in the warehouse, shared by every process that syncs the company
        (``client_options`` may pass ``limiter=`` or ``budget=`` to override).
        """
        base = self.tokens.api_base_url(realm_id) or self.app.api_url
        options = dict(self.client_options)
        if "limiter" not in options:
            options.setdefault("budget", self.warehouse)
        return QboClient(base, realm_id, self.tokens, **options)  # type: ignore[arg-type]


__all__ = [
    "ENV_API_URL",
    "ENV_CLIENT_ID",
    "ENV_CLIENT_SECRET",
    "ENV_OAUTH_URL",
    "ENV_REDIRECT_URI",
    "ConfigError",
    "QboApp",
    "SyncEnv",
]
