"""Per-company sync status (``qbo-pipelines status``): a plain function over the warehouse and
the source app, with Dagster's run history and schedules passed in when available.

For each connected company: connected or needs-reconnect (and why), paused / automatic sync,
the last push and last pull (the newest of ``sync.ledger``, ``sync.cursors`` and the Dagster runs
of that direction), the source changes not pushed yet (the commit-safe change feed of every
push entity, read without moving it), the records held back (``sync.quarantine``, open) and
failed (``sync.record_state`` status ``failed``) grouped by reason, and the next scheduled runs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any, Protocol

import sqlalchemy as sa

from qbo_pipelines import companies
from qbo_pipelines import entities as catalogue
from qbo_pipelines.sync import settings as sync_settings
from qbo_pipelines.sync.engine.writes import LINES_TITLE, TOTAL_TITLE


@dataclass(frozen=True)
class ReasonCount:
    """Records of one entity held back or failed for one reason."""

    entity: str
    reason: str  # the rule broken (held) or QBO's error code (failed)
    count: int
    example: str | None
    fix: str | None


@dataclass(frozen=True)
class RunInfo:
    """A Dagster run of the company, as the run history reports it."""

    run_id: str
    job_name: str
    status: str
    direction: str | None
    started_at: datetime | None
    ended_at: datetime | None


@dataclass(frozen=True)
class ScheduledRun:
    name: str
    at: datetime


@dataclass(frozen=True)
class LastSync:
    """When a direction last ran for the company, and the run that did it (when known)."""

    at: datetime | None = None
    run_id: str | None = None
    run_status: str | None = None


@dataclass(frozen=True)
class CompanyReport:
    realm_id: str
    name: str | None
    connection: str  # connected | needs_reconnect
    connection_reason: str | None
    paused: bool
    auto_sync: bool
    last_push: LastSync
    last_pull: LastSync
    pending_changes: int | None  # None: never pushed, every record is pending
    pending_by_entity: dict[str, int | None]
    held: list[ReasonCount] = field(default_factory=list)
    failed: list[ReasonCount] = field(default_factory=list)
    totals_differ: list[ReasonCount] = field(default_factory=list)
    next_runs: list[ScheduledRun] = field(default_factory=list)
    active_runs: list[RunInfo] = field(default_factory=list)
    feed_blocked: str | None = None
    """Why source changes wait unread: an open transaction in the source database."""
    unanswered: dict[str, int] = field(default_factory=dict)
    """Per entity, records whose write was sent and has no recorded answer yet (in flight
    while a push runs; after one ended, QBO did not answer): the next push replays each call."""
    replans: list[str] = field(default_factory=list)
    """Entities a mapping change left to re-plan: the next push plans each synced record."""
    held_records: int | None = None
    """Records held back (one held for several reasons counts once); None: count the reasons."""

    @property
    def held_total(self) -> int:
        """Records held back: each once, however many rules it breaks."""
        if self.held_records is not None:
            return self.held_records
        return sum(r.count for r in self.held)

    @property
    def failed_total(self) -> int:
        return sum(r.count for r in self.failed)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (datetimes as ISO strings)."""

        def convert(value: Any) -> Any:
            if isinstance(value, datetime):
                return value.isoformat()
            if isinstance(value, dict):
                return {k: convert(v) for k, v in value.items()}
            if isinstance(value, list):
                return [convert(v) for v in value]
            return value

        data: dict[str, Any] = convert(asdict(self))
        data["held_total"] = self.held_total
        data["failed_total"] = self.failed_total
        return data


class RunHistory(Protocol):
    """Where runs and schedules come from (the Dagster instance; see ``defs.runner``)."""

    def runs(self, realm_id: str) -> Sequence[RunInfo]: ...

    def next_runs(self, realm_id: str) -> Sequence[ScheduledRun]: ...


def company_status(
    warehouse: sa.Engine,
    source: sa.Engine | None,
    realm_id: str | None = None,
    *,
    history: RunHistory | None = None,
) -> list[CompanyReport]:
    """The status of one company (refused unless connected) or of every connected company."""
    return [
        _report(warehouse, source, company, history)
        for company in companies.resolve(warehouse, realm_id)
    ]


