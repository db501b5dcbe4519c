"""Where a reconciliation's results land: ``marts.reconciliation_*`` (sql/warehouse/090) and,
for what needs a person, ``sync.notifications`` (so ``marts.open_problems`` lists it and the
notification channels send it, R31): one open notification per record and kind, resolved by
the first run that no longer finds it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

import sqlalchemy as sa

from qbo_pipelines.quality import quarantine
from qbo_pipelines.reconcile.compare import Finding

TITLE_PREFIX = "Reconciliation: "
TITLES = {
    "not_in_qbo": "Reconciliation: missing in QBO",
    "source_changed": "Reconciliation: source change not synced",
    "deleted_in_qbo": "Reconciliation: deleted in QBO only",
    "differs": "Reconciliation: values differ",
    "stale_in_warehouse": "Reconciliation: warehouse behind QBO",
    "unfinished_write": "Reconciliation: interrupted write",
    "gone_from_source": "Reconciliation: source delete not synced",
}


@dataclass(frozen=True)
class Figure:
    """One count or total as each side gives it."""

    entity: str
    measure: str
    source: Decimal | None
    qbo: Decimal | None
    warehouse: Decimal | None
    qbo_report: str
    note: str | None = None

    @property
    def agrees(self) -> bool:
        given = [v for v in (self.source, self.qbo, self.warehouse) if v is not None]
        return len(set(given)) <= 1


@dataclass(frozen=True)
class Outcome:
    """A finding and what the run did about it."""

    finding: Finding
    action: str  # re-pushed, re-pulled, reported
    repaired: bool


@dataclass(frozen=True)
class RunRow:
    run_id: str
    realm_id: str
    trigger: str
    started_at: datetime
    status: str
    qbo_reads: int
    qbo_writes: int
    refreshed: bool
    full_reread: bool
    differences: int
    repaired: int
    problems: int
    drift_amount: Decimal
    summary: str

    @classmethod
    def failed(
        cls, run_id: str, realm_id: str, trigger: str, started_at: datetime, summary: str
    ) -> RunRow:
        """A run that could not conclude (QBO failing, the company busy or disconnected)."""
        zero = Decimal("0")
        return cls(
            run_id,
            realm_id,
            trigger,
            started_at,
            "failed",
            0,
            0,
            False,
            False,
            0,
            0,
            0,
            zero,
            summary,
        )


_INSERT_RUN = sa.text(
    "INSERT INTO marts.reconciliation_runs (run_id, realm_id, trigger, started_at,"
    " status, qbo_reads, qbo_writes, refreshed, full_reread, differences, repaired,"
    " problems, drift_amount, summary) VALUES (:run_id, :realm_id, :trigger,"
    " :started_at, :status, :qbo_reads, :qbo_writes, :refreshed, :full_reread,"
    " :differences, :repaired, :problems, :drift_amount, :summary)"
    " ON CONFLICT (run_id) DO NOTHING"
)


def save_failure(engine: sa.Engine, run: RunRow) -> None:
    """Record a run that failed: its row and summary only. Its findings are not recorded (it
    concluded nothing) and the open reconciliation notifications stay as they are."""
    with engine.begin() as conn:
        conn.execute(_INSERT_RUN, run.__dict__)


def save(
    engine: sa.Engine,
    run: RunRow,
    figures: Sequence[Figure],
    outcomes: Sequence[Outcome],
    states: Sequence[tuple[str, str, int]],
) -> None:
    """Record the run, its figures, findings and states; open a notification for every problem
    and resolve the reconciliation notifications of the company no longer found. One
    transaction: a run killed before it is recorded leaves nothing behind."""
    with engine.begin() as conn:
        conn.execute(_INSERT_RUN, run.__dict__)
        key = {"run_id": run.run_id, "realm_id": run.realm_id}
        if figures:
            conn.execute(
                sa.text(
                    "INSERT INTO marts.reconciliation_figures (run_id, realm_id, entity, measure,"
                    " source_value, qbo_value, warehouse_value, qbo_report, agrees, note) VALUES"
                    " (:run_id, :realm_id, :entity, :measure, :source, :qbo, :warehouse,"
                    " :qbo_report, :agrees, :note) ON CONFLICT DO NOTHING"
                ),
                [{**key, **f.__dict__, "agrees": f.agrees} for f in figures],
            )
        if outcomes:
            conn.execute(
                sa.text(
                    "INSERT INTO marts.reconciliation_findings (run_id, realm_id, entity,"
                    " record_id, qbo_id, kind, field, source_value, qbo_value, action, repaired,"
                    " reason, fix) VALUES (:run_id, :realm_id, :entity, :record_id, :qbo_id,"
                    " :kind, :field, :source_value, :qbo_value, :action, :repaired, :reason,"
                    " :fix) ON CONFLICT DO NOTHING"
                ),
                [
                    {**key, **o.finding.__dict__, "action": o.action, "repaired": o.repaired}
                    for o in outcomes
                ],
            )
        if states:
            conn.execute(
                sa.text(
                    "INSERT INTO marts.reconciliation_states (run_id, realm_id, entity, state,"
                    " records) VALUES (:run_id, :realm_id, :entity, :state, :records)"
                    " ON CONFLICT DO NOTHING"
                ),
                [{**key, "entity": e, "state": s, "records": n} for e, s, n in states],
            )
        _notify(conn, run.realm_id, [o.finding for o in outcomes if not o.repaired])


def _notify(conn: sa.Connection, realm_id: str, problems: Sequence[Finding]) -> None:
    open_now: set[tuple[str, str, str]] = set()
    for f in problems:
        title = TITLES[f.kind]
        reason = f.reason if not f.field else f"{f.reason}."
        quarantine.notify_failure(
            conn, realm_id, f.entity, f.record_id, title, reason, f.fix, severity="warning"
        )
        open_now.add((f.entity, f.record_id, title))
    stale: dict[tuple[str, str], list[str]] = {}
    for entity, record_id, title in _all(
        conn,
        sa.text(
            "SELECT entity, record_id, title FROM sync.notifications WHERE realm_id = :r"
            " AND resolved_at IS NULL AND starts_with(title, :p)"
        ),
        {"r": realm_id, "p": TITLE_PREFIX},
    ):
        if (entity, record_id, title) not in open_now:
            stale.setdefault((entity, title), []).append(record_id)
    for (entity, title), ids in stale.items():
        quarantine.resolve_notifications(conn, realm_id, entity, ids, title=title)


def _all(conn: sa.Connection, sql: sa.TextClause, params: dict[str, Any]) -> list[tuple[Any, ...]]:
    return [tuple(r) for r in conn.execute(sql, params)]


def states(engine: sa.Engine, realm_id: str) -> list[tuple[str, str, int]]:
    """Records per engine state and entity now (deleted split by the side that deleted)."""
    sql = sa.text(
        "SELECT entity, CASE WHEN status = 'deleted' AND deleted_in_qbo AND NOT"
        " deleted_in_source THEN 'deleted_in_qbo' WHEN status = 'deleted' THEN"
        " 'deleted_in_source' ELSE status END AS state, count(*) FROM sync.record_state"
        " WHERE realm_id = :r GROUP BY 1, 2 ORDER BY 1, 2"
    )
    with engine.connect() as conn:
        return [(str(e), str(s), int(n)) for e, s, n in _all(conn, sql, {"r": realm_id})]


# --------------------------------------------------------------------------- reading back


def runs(engine: sa.Engine, realm_id: str | None = None, limit: int = 60) -> list[dict[str, Any]]:
    """The latest runs (oldest first), of one company or all."""
    sql = sa.text(
        "SELECT * FROM (SELECT * FROM marts.reconciliation_runs WHERE CAST(:r AS text) IS NULL"
        " OR realm_id = CAST(:r AS text) ORDER BY finished_at DESC LIMIT :n) x"
        " ORDER BY finished_at, run_id"
    )
    with engine.connect() as conn:
        return [dict(r) for r in conn.execute(sql, {"r": realm_id, "n": limit}).mappings()]


def rows_of(engine: sa.Engine, table: str, run_id: str) -> list[dict[str, Any]]:
    """The rows of one run in ``marts.reconciliation_<table>`` (figures, findings, states)."""
    if table not in {"figures", "findings", "states"}:
        raise ValueError(f"no reconciliation table {table!r}")
    order = {
        "figures": "entity, measure",
        "findings": "entity, kind, record_id, field",
        "states": "entity, state",
    }[table]
    sql = sa.text(
        f"SELECT * FROM marts.reconciliation_{table} WHERE run_id = :run"  # noqa: S608
        f" ORDER BY {order}"
    )
    with engine.connect() as conn:
        return [dict(r) for r in conn.execute(sql, {"run": run_id}).mappings()]


__all__ = [
    "TITLES",
    "Figure",
    "Outcome",
    "RunRow",
    "rows_of",
    "runs",
    "save",
    "save_failure",
    "states",
]
