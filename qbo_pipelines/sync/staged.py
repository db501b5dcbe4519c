"""One snapshot per push run: what ``raw/source`` read is what ``staged/qbo`` checks and what
``pushed/qbo`` writes (issue 9, R40).

* :func:`decode` turns the canonical JSON stored in ``raw_source.<entity>.data`` and
  ``staging.<entity>.data`` (:func:`qbo_pipelines.canonical.as_json`) back into the canonical
  dataclass, exactly: ``content_hash(decode(as_json(r))) == content_hash(r)``.
* ``sync.run_windows`` (sql/warehouse/110_run_windows.sql) keeps, per (run, company, entity),
  what the extract covered: the change-feed window, whether every record or chosen ids were
  read, and the deletes it found; the stage adds how many records it staged.
* :func:`iter_staged` (the push's reader) reads the run's staged rows in keyset pages, never
  the whole entity at once; :func:`iter_raw` reads a run's raw rows the stage cannot copy in
  Postgres (extracted before their staged values were kept).
"""

from __future__ import annotations

import dataclasses
import functools
import json
import types
import typing
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any, Literal, TypeVar

import orjson
import sqlalchemy as sa

from qbo_pipelines import entities as catalogue
from qbo_pipelines.canonical import (
    SourceId,
)
from qbo_pipelines.warehouse import bulk

T = TypeVar("T")
Decoder = Callable[[Any], Any]


class DecodeError(ValueError):
    """Stored canonical JSON that does not fit its canonical type."""


class NoSnapshotError(RuntimeError):
    """A staged push found nothing its run extracted and staged for the entity."""


# --------------------------------------------------------------------------- the decoder


def decode(kind: type[T], data: Mapping[str, Any]) -> T:
    """The canonical record of type ``kind`` that :func:`~qbo_pipelines.canonical.as_json`
    rendered as ``data`` (Decimals from their exact strings, dates and aware datetimes from
    ISO text, nested addresses, lines and invalid values, literals checked).

    Raises:
        DecodeError: a missing required field, an unknown field, or a value of the wrong shape.
    """
    record: T = _class_decoder(kind)(data)
    return record


def decode_entity(entity: str, data: Mapping[str, Any]) -> Any:
    """The canonical record of a source entity (``customers``, ``invoices``...) from its JSON."""
    try:
        kind = catalogue.source_entity(entity).canonical_type
    except KeyError:
        raise DecodeError(f"no canonical type for entity {entity!r}") from None
    return decode(kind, data)


_CLASS_DECODERS: dict[type[Any], Decoder] = {}


def _class_decoder(kind: type[Any]) -> Decoder:
    found = _CLASS_DECODERS.get(kind)
    if found is None:
        found = _CLASS_DECODERS[kind] = _build_class_decoder(kind)
    return found


def _build_class_decoder(kind: type[Any]) -> Decoder:
    if not dataclasses.is_dataclass(kind):
        raise TypeError(f"{kind.__name__} is not a dataclass")
    hints = typing.get_type_hints(kind)
    fields = [f for f in dataclasses.fields(kind) if f.init]
    decoders = {f.name: _decoder(hints[f.name]) for f in fields}
    required = frozenset(
        f.name
        for f in fields
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    )
    name = kind.__name__

    def checked(value: Any) -> Any:
        if not isinstance(value, Mapping):
            raise DecodeError(f"{name}: expected an object, got {type(value).__name__}")
        unknown = set(value) - decoders.keys()
        if unknown:
            raise DecodeError(f"{name}: unknown field(s) {', '.join(sorted(map(str, unknown)))}")
        missing = required - value.keys()
        if missing:
            raise DecodeError(f"{name}: missing field(s) {', '.join(sorted(missing))}")
        kwargs: dict[str, Any] = {}
        for key, item in value.items():
            try:
                kwargs[key] = decoders[key](item)
            except DecodeError as err:
                raise DecodeError(f"{name}.{key}: {err}") from None
        try:
            return kind(**kwargs)
        except ValueError as err:  # e.g. a naive datetime (CanonicalError)
            raise DecodeError(f"{name}: {err}") from None

    return _fast_class_decoder(kind, [f.name for f in fields], hints, checked)


class _NotFast(Exception):
    """A value the generated decoder does not take as it is: the checked decoder decides."""


def _not_fast() -> Any:
    raise _NotFast


