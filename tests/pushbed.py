"""The push bed handle shared by the push tests."""

from dataclasses import dataclass

import sqlalchemy as sa

from qbo_pipelines.canonical import RealmId
from qbo_pipelines.sandbox.testing import SandboxHandle
from qbo_pipelines.sync.env import SyncEnv


@dataclass
class PushBed:
    env: SyncEnv
    sandbox: SandboxHandle
    realm: RealmId

    def count(self, entity: str, include_inactive: bool = True) -> int:
        return self.sandbox.control.count(self.realm, entity, include_inactive=include_inactive)

    def write_calls(self) -> int:
        counts = self.sandbox.control.request_counts(self.realm)
        return sum(
            n
            for label, n in counts.items()
            if label == "batch" or label.startswith(("create", "update", "delete", "send"))
        )

    def sql(self, engine: sa.Engine, text: str, **params: object) -> list[sa.Row]:  # type: ignore[type-arg]
        with engine.begin() as conn:
            result = conn.execute(sa.text(text), params)
            return list(result) if result.returns_rows else []
