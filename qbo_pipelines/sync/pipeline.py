"""The push pipeline as plain functions: what the Dagster assets, the CLI and tests call.

Each function takes a :class:`~qbo_pipelines.sync.env.SyncEnv` and a company (realm) and does
one step for one entity, returning counts. No Dagster here.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from qbo_pipelines import entities as catalogue
from qbo_pipelines.canonical import RealmId
from qbo_pipelines.sync import context as push_context
from qbo_pipelines.sync.env import SyncEnv
from qbo_pipelines.sync.push import Mode, PushReport, PushRun, push_entity
from qbo_pipelines.sync.specs import SPECS


@dataclass(frozen=True)
class PushAllReport:
    """One push of every entity for one company."""

    realm_id: str
    reports: tuple[PushReport, ...]

    def totals(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for report in self.reports:
            for key, value in report.as_metadata().items():
                out[key] = out.get(key, 0) + value
        return out


def push(
    env: SyncEnv,
    realm_id: RealmId,
    entity: str,
    *,
    run_id: str | None = None,
    mode: Mode = "incremental",
    source_ids: Iterable[str] | None = None,
) -> PushReport:
    """Push one entity for one company (see :func:`qbo_pipelines.sync.push.push_entity`)."""
    spec = SPECS[catalogue.entity(entity).name]
    with env.client(realm_id) as client:
        run = PushRun(
            engine=env.warehouse,
            client=client,
            reader=env.connector,
            realm_id=realm_id,
            run_id=run_id,
            context=push_context.load(env.warehouse, env.connector, realm_id),
        )
        report = push_entity(run, spec, mode=mode, source_ids=source_ids)
        report.api_calls = sum(client.calls.values())
    return report


def push_all(
    env: SyncEnv,
    realm_id: RealmId,
    *,
    run_id: str | None = None,
    mode: Mode = "incremental",
    only: Sequence[str] | None = None,
) -> PushAllReport:
    """Push every push entity for one company, in dependency order."""
    reports = [
        push(env, realm_id, e.name, run_id=run_id, mode=mode)
        for e in catalogue.push_order()
        if only is None or e.name in only
    ]
    return PushAllReport(realm_id, tuple(reports))
