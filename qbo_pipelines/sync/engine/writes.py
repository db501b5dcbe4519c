"""Intent -> write -> record: every write to QBO, idempotent per record (R33, R37, R31).

1. **Intent.** Each record write is an :class:`Intent` with a requestid derived from (company,
   entity, record, base version, attempt): the base version is the SyncToken for updates,
   deletes and voids and the record's generation for creates; ``attempt`` counts QBO's
   definite refusals, so an unchanged retry after a refusal really executes.
2. **Dispatch.** Intents go out in calls of up to 30 (one batch request each). Before the call,
   the intents and the call's exact operations are committed (``sync.record_state.intent``,
   ``sync.dispatches``: :meth:`Writer.stage`). Calls run as one stream per entity
   (:meth:`Writer.stream`): more calls may be staged while earlier ones are answered.
3. **Record.** Each answer is recorded with its ledger row in one transaction per call. A call
   whose answer never came (timeouts, 5xx, lost answers after the client's retries) stays open
   and is replayed verbatim, same requestid, before anything new is planned, so QBO replays its
   first answer instead of writing twice, whatever else changed in between.

A stale SyncToken (5010) is a conflict candidate: the record is re-read and merged three-way
(:func:`qbo_pipelines.sync.engine.diff.merge`) by the entity's policy (R34).
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, Final, Literal

import sqlalchemy as sa

from qbo_pipelines import entities as catalogue
from qbo_pipelines.canonical import QboId, SourceId
from qbo_pipelines.qbo.client import (
    NAME_LIST_ENTITIES,
    BatchOp,
    BatchResult,
    Dispatch,
    Preference,
    QboClient,
    batch_share,
    derive_request_id,
    plan_dispatches,
)
from qbo_pipelines.qbo.errors import AuthError, NotFoundError, QboError, StaleObjectError
from qbo_pipelines.qbo.values import last_updated
from qbo_pipelines.quality import quarantine
from qbo_pipelines.sync import state
from qbo_pipelines.sync.engine import diff, records
from qbo_pipelines.sync.engine.records import DispatchRow, RecordState
from qbo_pipelines.transforms import from_qbo
from qbo_pipelines.transforms.to_qbo import MANAGED_FIELDS, foreign_fields

log = logging.getLogger(__name__)

WriteOp = Literal["create", "update", "delete", "void"]
FAILURE_TITLE = "QuickBooks refused a write"
TOTAL_TITLE = "QuickBooks computed another total"
TOTAL_FIX = (
    "QBO works a transaction's tax out itself, from each line's tax code, and rounds it its "
    "own way: the source app's tax differs (a tax rate mapped to a QBO code of another "
    "percentage - `qbo-pipelines mappings list` shows them - or tax rounded per line in the "
    "source app). Map the rate to a code of the same percentage, or correct the tax in the "
    "source app, then edit the record so the sync writes it again; this notification "
    "resolves itself when QBO's total agrees. Until then QBO refuses payments of the source "
    "app's full total (6000) and the nightly reconciliation reports the difference."
)
LINES_TITLE = "QuickBooks holds lines changed in QBO"
LINES_FIX = (
    "Someone changed the record's lines in QBO (added, removed or changed a line) and the "
    "source app has no place for QBO's lines, so QBO's total is not the source app's. An edit "
    "of another field (the memo, a date) is written without the lines and changes nothing "
    "here. Decide which lines are right. If the source app's are, change any line of the "
    "record in the source app: the push then writes all its lines over QBO's (recorded as a "
    "conflict the source wins). If QBO's are, give the record the same lines in the source "
    "app. This notification resolves itself when QBO's total agrees; until then QBO refuses "
    "payments of the source app's full total (6000)."
)
RETRY_FIRST = timedelta(minutes=5)
RETRY_MAX = timedelta(hours=24)


@dataclass(frozen=True)
class Intent:
    """One record write, stored before its call and replayed verbatim until QBO answers.

    Attributes:
        source_id: the source record.
        op: create, update, delete or void.
        qbo_entity: the QBO entity written (Invoice, CreditMemo, ...).
        body: the exact body sent (updates carry Id, SyncToken and ``sparse``).
        request_id: the record write's requestid.
        source_hash: the source record's content hash this write brings QBO up to.
        source_base: the source side of the base once written (the full QBO-shaped payload).
        name_key: the name this record holds in QBO's name space once written.
        conflicts: fields both sides changed (recorded with the outcome, R34).
        kept_qbo: fields where QBO's value stands and the source does not hold it yet: the
            conflicts QBO won, and fields only QBO changed (found by a 5010's merge); the pull
            brings them into the source.
        created_by: who created the QBO record (kept for updates of matched records).
        total: the ``TotalAmt`` QBO should show once written (money records): QBO computes
            it, and an answer with another total is reported (:data:`TOTAL_TITLE`).
        hold: the record stays held once written (what QBO should hold of it meanwhile,
            :attr:`qbo_pipelines.sync.push.PushSpec.meanwhile`): planned again each run.
    """

    source_id: SourceId
    op: WriteOp
    qbo_entity: str
    body: Mapping[str, Any]
    request_id: str
    source_hash: str | None = None
    source_base: Mapping[str, Any] | None = None
    name_key: str | None = None
    conflicts: tuple[str, ...] = ()
    kept_qbo: tuple[str, ...] = ()
    created_by: str = "sync"
    total: str | None = None
    hold: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "source_id": self.source_id,
            "op": self.op,
            "qbo_entity": self.qbo_entity,
            "body": dict(self.body),
            "request_id": self.request_id,
            "source_hash": self.source_hash,
            "source_base": dict(self.source_base) if self.source_base is not None else None,
            "name_key": self.name_key,
            "conflicts": list(self.conflicts),
            "kept_qbo": list(self.kept_qbo),
            "created_by": self.created_by,
            "total": self.total,
            "hold": self.hold,
        }

    @staticmethod
    def from_json(data: Mapping[str, Any]) -> Intent:
        return Intent(
            source_id=SourceId(str(data["source_id"])),
            op=data["op"],
            qbo_entity=str(data["qbo_entity"]),
            body=data["body"],
            request_id=str(data["request_id"]),
            source_hash=data.get("source_hash"),
            source_base=data.get("source_base"),
            name_key=data.get("name_key"),
            conflicts=tuple(data.get("conflicts") or ()),
            kept_qbo=tuple(data.get("kept_qbo") or ()),
            created_by=str(data.get("created_by") or "sync"),
            total=data.get("total"),
            hold=bool(data.get("hold")),
        )

    def batch_op(self) -> BatchOp:
        return BatchOp(self.op, self.qbo_entity, self.body, self.request_id, key=self.source_id)


def record_request_id(
    realm_id: str, entity: str, source_id: str, op: str, version: str, attempt: int
) -> str:
    """The requestid of one record write: same record, operation, base version and attempt ->
    same id (QBO replays), anything else -> a new id. A->B->A edits differ by SyncToken."""
    return derive_request_id(
        "record", realm_id, entity, source_id, op, version, f"attempt={attempt}"
    )


@dataclass
class Report:
    """Counts per outcome for one entity and company; the ledger holds the per-record story."""

    entity: str
    realm_id: str
    run_id: str | None
    counts: Counter[str] = field(default_factory=Counter)
    api_calls: int = 0
    cursor: int | None = None
    failures: list[tuple[str, str, str]] = field(default_factory=list)
    no_answer: str | None = None
    """The last error of a call that got no answer (QBO unreachable after the client's
    retries): its records stay ``pending`` with their intents, replayed by the next run."""
    unasked: Counter[str] = field(default_factory=Counter)
    """QBO's error -> records held because QBO could not be asked before writing them (a name
    check that got no answer or a server error): held, the next run asks again."""

    KEYS = (
        "replayed",
        "created",
        "updated",
        "matched",
        "unchanged",
        "deleted",
        "voided",
        "held_back",
        "failed",
        "pending",
        "conflicts",
        "skipped",
        "sent",
        "send_failed",
        "copied",
    )

    def as_metadata(self) -> dict[str, int]:
        return {k: int(self.counts.get(k, 0)) for k in self.KEYS}

    def unanswered(self) -> str | None:
        """Why this push cannot count as done, when some of its writes got no answer from QBO
        (None when every call was answered). The records are not lost: each keeps its intent
        and the next run replays the very call (same requestid) before anything new; but a run
        that ends so is a failed run, so that it is retried and notified, not reported as a
        success with its writes silently waiting."""
        count = int(self.counts.get("pending", 0))
        if not count:
            return self._unasked()
        return (
            f"{count} {self.entity} write(s) got no answer from QBO "
            f"({self.no_answer or 'no answer'}): each keeps its intent and the next run "
            "replays the same call (same requestid), so nothing is lost or written twice. "
            "Fix: check that QBO (or the sandbox) is reachable, then run the push again "
            "(`qbo-pipelines sync push`); `qbo-pipelines status` lists the writes waiting."
        )

    def _unasked(self) -> str | None:
        if not self.unasked:
            return None
        error, _ = self.unasked.most_common(1)[0]
        return (
            f"QBO could not be asked about {self.unasked.total()} {self.entity} record(s) before "
            f"writing them ({error}): they are held and the next run asks again. Fix: check "
            "that QBO (or the sandbox) is reachable, then run the push again "
            "(`qbo-pipelines sync push`)."
        )


def ledger_row(
    realm_id: str,
    entity: str,
    run_id: str | None,
    source_id: str | None,
    operation: str,
    outcome: str,
    *,
    qbo_id: str | None = None,
    request_id: str | None = None,
    error: QboError | None = None,
    message: str | None = None,
    code: str | None = None,
    payload_hash: str | None = None,
    details: Mapping[str, Any] | None = None,
    direction: str = "push",
) -> state.LedgerRow:
    return state.LedgerRow(
        realm_id=realm_id,
        entity=entity,
        direction=direction,
        operation=operation,
        outcome=outcome,
        run_id=run_id,
        source_id=source_id,
        qbo_id=qbo_id,
        request_id=request_id,
        error_code=error.code if error is not None else code,
        error_message=str(error) if error is not None else message,
        payload_hash=payload_hash,
        details=details
        if details is not None
        else (
            {"retryable": error.retryable, "element": error.element, "intuit_tid": error.intuit_tid}
            if error is not None
            else None
        ),
    )


_BUSINESS_FIXES: Final = {
    "Payment": "QBO refused the payment by a business rule (its message says which): most "
    "often the receipt is larger than what is still open on its sale's invoice in QBO (other "
    "payments, some entered in QBO, or a lower total: `qbo-pipelines status` lists invoices "
    "QBO totals otherwise than the source app under 'totals differ'), or its contact is not "
    "the sale's customer. Correct the receipt or its sale in the source app; the next run "
    "retries",
    "Invoice": "QBO refused the invoice by a business rule (its message says which): most "
    "often its new total is below the payments already applied to it in QBO. QBO works the "
    "total out from the lines' tax codes: when a source tax rate is mapped to a code of "
    "another percentage (`qbo-pipelines mappings list`), QBO's total differs from the source "
    "app's, and a payment applied while it was higher no longer fits; map the rate to a code "
    "of the same percentage (the next push re-plans the invoices it reaches). Otherwise "
    "correct the sale, or its receipts first, in the source app; the next run retries",
    "CreditMemo": "QBO refused the credit memo by a business rule (its message says which): "
    "most often its new total is below what has already been applied from it. Correct the "
    "sale in the source app; the next run retries",
    "Bill": "QBO refused the bill by a business rule (its message says which): most often its "
    "new total is below the payments already made on it in QBO. Correct the bill in the "
    "source app, or the payment in QBO; the next run retries",
}
"""QBO's generic business fault (6000) on a transaction: what it most often means there."""


