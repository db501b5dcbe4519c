"""Webhook delivery: signed POSTs (legacy or CloudEvents) from a background thread.

Signature: ``intuit-signature`` = base64(HMAC-SHA256(verifier token, raw body)). A delivery is
acknowledged only by HTTP 200 within 3 s; otherwise it is retried on QBO's schedule (0 s, 10 s,
20 s, 30 s, 5 min, 20 min, 2 h, 4 h, 6 h, then every 6 h) and later events wait behind it.

Aggregation (QBO_API.md §10.1, §10.4): as QBO does, the changes of a company are gathered into
one notification; the window opens with the first undelivered change and closes
``batch_seconds`` later (default ``DEFAULT_WINDOW_SECONDS``; QBO does not publish its window).
``batch_seconds=0`` sends one notification per change.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import random
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import requests

from qbo_pipelines.sandbox.clock import fmt_utc_millis
from qbo_pipelines.sandbox.entities import Change

QBO_RETRY_SECONDS = (0.0, 10.0, 20.0, 30.0, 300.0, 1200.0, 7200.0, 14400.0, 21600.0)
EVERY_6H = 21600.0
ACK_TIMEOUT = 3.0
DEFAULT_WINDOW_SECONDS = 3.0
WEBHOOK_ENTITIES = {
    "Account", "Bill", "BillPayment", "Budget", "Class", "CreditMemo", "Currency", "Customer",
    "Department", "Deposit", "Employee", "Estimate", "Invoice", "Item", "JournalCode",
    "JournalEntry", "Payment", "PaymentMethod", "Preferences", "Purchase", "PurchaseOrder",
    "RefundReceipt", "SalesReceipt", "TaxAgency", "Term", "TimeActivity", "Transfer", "Vendor",
    "VendorCredit",
}
# CloudEvents op names; the void spelling ("void" vs "voided") is UNCONFIRMED: the sandbox
# sends "void", the spelling the WSO2 dispatcher claims to have verified.
CLOUD_OPS = {"Create": "created", "Update": "updated", "Delete": "deleted", "Void": "void",
             "Emailed": "emailed", "Merge": "merged"}


def sign(verifier_token: str, body: bytes) -> str:
    digest = hmac.new(verifier_token.encode("utf-8"), body, hashlib.sha256).digest()
    return base64.b64encode(digest).decode("ascii")


def verify(verifier_token: str, body: bytes, signature: str) -> bool:
    return hmac.compare_digest(sign(verifier_token, body), signature)


@dataclass
class Event:
    realm_id: str
    change: Change
    ready_at: float


@dataclass
class Registration:
    realm_id: str
    url: str
    verifier_token: str
    format: str = "legacy"
    batch_seconds: float | None = None  # None: the dispatcher's default window
    delay_seconds: float = 0.0
    duplicate: bool = False
    reorder: bool = False
    retry_seconds: tuple[float, ...] = QBO_RETRY_SECONDS
    pending: list[Event] = field(default_factory=list)
    retry_body: bytes | None = None
    retry_attempt: int = 0
    retry_at: float = 0.0


def legacy_body(realm_id: str, changes: list[Change]) -> bytes:
    entities = [{"name": c.entity, "id": c.obj_id, "operation": c.operation,
                 "lastUpdated": fmt_utc_millis(c.epoch)} for c in changes]
    payload = {"eventNotifications": [{"realmId": realm_id,
                                       "dataChangeEvent": {"entities": entities}}]}
    return json.dumps(payload, separators=(",", ":")).encode("utf-8")


def _nanos(epoch: float) -> str:
    base = datetime.fromtimestamp(int(epoch), UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{base}.{int((epoch % 1) * 1e9):09d}Z"


def cloudevents_body(realm_id: str, changes: list[Change]) -> bytes:
    source = "intuit." + base64.b64encode(hashlib.sha256(realm_id.encode()).digest()).decode()
    events = [{"specversion": "1.0", "id": str(uuid.uuid4()), "source": source,
               "type": f"qbo.{c.entity.lower()}.{CLOUD_OPS.get(c.operation, 'updated')}.v1",
               "datacontenttype": "application/json", "time": _nanos(c.epoch),
               "intuitentityid": c.obj_id, "intuitaccountid": realm_id, "data": {}}
              for c in changes]
    return json.dumps(events, separators=(",", ":")).encode("utf-8")


class Dispatcher:
    """Holds registrations and delivers events on a daemon thread."""

    def __init__(self, default_window: float = DEFAULT_WINDOW_SECONDS) -> None:
        self.default_window = default_window
        self._lock = threading.Lock()
        self._registrations: dict[str, Registration] = {}
        self._deliveries: dict[str, list[dict[str, Any]]] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="sandbox-webhooks", daemon=True)
        self._session = requests.Session()

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)
        self._session.close()

    def register(self, registration: Registration) -> None:
        if registration.batch_seconds is None:
            registration.batch_seconds = self.default_window
        with self._lock:
            self._registrations[registration.realm_id] = registration

    def unregister_all(self) -> None:
        with self._lock:
            self._registrations.clear()
            self._deliveries.clear()

    def deliveries(self, realm_id: str) -> list[dict[str, Any]]:
        with self._lock:
            return list(self._deliveries.get(realm_id, []))

    def enqueue(self, realm_id: str, changes: list[Change]) -> None:
        with self._lock:
            reg = self._registrations.get(realm_id)
            if reg is None:
                return
            now = time.monotonic()
            for change in changes:
                if change.entity in WEBHOOK_ENTITIES:
                    reg.pending.append(Event(realm_id, change, now + reg.delay_seconds))

    # -- the delivery thread ------------------------------------------------------------------

    def _loop(self) -> None:
        while not self._stop.wait(0.02):
            with self._lock:
                registrations = list(self._registrations.values())
            for reg in registrations:
                self._tick(reg)

    def _tick(self, reg: Registration) -> None:
        now = time.monotonic()
        if reg.retry_body is not None:
            if now >= reg.retry_at:
                self._attempt(reg, reg.retry_body)
            return
        with self._lock:
            ready = [e for e in reg.pending if e.ready_at <= now]
            if not ready or now < ready[0].ready_at + (reg.batch_seconds or 0.0):
                return
            reg.pending = [e for e in reg.pending if e.ready_at > now]
        changes = [e.change for e in ready]
        if reg.reorder and len(changes) > 1:
            changes = list(reversed(changes))
        bodies = self._bodies(reg, changes)
        for body in bodies:
            self._attempt(reg, body)
            if reg.retry_body is not None:
                return

    def _bodies(self, reg: Registration, changes: list[Change]) -> list[bytes]:
        build = cloudevents_body if reg.format == "cloudevents" else legacy_body
        if (reg.batch_seconds or 0.0) > 0 or len(changes) == 1:
            bodies = [build(reg.realm_id, changes)]
        else:
            bodies = [build(reg.realm_id, [c]) for c in changes]
        if reg.reorder and len(bodies) > 1:
            random.shuffle(bodies)
        if reg.duplicate:
            bodies = [b for body in bodies for b in (body, body)]
        return bodies

    def _attempt(self, reg: Registration, body: bytes) -> None:
        signature = sign(reg.verifier_token, body)
        record: dict[str, Any] = {"url": reg.url, "time": fmt_utc_millis(time.time()),
                                  "attempt": reg.retry_attempt + 1, "format": reg.format,
                                  "body": body.decode("utf-8"), "signature": signature}
        try:
            response = self._session.post(
                reg.url, data=body, timeout=ACK_TIMEOUT,
                headers={"intuit-signature": signature, "Content-Type": "application/json",
                         "User-Agent": "Intuit-Webhooks (sandbox)"})
            record["status"] = response.status_code
            ok = response.status_code == 200
        except requests.RequestException as exc:
            record["status"], record["error"], ok = None, str(exc), False
        record["delivered"] = ok
        with self._lock:
            self._deliveries.setdefault(reg.realm_id, []).append(record)
        self._schedule(reg, body, ok)

    def _schedule(self, reg: Registration, body: bytes, ok: bool) -> None:
        if ok:
            reg.retry_body, reg.retry_attempt = None, 0
            return
        schedule = reg.retry_seconds
        index = reg.retry_attempt
        delay = schedule[index] if index < len(schedule) else (
            schedule[-1] if schedule else EVERY_6H)
        reg.retry_body = body
        reg.retry_attempt += 1
        reg.retry_at = time.monotonic() + delay
