"""``Sandbox``: the store plus everything around it (request log, throttle, faults, webhooks).

The HTTP layer (``app.py``) and the control API call into this object; it knows nothing of HTTP.
"""

from __future__ import annotations

import json
import secrets
import threading
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from qbo_pipelines.sandbox import errors, oauth
from qbo_pipelines.sandbox import seed as seeding
from qbo_pipelines.sandbox.clock import fmt_millis, local_date, tz
from qbo_pipelines.sandbox.entities import Books, Change
from qbo_pipelines.sandbox.faults import FaultInjector
from qbo_pipelines.sandbox.journal import Journal
from qbo_pipelines.sandbox.service import ApiRequest, ApiResult, Outcome, direct_write, execute
from qbo_pipelines.sandbox.specs import SPECS
from qbo_pipelines.sandbox.state import DEFAULT_CLIENT_ID, Company, Obj, Store
from qbo_pipelines.sandbox.throttle import Throttle, ThrottleSettings
from qbo_pipelines.sandbox.webhooks import DEFAULT_WINDOW_SECONDS, Dispatcher

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


SNAPSHOT_NAME = "state.json"
JOURNAL_SUFFIX = ".journal"


class Sandbox:
    """One sandbox instance (several companies, one default app).

    ``throttle``: QBO's limits (§8) are on unless False (or a ``ThrottleSettings``) is given.
    ``data_dir``: where state lives; with ``journal`` (default: on when a data dir or state
    file is given) every committed change is journaled there and survives a kill -9. Control
    API state save/load paths are confined to it. ``state_file`` (older option) is the snapshot
    file itself; its directory is then the data dir.
    """

    def __init__(self, *, seed_default: bool = True, throttle: bool | ThrottleSettings = True,
                 access_token_ttl: int = 3600, state_file: str | None = None,
                 data_dir: str | Path | None = None, journal: bool | None = None,
                 webhook_window: float = DEFAULT_WINDOW_SECONDS,
                 control_token: str | None = None) -> None:
        self.store = Store()
        self.access_token_ttl = access_token_ttl
        self.seed_default = seed_default
        self.log = RequestLog()
        settings = throttle if isinstance(throttle, ThrottleSettings) else (
            ThrottleSettings() if throttle else ThrottleSettings.off())
        self.throttle = Throttle(settings)
        self.faults = FaultInjector()
        self.webhooks = Dispatcher(default_window=webhook_window)
        self.latency_seconds = 0.0
        self.base_url = ""
        # Required on every /_sandbox/ call (header X-Sandbox-Token); printed by the CLI.
        self.control_token = control_token or secrets.token_urlsafe(32)
        if state_file:
            snapshot = Path(state_file).resolve()
            self.data_dir: Path | None = snapshot.parent
        elif data_dir is not None:
            self.data_dir = Path(data_dir).resolve()
            snapshot = self.data_dir / SNAPSHOT_NAME
        else:
            self.data_dir = None
            snapshot = None
        self.state_file = str(snapshot) if snapshot else None
        use_journal = snapshot is not None if journal is None else journal
        self.journal = (Journal(snapshot, snapshot.with_name(snapshot.name + JOURNAL_SUFFIX))
                        if use_journal and snapshot is not None else None)
        if self.data_dir is not None:
            self.data_dir.mkdir(parents=True, exist_ok=True)
        recovered = self.journal.recover() if self.journal else None
        if recovered is not None:
            self.store.load_json(recovered)
        elif snapshot is not None and snapshot.exists():
            self.store.load(snapshot)
        else:
            self._fresh()
        if self.journal:
            self.journal.checkpoint(self.store)

    def _fresh(self) -> None:
        self.store.add_default_app()
        self.store.default_realm = self.create_company(DEFAULT_COMPANY, seed=self.seed_default)

    # -- lifecycle ----------------------------------------------------------------------------

    def start(self) -> None:
        self.webhooks.start()

    def stop(self) -> None:
        self.webhooks.stop()
        if self.journal:
            self.journal.checkpoint(self.store)
            self.journal.close()
        elif self.state_file:
            self.store.save(self.state_file)

    # -- durability ---------------------------------------------------------------------------

    def commit(self) -> None:
        """Make what changed durable before the answer leaves (no-op without a journal)."""
        if self.journal:
            self.journal.commit(self.store)

    def checkpoint(self) -> None:
        if self.journal:
            self.journal.checkpoint(self.store)

    def state_path(self, name: str) -> Path:
        """A control-API state file path: relative, inside the data directory."""
        if self.data_dir is None:
            raise ValueError("this sandbox has no data directory")
        if not name or Path(name).is_absolute() or "\\" in name:
            raise PermissionError("state paths are relative to the sandbox's data directory")
        target = (self.data_dir / name).resolve()
        if not target.is_relative_to(self.data_dir) or target == self.data_dir:
            raise PermissionError("state paths must stay inside the sandbox's data directory")
        return target

    def save_state(self, name: str) -> Path:
        target = self.state_path(name)
        target.parent.mkdir(parents=True, exist_ok=True)
        self.store.save(target)
        return target

    def load_state(self, name: str) -> Path:
        target = self.state_path(name)
        self.store.load(target)
        self.checkpoint()
        return target

    # -- the API ------------------------------------------------------------------------------

    def execute(self, request: ApiRequest, label: str) -> Outcome:
        """One authenticated API call: the send cap, the call, its emails, the journal."""
        store = self.store
        with store.lock:
            capped = self._email_cap(request, label)
            if capped is not None:
                return Outcome(capped)
            try:
                outcome = execute(store, request)
                store.emails.extend(outcome.emails)
            finally:
                if request.method != "GET":
                    self.commit()
        return outcome

    def _email_cap(self, request: ApiRequest, label: str) -> ApiResult | None:
        """Sandbox companies send at most 40 emails a day (QBO_API.md §8, §12)."""
        limit = self.throttle.settings.emails_per_day
        if not label.startswith("send:") or limit is None or not self.throttle.settings.enabled:
            return None
        company = self.store.companies.get(request.realm)
        if company is None or request.params.get("requestid", "") in company.request_ids:
            return None  # a replay answers as the first call did
        epoch = self.store.clock.time()
        today = local_date(epoch, company.utc_offset).isoformat()
        sent = sum(1 for e in self.store.emails
                   if e.get("realm_id") == request.realm and str(e.get("time", ""))[:10] == today)
        if sent < limit:
            return None
        # QBO_API.md gives the cap, not its wire error: a business-validation fault (6000),
        # QBO's shape for a refused operation, with the limit named in Detail.
        fault = errors.business(f"You have reached the limit of {limit} emails a day for "
                                "this sandbox company. Try again tomorrow.")
        body = json.dumps({"Fault": fault.fault_json(),
                           "time": fmt_millis(epoch, company.utc_offset)}).encode("utf-8")
        return ApiResult(fault.status, body)

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
        self.checkpoint()

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
            self.commit()
        return realm

    def mint_tokens(self, realm_id: str, client_id: str | None = None) -> dict[str, Any]:
        with self.store.lock:
            tokens = oauth.mint(self.store, realm_id, client_id or DEFAULT_CLIENT_ID,
                                self.access_token_ttl)
            self.commit()
        return tokens

    def publish(self, realm_id: str, changes: list[Change]) -> None:
        if changes:
            self.webhooks.enqueue(realm_id, changes)

    def write(self, realm_id: str, entity: str, bodies: list[Obj], op: str) -> list[Obj]:
        """Control-API writes (bulk create, "a user changed it in QBO")."""
        if entity not in SPECS:
            raise KeyError(f"unknown entity {entity}")
        if realm_id not in self.store.companies:
            raise KeyError(f"unknown realm {realm_id}")
        with self.store.lock:
            try:
                result, changes = direct_write(self.store, realm_id, entity, bodies, op)
            finally:
                self.commit()
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