_REMOVAL_FIX: Final = (
    "QBO refused to remove the {entity} by a business rule (its message says which): most "
    "often payments or credits are applied to it in QBO, or it is deposited or reconciled. "
    "Payments of receipts deleted in the source, or moved to another sale, are unapplied by "
    "the same run's payments step, and the next run retries by itself; for ones entered in "
    "QBO, unlink or delete those in QBO, or leave the {entity} there"
)


_GONE_FIX: Final = (
    "the {entity} was deleted in QBO, and the sync never brings back what was deleted there "
    "(the next pull marks it deleted): delete the record in the source app too, or, to send it "
    "again, enter it again there as a new record"
)


_INACTIVE_FIX: Final = (
    "the {what} this record refers to is inactive (deleted) in QBO: make it active again in "
    "QBO (the record is retried automatically, after its backoff), or point the record at one "
    "that is active: for what a mapping chooses (an account, tax code, payment method or "
    "item), with `qbo-pipelines mappings set ...`; otherwise in the source app"
)


def _inactive_reference(error: QboError, op: str | None) -> bool:
    """A 610 about what the record refers to (a customer, item, account... made inactive),
    not about the record itself: a create has no QBO record of its own yet, and QBO names the
    reference's field (``CustomerRef``). (QBO's Detail says "made inactive" for a missing
    record too, so it tells nothing.)"""
    return op == "create" or error.element.endswith("Ref")