def _fast_class_decoder(
    kind: type[Any], names: list[str], hints: Mapping[str, Any], checked: Decoder
) -> Decoder:
    """One generated function per class for what :func:`~qbo_pipelines.canonical.as_json`
    writes (a dict with every field): each field converted inline (``kind(a=..., b=...)``), no
    per-field loop, lookup or partial call (the push reads 100k staged sales through it). Any
    other value, and any value a conversion refuses, goes to ``checked``, the general decoder,
    which gives the same record or the precise :class:`DecodeError`."""
    if not all(n.isidentifier() for n in names):
        return checked
    scope: dict[str, Any] = {
        "kind": kind,
        "checked": checked,
        "keys": frozenset(names),
        "fail": _not_fast,
        "Decimal": Decimal,
        "date_iso": date.fromisoformat,
    }
    args = ", ".join(f"{n}={_fast_expr(hints[n], f'value[{n!r}]', scope, n)}" for n in names)
    code = (
        "def run(value):\n"
        "    if type(value) is dict and value.keys() == keys:\n"
        "        try:\n"
        f"            return kind({args})\n"
        "        except Exception:\n"
        "            pass\n"
        "    return checked(value)\n"
    )
    exec(compile(code, f"<decoder of {kind.__name__}>", "exec"), scope)  # noqa: S102
    run: Decoder = scope["run"]
    run.checked = checked  # type: ignore[attr-defined]  # the reference (tests compare)
    return run


def _fast_expr(hint: Any, src: str, scope: dict[str, Any], name: str) -> str:
    """A Python expression converting ``src`` as :func:`_decoder` would for ``hint``, calling
    ``fail()`` where the checked decoder would refuse (it then gives the error)."""
    supertype = getattr(hint, "__supertype__", None)
    if supertype is not None:
        return _fast_expr(supertype, src, scope, name)
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin is Literal:
        scope[f"allowed_{name}"] = frozenset(args)
        return f"({src} if {src} in allowed_{name} else fail())"
    if origin is typing.Union or origin is types.UnionType:
        inner = [a for a in args if a is not type(None)]
        if len(inner) == 1:
            return f"(None if {src} is None else {_fast_expr(inner[0], src, scope, name)})"
    if hint in (str, bool, int):
        scope[hint.__name__] = hint
        return f"({src} if type({src}) is {hint.__name__} else fail())"
    if hint is Decimal:
        return f"(Decimal({src}) if type({src}) is str else fail())"
    if hint is date:
        return f"(date_iso({src}) if type({src}) is str else fail())"
    scope[f"decode_{name}"] = _decoder(hint)
    return f"decode_{name}({src})"


def _decoder(hint: Any) -> Decoder:  # noqa: C901, PLR0911 - one branch per type form
    supertype = getattr(hint, "__supertype__", None)
    if supertype is not None:  # a NewType (SourceId, QboId, RealmId)
        return _decoder(supertype)
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin is Literal:
        allowed = frozenset(args)
        return functools.partial(_literal, allowed)
    if origin is typing.Union or origin is types.UnionType:
        inner = [a for a in args if a is not type(None)]
        if len(inner) != 1:
            raise TypeError(f"unsupported union {hint!r}")
        return functools.partial(_optional, _decoder(inner[0]))
    if origin is tuple and len(args) == 2 and args[1] is Ellipsis:  # noqa: PLR2004
        return functools.partial(_tuple, _decoder(args[0]))
    if hint in (str, bool, int):  # exactly: JSON true is not an int, 1 is not a bool
        return functools.partial(_exact, hint)
    if hint is Decimal:
        return _decimal
    if hint is datetime:
        return _datetime
    if hint is date:
        return _date
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        return _class_decoder(hint)
    raise TypeError(f"no decoder for {hint!r}")


def _literal(allowed: frozenset[Any], value: Any) -> Any:
    if value not in allowed:
        raise DecodeError(f"{value!r} is not one of {sorted(map(str, allowed))}")
    return value


def _optional(inner: Decoder, value: Any) -> Any:
    return None if value is None else inner(value)


def _tuple(inner: Decoder, value: Any) -> tuple[Any, ...]:
    if not isinstance(value, list | tuple):
        raise DecodeError(f"expected a list, got {type(value).__name__}")
    return tuple(inner(v) for v in value)


def _exact(kind: type, value: Any) -> Any:
    if type(value) is not kind:
        raise DecodeError(f"expected {kind.__name__}, got {type(value).__name__}")
    return value


