"""``Sandbox``: the store plus everything around it (request log, throttle, faults, webhooks).

The HTTP layer (``app.py``) and the control API call into this object; it knows nothing of HTTP.
"""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from qbo_pipelines.sandbox import oauth
from qbo_pipelines.sandbox import seed as seeding
from qbo_pipelines.sandbox.clock import fmt_millis, tz
from qbo_pipelines.sandbox.entities import Books, Change
from qbo_pipelines.sandbox.faults import FaultInjector
from qbo_pipelines.sandbox.service import direct_write
from qbo_pipelines.sandbox.specs import SPECS
from qbo_pipelines.sandbox.state import DEFAULT_CLIENT_ID, Company, Obj, Store
from qbo_pipelines.sandbox.throttle import Throttle, ThrottleSettings
from qbo_pipelines.sandbox.webhooks import Dispatcher

DEFAULT_COMPANY = "Sandbox Company_US_1"


@dataclass
class RequestLog:
    entries: list[dict[str, Any]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, entry: dict[str, Any]) -> None:
        with self.lock:
            self.entries.append(entry)

    def list(self, realm_id: str | None = None) -> list[dict[str, Any]]:
        with self.lock:
            return [e for e in self.entries if realm_id is None or e["realm_id"] == realm_id]

    def counts(self, realm_id: str | None = None) -> dict[str, int]:
        return dict(Counter(e["endpoint"] for e in self.list(realm_id)))

    def clear(self) -> None:
        with self.lock:
            self.entries.clear()


class Sandbox:
    """One sandbox instance (several companies, one default app)."""

    def __init__(self, *, seed_default: bool = True, throttle: bool = False,
                 access_token_ttl: int = 3600, state_file: str | None = None) -> None:
        self.store = Store()
        self.access_token_ttl = access_token_ttl
        self.state_file = state_file
        self.seed_default = seed_default
        self.log = RequestLog()
        self.throttle = Throttle(ThrottleSettings(enabled=throttle))
        self.faults = FaultInjector()
        self.webhooks = Dispatcher()
        self.latency_seconds = 0.0
        self.base_url = ""
        if state_file and Path(state_file).exists():
            self.store.load(state_file)
        else:
            self._fresh()

    def _fresh(self) -> None:
        self.store.add_default_app()
        self.store.default_realm = self.create_company(DEFAULT_COMPANY, seed=self.seed_default)

    # -- lifecycle ----------------------------------------------------------------------------

    def start(self) -> None:
        self.webhooks.start()

    def stop(self) -> None:
        self.webhooks.stop()
        if self.state_file:
            self.store.save(self.state_file)

    def reset(self) -> None:
        """Back to a brand-new sandbox (same default realm id)."""
        realm = self.store.default_realm
        with self.store.lock:
            self.store = Store()
            self.store.add_default_app()
            self.store.default_realm = self.create_company(DEFAULT_COMPANY,
                                                           seed=self.seed_default,
                                                           realm_id=realm)
        self.log.clear()
        self.faults.clear()
        self.throttle.reset_stats()
        self.webhooks.unregister_all()

    # -- companies ----------------------------------------------------------------------------

    def create_company(self, name: str, *, seed: bool = True, utc_offset: str = "-08:00",
                       realm_id: str | None = None) -> str:
        tz(utc_offset)  # validate
        with self.store.lock:
            realm = realm_id or self.store.new_realm_id()
            company = Company(realm, name, utc_offset)
            self.store.companies[realm] = company
            books = Books(company, self.store.clock.time())
            seeding.seed_singletons(books)
            if seed:
                seeding.seed_company(books)
        return realm

    def mint_tokens(self, realm_id: str, client_id: str | None = None) -> dict[str, Any]:
        return oauth.mint(self.store, realm_id, client_id or DEFAULT_CLIENT_ID,
                          self.access_token_ttl)

    def publish(self, realm_id: str, changes: list[Change]) -> None:
        if changes:
            self.webhooks.enqueue(realm_id, changes)

    def write(self, realm_id: str, entity: str, bodies: list[Obj], op: str) -> list[Obj]:
        """Control-API writes (bulk create, "a user changed it in QBO")."""
        if entity not in SPECS:
            raise KeyError(f"unknown entity {entity}")
        if realm_id not in self.store.companies:
            raise KeyError(f"unknown realm {realm_id}")
        result, changes = direct_write(self.store, realm_id, entity, bodies, op)
        self.publish(realm_id, changes)
        return result

    def entities(self, realm_id: str, entity: str, include_inactive: bool = True) -> list[Obj]:
        with self.store.lock:
            company = self.store.companies[realm_id]
            rows = list(company.entities.get(entity, {}).values())
        if not include_inactive:
            rows = [r for r in rows if r.get("Active", True) is not False]
        return rows

    def now(self) -> str:
        company = self.store.companies.get(self.store.default_realm)
        offset = company.utc_offset if company else "+00:00"
        return fmt_millis(self.store.clock.time(), offset)
