"""The push bed handle shared by the push tests, and the user stack of the CLI tests."""

from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa

from qbo_pipelines.canonical import RealmId
from qbo_pipelines.demo import setup
from qbo_pipelines.qbo.secret import Secret
from qbo_pipelines.sandbox.testing import SandboxHandle
from qbo_pipelines.sync.env import QboApp, SyncEnv

FAST_CLIENT = {"backoff_base": 0.01, "throttle_backoff_base": 0.01, "backoff_max": 0.05}


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


def demo_company(
    warehouse: sa.Engine, source: sa.Engine, sb: SandboxHandle, realm: str | None = None
) -> PushBed:
    """The sandbox company (``realm``, else its default one) connected with tokens, prepared
    and mapped as the demo does; the engine's client retries fast."""
    app = QboApp(
        client_id=sb.client_id,
        client_secret=Secret(sb.client_secret),
        api_url=sb.base_url,
        oauth_url=sb.base_url,
        redirect_uri=sb.redirect_uri,
    )
    env = SyncEnv(warehouse, source, app, client_options=FAST_CLIENT)
    company = RealmId(realm or sb.realm_id)
    setup.prepare_sandbox_company(sb.control, company)
    setup.connect_with_tokens(env, company, sb.control.mint_tokens(company), sb.base_url)
    setup.apply_demo_mappings(env, company)
    return PushBed(env, sb, company)


@dataclass
class UserStack:
    """The project as a user's terminal sees it (fixture ``user_stack``): ``env`` is what the
    terminal exports (also set in os.environ), the databases the CLI bootstraps, the Dagster
    home, and the QBO sandbox whose app is exported. No company is connected yet."""

    env: dict[str, str]
    warehouse: sa.Engine
    source: sa.Engine
    sandbox: SandboxHandle
    dagster_home: Path
