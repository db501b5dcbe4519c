"""The pull planner: QBO -> source app, over the same engine state as the push (sync/engine).

One pull of one company, holding the company's writer lock (one writer per company, both
directions):

1. **Candidates** are found by Postgres, not by a list handed along: every ``raw_qbo`` row whose
   version differs from what ``sync.record_state`` last synced (SyncToken, delete flag), plus QBO
   records the source does not hold yet. The extract (:mod:`qbo_pipelines.sync.extract`) keeps
   ``raw_qbo`` current from webhook ids and one CDC call per cycle; whatever a crashed pull left
   undone is simply still out of step and is found again (no replay is needed on this side:
   every source write is a keyed upsert or a compare-and-set of named columns). Column writes
   are stored as intents before the source transaction (:mod:`.engine.source_writes`), so one
   whose run was killed before the warehouse recorded it still gets its ledger entry (R37).
2. **Plan** (pure, :func:`plan_linked`): QBO's version is projected onto the fields the sync
   manages and compared field by field with the QBO side of the base; the source's current
   record, built into the same shape, is compared with the source side of the base. Fields only
   QBO changed are written into the source, column by column (R7); fields both changed to
   different values are a conflict resolved by the entity's policy and recorded (R34); an echo
   of the sync's own write (QBO at the version the push recorded) is not even a candidate (R35).
   A version older than the one recorded is ignored, so a late webhook or a reordered delivery
   never writes an intermediate value back (R42).
3. **Write** into the source as the sync (change log origin ``sync``, never pushed back), each
   update guarded by the values it was planned against: a row a person changed meanwhile is
   left for the next cycle rather than overwritten.
4. **Record** the new base on both sides in ``sync.record_state`` and every outcome in
   ``sync.ledger`` (direction ``pull``, R37).

Deletes in QBO never delete in the source (R9, R16, R22): the source record is marked. A record
deleted in the source is never revived by a QBO edit (R42). QBO records the sync did not create
become QBO-origin source records (customers: contacts, R8; invoices: sales, R16; payments:
receipts against the synced sale, R20); each customer's QBO transactions are listed with a link
that opens them in QBO (R26).
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

import sqlalchemy as sa

from qbo_pipelines import entities as catalogue
from qbo_pipelines.canonical import QboId, SourceId, content_hash
from qbo_pipelines.quality import quarantine
from qbo_pipelines.quality.rules import Violation
from qbo_pipelines.quality.rules import name_key as qbo_name_key
from qbo_pipelines.source_app.connector import FieldUpdate, SourceAppConnector
from qbo_pipelines.sync import state
from qbo_pipelines.sync.engine import diff, lock, records, source_writes
from qbo_pipelines.sync.engine.records import RecordState
from qbo_pipelines.sync.engine.writes import ledger_row
from qbo_pipelines.transforms import from_qbo
from qbo_pipelines.transforms.to_qbo import MANAGED_FIELDS, Blocked, PushContext, foreign_fields
from qbo_pipelines.warehouse import raw_qbo

log = logging.getLogger(__name__)

DIRECTION = "pull"
LAST_RUN_CURSOR = "pull:last_run"
"""When the company's QBO changes were last extracted (what the interval schedule reads, R28)."""
CHUNK = 500
PullAction = Literal["create", "update", "deleted", "skip", "baseline"]


@dataclass(frozen=True)
class PullSpec:
    """How one catalogue entity is pulled (named by its row's ``pull`` binding).

    Attributes:
        entity: the catalogue row; the source table written is its ``source_table``, the QBO
            entities read are its ``qbo_names`` (the first one is created from).
        write_new: writes QBO records the source does not hold yet as QBO-origin source
            records (R8, R16, R20); returns QBO id -> source id of each written.
        fields: QBO managed field -> the source columns it becomes (R7).
        owned: the columns only QBO writes (a balance, an email status): copied whenever QBO's
            version moves, never a conflict, never pushed.
        mirror: QBO-origin records of this entity are mirrors QBO owns (invoices, payments):
            their whole record follows QBO; otherwise (customers) they are edited both ways.
    """

    entity: catalogue.Entity
    write_new: Callable[[PullRun, Sequence[Candidate]], dict[QboId, SourceId]]
    fields: Mapping[str, from_qbo.FieldMap]
    owned: from_qbo.OwnedMap
    mirror: bool = False
    named: Callable[[SourceAppConnector, Sequence[str]], dict[str, list[SourceId]]] | None = None
    """Source records by exact name (oldest first) a new QBO record of that name is matched
    to instead of being created (R5 from QBO's side), if the entity matches by name."""

    @property
    def table(self) -> str:
        """The source table written."""
        return self.entity.source_table

    @property
    def raw_tables(self) -> Mapping[str, str]:
        """``raw_qbo`` table per QBO entity read, in the row's ``qbo_names`` order."""
        return {qe: raw_qbo.ENTITY_TABLES[qe] for qe in self.entity.qbo_names}

    @property
    def creates_from(self) -> str:
        return self.entity.qbo_names[0]


@dataclass
class PullReport:
    """Counts per outcome for one entity and company; the ledger holds each record's story."""

    entity: str
    realm_id: str
    run_id: str | None
    counts: Counter[str] = field(default_factory=Counter)

    KEYS = (
        "created",
        "updated",
        "unchanged",
        "conflicts",
        "deleted",
        "deferred",
        "held_back",
        "skipped",
        "recovered",
        "matched",
    )

    def as_metadata(self) -> dict[str, int]:
        return {k: int(self.counts.get(k, 0)) for k in self.KEYS}


@dataclass(frozen=True)
class Candidate:
    """One QBO record out of step with the sync's state."""

    qbo_entity: str
    qbo_id: QboId
    deleted: bool
    data: Mapping[str, Any]
    state: RecordState | None
    token: str | None = None
    """raw_qbo's version of the record (what ``pulled_token`` records once pulled)."""


@dataclass(frozen=True)
class LinkedPlan:
    """What the pull does to one source record both sides hold (pure planning output).

    Attributes:
        action: update (columns to write), baseline (only the base moves), skip.
        columns: source columns to set; ``expect``: the values they hold now (compare-and-set).
        applied: QBO fields whose value the source takes.
        conflicts: fields both sides changed to different values (R34); ``kept_qbo``: those
            where QBO's value won.
        unmapped: fields QBO changed that the source cannot hold for this record (kept in QBO).
        foreign: fields QBO changed that hold another person there (the billing contact a
            Customer was created with, R6): not written to this record (kept in QBO).
        pending: source changes still to be pushed.
        qbo_base: the QBO side of the new base.
        reason: why nothing is written (skips).
    """

    action: PullAction
    columns: Mapping[str, Any] = field(default_factory=dict)
    expect: Mapping[str, Any] = field(default_factory=dict)
    applied: frozenset[str] = frozenset()
    conflicts: tuple[str, ...] = ()
    kept_qbo: tuple[str, ...] = ()
    unmapped: frozenset[str] = frozenset()
    foreign: frozenset[str] = frozenset()
    pending: frozenset[str] = frozenset()
    qbo_base: Mapping[str, Any] | None = None
    reason: str | None = None


