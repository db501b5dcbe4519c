"""In-memory state: companies with their entities and indexes, OAuth apps and tokens.

Stored entity dicts are never mutated after they are stored (a write stores a new dict), so
readers may serialise them outside the lock.
"""

from __future__ import annotations

import json
import os
import threading
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from qbo_pipelines.sandbox.clock import Clock

Obj = dict[str, Any]

# Customer, Vendor and Employee share one DisplayName namespace (code 6240).
PEOPLE = ("Customer", "Vendor", "Employee")

DEFAULT_CLIENT_ID = "ABsandboxClientId0000000000000000000000000000000000"
DEFAULT_CLIENT_SECRET = "sandboxClientSecret000000000000000000000"  # noqa: S105 (dev-only)
DEFAULT_REDIRECT_URI = "http://localhost:8765/qbo/callback"


@dataclass
class Company:
    realm_id: str
    name: str
    utc_offset: str
    entities: dict[str, dict[str, Obj]] = field(default_factory=dict)
    updated: dict[str, dict[str, float]] = field(default_factory=dict)
    deleted: dict[str, dict[str, Obj]] = field(default_factory=dict)
    deleted_at: dict[str, dict[str, float]] = field(default_factory=dict)
    next_ids: dict[str, int] = field(default_factory=dict)
    next_doc: dict[str, int] = field(default_factory=dict)
    names: dict[str, dict[str, str]] = field(default_factory=dict)
    doc_numbers: dict[str, dict[str, str]] = field(default_factory=dict)
    request_ids: dict[str, list[Any]] = field(default_factory=dict)

    def table(self, entity: str) -> dict[str, Obj]:
        return self.entities.setdefault(entity, {})

    def get(self, entity: str, obj_id: str) -> Obj | None:
        return self.entities.get(entity, {}).get(obj_id)

    def new_id(self, entity: str) -> str:
        value = self.next_ids.get(entity, 1)
        self.next_ids[entity] = value + 1
        return str(value)

    def name_index(self, entity: str) -> dict[str, str]:
        key = "People" if entity in PEOPLE else entity
        return self.names.setdefault(key, {})

    def doc_index(self, key: str) -> dict[str, str]:
        return self.doc_numbers.setdefault(key, {})


@dataclass
class App:
    client_id: str
    client_secret: str
    redirect_uris: list[str]
    name: str = "Sandbox app"


@dataclass
class Grant:
    """One consent: a (client, realm) connection and the chain of tokens issued from it."""

    grant_id: str
    client_id: str
    realm_id: str
    scope: str
    revoked: bool = False


@dataclass
class AccessToken:
    grant_id: str
    expires_at: float


@dataclass
class RefreshToken:
    grant_id: str
    expires_at: float
    superseded: bool = False


@dataclass
class AuthCode:
    grant_id: str
    redirect_uri: str
    expires_at: float
    used: bool = False


@dataclass
class Store:
    """Everything the sandbox knows. Guard mutation with ``lock``."""

    clock: Clock = field(default_factory=Clock)
    companies: dict[str, Company] = field(default_factory=dict)
    apps: dict[str, App] = field(default_factory=dict)
    grants: dict[str, Grant] = field(default_factory=dict)
    access_tokens: dict[str, AccessToken] = field(default_factory=dict)
    refresh_tokens: dict[str, RefreshToken] = field(default_factory=dict)
    codes: dict[str, AuthCode] = field(default_factory=dict)
    emails: list[Obj] = field(default_factory=list)
    next_realm: int = 1
    default_realm: str = ""
    lock: threading.RLock = field(default_factory=threading.RLock)

    def company(self, realm_id: str) -> Company | None:
        return self.companies.get(realm_id)

    def new_realm_id(self) -> str:
        realm = str(9341453000000000 + self.next_realm * 7919)
        self.next_realm += 1
        return realm

    def add_default_app(self) -> App:
        app = App(DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, [DEFAULT_REDIRECT_URI])
        self.apps[app.client_id] = app
        return app

    # -- persistence -------------------------------------------------------------------------

    def view(self) -> Obj:
        """The state as a tree shaped like ``to_json()`` but without copying: companies' dicts
        and stored entity objects are the live ones (the journal diffs this tree)."""
        with self.lock:
            return {
                "clock_offset": self.clock.offset,
                "companies": {k: {f.name: getattr(v, f.name) for f in fields(v)}
                              for k, v in self.companies.items()},
                "apps": {k: dict(vars(v)) for k, v in self.apps.items()},
                "grants": {k: dict(vars(v)) for k, v in self.grants.items()},
                "access_tokens": {k: dict(vars(v)) for k, v in self.access_tokens.items()},
                "refresh_tokens": {k: dict(vars(v)) for k, v in self.refresh_tokens.items()},
                "codes": {k: dict(vars(v)) for k, v in self.codes.items()},
                "emails": self.emails,
                "next_realm": self.next_realm,
                "default_realm": self.default_realm,
            }

    def to_json(self) -> Obj:
        with self.lock:
            return {
                "clock_offset": self.clock.offset,
                "companies": {k: asdict(v) for k, v in self.companies.items()},
                "apps": {k: asdict(v) for k, v in self.apps.items()},
                "grants": {k: asdict(v) for k, v in self.grants.items()},
                "access_tokens": {k: asdict(v) for k, v in self.access_tokens.items()},
                "refresh_tokens": {k: asdict(v) for k, v in self.refresh_tokens.items()},
                "codes": {k: asdict(v) for k, v in self.codes.items()},
                "emails": self.emails,
                "next_realm": self.next_realm,
                "default_realm": self.default_realm,
            }

    def load_json(self, data: Obj) -> None:
        with self.lock:
            self.clock.offset = float(data.get("clock_offset", 0.0))
            self.companies = {k: Company(**v) for k, v in data["companies"].items()}
            self.apps = {k: App(**v) for k, v in data["apps"].items()}
            self.grants = {k: Grant(**v) for k, v in data["grants"].items()}
            self.access_tokens = {k: AccessToken(**v) for k, v in data["access_tokens"].items()}
            self.refresh_tokens = {k: RefreshToken(**v) for k, v in data["refresh_tokens"].items()}
            self.codes = {k: AuthCode(**v) for k, v in data["codes"].items()}
            self.emails = list(data.get("emails", []))
            self.next_realm = int(data.get("next_realm", 1))
            self.default_realm = str(data.get("default_realm", ""))

    def save(self, path: str | Path) -> None:
        write_durably(Path(path), json.dumps(self.to_json()).encode("utf-8"))

    def load(self, path: str | Path) -> None:
        self.load_json(json.loads(Path(path).read_text(encoding="utf-8")))


def write_durably(target: Path, data: bytes) -> None:
    """Replace ``target`` atomically with ``data``, fsync'd (file and directory). Mode 0600:
    the state holds OAuth tokens in plaintext."""
    tmp = target.with_suffix(target.suffix + ".tmp")
    with os.fdopen(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    tmp.replace(target)
    fsync_dir(target.parent)


def fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
