"""When the nightly reconciliation runs (no Dagster here): one run per connected company per
night, none for a paused company or one whose automatic sync is off (R30), like the pull."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa

from qbo_pipelines.sync.pull_triggers import PullRequest, per_company


def nightly_requests(engine: sa.Engine, now: datetime) -> tuple[list[PullRequest], list[str]]:
    """A reconciliation per connected company for the night of ``now`` (the run key makes a
    repeated tick of the same night start it once), and why the others were skipped."""
    return per_company(
        engine, lambda realm: PullRequest(realm, f"reconcile:{realm}:{now:%Y-%m-%d}", "schedule")
    )


__all__ = ["nightly_requests"]