def _parsed(parse: Callable[[str], Any], label: str, value: Any) -> Any:
    """A value rendered as text (a Decimal, a date, a timestamp), parsed back."""
    if type(value) is not str:
        raise DecodeError(f"expected {label} as text, got {type(value).__name__}")
    try:
        return parse(value)
    except (ValueError, InvalidOperation):
        raise DecodeError(f"{value!r} is not {label}") from None


def _aware(value: str) -> datetime:
    parsed = datetime.fromisoformat(value)
    if parsed.tzinfo is None:
        raise ValueError("no time zone")
    return parsed


_decimal = functools.partial(_parsed, Decimal, "a decimal")
_datetime = functools.partial(_parsed, _aware, "an ISO timestamp with a time zone")
_date = functools.partial(_parsed, date.fromisoformat, "an ISO date")


def _loads(text: Any) -> Any:
    """Stored canonical JSON, parsed. It holds no number but the small integers of int fields
    (Decimals are strings), which orjson reads exactly; a float where an int belongs would be
    refused by the decoder, never taken. What orjson refuses (a lone surrogate) goes through
    ``json.loads``."""
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return json.loads(text)


# --------------------------------------------------------------------------- the snapshot


@dataclass(frozen=True)
class Snapshot:
    """What one run extracted (and staged) of one entity for one company.

    Attributes:
        run_id: the run whose ``raw_source`` / ``staging`` rows hold the snapshot.
        feed_lo: start of the change-feed window read (None: first or targeted read).
        feed_hi: the window's end, where the push moves the position (None: targeted).
        full: every record was read (first run, mode=full).
        targeted: only chosen source ids were read.
        deleted: source ids the extract found deleted.
        extracted: records copied into ``raw_source``.
        staged: records staged from them (None: not staged yet).
        unchanged: on a full read, records left out as in step (source row unchanged).
        extracted_at: when the extract's transaction began (a state the pull moved since
            was planned against a source the snapshot predates).
    """

    run_id: str
    realm_id: str
    entity: str
    feed_lo: int | None
    feed_hi: int | None
    full: bool
    targeted: bool
    deleted: frozenset[SourceId]
    extracted: int
    staged: int | None
    unchanged: int = 0
    extracted_at: datetime | None = None


def record_extract(
    conn: sa.Connection,
    *,
    run_id: str,
    realm_id: str,
    entity: str,
    feed_lo: int | None,
    feed_hi: int | None,
    full: bool,
    targeted: bool,
    deleted: Iterable[str],
    extracted: int,
    unchanged: int = 0,
) -> None:
    """Record what the extract read, in its transaction (a re-extract by the same run replaces
    the row and must be staged again)."""
    conn.execute(
        sa.text(
            "INSERT INTO sync.run_windows (run_id, realm_id, entity, feed_lo, feed_hi,"
            " full_read, targeted, deleted_ids, extracted, unchanged, extracted_at)"
            " VALUES (:run, :r, :e, :lo, :hi, :full, :targeted, :deleted, :n, :same, now())"
            " ON CONFLICT (run_id, realm_id, entity) DO UPDATE SET feed_lo = EXCLUDED.feed_lo,"
            " feed_hi = EXCLUDED.feed_hi, full_read = EXCLUDED.full_read,"
            " targeted = EXCLUDED.targeted, deleted_ids = EXCLUDED.deleted_ids,"
            " extracted = EXCLUDED.extracted, unchanged = EXCLUDED.unchanged,"
            " extracted_at = now(), staged = NULL,"
            " staged_at = NULL, pushed_at = NULL"
        ),
        {
            "run": run_id,
            "r": realm_id,
            "e": entity,
            "lo": feed_lo,
            "hi": feed_hi,
            "full": full,
            "targeted": targeted,
            "deleted": sorted({str(d) for d in deleted}),
            "n": extracted,
            "same": unchanged,
        },
    )


def record_staged(engine: sa.Engine, run_id: str, realm_id: str, entity: str, staged: int) -> None:
    """Mark the run's snapshot of ``entity`` staged (``staged`` records)."""
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "UPDATE sync.run_windows SET staged = :n, staged_at = now()"
                " WHERE run_id = :run AND realm_id = :r AND entity = :e"
            ),
            {"n": staged, "run": run_id, "r": realm_id, "e": entity},
        )