# --------------------------------------------------------------------------- pure planning


def template(qbo_entity: str, source_base: Mapping[str, Any] | None) -> dict[str, Any]:
    """The shape QBO's versions are compared in (the push uses the same one)."""
    return diff.template(MANAGED_FIELDS.get(qbo_entity, ()), source_base)


def stale(obj: Mapping[str, Any], st: RecordState) -> bool:
    """QBO's object is older than the version the sync already recorded (a late delivery)."""
    theirs = from_qbo.sync_token(obj)
    try:
        ours = int(st.sync_token) if st.sync_token is not None else None
    except ValueError:
        ours = None
    return theirs is not None and ours is not None and theirs < ours


def _equal(a: Any, b: Any) -> bool:
    return bool(diff.normal(a) == diff.normal(b))


def plan_linked(
    entity: str,
    policy: catalogue.ConflictPolicy,
    obj: Mapping[str, Any],
    st: RecordState,
    source_body: Mapping[str, Any] | None,
    row: Mapping[str, Any],
    *,
    mirror_lines: bool = False,
) -> LinkedPlan:
    """Decide what QBO's version of a linked record changes in the source (pure; no I/O).

    Args:
        entity: catalogue entity.
        policy: the entity's conflict policy.
        obj: QBO's current object.
        st: the record's state (bases on both sides).
        source_body: the source record built as the push would send it (None: unbuildable).
        row: the source row's current columns.
        mirror_lines: the record's lines follow QBO (a QBO-origin mirror).
    """
    qbo_entity = st.qbo_entity or ""
    qbo_now = diff.project(obj, template(qbo_entity, st.source_base))
    spec = catalogue.entity(entity).pull_spec
    owned = {c: v for c, v in spec.owned(obj).items() if not _equal(row.get(c), v)} if spec else {}
    if st.qbo_base is None:
        return LinkedPlan("baseline", columns=owned, expect={}, qbo_base=qbo_now)
    qbo_changed = set(diff.changed_fields(qbo_now, st.qbo_base))
    if source_body is None:
        src_changed: set[str] = set()
        if qbo_changed:
            return LinkedPlan(
                "skip",
                reason="the source record cannot be compared now (it is held back); retried "
                "once it can",
            )
    else:
        src_changed = set(diff.changed_fields(source_body, st.source_base))
    conflicts = tuple(
        sorted(
            f
            for f in qbo_changed & src_changed
            if not _equal(qbo_now.get(f), (source_body or {}).get(f))
        )
    )
    if policy == "qbo_wins":
        apply = set(qbo_changed)
        kept: tuple[str, ...] = conflicts
    else:
        apply = qbo_changed - set(conflicts)
        kept = ()
    foreign = apply & foreign_fields(qbo_entity, st.source_base, st.qbo_base)
    apply -= foreign  # QBO's billing contact there, not this contact (R6)
    cols, unmapped = from_qbo.columns(spec.fields if spec else {}, obj, frozenset(apply))
    if mirror_lines:
        unmapped -= {"Line", "TxnTaxDetail"}
    cols = {**cols, **owned}
    writes = {c: v for c, v in cols.items() if not _equal(row.get(c), v)}
    expect = {c: row.get(c) for c in writes}
    pending = frozenset((src_changed - apply) | (set(conflicts) - set(kept)))
    if not writes and not qbo_changed:
        return LinkedPlan(
            "baseline", qbo_base=qbo_now, pending=pending, reason="no managed field changed"
        )
    return LinkedPlan(
        "update" if writes else "baseline",
        columns=writes,
        expect=expect,
        applied=frozenset(apply - unmapped),
        conflicts=conflicts,
        kept_qbo=kept,
        unmapped=frozenset(unmapped),
        foreign=frozenset(foreign),
        pending=pending,
        qbo_base=qbo_now,
    )


def new_source_base(
    old: Mapping[str, Any] | None, rebuilt: Mapping[str, Any], applied: frozenset[str]
) -> dict[str, Any]:
    """The source side of the base after a pull: the fields the source took from QBO move to
    what the source now holds; the others stay, so the source's own unpushed edits still show
    as changes to the push."""
    if old is None:
        return dict(rebuilt)
    out = dict(old)
    for f in applied:
        if f in rebuilt:
            out[f] = rebuilt[f]
        else:
            out.pop(f, None)
    return out


# --------------------------------------------------------------------------- the run


@dataclass
class PullRun:
    """Everything one pull needs; built by the caller (CLI or Dagster asset)."""

    engine: sa.Engine
    source: SourceAppConnector
    realm_id: str
    run_id: str | None
    context: PushContext
    now: datetime = field(default_factory=lambda: datetime.now(UTC))


_CANDIDATES = """
SELECT r.qbo_id, r.deleted, r.sync_token, r.data::text AS data, s.source_id AS state_source_id
FROM raw_qbo.{table} r
LEFT JOIN sync.record_state s
       ON s.realm_id = r.realm_id AND s.qbo_entity = :qbo_entity AND s.qbo_id = r.qbo_id
      AND s.qbo_id > :after  -- a merge join starts at the page, not the first state row
WHERE r.realm_id = :realm AND r.qbo_id > :after
  AND (CASE WHEN s.realm_id IS NULL THEN :creates AND NOT r.deleted
            ELSE s.entity = :entity
                 AND NOT s.deleted_in_source
                 AND CASE WHEN r.deleted THEN NOT s.deleted_in_qbo  -- a delete, once
                          ELSE s.sync_token IS DISTINCT FROM r.sync_token
                               OR s.pulled_token IS DISTINCT FROM r.sync_token
                               OR s.pull_due
                               OR s.qbo_base IS NULL
                     END
       END)
ORDER BY r.qbo_id
LIMIT :limit
"""


