"""Push use cases: source app -> QBO, one generic engine driven by a spec per entity.

One run of :func:`push_entity` for one company (realm) and one entity:

1. **Candidates**: source records changed since the entity's cursor (the source change log; the
   sync's own write-backs are skipped, R35), plus records held back or failed before (retried
   every run until they pass, R31), or every record on the first run / in full mode / a backfill.
2. **Plan** (pure, :func:`plan_record`): unchanged since the last sync -> no API call; per-record
   data-quality rules and reference / mapping resolution -> held back with a reason (R40, R12);
   known in QBO -> sparse field-level update (R7); unknown -> matched by name (R5, R10) or created;
   deleted in the source -> deleted / voided in QBO only when the sync created it (R9, R17, R22).
3. **Write**: batches of 30 with deterministic request ids (R33, R41); a failing item never stops
   the others; a 5010 is re-read and re-applied and recorded as a conflict (R34).
4. **Record**: id map, append-only ledger (R37), quarantine and notifications, cursor.

Nothing here touches QBO records the sync neither created nor matched (R25).
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, Literal

import sqlalchemy as sa

from qbo_pipelines import entities as catalogue
from qbo_pipelines.canonical import (
    ChangeEvent,
    QboId,
    RealmId,
    SourceId,
    content_hash,
)
from qbo_pipelines.qbo import query as q
from qbo_pipelines.qbo.client import (
    BATCH_SIZE,
    BatchOp,
    BatchOperation,
    BatchResult,
    QboClient,
    derive_request_id,
    request_id_for,
)
from qbo_pipelines.qbo.errors import QboError, StaleObjectError
from qbo_pipelines.qbo.ids import SyncToken
from qbo_pipelines.qbo.values import dumps, loads
from qbo_pipelines.quality import quarantine
from qbo_pipelines.quality.rules import Violation, check
from qbo_pipelines.source_app.connector import SourceAppConnector, summarize
from qbo_pipelines.sync import state
from qbo_pipelines.transforms import to_qbo
from qbo_pipelines.transforms.to_qbo import Blocked, BuildResult, PushContext

log = logging.getLogger(__name__)

Record = Any  # one of the Canonical* source records
Action = Literal["create", "update", "delete", "void", "match", "skip", "hold"]
Mode = Literal["incremental", "full"]
CHUNK = 2000


@dataclass(frozen=True)
class PushSpec:
    """How one catalogue entity is pushed (bound in :mod:`qbo_pipelines.sync.specs`).

    Attributes:
        entity: the catalogue row.
        create: the body of a create (or why it cannot be built).
        fields: the fields kept in step by updates (compared with what we last wrote).
        match_field: QBO field matched by exact name before creating (R5, R10), if any.
        skip_reason: why a record is not pushed at all (e.g. a contact with no sale, R4).
    """

    entity: catalogue.Entity
    create: Callable[[Record, PushContext], BuildResult]
    fields: Callable[[Record, PushContext], BuildResult]
    match_field: str | None = None
    skip_reason: Callable[[Record], str | None] = lambda _r: None
    send_request: Callable[[Record], tuple[bool, str | None]] | None = None  # R18


@dataclass(frozen=True)
class Plan:
    """What to do with one source record."""

    action: Action
    source_id: SourceId
    record_hash: str | None = None
    body: Mapping[str, Any] | None = None
    qbo_id: QboId | None = None
    sync_token: str | None = None
    created_by: str | None = None
    reason: str | None = None
    violations: tuple[Violation, ...] = ()
    payload: Mapping[str, Any] | None = None  # the full body (what we now hold in QBO)
    send: bool = False  # the source asks QBO to email it (R18)
    send_to: str | None = None


@dataclass
class PushReport:
    """Counts per outcome for asset metadata; the ledger holds the per-record story."""

    entity: str
    realm_id: str
    run_id: str | None
    counts: Counter[str] = field(default_factory=Counter)
    api_calls: int = 0
    cursor: int | None = None

    def as_metadata(self) -> dict[str, int]:
        keys = (
            "replayed",
            "created",
            "updated",
            "matched",
            "unchanged",
            "deleted",
            "voided",
            "held_back",
            "failed",
            "conflicts",
            "skipped",
            "sent",
            "copied",
        )
        return {k: int(self.counts.get(k, 0)) for k in keys}


# --------------------------------------------------------------------------- pure planning


def plan_record(
    spec: PushSpec,
    record: Record,
    current: state.IdMapRow | None,
    ctx: PushContext,
) -> Plan:
    """Decide what one existing source record needs (pure; no I/O)."""
    plan = _plan_write(spec, record, current, ctx)
    if spec.send_request is None or plan.action == "hold":
        return plan
    send, send_to = spec.send_request(record)
    return replace(plan, send=send, send_to=send_to)


def _plan_write(
    spec: PushSpec,
    record: Record,
    current: state.IdMapRow | None,
    ctx: PushContext,
) -> Plan:
    source_id = SourceId(record.source_id)
    record_hash = content_hash(record)
    skip = spec.skip_reason(record)
    if getattr(record, "origin", "source") == "qbo" and current is None:
        skip = "pulled from QBO: never created there again (R35)"
    if skip is not None and current is None:
        return Plan("skip", source_id, record_hash, reason=skip)
    known = current is not None and current.qbo_id is not None and not current.deleted_in_qbo
    if known and current is not None and current.source_hash == record_hash:
        return Plan("skip", source_id, record_hash, reason="unchanged")
    built = (spec.fields if known else spec.create)(record, ctx)
    # Every reason at once: the record's own rules (R40) and its references / mappings (R12).
    blocked = built.violations if isinstance(built, Blocked) else ()
    violations = tuple(check(record, creating=not known)) + blocked
    if violations or isinstance(built, Blocked):
        return Plan("hold", source_id, record_hash, violations=violations)
    if not known or current is None:
        return Plan("create", source_id, record_hash, body=built.body, payload=built.body)
    changes = to_qbo.sparse_update(built.body, current.last_payload)
    if not changes:
        return Plan(
            "skip",
            source_id,
            record_hash,
            reason="no field changed",
            qbo_id=current.qbo_id,
            payload=built.body,
        )
    return Plan(
        "update",
        source_id,
        record_hash,
        body=changes,
        qbo_id=current.qbo_id,
        sync_token=current.sync_token,
        created_by=current.created_by,
        payload={**(current.last_payload or {}), **built.body},
    )


def plan_delete(
    entity: catalogue.Entity, current: state.IdMapRow | None, source_id: SourceId
) -> Plan:
    """A source delete: only records the sync created are deleted in QBO (R9, R17, R22)."""
    if current is None or current.qbo_id is None or current.deleted_in_qbo:
        return Plan("skip", source_id, reason="never synced")
    if current.deleted_in_source:
        return Plan("skip", source_id, reason="already deleted")
    if entity.delete == "never":
        return Plan(
            "skip",
            source_id,
            qbo_id=current.qbo_id,
            reason=f"{entity.name} deleted in the source are never deleted in QBO",
        )
    if current.created_by != "sync":
        return Plan(
            "skip",
            source_id,
            qbo_id=current.qbo_id,
            reason="not created by the sync: left alone in QBO",
        )
    action: Action = "void" if entity.delete == "void_if_created_by_sync" else "delete"
    return Plan(
        action,
        source_id,
        qbo_id=current.qbo_id,
        sync_token=current.sync_token,
        created_by=current.created_by,
    )


# --------------------------------------------------------------------------- the engine


@dataclass
class PushRun:
    """Everything one push run needs; built by the caller (CLI or Dagster asset)."""

    engine: sa.Engine
    client: QboClient
    reader: SourceAppConnector
    realm_id: RealmId
    run_id: str | None
    context: PushContext


def cursor_name(entity: str) -> str:
    return f"push:{entity}:source_seq"


def _changed_ids(
    reader: SourceAppConnector, entity: str, since: int, until: int
) -> tuple[set[SourceId], set[SourceId]]:
    """Source ids changed (upserted, deleted) in (since, until]; echoes skipped (R35)."""
    events: list[ChangeEvent] = []
    seq = since
    while seq < until:
        batch = reader.read_changes(seq, limit=10_000)
        events.extend(e for e in batch.events if e.seq <= until)
        if not batch.has_more or batch.next_seq <= seq:
            break
        seq = batch.next_seq
    changes = summarize(events).get(entity)
    if changes is None:
        return set(), set()
    return set(changes.changed), set(changes.deleted)


def _chunks(items: Sequence[SourceId], size: int) -> Iterator[Sequence[SourceId]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


@dataclass(frozen=True)
class Candidates:
    """The source records one run looks at: ``wanted`` ids (None: every record), ids deleted
    in the source, and the change-log position the run covers."""

    wanted: list[SourceId] | None
    deleted: frozenset[SourceId]
    until: int


def candidates(
    engine: sa.Engine,
    reader: SourceAppConnector,
    realm_id: str,
    entity: str,
    *,
    mode: Mode = "incremental",
    source_ids: Iterable[str] | None = None,
) -> Candidates:
    """Which records a push of ``entity`` covers now (read-only: the cursor is not moved).

    Changed since the entity's cursor (echoes skipped, R35), plus records held back or failed
    retryably before (R31); every record on the first run or in full mode; exactly
    ``source_ids`` for a targeted backfill. A cursor ahead of the change log (the source was
    reset) starts again from the beginning.
    """
    until = reader.max_seq()
    if source_ids is not None:
        return Candidates(sorted(SourceId(s) for s in source_ids), frozenset(), until)
    stored = state.get_cursor(engine, realm_id, cursor_name(entity))
    if mode == "full" or stored is None or int(stored) > until:
        return Candidates(None, frozenset(), until)
    changed, deleted = _changed_ids(reader, entity, int(stored), until)
    changed |= state.retry_candidates(engine, realm_id, entity) - deleted
    return Candidates(sorted(changed), frozenset(deleted), until)


def push_entity(
    run: PushRun,
    spec: PushSpec,
    *,
    mode: Mode = "incremental",
    source_ids: Iterable[str] | None = None,
) -> PushReport:
    """Push one entity for one company. See the module docstring for the steps."""
    name = spec.entity.name
    report = PushReport(name, run.realm_id, run.run_id)
    todo = candidates(run.engine, run.reader, run.realm_id, name, mode=mode, source_ids=source_ids)
    id_map = state.load_id_map(run.engine, run.realm_id, name)
    _replay_pending(run, spec.entity, id_map, report)
    seen: set[SourceId] = set()
    for records in run.reader.iter_entity(name, todo.wanted, CHUNK):
        plans = [
            plan_record(spec, r, id_map.get(SourceId(r.source_id)), run.context) for r in records
        ]
        seen.update(p.source_id for p in plans)
        _execute(run, spec, plans, id_map, report)
    deleted = set(todo.deleted)
    if todo.wanted is not None:
        # Asked-for ids that no longer exist in the source are deletes too.
        deleted |= set(todo.wanted) - seen
    if deleted:
        plans = [plan_delete(spec.entity, id_map.get(s), s) for s in sorted(deleted)]
        _execute(run, spec, plans, id_map, report)  # also releases their quarantine rows
    if source_ids is None:
        state.set_cursor(run.engine, run.realm_id, cursor_name(name), str(todo.until))
    report.cursor = todo.until
    return report


def _execute(
    run: PushRun,
    spec: PushSpec,
    plans: list[Plan],
    id_map: dict[SourceId, state.IdMapRow],
    report: PushReport,
) -> None:
    """Write what the plans say, then record ids, ledger rows and quarantine."""
    entity = spec.entity
    ledger: list[state.LedgerRow] = []
    mapped: list[state.IdMapRow] = []
    plans = _match_existing(run, spec, plans, ledger, mapped, report)
    held: dict[str, list[Violation]] = {
        p.source_id: list(p.violations) for p in plans if p.action == "hold"
    }
    clean = [p.source_id for p in plans if p.action != "hold"]
    # A record still held for the same reasons gets no new ledger row each run (its quarantine
    # row's last_seen moves instead); a newly held one does.
    already = quarantine.held_ids(run.engine, run.realm_id, entity.name) if held else frozenset()
    for p in plans:
        if p.action == "hold":
            report.counts["held_back"] += 1
            if p.source_id not in already:
                ledger.append(_ledger(run, entity, p, "hold", "held", violations=p.violations))
        elif p.action == "skip":
            unchanged = p.reason in {"unchanged", "no field changed"}
            report.counts["unchanged" if unchanged else "skipped"] += 1
            if not unchanged:
                ledger.append(_ledger(run, entity, p, "skip", "skipped", message=p.reason))
            elif p.payload is not None and p.source_id in id_map:
                mapped.append(replace(id_map[p.source_id], source_hash=p.record_hash))
    _save(run, mapped, ledger, id_map)
    if held:
        quarantine.hold(run.engine, run.realm_id, entity.name, run.run_id, held)
    if clean:
        quarantine.release(run.engine, run.realm_id, entity.name, clean, run.run_id)
    writes = [(p, op) for p in plans if (op := _op(run, entity, p)) is not None]
    results: list[BatchResult] = []
    for i in range(0, len(writes), BATCH_SIZE):
        results += _write_batch(run, entity, writes[i : i + BATCH_SIZE], id_map, report)
    _refresh_linked_tokens(run, results)
    _send_requested(run, entity, [p for p in plans if p.send], id_map, report)


def _send_requested(
    run: PushRun,
    entity: catalogue.Entity,
    plans: Sequence[Plan],
    id_map: dict[SourceId, state.IdMapRow],
    report: PushReport,
) -> None:
    """R18: once synced, QBO emails the invoice to the billing email held in the source; with
    no billing email the invoice is only copied to QBO. Each invoice is sent once."""
    ledger: list[state.LedgerRow] = []
    mapped: list[state.IdMapRow] = []
    for p in plans:
        row = id_map.get(p.source_id)
        if row is None or row.qbo_id is None or row.sent_at is not None:
            continue
        if not p.send_to:
            report.counts["copied"] += 1
            ledger.append(
                _ledger(
                    run,
                    entity,
                    p,
                    "send",
                    "skipped",
                    qbo_id=row.qbo_id,
                    message="no billing email: copied to QBO, not emailed",
                )
            )
            mapped.append(replace(row, sent_at=datetime.now(UTC), sent_to=None))
            continue
        rid = request_id_for(run.realm_id, entity.name, p.source_id, p.send_to, "send")
        try:
            sent = run.client.send(
                entity.qbo_name, QboId(row.qbo_id), request_id=rid, send_to=p.send_to
            )
        except QboError as err:
            report.counts["failed"] += 1
            ledger.append(
                _ledger(
                    run, entity, p, "send", "failed", qbo_id=row.qbo_id, error=err, request_id=rid
                )
            )
            continue
        report.counts["sent"] += 1
        token = str(sent.get("SyncToken", row.sync_token))
        mapped.append(replace(row, sent_at=datetime.now(UTC), sent_to=p.send_to, sync_token=token))
        ledger.append(
            _ledger(
                run,
                entity,
                p,
                "send",
                "ok",
                qbo_id=row.qbo_id,
                request_id=rid,
                message=f"emailed by QBO to {p.send_to}",
            )
        )
    _save(run, mapped, ledger, id_map)


def _save(
    run: PushRun,
    mapped: list[state.IdMapRow],
    ledger: list[state.LedgerRow],
    id_map: dict[SourceId, state.IdMapRow],
) -> None:
    state.upsert_id_map(run.engine, mapped, run.run_id)
    for row in mapped:
        if row.source_id is not None:
            id_map[row.source_id] = row
    state.append_ledger(run.engine, ledger)


def _write_batch(
    run: PushRun,
    entity: catalogue.Entity,
    writes: Sequence[tuple[Plan, BatchOp]],
    id_map: dict[SourceId, state.IdMapRow],
    report: PushReport,
) -> list[BatchResult]:
    """One batch call, bracketed by a write-ahead intent and its recorded outcome.

    The intent (a ``pending`` ledger row per operation, holding the verbatim body) is committed
    before the call; if the process dies before the outcome is recorded, the next run replays
    exactly this batch (:func:`_replay_pending`), so QBO sees the same requestid and replays
    its first answer instead of writing twice.
    """
    batch_key = derive_request_id("batch", *(op.request_id for _, op in writes))
    intents = [
        replace(
            _ledger(run, entity, p, op.operation, "pending", request_id=op.request_id),
            details={
                "batch": batch_key,
                "pos": pos,
                "qbo_entity": op.entity,
                "body_json": dumps(op.body).decode(),
                "payload_json": dumps(p.payload).decode() if p.payload is not None else None,
                "created_by": p.created_by,
            },
        )
        for pos, (p, op) in enumerate(writes)
    ]
    state.append_ledger(run.engine, intents)
    return _send_and_record(run, entity, writes, id_map, report)


def _send_and_record(
    run: PushRun,
    entity: catalogue.Entity,
    writes: Sequence[tuple[Plan, BatchOp]],
    id_map: dict[SourceId, state.IdMapRow],
    report: PushReport,
) -> list[BatchResult]:
    """Send one batch and record every outcome (id map, ledger, notifications).

    A stale SyncToken (5010) means the record changed in QBO since our last sync, and so did the
    source: a conflict (R34). ``source_wins`` re-applies our change on the fresh version (the
    client re-reads and re-sends); any other policy keeps QBO's version, records the conflict,
    and takes the fresh SyncToken so the next change is a plain update.
    """
    source_wins = entity.conflict == "source_wins"
    results = run.client.batch_write([op for _, op in writes], reapply_on_stale=source_wins)
    ledger: list[state.LedgerRow] = []
    mapped: list[state.IdMapRow] = []
    stale: dict[QboId, Plan] = {}
    for (p, _), result in zip(writes, results, strict=True):
        if isinstance(result.error, StaleObjectError) and not source_wins and p.qbo_id:
            stale[p.qbo_id] = p
            continue
        _record_result(run, entity, p, result, id_map, mapped, ledger, report)
    if stale:
        _keep_qbo_version(run, entity, stale, id_map, mapped, ledger, report)
    _save(run, mapped, ledger, id_map)
    return results


def _conflict(
    run: PushRun,
    entity: catalogue.Entity,
    p: Plan,
    qbo_id: str,
    report: PushReport,
    outcome: str,
) -> state.LedgerRow:
    """R34: both sides changed since the last sync; the ledger says how the policy resolved it."""
    report.counts["conflicts"] += 1
    return _ledger(
        run,
        entity,
        p,
        "conflict",
        "conflict",
        qbo_id=qbo_id,
        message=f"changed in QBO and in the source since the last sync; policy "
        f"{entity.conflict}: {outcome}",
    )


def _keep_qbo_version(
    run: PushRun,
    entity: catalogue.Entity,
    stale: Mapping[QboId, Plan],
    id_map: Mapping[SourceId, state.IdMapRow],
    mapped: list[state.IdMapRow],
    ledger: list[state.LedgerRow],
    report: PushReport,
) -> None:
    fresh = run.client.read_many(entity.qbo_name, list(stale))
    for qbo_id, p in stale.items():
        current = id_map.get(p.source_id)
        fields = ", ".join(sorted(p.body or {}))
        ledger.append(
            _conflict(run, entity, p, qbo_id, report, f"QBO's version is kept (fields: {fields})")
        )
        if current is not None and qbo_id in fresh:
            token = str(fresh[qbo_id].get("SyncToken", current.sync_token))
            mapped.append(replace(current, sync_token=token, source_hash=p.record_hash))


def _refresh_linked_tokens(run: PushRun, results: Sequence[BatchResult]) -> None:
    """Applying, changing or deleting a payment changes its invoices in QBO (Balance, LinkedTxn,
    SyncToken). Re-read those invoices' SyncTokens (one query per 1000) so the next edit of the
    sale is a plain sparse update, not a needless stale-object conflict."""
    linked = {
        str(txn["TxnId"])
        for r in results
        if r.ok and r.op.entity == "Payment"
        for line in (r.op.body.get("Line") or [])
        for txn in line.get("LinkedTxn", [])
        if txn.get("TxnType") == "Invoice"
    }
    if not linked:
        return
    fresh = run.client.read_many("Invoice", [QboId(i) for i in sorted(linked)])
    state.update_sync_tokens(
        run.engine,
        run.realm_id,
        "invoices",
        {str(q): str(e.get("SyncToken", "0")) for q, e in fresh.items()},
    )


def _replay_pending(
    run: PushRun,
    entity: catalogue.Entity,
    id_map: dict[SourceId, state.IdMapRow],
    report: PushReport,
) -> None:
    """Finish batches a killed run left unrecorded, by sending them again verbatim (R33)."""
    batches: dict[str, list[dict[str, Any]]] = {}
    for intent in state.pending_intents(run.engine, run.realm_id, entity.name):
        batches.setdefault(str(intent["details"]["batch"]), []).append(intent)
    for intents in batches.values():
        intents.sort(key=lambda i: int(i["details"]["pos"]))
        writes: list[tuple[Plan, BatchOp]] = []
        for intent in intents:
            details = intent["details"]
            body = loads(details["body_json"])
            payload_json = details.get("payload_json")
            op = BatchOp(
                _operation(intent["operation"]),
                details["qbo_entity"],
                body,
                intent["request_id"],
                key=intent["source_id"],
            )
            plan = Plan(
                _action(intent["operation"]),
                SourceId(intent["source_id"]),
                record_hash=intent["payload_hash"],
                body=body,
                qbo_id=QboId(str(body["Id"])) if "Id" in body else None,
                sync_token=str(body.get("SyncToken")) if "SyncToken" in body else None,
                created_by=details.get("created_by"),
                payload=loads(payload_json) if payload_json else None,
            )
            writes.append((plan, op))
        log.info("replaying an unfinished batch of %d %s writes", len(writes), entity.name)
        _refresh_linked_tokens(run, _send_and_record(run, entity, writes, id_map, report))
        report.counts["replayed"] += len(writes)


def _operation(name: str) -> BatchOperation:
    if name not in {"create", "update", "delete", "void"}:
        raise ValueError(f"not a write operation: {name}")
    return name  # type: ignore[return-value]


def _action(name: str) -> Action:
    return _operation(name)


def _op(run: PushRun, entity: catalogue.Entity, p: Plan) -> BatchOp | None:
    qbo = entity.qbo_name
    rid = request_id_for(run.realm_id, entity.name, p.source_id, p.record_hash or "", p.action)
    if p.action == "create" and p.body is not None:
        return BatchOp.create(qbo, p.body, rid, key=p.source_id)
    if p.action == "update" and p.body is not None and p.qbo_id is not None:
        return BatchOp.update(
            qbo, p.qbo_id, SyncToken(p.sync_token or "0"), p.body, rid, key=p.source_id
        )
    if p.action == "delete" and p.qbo_id is not None:
        rid = request_id_for(run.realm_id, entity.name, p.source_id, p.sync_token or "", "delete")
        return BatchOp.delete(qbo, p.qbo_id, SyncToken(p.sync_token or "0"), rid, key=p.source_id)
    if p.action == "void" and p.qbo_id is not None:
        rid = request_id_for(run.realm_id, entity.name, p.source_id, p.sync_token or "", "void")
        return BatchOp.void(qbo, p.qbo_id, SyncToken(p.sync_token or "0"), rid, key=p.source_id)
    return None


def _record_result(
    run: PushRun,
    entity: catalogue.Entity,
    p: Plan,
    result: BatchResult,
    id_map: Mapping[SourceId, state.IdMapRow],
    mapped: list[state.IdMapRow],
    ledger: list[state.LedgerRow],
    report: PushReport,
) -> None:
    rid = result.op.request_id
    if result.error is not None:
        if p.action == "delete" and _must_void(entity, result.error):
            return  # handled by the void fallback in a later batch (see _void_fallback)
        report.counts["failed"] += 1
        ledger.append(
            _ledger(run, entity, p, p.action, "failed", error=result.error, request_id=rid)
        )
        quarantine.notify_failure(
            run.engine,
            run.realm_id,
            entity.name,
            p.source_id,
            title=f"{entity.qbo_name} {p.action} failed",
            reason=f"{entity.name} {p.source_id}: QBO refused the {p.action}: {result.error}",
            fix=_fix_for(result.error),
        )
        return
    stored = result.entity or {}
    qbo_id = QboId(str(stored.get("Id", p.qbo_id or "")))
    token = str(stored.get("SyncToken")) if stored.get("SyncToken") is not None else p.sync_token
    current = id_map.get(p.source_id)
    if p.action in {"delete", "void"}:
        report.counts["deleted" if p.action == "delete" else "voided"] += 1
        base = current or state.IdMapRow(run.realm_id, entity.name, p.source_id, qbo_id, "sync")
        mapped.append(
            replace(
                base, deleted_in_source=True, sync_token=token, deleted_in_qbo=p.action == "delete"
            )
        )
        ledger.append(_ledger(run, entity, p, p.action, "ok", qbo_id=qbo_id, request_id=rid))
        return
    created_by = "sync" if p.action == "create" else (p.created_by or "sync")
    mapped.append(
        state.IdMapRow(
            realm_id=run.realm_id,
            entity=entity.name,
            source_id=p.source_id,
            qbo_id=qbo_id,
            created_by=created_by,
            sync_token=token,
            source_hash=p.record_hash,
            last_payload=p.payload,
            sent_at=current.sent_at if current else None,
            sent_to=current.sent_to if current else None,
        )
    )
    if result.conflict:
        ledger.append(_conflict(run, entity, p, qbo_id, report, "the source's change re-applied"))
    report.counts["created" if p.action == "create" else "updated"] += 1
    ledger.append(_ledger(run, entity, p, p.action, "ok", qbo_id=qbo_id, request_id=rid))


def _must_void(entity: catalogue.Entity, error: QboError) -> bool:
    return False


def _fix_for(error: QboError) -> str:
    code = error.code or ""
    fixes = {
        "6240": "another QBO customer, vendor or employee already uses this name: rename one",
        "6140": "the document number is already used in QBO: change it in the source",
        "2500": "a referenced record is missing or inactive in QBO: check the mappings",
        "610": "the QBO record was deleted or made inactive: re-activate it or unlink it",
        "5010": "the record changed in QBO at the same time: the next run retries",
    }
    return fixes.get(code, "correct the record in the source app; the next run retries it")


def _ledger(
    run: PushRun,
    entity: catalogue.Entity,
    p: Plan,
    operation: str,
    outcome: str,
    *,
    qbo_id: str | None = None,
    request_id: str | None = None,
    error: QboError | None = None,
    message: str | None = None,
    violations: Sequence[Violation] = (),
) -> state.LedgerRow:
    if violations:
        message = "; ".join(v.reason for v in violations)
    return state.LedgerRow(
        realm_id=run.realm_id,
        entity=entity.name,
        direction="push",
        operation=operation,
        outcome=outcome,
        run_id=run.run_id,
        source_id=p.source_id,
        qbo_id=qbo_id or p.qbo_id,
        request_id=request_id,
        error_code=(
            error.code if error is not None else (violations[0].rule if violations else None)
        ),
        error_message=str(error) if error is not None else message,
        payload_hash=p.record_hash,
        details=_details(error, violations),
    )


def _details(error: QboError | None, violations: Sequence[Violation]) -> dict[str, Any] | None:
    if violations:
        return {"violations": [asdict(v) for v in violations]}
    if error is not None:
        return {
            "retryable": error.retryable,
            "element": error.element,
            "intuit_tid": error.intuit_tid,
        }
    return None


# --------------------------------------------------------------------------- matching (R5, R10)


def _match_existing(
    run: PushRun,
    spec: PushSpec,
    plans: list[Plan],
    ledger: list[state.LedgerRow],
    mapped: list[state.IdMapRow],
    report: PushReport,
) -> list[Plan]:
    """Turn creates into matches where QBO already has a record with the exact same name."""
    if spec.match_field is None:
        return plans
    creates = [p for p in plans if p.action == "create" and p.body is not None]
    if not creates:
        return plans
    names = {
        str(p.body[spec.match_field]) for p in creates if p.body and p.body.get(spec.match_field)
    }
    found = find_by_exact_name(run.client, spec.entity.qbo_name, spec.match_field, names)
    out: list[Plan] = []
    for p in plans:
        name = str(p.body.get(spec.match_field)) if p.action == "create" and p.body else None
        hit = found.get(name) if name is not None else None
        if hit is None:
            out.append(p)
            continue
        qbo_id = QboId(str(hit["Id"]))
        report.counts["matched"] += 1
        mapped.append(
            state.IdMapRow(
                realm_id=run.realm_id,
                entity=spec.entity.name,
                source_id=p.source_id,
                qbo_id=qbo_id,
                created_by="matched",
                sync_token=str(hit.get("SyncToken", "0")),
                # The record's state is now what QBO holds: fields it lacks are filled by the
                # next change in the source, never by overwriting the match now (R6, R25).
                source_hash=p.record_hash,
                last_payload=p.payload,
            )
        )
        ledger.append(
            _ledger(
                run,
                spec.entity,
                p,
                "match",
                "ok",
                qbo_id=qbo_id,
                message=f"matched existing QBO {spec.entity.qbo_name} '{name}'",
            )
        )
    return out


def find_by_exact_name(
    client: QboClient, qbo_entity: str, field_name: str, names: Iterable[str]
) -> dict[str, dict[str, Any]]:
    """Existing active QBO records whose ``field_name`` equals one of ``names`` exactly.

    One ``IN`` query per 100 names (query literals escaped by the query builder); QBO's own
    comparison is case-insensitive, so the exact, case-sensitive check is done here (R5, R10).
    """
    wanted = sorted(set(names))
    found: dict[str, dict[str, Any]] = {}
    for i in range(0, len(wanted), 100):
        chunk = wanted[i : i + 100]
        for row in client.query_all(qbo_entity, [q.in_(field_name, tuple(chunk))]):
            value = row.get(field_name)
            if isinstance(value, str) and value in chunk:
                found.setdefault(value, row)
    return found