def _referenced(element: str) -> str:
    """A person's name for the record a ``...Ref`` field path points at (``Line.
    SalesItemLineDetail.ItemRef`` -> ``item``)."""
    name = element.rsplit(".", 1)[-1].removesuffix("Ref")
    words = "".join(f" {c.lower()}" if c.isupper() else c for c in name).strip()
    return words or "customer, item, account or vendor"


def fix_for(error: QboError, qbo_entity: str | None = None, op: str | None = None) -> str:
    """What a person should do about a write QBO refused (R31); ``qbo_entity`` and ``op``
    (the written record's QBO entity and the operation) make QBO's generic business fault
    specific."""
    code = error.code or ""
    if code == "6000" and not error.retryable and qbo_entity is not None:
        if op in {"delete", "void"}:
            return _REMOVAL_FIX.format(entity=qbo_entity.lower())
        if qbo_entity in _BUSINESS_FIXES:
            return _BUSINESS_FIXES[qbo_entity]
    if code == "610" and _inactive_reference(error, op):
        return _INACTIVE_FIX.format(what=_referenced(error.element))
    if code == "610" and qbo_entity is not None and qbo_entity not in NAME_LIST_ENTITIES:
        return _GONE_FIX.format(entity=qbo_entity.lower())
    if code == "2500" and "deleted" in f"{error.message} {error.detail or ''}".lower():
        return (
            "a record it refers to (QBO's message names it) was deleted in QBO, and the sync "
            "never brings back what was deleted there: in the source app, link this record to "
            "another one or delete it; to send the deleted one again, enter it again as a new "
            "record"
        )
    fixes = {
        "6240": "another QBO customer, vendor or employee already uses this name (QBO ignores "
        "case and surrounding spaces): rename one of them; the next run retries",
        "6140": "the document number is already used in QBO: change it in the source app; the "
        "next run retries (when the holder is a sale deleted in the source app that QBO has not "
        "let the sync remove yet, the number is free once it is removed: see its own fix)",
        "2500": "a referenced record is missing or inactive in QBO: check the mappings "
        "(qbo-pipelines mappings show); the next run retries",
        "610": "the QBO record was deleted or made inactive in QBO: re-activate it there; the "
        "next run retries",
        "5010": "the record changed in QBO at the same time: the next run merges and retries",
        "6000": "QBO could not process the record: check its values in the source app; the "
        "next run retries",
        "2010": "QBO refused a field of the record: correct it in the source app; the next run "
        "retries",
        "2020": "a value QBO requires is missing: complete the record in the source app; the "
        "next run retries",
        "6540": "the transaction is deposited or reconciled in QBO and cannot be changed: undo "
        "the deposit in QBO or leave it; the next run retries",
    }
    if error.retryable:
        return "a temporary QBO or network failure: the next run replays the same write"
    return fixes.get(code, "correct the record in the source app; the next run retries it")


def retry_delay(attempt: int) -> timedelta:
    """Backoff between automatic retries of a refused write: 5 min, 10, 20, ... up to a day."""
    delay: timedelta = RETRY_FIRST * (2 ** min(max(attempt - 1, 0), 12))
    return min(delay, RETRY_MAX)


def _whole_call_failed(results: Sequence[BatchResult]) -> bool:
    """The call itself got no answer (every member carries the same transport error)."""
    first = results[0].error if results else None
    return first is not None and first.retryable and all(r.error is first for r in results)


SourceNow = Callable[[Sequence["Intent"]], Mapping[SourceId, tuple[str, Mapping[str, Any]]]]
"""The current content hash and body (shaped as the intent's QBO entity) of the intents' source
records, by id; records gone, held back or now another QBO entity are absent."""


def _links(intent: Intent) -> Iterator[tuple[str, str]]:
    """The (TxnType, TxnId) pairs an intent's lines link to (``Line[].LinkedTxn``)."""
    for line in (intent.source_base or intent.body).get("Line") or []:
        for txn in line.get("LinkedTxn") or []:
            if txn.get("TxnType") and txn.get("TxnId"):
                yield str(txn["TxnType"]), str(txn["TxnId"])


