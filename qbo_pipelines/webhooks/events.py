"""Parse QBO webhook bodies (legacy and CloudEvents) into :class:`WebhookEvent` values.

QBO sends identifiers only (QBO_API.md §10): which record of which company changed and how. The
pull run re-reads those records (R44: only what changed), so this module keeps exactly what it
needs for that, plus a stable ``event_key`` that makes duplicate deliveries collapse into one
inbox row.

Two body formats are accepted, told apart by their top-level JSON type:

* legacy (an object): ``{"eventNotifications": [{"realmId", "dataChangeEvent": {"entities":
  [{"name", "id", "operation", "lastUpdated", "deletedId"?}]}}]}``;
* CloudEvents (an array): ``[{"specversion", "id", "type": "qbo.<entity>.<op>.v1", "time",
  "intuitaccountid", "intuitentityid", "data"}]``; the void op is accepted both as ``void`` and
  ``voided`` (which one Intuit sends is unconfirmed).

Entity names QBO does not document for webhooks, and operations outside the six documented
ones, are kept (the inbox stores them so nothing is lost) but flagged by
:attr:`WebhookEvent.known`; a body whose *shape* is wrong raises :class:`MalformedPayload`.
Nothing here imports the sandbox or Dagster: this is the production parser.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

Format = Literal["legacy", "cloudevents"]

#: Entities QBO sends webhooks for (QBO_API.md §10.1, plus the CloudEvents-only additions).
WEBHOOK_ENTITIES: frozenset[str] = frozenset(
    {
        "Account", "Bill", "BillPayment", "Budget", "ChangeOrder", "Class", "CompanyCurrency",
        "CreditMemo", "Currency", "Customer", "Department", "Deposit", "Employee", "Estimate",
        "Invoice", "Item", "JournalCode", "JournalEntry", "Payment", "PaymentMethod",
        "Preferences", "Purchase", "PurchaseOrder", "RefundReceipt", "SalesReceipt",
        "TaxAgency", "Term", "TimeActivity", "Transfer", "Vendor", "VendorCredit",
    }
)  # fmt: skip
_BY_LOWER = {name.lower(): name for name in WEBHOOK_ENTITIES}

#: The operations QBO documents (legacy spelling, which is also what the inbox stores).
OPERATIONS: frozenset[str] = frozenset({"Create", "Update", "Delete", "Merge", "Void", "Emailed"})

#: CloudEvents op spelling -> legacy operation.
CLOUD_OPS: Mapping[str, str] = {
    "created": "Create",
    "updated": "Update",
    "deleted": "Delete",
    "merged": "Merge",
    "emailed": "Emailed",
    "void": "Void",
    "voided": "Void",
}

_CLOUD_TYPE = re.compile(r"^qbo\.([A-Za-z0-9_]+)\.([A-Za-z0-9_]+)\.v\d+$")
_STORABLE = re.compile(r"[^\x00-\x1f\x7f\ud800-\udfff]+")
_FRACTION = re.compile(r"^(.*T\d{2}:\d{2}:\d{2})(?:\.(\d+))?(Z|z|[+-]\d{2}:?\d{2})?$")


class MalformedPayload(ValueError):
    """The body is not JSON of a webhook shape QBO sends; the message says where, never what."""


@dataclass(frozen=True)
class WebhookEvent:
    """One change QBO reported: which record, of which company, and how.

    Attributes:
        realm_id: the QBO company (realmId / intuitaccountid).
        entity: QBO's entity name in QBO's casing, e.g. ``"Customer"``.
        qbo_id: the record's QBO Id (for a Merge: the record that survives).
        operation: ``Create``, ``Update``, ``Delete``, ``Merge``, ``Void`` or ``Emailed``
            (anything else is kept as sent and makes :attr:`known` false).
        last_updated: when QBO changed it (legacy ``lastUpdated``, CloudEvents ``time``), UTC.
        deleted_id: for a Merge, the Id of the record merged away (and so gone), else None.
        event_key: a stable identity for deduplication: the CloudEvents ``id``, or for legacy
            events the tuple (realm, entity, id, operation, lastUpdated, deletedId) QBO
            recommends deduplicating on.
    """

    realm_id: str
    entity: str
    qbo_id: str
    operation: str
    last_updated: datetime | None
    deleted_id: str | None
    event_key: str

    @property
    def known(self) -> bool:
        """Whether entity and operation are ones QBO documents for webhooks."""
        return self.entity in WEBHOOK_ENTITIES and self.operation in OPERATIONS

    @property
    def removes(self) -> bool:
        """Whether the event makes a record disappear (Delete, or the merged-away one of a
        Merge): the consumer must not expect to re-read it."""
        return self.operation == "Delete" or (
            self.operation == "Merge" and self.deleted_id is not None
        )


@dataclass(frozen=True)
class ParsedEvent:
    """An event together with the raw JSON object it came from (stored for audit)."""

    event: WebhookEvent
    raw: Mapping[str, Any]
    format: Format


def parse_time(value: object, where: str) -> datetime | None:
    """An ISO 8601 / RFC 3339 timestamp as an aware UTC datetime (None when absent).

    Accepts any number of fractional digits (CloudEvents carries nanoseconds; Python keeps
    microseconds) and treats a timestamp without an offset as UTC, as QBO documents.
    """
    if value is None:
        return None
    if not isinstance(value, str):
        raise MalformedPayload(f"{where}: a timestamp must be a string")
    match = _FRACTION.match(value.strip())
    if match is None:
        raise MalformedPayload(f"{where}: not an ISO 8601 timestamp")
    base, fraction, zone = match.groups()
    text = base + (f".{(fraction + '000000')[:6]}" if fraction else "")
    if zone and zone not in ("Z", "z"):
        text += zone
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise MalformedPayload(f"{where}: not an ISO 8601 timestamp") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def qbo_entity_name(name: str) -> str:
    """QBO's casing of an entity name (``"salesreceipt"`` -> ``"SalesReceipt"``); unknown
    names come back unchanged."""
    return _BY_LOWER.get(name.lower(), name)


def parse_body(body: bytes) -> list[ParsedEvent]:
    """Decode and parse a raw webhook body (call only after its signature was verified).

    Raises:
        MalformedPayload: not UTF-8 JSON, or not one of the two webhook shapes.
    """
    try:
        payload = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise MalformedPayload("the body is not UTF-8 JSON") from None
    except RecursionError:  # nested deeper than any webhook is (a 500 would be retried)
        raise MalformedPayload("the body is nested too deeply") from None
    return parse_payload(payload)


def parse_payload(payload: object) -> list[ParsedEvent]:
    """Parse an already decoded body: a dict is legacy, a list is CloudEvents.

    Raises:
        MalformedPayload: the shape is not a webhook notification.
    """
    if isinstance(payload, dict):
        return list(_legacy(payload))
    if isinstance(payload, list):
        return [_cloud_event(item, f"[{i}]") for i, item in enumerate(payload)]
    raise MalformedPayload("the body must be a JSON object (legacy) or array (CloudEvents)")


def parse_events(payload: object) -> list[WebhookEvent]:
    """Like :func:`parse_payload`, the events only."""
    return [p.event for p in parse_payload(payload)]


def _text(obj: Mapping[str, Any], key: str, where: str, *, required: bool = True) -> str | None:
    value = obj.get(key)
    if value is None:
        if required:
            raise MalformedPayload(f"{where}: {key!r} is missing")
        return None
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise MalformedPayload(f"{where}: {key!r} must be a string")
    text = str(value).strip()
    if not text:
        if required:
            raise MalformedPayload(f"{where}: {key!r} is empty")
        return None
    if len(text) > 200:
        raise MalformedPayload(f"{where}: {key!r} is too long")
    if not _STORABLE.fullmatch(text):
        # NUL and lone surrogates cannot be stored (the inbox would answer 503 and QBO hold
        # back the company's later events); no QBO id, name or time holds a control character
        raise MalformedPayload(f"{where}: {key!r} holds a control character or invalid text")
    return text


def _required(obj: Mapping[str, Any], key: str, where: str) -> str:
    value = _text(obj, key, where)
    if value is None:  # _text raises first; this keeps the type exact
        raise MalformedPayload(f"{where}: {key!r} is missing")
    return value


def _mapping(value: object, where: str) -> Mapping[str, Any]:
    if not isinstance(value, dict):
        raise MalformedPayload(f"{where}: must be a JSON object")
    return value


def _legacy(payload: Mapping[str, Any]) -> Iterator[ParsedEvent]:
    notifications = payload.get("eventNotifications")
    if not isinstance(notifications, list):
        raise MalformedPayload("eventNotifications: must be an array")
    for n, raw_notification in enumerate(notifications):
        where = f"eventNotifications[{n}]"
        notification = _mapping(raw_notification, where)
        realm_id = _required(notification, "realmId", where)
        change = _mapping(notification.get("dataChangeEvent"), f"{where}.dataChangeEvent")
        entities = change.get("entities")
        if not isinstance(entities, list):
            raise MalformedPayload(f"{where}.dataChangeEvent.entities: must be an array")
        for e, raw_entity in enumerate(entities):
            at = f"{where}.dataChangeEvent.entities[{e}]"
            item = _mapping(raw_entity, at)
            entity = qbo_entity_name(_required(item, "name", at))
            qbo_id = _required(item, "id", at)
            operation = _required(item, "operation", at)
            last_updated = parse_time(item.get("lastUpdated"), f"{at}.lastUpdated")
            deleted_id = _text(item, "deletedId", at, required=False)
            stamp = last_updated.isoformat() if last_updated else ""
            key = f"legacy:{realm_id}:{entity}:{qbo_id}:{operation}:{stamp}:{deleted_id or ''}"
            event = WebhookEvent(realm_id, entity, qbo_id, operation, last_updated, deleted_id, key)
            yield ParsedEvent(event, item, "legacy")


def _cloud_event(raw: object, where: str) -> ParsedEvent:
    item = _mapping(raw, where)
    event_id = _required(item, "id", where)
    realm_id = _required(item, "intuitaccountid", where)
    qbo_id = _required(item, "intuitentityid", where)
    type_ = _required(item, "type", where)
    match = _CLOUD_TYPE.match(type_)
    if match is None:
        raise MalformedPayload(f"{where}.type: not of the form qbo.<entity>.<operation>.v1")
    entity = qbo_entity_name(match.group(1))
    op = match.group(2).lower()
    operation = CLOUD_OPS.get(op, op.capitalize())
    last_updated = parse_time(item.get("time"), f"{where}.time")
    data = item.get("data")
    deleted_id = None
    if isinstance(data, dict):
        for key in ("deletedId", "deletedid", "deleted_id", "deletedEntityId"):
            deleted_id = _text(data, key, f"{where}.data", required=False)
            if deleted_id:
                break
    event = WebhookEvent(
        realm_id, entity, qbo_id, operation, last_updated, deleted_id, f"ce:{realm_id}:{event_id}"
    )
    return ParsedEvent(event, item, "cloudevents")
