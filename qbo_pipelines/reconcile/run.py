"""One reconciliation of one company (R38): compare, repair what is safe, verify, record.

1. QBO is asked for its counts, the counts of records newer than the warehouse's copies, and
   its CustomerBalance report (:func:`~qbo_pipelines.reconcile.compare.read_qbo`).
2. When the warehouse is behind, the pull runs (one CDC call); when counts still differ after
   it, the pull's full re-read (paged) flags what QBO no longer has. Records the pull changed
   are findings ``stale_in_warehouse``, repaired.
3. The source app is snapshotted into the warehouse session and compared per record with the
   engine state and ``raw_qbo``.
4. Source records QBO lacks (never pushed) or is behind on (a change the push never saw) are
   pushed through the engine; then the pull reads the result back and everything is compared
   again, so ``repaired`` means "gone when compared after the repair".
5. The rest is recorded as problems (notifications, ``marts.open_problems``); the run, its
   figures, findings and states land in ``marts.reconciliation_*``.

With nothing changed anywhere, a run makes its COUNT queries and the report call, and nothing
else: no pull, no push, no write anywhere but its own result rows.

The whole run holds the company's writer lock (:func:`qbo_pipelines.sync.engine.lock.
company_writer`, re-entrant for the push and pull it runs), so a push, a pull or another
reconciliation of the company never interleaves with it and no record is repaired twice. A write
a killed run left open is a finding ``unfinished_write``, finished by replaying it verbatim (same
requestid: QBO makes it once). When QBO still fails after the client's retries (429, 5xx,
timeouts) or the company needs reconnecting, the run is recorded as ``failed`` with the reason
and :class:`ReconcileFailed` is raised: nothing is concluded, never a "clean".
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

import sqlalchemy as sa

from qbo_pipelines.canonical import RealmId
from qbo_pipelines.companies import NotConnectedError, require_connected
from qbo_pipelines.qbo.errors import NeedsReconnectError, QboError, ThrottledError, TransportError
from qbo_pipelines.reconcile import compare, repair, store
from qbo_pipelines.reconcile.compare import COMPARED, Finding, QboFigures
from qbo_pipelines.reconcile.store import Figure, Outcome
from qbo_pipelines.sync.engine import lock
from qbo_pipelines.sync.env import SyncEnv

CHECKED_MEASURES = frozenset({"records", "open_balance"})
"""Figures that must agree after the repairs: QBO's COUNT against its copy in the warehouse,
QBO's CustomerBalance report against the warehouse's open receivables. One that does not makes
the run ``problems`` (never ``clean``)."""


class ReconcileFailed(RuntimeError):
    """QBO could not be read or written (after the client's retries), or the company needs
    reconnecting: the run is recorded as ``failed`` with this message."""


@dataclass
class Result:
    """What one reconciliation of a company found and did."""

    run: store.RunRow
    figures: list[Figure] = field(default_factory=list)
    outcomes: list[Outcome] = field(default_factory=list)

    @property
    def problems(self) -> list[Finding]:
        return [o.finding for o in self.outcomes if not o.repaired]

    def summary_markdown(self) -> str:
        """The run as markdown (the Dagster asset's summary)."""
        lines = [
            f"**{self.run.summary}**",
            "",
            "| entity | measure | source | QBO | warehouse | agrees |",
            "|---|---|---|---|---|---|",
        ]
        for f in self.figures:
            lines.append(
                f"| {f.entity} | {f.measure} | {_cell(f.source)} | {_cell(f.qbo)} | "
                f"{_cell(f.warehouse)} | {'yes' if f.agrees else '**no**'} |"
            )
        if self.outcomes:
            lines += [
                "",
                "| entity | record | kind | field | source | QBO | action |",
                "|---|---|---|---|---|---|---|",
            ]
            for o in self.outcomes[:50]:
                g = o.finding
                done = f"{o.action} ({'repaired' if o.repaired else 'open'})"
                lines.append(
                    f"| {g.entity} | {g.record_id} | {g.kind} | {g.field} | "
                    f"{g.source_value or ''} | {g.qbo_value or ''} | {done} |"
                )
            if len(self.outcomes) > 50:
                lines.append(
                    f"| ... {len(self.outcomes) - 50} more in "
                    "marts.reconciliation_findings | | | | | | |"
                )
        return "\n".join(lines)


def _cell(value: Decimal | None) -> str:
    return "" if value is None else str(value)


def reconcile_company(
    env: SyncEnv, realm_id: RealmId, *, run_id: str | None = None, trigger: str = "cli"
) -> Result:
    """Reconcile one company; see the module docstring. Returns what was found and done;
    raises :class:`ReconcileFailed` (after recording the failed run) when QBO fails."""
    run_id = run_id or f"reconcile-{uuid.uuid4().hex[:12]}"
    started = datetime.now(UTC)
    try:  # (disconnected while its run waited in the queue: refused before anything is written)
        require_connected(env.warehouse, realm_id)
    except NotConnectedError as exc:
        raise ReconcileFailed(f"reconciliation of {realm_id}: not run: {exc}") from None
    try:
        with lock.company_writer(env.warehouse, realm_id):
            return _reconcile(env, realm_id, run_id, trigger, started)
    except (QboError, lock.CompanyBusyError) as exc:
        summary = f"reconciliation of {realm_id}: failed, nothing concluded: {_why(exc)}"
        store.save_failure(
            env.warehouse,
            store.RunRow.failed(run_id, realm_id, trigger, started, summary),
        )
        raise ReconcileFailed(summary) from None


def _why(exc: Exception) -> str:
    """The failure in one line a person can act on (never a token: QBO's fault text only)."""
    if isinstance(exc, NeedsReconnectError):
        return "the company needs reconnecting: run `qbo-pipelines connect`"
    if isinstance(exc, lock.CompanyBusyError):
        return str(exc)
    if isinstance(exc, ThrottledError):
        what = "QBO kept refusing for its rate limit (429)"
    elif isinstance(exc, TransportError):
        what = f"QBO did not answer ({exc.message})"
    elif isinstance(exc, QboError) and exc.retryable:
        what = f"QBO kept failing (HTTP {exc.status or '-'}, code {exc.code or '-'})"
    else:
        what = f"QBO refused a read ({exc})"
    return f"{what}, even after retries; the next run starts over"


def _reconcile(
    env: SyncEnv, realm_id: RealmId, run_id: str, trigger: str, started: datetime
) -> Result:
    entities = [c.entity for c in COMPARED]
    with env.client(realm_id) as client:
        qbo = compare.read_qbo(client, env.warehouse, realm_id)
        reads = sum(client.calls.values())
    refreshed = full = False
    pulled_findings: list[Finding] = []
    if qbo.stale(compare.warehouse_counts(env.warehouse, realm_id)):
        reads += repair.refresh(env, realm_id, run_id=run_id).reads
        refreshed = True
        if _counts_differ(qbo, compare.warehouse_counts(env.warehouse, realm_id)):
            reads += repair.refresh(env, realm_id, run_id=run_id, full=True).reads
            full = True
        pulled_findings = _pulled(env.warehouse, realm_id, run_id)
    with env.warehouse.begin() as conn:
        compare.snapshot_source(conn, env.connector, realm_id, entities)
        found = compare.find(conn, realm_id, entities)
    to_push: dict[str, list[str]] = {}
    for f in found:
        if f.repairable:
            to_push.setdefault(f.entity, []).append(f.record_id)
    writes = 0
    if to_push:
        writes = repair.repush(env, realm_id, to_push, run_id=run_id)
        reads += repair.refresh(env, realm_id, run_id=run_id).reads  # read the repair back
    final_counts, open_balance = qbo.counts, qbo.open_balance
    if refreshed or to_push:  # QBO's figures after the repairs, for the figures table
        with env.client(realm_id) as client:
            final_counts = {
                e: client.count(e, include_inactive=e in compare.NAME_LISTS) for e in qbo.counts
            }
            open_balance = compare.open_receivables(client, env.warehouse, realm_id)
            reads += sum(client.calls.values())
    with env.warehouse.begin() as conn:
        compare.snapshot_source(conn, env.connector, realm_id, entities)
        after = {f.key: f for f in compare.find(conn, realm_id, entities)}
        figures = _figures(conn, realm_id, final_counts, open_balance)
        unsynced = _not_synced(conn, realm_id, to_push)
    outcomes = [Outcome(f, "re-pulled", True) for f in pulled_findings]
    for f in found:
        now = after.get(f.key)
        if f.repairable:
            left = unsynced.get((f.entity, f.record_id))
            if now is None and left is not None:  # held back or refused: not repaired
                now = _with_hold(f, *left)
            outcomes.append(Outcome(now or f, "re-pushed", now is None))
        else:
            outcomes.append(Outcome(now or f, "reported", now is None))
    seen = {f.key for f in found}
    outcomes += [Outcome(f, "reported", False) for k, f in after.items() if k not in seen]
    result = Result(
        _run_row(
            run_id, realm_id, trigger, started, reads, writes, refreshed, full, outcomes, figures
        ),
        figures,
        outcomes,
    )
    store.save(env.warehouse, result.run, figures, outcomes, store.states(env.warehouse, realm_id))
    return result


def _not_synced(
    conn: sa.Connection, realm_id: str, pushed: dict[str, list[str]]
) -> dict[tuple[str, str], tuple[str, str | None, str | None]]:
    """Re-pushed records the push did not bring in step with QBO (held back by the quality
    checks, refused by QBO, skipped, or with a write still open; a source delete carried out
    is in step): their status, reason, fix."""
    out: dict[tuple[str, str], tuple[str, str | None, str | None]] = {}
    for entity, ids in pushed.items():
        rows = conn.execute(
            sa.text(
                "SELECT source_id, status, error_message, fix FROM sync.record_state"
                " WHERE realm_id = :r AND entity = :e AND source_id = ANY(:ids)"
                " AND (status NOT IN ('synced', 'deleted') OR intent IS NOT NULL)"
            ),
            {"r": realm_id, "e": entity, "ids": ids},
        )
        for sid, status, message, fix in rows:
            out[(entity, str(sid))] = (str(status), _text(message), _text(fix))
    return out


def _text(value: object) -> str | None:
    return None if value is None else str(value)


def _with_hold(f: Finding, status: str, message: str | None, fix: str | None) -> Finding:
    """The finding after a re-push the engine held back (or QBO refused): why, and the fix."""
    why = {"held": "held back by the quality checks", "failed": "refused by QBO"}.get(
        status, f"left {status} by the push"
    )
    return replace(
        f,
        reason=f"{f.reason}; the push {why}" + (f": {message}" if message else ""),
        fix=fix or "See the record in marts.open_problems; it is pushed again once fixed.",
    )


def _counts_differ(qbo: QboFigures, warehouse: dict[str, int]) -> bool:
    return any(qbo.counts[e] != warehouse.get(e, 0) for e in qbo.counts)


def _pulled(engine: sa.Engine, realm_id: str, run_id: str) -> list[Finding]:
    """Records the re-pull of this run changed in the source app: they were stale there."""
    sql = sa.text(
        "SELECT DISTINCT ON (entity, coalesce(source_id, qbo_id)) entity,"
        " coalesce(source_id, qbo_id), qbo_id, operation FROM sync.ledger"
        " WHERE run_id = :run AND realm_id = :r AND direction = 'pull' AND outcome = 'ok'"
        " AND operation IN ('create', 'update', 'delete') AND entity = ANY(:e)"
        " ORDER BY entity, coalesce(source_id, qbo_id), id DESC"
    )
    names = [c.entity for c in COMPARED]
    with engine.connect() as conn:
        rows: list[tuple[Any, ...]] = [
            tuple(r) for r in conn.execute(sql, {"run": run_id, "r": realm_id, "e": names})
        ]
    return [
        Finding(
            str(entity),
            str(record),
            qbo_id,
            "stale_in_warehouse",
            "",
            None,
            str(op),
            f"{str(entity).rstrip('s')} #{record}: QBO's {op} of record {qbo_id} had not reached "
            "the warehouse and the source app yet: pulled now",
            None,
        )
        for entity, record, qbo_id, op in rows
    ]


def _money(value: str | None) -> Decimal | None:
    """A finding's money value; None for text that is not a finite amount (e.g. NaN)."""
    try:
        amount = Decimal(value) if value is not None else None
    except InvalidOperation:
        return None
    return amount if amount is not None and amount.is_finite() else None


def _drift(outcomes: Sequence[Outcome]) -> Decimal:
    total = Decimal("0")
    for o in outcomes:
        f = o.finding
        if f.field not in {"", "total"}:
            continue
        sv, qv = _money(f.source_value), _money(f.qbo_value)
        if sv is None and qv is None:
            continue
        total += abs((sv or Decimal("0")) - (qv or Decimal("0")))
    return total


def _run_row(
    run_id: str,
    realm_id: str,
    trigger: str,
    started: datetime,
    reads: int,
    writes: int,
    refreshed: bool,
    full: bool,
    outcomes: Sequence[Outcome],
    figures: Sequence[Figure],
) -> store.RunRow:
    repaired = sum(1 for o in outcomes if o.repaired)
    problems = len(outcomes) - repaired
    off = [
        f"{f.entity} {f.measure}" for f in figures if f.measure in CHECKED_MEASURES and not f.agrees
    ]
    status = "problems" if problems or off else "repaired" if repaired else "clean"
    drift = _drift(outcomes)
    summary = (
        f"reconciliation of {realm_id}: {status}; {len(outcomes)} differences, {repaired} "
        f"repaired, {problems} left as problems; drift {drift}; QBO reads {reads}, "
        f"writes {writes}"
    )
    if off:
        summary += f"; figures that still disagree: {', '.join(off)}"
    return store.RunRow(
        run_id,
        realm_id,
        trigger,
        started,
        status,
        reads,
        writes,
        refreshed,
        full,
        len(outcomes),
        repaired,
        problems,
        drift,
        summary,
    )


_LINKED = """
SELECT count(*) AS links,
       count(w.qbo_id) FILTER (WHERE NOT w.deleted) AS in_qbo,
       count(x.source_id) AS in_source,
       sum(x.amount) AS source_total,
       sum(w.total_amt) FILTER (WHERE NOT w.deleted) AS qbo_total
FROM sync.record_state s
LEFT JOIN reconcile_source x ON x.entity = s.entity AND x.source_id = s.source_id
LEFT JOIN {raw} w ON w.qbo_entity = s.qbo_entity AND w.qbo_id = s.qbo_id
WHERE s.realm_id = :r AND s.entity = :e AND s.source_id IS NOT NULL AND s.qbo_id IS NOT NULL
  AND s.status = 'synced' AND NOT s.deleted_in_qbo AND NOT s.deleted_in_source
"""

_OPEN_BALANCE = """
SELECT coalesce((SELECT sum(balance) FROM raw_qbo.invoices WHERE realm_id = :r AND NOT deleted), 0)
     - coalesce((SELECT sum(balance) FROM raw_qbo.credit_memos WHERE realm_id = :r
                 AND NOT deleted), 0)
     - coalesce((SELECT sum((data->>'UnappliedAmt')::numeric) FROM raw_qbo.payments
                 WHERE realm_id = :r AND NOT deleted), 0)
     + coalesce((SELECT sum(CASE WHEN d.detail->>'PostingType' = 'Credit'
                                 THEN -l.amount ELSE l.amount END)
                 FROM raw_qbo.journal_entries AS j
                 JOIN raw_qbo.journal_entry_lines AS l USING (realm_id, qbo_id)
                 CROSS JOIN LATERAL (SELECT l.data->'JournalEntryLineDetail' AS detail) AS d
                 JOIN raw_qbo.accounts AS a
                   ON a.realm_id = j.realm_id AND a.qbo_id = d.detail->'AccountRef'->>'value'
                 WHERE j.realm_id = :r AND NOT j.deleted
                   AND a.data->>'AccountType' = 'Accounts Receivable'
                   AND d.detail->'Entity'->>'Type' = 'Customer'
                   AND nullif(d.detail->'Entity'->'EntityRef'->>'value', '') IS NOT NULL), 0)
"""


def _figures(
    conn: sa.Connection, realm_id: str, qbo_counts: dict[str, int], open_balance: Decimal | None
) -> list[Figure]:
    wh = compare.warehouse_counts_in(conn, realm_id)
    out: list[Figure] = []
    for c in COMPARED:
        out.append(
            Figure(
                c.entity,
                "records",
                None,
                Decimal(sum(qbo_counts.get(e, 0) for e in c.qbo_entities)),
                Decimal(sum(wh.get(e, 0) for e in c.qbo_entities)),
                "count query",
                "QBO also holds records the sync never touched, and the source records held "
                "back or skipped: records compares QBO with its copy in raw_qbo only",
            )
        )
        row = conn.execute(
            sa.text(_LINKED.format(raw=compare.raw_join(c))), {"r": realm_id, "e": c.entity}
        ).one()
        out.append(
            Figure(
                c.entity,
                "linked",
                Decimal(row.in_source),
                Decimal(row.in_qbo),
                Decimal(row.links),
                "records",
                "source records with a live QBO twin; QBO twins present; engine links",
            )
        )
        if c.money:
            out.append(
                Figure(
                    c.entity,
                    "linked_total",
                    _cents(row.source_total),
                    _cents(row.qbo_total),
                    None,
                    "records",
                    "money of the linked records (credit memos as positive totals)",
                )
            )
    computed: object = conn.execute(sa.text(_OPEN_BALANCE), {"r": realm_id}).scalar_one()
    out.append(
        Figure(
            "ar",
            "open_balance",
            None,
            _cents(open_balance),
            _cents(computed),
            "reports/CustomerBalance",
            "open invoices less open credit memos and unapplied payments, plus journal lines "
            "to A/R naming a customer",
        )
    )
    return out


def _cents(value: object) -> Decimal | None:
    if value is None:
        return None
    return Decimal(str(value)).quantize(Decimal("0.01"))


__all__ = ["CHECKED_MEASURES", "ReconcileFailed", "Result", "reconcile_company"]
