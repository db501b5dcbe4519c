"""Compare one company's source app, QBO and warehouse (no writes anywhere but a temp table).

* **QBO** is asked only what it answers cheaply, through the company's one rate budget: a
  ``SELECT COUNT(*)`` per entity, a ``COUNT(*)`` of records changed after the warehouse's newest
  copy (is the warehouse behind?), and ``reports/CustomerBalance`` (QBO's own open receivables).
* **The source app** is read through its connector in keyset chunks into a temp table of the
  warehouse session (bounded memory); every comparison is then one set-based query in Postgres
  against ``sync.record_state`` (the engine's view of both sides) and ``raw_qbo`` (QBO's records
  as last pulled).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal
from typing import Any, cast

import sqlalchemy as sa

from qbo_pipelines import entities as catalogue
from qbo_pipelines.canonical import content_hash
from qbo_pipelines.qbo import query as q
from qbo_pipelines.qbo.client import QboClient
from qbo_pipelines.source_app.connector import SourceAppConnector
from qbo_pipelines.sync.engine.writes import TOTAL_TITLE
from qbo_pipelines.warehouse import raw_qbo


@dataclass(frozen=True)
class Compared:
    """How one catalogue entity is compared."""

    entity: str
    qbo_entities: tuple[str, ...]
    raw_tables: tuple[str, ...]
    money: bool
    dates: bool
    name_list: bool


COMPARED: tuple[Compared, ...] = tuple(
    Compared(
        e.name,
        e.qbo_names,
        tuple(raw_qbo.ENTITY_TABLES[qe] for qe in e.qbo_names),
        money=e.amount is not None,
        dates=e.dated is not None,
        name_list=e.name_list,
    )
    for e in catalogue.CATALOGUE
)
"""Every catalogue entity (customers, items, invoices with credit memos, payments, vendors,
bills), in catalogue order."""

BY_ENTITY = {c.entity: c for c in COMPARED}


def _mirrors(entity: str) -> bool:
    """QBO-origin records of ``entity`` mirror QBO (its pull spec's ``mirror``): never pushed
    back, QBO owns them whole (R16, R20)."""
    spec = catalogue.entity(entity).pull_spec
    return spec is not None and spec.mirror


NAME_LISTS = frozenset(e.qbo_name for e in catalogue.CATALOGUE if e.name_list)
RAW_OF = {qe: raw for c in COMPARED for qe, raw in zip(c.qbo_entities, c.raw_tables, strict=True)}


# --------------------------------------------------------------------------- QBO side


@dataclass
class QboFigures:
    """What QBO said: counts per QBO entity, records changed after the warehouse's copy, and
    the open receivables of its CustomerBalance report (None when the report failed)."""

    counts: dict[str, int] = field(default_factory=dict)
    newer: dict[str, int] = field(default_factory=dict)
    open_balance: Decimal | None = None

    def stale(self, warehouse: dict[str, int]) -> list[str]:
        """QBO entities the warehouse is behind on (a count differs or QBO has newer records)."""
        return [
            e
            for e in self.counts
            if self.counts[e] != warehouse.get(e, 0) or self.newer.get(e, 0) > 0
        ]


def warehouse_counts(engine: sa.Engine, realm_id: str) -> dict[str, int]:
    """Live (not deleted) records per QBO entity in ``raw_qbo``."""
    with engine.connect() as conn:
        return warehouse_counts_in(conn, realm_id)


def warehouse_counts_in(conn: sa.Connection, realm_id: str) -> dict[str, int]:
    """:func:`warehouse_counts` on an open connection."""
    return {
        qbo_entity: int(
            conn.execute(
                sa.text(
                    f"SELECT count(*) FROM raw_qbo.{table}"  # noqa: S608 - fixed names
                    " WHERE realm_id = :r AND NOT deleted"
                ),
                {"r": realm_id},
            ).scalar_one()
        )
        for qbo_entity, table in RAW_OF.items()
    }


def _watermarks(engine: sa.Engine, realm_id: str) -> dict[str, tuple[Any, int]]:
    """Per QBO entity: the newest ``LastUpdatedTime`` in ``raw_qbo`` (seconds, as QBO gives it)
    and how many live copies carry that second."""
    out: dict[str, tuple[Any, int]] = {}
    with engine.connect() as conn:
        for qbo_entity, table in RAW_OF.items():
            mark, n = conn.execute(
                sa.text(
                    f"WITH m AS (SELECT max(updated_time) AS t FROM raw_qbo.{table}"  # noqa: S608
                    " WHERE realm_id = :r) SELECT m.t, (SELECT count(*) FROM"
                    f" raw_qbo.{table} x WHERE x.realm_id = :r AND NOT x.deleted"
                    " AND x.updated_time >= m.t) FROM m"
                ),
                {"r": realm_id},
            ).one()
            out[qbo_entity] = (mark, int(cast(int, n)))
    return out


def read_qbo(client: QboClient, engine: sa.Engine, realm_id: str) -> QboFigures:
    """Counts, newer-than-the-warehouse counts and open receivables, from QBO (metered reads:
    three COUNT queries per entity and one report).

    QBO's times have whole seconds: the records changed after the second of the warehouse's
    newest copy, and those in that second beyond the copies the warehouse holds of it (a
    record whose copy is in that second and that changed since is one of the first: counted
    with the second alone, it cancelled its own copy and the change was missed)."""
    figures = QboFigures()
    for qbo_entity, (mark, held) in _watermarks(engine, realm_id).items():
        inactive = qbo_entity in NAME_LISTS
        figures.counts[qbo_entity] = client.count(qbo_entity, include_inactive=inactive)
        if mark is None:
            figures.newer[qbo_entity] = figures.counts[qbo_entity]
        else:
            # from the next second on (QBO compares times finer than the seconds it shows: a
            # ">" of the shown second would still take the records within it)
            later = [q.gte("MetaData.LastUpdatedTime", mark + timedelta(seconds=1))]
            after = client.count(qbo_entity, later, include_inactive=inactive)
            since = client.count(
                qbo_entity, [q.gte("MetaData.LastUpdatedTime", mark)], include_inactive=inactive
            )
            figures.newer[qbo_entity] = after + max(0, since - after - held)
    figures.open_balance = open_receivables(client, engine, realm_id)
    return figures


def latest_receivable_date(engine: sa.Engine, realm_id: str) -> date | None:
    """The latest TxnDate of an invoice, credit memo or payment the warehouse holds for the
    company: what QBO's open receivables are asked as of, so a transaction dated after the
    company's today (a future-dated invoice, a date already tomorrow in UTC) counts on both
    sides."""
    sql = sa.text(
        "SELECT max(d) FROM (SELECT max(txn_date) AS d FROM raw_qbo.invoices"
        " WHERE realm_id = :r AND NOT deleted UNION ALL SELECT max(txn_date)"
        " FROM raw_qbo.credit_memos WHERE realm_id = :r AND NOT deleted UNION ALL"
        " SELECT max(txn_date) FROM raw_qbo.payments WHERE realm_id = :r AND NOT deleted) x"
    )
    with engine.connect() as conn:
        latest: date | None = conn.execute(sql, {"r": realm_id}).scalar_one()
    return latest


def open_receivables(client: QboClient, engine: sa.Engine, realm_id: str) -> Decimal | None:
    """The TOTAL row of QBO's ``reports/CustomerBalance``: open receivables as of the later of
    the latest transaction date the warehouse holds and tomorrow (the company's today may be
    ahead of this machine's), so every transaction counts, as in the warehouse's sum."""
    latest = latest_receivable_date(engine, realm_id)
    as_of = max(latest or date.min, date.today() + timedelta(days=1))
    payload = client.report("CustomerBalance", report_date=as_of)
    rows = (payload.get("Rows") or {}).get("Row") or []
    for row in reversed(rows):
        cols = (row.get("Summary") or {}).get("ColData") or []
        if len(cols) >= 2 and str(cols[0].get("value", "")).upper() == "TOTAL":
            return Decimal(str(cols[-1].get("value") or "0"))
    return None


# --------------------------------------------------------------------------- source side

_SNAPSHOT_DDL = """
CREATE TEMP TABLE IF NOT EXISTS reconcile_source (
    entity    text NOT NULL,
    source_id text NOT NULL,
    origin    text NOT NULL,
    hash      text NOT NULL,
    name      text,
    amount    numeric(18, 2),
    txn_date  date,
    due_date  date,
    skipped   boolean NOT NULL DEFAULT false,
    PRIMARY KEY (entity, source_id)
) ON COMMIT DROP
"""

_PENDING_DDL = """
CREATE TEMP TABLE IF NOT EXISTS reconcile_pending (
    entity    text NOT NULL,
    source_id text NOT NULL,
    PRIMARY KEY (entity, source_id)
) ON COMMIT DROP
"""

_SNAPSHOT_INSERT = sa.text(
    "INSERT INTO reconcile_source (entity, source_id, origin, hash, name, amount, txn_date,"
    " due_date, skipped) SELECT :entity, u.* FROM unnest(CAST(:ids AS text[]),"
    " CAST(:origins AS text[]), CAST(:hashes AS text[]), CAST(:names AS text[]),"
    " CAST(:amounts AS numeric[]), CAST(:dates AS date[]), CAST(:dues AS date[]),"
    " CAST(:skipped AS boolean[])) AS u"
    " ON CONFLICT (entity, source_id) DO NOTHING"
)


def _values(
    entity: str, record: Any
) -> tuple[str | None, Decimal | None, date | None, date | None]:
    """(name, amount, date, due date) of a canonical record, as QBO would show them (the
    fields its catalogue row names: a name list's ``label_field``, a transaction's ``amount``
    and ``dated``, and its ``due_date`` if it has one)."""
    e = catalogue.entity(entity)
    if not e.transaction:
        return (getattr(record, e.label_field) if e.label_field else None), None, None, None
    amount = getattr(record, e.amount or "")
    return None, amount, getattr(record, e.dated or ""), getattr(record, "due_date", None)


def snapshot_source(
    conn: sa.Connection, reader: SourceAppConnector, realm_id: str, entities: Sequence[str]
) -> int:
    """Load every source record of ``entities`` into the session's temp table
    ``reconcile_source`` chunk by chunk, and the changes still waiting in the push's feed into
    ``reconcile_pending`` (:func:`_snapshot_pending`; both dropped at commit); returns how many
    records."""
    _snapshot_pending(conn, reader, realm_id, entities)
    conn.execute(sa.text(_SNAPSHOT_DDL))
    total = 0
    for entity in entities:
        for chunk in reader.iter_entity(entity):
            rows = [(r, _values(entity, r)) for r in chunk]
            conn.execute(
                _SNAPSHOT_INSERT,
                {
                    "entity": entity,
                    "ids": [str(r.source_id) for r, _ in rows],
                    "origins": [str(getattr(r, "origin", "source")) for r, _ in rows],
                    "hashes": [content_hash(r) for r, _ in rows],
                    "names": [v[0] for _, v in rows],
                    "amounts": [v[1] for _, v in rows],
                    "dates": [v[2] for _, v in rows],
                    "dues": [v[3] for _, v in rows],
                    "skipped": [_skipped(entity, r) for r, _ in rows],
                },
            )
            total += len(rows)
    return total


def _skipped(entity: str, record: Any) -> bool:
    """The push leaves this record out by rule (a contact with no sale, R4; one its
    organisation's customer stands for, R5): never a finding for being absent from QBO."""
    from qbo_pipelines.sync.specs import SPECS

    spec = SPECS.get(entity)
    return spec is not None and (
        spec.written_through(record) is not None or spec.skip_reason(record) is not None
    )


def _snapshot_pending(
    conn: sa.Connection, reader: SourceAppConnector, realm_id: str, entities: Sequence[str]
) -> int:
    """The source records of ``entities`` whose change waits in the push's feed, into the
    session's temp table ``reconcile_pending`` (``*``: the company has never been pushed, so
    every record waits): the push will carry them; they are no finding. Returns rows."""
    from qbo_pipelines.sync.engine import feed
    from qbo_pipelines.sync.push import DIRECTION

    conn.execute(sa.text(_PENDING_DDL))
    rows: list[dict[str, str]] = []
    for entity in entities:
        window = feed.open_window(conn.engine, reader, realm_id, DIRECTION, entity)
        ids = ["*"] if window.first else sorted(window.changed | window.deleted)
        rows += [{"e": entity, "s": str(i)} for i in ids]
    if rows:
        conn.execute(
            sa.text(
                "INSERT INTO reconcile_pending (entity, source_id) VALUES (:e, :s)"
                " ON CONFLICT DO NOTHING"
            ),
            rows,
        )
    return len(rows)


def _not_pending(alias: str) -> str:
    """SQL: the record ``alias`` (with ``source_id``) of entity ``:e`` has no change waiting
    in the push's feed."""
    return (
        " AND NOT EXISTS (SELECT 1 FROM reconcile_pending p WHERE p.entity = :e"
        f" AND p.source_id IN ({alias}.source_id, '*'))"
    )


# --------------------------------------------------------------------------- differences


REPAIRED_BY_PUSH = frozenset({"not_in_qbo", "source_changed", "unfinished_write"})
"""Finding kinds the push of the record repairs (the source holds what QBO lacks, or a write
is to be finished). A record gone from the source behind the change feed is not one: rows
that vanish without a delete (a TRUNCATE, a restore, a lost table) are no decision to delete
accounting documents, so the reconciliation reports them and never deletes in QBO."""


@dataclass(frozen=True)
class Finding:
    """One per-record difference."""

    entity: str
    record_id: str
    qbo_id: str | None
    kind: str
    field: str
    source_value: str | None
    qbo_value: str | None
    reason: str
    fix: str | None

    @property
    def key(self) -> tuple[str, str, str, str]:
        return (self.entity, self.record_id, self.kind, self.field)

    @property
    def repairable(self) -> bool:
        """Safe to repair through the push: the source holds what QBO lacks or is behind on."""
        return self.kind in REPAIRED_BY_PUSH and self.fix is None


def raw_join(c: Compared) -> str:
    """``raw_qbo`` row(s) of a linked record as one derived table ``r``."""
    parts = [
        f"SELECT '{qe}' AS qbo_entity, qbo_id, name, total_amt, txn_date, due_date, active,"
        f" deleted FROM raw_qbo.{table} WHERE realm_id = :r"
        for qe, table in zip(c.qbo_entities, c.raw_tables, strict=True)
    ]
    return "(" + " UNION ALL ".join(parts) + ")"


def find(conn: sa.Connection, realm_id: str, entities: Sequence[str]) -> list[Finding]:
    """Every difference of ``entities`` between the snapshot, the engine state and raw_qbo."""
    out: list[Finding] = []
    for name in entities:
        c = BY_ENTITY[name]
        params = {"r": realm_id, "e": name}
        label = name.rstrip("s")
        # Writes a killed run left open: stored before the call, its answer never recorded.
        for sid, qbo_id, op in _all(
            conn,
            sa.text(
                "SELECT s.source_id, s.qbo_id, coalesce(s.intent->>'op', 'write')"
                " FROM sync.record_state s WHERE s.realm_id = :r AND s.entity = :e"
                " AND s.intent IS NOT NULL AND s.source_id IS NOT NULL"
                " ORDER BY length(s.source_id), s.source_id"
            ),
            params,
        ):
            out.append(
                Finding(
                    name,
                    sid,
                    qbo_id,
                    "unfinished_write",
                    "",
                    None,
                    None,
                    f"{label} #{sid}: a {op} sent to QBO was interrupted before its answer was "
                    "recorded (the process stopped): finished now by sending it again with the "
                    "same requestid, so QBO makes it once",
                    None,
                )
            )
        # Source records the engine has no state for: a change the push never saw.
        for sid, amount in _all(
            conn,
            sa.text(
                "SELECT x.source_id, x.amount FROM reconcile_source x WHERE x.entity = :e"
                " AND x.origin = 'source' AND NOT x.skipped AND NOT EXISTS (SELECT 1"
                " FROM sync.record_state s WHERE s.realm_id = :r AND s.entity = :e"
                " AND s.source_id = x.source_id)" + _not_pending("x")
                + " ORDER BY length(x.source_id), x.source_id"
            ),
            params,
        ):
            out.append(
                Finding(
                    name,
                    sid,
                    None,
                    "not_in_qbo",
                    "",
                    _shown(amount, "present"),
                    None,
                    f"{label} #{sid} is in the source app but the sync never saw it "
                    "(no QBO twin, no sync state): pushed now",
                    None,
                )
            )
        # Records the sync knows that are gone from the source, their delete never in the feed.
        for sid, qbo_id in _all(
            conn,
            sa.text(
                "SELECT s.source_id, s.qbo_id FROM sync.record_state s WHERE s.realm_id = :r"
                " AND s.entity = :e AND s.source_id IS NOT NULL AND s.status <> 'deleted'"
                " AND NOT s.deleted_in_source AND s.intent IS NULL AND NOT EXISTS (SELECT 1"
                " FROM reconcile_source x WHERE x.entity = :e AND x.source_id = s.source_id)"
                + _not_pending("s")
                + " ORDER BY length(s.source_id), s.source_id"
            ),
            params,
        ):
            out.append(
                Finding(
                    name,
                    sid,
                    qbo_id,
                    "gone_from_source",
                    "",
                    None,
                    "present" if qbo_id else None,
                    f"{label} #{sid} is gone from the source app but the sync never saw the "
                    "delete (no change-log entry): nothing was changed in QBO",
                    _gone_fix(realm_id, name, sid, qbo_id),
                )
            )
        # Synced records whose source content moved without the push seeing the change.
        mirror = _mirrors(name)
        for sid, qbo_id, origin, amount, qbo_amount in _all(
            conn,
            sa.text(
                "SELECT x.source_id, s.qbo_id, x.origin, x.amount, w.total_amt"
                " FROM reconcile_source x"
                " JOIN sync.record_state s ON s.realm_id = :r AND s.entity = :e"
                "  AND s.source_id = x.source_id"
                f" LEFT JOIN {raw_join(c)} w ON w.qbo_entity = s.qbo_entity"
                "  AND w.qbo_id = s.qbo_id"
                " WHERE x.entity = :e AND s.status = 'synced' AND s.intent IS NULL"
                "  AND NOT s.deleted_in_qbo AND s.qbo_id IS NOT NULL"
                "  AND s.source_hash IS DISTINCT FROM x.hash" + _not_pending("x")
                + " ORDER BY length(x.source_id), x.source_id"
            ),
            params,
        ):
            owned = mirror and origin == "qbo"
            out.append(
                Finding(
                    name,
                    sid,
                    qbo_id,
                    "source_changed",
                    "",
                    _shown(amount, "changed"),
                    _shown(qbo_amount, "as last synced"),
                    (
                        f"{label} #{sid} was changed in the source app, but it mirrors QBO "
                        f"{qbo_id} (pulled from QBO; QBO owns it): the change never goes to QBO"
                        if owned
                        else f"{label} #{sid} changed in the source app after its last sync "
                        "and the push never saw the change: pushed now"
                    ),
                    (
                        f"Make the change in QBO (record {qbo_id}); the next pull brings it "
                        "back into the source app."
                        if owned
                        else None
                    ),
                )
            )
        # Live source records whose QBO twin is gone.
        for sid, qbo_id, qbo_entity, amount in _all(
            conn,
            sa.text(
                "SELECT x.source_id, s.qbo_id, s.qbo_entity, x.amount FROM reconcile_source x"
                " JOIN sync.record_state s ON s.realm_id = :r AND s.entity = :e"
                "  AND s.source_id = x.source_id"
                f" LEFT JOIN {raw_join(c)} w ON w.qbo_entity = s.qbo_entity"
                "  AND w.qbo_id = s.qbo_id"
                " WHERE x.entity = :e AND x.origin = 'source' AND s.qbo_id IS NOT NULL"
                "  AND NOT s.deleted_in_source"
                "  AND (s.deleted_in_qbo OR w.qbo_id IS NULL OR w.deleted)"
                " ORDER BY length(x.source_id), x.source_id"
            ),
            params,
        ):
            out.append(
                Finding(
                    name,
                    sid,
                    qbo_id,
                    "deleted_in_qbo",
                    "",
                    _shown(amount, "present"),
                    None,
                    f"{label} #{sid} is live in the source app but its QBO {qbo_entity} "
                    f"{qbo_id} was deleted or voided in QBO (the sync never revives a record "
                    "deleted on one side)",
                    _deleted_fix(name, sid),
                )
            )
        out.extend(_field_differences(conn, c, realm_id, label))
    return out


def _all(conn: sa.Connection, sql: sa.TextClause, params: dict[str, Any]) -> list[tuple[Any, ...]]:
    return [tuple(r) for r in conn.execute(sql, params)]


def _shown(value: object, otherwise: str) -> str:
    if isinstance(value, Decimal):
        return str(value.quantize(Decimal("0.01")))
    return otherwise


def _gone_fix(realm_id: str, entity: str, sid: str, qbo_id: str | None) -> str:
    """What to do about a record gone from the source without a delete in its change log."""
    twin = f"its QBO twin {qbo_id}" if qbo_id else "its QBO twin"
    carried = (
        f"it leaves {twin} as it is: {entity} are never deleted in QBO, R9"
        if catalogue.entity(entity).name_list
        else f"it deletes {twin} when the sync created it, R17"
    )
    return (
        f"If the record #{sid} was lost (a TRUNCATE, a restore, a bulk fix), restore it in the "
        "source app: QBO still has it. If it was deleted on purpose, run `qbo-pipelines sync "
        f"push --realm {realm_id} --full` (with `--delete-missing` when many rows went at "
        f"once): the push records the delete ({carried})."
    )


def _deleted_fix(entity: str, sid: str) -> str:
    if catalogue.entity(entity).name_list:
        return (
            f"Reactivate it in QBO if it was removed by mistake, or leave it: {entity} are "
            "never deleted on the other side (R9)."
        )
    return (
        f"If the delete in QBO was intended, delete the record #{sid} in the source app too "
        "(this problem then resolves). If not, create the record again in the source app: "
        "the next push creates a new QBO twin."
    )


_FIELDS: dict[str, tuple[tuple[str, str, str], ...]] = {
    # field, source column, raw column (compared as text, money to the cent)
    # QBO's name as the pull last took it (a rename in QBO: customers are QBO's to name, the
    # source app keeps it beside its own), or an inactive record's (QBO renames it "... (deleted)")
    # is no difference: only a name neither side's sync state explains is
    "name": (
        (
            "name",
            "x.name",
            "CASE WHEN NOT coalesce(w.active, true) OR w.name = s.qbo_base->>'DisplayName'"
            " THEN x.name ELSE w.name END",
        ),
    ),
    "money": (
        # a total the push already reported as QBO's own computation (its tax: an open
        # notification with the fix) is not reported again with another fix
        (
            "total",
            "x.amount::text",
            "CASE WHEN EXISTS (SELECT 1 FROM sync.notifications n WHERE n.realm_id = :r"
            " AND n.entity = :e AND n.record_id = x.source_id AND n.title = :total_title"
            " AND n.resolved_at IS NULL) THEN x.amount::text"
            " ELSE w.total_amt::numeric(18,2)::text END",
        ),
        ("date", "x.txn_date::text", "w.txn_date::text"),
        # QBO sets a due date from the terms when the source gives none; a CreditMemo has none
        (
            "due_date",
            "x.due_date::text",
            "CASE WHEN w.qbo_entity = 'CreditMemo' OR x.due_date IS NULL THEN x.due_date::text"
            " ELSE w.due_date::text END",
        ),
    ),
}


def _field_differences(
    conn: sa.Connection, c: Compared, realm_id: str, label: str
) -> Iterator[Finding]:
    """Fields differing while both sides are in step with the sync (nothing pending)."""
    fields = _FIELDS["money" if c.money else "name"]
    selects = " UNION ALL ".join(
        f"SELECT x.source_id, s.qbo_id, x.origin, '{f}' AS field, {src} AS sv, {raw} AS qv"
        " FROM reconcile_source x JOIN sync.record_state s ON s.realm_id = :r"
        " AND s.entity = :e AND s.source_id = x.source_id"
        f" JOIN {raw_join(c)} w ON w.qbo_entity = s.qbo_entity AND w.qbo_id = s.qbo_id"
        " WHERE x.entity = :e AND s.status = 'synced' AND s.intent IS NULL"
        " AND s.source_hash = x.hash AND NOT s.deleted_in_qbo AND NOT w.deleted"
        f" AND {src} IS DISTINCT FROM {raw}"
        for f, src, raw in fields
    )
    rows = _all(
        conn,
        sa.text(f"SELECT * FROM ({selects}) d ORDER BY length(source_id), source_id, field"),
        {"r": realm_id, "e": c.entity, "total_title": TOTAL_TITLE},
    )
    for sid, qbo_id, origin, fname, sv, qv in rows:
        owned = _mirrors(c.entity) and origin == "qbo"
        yield Finding(
            c.entity,
            sid,
            qbo_id,
            "differs",
            fname,
            sv,
            qv,
            f"{label} #{sid}: {fname} is {sv or 'empty'} in the source app but {qv or 'empty'} "
            f"in QBO {qbo_id}, and neither side has a change the sync has not seen"
            + (
                " (it was edited in QBO where the source app cannot follow, e.g. its lines)"
                if not owned
                else ""
            ),
            (
                f"Pull again (`qbo-pipelines sync pull --realm {realm_id} --full`): QBO owns "
                "this record."
                if owned
                else f"Decide which is right. If the source app is, edit the record #{sid} "
                + (
                    "there: change one of its lines when its total or lines differ (a line "
                    "change re-sends all its lines; another field is sent alone), and the "
                    "source wins; if QBO is, make the source app match it."
                    if c.money
                    else "there (any change re-sends it, and the source wins); if QBO is, "
                    "make the source app match it."
                )
            ),
        )


__all__ = [
    "COMPARED",
    "NAME_LISTS",
    "Compared",
    "Finding",
    "QboFigures",
    "open_receivables",
    "find",
    "raw_join",
    "read_qbo",
    "snapshot_source",
    "warehouse_counts",
    "warehouse_counts_in",
]
