"""Helpers for QBO client tests against the local sandbox (imported by conftest and tests)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from qbo_pipelines.qbo import QboClient, RealmId, Secret, StaticTokenProvider
from qbo_pipelines.qbo.limiter import Limits, RateLimiter


@dataclass
class Company:
    """A sandbox company with a minted access token."""

    sandbox: Any
    realm_id: RealmId
    access_token: str

    @property
    def control(self) -> Any:
        return self.sandbox.control

    def client(self, **kw: Any) -> QboClient:
        kw.setdefault("limiter", RateLimiter(kw.pop("limits", Limits())))
        kw.setdefault("backoff_base", 0.01)
        kw.setdefault("backoff_max", 0.2)
        kw.setdefault("throttle_backoff_base", 0.02)
        kw.setdefault("timeout", (5.0, 10.0))
        return QboClient(
            self.sandbox.base_url,
            self.realm_id,
            StaticTokenProvider(Secret(self.access_token)),
            **kw,
        )

    def requests(self) -> list[dict[str, Any]]:
        return list(self.control.requests(self.realm_id))

    def calls(self, endpoint: str) -> int:
        return sum(1 for r in self.requests() if r["endpoint"] == endpoint)