def candidates(
    run: PullRun, spec: PullSpec, qbo_entity: str, table: str
) -> Iterator[list[Candidate]]:
    """QBO records of one raw table out of step with the sync's state, in keyset pages."""
    after = ""
    creates = qbo_entity == spec.creates_from
    sql = sa.text(_CANDIDATES.format(table=table))  # table from raw_qbo.ENTITY_TABLES only
    while True:
        with run.engine.connect() as conn:
            rows = conn.execute(
                sql,
                {
                    "qbo_entity": qbo_entity,
                    "realm": run.realm_id,
                    "after": after,
                    "creates": creates,
                    "entity": spec.entity.name,
                    "limit": CHUNK,
                },
            ).all()
        if not rows:
            return
        after = rows[-1].qbo_id
        linked = [str(r.state_source_id) for r in rows if r.state_source_id is not None]
        states = records.load(run.engine, run.realm_id, spec.entity.name, linked)
        yield [
            Candidate(
                qbo_entity,
                QboId(str(r.qbo_id)),
                bool(r.deleted),
                json.loads(r.data),
                states.get(SourceId(str(r.state_source_id)))
                if r.state_source_id is not None
                else None,
                r.sync_token,
            )
            for r in rows
        ]
        if len(rows) < CHUNK:
            return


def pull_entity(run: PullRun, entity: str) -> PullReport:
    """One entity (or ``customer_transactions``), under the company's writer lock."""
    with lock.company_writer(run.engine, run.realm_id):
        if entity == "customer_transactions":
            return list_customer_transactions(run)
        spec = catalogue.entity(entity).pull_spec
        if spec is None:
            raise ValueError(f"{entity} is not pulled; one of {', '.join(SPECS)}")
        return _pull_entity(run, spec)


def _pull_entity(run: PullRun, spec: PullSpec) -> PullReport:
    report = PullReport(spec.entity.name, run.realm_id, run.run_id)
    _settle(run, spec, report)
    defer_creates = bool(records.open_dispatches(run.engine, run.realm_id, spec.entity.name))
    for qbo_entity, table in spec.raw_tables.items():
        for chunk in candidates(run, spec, qbo_entity, table):
            _pull_chunk(run, spec, chunk, report, defer_creates=defer_creates)
    return report


@dataclass
class _Outcome:
    states: list[RecordState] = field(default_factory=list)
    ledger: list[state.LedgerRow] = field(default_factory=list)
    holds: dict[str, list[Violation]] = field(default_factory=dict)
    """:func:`hold_key` -> why the QBO record is held (kept in ``sync.quarantine``)."""


def hold_key(qbo_id: str) -> str:
    """The record id a pull hold is kept under in ``sync.quarantine`` and shown in
    ``marts.open_problems``: the QBO id (the source may have no record for it yet)."""
    return f"qbo:{qbo_id}"


def _entry(run: PullRun, spec: PullSpec, c: Candidate, sid: str | None, **kw: Any) -> Any:
    return ledger_row(
        run.realm_id,
        spec.entity.name,
        run.run_id,
        sid,
        kw.pop("operation"),
        kw.pop("outcome"),
        qbo_id=c.qbo_id,
        direction=DIRECTION,
        **kw,
    )


def _pull_chunk(
    run: PullRun,
    spec: PullSpec,
    chunk: Sequence[Candidate],
    report: PullReport,
    *,
    defer_creates: bool,
) -> None:
    out = _Outcome()
    linked = [c for c in chunk if c.state is not None]
    new = [c for c in chunk if c.state is None]
    if new and defer_creates:
        # A push write whose answer never came may have created these in QBO: the push's
        # replay links them first, so the pull never makes a second source record of one.
        report.counts["deferred"] += len(new)
        new = []
    rows = run.source.read_rows(spec.table, [str(c.state.source_id) for c in linked if c.state])
    new, written = _create(run, spec, new, out, report)
    updates, plans = _plan_chunk(run, spec, linked, rows, out, report)
    writes = _intended(plans)
    source_writes.open_writes(run.engine, run.realm_id, spec.entity.name, run.run_id, writes)
    applied = run.source.apply_fields(spec.table, updates) if updates else set()
    _record(run, spec, plans, applied, new, written, out, report)
    through = [hold_key(c.qbo_id) for c in chunk if hold_key(c.qbo_id) not in out.holds]
    if spec.mirror:  # QBO's version replaced the source's: an edit the push held is moot
        through += [str(s.source_id) for s in out.states if s.status == "synced" and s.source_id]
    # Deleted (or voided) in QBO: no push writes the record again (R42), so a hold of it
    # waits for a fix no action can sync; the delete is its last word (R31).
    through += [str(s.source_id) for s in out.states if s.deleted_in_qbo and s.source_id]
    rehashed = (
        records.mirrored_hashes(run.source, applied) if spec.entity.name == "customers" else []
    )
    with run.engine.begin() as conn:
        records.save(conn, out.states, run.run_id)
        records.set_source_hashes(conn, run.realm_id, "invoices", rehashed, created_by="qbo")
        state.append_ledger(conn, out.ledger)
        source_writes.close_writes(conn, run.realm_id, spec.entity.name, [w.qbo_id for w in writes])
        # Held records are listed where people look (status, open_problems, notifications)
        # until a pull takes them.
        quarantine.hold(
            conn, run.realm_id, spec.entity.name, run.run_id, out.holds, direction="source"
        )
        quarantine.release(conn, run.realm_id, spec.entity.name, through, run.run_id)


def _intended(
    plans: Mapping[QboId, tuple[Candidate, LinkedPlan]],
) -> list[source_writes.SourceWrite]:
    """The column writes of the chunk, stored before the source transaction (intents)."""
    return [
        source_writes.SourceWrite(
            c.qbo_id,
            str(c.state.source_id),
            plan.columns,
            c.token,
            {"fields": sorted(plan.applied), "columns": sorted(plan.columns)},
        )
        for c, plan in plans.values()
        if plan.columns and c.state is not None
    ]


def settle_source_writes(run: PullRun, entity: str) -> int:
    """:func:`_settle` for the push (under the company's writer lock), before it plans: a
    value a stopped pull wrote into the source is QBO's, never a source edit to write back
    (R42). Returns how many writes were recorded."""
    spec = catalogue.entity(entity).pull_spec
    if spec is None:
        return 0
    report = PullReport(entity, run.realm_id, run.run_id)
    _settle(run, spec, report)
    return report.counts["recovered"]


def _settle(run: PullRun, spec: PullSpec, report: PullReport) -> None:
    """Writes a stopped run made in the source and never recorded get their ledger entry now,
    under the run that made them (R37), and their record's bases take them (:func:`_landed`);
    intents whose write never landed are dropped."""
    name = spec.entity.name
    landed, missed = source_writes.settle(
        run.engine, run.realm_id, name, lambda ids: run.source.read_rows(spec.table, ids)
    )
    if not landed and not missed:
        return
    states = _landed(run, spec, landed)
    rows = [
        ledger_row(
            run.realm_id,
            name,
            w.run_id,
            w.source_id,
            "update",
            "ok",
            qbo_id=w.qbo_id,
            direction=DIRECTION,
            message=f"written into the source by run {w.run_id}, which stopped before "
            f"recording it; recorded by run {run.run_id}",
            details={**(w.details or {}), "sync_token": w.qbo_token, "recorded_by": run.run_id},
        )
        for w in landed
    ]
    with run.engine.begin() as conn:
        records.save(conn, states, run.run_id)
        state.append_ledger(conn, rows)
        source_writes.close_writes(conn, run.realm_id, name, [w.qbo_id for w in landed + missed])
    report.counts["recovered"] += len(landed)