def record_pushed(engine: sa.Engine, snapshot: Snapshot) -> None:
    """Mark the snapshot pushed."""
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "UPDATE sync.run_windows SET pushed_at = now()"
                " WHERE run_id = :run AND realm_id = :r AND entity = :e"
            ),
            {"run": snapshot.run_id, "r": snapshot.realm_id, "e": snapshot.entity},
        )


def find(engine: sa.Engine, realm_id: str, entity: str, run_ids: Sequence[str]) -> Snapshot:
    """The staged snapshot of the first of ``run_ids`` that extracted ``entity`` for the
    company (a re-executed run names its own id, then its parent's and root's).

    Raises:
        NoSnapshotError: none of the runs extracted it, or the extract was never staged.
    """
    wanted: list[str] = [r for r in dict.fromkeys(run_ids) if r]
    with engine.connect() as conn:
        rows = {
            str(row.run_id): row
            for row in conn.execute(
                sa.text(
                    "SELECT run_id, feed_lo, feed_hi, full_read, targeted, deleted_ids,"
                    " extracted, staged, unchanged, extracted_at FROM sync.run_windows"
                    " WHERE realm_id = :r AND entity = :e AND run_id = ANY(:runs)"
                ),
                {"r": realm_id, "e": entity, "runs": wanted},
            )
        }
    for run_id in wanted:
        row = rows.get(run_id)
        if row is None:
            continue
        if row.staged is None:
            raise NoSnapshotError(
                f"run {run_id} extracted {entity} for company {realm_id} but did not stage "
                f"it: materialize staged/qbo/{entity} first"
            )
        return Snapshot(
            run_id=run_id,
            realm_id=realm_id,
            entity=entity,
            feed_lo=row.feed_lo,
            feed_hi=row.feed_hi,
            full=bool(row.full_read),
            targeted=bool(row.targeted),
            deleted=frozenset(SourceId(str(s)) for s in row.deleted_ids),
            extracted=int(row.extracted),
            staged=int(row.staged),
            unchanged=int(row.unchanged),
            extracted_at=row.extracted_at,
        )
    raise NoSnapshotError(
        f"run {wanted[0] if wanted else '?'} has no snapshot of {entity} for company "
        f"{realm_id}: materialize raw/source/{entity} and staged/qbo/{entity} in the same run "
        "(the push job does)"
    )


def extracted_realms(engine: sa.Engine, entity: str, run_id: str) -> list[str]:
    """The companies ``run_id`` extracted ``entity`` for."""
    with engine.connect() as conn:
        rows: Iterable[object] = conn.execute(
            sa.text(
                "SELECT DISTINCT realm_id FROM sync.run_windows WHERE run_id = :run"
                " AND entity = :e ORDER BY realm_id"
            ),
            {"run": run_id, "e": entity},
        ).scalars()
        return [str(r) for r in rows]


@dataclass(frozen=True)
class RawPage:
    """One keyset page of a run's ``raw_source`` rows: the records decoded, and each one's
    stored JSON text and content hash by source id (staged as they are, not rendered again)."""

    records: list[Any]
    stored: dict[str, tuple[str, str]]


def iter_raw(
    engine: sa.Engine,
    realm_id: str,
    entity: str,
    run_id: str,
    chunk: int,
    *,
    unstaged_only: bool = False,
) -> Iterator[RawPage]:
    """The records ``run_id`` extracted (``raw_source``, not deleted), decoded, in keyset pages
    of ``chunk`` (one short read per page). ``unstaged_only``: only rows without their staged
    values (read before ``raw_source.<entity>.staged`` existed), whose typed columns the stage
    computes from the record."""
    table = bulk.qualified(f"raw_source.{entity}")
    sql = sa.text(
        f"SELECT source_id, data::text, content_hash FROM {table}"  # noqa: S608 - catalogue table
        " WHERE realm_id = :r AND run_id = :run AND NOT deleted AND source_id > :after"
        + (" AND staged IS NULL" if unstaged_only else "")
        + " ORDER BY source_id LIMIT :n"
    )
    after = ""
    while True:
        with engine.connect() as conn:
            rows = conn.execute(
                sql, {"r": realm_id, "run": run_id, "after": after, "n": chunk}
            ).all()
        if not rows:
            return
        yield RawPage(
            [decode_entity(entity, _loads(text)) for _sid, text, _h in rows],
            {str(sid): (str(text), str(h)) for sid, text, h in rows},
        )
        if len(rows) < chunk:
            return
        after = str(rows[-1][0])