def _report(
    warehouse: sa.Engine,
    source: sa.Engine | None,
    company: companies.Company,
    history: RunHistory | None,
) -> CompanyReport:
    realm = company.realm_id
    runs = list(history.runs(realm)) if history else []
    with warehouse.connect() as conn:
        switches = conn.execute(
            sa.text("SELECT sync_enabled, paused FROM mapping.settings WHERE realm_id = :r"),
            {"r": realm},
        ).one_or_none()
        ledger: dict[str, datetime] = dict(
            conn.execute(
                sa.text(
                    "SELECT direction, max(at) FROM sync.ledger WHERE realm_id = :r"
                    " GROUP BY direction"
                ),
                {"r": realm},
            ).all()
        )
        cursors: dict[str, datetime] = dict(
            conn.execute(
                sa.text(
                    "SELECT split_part(name, ':', 1), max(updated_at) FROM sync.cursors"
                    # a re-plan marker is a mapping change, not a push
                    " WHERE realm_id = :r AND name NOT LIKE :marker GROUP BY 1"
                ),
                {"r": realm, "marker": "%:replan"},
            ).all()
        )
        held, failed = problems(conn, realm)
        held_records: int = conn.execute(
            sa.text(
                "SELECT count(DISTINCT (entity, source_id)) FROM sync.quarantine"
                " WHERE realm_id = :r AND resolved_at IS NULL"
            ),
            {"r": realm},
        ).scalar_one()
        differ = total_differences(conn, realm)
        unanswered = {
            str(row[0]): int(row[1])
            for row in conn.execute(
                sa.text(
                    "SELECT entity, count(*) FROM sync.record_state"
                    " WHERE realm_id = :r AND status <> 'synced' AND intent IS NOT NULL"
                    " GROUP BY 1 ORDER BY 1"
                ),
                {"r": realm},
            )
        }
    pending = _pending(warehouse, source, realm) if source is not None else {}
    counts = list(pending.values())
    return CompanyReport(
        realm_id=realm,
        name=company.name,
        connection=company.status,
        connection_reason=company.status_reason,
        paused=bool(switches.paused) if switches else False,
        auto_sync=bool(switches.sync_enabled) if switches else True,
        last_push=_last("push", ledger, cursors, runs),
        last_pull=_last("pull", ledger, cursors, runs),
        pending_changes=None if any(c is None for c in counts) else sum(c or 0 for c in counts),
        pending_by_entity=pending,
        held=held,
        held_records=int(held_records),
        failed=failed,
        totals_differ=differ,
        next_runs=list(history.next_runs(realm)) if history else [],
        active_runs=[r for r in runs if r.status in ("QUEUED", "STARTING", "STARTED")],
        feed_blocked=_feed_blocked(source) if source is not None else None,
        unanswered=unanswered,
        replans=list(sync_settings.replans_waiting(warehouse, realm).entities),
    )


def problems(conn: sa.Connection, realm: str) -> tuple[list[ReasonCount], list[ReasonCount]]:
    """A company's records held back, by entity and rule, and refused by QBO, by entity, error
    code and fix, most first; each with one record's reason (or QBO's message) and that same
    record's fix (the lowest id of the group)."""
    first = "(array_agg({col} ORDER BY length(source_id), source_id))[1]"
    held = [
        ReasonCount(str(r.entity), str(r.rule), int(r.n), r.example, r.fix)
        for r in conn.execute(
            sa.text(
                f"SELECT entity, rule, count(*) AS n, {first.format(col='reason')} AS example,"
                f" {first.format(col='fix')} AS fix"
                " FROM sync.quarantine WHERE realm_id = :r AND resolved_at IS NULL"
                " GROUP BY entity, rule ORDER BY n DESC, entity, rule"
            ),
            {"r": realm},
        )
    ]
    failed = [
        ReasonCount(str(r.entity), str(r.code), int(r.n), r.example, r.fix)
        for r in conn.execute(
            sa.text(
                # by fix too: QBO's codes are broad (6000 is any business rule), the fix says
                # which rule it was
                "SELECT entity, coalesce(error_code, 'failed') AS code, count(*) AS n,"
                f" {first.format(col='error_message')} AS example, fix FROM sync.record_state"
                " WHERE realm_id = :r AND status = 'failed'"
                " GROUP BY 1, 2, fix ORDER BY n DESC, 1, 2, fix"
            ),
            {"r": realm},
        )
    ]
    return held, failed


def total_differences(conn: sa.Connection, realm: str) -> list[ReasonCount]:
    """A company's records written to QBO whose QBO total differs from the source app's, by
    entity and cause (QBO computed the tax itself, or its lines were changed in QBO), most
    first; one record's reason, and the fix."""
    return [
        ReasonCount(str(r.entity), str(r.title), int(r.n), r.example, r.fix)
        for r in conn.execute(
            sa.text(
                "SELECT entity, title, count(*) AS n, (array_agg(reason ORDER BY"
                " length(record_id), record_id))[1] AS example, min(fix) AS fix"
                " FROM sync.notifications WHERE realm_id = :r AND resolved_at IS NULL"
                " AND title IN (:t, :l) GROUP BY entity, title ORDER BY n DESC, entity, title"
            ),
            {"r": realm, "t": TOTAL_TITLE, "l": LINES_TITLE},
        )
    ]