class Writer:
    """Writes intents for one entity of one company and records every outcome.

    ``source_now`` reads the records' current source version: a 5010 is merged with it, not
    with the (possibly older) version the write was planned from, so a source edit made after
    the intent was stored is merged, and conflicts with QBO's edits are found (R34). Records
    whose unfinished call got its answer in :meth:`replay_open` are in ``replayed``: the caller
    plans them again, as a source edit made while they waited was not planned (R42).
    """

    def __init__(
        self,
        engine: sa.Engine,
        client: QboClient,
        realm_id: str,
        entity: catalogue.Entity,
        run_id: str | None,
        report: Report,
        *,
        direction: str = "push",
        prefer: Preference = "fastest",
        source_now: SourceNow | None = None,
    ) -> None:
        self.prefer: Preference = prefer
        self._ahead = 0.0  # batches made beyond the exact share so far (see _split)
        self.source_now = source_now
        self.replayed: set[SourceId] = set()
        self.engine = engine
        self.client = client
        self.realm_id = realm_id
        self.entity = entity
        self.run_id = run_id
        self.report = report
        self.direction = direction
        # (TxnType, TxnId) of the transactions the records written link to: QBO moves those
        # too (a payment changes its invoices' Balance and SyncToken). Ids only, not answers.
        self.linked: set[tuple[str, str]] = set()
        # calls staged and not yet answered, and their records' states as stored
        self._groups: dict[str, list[Intent]] = {}
        self._states: dict[SourceId, RecordState] = {}

    # ------------------------------------------------------------------ public

    def replay_open(self) -> None:
        """Send every call whose answer was never recorded again, verbatim (R33): same
        operations, same order, same requestid, so QBO answers with what it did the first time.
        """
        pending: list[Dispatch] = []
        groups: dict[str, list[Intent]] = {}
        members: list[SourceId] = []
        for row in records.open_dispatches(self.engine, self.realm_id, self.entity.name):
            intents = [Intent.from_json(o) for o in records.dispatch_ops(self.engine, row)]
            ops = tuple(i.batch_op() for i in intents)
            pending.append(Dispatch(row.request_id, ops, row.single))
            groups[row.request_id] = intents
            members += row.members
        if not pending:
            return
        states = records.load(self.engine, self.realm_id, self.entity.name, members)
        log.info("replaying %d unfinished %s calls", len(pending), self.entity.name)
        self.report.counts["replayed"] += sum(
            1
            for d in pending
            for i in groups[d.request_id]
            if _open_in(states.get(i.source_id), d.request_id)
        )
        self._groups.update(groups)
        self._states.update(states)
        self.stream(pending)
        for member in members:  # states of members whose intent had moved on stay unread
            self._states.pop(member, None)
        still = records.load(self.engine, self.realm_id, self.entity.name, members)
        self.replayed = {s for s in members if s in still and still[s].intent is None}

    def write(self, intents: Sequence[Intent], states: Mapping[SourceId, RecordState]) -> None:
        """Store every intent and its call first, then send the calls concurrently within the
        company's budget (:meth:`QboClient.execute`) and record each answer as it comes."""
        if intents:
            self.stream(self.stage(intents, states))

    def stage(
        self,
        intents: Sequence[Intent],
        states: Mapping[SourceId, RecordState],
        *,
        reserved: int = 0,
    ) -> list[Dispatch]:
        """Split ``intents`` into calls (``reserved`` single calls running beside them) and
        commit them, intents on their records and each call's exact operations, before any
        call is made. Nothing is sent: each call stays open until :meth:`stream` records its
        answer (or a later run replays it)."""
        if not intents:
            return []
        by_key = {i.source_id: i for i in intents}
        dispatches = self._split(intents, reserved)
        groups = {
            d.request_id: [by_key[SourceId(op.key or "")] for op in d.ops] for d in dispatches
        }
        self._states.update(self._store(dispatches, groups, states))
        self._groups.update(groups)
        return dispatches

    @property
    def unanswered(self) -> int:
        """Calls staged whose answer is not recorded yet."""
        return len(self._groups)

    def stream(
        self,
        feed: Iterable[Dispatch | None],
        on_extra: Callable[[Dispatch, list[BatchResult]], None] | None = None,
        *,
        on_answer: Callable[[Sequence[Intent], set[SourceId]], None] | None = None,
        lookahead: int | None = None,
    ) -> None:
        """Run ``feed``'s calls as one concurrent stream within the company's budget and record
        each staged call's answer as it comes (one transaction per call); calls not staged
        here (e.g. sends) go to ``on_extra``. ``feed`` may stage more calls while the stream
        runs (a chunk's calls start while the one before drains) and may pause with ``None``
        while staged calls are unanswered (:meth:`QboClient.execute`). ``on_answer`` hears
        each recorded call's intents and those of them QBO refused as stale (merged three-way
        once the stream ends, R34)."""
        stale: list[tuple[Intent, RecordState]] = []
        for dispatch, results in self.client.execute(
            feed, reapply_on_stale=False, lookahead=lookahead
        ):
            group = self._groups.pop(dispatch.request_id, None)
            if group is None:
                if on_extra is not None:
                    on_extra(dispatch, results)
                continue
            rid = dispatch.request_id
            states = {
                i.source_id: self._states.pop(i.source_id)
                for i in group
                if _open_in(self._states.get(i.source_id), rid)
            }
            found = self._record(rid, group, results, states)
            stale += found
            if on_answer is not None:
                on_answer(group, {i.source_id for i, _ in found})
        if stale:
            self._merge_stale(stale)

    # ------------------------------------------------------------------ steps

    def _split(self, intents: Sequence[Intent], reserved: int) -> list[Dispatch]:
        """The calls for ``intents``, ``reserved`` single calls running beside them. Each
        chunk's batches are its exact share rounded up; what the rounding added is carried into
        the next chunk's share, so that a long push makes the fewest batches the bound wants
        rather than one more per chunk."""
        if not intents:
            return []
        dispatches = plan_dispatches(
            [i.batch_op() for i in intents],
            prefer=self.prefer,
            reserved_singles=reserved,
            ahead=self._ahead,
        )
        if self.prefer == "fastest":
            made = sum(1 for d in dispatches if not d.single)
            share = batch_share(len(intents) + reserved)
            self._ahead = min(max(self._ahead + made - share, -1.0), 1.0)
        return dispatches

    def _store(
        self,
        dispatches: Sequence[Dispatch],
        groups: Mapping[str, Sequence[Intent]],
        states: Mapping[SourceId, RecordState],
    ) -> dict[SourceId, RecordState]:
        """Commit each intent on its record, and each call's exact operations, before any call
        is made; the states as stored."""
        rows: list[RecordState] = []
        with self.engine.begin() as conn:
            for d in dispatches:
                intents = groups[d.request_id]
                for intent in intents:
                    base = states.get(intent.source_id) or RecordState(
                        self.realm_id, self.entity.name, intent.source_id, status="pending"
                    )
                    rows.append(
                        base.but(
                            status="pending",
                            intent=intent.to_json(),
                            dispatch_id=d.request_id,
                            qbo_entity=base.qbo_entity or intent.qbo_entity,
                        )
                    )
                records.add_dispatch(
                    conn,
                    DispatchRow(
                        self.realm_id,
                        d.request_id,
                        self.entity.name,
                        d.single,
                        tuple(i.source_id for i in intents),
                    ),
                    [i.to_json() for i in intents],
                    self.run_id,
                )
            records.save(conn, rows, self.run_id)
        return {SourceId(r.source_id or ""): r for r in rows}

    def _record(
        self,
        rid: str,
        intents: Sequence[Intent],
        results: Sequence[BatchResult],
        states: Mapping[SourceId, RecordState],
    ) -> list[tuple[Intent, RecordState]]:
        """Record one call's answers, with their ledger rows, in one transaction."""
        unknown = _whole_call_failed(results)
        stale: list[tuple[Intent, RecordState]] = []
        rows: list[RecordState] = []
        ledger: list[state.LedgerRow] = []
        failures: list[tuple[str, str, str]] = []
        resolved: list[str] = []
        totals: list[tuple[str, TotalDiffers]] = []  # written, but QBO shows another total
        agreed: list[str] = []
        for intent, result in zip(intents, results, strict=True):
            current = states.get(intent.source_id)
            if current is None or not _open_in(current, rid):
                continue  # recorded by an earlier answer to the same call
            if unknown:
                self.report.counts["pending"] += 1
                self.report.no_answer = str(result.error)
                ledger.append(
                    self._ledger(
                        intent,
                        "failed",
                        error=result.error,
                        qbo_id=current.qbo_id,
                        details={"retryable": True, "replayed_next_run": True},
                    )
                )
                continue
            if isinstance(result.error, StaleObjectError):
                stale.append((intent, current))
                # its attempt and refusal stay: a delete refused after the merge backs off
                rows.append(
                    current.but(intent=None, dispatch_id=None, status=current.settled_status)
                )
                continue
            if result.error is not None:
                row, entry, failure = self._refused(intent, current, result.error)
                rows.append(row)
                ledger.append(entry)
                if failure is not None:
                    failures.append(failure)
                continue
            differs = _total_differs(intent, result.entity)
            row, entries = self._succeeded(intent, current, result, differs)
            if differs is not None:
                totals.append((intent.source_id, differs))
            elif intent.total is not None:
                agreed.append(intent.source_id)
            rows.append(row)
            ledger.extend(entries)
            resolved.append(intent.source_id)
            self.linked.update(_links(intent))
        with self.engine.begin() as conn:
            records.save(conn, rows, self.run_id)
            state.append_ledger(conn, ledger)
            if not unknown:
                records.finish_dispatch(conn, self.realm_id, rid)
            self._notify(conn, FAILURE_TITLE, failures, resolved, "error")
            for title in (TOTAL_TITLE, LINES_TITLE):
                # a record's total differs for one cause at a time: the other one's resolves
                self._notify(
                    conn,
                    title,
                    [(s, d.reason, d.fix) for s, d in totals if d.title == title],
                    [*agreed, *(s for s, d in totals if d.title != title)],
                    "warning",
                )
        self.report.failures.extend(failures)
        return stale

    def _notify(
        self,
        conn: sa.Connection,
        title: str,
        opened: Sequence[tuple[str, str, str]],
        resolved: Sequence[str],
        severity: quarantine.Severity,
    ) -> None:
        """Open (or refresh) the notifications of one title for ``opened`` (record, reason,
        fix) and resolve those of ``resolved``."""
        for source_id, reason, fix in opened:
            quarantine.notify_failure(
                conn,
                self.realm_id,
                self.entity.name,
                source_id,
                title=title,
                reason=reason,
                fix=fix,
                severity=severity,
            )
        if resolved:
            quarantine.resolve_notifications(
                conn, self.realm_id, self.entity.name, resolved, title=title
            )

    def _ledger(
        self,
        intent: Intent,
        outcome: str,
        *,
        operation: str | None = None,
        qbo_id: str | None = None,
        error: QboError | None = None,
        message: str | None = None,
        details: Mapping[str, Any] | None = None,
    ) -> state.LedgerRow:
        return ledger_row(
            self.realm_id,
            self.entity.name,
            self.run_id,
            intent.source_id,
            operation or intent.op,
            outcome,
            qbo_id=qbo_id,
            request_id=intent.request_id,
            error=error,
            message=message,
            payload_hash=intent.source_hash,
            details=details,
            direction=self.direction,
        )

    def _refused(
        self, intent: Intent, current: RecordState, error: QboError
    ) -> tuple[RecordState, state.LedgerRow, tuple[str, str, str] | None]:
        if intent.op in {"delete", "void"} and isinstance(error, NotFoundError):
            # Already gone in QBO: the delete is done (R9: nothing else to undo).
            self.report.counts["deleted"] += 1
            row = current.but(
                status="deleted",
                intent=None,
                dispatch_id=None,
                deleted_in_qbo=True,
                deleted_in_source=True,
                name_key=None,
            )
            return (
                row,
                self._ledger(intent, "ok", qbo_id=current.qbo_id, message="already deleted in QBO"),
                None,
            )
        self.report.counts["failed"] += 1
        attempt = current.attempt + 1
        fix = fix_for(error, intent.qbo_entity, intent.op)
        label = f"{self.entity.name} #{intent.source_id}"
        reason = f"{label}: QBO refused the {intent.op}: {error}"
        row = current.but(
            status="failed",
            intent=None,
            dispatch_id=None,
            attempt=attempt,
            error_code=error.code or None,
            error_message=str(error),
            fix=fix,
            # A refused delete is usually waiting for a dependent delete of the same run
            # (payments before their invoice): the next run tries again at once.
            retry_at=datetime.now(UTC)
            + (
                retry_delay(attempt - 1)
                if intent.op in {"delete", "void"} and attempt > 1
                else timedelta(0)
                if intent.op in {"delete", "void"}
                else retry_delay(attempt)
            ),
            name_key=current.name_key if current.live_in_qbo else None,
        )
        entry = self._ledger(
            intent,
            "failed",
            error=error,
            qbo_id=current.qbo_id,
            details={
                "retryable": error.retryable,
                "fix": fix,
                "element": error.element,
                "attempt": attempt,
            },
        )
        return row, entry, (intent.source_id, reason, fix)

    def _succeeded(
        self,
        intent: Intent,
        current: RecordState,
        result: BatchResult,
        total_differs: TotalDiffers | None = None,
    ) -> tuple[RecordState, list[state.LedgerRow]]:
        """The record's state once QBO took the write, and its ledger rows (the write's keeps
        ``total_differs``, why QBO's total is not the source app's, when it is not)."""
        stored = result.entity or {}
        qbo_id = QboId(str(stored.get("Id") or current.qbo_id or ""))
        token = stored.get("SyncToken")
        if intent.op in {"delete", "void"}:
            self.report.counts["deleted" if intent.op == "delete" else "voided"] += 1
            row = current.but(
                status="deleted",
                intent=None,
                dispatch_id=None,
                deleted_in_source=True,
                deleted_in_qbo=intent.op == "delete",
                name_key=None,
                sync_token=str(token) if token is not None else current.sync_token,
                error_code=None,
                error_message=None,
                fix=None,
                retry_at=None,
                attempt=0,
            )
            return row, [self._ledger(intent, "ok", qbo_id=qbo_id)]
        answer = diff.project(stored, _template(intent.qbo_entity, intent.source_base))
        if intent.op == "update" and current.pull_due and current.qbo_base is not None:
            # QBO holds values the source has not taken yet (a conflict QBO won, a field only
            # QBO changed): this sparse update left the fields it does not name as they were,
            # so their QBO side of the base stays what the pull has still to bring (taking
            # QBO's answer for them would make the pull see nothing to bring, for good).
            answer = {
                **answer,
                **{f: current.qbo_base.get(f) for f in answer if f not in intent.body},
            }
        qbo_base = _losers_to_pull(answer, intent.source_base, intent.kept_qbo)
        row = current.in_step(
            qbo_entity=intent.qbo_entity,
            qbo_id=qbo_id,
            created_by=intent.created_by if intent.op == "update" else "sync",
            source_hash=intent.source_hash,
            source_base=intent.source_base,
            qbo_base=qbo_base,
            qbo_hash=diff.body_hash(qbo_base),
            sync_token=str(token) if token is not None else current.sync_token,
            qbo_updated_at=last_updated(stored),
            name_key=intent.name_key,
            pull_due=bool(intent.kept_qbo) or current.pull_due,
            # a field this write sent is QBO's no more (R34: its conflict is recorded below),
            # nor the tax QBO works out again from the lines it sent
            pull_fields=tuple(
                f
                for f in _pull_fields(current, intent.kept_qbo)
                if f in intent.kept_qbo or f not in _rewritten(intent.body)
            ),
            intent=None,
            dispatch_id=None,
            last_synced_at=datetime.now(UTC),
        )
        if intent.hold:  # written meanwhile, and held back again for its hold
            row = row.but(status="held")
        self.report.counts["created" if intent.op == "create" else "updated"] += 1
        details = (
            {"total_differs": total_differs.reason, "lines_changed_in_qbo": total_differs.lines}
            if total_differs
            else None
        )
        entries = [self._ledger(intent, "ok", qbo_id=qbo_id, details=details)]
        if intent.conflicts:
            kept = set(intent.kept_qbo) & set(intent.conflicts)
            resolution = ", ".join(
                f"{f}: {'QBO' if f in kept else 'source'} kept" for f in intent.conflicts
            )
            entries.insert(
                0,
                self._conflict(
                    intent,
                    qbo_id,
                    f"changed in QBO and in the source since the last sync; policy "
                    f"{self.entity.conflict}: {resolution}",
                    {"fields": list(intent.conflicts), "kept_qbo": sorted(kept)},
                ),
            )
        return row, entries

    def _conflict(
        self,
        intent: Intent,
        qbo_id: str | None,
        message: str,
        details: Mapping[str, Any] | None = None,
    ) -> state.LedgerRow:
        """A conflict's ledger row (R34), counted."""
        self.report.counts["conflicts"] += 1
        return self._ledger(
            intent,
            "conflict",
            operation="conflict",
            qbo_id=qbo_id,
            message=message,
            details={**(details or {}), "policy": self.entity.conflict},
        )

    # ------------------------------------------------------------------ conflicts (R34)

    def _stale_delete(
        self,
        intent: Intent,
        current: RecordState,
        now: Mapping[str, Any],
        token: str,
        ledger: list[state.LedgerRow],
    ) -> Intent | None:
        """A delete or void met a newer version. When only QBO's own bookkeeping moved (a
        payment applied or removed, our send), the fields we manage are as we left them: the
        delete goes on with the fresh SyncToken. When a person changed them in QBO, that is a
        conflict: recorded, and the source's delete is carried out under ``source_wins`` only
        (otherwise the record is left in QBO and the delete is recorded as not carried out)."""
        projected = diff.project(
            now, _template(current.qbo_entity or intent.qbo_entity, current.source_base)
        )
        changed = diff.body_hash(projected) != current.qbo_hash
        if changed:
            ledger.append(
                self._conflict(
                    intent,
                    current.qbo_id,
                    f"deleted in the source and changed in QBO since the last sync; "
                    f"policy {self.entity.conflict}",
                )
            )
            if self.entity.conflict != "source_wins":
                return None
        body = {**intent.body, "SyncToken": token}
        rid = record_request_id(
            self.realm_id, self.entity.name, intent.source_id, intent.op, token, current.attempt
        )
        return replace(intent, body=body, request_id=rid)

    def _merge_stale(self, stale: Sequence[tuple[Intent, RecordState]]) -> None:
        """QBO changed since our base: re-read, merge three-way by policy, write what is left."""
        by_entity: dict[str, list[QboId]] = {}
        for intent, _ in stale:
            by_entity.setdefault(intent.qbo_entity, []).append(QboId(str(intent.body["Id"])))
        fresh: dict[str, Mapping[str, Any]] = {}
        unread: set[str] = set()
        for qbo_entity, ids in by_entity.items():
            try:
                for qbo_id, entity in self.client.read_many(qbo_entity, ids).items():
                    fresh[f"{qbo_entity}:{qbo_id}"] = entity
            except AuthError:
                raise
            except QboError as err:
                log.warning("could not re-read %s after a 5010: %s", qbo_entity, err)
                unread |= {f"{qbo_entity}:{i}" for i in ids}
        followups: list[Intent] = []
        rows: list[RecordState] = []
        ledger: list[state.LedgerRow] = []
        current_states = records.load(
            self.engine, self.realm_id, self.entity.name, [i.source_id for i, _ in stale]
        )
        updates = [i for i, _ in stale if i.op not in {"delete", "void"}]
        source_now = self.source_now(updates) if self.source_now and updates else {}
        for intent, _old in stale:
            current = current_states.get(intent.source_id)
            if current is None:
                continue
            key = f"{intent.qbo_entity}:{intent.body['Id']}"
            if key in unread:
                # QBO could not be read: retried by the next run (same base, fresh attempt).
                rows.append(
                    current.but(
                        status="failed",
                        error_code="5010",
                        error_message="changed in QBO; re-read failed",
                        fix=fix_for(StaleObjectError("Stale Object Error", code="5010")),
                        retry_at=datetime.now(UTC),
                    )
                )
                continue
            now = fresh.get(key)
            if now is None:
                row, entry, failure = self._refused(
                    intent,
                    current,
                    NotFoundError(
                        "Object Not Found", code="610", detail="deleted in QBO since the last sync"
                    ),
                )
                rows.append(row)
                ledger.append(entry)
                continue
            token = str(now.get("SyncToken", "0"))
            if intent.op not in {"delete", "void"} and from_qbo.voided(now):
                # Voided in QBO since our base: final, as a delete is. Writing the update
                # would revive it (its lines and total back, R42); the record is done.
                rows.append(
                    current.cleared(
                        status="deleted",
                        deleted_in_qbo=True,
                        sync_token=token,
                        qbo_updated_at=last_updated(now),
                        name_key=None,
                        intent=None,
                        dispatch_id=None,
                    )
                )
                ledger.append(
                    self._ledger(
                        intent,
                        "skipped",
                        operation="skip",
                        qbo_id=current.qbo_id,
                        message=VOIDED_IN_QBO,
                    )
                )
                self.report.counts["skipped"] += 1
                continue
            if intent.op in {"delete", "void"}:
                again = self._stale_delete(intent, current, now, token, ledger)
                if again is not None:
                    followups.append(again)
                    # the version QBO holds: a refusal of the delete is retried against it
                    rows.append(current.but(sync_token=token))
                else:
                    rows.append(
                        current.but(
                            status="deleted",
                            deleted_in_source=True,
                            sync_token=token,
                            intent=None,
                            dispatch_id=None,
                        )
                    )
                continue
            # The source as it is now (an intent replayed in a later run was planned from an
            # older version: merging that one would take a newer source edit as synced).
            source_hash, new_source = source_now.get(
                intent.source_id, (intent.source_hash or "", intent.source_base or {})
            )
            intent = replace(intent, source_hash=source_hash or None, source_base=new_source)
            qbo_now = diff.project(now, _template(intent.qbo_entity, new_source))
            merged = diff.merge(
                new_source, current.source_base, qbo_now, current.qbo_base, self.entity.conflict
            )
            foreign = foreign_fields(intent.qbo_entity, current.source_base, current.qbo_base)
            if foreign & set(merged.send):  # QBO's billing contact there stays (R6)
                merged = replace(
                    merged, send={k: v for k, v in merged.send.items() if k not in foreign}
                )
            # Fields QBO changed that the source does not hold (the conflicts QBO won, and
            # fields only QBO changed): QBO's value stands and the pull brings it in.
            to_pull = tuple(
                f
                for f in sorted(qbo_now)
                if f not in merged.send
                and (f in merged.kept_qbo or f not in merged.conflicts)
                and diff.normal(qbo_now.get(f)) != diff.normal((current.qbo_base or {}).get(f))
                and diff.normal(qbo_now.get(f)) != diff.normal(new_source.get(f))
            )
            if merged.hold or not merged.send:
                # Nothing of ours left to write: QBO's version is the new base on its side, the
                # source's on the other, so the losing value never comes back (R34).
                if merged.conflicts:  # else the source holds nothing QBO lacks: no conflict
                    ledger.append(
                        self._conflict(
                            intent,
                            current.qbo_id,
                            f"changed in QBO and in the source since the last sync; policy "
                            f"{self.entity.conflict}: QBO kept ({', '.join(merged.conflicts)})",
                            {"fields": list(merged.conflicts)},
                        )
                    )
                pulled = _losers_to_pull(qbo_now, new_source, to_pull)
                rows.append(
                    current.but(
                        status="held" if merged.hold else "synced",
                        source_hash=intent.source_hash,
                        source_base=new_source,
                        qbo_base=pulled,
                        qbo_hash=diff.body_hash(pulled),
                        pull_due=bool(to_pull) or current.pull_due,
                        pull_fields=_pull_fields(current, to_pull),
                        sync_token=token,
                        qbo_updated_at=last_updated(now),
                        intent=None,
                        dispatch_id=None,
                    )
                )
                continue
            body = {**merged.send, "Id": intent.body["Id"], "SyncToken": token, "sparse": True}
            followups.append(
                replace(
                    intent,
                    body=body,
                    request_id=record_request_id(
                        self.realm_id,
                        self.entity.name,
                        intent.source_id,
                        "update",
                        token,
                        current.attempt,
                    ),
                    conflicts=merged.conflicts,
                    kept_qbo=to_pull,
                )
            )
            # The merge's base on QBO's side is what QBO holds now, but for what the pull has
            # still to bring into the source.
            pulled = _losers_to_pull(qbo_now, new_source, to_pull)
            rows.append(
                current.but(
                    qbo_base=pulled,
                    qbo_hash=diff.body_hash(pulled),
                    sync_token=token,
                    pull_due=bool(to_pull) or current.pull_due,
                    pull_fields=_pull_fields(current, to_pull),
                )
            )
        with self.engine.begin() as conn:
            records.save(conn, rows, self.run_id)
            state.append_ledger(conn, ledger)
        if followups:
            states = records.load(
                self.engine, self.realm_id, self.entity.name, [f.source_id for f in followups]
            )
            self.write(followups, states)