def staged_records(
    engine: sa.Engine, realm_id: str, entity: str, run_id: str, ids: Iterable[str]
) -> list[Any]:
    """The records ``run_id`` staged among ``ids`` (``staging.<entity>``), decoded."""
    wanted = sorted({str(i) for i in ids})
    if not wanted:
        return []
    table = bulk.qualified(f"staging.{entity}")
    sql = sa.text(
        f"SELECT data::text FROM {table}"  # noqa: S608 - catalogue table
        " WHERE realm_id = :r AND run_id = :run AND source_id = ANY(:ids) ORDER BY source_id"
    )
    with engine.connect() as conn:
        params = {"r": realm_id, "run": run_id, "ids": wanted}
        rows: Sequence[Any] = conn.execute(sql, params).scalars().all()
    return [decode_entity(entity, _loads(text)) for text in rows]


@dataclass(frozen=True)
class Page:
    """One keyset page of a run's staged rows: the records to plan, and how many rows of the
    page were left alone as in step (full reads only)."""

    records: list[Any]
    steady: int
    rows: int
    moved: frozenset[SourceId] = frozenset()
    """Records whose sync state another writer (the pull) moved after the extract: their
    staged version predates what the state's base was taken from."""


def iter_staged(
    engine: sa.Engine, snapshot: Snapshot, chunk: int, *, every: bool = False
) -> Iterator[Page]:
    """The records ``snapshot``'s run staged, decoded, in keyset pages of ``chunk``.

    On a full read, rows whose content hash equals the hash the sync last synced (status
    synced, no write waiting, live in QBO) are counted as steady and not decoded: Postgres
    compares, and only records whose content moved are planned (``every``: all are decoded,
    as after a mapping change).
    """
    sql, params = page_query(snapshot, chunk, every=every)
    after = ""
    while True:
        with engine.connect() as conn:
            rows = conn.execute(sql, {**params, "after": after}).all()
        if not rows:
            return
        records = [
            decode_entity(snapshot.entity, _loads(text))
            for _sid, text, _moved in rows
            if text is not None
        ]
        moved = frozenset(SourceId(str(sid)) for sid, text, m in rows if m and text is not None)
        yield Page(records, len(rows) - len(records), len(rows), moved)
        if len(rows) < chunk:
            return
        after = str(rows[-1][0])


def page_query(
    snapshot: Snapshot, chunk: int, *, every: bool = False
) -> tuple[sa.TextClause, dict[str, Any]]:
    """:func:`iter_staged`'s keyset page (and its parameters but ``after``): the run's staged
    rows after ``:after`` with their sync state, the steady ones (full reads) without JSON."""
    table = bulk.qualified(f"staging.{snapshot.entity}")
    steady = (
        "(st.status = 'synced' AND st.intent IS NULL AND st.source_hash = s.content_hash"
        " AND st.qbo_id IS NOT NULL AND NOT st.deleted_in_qbo)"
        if snapshot.full and not every
        else "false"
    )
    sql = sa.text(
        f"SELECT s.source_id, CASE WHEN {steady} THEN NULL ELSE s.data::text END,"  # noqa: S608
        " coalesce(st.updated_at > CAST(:since AS timestamptz), false)"
        f" FROM {table} s LEFT JOIN sync.record_state st ON st.realm_id = s.realm_id"
        " AND st.entity = :e AND st.source_id = s.source_id"
        # the same bound on the state side: a merge join then starts at the page, not at the
        # entity's first state row (each page walked every state before it: quadratic)
        " AND st.source_id > :after"
        " WHERE s.realm_id = :r AND s.run_id = :run AND s.source_id > :after"
        " ORDER BY s.source_id LIMIT :n"
    )
    params = {
        "r": snapshot.realm_id,
        "e": snapshot.entity,
        "run": snapshot.run_id,
        "n": chunk,
        "since": snapshot.extracted_at,
    }
    return sql, params


__all__ = [
    "DecodeError",
    "NoSnapshotError",
    "Page",
    "Snapshot",
    "decode",
    "decode_entity",
    "extracted_realms",
    "find",
    "RawPage",
    "iter_raw",
    "iter_staged",
    "page_query",
    "record_extract",
    "record_pushed",
    "record_staged",
    "staged_records",
]
