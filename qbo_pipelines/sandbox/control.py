"""``SandboxControl``: a small Python client for the sandbox's ``/_sandbox/`` control API."""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import requests

from qbo_pipelines.sandbox.webhooks import QBO_RETRY_SECONDS

TOKEN_HEADER = "X-Sandbox-Token"  # noqa: S105 (a header name)
ENV_CONTROL_TOKEN = "QBO_SANDBOX_CONTROL_TOKEN"  # noqa: S105 (a variable name)
TOKEN_FILE = "control-token"  # noqa: S105 (a file name, in the sandbox's data directory)

# Control tokens of the sandboxes served by this process (SandboxServer registers them), so
# ``SandboxControl(base_url)`` needs no token argument for an in-process sandbox.
_KNOWN: dict[str, str] = {}
_KNOWN_LOCK = threading.Lock()


def remember_token(base_url: str, token: str | None) -> None:
    with _KNOWN_LOCK:
        if token is None:
            _KNOWN.pop(base_url.rstrip("/"), None)
        else:
            _KNOWN[base_url.rstrip("/")] = token


def write_token_file(path: Path, token: str) -> None:
    """Write a control token readable by its owner only (mode 0600 from the start)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(token + "\n")


def token_for(base_url: str, data_dir: str | Path | None = None) -> str | None:
    """The control token of the sandbox at ``base_url``: this process's own sandboxes, then
    ``QBO_SANDBOX_CONTROL_TOKEN``, then ``<data_dir>/control-token`` (written by the CLI)."""
    with _KNOWN_LOCK:
        known = _KNOWN.get(base_url.rstrip("/"))
    if known:
        return known
    if os.environ.get(ENV_CONTROL_TOKEN):
        return os.environ[ENV_CONTROL_TOKEN]
    if data_dir is not None and (Path(data_dir) / TOKEN_FILE).exists():
        return (Path(data_dir) / TOKEN_FILE).read_text(encoding="utf-8").strip()
    return None


class SandboxControl:
    """Set up and inspect a running sandbox (never part of QBO itself).

    ``token``: the sandbox's control token; found automatically (``token_for``) when omitted.
    """

    def __init__(self, base_url: str, timeout: float = 60.0, token: str | None = None,
                 data_dir: str | Path | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self._token = token
        self._data_dir = data_dir
        self._session = requests.Session()

    def _call(self, method: str, path: str, json: Any = None,
              params: dict[str, Any] | None = None) -> Any:
        token = self._token or token_for(self.base_url, self._data_dir)
        headers = {TOKEN_HEADER: token} if token else {}
        response = self._session.request(method, f"{self.base_url}/_sandbox{path}", json=json,
                                         params=params, timeout=self.timeout, headers=headers)
        if response.status_code >= 400:
            raise RuntimeError(f"sandbox control {method} {path} failed "
                               f"({response.status_code}): {response.text}")
        return response.json()

    def close(self) -> None:
        self._session.close()

    # -- companies, apps, tokens --------------------------------------------------------------

    def info(self) -> dict[str, Any]:
        result: dict[str, Any] = self._call("GET", "/info")
        return result

    def create_company(self, name: str = "Sandbox Company", seed: bool = True,
                       utc_offset: str = "-08:00") -> str:
        body = {"name": name, "seed": seed, "utc_offset": utc_offset}
        return str(self._call("POST", "/companies", body)["realm_id"])

    def register_app(self, client_id: str, client_secret: str, redirect_uris: list[str],
                     name: str = "App") -> dict[str, Any]:
        result: dict[str, Any] = self._call("POST", "/apps", {
            "client_id": client_id, "client_secret": client_secret,
            "redirect_uris": redirect_uris, "name": name})
        return result

    def mint_tokens(self, realm_id: str, client_id: str | None = None) -> dict[str, Any]:
        result: dict[str, Any] = self._call("POST", "/tokens",
                                            {"realm_id": realm_id, "client_id": client_id})
        return result

    # -- clock --------------------------------------------------------------------------------

    def set_clock(self, iso: str) -> str:
        return str(self._call("POST", "/clock", {"iso": iso})["now"])

    def advance_clock(self, seconds: float) -> str:
        return str(self._call("POST", "/clock", {"advance_seconds": seconds})["now"])

    def now(self) -> str:
        return str(self._call("GET", "/clock")["now"])

    # -- faults, throttling, latency ----------------------------------------------------------

    def inject_fault(self, *, kind: str, realm_id: str | None = None, method: str | None = None,
                     path: str | None = None, count: int | None = 1, probability: float = 1.0,
                     status: int | None = None, code: str | None = None,
                     message: str | None = None, detail: str | None = None,
                     delay_seconds: float = 5.0) -> None:
        self._call("POST", "/faults", {
            "kind": kind, "realm_id": realm_id, "method": method, "path": path, "count": count,
            "probability": probability, "status": status, "code": code, "message": message,
            "detail": detail, "delay_seconds": delay_seconds})

    def clear_faults(self) -> None:
        self._call("DELETE", "/faults")

    def set_throttle(self, enabled: bool = True, per_minute: int | None = 500,
                     in_flight: int | None = 10, batch_per_minute: int | None = 40,
                     per_second: int | None = 10, realm_batch_per_minute: int | None = 120,
                     emails_per_day: int | None = 40) -> dict[str, Any]:
        """QBO's limits (§8) unless told otherwise; ``None`` turns one limit off,
        ``enabled=False`` all of them."""
        result: dict[str, Any] = self._call("POST", "/throttle", {
            "enabled": enabled, "per_minute": per_minute, "in_flight": in_flight,
            "batch_per_minute": batch_per_minute, "per_second": per_second,
            "realm_batch_per_minute": realm_batch_per_minute, "emails_per_day": emails_per_day})
        return result

    def set_latency(self, seconds: float) -> None:
        """Add a delay to every QBO API call (to make concurrency observable)."""
        self._call("POST", "/latency", {"seconds": seconds})

    # -- request log --------------------------------------------------------------------------

    def requests(self, realm_id: str | None = None) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self._call("GET", "/requests",
                                                  params=_params(realm_id=realm_id))
        return result

    def request_counts(self, realm_id: str | None = None) -> dict[str, int]:
        result: dict[str, int] = self._call("GET", "/request_counts",
                                            params=_params(realm_id=realm_id))
        return result

    def reset_requests(self) -> None:
        self._call("DELETE", "/requests")

    def max_in_flight(self, realm_id: str) -> int:
        return int(self._call("GET", "/max_in_flight", params={"realm_id": realm_id})[
            "max_in_flight"])

    # -- webhooks -----------------------------------------------------------------------------

    def register_webhook(self, realm_id: str, url: str, verifier_token: str, *,
                         format: str = "legacy", batch_seconds: float | None = None,
                         delay_seconds: float = 0, duplicate: bool = False,
                         reorder: bool = False,
                         retry_seconds: list[float] | tuple[float, ...] = QBO_RETRY_SECONDS,
                         ) -> None:
        """``batch_seconds``: the aggregation window (None: the sandbox's default, a few
        seconds as QBO batches changes; 0: one notification per change)."""
        self._call("POST", "/webhooks", {
            "realm_id": realm_id, "url": url, "verifier_token": verifier_token,
            "format": format, "batch_seconds": batch_seconds, "delay_seconds": delay_seconds,
            "duplicate": duplicate, "reorder": reorder, "retry_seconds": list(retry_seconds)})

    def webhook_deliveries(self, realm_id: str) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self._call("GET", f"/webhooks/{realm_id}/deliveries")
        return result

    # -- direct state access ------------------------------------------------------------------

    def entities(self, realm_id: str, entity: str,
                 include_inactive: bool = True) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self._call(
            "GET", f"/entities/{realm_id}/{entity}",
            params={"include_inactive": str(include_inactive).lower()})
        return result

    def count(self, realm_id: str, entity: str, include_inactive: bool = True) -> int:
        return int(self._call("GET", f"/count/{realm_id}/{entity}", params={
            "include_inactive": str(include_inactive).lower()})["count"])

    def bulk_create(self, realm_id: str, entity: str,
                    bodies: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Create many entities at once (same validation as the API, no throttling/log)."""
        return self._write(realm_id, entity, bodies, "create")

    def user_update(self, realm_id: str, entity: str, changes: dict[str, Any]) -> dict[str, Any]:
        """Simulate a user editing a record in QBO: a sparse update (needs Id; SyncToken is
        taken from the current record when omitted). Webhooks fire as for any change."""
        body = dict(changes)
        body.setdefault("SyncToken", self._current(realm_id, entity, str(body["Id"]))["SyncToken"])
        return self._write(realm_id, entity, [body], "update")[0]

    def user_delete(self, realm_id: str, entity: str, obj_id: str) -> dict[str, Any]:
        """Simulate a user deleting a transaction in QBO."""
        body = self._id_token(realm_id, entity, obj_id)
        return self._write(realm_id, entity, [body], "delete")[0]

    def user_void(self, realm_id: str, entity: str, obj_id: str) -> dict[str, Any]:
        """Simulate a user voiding a transaction in QBO."""
        body = self._id_token(realm_id, entity, obj_id)
        return self._write(realm_id, entity, [body], "void")[0]

    def _current(self, realm_id: str, entity: str, obj_id: str) -> dict[str, Any]:
        for row in self.entities(realm_id, entity):
            if row["Id"] == obj_id:
                return row
        raise RuntimeError(f"{entity} {obj_id} not found")

    def _id_token(self, realm_id: str, entity: str, obj_id: str) -> dict[str, Any]:
        current = self._current(realm_id, entity, str(obj_id))
        return {"Id": current["Id"], "SyncToken": current["SyncToken"]}

    def _write(self, realm_id: str, entity: str, bodies: list[dict[str, Any]],
               op: str) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self._call("POST", f"/entities/{realm_id}/{entity}",
                                                  {"bodies": bodies, "op": op})
        return result

    def emails(self, realm_id: str) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self._call("GET", f"/emails/{realm_id}")
        return result

    # -- the simulated bookkeeper (qbo_pipelines.sandbox.bookkeeper) --------------------------

    def bookkeeper_run(self, realm_id: str, steps: int, seed: int = 0,
                       chores: Sequence[str] | None = None) -> list[dict[str, Any]]:
        """Run ``steps`` bookkeeper chores now (reproducible for a seed), or exactly ``chores``
        in that order (names from ``bookkeeper.CHORES``); what was done."""
        body: dict[str, Any] = {"steps": steps, "seed": seed}
        if chores:
            body["chores"] = list(chores)
        result: list[dict[str, Any]] = self._call("POST", f"/bookkeeper/{realm_id}",
                                                  body)["steps"]
        return result

    def bookkeeper_start(self, realm_id: str, rate_per_minute: float, seed: int = 0,
                         max_steps: int | None = None) -> None:
        """Start a background bookkeeper doing ``rate_per_minute`` chores a minute."""
        self._call("POST", f"/bookkeeper/{realm_id}", _params(
            rate_per_minute=rate_per_minute, seed=seed, max_steps=max_steps))

    def bookkeeper_stop(self, realm_id: str) -> int:
        """Stop the background bookkeeper; the number of chores it did."""
        return int(self._call("DELETE", f"/bookkeeper/{realm_id}")["steps"])

    def bookkeeper_status(self, realm_id: str) -> dict[str, Any]:
        result: dict[str, Any] = self._call("GET", f"/bookkeeper/{realm_id}")
        return result

    # -- whole state --------------------------------------------------------------------------

    def save_state(self, path: str) -> None:
        """``path`` is relative to the sandbox's data directory (absolute paths are refused)."""
        self._call("POST", "/state/save", {"path": path})

    def load_state(self, path: str) -> None:
        self._call("POST", "/state/load", {"path": path})

    def reset(self) -> str:
        return str(self._call("POST", "/reset")["realm_id"])


def _params(**kwargs: Any) -> dict[str, Any]:
    return {k: v for k, v in kwargs.items() if v is not None}
