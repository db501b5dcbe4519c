"""When to start a push run: a pure debounce planner the Dagster sensor calls (R27, R30).

Changes in the source app are pushed "about two minutes after they happened, changes close
together in one batch": a run starts once the change log has been quiet for the debounce window,
or once the oldest waiting change has waited the maximum, so a steady trickle of edits cannot
postpone a push forever. The run key is the newest change-log sequence number the run covers, so
a repeated tick never starts the same run twice and a new change always gets a run of its own.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta


@dataclass(frozen=True)
class TriggerSettings:
    """Per-company switches (from ``mapping.settings``)."""

    sync_enabled: bool = True  # automatic sync on/off (R30)
    paused: bool = False  # paused by an operator (R30)
    debounce_seconds: int = 120  # the same defaults as mapping.settings
    max_wait_seconds: int = 900


@dataclass(frozen=True)
class Pending:
    """Real (non-echo) changes after the last requested sequence number."""

    count: int
    last_seq: int
    first_at: datetime | None
    last_at: datetime | None


@dataclass(frozen=True)
class Decision:
    """Run or not, and why (shown as the sensor's skip reason)."""

    run: bool
    reason: str
    run_key: str | None = None
    covers_seq: int | None = None


@dataclass(frozen=True)
class Replans:
    """Entities a mapping change left to re-plan (their ``push:<entity>:replan`` markers),
    and when the newest marker was set."""

    entities: tuple[str, ...]
    last_at: datetime | None
    key: str = ""


def decide_replan(
    realm_id: str, now: datetime, replans: Replans, settings: TriggerSettings
) -> Decision:
    """Whether a mapping change starts a push run for ``realm_id`` now (pure): once the
    mappings have been left alone for the debounce window (several set one after another are
    re-planned by one run), with the company's switches obeyed."""
    if not replans.entities or replans.last_at is None:
        return Decision(False, "")
    if not settings.sync_enabled or settings.paused:
        return Decision(False, f"{realm_id}: mappings changed; automatic sync is off or paused")
    quiet_for = now - replans.last_at
    if quiet_for < timedelta(seconds=settings.debounce_seconds):
        left = timedelta(seconds=settings.debounce_seconds) - quiet_for
        return Decision(
            False,
            f"{realm_id}: mappings changed, still settling ({int(left.total_seconds())} s left)",
        )
    return Decision(
        True,
        f"{realm_id}: mappings changed: {', '.join(replans.entities)} re-planned",
        f"push:{realm_id}:replan:{replans.key}",
    )


@dataclass(frozen=True)
class Retries:
    """Records QBO refused whose retry is due, and the latest due time among them."""

    count: int
    last_due: datetime | None


def decide_retry(
    realm_id: str, now: datetime, retries: Retries, settings: TriggerSettings
) -> Decision:
    """Whether refused writes due for their retry start a push run for ``realm_id`` now
    (pure): their backoff is the wait, so no debounce; the run key names the latest due time,
    so a tick never starts the same retry twice and each later backoff step gets its run."""
    if retries.count == 0 or retries.last_due is None:
        return Decision(False, "")
    if not settings.sync_enabled or settings.paused:
        return Decision(
            False, f"{realm_id}: {retries.count} retries due; automatic sync is off or paused"
        )
    return Decision(
        True,
        f"{realm_id}: {retries.count} writes QBO refused are due for their retry",
        f"push:{realm_id}:retry:{retries.last_due.isoformat()}",
    )


def decide(realm_id: str, now: datetime, pending: Pending, settings: TriggerSettings) -> Decision:
    """Whether to request a push run for ``realm_id`` now (pure)."""
    if not settings.sync_enabled:
        return Decision(False, f"{realm_id}: automatic sync is switched off")
    if settings.paused:
        return Decision(False, f"{realm_id}: sync is paused")
    if pending.count == 0 or pending.last_at is None:
        return Decision(False, f"{realm_id}: no source changes")
    quiet_for = now - pending.last_at
    waited = now - (pending.first_at or pending.last_at)
    key = f"push:{realm_id}:{pending.last_seq}"
    if waited >= timedelta(seconds=settings.max_wait_seconds):
        return Decision(
            True, f"{realm_id}: {pending.count} changes waited the maximum", key, pending.last_seq
        )
    if quiet_for >= timedelta(seconds=settings.debounce_seconds):
        return Decision(True, f"{realm_id}: {pending.count} changes settled", key, pending.last_seq)
    left = timedelta(seconds=settings.debounce_seconds) - quiet_for
    return Decision(
        False,
        f"{realm_id}: {pending.count} changes still settling "
        f"({int(left.total_seconds())} s of quiet left)",
    )