def _landed(
    run: PullRun, spec: PullSpec, landed: Sequence[source_writes.SourceWrite]
) -> list[RecordState]:
    """The states of records a stopped pull wrote QBO's fields into: on both sides of the base
    those fields take the value the source now holds (QBO's, as of the version written), so
    the push does not take it for a source edit (it would write a value QBO may have moved
    on from over QBO's newer one, R42), and the next pull, planning the record again, brings
    in whatever QBO changed since."""
    ids = [w.source_id for w in landed]
    states = records.load(run.engine, run.realm_id, spec.entity.name, ids)
    now = _canonical(run, spec, ids)
    out: list[RecordState] = []
    for w in landed:
        sid = SourceId(w.source_id)
        st, record = states.get(sid), now.get(sid)
        fields = frozenset((w.details or {}).get("fields") or ())
        if st is None or record is None or not fields or st.qbo_base is None:
            continue
        body = _body(spec, record, run.context)
        if body is None:
            continue
        qbo_base = dict(st.qbo_base)
        for f in fields:
            if f in body:
                qbo_base[f] = body[f]
            else:
                qbo_base.pop(f, None)
        out.append(
            st.but(
                source_base=new_source_base(st.source_base, body, fields),
                qbo_base=qbo_base,
                qbo_hash=diff.body_hash(qbo_base),
                pulled_token=None,  # planned again by the next pull
            )
        )
    return out


def _canonical(run: PullRun, spec: PullSpec, ids: Sequence[str]) -> dict[SourceId, Any]:
    if not ids:
        return {}
    got: dict[SourceId, Any] = {}
    for chunk in run.source.iter_entity(spec.entity.name, list(ids)):
        for rec in chunk:
            got[SourceId(rec.source_id)] = rec
    return got


def _body(spec: PullSpec, record: Any, ctx: PushContext) -> dict[str, Any] | None:
    push = spec.entity.push_spec
    if push is None:
        return None
    try:
        built = push.fields(record, ctx)
    except Exception:  # noqa: BLE001 - an unbuildable record is compared later
        return None
    return None if isinstance(built, Blocked) else dict(built.body)


def _plan_chunk(
    run: PullRun,
    spec: PullSpec,
    linked: Sequence[Candidate],
    rows: Mapping[SourceId, Mapping[str, Any]],
    out: _Outcome,
    report: PullReport,
) -> tuple[list[FieldUpdate], dict[QboId, tuple[Candidate, LinkedPlan]]]:
    current = _canonical(run, spec, [str(c.state.source_id) for c in linked if c.state])
    contacts = (
        _source_ids(run, "customers", "Customer", [_customer_of(c.data) for c in linked])
        if "CustomerRef" in spec.fields
        else {}
    )
    updates: list[FieldUpdate] = []
    plans: dict[QboId, tuple[Candidate, LinkedPlan]] = {}
    for c in linked:
        st = c.state
        assert st is not None
        sid = SourceId(st.source_id or "")
        row = rows.get(sid)
        if st.intent is not None or st.status == "pending":
            report.counts["skipped"] += 1
            continue
        if _void_stands(spec, c, st):
            # Voided in QBO before: final. A later edit of the voided record in QBO (its note)
            # neither brings it back nor lets the push write it again (R42); its version is
            # taken so it is not read as a change again.
            out.states.append(
                st.but(sync_token=_token(c.data) or st.sync_token, pulled_token=c.token)
            )
            report.counts["unchanged"] += 1
            continue
        if row is None:
            out.states.append(st.but(deleted_in_source=True))
            out.ledger.append(
                _entry(
                    run,
                    spec,
                    c,
                    sid,
                    operation="skip",
                    outcome="skipped",
                    message="deleted in the source: not revived by QBO's change (R42)",
                )
            )
            report.counts["skipped"] += 1
            continue
        if not c.deleted and stale(c.data, st):
            # (a delete is final in QBO and its stub carries no version: raw_qbo keeps the last
            # object it read, which may be older than a version the push wrote since)
            report.counts["unchanged"] += 1
            continue
        if c.deleted:
            plans[c.qbo_id] = (c, LinkedPlan("deleted"))
            if not spec.entity.name_list and not row.get("qbo_deleted"):
                updates.append(FieldUpdate(sid, {"qbo_deleted": True}))
            continue
        if st.created_by != "qbo" and from_qbo.voided(c.data):
            # A void is final too: the source record is kept as it is (not zeroed), and the
            # push never writes the voided QBO record again (which would revive it).
            plans[c.qbo_id] = (c, LinkedPlan("deleted", reason="voided"))
            continue
        if not spec.entity.name_list and not _hold_beyond_source(run, spec, [c], out, report):
            continue
        mirror = spec.mirror and st.created_by == "qbo"
        if mirror:
            plans[c.qbo_id] = (c, LinkedPlan("update", reason="mirror"))
            continue
        body = _body(spec, current[sid], run.context) if sid in current else None
        obj = c.data
        if contacts.get(_customer_of(obj)):  # the source contact QBO's customer is linked to
            obj = {**obj, from_qbo.CONTACT_KEY: contacts[_customer_of(obj)]}
        plan = plan_linked(spec.entity.name, spec.entity.conflict, obj, st, body, row)
        plans[c.qbo_id] = (c, plan)
        if plan.columns:
            updates.append(FieldUpdate(sid, plan.columns, plan.expect))
    return updates, plans


def _void_stands(spec: PullSpec, c: Candidate, st: RecordState) -> bool:
    """A transaction the sync wrote and QBO voided (or deleted) since, seen again in a new
    version that is not a delete: QBO has no unvoid, so the void stands."""
    return (
        st.deleted_in_qbo
        and not c.deleted
        and st.created_by != "qbo"
        and not spec.entity.name_list
        and st.qbo_id == c.qbo_id
    )