def _last(
    direction: str,
    ledger: dict[str, datetime],
    cursors: dict[str, datetime],
    runs: Sequence[RunInfo],
) -> LastSync:
    times = [t for t in (ledger.get(direction), cursors.get(direction)) if t is not None]
    finished = [r for r in runs if r.direction == direction and r.ended_at is not None]
    newest_run = max(finished, key=lambda r: r.ended_at or datetime.min, default=None)
    if newest_run is not None and newest_run.ended_at is not None:
        times.append(newest_run.ended_at)
    return LastSync(
        at=max(times) if times else None,
        run_id=newest_run.run_id if newest_run else None,
        run_status=newest_run.status if newest_run else None,
    )


def _pending(warehouse: sa.Engine, source: sa.Engine, realm: str) -> dict[str, int | None]:
    """Changes in the source feed not pushed yet, per push entity (None: never pushed)."""
    from qbo_pipelines.source_app.connector import SourceAppConnector
    from qbo_pipelines.sync.engine import feed

    reader = SourceAppConnector(source)
    out: dict[str, int | None] = {}
    for entity in catalogue.push_order():
        window = feed.open_window(warehouse, reader, realm, "push", entity.name)
        out[entity.name] = None if window.first else len(window.changed | window.deleted)
    return out


def _feed_blocked(source: sa.Engine) -> str | None:
    from qbo_pipelines.source_app.connector import SourceAppConnector

    found = SourceAppConnector(source).feed_blocker()
    if found is None:
        return None
    since = f", open since {found.since.isoformat(timespec='seconds')}" if found.since else ""
    return (
        f"{found.waiting} source changes wait behind a transaction still open in the source "
        f"database (pid {found.pid}{since}, {found.state or 'state unknown'}): the sync reads "
        "changes only up to it, so nothing is lost; they are pushed once it ends (end that "
        "session, or set idle_in_transaction_session_timeout)"
    )


def render(reports: Sequence[CompanyReport]) -> str:
    """The human-readable status (one block per company)."""
    if not reports:
        return "no companies connected (run `qbo-pipelines connect`)"
    lines: list[str] = []
    for r in reports:
        lines.append(f"company {r.realm_id}{f' ({r.name})' if r.name else ''}")
        state = "connected" if r.connection == "connected" else "NEEDS RECONNECT"
        if r.connection_reason and r.connection != "connected":
            state += f": {r.connection_reason}"
        lines.append(f"  connection:      {state}")
        lines.append(
            f"  sync:            {'PAUSED' if r.paused else 'running'}, automatic sync "
            f"{'on' if r.auto_sync else 'off'}"
        )
        for label, last in (("last push", r.last_push), ("last pull", r.last_pull)):
            when = last.at.isoformat(timespec="seconds") if last.at else "never"
            run = f" (run {last.run_id} {last.run_status})" if last.run_id else ""
            lines.append(f"  {label + ':':16} {when}{run}")
        if r.pending_changes is None:
            lines.append("  pending changes: not pushed yet (every record)")
        else:
            detail = ", ".join(f"{k} {v}" for k, v in r.pending_by_entity.items() if v)
            lines.append(
                f"  pending changes: {r.pending_changes}{f' ({detail})' if detail else ''}"
            )
        if r.feed_blocked:
            lines.append(f"  waiting:         {r.feed_blocked}")
        if r.unanswered:
            detail = ", ".join(f"{k} {v}" for k, v in r.unanswered.items())
            lines.append(
                f"  awaiting QBO:    {sum(r.unanswered.values())} ({detail}): writes sent "
                "without an answer yet; if no push is running, the next one replays each call "
                "(same requestid: nothing written twice)"
            )
        if r.replans:
            lines.append(
                f"  mappings moved:  {', '.join(r.replans)}: a mapping changed since their "
                "records were synced; the next push plans each again and writes what it moves"
            )
        for active in r.active_runs:
            lines.append(f"  active run:      {active.run_id} {active.job_name} {active.status}")
        lines.append(
            f"  held back:       {r.held_total} record(s)"
            + (" (by rule below; a record may break several)" if r.held else "")
        )
        for h in r.held:
            lines.append(f"    {h.count:5} {h.entity:16} {h.reason}: e.g. {h.example}")
            if h.fix:
                lines.append(f"          fix: {h.fix}")
        lines.append(f"  failed:          {r.failed_total}")
        for f in r.failed:
            lines.append(f"    {f.count:5} {f.entity:16} QBO {f.reason}: e.g. {f.example}")
            if f.fix:
                lines.append(f"          fix: {f.fix}")
        if r.totals_differ:
            lines.append(f"  totals differ:   {sum(d.count for d in r.totals_differ)}")
        for d in r.totals_differ:
            lines.append(f"    {d.count:5} {d.entity:16} {d.example}")
            lines.append(f"          fix: {d.fix}")
        if r.next_runs:
            for s in r.next_runs:
                lines.append(f"  next run:        {s.name} at {s.at.isoformat(timespec='seconds')}")
        else:
            lines.append("  next run:        no schedule (pushes start on source changes)")
    return "\n".join(lines)
