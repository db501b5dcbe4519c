"""The quarantine: records held back by data-quality rules or missing mappings (R40, R12, R31).

A repository over ``sync.quarantine`` (one row per company, entity, record and broken rule) and
``sync.notifications`` (one open row per record and problem, what the operator sees).

Life cycle, driven by the push planner on every run:

1. the planner checks each staged record (:func:`qbo_pipelines.quality.rules.check` plus its
   reference checks) and calls :func:`record_checks` (or :func:`hold` and :func:`release`);
2. a record with violations is **held**: its rows are upserted (``first_seen`` kept while the
   problem stays open, ``last_seen`` / ``last_run_id`` updated, rules it no longer breaks
   resolved) and ONE notification per record is opened or refreshed with the reasons and fixes;
3. a held record that now passes is **released**: its rows get ``resolved_at`` and its
   notification is resolved, so it disappears from open problems and is written by the same
   run. "When the cause is fixed, the next run syncs it with no other action."

Everything is bulk (one statement per step, arrays through ``unnest``) and idempotent: running
the same hold or release twice changes nothing but ``last_seen``.

Write failures that the push layer records (QBO rejected a write) go through
:func:`notify_failure` and :func:`resolve_notifications` (R31).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final, Literal, cast

import sqlalchemy as sa

from qbo_pipelines.quality.rules import Violation, merge_by_rule

Bind = sa.Engine | sa.Connection
"""An engine (each call is its own transaction) or a connection (the caller's transaction)."""

Severity = Literal["info", "warning", "error"]

HOLD_TITLE: Final = "Held back before writing to QuickBooks"
"""Title of the notification opened for a record the push holds back (one per record)."""

HOLD_TITLE_SOURCE: Final = "Held back before writing to the source app"
"""Title of the notification opened for a QBO record the pull holds back (one per record)."""

Direction = Literal["qbo", "source"]
"""Where a held record was not written: QBO (the push) or the source app (the pull)."""

_HOLD: Final[dict[Direction, tuple[str, str]]] = {
    "qbo": (HOLD_TITLE, "QBO"),
    "source": (HOLD_TITLE_SOURCE, "the source app"),
}


@dataclass(frozen=True, slots=True)
class QuarantinedItem:
    """One open quarantine row: a record and one rule it breaks."""

    realm_id: str
    entity: str
    source_id: str
    rule: str
    reason: str
    fix: str | None
    first_seen: datetime
    last_seen: datetime
    last_run_id: str | None


@dataclass(frozen=True, slots=True)
class Notification:
    """One operator notification (R31)."""

    id: int
    realm_id: str
    entity: str
    record_id: str
    severity: str
    title: str
    reason: str
    fix: str | None
    created_at: datetime
    resolved_at: datetime | None


@dataclass(frozen=True, slots=True)
class CheckOutcome:
    """What :func:`record_checks` did: the source ids held and released in this run."""

    held: tuple[str, ...]
    released: tuple[str, ...]


@contextmanager
def _tx(bind: Bind) -> Iterator[sa.Connection]:
    if isinstance(bind, sa.Connection):
        yield bind
    else:
        with bind.begin() as conn:
            yield conn


_UPSERT_ROWS = sa.text(
    """
    INSERT INTO sync.quarantine AS q
        (realm_id, entity, source_id, rule, reason, fix, first_seen, last_seen, last_run_id,
         resolved_at)
    SELECT :realm_id, :entity, u.source_id, u.rule, u.reason, u.fix, now(), now(), :run_id, NULL
    FROM unnest(CAST(:source_ids AS text[]), CAST(:rules AS text[]),
                CAST(:reasons AS text[]), CAST(:fixes AS text[])) AS u(source_id, rule, reason, fix)
    ON CONFLICT (realm_id, entity, source_id, rule) DO UPDATE SET
        reason      = EXCLUDED.reason,
        fix         = EXCLUDED.fix,
        last_seen   = EXCLUDED.last_seen,
        last_run_id = EXCLUDED.last_run_id,
        first_seen  = CASE WHEN q.resolved_at IS NULL THEN q.first_seen
                           ELSE EXCLUDED.first_seen END,
        resolved_at = NULL
    """
)

# Rules a held record no longer breaks (it was re-checked as a whole in this run).
_RESOLVE_STALE_RULES = sa.text(
    """
    UPDATE sync.quarantine AS q SET resolved_at = now(), last_run_id = :run_id
    WHERE q.realm_id = :realm_id AND q.entity = :entity AND q.resolved_at IS NULL
      AND q.source_id = ANY(CAST(:held AS text[]))
      AND NOT EXISTS (
          SELECT 1
          FROM unnest(CAST(:source_ids AS text[]), CAST(:rules AS text[])) AS u(source_id, rule)
          WHERE u.source_id = q.source_id AND u.rule = q.rule)
    """
)

_UPSERT_NOTIFICATIONS = sa.text(
    """
    INSERT INTO sync.notifications AS n (realm_id, entity, record_id, severity, title, reason, fix)
    SELECT :realm_id, :entity, u.record_id, :severity, :title, u.reason, u.fix
    FROM unnest(CAST(:record_ids AS text[]), CAST(:reasons AS text[]), CAST(:fixes AS text[]))
         AS u(record_id, reason, fix)
    ON CONFLICT (realm_id, entity, record_id, title) WHERE resolved_at IS NULL DO UPDATE SET
        reason   = EXCLUDED.reason,
        fix      = EXCLUDED.fix,
        severity = EXCLUDED.severity
    RETURNING n.id
    """
)

_RELEASE_ROWS = sa.text(
    """
    UPDATE sync.quarantine SET resolved_at = now(), last_run_id = :run_id
    WHERE realm_id = :realm_id AND entity = :entity AND resolved_at IS NULL
      AND source_id = ANY(CAST(:source_ids AS text[]))
    RETURNING source_id
    """
)

_RESOLVE_NOTIFICATIONS = sa.text(
    """
    UPDATE sync.notifications SET resolved_at = now()
    WHERE realm_id = :realm_id AND entity = :entity AND resolved_at IS NULL
      AND record_id = ANY(CAST(:record_ids AS text[]))
      AND (CAST(:titles AS text[]) IS NULL OR title = ANY(CAST(:titles AS text[])))
    """
)


def _notification_text(
    source_id: str, violations: Sequence[Violation], target: str
) -> tuple[str, str | None]:
    """One notification per record: every reason, every distinct fix."""
    reasons = [v.reason for v in violations]
    fixes: list[str] = []
    for v in violations:
        if v.fix and v.fix not in fixes:
            fixes.append(v.fix)
    rules = ", ".join(v.rule for v in violations)
    count = len(violations)
    head = f"Record {source_id} was not written to {target} ({count} problem{'s' * (count != 1)}: "
    reason = f"{head}{rules}). " + " ".join(_sentence(r) for r in reasons)
    return reason, (" ".join(fixes) or None)


def _sentence(text: str) -> str:
    return text if text.endswith((".", "!", "?")) else f"{text}."


def hold(
    engine: Bind,
    realm_id: str,
    entity: str,
    run_id: str | None,
    violations_by_source_id: Mapping[str, Sequence[Violation]],
    direction: Direction = "qbo",
) -> int:
    """Quarantine records with their violations and notify the operator (R40, R31).

    Bulk and idempotent: one upsert for all rows, one for the notifications. For each record
    given, rules it no longer breaks are resolved (the record was re-checked as a whole).
    Records with an empty violation list are ignored (use :func:`release` for clean ones).

    Args:
        engine: the warehouse engine, or a connection inside the caller's transaction.
        realm_id: the QBO company.
        entity: catalogue entity name (``customers``, ``invoices``...).
        run_id: the Dagster run id (stored as ``last_run_id``).
        violations_by_source_id: for each held record, every violation it has now.
        direction: where the records were not written (the notification says which).

    Returns:
        The number of records held.
    """
    merged = {
        str(source_id): merge_by_rule(vs)
        for source_id, vs in sorted(violations_by_source_id.items())
        if vs
    }
    if not merged:
        return 0
    rows = [(sid, v) for sid, vs in merged.items() for v in vs]
    base = {"realm_id": realm_id, "entity": entity, "run_id": run_id}
    title, target = _HOLD[direction]
    texts = {sid: _notification_text(sid, vs, target) for sid, vs in merged.items()}
    with _tx(engine) as conn:
        conn.execute(
            _UPSERT_ROWS,
            {
                **base,
                "source_ids": [sid for sid, _ in rows],
                "rules": [v.rule for _, v in rows],
                "reasons": [v.reason for _, v in rows],
                "fixes": [v.fix for _, v in rows],
            },
        )
        conn.execute(
            _RESOLVE_STALE_RULES,
            {
                **base,
                "held": list(merged),
                "source_ids": [sid for sid, _ in rows],
                "rules": [v.rule for _, v in rows],
            },
        )
        conn.execute(
            _UPSERT_NOTIFICATIONS,
            {
                "realm_id": realm_id,
                "entity": entity,
                "severity": "error",
                "title": title,
                "record_ids": list(texts),
                "reasons": [reason for reason, _ in texts.values()],
                "fixes": [fix for _, fix in texts.values()],
            },
        )
    return len(merged)


def release(
    engine: Bind,
    realm_id: str,
    entity: str,
    source_ids_now_clean: Iterable[str],
    run_id: str | None,
) -> list[str]:
    """Release records that now pass every rule: resolve their rows and their notification.

    Safe to call with every clean record of a run (not only the held ones): records that were
    never held are untouched, so the call is idempotent.

    Args:
        engine: the warehouse engine, or a connection inside the caller's transaction.
        realm_id: the QBO company.
        entity: catalogue entity name.
        source_ids_now_clean: records checked in this run with no violation.
        run_id: the Dagster run id that released them.

    Returns:
        The source ids that were held and are now released (sorted).
    """
    ids = sorted({str(s) for s in source_ids_now_clean})
    if not ids:
        return []
    with _tx(engine) as conn:
        released = sorted(
            {
                row[0]
                for row in conn.execute(
                    _RELEASE_ROWS,
                    {"realm_id": realm_id, "entity": entity, "run_id": run_id, "source_ids": ids},
                )
            }
        )
        if released:
            conn.execute(
                _RESOLVE_NOTIFICATIONS,
                {
                    "realm_id": realm_id,
                    "entity": entity,
                    "record_ids": released,
                    # either direction's (held records' keys never meet: the pull's are qbo:<id>)
                    "titles": [title for title, _ in _HOLD.values()],
                },
            )
    return released


def record_checks(
    engine: Bind,
    realm_id: str,
    entity: str,
    run_id: str | None,
    results: Mapping[str, Sequence[Violation]],
) -> CheckOutcome:
    """Store one run's check results: hold the failing records, release the clean ones.

    Args:
        engine: the warehouse engine, or a connection inside the caller's transaction.
        realm_id: the QBO company.
        entity: catalogue entity name.
        run_id: the Dagster run id.
        results: every record checked in this run -> its violations (empty when clean).

    Returns:
        The held and the released source ids.
    """
    failing = {sid: vs for sid, vs in results.items() if vs}
    clean = [sid for sid, vs in results.items() if not vs]
    with _tx(engine) as conn:
        hold(conn, realm_id, entity, run_id, failing)
        released = release(conn, realm_id, entity, clean, run_id)
    return CheckOutcome(held=tuple(sorted(failing)), released=tuple(released))


def open_items(engine: Bind, realm_id: str, entity: str | None = None) -> list[QuarantinedItem]:
    """The open quarantine rows of a company (optionally one entity), oldest record first.

    Args:
        engine: the warehouse engine or a connection.
        realm_id: the QBO company.
        entity: restrict to one catalogue entity.

    Returns:
        One item per record and broken rule, ordered by entity, source id and rule.
    """
    query = sa.text(
        """
        SELECT realm_id, entity, source_id, rule, reason, fix, first_seen, last_seen, last_run_id
        FROM sync.quarantine
        WHERE realm_id = :realm_id AND resolved_at IS NULL
          AND (CAST(:entity AS text) IS NULL OR entity = CAST(:entity AS text))
        ORDER BY entity, source_id, rule
        """
    )
    with _tx(engine) as conn:
        rows = conn.execute(query, {"realm_id": realm_id, "entity": entity}).all()
    return [QuarantinedItem(*cast(tuple[Any, ...], row)) for row in rows]


def held_ids(engine: Bind, realm_id: str, entity: str) -> frozenset[str]:
    """Source ids of an entity with at least one open quarantine row."""
    return frozenset(item.source_id for item in open_items(engine, realm_id, entity))


def notify_failure(
    engine: Bind,
    realm_id: str,
    entity: str,
    record_id: str,
    title: str,
    reason: str,
    fix: str | None,
    *,
    severity: Severity = "error",
) -> int:
    """Open (or refresh) a notification for a record that failed to write (R31).

    One open notification per record and title: a retry that fails again refreshes the reason
    and fix instead of piling up duplicates.

    Args:
        engine: the warehouse engine, or a connection inside the caller's transaction.
        realm_id: the QBO company.
        entity: catalogue entity name.
        record_id: the record's source id (or QBO id for pull-side failures).
        title: short stable title, e.g. ``QBO rejected the invoice``.
        reason: what went wrong, naming the record and the value.
        fix: what the operator should do.
        severity: ``info``, ``warning`` or ``error``.

    Returns:
        The notification id.
    """
    with _tx(engine) as conn:
        return int(
            conn.execute(
                _UPSERT_NOTIFICATIONS,
                {
                    "realm_id": realm_id,
                    "entity": entity,
                    "severity": severity,
                    "title": title,
                    "record_ids": [record_id],
                    "reasons": [reason],
                    "fixes": [fix],
                },
            ).scalar_one()
        )


def resolve_notifications(
    engine: Bind,
    realm_id: str,
    entity: str,
    record_ids: Iterable[str],
    *,
    title: str | None = None,
) -> int:
    """Resolve the open notifications of records (e.g. after they were written successfully).

    Args:
        engine: the warehouse engine, or a connection inside the caller's transaction.
        realm_id: the QBO company.
        entity: catalogue entity name.
        record_ids: the records.
        title: only notifications with this title (None: all of theirs).

    Returns:
        How many notifications were resolved.
    """
    ids = sorted({str(r) for r in record_ids})
    if not ids:
        return 0
    with _tx(engine) as conn:
        result = conn.execute(
            _RESOLVE_NOTIFICATIONS,
            {
                "realm_id": realm_id,
                "entity": entity,
                "record_ids": ids,
                "titles": None if title is None else [title],
            },
        )
        return int(result.rowcount)


def open_notifications(
    engine: Bind, realm_id: str, entity: str | None = None
) -> list[Notification]:
    """The open notifications of a company (optionally one entity), oldest first."""
    query = sa.text(
        """
        SELECT id, realm_id, entity, record_id, severity, title, reason, fix, created_at,
               resolved_at
        FROM sync.notifications
        WHERE realm_id = :realm_id AND resolved_at IS NULL
          AND (CAST(:entity AS text) IS NULL OR entity = CAST(:entity AS text))
        ORDER BY created_at, id
        """
    )
    with _tx(engine) as conn:
        rows = conn.execute(query, {"realm_id": realm_id, "entity": entity}).all()
    return [Notification(*cast(tuple[Any, ...], row)) for row in rows]


__all__ = [
    "HOLD_TITLE",
    "HOLD_TITLE_SOURCE",
    "CheckOutcome",
    "Notification",
    "QuarantinedItem",
    "hold",
    "held_ids",
    "notify_failure",
    "open_items",
    "open_notifications",
    "record_checks",
    "release",
    "resolve_notifications",
]
