"""A builder for QBO query statements that makes injection impossible.

QBO's query language (QBO_API.md §2) is a tiny SQL: one entity, ``AND``-ed conditions, ``=``,
``<``, ``>``, ``<=``, ``>=``, ``IN``, ``LIKE``, ``ORDERBY``, ``STARTPOSITION``, ``MAXRESULTS``.

Safety rules enforced here:

* Entity and field names are never escaped, they are *validated* against an allow-list pattern
  (letters and digits, optionally dotted like ``MetaData.LastUpdatedTime``); anything else raises
  :class:`QueryBuildError`.
* String literals are wrapped in single quotes with ``\\`` and ``'`` backslash-escaped (the only
  escaping QBO understands); all other characters, unicode included, are kept as they are.
  Control characters (U+0000-U+001F, U+007F) and lone surrogates are rejected with
  :class:`UnquotableValueError`: QBO names cannot hold them, they have no escape (and a lone
  surrogate cannot even be encoded as UTF-8). The data-quality rules hold such records back
  before any query is built; a caller that still meets the error holds that one record.
* Numbers, booleans, dates and aware datetimes are rendered by type, never from raw text.

So a value can only ever end up *inside* one literal: ``O'Brien \\ "x"`` becomes
``'O\\'Brien \\\\ "x"'``, and ``x' OR Id > '0`` stays one harmless string.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from decimal import Decimal
from typing import Literal

Scalar = str | int | Decimal | bool | date | datetime
Operator = Literal["=", "<", ">", "<=", ">=", "IN", "LIKE"]
OPERATORS: frozenset[str] = frozenset({"=", "<", ">", "<=", ">=", "IN", "LIKE"})
MAX_PAGE_SIZE = 1000

_IDENT_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,63}(\.[A-Za-z][A-Za-z0-9_]{0,63}){0,3}$")
_ENTITY_RE = re.compile(r"^[A-Za-z][A-Za-z0-9]{0,63}$")
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f\ud800-\udfff]")


class QueryBuildError(ValueError):
    """A name or value cannot be put into a QBO query safely."""


class UnquotableValueError(QueryBuildError):
    """A string value has characters no QBO query literal can express (control characters,
    lone surrogates). It is about the data, not the program: the caller holds back the one
    record the value came from (R40) and goes on with the others.

    Attributes:
        value: the offending value.
    """

    def __init__(self, value: str) -> None:
        super().__init__(
            "control characters cannot be used in a QBO query literal: " + ascii(value)[:80]
        )
        self.value = value


def entity_name(name: str) -> str:
    """Validate an entity name (``Customer``, ``SalesReceipt``)."""
    if not _ENTITY_RE.match(name):
        raise QueryBuildError(f"not a valid QBO entity name: {name!r}")
    return name


def field_name(name: str) -> str:
    """Validate a property path (``DisplayName``, ``MetaData.LastUpdatedTime``)."""
    if not _IDENT_RE.match(name):
        raise QueryBuildError(f"not a valid QBO property name: {name!r}")
    return name


def quote_string(value: str) -> str:
    """``value`` as a single-quoted QBO literal (backslash escapes for ``\\`` and ``'``)."""
    if _CONTROL_RE.search(value):
        raise UnquotableValueError(value)
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def unquote_string(literal: str) -> str:
    """Inverse of :func:`quote_string` (used by tests and by the sandbox-side parser)."""
    if len(literal) < 2 or literal[0] != "'" or literal[-1] != "'":
        raise QueryBuildError(f"not a quoted literal: {literal!r}")
    out: list[str] = []
    body = literal[1:-1]
    i = 0
    while i < len(body):
        ch = body[i]
        if ch == "\\":
            if i + 1 >= len(body):
                raise QueryBuildError("dangling backslash in literal")
            out.append(body[i + 1])
            i += 2
            continue
        if ch == "'":
            raise QueryBuildError("unescaped quote inside literal")
        out.append(ch)
        i += 1
    return "".join(out)


def format_datetime(value: datetime) -> str:
    """An aware datetime as QBO wants it: ``2024-01-31T10:20:30-07:00`` (seconds precision)."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise QueryBuildError("datetimes in QBO queries must be timezone-aware")
    return value.replace(microsecond=0).isoformat()


def literal(value: Scalar) -> str:
    """Render one value by its type."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise QueryBuildError("only finite decimals can be used in a query")
        return "'" + format(value, "f") + "'"
    if isinstance(value, datetime):
        return "'" + format_datetime(value) + "'"
    if isinstance(value, date):
        return "'" + value.isoformat() + "'"
    if isinstance(value, str):
        return quote_string(value)
    raise QueryBuildError(f"unsupported literal type {type(value).__name__}")


@dataclass(frozen=True)
class Condition:
    """``field op value`` (``value`` is a tuple for ``IN``)."""

    field: str
    op: Operator
    value: Scalar | tuple[Scalar, ...]

    def render(self) -> str:
        name = field_name(self.field)
        if self.op not in OPERATORS:
            raise QueryBuildError(f"unsupported operator {self.op!r}")
        if self.op == "IN":
            if not isinstance(self.value, tuple) or not self.value:
                raise QueryBuildError("IN needs a non-empty tuple of values")
            return f"{name} IN ({', '.join(literal(v) for v in self.value)})"
        if isinstance(self.value, tuple):
            raise QueryBuildError(f"operator {self.op} takes one value")
        if self.op == "LIKE" and not isinstance(self.value, str):
            raise QueryBuildError("LIKE takes a string pattern")
        return f"{name} {self.op} {literal(self.value)}"


def eq(name: str, value: Scalar) -> Condition:
    return Condition(name, "=", value)


def lt(name: str, value: Scalar) -> Condition:
    return Condition(name, "<", value)


def gt(name: str, value: Scalar) -> Condition:
    return Condition(name, ">", value)


def lte(name: str, value: Scalar) -> Condition:
    return Condition(name, "<=", value)


def gte(name: str, value: Scalar) -> Condition:
    return Condition(name, ">=", value)


def in_(name: str, values: Iterable[Scalar]) -> Condition:
    return Condition(name, "IN", tuple(values))


def like(name: str, pattern: str) -> Condition:
    """``LIKE`` with QBO's only wildcard ``%`` (the pattern is escaped like any literal)."""
    return Condition(name, "LIKE", pattern)


@dataclass(frozen=True)
class Query:
    """An immutable ``SELECT`` statement; every method returns a new query."""

    entity: str
    conditions: tuple[Condition, ...] = ()
    order: tuple[tuple[str, bool], ...] = ()  # (field, descending)
    start_position: int | None = None
    max_results: int | None = None
    count_only: bool = field(default=False)

    def where(self, *conditions: Condition) -> Query:
        return replace(self, conditions=self.conditions + tuple(conditions))

    def order_by(self, name: str, descending: bool = False) -> Query:
        field_name(name)
        return replace(self, order=self.order + ((name, descending),))

    def page(self, start_position: int, max_results: int) -> Query:
        if start_position < 1:
            raise QueryBuildError("STARTPOSITION is 1-based")
        if not 1 <= max_results <= MAX_PAGE_SIZE:
            raise QueryBuildError(f"MAXRESULTS must be between 1 and {MAX_PAGE_SIZE}")
        return replace(self, start_position=start_position, max_results=max_results)

    def count(self) -> Query:
        return replace(self, count_only=True, order=(), start_position=None, max_results=None)

    def build(self) -> str:
        """The statement text."""
        what = "COUNT(*)" if self.count_only else "*"
        parts = [f"SELECT {what} FROM {entity_name(self.entity)}"]
        if self.conditions:
            parts.append("WHERE " + " AND ".join(c.render() for c in self.conditions))
        if self.order:
            rendered = [f"{field_name(n)}{' DESC' if d else ''}" for n, d in self.order]
            parts.append("ORDERBY " + ", ".join(rendered))
        if self.start_position is not None:
            parts.append(f"STARTPOSITION {self.start_position}")
        if self.max_results is not None:
            parts.append(f"MAXRESULTS {self.max_results}")
        return " ".join(parts)

    def __str__(self) -> str:
        return self.build()


def select(entity: str, *conditions: Condition) -> Query:
    """``SELECT * FROM entity [WHERE ...]``; the entity name is validated immediately."""
    return Query(entity_name(entity), tuple(conditions))


def conditions_from(where: Sequence[Condition] | dict[str, Scalar] | None) -> tuple[Condition, ...]:
    """Accept a list of conditions or a ``{field: value}`` mapping meaning equality."""
    if where is None:
        return ()
    if isinstance(where, dict):
        return tuple(eq(k, v) for k, v in where.items())
    return tuple(where)