def _record(
    run: PullRun,
    spec: PullSpec,
    plans: Mapping[QboId, tuple[Candidate, LinkedPlan]],
    applied: set[SourceId],
    new: Sequence[Candidate],
    written: Mapping[QboId, SourceId],
    out: _Outcome,
    report: PullReport,
) -> None:
    mirrors = [c for c, p in plans.values() if p.reason == "mirror"]
    mirrors = _hold_beyond_source(run, spec, mirrors, out, report)
    mirrored = _write_new(run, spec, mirrors) if mirrors else {}
    touched = [str(c.state.source_id) for c, _ in plans.values() if c.state]
    touched += [str(s) for s in written.values()]
    now_records = _canonical(run, spec, touched)
    for c, plan in plans.values():
        st = c.state
        assert st is not None
        sid = SourceId(st.source_id or "")
        if plan.action == "deleted":
            out.states.append(
                st.but(
                    deleted_in_qbo=True,
                    status="deleted",
                    sync_token=_token(c.data) or st.sync_token,
                    pulled_token=c.token,
                    name_key=None,
                )
            )
            out.ledger.append(
                _entry(
                    run,
                    spec,
                    c,
                    sid,
                    operation="delete",
                    outcome="ok",
                    message=f"voided in QBO: the source {spec.table[:-1]} is kept as it is, "
                    "and the sync never writes the voided record again (that would revive it)"
                    if plan.reason == "voided"
                    else f"deleted in QBO: the source {spec.table[:-1]} is kept and "
                    "marked (R9, R16, R22)",
                )
            )
            report.counts["deleted"] += 1
            continue
        if plan.reason == "mirror":
            if c.qbo_id not in mirrored:
                continue
            out.states.append(_mirrored_state(run, spec, c, st, now_records.get(sid)))
            out.ledger.append(_entry(run, spec, c, sid, operation="update", outcome="ok"))
            report.counts["updated"] += 1
            continue
        if plan.action == "skip":
            # A record the pull cannot take yet (held back in the source) is planned by every
            # pull until it can: its skip is recorded once per QBO version and reason (R37).
            skipped = f"{c.token}: {plan.reason}"
            if c.token is None or st.pull_skipped != skipped:
                out.states.append(st.but(pull_skipped=skipped))
                out.ledger.append(
                    _entry(
                        run,
                        spec,
                        c,
                        sid,
                        operation="skip",
                        outcome="skipped",
                        message=plan.reason,
                        details={"sync_token": c.token},
                    )
                )
            report.counts["skipped"] += 1
            continue
        if plan.columns and sid not in applied:
            out.ledger.append(
                _entry(
                    run,
                    spec,
                    c,
                    sid,
                    operation="update",
                    outcome="skipped",
                    message="changed in the source while the pull ran: merged next cycle",
                )
            )
            report.counts["skipped"] += 1
            continue
        out.states.append(_linked_state(run, spec, c, st, plan, now_records.get(sid)))
        out.ledger += _linked_ledger(run, spec, c, sid, plan)
        if plan.conflicts:
            report.counts["conflicts"] += 1
        report.counts["updated" if plan.action == "update" else "unchanged"] += 1
    keys: set[str] = set()
    for c in new:
        made = written.get(c.qbo_id)
        if made is None:
            continue
        fresh = _new_state(run, spec, c, made, now_records.get(made))
        if fresh.name_key is not None and fresh.name_key in keys:
            fresh = fresh.but(name_key=None)  # QBO and we fold a name alike: never a crash
        keys.add(fresh.name_key or "")
        out.states.append(fresh)
        out.ledger.append(_entry(run, spec, c, made, operation="create", outcome="ok"))
        report.counts["created"] += 1


def _token(obj: Mapping[str, Any]) -> str | None:
    token = obj.get("SyncToken")
    return str(token) if token is not None else None


def _rebuilt(run: PullRun, spec: PullSpec, record: Any | None) -> dict[str, Any] | None:
    return _body(spec, record, run.context) if record is not None else None


def _linked_state(
    run: PullRun,
    spec: PullSpec,
    c: Candidate,
    st: RecordState,
    plan: LinkedPlan,
    record: Any | None,
) -> RecordState:
    rebuilt = _rebuilt(run, spec, record)
    base = (
        new_source_base(st.source_base, rebuilt, plan.applied)
        if rebuilt is not None
        else st.source_base
    )
    qbo_base = plan.qbo_base if plan.qbo_base is not None else st.qbo_base
    in_step = not plan.pending and record is not None
    pushed = st.status in {"synced", "deleted"}
    return st.but(
        source_base=base,
        source_hash=(content_hash(record) if in_step else None) if pushed else st.source_hash,
        qbo_base=qbo_base,
        qbo_hash=diff.body_hash(qbo_base),
        sync_token=_token(c.data) or st.sync_token,
        pulled_token=c.token,
        qbo_updated_at=from_qbo.updated_at(c.data),
        deleted_in_qbo=False,
        pull_due=False,
        # Fields QBO changed that the source has no place for (an invoice's lines, its
        # customer): QBO's value stands there while the source keeps its own, so a later
        # source change of one is a conflict the push records by its policy (R34), never a
        # silent overwrite of what the pull said QBO keeps.
        pull_fields=_kept_in_qbo(spec, st, plan, qbo_base, rebuilt),
        # a record the push could not write (held back, refused) stays the push's to retry:
        # the pull moves only the QBO side and the fields it took
        status=st.settled_status if pushed else st.status,
        last_synced_at=run.now,
    )


def _kept_in_qbo(
    spec: PullSpec,
    st: RecordState,
    plan: LinkedPlan,
    qbo_base: Mapping[str, Any] | None,
    rebuilt: Mapping[str, Any] | None,
) -> tuple[str, ...]:
    """The fields where QBO holds a change of its own the source has no place for: those QBO
    changed now (``plan.unmapped``) and those it had changed before, while they still differ
    from the source's version."""
    fields = set(plan.unmapped) | {f for f in st.pull_fields or () if f not in spec.fields}
    if rebuilt is not None:
        fields = {
            f
            for f in fields
            if diff.normal((qbo_base or {}).get(f)) != diff.normal(rebuilt.get(f))
        }
    return tuple(sorted(fields))


def _linked_ledger(
    run: PullRun, spec: PullSpec, c: Candidate, sid: str, plan: LinkedPlan
) -> list[state.LedgerRow]:
    rows: list[state.LedgerRow] = []
    policy = spec.entity.conflict
    if plan.conflicts:
        kept = set(plan.kept_qbo)
        resolution = ", ".join(
            f"{f}: {'QBO' if f in kept else 'source'} kept" for f in plan.conflicts
        )
        rows.append(
            _entry(
                run,
                spec,
                c,
                sid,
                operation="conflict",
                outcome="conflict",
                message=f"changed in QBO and in the source since the last sync; policy "
                f"{policy}: {resolution}",
                details={
                    "fields": list(plan.conflicts),
                    "kept_qbo": sorted(kept),
                    "policy": policy,
                },
            )
        )
    if plan.columns:
        rows.append(
            _entry(
                run,
                spec,
                c,
                sid,
                operation="update",
                outcome="ok",
                details={"fields": sorted(plan.applied), "columns": sorted(plan.columns)},
            )
        )
    left = (
        (plan.unmapped, "the source keeps its own (it has no place for them), QBO keeps QBO's"),
        (
            plan.foreign,
            "QBO holds the billing contact the customer was created with there (R6), not this "
            "contact: the source keeps its own, QBO keeps QBO's",
        ),
    )
    for fields, why in left:
        if fields:
            rows.append(
                _entry(
                    run,
                    spec,
                    c,
                    sid,
                    operation="skip",
                    outcome="skipped",
                    message=f"changed in QBO: {', '.join(sorted(fields))}; {why}",
                    details={"fields": sorted(fields)},
                )
            )
    return rows


