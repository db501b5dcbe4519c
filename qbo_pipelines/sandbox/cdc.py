"""Change data capture: ``GET /cdc?entities=A,B&changedSince=...``."""

from __future__ import annotations

from qbo_pipelines.sandbox import errors
from qbo_pipelines.sandbox.clock import parse_instant
from qbo_pipelines.sandbox.specs import BY_LOWER, Spec
from qbo_pipelines.sandbox.state import Company, Obj

LOOKBACK_DAYS = 30
MAX_OBJECTS = 1000


def _specs(entities: str) -> list[Spec]:
    names = [n.strip() for n in entities.split(",") if n.strip()]
    if not names:
        raise errors.required("entities")
    specs = []
    for name in names:
        spec = BY_LOWER.get(name.lower())
        if spec is None:
            raise errors.QboFault("2000", "Invalid object name",
                                  f"Invalid object name : {name}", "entities")
        if not spec.cdc:
            # TaxCode/TaxRate (and CompanyInfo here) are not supported by CDC; QBO's exact
            # answer is undocumented, the sandbox refuses (stricter than ignoring).
            raise errors.unsupported(f"Operation cdc is not supported for entity {spec.name}.")
        specs.append(spec)
    return specs


def _since(company: Company, changed_since: str, now: float) -> float:
    if not changed_since:
        raise errors.required("changedSince")
    try:
        since = parse_instant(changed_since, company.utc_offset)
    except ValueError as exc:
        raise errors.QboFault("2070", "Invalid Date", f"Invalid Date : changedSince "
                              f"{changed_since}", "changedSince") from exc
    if since < now - LOOKBACK_DAYS * 86400:
        # Code/HTTP status are UNCONFIRMED; the text is the one seen on the wire.
        raise errors.unsupported(
            f"Operation cdc with changedSince date {changed_since} which is older than fixed "
            "days is not supported.")
    return since


def changes(company: Company, entities: str, changed_since: str, now: float) -> list[Obj]:
    """One QueryResponse element per requested entity; 1000 objects in total at most."""
    specs = _specs(entities)
    since = _since(company, changed_since, now)
    remaining = MAX_OBJECTS
    out: list[Obj] = []
    for spec in specs:
        live = sorted((t, i) for i, t in company.updated.get(spec.name, {}).items() if t >= since)
        gone = sorted((t, i) for i, t in company.deleted_at.get(spec.name, {}).items()
                      if t >= since)
        table, stubs = company.table(spec.name), company.deleted.get(spec.name, {})
        objects = [table[i] for _, i in live] + [stubs[i] for _, i in gone]
        objects = objects[:max(remaining, 0)]
        remaining -= len(objects)
        if not objects:
            out.append({})
            continue
        out.append({spec.name: objects, "startPosition": 1, "maxResults": len(objects),
                    "totalCount": len(objects)})
    return out