VOIDED_IN_QBO: Final = (
    "voided in QBO since the last sync: the source record is kept as it is, and the sync never "
    "writes the voided record again (that would revive it, R42)"
)


def _rewritten(body: Mapping[str, Any]) -> set[str]:
    """The fields a write sets in QBO: those it sends, and the tax detail QBO computes again
    from the lines it sends."""
    return set(body) | ({"TxnTaxDetail"} if "Line" in body else set())


def _pull_fields(current: RecordState, more: Sequence[str]) -> tuple[str, ...]:
    """The fields the pull has still to bring: those before and ``more``."""
    return tuple(sorted({*(current.pull_fields or ()), *more}))


def _losers_to_pull(
    qbo_base: Mapping[str, Any], source: Mapping[str, Any] | None, kept_qbo: Sequence[str]
) -> dict[str, Any]:
    """The QBO side of the base after a 5010's merge: the fields QBO's value stands for (a
    conflict QBO won, or a field only QBO changed) are based on the source's value, so the pull
    sees QBO's value as a change and brings it into the source (the policy's outcome on both
    sides, R34), while the push sees nothing to send."""
    out = dict(qbo_base)
    for name in kept_qbo:
        out[name] = (source or {}).get(name)
    return out


@dataclass(frozen=True)
class TotalDiffers:
    """Why QBO's answer to a written money record shows another total than the source app's.

    Attributes:
        reason: the record, both totals and the cause.
        lines: QBO's lines are not those the sync wrote (changed in QBO); otherwise QBO
            computed the tax its own way from the same lines.
    """

    reason: str
    lines: bool

    @property
    def title(self) -> str:
        return LINES_TITLE if self.lines else TOTAL_TITLE

    @property
    def fix(self) -> str:
        return LINES_FIX if self.lines else TOTAL_FIX