def _mirrored_state(
    run: PullRun, spec: PullSpec, c: Candidate, st: RecordState, record: Any | None
) -> RecordState:
    qbo_base = diff.project(c.data, template(c.qbo_entity, st.source_base))
    return st.but(
        source_hash=content_hash(record) if record is not None else st.source_hash,
        qbo_base=qbo_base,
        qbo_hash=diff.body_hash(qbo_base),
        sync_token=_token(c.data),
        pulled_token=c.token,
        qbo_updated_at=from_qbo.updated_at(c.data),
        status="synced",
        last_synced_at=run.now,
    )


def _new_state(
    run: PullRun, spec: PullSpec, c: Candidate, sid: SourceId, record: Any | None
) -> RecordState:
    rebuilt = _rebuilt(run, spec, record) if not spec.mirror else None
    qbo_base = diff.project(c.data, template(c.qbo_entity, rebuilt))
    key = _name_key(spec, c)
    return RecordState(
        realm_id=run.realm_id,
        entity=spec.entity.name,
        source_id=sid,
        qbo_entity=c.qbo_entity,
        qbo_id=c.qbo_id,
        created_by="qbo",
        status="synced",
        source_hash=content_hash(record) if record is not None else None,
        source_base=rebuilt,
        qbo_base=qbo_base,
        qbo_hash=diff.body_hash(qbo_base),
        sync_token=_token(c.data),
        pulled_token=c.token,
        qbo_updated_at=from_qbo.updated_at(c.data),
        name_key=key,
        last_synced_at=run.now,
    )


def _name_space(spec: PullSpec) -> tuple[str, str] | None:
    """(QBO name space, the field names live in) of a name-list entity whose names QBO keeps
    unique (the push spec's: ``party``/``DisplayName`` for customers), or None."""
    push = spec.entity.push_spec
    if push is None or push.name_space is None or push.match_field is None:
        return None
    return push.name_space, push.match_field


def _name_key(spec: PullSpec, c: Candidate) -> str | None:
    """The name key a QBO-origin record holds in ``record_state`` (collisions, R5)."""
    space = _name_space(spec)
    name = c.data.get(space[1]) if space else None
    return f"{space[0]}:{qbo_name_key(str(name))}" if space and name else None


def _create(
    run: PullRun,
    spec: PullSpec,
    new: Sequence[Candidate],
    out: _Outcome,
    report: PullReport,
) -> tuple[list[Candidate], dict[QboId, SourceId]]:
    """QBO records the source does not hold yet become QBO-origin source records (R8, R16,
    R20), keyed on company + QBO id (a repeat updates the same row)."""
    if not new:
        return [], {}
    new = _hold_beyond_source(run, spec, new, out, report)
    if _name_space(spec) is not None:
        keys = {c.qbo_id: _name_key(spec, c) or "" for c in new}
        owners = records.name_owners(run.engine, run.realm_id, keys.values())
        taken = {
            c.qbo_id: (
                "pull.name.taken",
                f"has the name {owner[0]} #{owner[1]} holds in QBO (linked to another QBO "
                "record, or being written there)",
                "Rename one of them in QBO or in the source app; the next pull retries.",
            )
            for c in new
            if (owner := owners.get(keys[c.qbo_id])) is not None
        }
        new = _hold(run, spec, new, taken, out, report)
    new = _match(run, spec, new, out, report)
    new = _hold_unlinked(run, spec, new, out, report)
    return list(new), _write_new(run, spec, new)


def _match(
    run: PullRun,
    spec: PullSpec,
    new: Sequence[Candidate],
    out: _Outcome,
    report: PullReport,
) -> list[Candidate]:
    """New QBO records whose name (as QBO compares names: case and blanks aside) a source
    record holds that the sync links to nothing (a contact never pushed: it has no sale, R4)
    are matched to it, the oldest first, as the push matches a QBO record by name (R5): one
    record on each side, never a second contact of the same name. Each side keeps its details
    (the base is what each holds now); the next change on either side flows. Returns the
    records left to create."""
    space = _name_space(spec)
    if spec.named is None or space is None or not new:
        return list(new)
    names = {c.qbo_id: str(c.data.get(space[1]) or "") for c in new}
    found = spec.named(run.source, list(names.values()))
    if not found:
        return list(new)
    linked = records.linked_source_ids(
        run.engine, run.realm_id, spec.entity.name, [s for ids in found.values() for s in ids]
    )
    pairs: dict[QboId, SourceId] = {}
    for c in new:
        free = [s for s in found.get(qbo_name_key(names[c.qbo_id]), ()) if s not in linked]
        if free:
            pairs[c.qbo_id] = free[0]
            linked.add(free[0])
    if not pairs:
        return list(new)
    now = _canonical(run, spec, list(pairs.values()))
    for c in new:
        sid = pairs.get(c.qbo_id)
        if sid is None or sid not in now:
            continue
        out.states.append(_new_state(run, spec, c, sid, now[sid]).but(created_by="matched"))
        out.ledger.append(
            _entry(
                run,
                spec,
                c,
                sid,
                operation="match",
                outcome="ok",
                message=f"matched QBO {c.qbo_entity} {c.qbo_id} to the source record of the "
                "same name (R5); each side keeps its details until one of them changes",
            )
        )
        report.counts["matched"] += 1
    return [c for c in new if c.qbo_id not in pairs or pairs[c.qbo_id] not in now]


UNLINKED_FIX = (
    "nothing to do if it follows: the next pull brings this record in once what it refers to is "
    "in the source app (pulled with it, or no longer held back: see that record's problem). If "
    "that record was deleted in the source app, the sync does not bring it back: enter it "
    "again there, or move this transaction to another customer or invoice in QBO"
)


