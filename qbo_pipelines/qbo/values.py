"""Wire values: JSON with Decimal money, timezone-aware timestamps, entity accessors."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from qbo_pipelines.qbo.ids import QboId, SyncToken

Entity = dict[str, Any]
"""A QBO object as parsed JSON: amounts are ``Decimal``, ids and SyncTokens are strings."""


def loads(body: bytes | str) -> Any:
    """Parse a QBO JSON body; every non-integer number becomes a ``Decimal``."""
    return json.loads(body, parse_float=Decimal)


def _jsonable(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise ValueError("non-finite Decimal cannot be sent to QBO")
        if value == value.to_integral_value() and abs(value) < 10**15:
            return int(value)
        as_float = float(value)
        if Decimal(repr(as_float)) == value.normalize():
            return as_float
        raise ValueError(f"Decimal {value} cannot be sent to QBO without losing precision")
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError("naive datetime cannot be sent to QBO")
        return value.isoformat()
    if isinstance(value, date):
        return value.isoformat()
    return value


def dumps(payload: Any) -> bytes:
    """Encode a request body: Decimals as exact JSON numbers, dates as ISO strings."""
    return json.dumps(_jsonable(payload), ensure_ascii=False, separators=(",", ":")).encode("utf-8")


NUL_ESCAPE = "\\u0000"
"""How JSON writes U+0000. Postgres ``text`` and ``jsonb`` cannot hold it, QBO can (a
bookkeeper's pasted text): found in a dump, the value is stored :func:`without_nul`."""


def without_nul(value: Any) -> Any:
    """A JSON value with every U+0000 removed from its strings and keys (Postgres cannot store
    it; nothing else changes)."""
    if isinstance(value, str):
        return value.replace("\x00", "")
    if isinstance(value, Mapping):
        return {without_nul(k): without_nul(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [without_nul(v) for v in value]
    return value


def stored(payload: Any) -> str:
    """:func:`dumps` as text for a ``jsonb`` column: U+0000 removed (:func:`without_nul`)."""
    text = dumps(payload).decode()
    return dumps(without_nul(payload)).decode() if NUL_ESCAPE in text else text


def parse_datetime(value: str) -> datetime:
    """Parse a QBO timestamp into an aware datetime.

    Accepts ``-07:00``, ``-0700`` and ``Z`` offsets, and up to nanosecond fractions. A value with
    no offset is taken as UTC (QBO always sends offsets on MetaData; this is only a fallback).
    """
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    if "." in text:  # trim fractions beyond microseconds (CloudEvents send nanoseconds)
        head, _, rest = text.partition(".")
        digits = ""
        while rest and rest[0].isdigit():
            digits, rest = digits + rest[0], rest[1:]
        text = f"{head}.{digits[:6].ljust(6, '0')}{rest}"
    parsed = datetime.fromisoformat(text)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed


def entity_id(entity: Mapping[str, Any]) -> QboId:
    return QboId(str(entity["Id"]))


def sync_token(entity: Mapping[str, Any]) -> SyncToken:
    return SyncToken(str(entity.get("SyncToken", "0")))


def last_updated(entity: Mapping[str, Any]) -> datetime | None:
    """``MetaData.LastUpdatedTime`` as an aware datetime, or None when absent."""
    meta = entity.get("MetaData")
    if isinstance(meta, Mapping) and meta.get("LastUpdatedTime"):
        return parse_datetime(str(meta["LastUpdatedTime"]))
    return None


def is_deleted_stub(entity: Mapping[str, Any]) -> bool:
    """True for CDC/delete stubs (``status: "Deleted"``)."""
    return str(entity.get("status", "")).lower() == "deleted"
