"""When a pull runs (no Dagster here): the webhook inbox (R29) and each company's pull interval
(R28), both honouring the company's pause and automatic-sync switches (R30)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa

from qbo_pipelines.mapping import repository as mapping_repo
from qbo_pipelines.sync import settings, state
from qbo_pipelines.sync.pull import LAST_RUN_CURSOR


@dataclass(frozen=True)
class PullRequest:
    """A pull to start for one company; ``run_key`` makes a repeated tick start it once."""

    realm_id: str
    run_key: str
    trigger: str


def blocked_reason(engine: sa.Engine, realm_id: str) -> str | None:
    """Why automatic runs of the company are off (paused, or automatic sync off; R30), or None."""
    values = mapping_repo.load_settings(engine, realm_id)
    if values.paused:
        return f"{realm_id}: paused"
    if not values.sync_enabled:
        return f"{realm_id}: automatic sync is off"
    return None


def webhook_requests(engine: sa.Engine) -> tuple[list[PullRequest], list[str]]:
    """One pull per connected company with unprocessed webhook events (R29)."""
    sql = sa.text(
        "SELECT i.realm_id, max(i.id) FROM sync.webhook_inbox i"
        " JOIN sync.companies c ON c.realm_id = i.realm_id AND c.status = 'connected'"
        " WHERE i.processed_at IS NULL GROUP BY i.realm_id ORDER BY 1"
    )
    with engine.connect() as conn:
        rows = conn.execute(sql).all()
    requests: list[PullRequest] = []
    skips: list[str] = []
    for realm, top in rows:
        reason = blocked_reason(engine, str(realm))
        if reason:
            skips.append(reason)
        else:
            requests.append(PullRequest(str(realm), f"inbox:{realm}:{top}", "webhook"))
    if not rows:
        skips.append("no webhook events waiting")
    return requests, skips


def per_company(
    engine: sa.Engine, plan: Callable[[str], PullRequest | str]
) -> tuple[list[PullRequest], list[str]]:
    """Ask ``plan`` for each connected company that is neither paused nor switched off (R30);
    it answers a request to start, or why none is due. Returns the requests and the skips."""
    requests: list[PullRequest] = []
    skips: list[str] = []
    for realm in settings.connected_realms(engine):
        outcome = blocked_reason(engine, realm) or plan(realm)
        if isinstance(outcome, PullRequest):
            requests.append(outcome)
        else:
            skips.append(outcome)
    return requests, skips


def scheduled_requests(engine: sa.Engine, now: datetime) -> tuple[list[PullRequest], list[str]]:
    """A pull for every connected company whose last pull is older than its
    ``pull_interval_hours`` (R28: 12 by default), even with no change anywhere."""

    def due(realm: str) -> PullRequest | str:
        hours = mapping_repo.load_settings(engine, realm).pull_interval_hours
        last = state.get_cursor(engine, realm, LAST_RUN_CURSOR)
        if last is not None and datetime.fromisoformat(last) + timedelta(hours=hours) > now:
            return f"{realm}: pulled at {last}, every {hours} h"
        slot = int(now.timestamp() // (hours * 3600))
        return PullRequest(realm, f"interval:{realm}:{hours}h:{slot}", "schedule")

    return per_company(engine, due)