def _total_differs(intent: Intent, stored: Mapping[str, Any] | None) -> TotalDiffers | None:
    """Why QBO's answer to a written money record shows another total than the source app's
    (QBO computes ``TotalAmt``: its tax from the tax codes, its sum from the lines it holds),
    or None when they agree."""
    if intent.total is None or intent.op not in {"create", "update"} or not stored:
        return None
    shown = stored.get("TotalAmt")
    if shown is None:
        return None
    tax = (stored.get("TxnTaxDetail") or {}).get("TotalTax")
    try:
        qbo, source = Decimal(str(shown)), Decimal(intent.total)
        computed = f" (tax {Decimal(str(tax)):.2f})" if tax is not None else ""
    except ArithmeticError:  # not a number: QBO's answer is not one we can compare
        return None
    if qbo == source:
        return None
    label = (
        f"{intent.qbo_entity} {stored.get('Id')} for record #{intent.source_id} totals "
        f"{qbo:.2f} in QBO"
    )
    sent = _line_amounts((intent.source_base or intent.body).get("Line"))
    held = _line_amounts(stored.get("Line"))
    if sent is not None and held != sent:
        # a sparse update (a memo edit) sends no lines: QBO keeps the lines someone changed
        return TotalDiffers(
            f"{label} where the source app has {source:.2f}: its lines changed in QBO "
            f"({len(held or ())} line(s) there, {len(sent)} written by the sync)",
            lines=True,
        )
    return TotalDiffers(f"{label}{computed} where the source app has {source:.2f}", lines=False)


def _line_amounts(lines: object) -> list[tuple[str, Any]] | None:
    """The kind and amount of each line of a body (QBO's own subtotal line left out), in
    order; None when the body has no lines."""
    if not isinstance(lines, list):
        return None
    return [
        (str(line.get("DetailType")), diff.normal(line.get("Amount")))
        for line in lines
        if isinstance(line, Mapping) and line.get("DetailType") != "SubTotalLineDetail"
    ]


def _template(qbo_entity: str, base: Mapping[str, Any] | None) -> dict[str, Any]:
    return diff.template(MANAGED_FIELDS.get(qbo_entity, ()), base)


def _open_in(current: RecordState | None, rid: str) -> bool:
    return current is not None and current.intent is not None and current.dispatch_id == rid