def _hold_unlinked(
    run: PullRun,
    spec: PullSpec,
    new: Sequence[Candidate],
    out: _Outcome,
    report: PullReport,
) -> list[Candidate]:
    """The new QBO transactions whose customer and invoices the source app holds; the others
    are held back with the reason (a receipt written without its sale and contact would stay
    unlinked for good: nothing writes it again unless QBO changes it). Held ones are candidates
    again on every pull, so they come in once their references do."""
    live = [c for c in new if not c.deleted]
    if spec.entity.name_list or not live:
        return list(new)
    # known to the sync (linked to a source record, even one deleted since: such a record
    # lands without the link, keeping QBO's id, as before)
    customers = _links(run, "customers", "Customer", [_customer_of(c.data) for c in live])
    paid = [i for c in live if c.qbo_entity == "Payment" for i in from_qbo.applied_invoices(c.data)]
    invoices = _links(run, "invoices", "Invoice", paid)
    unlinked: dict[QboId, str] = {}
    for c in live:
        customer = _customer_of(c.data)
        missing = [
            i for i in from_qbo.applied_invoices(c.data)
            if c.qbo_entity == "Payment" and i not in invoices
        ]
        if customer and customer not in customers:
            unlinked[c.qbo_id] = f"its customer (QBO {customer}) is not in the source app yet"
        elif missing:
            unlinked[c.qbo_id] = (
                f"the invoice it pays (QBO {', '.join(missing)}) is not in the source app yet"
            )
    found = {
        q: ("pull.reference.not_in_source", why, UNLINKED_FIX) for q, why in unlinked.items()
    }
    return _hold(run, spec, new, found, out, report)


def _hold_beyond_source(
    run: PullRun,
    spec: PullSpec,
    cands: Sequence[Candidate],
    out: _Outcome,
    report: PullReport,
) -> list[Candidate]:
    """The candidates whose amounts the source can hold; the others are held back with the
    reason in the ledger, once per QBO version (QBO and raw_qbo keep the exact value)."""
    if spec.entity.name_list:  # no amounts
        return list(cands)
    unfit = {
        c.qbo_id: found
        for c in cands
        if (found := from_qbo.unfit_for_source(c.data, c.qbo_entity))
    }
    return _hold(run, spec, cands, unfit, out, report)


def _hold(
    run: PullRun,
    spec: PullSpec,
    cands: Sequence[Candidate],
    found: Mapping[QboId, tuple[str, str, str]],
    out: _Outcome,
    report: PullReport,
) -> list[Candidate]:
    """The candidates not in ``found`` (QBO id -> rule, reason, fix); those are held back:
    kept in ``sync.quarantine`` (:func:`hold_key`) and noted in the ledger once per QBO
    version."""
    if not found:
        return list(cands)
    noted = _noted(run, spec.entity.name, "hold", list(found))
    for c in cands:
        if c.qbo_id not in found:
            continue
        rule, why, fix = found[c.qbo_id]
        report.counts["held_back"] += 1
        message = f"QBO {c.qbo_entity} {c.qbo_id}: {why}"
        out.holds[hold_key(c.qbo_id)] = [Violation(rule, message, fix)]
        if (c.qbo_id, c.token) in noted:
            continue
        sid = c.state.source_id if c.state is not None else None
        out.ledger.append(
            _entry(
                run,
                spec,
                c,
                sid,
                operation="hold",
                outcome="held",
                message=message,
                details={"sync_token": c.token, "fix": fix},
            )
        )
    return [c for c in cands if c.qbo_id not in found]


def _noted(
    run: PullRun, entity: str, operation: str, qbo_ids: Sequence[str]
) -> set[tuple[str, Any]]:
    """(QBO id, version) pairs the pull already noted with ``operation`` in the ledger."""
    sql = sa.text(
        "SELECT qbo_id, details->>'sync_token' FROM sync.ledger WHERE realm_id = :r"
        " AND entity = :e AND direction = 'pull' AND operation = :o AND qbo_id = ANY(:ids)"
    )
    with run.engine.connect() as conn:
        rows = conn.execute(
            sql, {"r": run.realm_id, "e": entity, "o": operation, "ids": sorted(qbo_ids)}
        ).all()
    return {(str(q), t) for q, t in rows}


def _write_new(run: PullRun, spec: PullSpec, objs: Sequence[Candidate]) -> dict[QboId, SourceId]:
    return spec.write_new(run, objs) if objs else {}


def _new_contacts(run: PullRun, objs: Sequence[Candidate]) -> dict[QboId, SourceId]:
    return run.source.upsert_contacts_from_qbo(
        [from_qbo.contact(c.data, run.realm_id) for c in objs]
    )


def _new_sales(run: PullRun, objs: Sequence[Candidate]) -> dict[QboId, SourceId]:
    contacts = _source_ids(run, "customers", "Customer", [_customer_of(c.data) for c in objs])
    sales = [
        from_qbo.sale(c.data, run.realm_id, contacts.get(_customer_of(c.data)), deleted=c.deleted)
        for c in objs
        if c.qbo_entity == "Invoice"
    ]
    return run.source.upsert_sales_from_qbo(sales)


def _new_receipts(run: PullRun, objs: Sequence[Candidate]) -> dict[QboId, SourceId]:
    contacts = _source_ids(run, "customers", "Customer", [_customer_of(c.data) for c in objs])
    invoices = _source_ids(
        run,
        "invoices",
        "Invoice",
        [i for c in objs for i in from_qbo.applied_invoices(c.data)],
    )
    receipts = []
    for c in objs:
        applied = [invoices[i] for i in from_qbo.applied_invoices(c.data) if i in invoices]
        receipts.append(
            from_qbo.receipt(
                c.data,
                run.realm_id,
                contacts.get(_customer_of(c.data)),
                applied[0] if applied else None,
                deleted=c.deleted,
            )
        )
    unapplied = [c.qbo_id for c in objs if not from_qbo.applied_invoices(c.data)]
    return run.source.upsert_receipts_from_qbo(receipts, unapplied=unapplied)


def _customer_of(obj: Mapping[str, Any]) -> str:
    ref = obj.get("CustomerRef")
    return str(ref.get("value")) if isinstance(ref, Mapping) and ref.get("value") else ""


def _links(run: PullRun, entity: str, qbo_entity: str, qbo_ids: Sequence[str]) -> dict[str, str]:
    """QBO id -> source id of the records among ``qbo_ids`` the sync links to a source record
    (``sync.record_state``), whether or not that record still exists in the source."""
    wanted = sorted({i for i in qbo_ids if i})
    if not wanted:
        return {}
    sql = sa.text(
        "SELECT qbo_id, source_id FROM sync.record_state WHERE realm_id = :r AND entity = :e"
        " AND qbo_entity = :q AND qbo_id = ANY(:ids) AND source_id IS NOT NULL"
    )
    with run.engine.connect() as conn:
        params = {"r": run.realm_id, "e": entity, "q": qbo_entity, "ids": wanted}
        return {str(q): str(s) for q, s in conn.execute(sql, params)}


