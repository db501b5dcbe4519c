"""Pure, field-level three-way comparison against the last synced base (R7, R34, R35).

A record's base has two sides kept in ``sync.record_state``: ``source_base`` (the QBO fields as
the source held them at the last sync) and ``qbo_base`` (QBO's values of the same fields after
the last sync). Changes are judged per top-level field: the source changed ``f`` when its value
differs from ``source_base[f]``; QBO changed ``f`` when its value differs from ``qbo_base[f]``.
A field changed on both sides, to different values, is a conflict resolved by the entity's
policy; the loser never resurfaces because both bases move to what each side holds after the
resolution.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any, Literal

Body = Mapping[str, Any]
Policy = Literal["source_wins", "qbo_wins", "manual"]

#: Keys of a body that identify a version rather than hold a value.
SYSTEM_KEYS = frozenset({"Id", "SyncToken", "MetaData", "domain", "sparse", "status"})


def normal(value: Any) -> Any:
    """Comparable form of a body value: numbers by value, empty values as absent."""
    if isinstance(value, Mapping):
        out = {str(k): normal(v) for k, v in value.items()}
        out = {k: v for k, v in out.items() if v is not None}
        return out or None
    if isinstance(value, list | tuple):
        return [normal(v) for v in value]
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float | Decimal):
        return _number(value)
    if isinstance(value, str):
        return value if value != "" else None
    return value


def _number(value: int | float | Decimal) -> str:
    try:
        d = Decimal(str(value))
    except InvalidOperation:
        return str(value)
    return "0" if d == 0 else format(d.normalize(), "f")


def body_hash(body: Body | None) -> str:
    """A stable hash of a body's comparable form."""
    text = json.dumps(normal(dict(body or {})), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def project(entity: Body, template: Body) -> dict[str, Any]:
    """QBO's values of the fields ``template`` has (our managed fields), shaped like it.

    Objects are projected onto the template's keys; lists element by element onto the first
    template element's keys (QBO's trailing subtotal line dropped). Used to compare QBO's
    versions with each other, never with our own bodies.
    """
    out: dict[str, Any] = {}
    for key, shape in template.items():
        if key in SYSTEM_KEYS:
            continue
        out[key] = _project_value(entity.get(key), shape)
    return out


def _project_value(value: Any, shape: Any) -> Any:
    if isinstance(shape, Mapping) and isinstance(value, Mapping):
        return {
            k: _project_value(value.get(k), s) for k, s in shape.items() if k not in SYSTEM_KEYS
        }
    if isinstance(shape, list) and isinstance(value, list):
        keys: dict[str, Any] = {}
        for element in shape:
            if isinstance(element, Mapping):
                for k, s in element.items():
                    keys.setdefault(k, s)
        return [
            _project_value(v, keys) if keys else v
            for v in value
            if not (isinstance(v, Mapping) and v.get("DetailType") == "SubTotalLineDetail")
        ]
    return value


def template(managed: tuple[str, ...], base: Body | None) -> dict[str, Any]:
    """The shape QBO's versions are projected onto: every managed field (absent ones taken as
    QBO returns them) with the base's own shape where it has one."""
    return {**dict.fromkeys(managed), **dict(base or {})}


def changed_fields(new: Body, base: Body | None) -> dict[str, Any]:
    """Top-level fields of ``new`` that differ from ``base``, and fields ``base`` had that
    ``new`` lacks (cleared: mapped to :func:`cleared_value` of the old value)."""
    if base is None:
        return dict(new)
    out = {k: v for k, v in new.items() if normal(v) != normal(base.get(k))}
    for key, old in base.items():
        if key not in new and normal(old) is not None:
            out[key] = cleared_value(old)
    return out


def cleared_value(old: Any) -> Any:
    """What a sparse update sends to clear a field (QBO_API.md §5.3: a sparse update changes
    only the fields it names; naming a field with an empty value clears it)."""
    if isinstance(old, Mapping):
        return {k: cleared_value(v) for k, v in old.items() if not isinstance(v, Mapping)} or {}
    if isinstance(old, list):
        return []
    return ""


@dataclass(frozen=True)
class Merge:
    """The outcome of a three-way merge of a source change with QBO's current version.

    Attributes:
        send: the fields to write to QBO now (empty: nothing to write).
        conflicts: fields changed on both sides to different values (R34).
        kept_qbo: conflicting fields where QBO's value was kept (``qbo_wins``).
        hold: the policy asks a person to decide (``manual``).
    """

    send: dict[str, Any]
    conflicts: tuple[str, ...]
    kept_qbo: tuple[str, ...]
    hold: bool = False


def merge(
    source_new: Body,
    source_base: Body | None,
    qbo_now: Body,
    qbo_base: Body | None,
    policy: Policy,
) -> Merge:
    """Three-way, field by field: what the source changed since its base, against what QBO
    changed since its base. Fields only the source changed are sent; fields only QBO changed
    are left alone; fields both changed to different values are conflicts resolved by
    ``policy`` (``source_wins`` sends ours, ``qbo_wins`` keeps QBO's, ``manual`` holds)."""
    ours = changed_fields(source_new, source_base)
    conflicts: list[str] = []
    for key in sorted(ours):
        qbo_changed = normal(qbo_now.get(key)) != normal((qbo_base or {}).get(key))
        if qbo_changed and normal(qbo_now.get(key)) != normal(source_new.get(key)):
            conflicts.append(key)
    if not conflicts:
        return Merge(ours, (), ())
    if policy == "manual":
        return Merge({}, tuple(conflicts), (), hold=True)
    if policy == "source_wins":
        return Merge(ours, tuple(conflicts), ())
    send = {k: v for k, v in ours.items() if k not in conflicts}
    return Merge(send, tuple(conflicts), tuple(conflicts))
