"""The push planner: source app -> QBO, over the direction-neutral engine (sync/engine).

One run of :func:`push_entity` for one company (realm) and one entity, holding the company's
writer lock (:mod:`qbo_pipelines.sync.engine.lock`):

1. **Replay** every write whose answer never came, verbatim, before planning anything (R33).
2. **Candidates** from the commit-safe change feed (:mod:`~qbo_pipelines.sync.engine.feed`):
   records changed since the entity's position (the sync's own write-backs skipped, R35), plus
   records held back (R40) or refused and due for retry (R31), plus deletes still to carry
   out; every record on the first run, in full mode or in a backfill.
3. **Plan** each record (pure, :func:`plan_record`) against its ``sync.record_state`` base:
   unchanged -> no call; quality rules and references -> held with a reason and a fix; new ->
   matched by name (R5, R10) or created, after checking QBO's name space (a collision is held,
   never a crash); known -> a sparse update of exactly the fields set, changed or cleared since
   the base (R7); deleted in the source -> deleted or voided in QBO only when the sync created it
   (R9, R17, R22). A sale with a negative total is a CreditMemo (R11).
4. **Write and record** through :class:`~qbo_pipelines.sync.engine.writes.Writer`.

Nothing here touches QBO records the sync neither created nor matched (R25).
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Final, Literal

import sqlalchemy as sa

from qbo_pipelines import entities as catalogue
from qbo_pipelines.canonical import QboId, RealmId, SourceId, content_hash
from qbo_pipelines.qbo import query as q
from qbo_pipelines.qbo.client import (
    PAGE_SIZE,
    BatchOp,
    BatchResult,
    Dispatch,
    QboClient,
    derive_request_id,
)
from qbo_pipelines.qbo.errors import AuthError, QboError, ServerError, ThrottledError
from qbo_pipelines.qbo.values import last_updated
from qbo_pipelines.quality import quarantine, rules
from qbo_pipelines.quality.rules import Violation, check
from qbo_pipelines.source_app.connector import SourceAppConnector
from qbo_pipelines.sync import context as push_context
from qbo_pipelines.sync import staged, state
from qbo_pipelines.sync.engine import diff, feed, lock, records
from qbo_pipelines.sync.engine.records import RecordState
from qbo_pipelines.sync.engine.writes import (
    Intent,
    Report,
    Writer,
    fix_for,
    ledger_row,
    record_request_id,
    retry_delay,
)
from qbo_pipelines.transforms.to_qbo import (
    MANAGED_FIELDS,
    Blocked,
    BuildResult,
    Built,
    PushContext,
    foreign_fields,
)

log = logging.getLogger(__name__)

Record = Any  # one of the Canonical* source records
Action = Literal["create", "update", "delete", "void", "skip", "hold"]
Mode = Literal["incremental", "full"]
CHUNK = 500
STREAM_AHEAD = 16  # calls staged ahead of those running: the next chunk is admitted meanwhile
SENDS_RECORDED = 50  # send answers recorded together while the stream runs
ROW_HASH_PAGE = 10_000
PushReport = Report
DIRECTION = "push"


_Named = Callable[[SourceAppConnector, Sequence[str]], Mapping[str, Sequence[SourceId]]]


@dataclass(frozen=True)
class PushSpec:
    """How one catalogue entity is pushed (bound in :mod:`qbo_pipelines.sync.specs`).

    Attributes:
        entity: the catalogue row.
        create: the body of a create (or why it cannot be built).
        fields: the fields kept in step by updates (compared with the last synced base).
        match_field: QBO field matched by exact name before creating (R5, R10), if any.
        name_space: QBO's name space the match field lives in (``party``: Customer, Vendor
            and Employee share DisplayName; ``item``: Item names), if any.
        skip_reason: why a record is not created in QBO (e.g. a contact with no sale, R4).
        written_through: why a record is never written itself, not even when it is in QBO
            already: another record stands for it there (a contact of an organisation its
            representative contact stands for, R5).
        written_by: the record that writes this one to QBO when another does (the source id
            of its organisation's representative contact), else None.
        group_field: the body field naming the group a record's QBO record stands for
            (``CompanyName``: the organisation a contact stands for, R5). A record whose QBO
            record stood for a group it has left hands that record over to the group's new
            representative (which wants its name), and is matched or created on its own.
        referenced_by: (entity, body field) of the records that reference this entity's QBO
            records (``("invoices", "CustomerRef")``): when a record's link moves to another
            QBO record, the records that referenced its old one are planned again.
        named: the source records that carry names now, by name key
            (:meth:`SourceAppConnector.contacts_named`): a record leaving the group its QBO
            record stands for is planned together with the group's new representative (the
            first record under the group's name that is in that group now and stands for it),
            wherever that record falls in the run.
        send_request: whether QBO should email the record once synced, and to whom (R18).
        qbo_entity: the QBO entity a record becomes (default: the catalogue's).
        meanwhile: for a record in QBO that is held (its violations given), what QBO should
            hold of it until the hold is lifted, if anything (None: QBO keeps its last synced
            version): a receipt moved to a sale not in QBO yet unapplies its payment from the
            invoice it no longer pays. Written, and the record stays held.
    """

    entity: catalogue.Entity
    create: Callable[[Record, PushContext], BuildResult]
    fields: Callable[[Record, PushContext], BuildResult]
    match_field: str | None = None
    name_space: str | None = None
    skip_reason: Callable[[Record], str | None] = lambda _r: None
    written_through: Callable[[Record], str | None] = lambda _r: None
    written_by: Callable[[Record], str | None] = lambda _r: None
    group_field: str | None = None
    referenced_by: tuple[tuple[str, str], ...] = ()
    named: _Named | None = None
    send_request: Callable[[Record], tuple[bool, str | None]] | None = None
    qbo_entity: Callable[[Record], str] | None = None
    meanwhile: Callable[[Record, PushContext, tuple[Violation, ...]], BuildResult | None] | None = (
        None
    )

    def qbo_entity_of(self, record: Record) -> str:
        return self.qbo_entity(record) if self.qbo_entity else self.entity.qbo_name


@dataclass(frozen=True)
class Plan:
    """What to do with one source record (pure planning output)."""

    action: Action
    source_id: SourceId
    record_hash: str | None = None
    qbo_entity: str | None = None
    payload: Mapping[str, Any] | None = None  # the full source-side body (the new base)
    # A create's base when it is not the body it sends: a create writes what the sync never
    # keeps in step (an item's Type and income account, the billing contact: R6, R10).
    base: Mapping[str, Any] | None = None
    changes: Mapping[str, Any] | None = None  # what an update sends
    reason: str | None = None
    violations: tuple[Violation, ...] = ()
    send: bool = False
    send_to: str | None = None
    name: str | None = None
    total: str | None = None  # the TotalAmt QBO should compute (money records written)
    # an update's fields QBO holds a change of its own in (the pull kept it there): both sides
    # changed them, a conflict resolved by the entity's policy and recorded (R34)
    conflicts: tuple[str, ...] = ()

    @property
    def new_base(self) -> Mapping[str, Any] | None:
        """The source side of the base once written: ``base`` for a create that writes more
        than the sync keeps in step, else the payload."""
        return self.base if self.base is not None else self.payload


# --------------------------------------------------------------------------- pure planning


def plan_record(
    spec: PushSpec,
    record: Record,
    current: RecordState | None,
    ctx: PushContext,
    now: datetime | None = None,
) -> Plan:
    """Decide what one existing source record needs (pure; no I/O)."""
    plan = _plan_write(spec, record, current, ctx, now or datetime.now(UTC))
    if plan.action in {"create", "update"} and spec.entity.amount is not None:
        plan = _with(plan, total=str(getattr(record, spec.entity.amount)))
    if spec.send_request is None or plan.action == "hold":
        return plan
    send, send_to = spec.send_request(record)
    return _with(plan, send=send, send_to=send_to)


_MIRRORED = "a QBO record mirrored: QBO owns it"
_NOT_REVIVED = "deleted or voided in QBO: not revived (R9)"


def _with(plan: Plan, **fields: Any) -> Plan:
    """``dataclasses.replace(plan, **fields)`` without its per-field walk (it is called for
    every sale planned): a copy of the plan's fields with those set."""
    copied = object.__new__(Plan)
    copied.__dict__.update(plan.__dict__, **fields)
    return copied


def _plan_write(
    spec: PushSpec,
    record: Record,
    current: RecordState | None,
    ctx: PushContext,
    now: datetime,
) -> Plan:
    source_id = SourceId(record.source_id)
    record_hash = content_hash(record)
    known = current is not None and current.live_in_qbo
    if current is not None and current.intent is not None:
        return Plan("skip", source_id, record_hash, reason="a write is still waiting for QBO")
    through = spec.written_through(record)
    if through is not None:
        return Plan("skip", source_id, record_hash, reason=through)
    skip = spec.skip_reason(record)
    if getattr(record, "origin", "source") == "qbo" and not known:
        skip = "pulled from QBO: never created there again (R35)"
    elif getattr(record, "origin", "source") == "qbo" and _mirrored(spec.entity):
        if current is not None and current.source_hash not in {None, record_hash}:
            return _edited_mirror(spec, source_id, record_hash, current)
        return Plan("skip", source_id, record_hash, reason=_MIRRORED)
    if skip is not None and not known:
        return Plan("skip", source_id, record_hash, reason=skip)
    if current is not None and current.qbo_id is not None and current.deleted_in_qbo:
        return Plan("skip", source_id, record_hash, reason=_NOT_REVIVED)
    retry_later = (
        current is not None
        and current.status == "failed"
        and current.source_hash == record_hash
        and current.retry_at is not None
        and current.retry_at > now
        and not ctx.replan_all  # a mapping changed: what QBO refused may be written now
    )
    if retry_later:
        return Plan("skip", source_id, record_hash, reason="refused by QBO: retried later")
    if (
        known
        and current is not None
        and current.source_hash == record_hash
        and (current.status == "synced")
        and not ctx.replan_all
    ):
        return Plan("skip", source_id, record_hash, reason="unchanged")
    qbo_entity = spec.qbo_entity_of(record)
    if known and current is not None and current.qbo_entity not in {None, qbo_entity}:
        return _held(
            source_id,
            record_hash,
            Violation(
                f"{spec.entity.name}.qbo_type.changed",
                f"{spec.entity.name} #{source_id} is {current.qbo_entity} {current.qbo_id} "
                f"in QBO but would now be a {qbo_entity} (the sign of its total changed)",
                "Issue a separate credit note or sale in the source app instead of "
                "changing the sign of this one.",
            ),
        )
    try:
        built = (spec.fields if known else spec.create)(record, ctx)
        blocked = built.violations if isinstance(built, Blocked) else ()
        checked = tuple(check(record, creating=not known))
        if known and current is not None and checked and not isinstance(built, Blocked):
            checked = _written_fields_only(checked, built.body, current, qbo_entity)
        violations = checked + blocked
    except Exception as exc:  # noqa: BLE001 - one bad record never stops the others
        violations = (
            Violation(
                f"{spec.entity.name}.unplannable",
                f"{spec.entity.name} #{source_id} could not be turned into a QBO "
                f"{qbo_entity}: {type(exc).__name__}: {exc}",
                "Check the record's values in the source app; if they look right, report "
                "this with the record id.",
            ),
        )
        built = Blocked(violations)
    if violations or isinstance(built, Blocked):
        held = Plan("hold", source_id, record_hash, qbo_entity=qbo_entity, violations=violations)
        if known and current is not None and spec.meanwhile is not None:
            return _meanwhile(spec, record, current, ctx, held)
        return held
    name = str(built.body.get(spec.match_field)) if spec.match_field else None
    if not known or current is None:
        return Plan(
            "create",
            source_id,
            record_hash,
            qbo_entity,
            payload=built.body,
            name=name,
            base=_kept_in_step(spec, record, ctx, built.body),
        )
    changes = _changes(built.body, current, qbo_entity)
    # (pull_due: the fields are the pull's to bring in first, marked by a write's merge)
    kept = () if current.pull_due else current.pull_fields or ()
    conflicts = tuple(sorted(set(kept) & set(changes)))
    if conflicts and spec.entity.conflict != "source_wins":
        # QBO's value stands (qbo_wins): only the other fields are written
        changes = {k: v for k, v in changes.items() if k not in conflicts}
    if not changes:
        return Plan(
            "skip",
            source_id,
            record_hash,
            qbo_entity,
            payload=built.body,
            reason="no field changed",
        )
    return Plan(
        "update",
        source_id,
        record_hash,
        qbo_entity,
        payload=built.body,
        changes=changes,
        name=name if spec.match_field in changes else None,
        conflicts=conflicts,
    )


def _written_fields_only(
    violations: tuple[Violation, ...],
    body: Mapping[str, Any],
    current: RecordState,
    qbo_entity: str,
) -> tuple[Violation, ...]:
    """The violations an update must be held for: record-level ones, and those of a field
    the update writes. A bad value QBO already holds (a QBO-born customer's name with a
    control character, taken as QBO has it) is not written by a sparse update of another
    field, so it does not hold that update back."""
    changes: Mapping[str, Any] | None = None
    kept = []
    for v in violations:
        key = _body_key(v.qbo_field, qbo_entity)
        if key is not None and key in body:
            changes = _changes(body, current, qbo_entity) if changes is None else changes
            if key not in changes:
                continue
        kept.append(v)
    return tuple(kept)


def _body_key(qbo_field: str | None, qbo_entity: str) -> str | None:
    """The top-level body key of a QBO field path (``BillAddr.City`` -> ``BillAddr``,
    ``Item.Name`` -> ``Name``)."""
    if qbo_field is None:
        return None
    parts = qbo_field.split(".")
    return parts[1] if parts[0] == qbo_entity and len(parts) > 1 else parts[0]


def _meanwhile(
    spec: PushSpec, record: Record, current: RecordState, ctx: PushContext, held: Plan
) -> Plan:
    """A held record in QBO whose QBO version must not stand meanwhile (:attr:`PushSpec.
    meanwhile`): an update to what QBO should hold until the hold is lifted, carrying the
    hold's violations (the record is held once written, and planned again each run)."""
    assert spec.meanwhile is not None
    built = spec.meanwhile(record, ctx, held.violations)
    if not isinstance(built, Built) or held.qbo_entity != current.qbo_entity:
        return held
    changes = _changes(built.body, current, held.qbo_entity or "")
    if not changes:
        return held  # QBO holds that already
    return replace(held, action="update", payload=built.body, changes=changes)


def _kept_in_step(
    spec: PushSpec, record: Record, ctx: PushContext, created: Mapping[str, Any]
) -> Mapping[str, Any] | None:
    """What a create leaves as the source side of the base: the fields an update keeps in
    step (None when they are the create's body), so what only a create writes is never
    compared again, cleared, or written over (R6, R10)."""
    if spec.fields is spec.create:
        return None
    kept = spec.fields(record, ctx)
    return None if isinstance(kept, Blocked) or kept.body == created else kept.body


def _changes(new: Mapping[str, Any], current: RecordState, qbo_entity: str) -> dict[str, Any]:
    """The fields an update sends: those ``new`` changes against the source base, and those
    it clears among the fields the sync keeps in step (a field only a create writes, in a base
    stored as the create's body before creates kept their own base, is never cleared); never
    a billing field QBO holds for someone else (R6)."""
    changes = diff.changed_fields(new, current.source_base)
    managed = MANAGED_FIELDS.get(qbo_entity) or frozenset(changes)
    foreign = foreign_fields(qbo_entity, current.source_base, current.qbo_base)
    return {k: v for k, v in changes.items() if (k in new or k in managed) and k not in foreign}


def plan_delete(entity: catalogue.Entity, current: RecordState) -> Plan:
    """A source delete: only records the sync created are deleted in QBO (R9, R17, R22).

    A delete QBO refused (a payment still applied, a deposit) is retried as a void when the
    entity can be voided (the void fallback)."""
    source_id = SourceId(current.source_id or "")
    if not current.live_in_qbo:
        return Plan("skip", source_id, reason="never synced")
    if entity.delete == "never":
        return Plan(
            "skip",
            source_id,
            reason=f"{entity.name} deleted in the source are never deleted in QBO (R9)",
        )
    if current.created_by != "sync":
        return Plan("skip", source_id, reason="not created by the sync: left alone in QBO (R25)")
    action: Action = "void" if entity.delete == "void_if_created_by_sync" else "delete"
    if (
        action == "delete"
        and current.attempt >= VOID_AFTER
        and current.error_code
        not in {
            None,
            "610",
        }
    ):
        action = "void" if current.qbo_entity in VOIDABLE else "delete"
    return Plan(action, source_id, qbo_entity=current.qbo_entity)


_SILENT_SKIPS = frozenset({"a write is still waiting for QBO", "refused by QBO: retried later"})
"""Skips the ledger already tells: the write waiting, the refusal with its retry time."""


def _skip_recorded(plan: Plan, current: RecordState | None) -> bool:
    """Whether the ledger already holds what this skip would say, so a re-plan (a full read,
    a mapping change) adds no row: a skip already recorded, a write waiting or refused, a
    record deleted or voided in QBO (its delete is recorded, R9), a QBO record the pull
    mirrors (the pull's rows are its history)."""
    if plan.reason in _SILENT_SKIPS:
        return True
    if current is None:
        return False
    if current.status == "skipped":
        return True
    if plan.reason == _NOT_REVIVED:
        return current.status == "deleted"
    return plan.reason == _MIRRORED and current.created_by == "qbo"


def _edited_mirror(
    spec: PushSpec, source_id: SourceId, record_hash: str, current: RecordState
) -> Plan:
    """A record QBO created, which the source app mirrors, changed in the source app since
    the pull wrote it: QBO owns it, so the edit is never written there; held back so it is
    told instead of skipped in silence."""
    name = spec.entity.name
    where = f"{current.qbo_entity} {current.qbo_id}" if current.qbo_id else "a QBO record"
    return _held(
        source_id,
        record_hash,
        Violation(
            f"{name}.mirror.edited_in_source",
            f"{name} #{source_id} mirrors {where}, created in QBO, and was changed in the "
            "source app since it was pulled: the change is not written to QBO",
            "Make the change in QBO (the next pull brings it into the source app), or undo "
            "it in the source app; a pull of the record after a change in QBO replaces the "
            "source app's version.",
        ),
    )


def _held(source_id: SourceId, record_hash: str, violation: Violation) -> Plan:
    """A plan holding the record back for one reason."""
    return Plan("hold", source_id, record_hash, violations=(violation,))


def _hold_recorded(current: RecordState | None, record_hash: str | None) -> bool:
    """Whether the ledger already holds this version's hold: the record is held and the
    version held is this one (a record live in QBO keeps its synced base in ``source_hash``,
    so the held version is ``held_hash``)."""
    if current is None or current.status != "held" or record_hash is None:
        return False
    return record_hash in {current.held_hash, current.source_hash}


def _mirrored(entity: catalogue.Entity) -> bool:
    """QBO-origin source records of this entity mirror QBO (the pull writes them whole, R16,
    R20): never pushed back."""
    pull = entity.pull_spec
    return bool(pull is not None and pull.mirror)


VOIDABLE = frozenset({"Invoice", "Payment", "SalesReceipt", "BillPayment", "CreditMemo"})
VOID_AFTER = 3
"""Refused deletes (e.g. a payment still applied, which the same run may remove) are retried
as deletes this many times before the void fallback is used."""


def name_key(space: str, name: str) -> str:
    """A name as QBO compares it (:func:`qbo_pipelines.quality.rules.name_key`), within one of
    QBO's name spaces (``party``: Customer, Vendor, Employee; ``item``: Item)."""
    return f"{space}:{rules.name_key(name)}"


# --------------------------------------------------------------------------- the run


@dataclass
class PushRun:
    """Everything one push run needs; built by the caller (CLI or Dagster asset)."""

    engine: sa.Engine
    client: QboClient
    reader: SourceAppConnector
    realm_id: RealmId
    run_id: str | None
    context: PushContext
    # (entity, source id) of the records this run has planned so far, kept for entities with
    # groups only (a group's new representative is planned with the record leaving it, once)
    planned: set[tuple[str, SourceId]] = field(default_factory=set)
    # records held for a name another record of this run is renamed away from: planned again
    # once that rename is written (:func:`_follow_renames`)
    renamed_after: set[SourceId] = field(default_factory=set)
    # QBO's error -> records held because QBO could not be asked about their names (it did
    # not answer, or kept refusing for its own reasons): such a run is a failed run. Shared by
    # the copies ``dataclasses.replace`` makes of the run.
    unasked: Counter[str] = field(default_factory=Counter)


def cursor_name(entity: str) -> str:
    return feed.cursor_name(DIRECTION, entity)


@dataclass(frozen=True)
class Candidates:
    """The source records one run looks at: ``wanted`` ids (None: every record), ids deleted
    in the source, and the feed window the run covers."""

    wanted: list[SourceId] | None
    deleted: frozenset[SourceId]
    window: feed.Window | None
    replan: str | None = None
    """The re-plan marker a mapping change left (:func:`feed.replan_requested`): every
    record is read and planned, none left out as unchanged."""

    @property
    def until(self) -> int:
        return self.window.hi if self.window is not None else 0


@dataclass(frozen=True)
class RowPage:
    """One page of an entity's source row hashes (source id -> hash), and the records in it
    not in step with ``sync.record_state`` (the others are left alone as unchanged)."""

    hashes: dict[SourceId, str]
    moved: list[SourceId]

    @property
    def steady(self) -> int:
        return len(self.hashes) - len(self.moved)


def row_pages(
    engine: sa.Engine,
    reader: SourceAppConnector,
    realm_id: str,
    entity: str,
    *,
    every: bool = False,
) -> Iterator[RowPage]:
    """Every record of ``entity`` looked at the cheap way (a full re-plan, a full extract):
    Postgres hashes each source row, and only records whose row moved since they were last in
    step are to be read and planned (``every``: all of them, as after a mapping change)."""
    for page in reader.iter_row_hashes(entity, ROW_HASH_PAGE):
        hashes = dict(page)
        steady = set() if every else records.in_step(engine, realm_id, entity, hashes)
        yield RowPage(hashes, [s for s in hashes if s not in steady])


def candidates(
    engine: sa.Engine,
    reader: SourceAppConnector,
    realm_id: str,
    entity: str,
    *,
    mode: Mode = "incremental",
    source_ids: Iterable[str] | None = None,
) -> Candidates:
    """Which records a push of ``entity`` covers now (read-only: the position is not moved)."""
    if source_ids is not None:
        return Candidates(sorted(SourceId(s) for s in source_ids), frozenset(), None)
    window = feed.open_window(engine, reader, realm_id, DIRECTION, entity)
    replan = feed.replan_requested(engine, realm_id, entity)
    if mode == "full" or window.first or replan is not None:
        return Candidates(None, frozenset(), window, replan)
    again = records.ids_where(
        engine,
        realm_id,
        entity,
        "status = 'held' OR (status = 'failed' AND NOT deleted_in_source"
        " AND (retry_at IS NULL OR retry_at <= now()))"
        # a write still waiting for QBO: planned again (with what the source holds now) by
        # the run whose replay answers it, so an edit skipped meanwhile is not lost (R42)
        " OR (intent IS NOT NULL AND NOT deleted_in_source)",
    )
    changed = (set(window.changed) | set(again)) - set(window.deleted)
    return Candidates(sorted(changed), window.deleted, window)


def push_entity(
    run: PushRun,
    spec: PushSpec,
    *,
    mode: Mode = "incremental",
    source_ids: Iterable[str] | None = None,
    snapshot: staged.Snapshot | None = None,
) -> Report:
    """Push one entity for one company, as the company's only writer.

    With ``snapshot`` (a run that extracted and staged the entity: the push job), exactly the
    records the run staged are planned and written, from ``staging`` (never re-read from the
    source), the deletes are those the extract found, and the feed moves to the window the
    extract covered; ``mode`` and ``source_ids`` were applied by the extract. Without it, the
    candidates are read from the source now (tests, repairs, backfills by window).
    """
    with lock.company_writer(run.engine, run.realm_id):
        report = _push_locked(run, spec, mode=mode, source_ids=source_ids, snapshot=snapshot)
    report.unasked.update(run.unasked)
    return report


def _push_locked(
    run: PushRun,
    spec: PushSpec,
    *,
    mode: Mode,
    source_ids: Iterable[str] | None,
    snapshot: staged.Snapshot | None = None,
) -> Report:
    name = spec.entity.name
    report = Report(name, run.realm_id, run.run_id)
    writer = Writer(
        run.engine,
        run.client,
        run.realm_id,
        spec.entity,
        run.run_id,
        report,
        source_now=lambda intents: _source_now(run, spec, intents),
    )
    writer.replay_open()
    if spec.entity.pull_spec is not None:
        # a stopped pull's writes into the source: QBO's values, recorded before planning
        from qbo_pipelines.sync.pull import PullRun, settle_source_writes

        pulled = PullRun(run.engine, run.reader, run.realm_id, run.run_id, run.context)
        settle_source_writes(pulled, name)
    sends = _Sends(run, spec, report)
    if snapshot is not None:
        return _push_snapshot(run, spec, snapshot, writer, report, sends)
    todo = candidates(run.engine, run.reader, run.realm_id, name, mode=mode, source_ids=source_ids)
    if todo.replan is not None:
        run = _replanning(run)
    _carry_out(run, spec, todo.deleted, writer, report)  # first: they free names and balances
    if todo.wanted is not None and writer.replayed:
        # A source edit made while their write waited for QBO was skipped by the run that saw
        # it (the feed moved on): planned again now that the write is answered (R42).
        todo = replace(todo, wanted=sorted(set(todo.wanted) | writer.replayed))
    seen: set[SourceId] = set()
    if todo.wanted is None:
        # Everything is looked at: Postgres hashes every source row, and only records whose
        # row moved since they were last in step are read and planned.
        for page in row_pages(
            run.engine, run.reader, run.realm_id, name, every=todo.replan is not None
        ):
            seen.update(page.hashes)
            report.counts["unchanged"] += page.steady
            moved = page.moved
            if moved:
                _push_chunks(
                    run, spec, run.reader.iter_entity(name, moved, CHUNK), writer, report, sends
                )
            records.set_row_hashes(
                run.engine, run.realm_id, name, {s: page.hashes[s] for s in moved}
            )
    else:

        def wanted() -> Iterator[Sequence[Record]]:
            for chunk in run.reader.iter_entity(name, todo.wanted, CHUNK):
                seen.update(SourceId(r.source_id) for r in chunk)
                yield chunk

        _push_chunks(run, spec, wanted(), writer, report, sends)
    gone: set[SourceId] = set()
    if todo.wanted is None:
        gone |= records.source_ids(run.engine, run.realm_id, name) - seen
    elif source_ids is not None:
        gone |= set(todo.wanted) - seen
    _carry_out(run, spec, gone, writer, report)  # found only by reading everything
    _finish(run, writer, sends)
    _follow_renames(run, spec, writer, report, sends, lambda ids: run.reader.iter_entity(name, ids))
    if todo.window is not None:
        feed.advance(run.engine, run.realm_id, DIRECTION, name, todo.window)
        report.cursor = todo.until
    if todo.replan is not None:
        feed.replan_done(run.engine, run.realm_id, name, todo.replan)
    report.api_calls = sum(run.client.calls.values())
    return report


RENAME_PASSES: Final = 4
"""How many times one run plans again the records whose name a rename of the run frees (a
chain of renames A <- B <- C ... syncs in one run up to this depth; deeper, the next run
goes on)."""


def _follow_renames(
    run: PushRun,
    spec: PushSpec,
    writer: Writer,
    report: Report,
    sends: _Sends,
    read: Callable[[list[SourceId]], Iterable[Sequence[Record]]],
) -> None:
    """Plan again, once the run's writes are answered, the records held because the name they
    take is another record's until that record's rename, written by this run: the name is free
    now, so a chain of renames syncs in one run instead of one run per link. A record still
    held after a pass (its holder's rename failed, or a longer chain) stays held, with its
    reason; counts are the final outcome (a record held then written counts once)."""
    for _ in range(RENAME_PASSES):
        refused = {SourceId(f[0]) for f in report.failures}  # waits for its backoff
        ids = sorted(run.renamed_after - refused, key=_id_order)
        run.renamed_after.clear()
        if not ids:
            return
        report.counts["held_back"] -= len(ids)  # planned again: counted by this pass
        run.planned.difference_update((spec.entity.name, sid) for sid in ids)
        _push_chunks(run, spec, read(ids), writer, report, sends)
        _finish(run, writer, sends)


def _replanning(run: PushRun) -> PushRun:
    """``run`` planning every record against what QBO was sent, with the mappings as they are
    now (loaded under the company's writer lock: a change made after the run began is in)."""
    context = push_context.load(run.engine, run.reader, run.realm_id)
    return replace(run, context=replace(context, replan_all=True))


def _carry_out(
    run: PushRun, spec: PushSpec, gone: Iterable[SourceId], writer: Writer, report: Report
) -> None:
    """Source deletes, before the creates and updates of the run: a delete frees what a new
    record may take (a payment's share of an invoice's balance, a document number, a name),
    so a record deleted and entered again, or an amount moved between two receipts, syncs in
    one run. Also every earlier delete not yet carried out (state-driven)."""
    _mark_deleted(run, spec.entity.name, gone)
    _carry_out_deletes(run, spec, writer, report)


def _finish(run: PushRun, writer: Writer, sends: _Sends) -> None:
    """After the records: invoices moved by payments, the last sends, and the QBO-origin
    sales billed to the customers written (their source records carry the contact's email:
    :func:`records.mirrored_hashes`)."""
    _refresh_linked(run, writer)
    sends.flush()
    if writer.entity.name == "customers" and run.run_id is not None:
        written = records.ids_where(
            run.engine,
            run.realm_id,
            "customers",
            "last_run_id = :run AND status = 'synced'",
            run=run.run_id,
        )
        for start in range(0, len(written), CHUNK):  # bounded memory, whatever the run wrote
            hashes = records.mirrored_hashes(run.reader, written[start : start + CHUNK])
            if hashes:
                with run.engine.begin() as conn:
                    records.set_source_hashes(
                        conn, run.realm_id, "invoices", hashes, created_by="qbo"
                    )


def _push_snapshot(
    run: PushRun,
    spec: PushSpec,
    snapshot: staged.Snapshot,
    writer: Writer,
    report: Report,
    sends: _Sends,
) -> Report:
    """Plan and write exactly the records ``snapshot``'s run staged (keyset pages of
    ``staging``), carry out the deletes its extract found, and move the feed to the window the
    extract covered. A run whose staged rows another run of the company re-staged meanwhile
    (fewer rows than it staged) leaves the position where it is: the next run covers the
    window again, so nothing is skipped (re-planning unchanged records costs no QBO call)."""
    rows = 0
    report.counts["unchanged"] += snapshot.unchanged  # left out by the extract as in step
    # A mapping changed: when the extract read every record (it saw the marker), each is
    # planned against what QBO was sent; else the marker stays for the next run's extract.
    replan = feed.replan_requested(run.engine, run.realm_id, spec.entity.name)
    every = replan is not None and snapshot.full and snapshot.unchanged == 0
    if every:
        run = _replanning(run)

    def pages() -> Iterator[Sequence[Record]]:
        nonlocal rows
        for page in staged.iter_staged(run.engine, snapshot, CHUNK, every=every):
            rows += page.rows
            report.counts["unchanged"] += page.steady
            planned = _fresh(run, spec, page) if page.moved else page.records
            if planned:
                yield planned

    _carry_out(run, spec, snapshot.deleted, writer, report)
    _push_chunks(run, spec, pages(), writer, report, sends)
    _finish(run, writer, sends)
    _follow_renames(
        run,
        spec,
        writer,
        report,
        sends,
        lambda ids: [
            staged.staged_records(run.engine, run.realm_id, spec.entity.name, snapshot.run_id, ids)
        ],
    )
    if snapshot.full:
        # the records now in step keep the row hash their read took: the next full extract
        # leaves them alone while their source row stays as it is
        records.set_row_hashes_read(run.engine, run.realm_id, spec.entity.name, snapshot.run_id)
    intact = rows == snapshot.staged == snapshot.extracted
    if not intact:
        log.warning(
            "%s for %s: run %s staged %s of %s extracted records and %s are still its own;"
            " the feed position is left for the next run",
            spec.entity.name,
            run.realm_id,
            snapshot.run_id,
            snapshot.staged,
            snapshot.extracted,
            rows,
        )
    elif snapshot.feed_hi is not None:
        window = feed.Window(snapshot.feed_lo, snapshot.feed_hi, frozenset(), frozenset())
        if feed.advance(run.engine, run.realm_id, DIRECTION, spec.entity.name, window):
            report.cursor = snapshot.feed_hi
    if every and intact and replan is not None:
        feed.replan_done(run.engine, run.realm_id, spec.entity.name, replan)
    staged.record_pushed(run.engine, snapshot)
    report.api_calls = sum(run.client.calls.values())
    return report


def _fresh(run: PushRun, spec: PushSpec, page: staged.Page) -> list[Record]:
    """The page's records, those whose state the pull moved after the extract read again from
    the source now: the pull wrote QBO's values into the source and took them as the base, so
    the staged version (older) would send the values QBO replaced back to QBO. A record gone
    from the source since is left to the next run, which reads its delete."""
    now = {
        SourceId(r.source_id): r
        for chunk in run.reader.iter_entity(spec.entity.name, sorted(page.moved), CHUNK)
        for r in chunk
    }
    log.info(
        "%s for %s: %d staged records re-read (the pull wrote them after the extract)",
        spec.entity.name,
        run.realm_id,
        len(page.moved),
    )
    out: list[Record] = []
    for record in page.records:
        sid = SourceId(record.source_id)
        if sid not in page.moved:
            out.append(record)
        elif sid in now:
            out.append(now[sid])
    return out


@dataclass
class _Prepared:
    """A chunk planned ahead: its states, its plans, and QBO's answer to its names."""

    states: dict[SourceId, RecordState]
    plans: list[Plan]
    names: _Names | QboError | None = None
    reads: int = 0  # QBO queries made for the names (single calls beside the writes)


@dataclass(frozen=True)
class _Names:
    """QBO's answer for the names ``asked``: records by name key, and names no query can hold."""

    asked: frozenset[str]
    found: dict[str, list[dict[str, Any]]]
    unqueryable: set[str]


def _push_chunks(
    run: PushRun,
    spec: PushSpec,
    chunks: Iterable[Sequence[Record]],
    writer: Writer,
    report: Report,
    sends: _Sends,
) -> None:
    """The chunks as one stream of calls. Each chunk is planned (states, plans, QBO's names)
    while the one before is admitted; its calls are staged (intents stored) and start while
    the calls before it drain, so QBO's budget never waits between chunks. Every decision that
    depends on an earlier chunk's outcome stays in order: a name a record of an earlier chunk
    is still being written under counts as that record's; an invoice is sent once its create
    is recorded; a record whose write met a newer version in QBO is merged (R34), and only
    then sent, once the stream ends."""
    stream = _Stream(run, spec, writer, report, sends)
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="push-plan") as pool:
        writer.stream(
            stream.feed(_planned(pool, run, spec, chunks)),
            sends.answered,
            on_answer=stream.answered,
            lookahead=STREAM_AHEAD,
        )
    sends.record()
    sends.add(stream.deferred)


def _planned(
    pool: ThreadPoolExecutor, run: PushRun, spec: PushSpec, chunks: Iterable[Sequence[Record]]
) -> Iterator[tuple[_Prepared, bool]]:
    """Each chunk planned one ahead of the caller (only reads run ahead), with whether it is
    the last."""
    ahead: Future[_Prepared] | None = None
    for chunk in chunks:
        prepared = pool.submit(_prepare, run, spec, chunk)
        if ahead is not None:
            yield ahead.result(), False
        ahead = prepared
    if ahead is not None:
        yield ahead.result(), True


class _Stream:
    """The feed of one stream of chunks (:meth:`Writer.stream`): each chunk admitted and its
    calls staged as the calls before it run, the sends of records whose write is recorded
    in between, and names held by records still being written."""

    def __init__(
        self, run: PushRun, spec: PushSpec, writer: Writer, report: Report, sends: _Sends
    ) -> None:
        self.run, self.spec, self.writer, self.report, self.sends = run, spec, writer, report, sends
        self.claims: dict[str, tuple[str, SourceId]] = {}  # name key -> record written under it
        self.to_send: dict[SourceId, Plan] = {}  # sent once their write is recorded
        self.ready: list[Plan] = []
        self.deferred: list[Plan] = []  # merged after a 5010 first, then sent

    def feed(self, planned: Iterable[tuple[_Prepared, bool]]) -> Iterator[Dispatch | None]:
        emailed_before = 0  # sends of the chunk before, running beside this one's writes
        for prepared, last in planned:
            yield from self._sends()
            intents, plans = _admit(self.run, self.spec, prepared, self.report, self.claims)
            written = {i.source_id for i in intents}
            emailed = sum(1 for p in plans if p.send and p.send_to and p.source_id in written)
            # beside these writes: the chunk before's sends, and the next chunk's name queries
            # (about as many as this one's) or, in the last chunk, its own sends
            reserved = emailed_before + (emailed if last else prepared.reads)
            dispatches = self.writer.stage(intents, prepared.states, reserved=reserved)
            emailed_before = emailed
            for intent in intents:
                if intent.name_key:
                    self.claims[intent.name_key] = (self.spec.entity.name, intent.source_id)
            for p in plans:
                if p.send:
                    if p.source_id in written:
                        self.to_send[p.source_id] = p
                    else:
                        self.ready.append(p)
                elif p.action != "hold" and _send_waits(prepared.states.get(p.source_id)):
                    self.ready.append(p)  # the email waiting is no longer asked for
            for dispatch in dispatches:
                yield from self._sends()
                yield dispatch
        while self.writer.unanswered:
            yield from self._sends()
            yield None
        yield from self._sends()

    def answered(self, intents: Sequence[Intent], stale: set[SourceId]) -> None:
        mine = self.spec.entity.name
        for intent in intents:
            sid = intent.source_id
            if intent.name_key and self.claims.get(intent.name_key) == (mine, sid):
                del self.claims[intent.name_key]
            p = self.to_send.pop(sid, None)
            if p is not None:
                (self.deferred if sid in stale else self.ready).append(p)

    def _sends(self) -> Iterator[Dispatch]:
        if len(self.sends.answers) >= SENDS_RECORDED:
            self.sends.record()
        if self.ready:
            self.sends.add(self.ready)
            self.ready = []
        yield from self.sends.take()


def _prepare(run: PushRun, spec: PushSpec, chunk: Sequence[Record]) -> _Prepared:
    name = spec.entity.name
    if spec.group_field is not None:  # planned already, with a record that left its group
        chunk = [r for r in chunk if (name, SourceId(r.source_id)) not in run.planned]
        run.planned.update((name, SourceId(r.source_id)) for r in chunk)
    states = records.load(run.engine, run.realm_id, name, [r.source_id for r in chunk])
    now = datetime.now(UTC)
    plans = [
        plan_record(spec, r, states.get(SourceId(r.source_id)), run.context, now) for r in chunk
    ]
    more = _successors(run, spec, chunk, plans, states)
    if more:
        run.planned.update((name, SourceId(r.source_id)) for r in more)
        states.update(records.load(run.engine, run.realm_id, name, [r.source_id for r in more]))
        plans += [
            plan_record(spec, r, states.get(SourceId(r.source_id)), run.context, now) for r in more
        ]
    prepared = _Prepared(states, plans)
    space = spec.name_space
    if space is not None:
        naming = {p.name: name_key(space, p.name) for p in plans if _naming(p) and p.name}
        # names another record of ours holds are held without asking QBO (as of now: a name
        # released meanwhile is asked when the chunk is pushed)
        owned = records.name_owners(run.engine, run.realm_id, naming.values())
        names = sorted(n for n, key in naming.items() if key not in owned)
        if names:
            prepared.reads = len(QBO_NAME_TYPES[space]) * -(-len(names) // 100)
            try:
                found, unqueryable = _qbo_names(run.client, space, names)
                prepared.names = _Names(frozenset(names), found, unqueryable)
            except QboError as err:  # AuthError included: raised where the chunk is pushed
                prepared.names = err
    return prepared


def _successors(
    run: PushRun,
    spec: PushSpec,
    chunk: Sequence[Record],
    plans: Sequence[Plan],
    states: Mapping[SourceId, RecordState],
) -> list[Record]:
    """The new representatives of the groups records of this chunk leave, not planned yet in
    this run, read from the source now (R5): per group, the first record under its name (as
    QBO compares names) that is in that very group now and stands for it (another group
    spelled alike is not it). A record whose QBO record stood for a group (``spec.group_field``
    of its base) and that renames away from it hands that QBO record over to the group's new
    representative; they are planned together so the hand-over never depends on where the two
    fall in the run (before, the record that left renamed the group's QBO record after itself
    when the new representative fell in a later chunk, and the group got a second QBO one)."""
    field_, space = spec.group_field, spec.name_space
    if field_ is None or space is None or spec.named is None:
        return []
    leaving: dict[SourceId, str] = {}
    for p in plans:
        before = states.get(p.source_id)
        group = (before.source_base or {}).get(field_) if before is not None else None
        if (
            p.action == "update"
            and isinstance(group, str)
            and group.strip()
            and (p.payload or {}).get(field_) != group
            and name_key(space, p.name or "") != name_key(space, group)
        ):
            leaving[p.source_id] = group
    if not leaving:
        return []
    named = spec.named(run.reader, sorted(set(leaving.values())))
    here = {SourceId(r.source_id): r for r in chunk}
    wanted = {
        o: group
        for sid, group in leaving.items()
        for o in [o for o in named.get(rules.name_key(group), ()) if o != sid][:SUCCESSOR_PROBES]
    }
    name = spec.entity.name
    read = [o for o in wanted if o not in here and (name, o) not in run.planned]
    found = dict(here)
    found.update(
        (SourceId(r.source_id), r) for part in run.reader.iter_entity(name, read) for r in part
    )
    out: dict[SourceId, Record] = {}
    for group in set(leaving.values()):
        heir = next(
            (
                o
                for o in sorted((o for o, g in wanted.items() if g == group), key=_id_order)
                if o in found
                and spec.written_by(found[o]) is None
                and _group_now(run, spec, found[o]) == group
            ),
            None,
        )
        if heir is not None and heir not in here:
            out[heir] = found[heir]
    return [out[k] for k in sorted(out, key=_id_order)]


SUCCESSOR_PROBES = 5  # records under a group's name looked at for its new representative


def _id_order(source_id: str) -> tuple[int, str]:
    return (len(source_id), source_id)


def _naming(p: Plan) -> bool:
    return p.action in {"create", "update"} and bool(p.name)


def _admit(
    run: PushRun,
    spec: PushSpec,
    prepared: _Prepared,
    report: Report,
    claims: Mapping[str, tuple[str, SourceId]],
) -> tuple[list[Intent], list[Plan]]:
    """One chunk: names checked (``claims``: names records still being written are written
    under), held, skipped and matched records recorded; its writes' intents and its plans."""
    entity = spec.entity
    states, plans = prepared.states, prepared.plans
    if spec.name_space is not None:
        plans = _check_names(run, spec, plans, states, report, prepared.names, claims)
    held: dict[str, list[Violation]] = {
        p.source_id: list(p.violations) for p in plans if p.action == "hold" or p.violations
    }
    clean = [p.source_id for p in plans if p.source_id not in held]
    rows: list[RecordState] = []
    ledger: list[state.LedgerRow] = []
    for p in plans:
        current = states.get(p.source_id)
        if p.action == "hold" or p.violations:  # an update meanwhile: written, then held
            report.counts["held_back"] += 1
            if not _hold_recorded(current, p.record_hash):
                ledger.append(
                    _entry(
                        run,
                        entity.name,
                        p.source_id,
                        "hold",
                        "held",
                        code=p.violations[0].rule if p.violations else None,
                        message="; ".join(v.reason for v in p.violations),
                        payload_hash=p.record_hash,
                        details={
                            "violations": [
                                {"rule": v.rule, "reason": v.reason, "fix": v.fix}
                                for v in p.violations
                            ]
                        },
                    )
                )
            if p.action != "hold":
                continue  # its intent makes it pending; the answer leaves it held
            base = current or RecordState(run.realm_id, entity.name, p.source_id)
            rows.append(
                base.but(
                    status="held",
                    source_hash=p.record_hash if not base.live_in_qbo else base.source_hash,
                    held_hash=p.record_hash,
                )
            )
        elif p.action == "skip" and p.reason == "matched":
            continue  # recorded by the name check
        elif p.action == "skip":
            unchanged = p.reason in {"unchanged", "no field changed"}
            report.counts["unchanged" if unchanged else "skipped"] += 1
            if current is not None and p.reason == "no field changed":
                rows.append(current.in_step(source_hash=p.record_hash))
            elif current is not None and current.status == "held":
                live = current.live_in_qbo
                rows.append(current.in_step() if live else current.but(status="skipped"))
            if not unchanged and not _skip_recorded(p, current):
                ledger.append(
                    _entry(
                        run,
                        entity.name,
                        p.source_id,
                        "skip",
                        "skipped",
                        message=p.reason,
                        payload_hash=p.record_hash,
                    )
                )
                if current is None:
                    rows.append(
                        RecordState(
                            run.realm_id,
                            entity.name,
                            p.source_id,
                            status="skipped",
                            source_hash=p.record_hash,
                        )
                    )
    with run.engine.begin() as conn:
        records.save(conn, rows, run.run_id)
        state.append_ledger(conn, ledger)
        if held:
            quarantine.hold(conn, run.realm_id, entity.name, run.run_id, held)
        if clean:
            quarantine.release(conn, run.realm_id, entity.name, clean, run.run_id)
    # Records written were neither held, skipped nor matched above: their states as loaded
    # are current.
    intents = [i for p in plans if (i := _intent(run, spec, p, states.get(p.source_id)))]
    return intents, plans


def _source_now(
    run: PushRun, spec: PushSpec, intents: Sequence[Intent]
) -> dict[SourceId, tuple[str, dict[str, Any]]]:
    """The current source version of the intents' records, built as an update's body (the
    writer merges a 5010 with it); records gone, held back or now another QBO entity left out.
    """
    entity = {i.source_id: i.qbo_entity for i in intents}
    out: dict[SourceId, tuple[str, dict[str, Any]]] = {}
    for chunk in run.reader.iter_entity(spec.entity.name, sorted(entity), CHUNK):
        for record in chunk:
            sid = SourceId(record.source_id)
            try:
                built = spec.fields(record, run.context)
                held = bool(check(record, creating=False))
            except Exception:  # noqa: BLE001, S112 - merged with the planned version instead
                continue
            if isinstance(built, Blocked) or held or spec.qbo_entity_of(record) != entity[sid]:
                continue
            out[sid] = (content_hash(record), dict(built.body))
    return out


def _intent(run: PushRun, spec: PushSpec, p: Plan, current: RecordState | None) -> Intent | None:
    entity = spec.entity
    key = (
        name_key(spec.name_space, p.name)
        if spec.name_space and p.name
        else (current.name_key if current else None)
    )
    attempt = current.attempt if current else 0
    if p.action == "create" and p.payload is not None and p.qbo_entity:
        generation = current.source_hash if current and current.qbo_id else "new"
        rid = record_request_id(
            run.realm_id, entity.name, p.source_id, "create", generation or "new", attempt
        )
        return Intent(
            p.source_id,
            "create",
            p.qbo_entity,
            dict(p.payload),
            rid,
            p.record_hash,
            dict(p.new_base or {}),
            key,
            total=p.total,
        )
    if p.action == "update" and current is not None and p.changes is not None:
        token = current.sync_token or "0"
        rid = record_request_id(run.realm_id, entity.name, p.source_id, "update", token, attempt)
        body = {**p.changes, "Id": current.qbo_id, "SyncToken": token, "sparse": True}
        return Intent(
            p.source_id,
            "update",
            current.qbo_entity or p.qbo_entity or "",
            body,
            rid,
            p.record_hash,
            dict(p.payload or {}),
            key,
            created_by=current.created_by,
            total=p.total,
            hold=bool(p.violations),
            conflicts=p.conflicts,
            kept_qbo=() if entity.conflict == "source_wins" else p.conflicts,
        )
    return None


def _delete_intent(run: PushRun, entity: catalogue.Entity, p: Plan, current: RecordState) -> Intent:
    token = current.sync_token or "0"
    op: Literal["delete", "void"] = "void" if p.action == "void" else "delete"
    rid = record_request_id(run.realm_id, entity.name, p.source_id, op, token, current.attempt)
    qbo_entity = current.qbo_entity or entity.qbo_name
    body: dict[str, Any] = {"Id": current.qbo_id, "SyncToken": token}
    if op == "void" and qbo_entity in {"Payment", "SalesReceipt", "BillPayment"}:
        body["sparse"] = True
    return Intent(
        p.source_id,
        op,
        qbo_entity,
        body,
        rid,
        current.source_hash,
        current.source_base,
        None,
        created_by=current.created_by,
    )


def _mark_deleted(run: PushRun, entity: str, gone: Iterable[SourceId]) -> None:
    ids = sorted(set(gone))
    if not ids:
        return
    with run.engine.begin() as conn:
        conn.execute(
            sa.text(
                # the delete is a new write: the backoff of an earlier refusal (an update, an
                # email QBO would not send) does not hold it back
                "UPDATE sync.record_state SET deleted_in_source = true, retry_at = NULL,"
                " send_retry_at = NULL, updated_at = now()"
                " WHERE realm_id = :r AND entity = :e AND source_id = ANY(:ids)"
                " AND NOT deleted_in_source"
            ),
            {"r": run.realm_id, "e": entity, "ids": ids},
        )
        conn.execute(
            sa.text(
                "UPDATE sync.quarantine SET resolved_at = now() WHERE realm_id = :r"
                " AND entity = :e AND source_id = ANY(:ids) AND resolved_at IS NULL"
            ),
            {"r": run.realm_id, "e": entity, "ids": ids},
        )
        quarantine.resolve_notifications(conn, run.realm_id, entity, ids)


def _carry_out_deletes(run: PushRun, spec: PushSpec, writer: Writer, report: Report) -> None:
    """Every source delete not yet carried out (state-driven: a delete whose first try failed
    or whose run died is found again here, never lost)."""
    entity = spec.entity
    todo = records.where(
        run.engine,
        run.realm_id,
        entity.name,
        "deleted_in_source AND status <> 'deleted' AND intent IS NULL"
        # a record never in QBO needs no call: its delete is recorded now, whatever backoff
        # its refused create was waiting out
        " AND (retry_at IS NULL OR retry_at <= now() OR qbo_id IS NULL)",
    )
    if not todo:
        return
    intents: list[Intent] = []
    done: list[RecordState] = []
    ledger: list[state.LedgerRow] = []
    for current in todo:
        p = plan_delete(entity, current)
        if p.action in {"delete", "void"}:
            intents.append(_delete_intent(run, entity, p, current))
            continue
        report.counts["skipped"] += 1
        # retired: its name is free for a record entered again, which takes over the link
        done.append(current.but(status="deleted", name_key=None))
        ledger.append(
            _entry(
                run,
                entity.name,
                p.source_id,
                "skip",
                "skipped",
                qbo_id=current.qbo_id,
                message=p.reason,
            )
        )
    with run.engine.begin() as conn:
        records.save(conn, done, run.run_id)
        state.append_ledger(conn, ledger)
    writer.write(intents, {SourceId(c.source_id or ""): c for c in todo})


# --------------------------------------------------------------------------- names (R5, R10)


QBO_NAME_TYPES: dict[str, tuple[tuple[str, str], ...]] = {
    "party": (("Customer", "DisplayName"), ("Vendor", "DisplayName"), ("Employee", "DisplayName")),
    "item": (("Item", "Name"),),
}


RENAME_FIX = (
    "Rename one of the two in the source app (or merge them); the next run syncs the renamed one."
)


def _across_fix(owner: tuple[str, SourceId]) -> str:
    """The fix of a name held in QBO by a record of another entity of the name space (QBO's
    customers, vendors and employees share names): renamed in the source too, the two swap
    names, which QBO cannot take at once and the engine turns only within one entity."""
    return (
        f"{RENAME_FIX} If {owner[0]} #{owner[1]} was renamed away from this name in the source "
        "app (the two swap names across entities that share QBO's names), give one of the two "
        "a temporary name in the source app for one run, then its new name."
    )


def _rule_prefix(entity: str) -> str:
    """The rule id prefix of a name check (``customer.display_name``), from the catalogue."""
    row = catalogue.entity(entity)
    return f"{row.kind}.{row.label_field or 'name'}"


def _collision(entity: str, source_id: str, name: str, other: str, fix: str) -> Violation:
    return Violation(
        f"{_rule_prefix(entity)}.duplicate",
        f"{entity} #{source_id} '{name}': {other}, and QBO treats names that differ only in "
        "case or surrounding spaces as one",
        fix,
    )


RenameWait = Literal["chain", "cycle", "first"]
"""Why a record held for a name another rename of the run frees waits: behind a rename written
now (``chain``), or in a ring of renames (each takes the next one's name), whose ``first``
member gives its name up under a temporary one."""


def _renamed_away(
    entity: str,
    keys: Mapping[SourceId, str],
    owners: Mapping[str, tuple[str, SourceId]],
    verdict: Mapping[SourceId, Plan],
) -> dict[SourceId, tuple[Violation, RenameWait]]:
    """Records held for a name another record of ours holds in QBO, when that record is renamed
    away from it in the same chunk: why they wait, and how they go on in this run
    (:func:`_follow_renames` plans them again once the renames before them are written). A
    ring of renames (two records swapping names, or more going round) starts with its lowest
    id taking a temporary name. Records whose holder keeps the name, or is held for another
    reason, keep their collision."""

    def holder_of(sid: SourceId) -> SourceId | None:
        owner = owners.get(keys[sid])
        if owner is None or owner[0] != entity or owner[1] == sid:
            return None
        holder = owner[1]
        return holder if holder in keys and keys[holder] != keys[sid] else None

    out: dict[SourceId, tuple[Violation, RenameWait]] = {}
    for sid, plan in verdict.items():
        holder = holder_of(sid)
        if holder is None:
            continue
        path: list[SourceId] = [sid]
        end: SourceId | None = holder
        while end is not None and end not in path:
            path.append(end)
            end = holder_of(end)
        if end == sid:  # a ring: every name in it is taken by the next one
            ring = sorted(path, key=_id_order)
            names = ", ".join(f"#{m}" for m in ring)
            first = sid == ring[0]
            out[sid] = (
                _collision(
                    entity,
                    sid,
                    plan.name or "",
                    f"its name goes round with {entity} {names} (each takes the next one's), "
                    "and QBO cannot rename them into each other's names at once",
                    f"Nothing to do: {entity} #{ring[0]} takes a temporary name first, then "
                    "each takes its new name, in this run.",
                ),
                "first" if first else "cycle",
            )
        elif end is not None or path[-1] not in verdict:
            # behind a rename written now, or behind a ring this run turns
            out[sid] = (
                _collision(
                    entity,
                    sid,
                    plan.name or "",
                    f"{entity} #{holder} has this name in QBO until its own rename, written by "
                    "this run",
                    "Nothing to do: the name is free once that rename is written, and the run "
                    "then writes this record.",
                ),
                "chain",
            )
    return out


TEMPORARY_NAMES: Final = 5
"""Temporary names tried for the record that starts a ring of renames, in order."""


def _unasked(run: PushRun, err: QboError, records: int) -> None:
    """Count records held because QBO could not be asked about them: it gave no answer or a
    server error after the client's retries, or kept throttling (not a refusal of the query)."""
    if isinstance(err, ServerError | ThrottledError):
        run.unasked[str(err)] += records


def _temporary_names(entity: str, sid: SourceId) -> list[str]:
    """``<entity> <id> (renaming)``, then ``(renaming 2)`` ...: the names one ring member may
    take for a moment."""
    first = f"{entity} {sid} (renaming)"
    return [first, *(f"{entity} {sid} (renaming {n})" for n in range(2, TEMPORARY_NAMES + 1))]


def _with_temporary_names(
    run: PushRun,
    spec: PushSpec,
    firsts: Mapping[SourceId, Plan],
    states: Mapping[SourceId, RecordState],
) -> dict[SourceId, Plan]:
    """The records that start a ring of renames, each written under the first of its
    temporary names that nothing holds (checked as every name is: QBO's records of the name
    space, and ours), or held with the reason when none is free or QBO cannot be asked."""
    space = spec.name_space or ""
    entity = spec.entity.name
    tries = {sid: _temporary_names(entity, sid) for sid in firsts}
    names = [n for found in tries.values() for n in found]
    try:
        in_qbo, _ = _qbo_names(run.client, space, names)
    except AuthError:
        raise
    except QboError as err:
        _unasked(run, err, len(firsts))
        return {
            sid: _hold(
                held,
                Violation(
                    f"{_rule_prefix(entity)}.lookup_failed",
                    f"{entity} #{sid}: QBO's names could not be checked before a temporary "
                    f"rename ({err})",
                    "Nothing to do: the next run checks again and syncs the record.",
                ),
            )
            for sid, held in firsts.items()
        }
    ours = records.name_owners(run.engine, run.realm_id, [name_key(space, n) for n in names])
    out: dict[SourceId, Plan] = {}
    for sid, held in firsts.items():
        current = states.get(sid)
        own = current.qbo_id if current is not None else None

        def taken(name: str, sid: SourceId = sid, own: QboId | None = own) -> bool:
            key = name_key(space, name)
            others = [h for h in in_qbo.get(key, []) if str(h["Id"]) != own]
            return bool(others) or ours.get(key, (entity, sid)) != (entity, sid)

        free = next((n for n in tries[sid] if not taken(n)), None)
        if free is None:
            out[sid] = _hold(
                held,
                _collision(
                    entity,
                    sid,
                    held.name or "",
                    f"it starts a ring of renames, and its temporary names ('{tries[sid][0]}' "
                    f"... '{tries[sid][-1]}') are all taken in QBO",
                    f"Rename the QBO records named '{tries[sid][0]}' and alike, or give one "
                    "record of the ring another name in the source app for one run.",
                ),
            )
        else:
            out[sid] = _temporary_name(spec, held, current, free)
    return out


def _temporary_name(
    spec: PushSpec, held: Plan, current: RecordState | None, temporary: str
) -> Plan:
    """A held record that starts a ring of renames, written meanwhile under ``temporary`` so
    the next one can take its name; it stays held, and the run gives it its new name once the
    name it takes is free."""
    field = spec.match_field
    if field is None or current is None or not current.live_in_qbo or held.payload is None:
        return held
    body = {**held.payload, field: temporary}
    changes = _changes(body, current, held.qbo_entity or "")
    if not changes:
        return held
    return replace(held, action="update", payload=body, changes=changes, name=temporary)


def _check_names(
    run: PushRun,
    spec: PushSpec,
    plans: list[Plan],
    states: dict[SourceId, RecordState],
    report: Report,
    asked: _Names | QboError | None = None,
    claims: Mapping[str, tuple[str, SourceId]] | None = None,
) -> list[Plan]:
    """Names the way QBO sees them, before writing (``asked``: QBO's answer for these names,
    looked up while the chunk before was written; ``claims``: names records still being
    written are written under, held by them as if written): creates and renames that would collide
    with another record of ours or with a QBO record are held with a reason and a fix; a
    create whose exact name exists in QBO (unlinked) is matched instead (R5, R10)."""
    space = spec.name_space or ""
    entity = spec.entity.name
    naming = [p for p in plans if _naming(p)]
    if not naming:
        return plans
    keys = {p.source_id: name_key(space, p.name or "") for p in naming}
    held_now = claims or {}
    owners = {k: held_now[k] for k in keys.values() if k in held_now}
    owners.update(records.name_owners(run.engine, run.realm_id, keys.values()))
    handing, released = _handing_over(run, spec, keys, owners, naming)
    verdict: dict[SourceId, Plan] = {}
    claimed: dict[str, SourceId] = {}
    for p in sorted(naming, key=lambda x: _id_order(x.source_id)):
        key = keys[p.source_id]
        owner = owners.get(key)
        other, fix = None, RENAME_FIX
        if owner is not None and owner == (entity, handing.get(p.source_id)):
            claimed[key] = p.source_id  # the record it now stands for hands its name over
        elif owner is not None and owner != (entity, p.source_id):
            other = f"{owner[0]} #{owner[1]} already has this name in QBO"
            fix = RENAME_FIX if owner[0] == entity else _across_fix(owner)
        elif key in claimed:
            other = f"{entity} #{claimed[key]} has the same name in this run"
        if other is not None:
            verdict[p.source_id] = _hold(
                p,
                _collision(entity, p.source_id, p.name or "", other, fix),
            )
        else:
            claimed[key] = p.source_id
    planned = {p.source_id: p for p in naming}
    firsts: dict[SourceId, Plan] = {}
    for sid, (why, wait) in _renamed_away(entity, keys, owners, verdict).items():
        verdict[sid] = _hold(planned[sid], why)
        if wait == "first":
            firsts[sid] = verdict[sid]
        run.renamed_after.add(sid)
    if firsts:
        verdict.update(_with_temporary_names(run, spec, firsts, states))
    lookups = [p for p in naming if p.source_id not in verdict]
    try:
        if isinstance(asked, QboError):
            raise asked
        found, unqueryable = _answer(run, space, [p.name or "" for p in lookups], asked)
    except AuthError:
        raise
    except QboError as err:
        # The name check could not ask QBO: nothing of this chunk is created or renamed now
        # (held, with the reason); the next run asks again (R31).
        _unasked(run, err, len(lookups))
        for p in lookups:
            verdict[p.source_id] = _hold(
                p,
                Violation(
                    f"{_rule_prefix(entity)}.lookup_failed",
                    f"{entity} #{p.source_id}: QBO's names could not be checked before "
                    f"writing ({err})",
                    "Nothing to do: the next run checks again and syncs the record.",
                ),
            )
        return [verdict.get(p.source_id, p) for p in plans]
    matched: list[RecordState] = []
    hits_to_check = {str(hit["Id"]) for p in lookups for hit in found.get(keys[p.source_id], [])}
    linked = records.mapped_qbo_ids(run.engine, run.realm_id, spec.entity.qbo_name, hits_to_check)
    retired = records.retired_links(run.engine, run.realm_id, spec.entity.qbo_name, hits_to_check)
    taken_over: dict[SourceId, SourceId] = {}  # new record -> the retired one it replaces
    handed: dict[SourceId, SourceId] = {}  # record -> the one it now stands for, whose link
    for p in lookups:
        if (p.name or "") in unqueryable:
            verdict[p.source_id] = _hold(
                p,
                Violation(
                    f"{_rule_prefix(entity)}.unqueryable",
                    f"{entity} #{p.source_id}: the name {p.name!r} cannot be looked up in QBO",
                    "Remove control characters from the name in the source app.",
                ),
            )
            continue
        current = states.get(p.source_id)
        own = current.qbo_id if current else None
        hits = [
            h
            for h in found.get(keys[p.source_id], [])
            if str(h["Id"]) != own or h["_type"] != spec.entity.qbo_name
        ]
        if not hits:
            continue
        giver = handing.get(p.source_id)
        exact = [
            h
            for h in hits
            if h["_type"] == spec.entity.qbo_name
            and h.get(spec.match_field or "") == p.name
            and (
                str(h["Id"]) not in linked
                or str(h["Id"]) in retired
                or (giver is not None and linked[str(h["Id"])][1] == giver)
            )
        ]
        if (p.action == "create" or giver is not None) and exact:
            hit = exact[0]
            if str(hit["Id"]) in retired:
                taken_over[p.source_id] = retired.pop(str(hit["Id"]))
            elif giver is not None and str(hit["Id"]) in linked:
                handed[p.source_id] = giver
            matched.append(_matched_state(run, spec, p, hit, current, keys[p.source_id]))
            report.counts["matched"] += 1
            verdict[p.source_id] = replace(p, action="skip", reason="matched")
            continue
        hit = hits[0]
        if str(hit["Id"]) in linked and hit["_type"] == spec.entity.qbo_name:
            other_sid = linked[str(hit["Id"])][1]
            other = (
                f"QBO {hit['_type']} {hit['Id']} '{hit.get(spec.match_field or '')}' is "
                f"already linked to {entity} #{other_sid}"
            )
        else:
            other = (
                f"QBO already has {hit['_type']} {hit['Id']} "
                f"'{hit.get(QBO_NAME_TYPES[space][0][1]) or hit.get('Name')}'"
            )
        verdict[p.source_id] = _hold(
            p,
            _collision(
                entity,
                p.source_id,
                p.name or "",
                other,
                "Rename the record in the source app, or rename or merge the QBO record; the next "
                "run retries.",
            ),
        )
    for y, x in released.items():
        # the link moved: the record that left writes nothing under it (unless it took another
        # group's link over itself: it moved from one group to the other)
        if y in handed and x not in handed:
            verdict[x] = _hold(
                next(p for p in plans if p.source_id == x),
                Violation(
                    f"{_rule_prefix(entity)}.handed_over",
                    f"{entity} #{x}: its QBO record stands for a group it has left; {entity} "
                    f"#{y}, which stands for that group now, takes it over",
                    "Nothing to do: the next run matches or creates this record on its own.",
                ),
            )
    out = [verdict.get(p.source_id, p) for p in plans]
    if matched:
        for sid, unlinked in _save_matched(run, spec, matched, taken_over, handed, states):
            states[sid] = unlinked  # held or skipped below with the link gone
    return out


def _handing_over(
    run: PushRun,
    spec: PushSpec,
    keys: Mapping[SourceId, str],
    owners: Mapping[str, tuple[str, SourceId]],
    naming: Sequence[Plan],
) -> tuple[dict[SourceId, SourceId], dict[SourceId, SourceId]]:
    """Records whose name another record of ours holds in QBO that should take that record's
    QBO link over instead of being held as a collision: record -> the holder; and, of those,
    the holders released (planned in this chunk, to be matched or created on their own next).

    An organisation's QBO customer is its lowest-id contact's (R5). When a contact with a lower
    id joins, the holder is now written through the joining contact: the link moves to it (before,
    the name was held as a collision and the organisation's invoices billed the joining
    contact's own customer). When the contact that stands for it leaves, its QBO record stood
    for the group (``spec.group_field``) it no longer stands for, and the group's new
    representative wants that name: the link moves to the new representative, and the contact
    that left is matched or created under its own name by the next run, or, when it joined
    another group whose representative is another contact, is written through that one (before,
    both were held as collisions, for good)."""
    entity = spec.entity.name
    holders = {
        p: owners[k][1]
        for p, k in keys.items()
        if k in owners and owners[k][0] == entity and owners[k][1] != p
    }
    held = records.load(run.engine, run.realm_id, entity, sorted(set(holders.values())))
    holders = {  # a link with a write in flight moves only once the write is answered
        p: h for p, h in holders.items() if h in held and held[h].intent is None and held[h].qbo_id
    }
    if not holders:
        return {}, {}
    now = {
        SourceId(r.source_id): r
        for chunk in run.reader.iter_entity(entity, sorted(set(holders.values())))
        for r in chunk
    }
    handing = {p: h for p, h in holders.items() if h in now and spec.written_by(now[h]) == str(p)}
    released: dict[SourceId, SourceId] = {}
    field = spec.group_field
    planned = {p.source_id: p for p in naming}
    for p, h in holders.items():
        if p in handing or field is None or h not in now:
            continue
        mine = planned[p]
        group = (mine.payload or {}).get(field)
        if group is None or group != mine.name or (held[h].source_base or {}).get(field) != group:
            continue  # this record does not stand for the group the holder's QBO record stood for
        if _group_now(run, spec, now[h]) == group:
            continue  # still in it: two groups under one name (a collision)
        if spec.written_by(now[h]) is not None:
            handing[p] = h  # moved to another group, which another record stands for
        elif h in planned and keys.get(h) != keys[p]:
            handing[p] = released[p] = h  # stands for itself now, under another name
    return handing, released


def _group_now(run: PushRun, spec: PushSpec, record: Record) -> Any:
    """The group (``spec.group_field`` of its body) a source record is in now, if any."""
    built = spec.fields(record, run.context)
    return None if isinstance(built, Blocked) else built.body.get(spec.group_field or "")


def _save_matched(
    run: PushRun,
    spec: PushSpec,
    matched: Sequence[RecordState],
    taken_over: Mapping[SourceId, SourceId],
    handed: Mapping[SourceId, SourceId],
    states: Mapping[SourceId, RecordState],
) -> list[tuple[SourceId, RecordState]]:
    """Records matched to QBO records by name, with the ledger; a match of a QBO record that
    a retired record (deleted in the source, kept in QBO: R9) or a record now written through
    the new one (``handed``) was linked to moves the link to the new record, in the same
    transaction (one QBO record, one source record). A record whose link moves from its own
    QBO record has what referenced that record planned again (``spec.referenced_by``)."""
    entity = spec.entity.name
    released: list[str] = []
    parked: list[RecordState] = []
    ledger = []
    takers = {m.qbo_id: SourceId(m.source_id or "") for m in matched}
    for m in matched:
        sid = SourceId(m.source_id or "")
        old = taken_over.get(sid)
        note = (
            f"; it was linked to {entity} #{old}, deleted in the source (the link moves here)"
            if old is not None
            else ""
        )
        if sid in handed:
            before = states.get(sid)
            own = before if before is not None and before.qbo_id not in (None, m.qbo_id) else None
            heir = takers.get(own.qbo_id) if own is not None else None
            note = f"; it was linked to {entity} #{handed[sid]}, which this record now stands for"
            note += " (the link moves here)"
            if own is not None and heir is not None:  # a group it left: its new representative
                note += (
                    f"; QBO {m.qbo_entity} {own.qbo_id}, linked to this record until now, moves"
                    f" to {entity} #{heir}"
                )
            elif own is not None:
                note += (
                    f"; QBO {m.qbo_entity} {own.qbo_id}, linked to this record until now, is"
                    " kept as a retired record's (its transactions move with the source's; the"
                    " record takes it back when it stands for itself again)"
                )
            if own is not None and own.qbo_id:
                released.append(own.qbo_id)
                if heir is None:
                    parked.append(_parked(run, own))
            giver = states.get(handed[sid])
            if giver is not None and giver.qbo_id:  # its records bill another customer now
                released.append(giver.qbo_id)
        ledger.append(
            _entry(
                run,
                entity,
                m.source_id,
                "match",
                "ok",
                qbo_id=m.qbo_id,
                message=f"matched existing QBO {m.qbo_entity} by exact name{note}",
            )
        )
    with run.engine.begin() as conn:
        records.unlink_retired(conn, run.realm_id, entity, list(taken_over.values()))
        unlinked = records.unlink_written_through(conn, run.realm_id, entity, list(handed.values()))
        records.save(conn, matched, run.run_id)
        records.save(conn, parked, run.run_id)  # after: the matched rows freed their links
        records.forget_referencing(conn, run.realm_id, spec.referenced_by, released)
        state.append_ledger(conn, ledger)
    moved = set(takers.values())
    return [
        (SourceId(u.source_id or ""), u)
        for u in unlinked
        if u.source_id in states and u.source_id not in moved
    ]


def _parked(run: PushRun, before: RecordState) -> RecordState:
    """A record's own QBO record, left behind when the record takes another one over, kept as
    a retired record's (R9: deleted in the source, kept in QBO). It is linked to no source
    record, so the pull never takes it for a new QBO record to copy into the source app (a
    duplicate contact), and the record takes it back by name when it stands for itself again.
    Its source id names it: ``released:<QBO id>``."""
    return RecordState(
        run.realm_id,
        before.entity,
        SourceId(f"released:{before.qbo_id}"),
        qbo_entity=before.qbo_entity,
        qbo_id=before.qbo_id,
        created_by=before.created_by,
        status="deleted",
        qbo_base=before.qbo_base,
        qbo_hash=before.qbo_hash,
        sync_token=before.sync_token,
        qbo_updated_at=before.qbo_updated_at,
        deleted_in_source=True,
    )


def _entry(
    run: PushRun, entity: str, source_id: str | None, operation: str, outcome: str, **kw: Any
) -> state.LedgerRow:
    """A push ledger row of this run (R37)."""
    return ledger_row(run.realm_id, entity, run.run_id, source_id, operation, outcome, **kw)


def _hold(p: Plan, violation: Violation) -> Plan:
    return replace(p, action="hold", violations=(*p.violations, violation))


def _matched_state(
    run: PushRun,
    spec: PushSpec,
    p: Plan,
    hit: Mapping[str, Any],
    current: RecordState | None,
    key: str,
) -> RecordState:
    payload = dict(p.new_base or {})
    qbo_base = diff.project(
        hit, diff.template(MANAGED_FIELDS.get(spec.entity.qbo_name, ()), payload)
    )
    base = current or RecordState(run.realm_id, spec.entity.name, p.source_id)
    # The base on both sides is what each holds now: fields QBO lacks are filled by the next
    # change in the source, never by overwriting the match now (R6, R25).
    return base.but(
        qbo_entity=spec.entity.qbo_name,
        qbo_id=QboId(str(hit["Id"])),
        created_by="matched",
        status="synced",
        source_hash=p.record_hash,
        source_base=payload,
        qbo_base=qbo_base,
        qbo_hash=diff.body_hash(qbo_base),
        sync_token=str(hit.get("SyncToken", "0")),
        qbo_updated_at=last_updated(hit),
        name_key=key,
        attempt=0,
        last_synced_at=datetime.now(UTC),
    )


def _answer(
    run: PushRun, space: str, names: Sequence[str], asked: _Names | None
) -> tuple[dict[str, list[dict[str, Any]]], set[str]]:
    """QBO's records for ``names``: what was asked ahead, and the rest asked now."""
    if asked is None:
        return _qbo_names(run.client, space, names)
    rest = [n for n in names if n not in asked.asked]
    if not rest:
        return asked.found, asked.unqueryable
    found, unqueryable = _qbo_names(run.client, space, rest)
    merged = {k: list(v) for k, v in asked.found.items()}
    for k, v in found.items():
        merged.setdefault(k, []).extend(v)
    return merged, asked.unqueryable | unqueryable


def _qbo_names(
    client: QboClient, space: str, names: Sequence[str]
) -> tuple[dict[str, list[dict[str, Any]]], set[str]]:
    """QBO records of the name space whose name QBO would treat as one of ``names``."""
    found: dict[str, list[dict[str, Any]]] = {}
    unqueryable: set[str] = set()
    wanted = sorted({n for n in names if n})
    queryable: list[str] = []
    for n in wanted:
        try:
            q.quote_string(n)
            queryable.append(n)
        except q.QueryBuildError:
            unqueryable.add(n)
    variants = sorted({v for n in queryable for v in (n, n.strip())})
    for qbo_entity, field_name in QBO_NAME_TYPES[space]:
        for i in range(0, len(variants), 100):
            chunk = tuple(variants[i : i + 100])
            for row in client.query_all(qbo_entity, [q.in_(field_name, chunk)]):
                value = row.get(field_name)
                if isinstance(value, str):
                    found.setdefault(name_key(space, value), []).append(
                        {**row, "_type": qbo_entity}
                    )
    return found, unqueryable


# --------------------------------------------------------------------------- after writes


def _refresh_linked(run: PushRun, writer: Writer) -> None:
    """Payments change their invoices in QBO (Balance, LinkedTxn, SyncToken). Re-read those
    invoices and adopt the new SyncToken only when the fields we manage are as we left them; a
    bookkeeper's concurrent edit keeps the old token, so the next update meets QBO's 5010 and
    is merged three-way instead of overwriting it (R34). A page of 1000 invoices at a time
    (one query, their states, one save): memory holds one page, not every invoice paid."""
    linked = sorted({txn_id for kind, txn_id in writer.linked if kind == "Invoice"})
    for start in range(0, len(linked), PAGE_SIZE):
        _refresh_page(run, linked[start : start + PAGE_SIZE])


def _refresh_page(run: PushRun, ids: list[str]) -> None:
    try:
        fresh = run.client.read_many("Invoice", [QboId(i) for i in ids])
    except AuthError:
        raise
    except QboError as err:
        # Tokens stay as they were: the next update meets QBO's 5010 and merges (R34).
        log.warning("could not re-read %d invoices after payments: %s", len(ids), err)
        return
    with run.engine.connect() as conn:
        rows: list[SourceId] = list(
            conn.execute(
                sa.text(
                    "SELECT source_id FROM sync.record_state WHERE realm_id = :r AND entity ="
                    " 'invoices' AND qbo_entity = 'Invoice' AND qbo_id = ANY(:ids)"
                ),
                {"r": run.realm_id, "ids": ids},
            )
            .scalars()
            .all()
        )
    states = records.load(run.engine, run.realm_id, "invoices", rows)
    updated: list[RecordState] = []
    for st in states.values():
        now = fresh.get(QboId(st.qbo_id or ""))
        if now is None or st.intent is not None:
            continue
        projected = diff.project(
            now, diff.template(MANAGED_FIELDS.get("Invoice", ()), st.source_base)
        )
        if diff.body_hash(projected) == st.qbo_hash:
            updated.append(
                st.but(
                    sync_token=str(now.get("SyncToken", st.sync_token)),
                    qbo_updated_at=last_updated(now),
                )
            )
    with run.engine.begin() as conn:
        records.save(conn, updated, run.run_id)


SEND_TITLE = "QuickBooks did not email an invoice"


def _send_waits(st: RecordState | None) -> bool:
    return st is not None and st.send_waiting


def _send_refused(st: RecordState, err: QboError, now: datetime) -> RecordState:
    """QBO did not email an invoice that is synced: failed (for the send only) with a fix, and
    tried again when due; a sandbox company's daily email cap waits for the next day."""
    attempt = st.attempt + 1
    if "emails a day" in f"{err.message} {err.detail}":
        fix = (
            "QBO's sandbox companies send at most 40 emails a day: the rest are emailed "
            "automatically on the following days"
        )
        retry_at = now + timedelta(days=1)
    else:
        fix = fix_for(err)
        retry_at = now + retry_delay(attempt)
    return st.but(
        status="failed",
        attempt=attempt,
        error_code=err.code or None,
        error_message=f"{records.SEND_REFUSED}: {err}",
        fix=fix,
        retry_at=retry_at,
        send_retry_at=retry_at,
    )


def _sends_for(
    run: PushRun, spec: PushSpec, plans: Sequence[Plan], report: Report
) -> list[tuple[Dispatch, RecordState]]:
    """R18: once synced, QBO emails the invoice to the billing email held in the source; with
    no billing email the invoice is only copied to QBO. Each invoice is sent once."""
    if not plans:
        return []
    entity = spec.entity
    states = records.load(run.engine, run.realm_id, entity.name, [p.source_id for p in plans])
    rows: list[RecordState] = []
    ledger: list[state.LedgerRow] = []
    now = datetime.now(UTC)
    to_send: list[tuple[Dispatch, RecordState]] = []
    for p in plans:
        st = states.get(p.source_id)
        if st is None or not st.live_in_qbo or st.sent_at is not None or st.intent is not None:
            continue
        if not p.send:  # asked no more (or no billing email now): nothing waits for QBO
            rows.append(st.but(send_retry_at=None).in_step())
            continue
        if st.status == "failed" and st.retry_at is not None and st.retry_at > now:
            continue
        if not p.send_to:
            report.counts["copied"] += 1
            ledger.append(
                _entry(
                    run,
                    entity.name,
                    p.source_id,
                    "send",
                    "skipped",
                    qbo_id=st.qbo_id,
                    message="no billing email: copied to QBO, not emailed",
                )
            )
            copied = st.but(sent_at=datetime.now(UTC), sent_to=None, send_retry_at=None)
            rows.append(copied.in_step() if st.send_waiting else copied)
            continue
        rid = derive_request_id(
            "send",
            run.realm_id,
            entity.name,
            p.source_id,
            st.qbo_id or "",
            p.send_to,
            f"attempt={st.attempt}",
        )
        op = BatchOp.send(
            st.qbo_entity or entity.qbo_name,
            QboId(st.qbo_id or ""),
            rid,
            send_to=p.send_to,
            key=st.source_id,
        )
        to_send.append((Dispatch.one(op), st))
    _save_sends(run, spec, rows, ledger)
    return to_send


def _record_sends(
    run: PushRun,
    spec: PushSpec,
    answered: Sequence[tuple[Dispatch, list[BatchResult], RecordState]],
    report: Report,
) -> None:
    """Record what QBO did with each send (emailed, or refused with a fix and a retry time)."""
    entity = spec.entity
    rows: list[RecordState] = []
    ledger: list[state.LedgerRow] = []
    now = datetime.now(UTC)
    for dispatch, results, st in answered:
        op, result = dispatch.ops[0], results[0]
        if result.error is not None:
            err = result.error
            report.counts["send_failed"] += 1
            rows.append(_send_refused(st, err, now))
            ledger.append(
                _entry(
                    run,
                    entity.name,
                    str(st.source_id),
                    "send",
                    "failed",
                    qbo_id=st.qbo_id,
                    request_id=op.request_id,
                    error=err,
                    details={"fix": rows[-1].fix, "retry_at": rows[-1].retry_at},
                )
            )
            continue
        report.counts["sent"] += 1
        token = (result.entity or {}).get("SyncToken")
        rows.append(
            st.cleared(
                sent_at=datetime.now(UTC),
                sent_to=op.send_to,
                sync_token=str(token) if token is not None else st.sync_token,
                status="synced" if st.status == "failed" else st.status,
            )
        )
        ledger.append(
            _entry(
                run,
                entity.name,
                str(st.source_id),
                "send",
                "ok",
                qbo_id=st.qbo_id,
                request_id=op.request_id,
                message=f"emailed by QBO to {op.send_to}",
            )
        )
    _save_sends(run, spec, rows, ledger)


def _save_sends(
    run: PushRun, spec: PushSpec, rows: Sequence[RecordState], ledger: Sequence[state.LedgerRow]
) -> None:
    entity = spec.entity
    with run.engine.begin() as conn:
        records.save(conn, rows, run.run_id)
        state.append_ledger(conn, ledger)
        for row in rows:
            sid = str(row.source_id)
            if row.status == "failed":
                quarantine.notify_failure(
                    conn,
                    run.realm_id,
                    entity.name,
                    sid,
                    title=SEND_TITLE,
                    reason=f"{entity.name} #{sid}: {row.error_message}",
                    fix=row.fix,
                )
            elif row.sent_at is not None:
                quarantine.resolve_notifications(
                    conn, run.realm_id, entity.name, [sid], title=SEND_TITLE
                )


class _Sends:
    """Invoice sends (R18), each a single call QBO cannot batch, that run in the stream of
    writes once their invoice's write is recorded (batches and single calls overlap within the
    budget); those left when the stream ends go out on their own."""

    def __init__(self, run: PushRun, spec: PushSpec, report: Report) -> None:
        self.run, self.spec, self.report = run, spec, report
        self.waiting: dict[str, tuple[Dispatch, RecordState]] = {}
        self.taken: dict[str, tuple[Dispatch, RecordState]] = {}
        self.answers: list[tuple[Dispatch, list[BatchResult], RecordState]] = []

    def add(self, plans: Sequence[Plan]) -> None:
        for d, st in _sends_for(self.run, self.spec, plans, self.report):
            self.waiting[d.request_id] = (d, st)

    def take(self) -> list[Dispatch]:
        taken = list(self.waiting.values())
        self.taken.update(self.waiting)
        self.waiting = {}
        return [d for d, _ in taken]

    def answered(self, dispatch: Dispatch, results: list[BatchResult]) -> None:
        self.answers.append((dispatch, results, self.taken.pop(dispatch.request_id)[1]))

    def record(self) -> None:
        _record_sends(self.run, self.spec, self.answers, self.report)
        self.answers = []

    def flush(self) -> None:
        for dispatch, results in self.run.client.execute(self.take()):
            self.answered(dispatch, results)
        self.record()


__all__ = [
    "Candidates",
    "Plan",
    "PushReport",
    "PushRun",
    "PushSpec",
    "candidates",
    "cursor_name",
    "plan_delete",
    "plan_record",
    "push_entity",
]