def _source_ids(
    run: PullRun, entity: str, qbo_entity: str, qbo_ids: Sequence[str]
) -> dict[str, str]:
    """QBO id -> source id of linked records whose source row still exists: a row deleted in
    the source since (its state may not know yet) is never referenced by a new row (a foreign
    key violation would stop every pull of the company)."""
    found = _links(run, entity, qbo_entity, qbo_ids)
    if not found:
        return {}
    live = run.source.existing_ids(catalogue.entity(entity).source_table, found.values())
    return {q: s for q, s in found.items() if s in live}


# --------------------------------------------------------------------------- R26


TXN_CURSOR = "pull:customer_transactions"


def list_customer_transactions(run: PullRun) -> PullReport:
    """Every QBO transaction of a customer, listed for its source contact with a link that
    opens it in QBO (R26): the raw rows loaded since the last listing, upserted by company,
    type and QBO id."""
    report = PullReport("customer_transactions", run.realm_id, run.run_id)
    since = state.get_cursor(run.engine, run.realm_id, TXN_CURSOR) or "-infinity"
    high = since
    for qbo_entity in from_qbo.CUSTOMER_TXN_TYPES:
        table = raw_qbo.ENTITY_TABLES[qbo_entity]
        after = ""
        while True:
            sql = sa.text(
                f"SELECT qbo_id, deleted, data::text AS data, loaded_at FROM raw_qbo.{table}"
                " WHERE realm_id = :r AND loaded_at > CAST(:since AS timestamptz)"
                " AND qbo_id > :after ORDER BY qbo_id LIMIT :limit"
            )
            with run.engine.connect() as conn:
                rows = conn.execute(
                    sql, {"r": run.realm_id, "since": since, "after": after, "limit": CHUNK}
                ).all()
            if not rows:
                break
            after = rows[-1].qbo_id
            objs = [(json.loads(r.data), bool(r.deleted)) for r in rows]
            contacts = _source_ids(run, "customers", "Customer", [_customer_of(o) for o, _ in objs])
            txns = [
                t
                for o, deleted in objs
                if "Id" in o
                and (
                    t := from_qbo.customer_transaction(
                        o,
                        qbo_entity,
                        run.realm_id,
                        contacts.get(_customer_of(o)),
                        deleted=deleted,
                    )
                )
                is not None
            ]
            report.counts["updated"] += run.source.upsert_customer_transactions(txns)
            high = max([high, *(r.loaded_at.isoformat() for r in rows)], key=_ts)
            if len(rows) < CHUNK:
                break
    if high != since:
        state.set_cursor(run.engine, run.realm_id, TXN_CURSOR, high)
    report.counts["skipped"] += note_unhomed(run)
    return report


UNHOMED: tuple[str, ...] = (
    "Bill",
    "BillPayment",
    "VendorCredit",
    "Purchase",
    "PurchaseOrder",
    "JournalEntry",
    "Deposit",
    "Transfer",
    "TimeActivity",
)
"""QBO transactions the source app has no home for (R44): extracted into ``raw_qbo`` for the
marts, never written back; each version is noted once in the ledger with the reason. (Name lists
are reference data; the customer transactions above are listed per contact, R26.)"""
UNHOMED_CURSOR = "pull:unhomed"


def note_unhomed(run: PullRun) -> int:
    """One ledger row (skip, skipped, with the reason) per version of a QBO transaction the
    source has no home for, loaded since the last note; set work in Postgres."""
    since = state.get_cursor(run.engine, run.realm_id, UNHOMED_CURSOR) or "-infinity"
    noted = 0
    high: datetime | None = None
    with run.engine.begin() as conn:
        for qbo_entity in UNHOMED:
            table = raw_qbo.ENTITY_TABLES[qbo_entity]
            row = conn.execute(
                sa.text(
                    "WITH fresh AS (SELECT qbo_id, sync_token, loaded_at"  # noqa: S608 - ENTITY_TABLES
                    f" FROM raw_qbo.{table} WHERE realm_id = :r AND NOT deleted"
                    " AND loaded_at > CAST(:since AS timestamptz)),"
                    " noted AS (INSERT INTO sync.ledger (run_id, realm_id, entity, direction,"
                    " qbo_id, operation, outcome, error_message, details)"
                    " SELECT :run, :r, :table, 'pull', qbo_id, 'skip', 'skipped',"
                    " 'QBO ' || :qe || ' ' || qbo_id || ': the source app has no home for a '"
                    " || :qe || '; kept in raw_qbo.' || :table || ' for the marts',"
                    " jsonb_build_object('qbo_entity', CAST(:qe AS text), 'sync_token',"
                    " sync_token) FROM fresh RETURNING 1)"
                    " SELECT (SELECT count(*) FROM noted), (SELECT max(loaded_at) FROM fresh)"
                ),
                {
                    "r": run.realm_id,
                    "since": since,
                    "run": run.run_id,
                    "qe": qbo_entity,
                    "table": table,
                },
            ).one()
            noted += int(row[0])
            if row[1] is not None and (high is None or row[1] > high):
                high = row[1]
        if high is not None and _ts(since) < high:  # in the notes' transaction: never twice
            conn.execute(
                sa.text(
                    "INSERT INTO sync.cursors (realm_id, name, value) VALUES (:r, :n, :v)"
                    " ON CONFLICT (realm_id, name) DO UPDATE SET value = EXCLUDED.value,"
                    " updated_at = now()"
                ),
                {"r": run.realm_id, "n": UNHOMED_CURSOR, "v": high.isoformat()},
            )
    return noted


CUSTOMERS = PullSpec(
    catalogue.entity("customers"),
    _new_contacts,
    from_qbo.CONTACT_FIELDS,
    from_qbo.contact_owned,
    named=SourceAppConnector.contacts_named,
)
INVOICES = PullSpec(
    catalogue.entity("invoices"), _new_sales, from_qbo.SALE_FIELDS, from_qbo.sale_owned, mirror=True
)
PAYMENTS = PullSpec(
    catalogue.entity("payments"),
    _new_receipts,
    from_qbo.RECEIPT_FIELDS,
    from_qbo.receipt_owned,
    mirror=True,
)


SPECS: dict[str, PullSpec] = catalogue.bound_specs(
    [e for e in catalogue.CATALOGUE if e.pulls], "pull"
)
"""Pull entities in catalogue order, which is the order they are pulled (invoices need their
customers, payments their invoices): a view of the rows' ``pull`` bindings."""


def _ts(value: str) -> datetime:
    if value == "-infinity":
        return datetime.min.replace(tzinfo=UTC)
    return datetime.fromisoformat(value)


__all__ = [
    "SPECS",
    "Candidate",
    "LinkedPlan",
    "PullReport",
    "PullRun",
    "PullSpec",
    "new_source_base",
    "plan_linked",
    "pull_entity",
]
