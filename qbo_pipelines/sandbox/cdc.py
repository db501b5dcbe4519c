"""Change data capture: ``GET /cdc?entities=A,B&changedSince=...``."""

from __future__ import annotations

from qbo_pipelines.sandbox import errors
from qbo_pipelines.sandbox.clock import parse_instant
from qbo_pipelines.sandbox.specs import BY_LOWER, Spec
from qbo_pipelines.sandbox.state import Company, Obj

LOOKBACK_DAYS = 30
MAX_OBJECTS = 1000


# QBO entities the sandbox does not model: CDC answers them with an empty element.
UNMODELLED = ("Budget", "Currency", "CompanyCurrency", "CreditCardPayment", "CustomerType",
              "ExchangeRate", "JournalCode", "RecurringTransaction", "TaxAgency",
              "TaxClassification", "TaxPayment", "PriceLevel")
_UNMODELLED = {name.lower(): name for name in UNMODELLED}


def _specs(entities: str) -> list[Spec | str]:
    """The requested entity types, in order; a name CDC does not cover stays a plain string.

    QBO_API.md §3: CDC does not cover JournalCode, TaxAgency, TimeActivity, TaxCode and
    TaxRate, and answers one QueryResponse element per requested type, ``{}`` when it has no
    changes. A covered-or-not QBO entity name therefore never fails the call: it gets ``{}``.
    Only a name that is no QBO entity at all is refused (2000, "Invalid object name").
    """
    names = [n.strip() for n in entities.split(",") if n.strip()]
    if not names:
        raise errors.required("entities")
    specs: list[Spec | str] = []
    for name in names:
        spec = BY_LOWER.get(name.lower())
        if spec is None and name.lower() not in _UNMODELLED:
            raise errors.QboFault("2000", "Invalid object name",
                                  f"Invalid object name : {name}", "entities")
        specs.append(spec if spec is not None and spec.cdc else name)
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
        if isinstance(spec, str):
            out.append({})
            continue
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
