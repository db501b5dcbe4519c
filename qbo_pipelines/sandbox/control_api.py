"""The control API under ``/_sandbox/`` (not part of QBO): set-up and inspection for tests.

It can rewrite the whole sandbox, so it is closed to web pages and other local users: every
call needs the sandbox's control token (header ``X-Sandbox-Token``, generated at start, printed
by the CLI, passed by ``SandboxControl``/``run_sandbox()`` automatically), a cross-origin
request (an ``Origin`` other than the sandbox's own) is refused with 403, a body that is not
``application/json`` with 415, and state files stay inside the sandbox's data directory.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import asdict
from datetime import datetime
from typing import TYPE_CHECKING, Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from qbo_pipelines.sandbox import errors, oauth
from qbo_pipelines.sandbox.bookkeeper import Endpoint
from qbo_pipelines.sandbox.faults import FaultRule
from qbo_pipelines.sandbox.state import App
from qbo_pipelines.sandbox.throttle import ThrottleSettings
from qbo_pipelines.sandbox.webhooks import QBO_RETRY_SECONDS, Registration

if TYPE_CHECKING:
    from qbo_pipelines.sandbox.runtime import Sandbox

Handler = Callable[[Request], Awaitable[Response]]
PREFIX = "/_sandbox"
TOKEN_HEADER = "X-Sandbox-Token"  # noqa: S105 (a header name)


def _own_origins(sandbox: Sandbox, request: Request) -> set[str]:
    origins = {sandbox.base_url.rstrip("/")} if sandbox.base_url else set()
    port = request.url.port
    for host in ("127.0.0.1", "localhost"):
        origins.add(f"{request.url.scheme}://{host}" + (f":{port}" if port else ""))
    return origins


def _refusal(sandbox: Sandbox, request: Request, raw: bytes) -> Response | None:
    origin = request.headers.get("origin")
    if origin is not None and origin.rstrip("/") not in _own_origins(sandbox, request):
        return JSONResponse({"error": "cross-origin requests are refused"}, status_code=403)
    given = request.headers.get(TOKEN_HEADER, "")
    if not secrets.compare_digest(given.encode(), sandbox.control_token.encode()):
        return JSONResponse({"error": f"missing or wrong {TOKEN_HEADER}"}, status_code=401)
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if raw and media != "application/json":
        return JSONResponse({"error": "control API bodies are application/json"},
                            status_code=415)
    return None


def _guard(sandbox: Sandbox, func: Callable[[Request], Awaitable[Any]]) -> Handler:
    async def handler(request: Request) -> Response:
        refused = _refusal(sandbox, request, await request.body())
        if refused is not None:
            return refused
        try:
            result = await func(request)
        except errors.QboFault as fault:
            return JSONResponse({"Fault": fault.fault_json()}, status_code=fault.status)
        except oauth.OAuthError as exc:
            return JSONResponse(exc.body(), status_code=exc.status)
        except KeyError as exc:
            return JSONResponse({"error": f"not found: {exc}"}, status_code=404)
        except PermissionError as exc:
            return JSONResponse({"error": str(exc)}, status_code=403)
        except (ValueError, TypeError) as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        finally:
            if request.method != "GET":
                await run_in_threadpool(sandbox.commit)
        if isinstance(result, Response):
            return result
        return JSONResponse(result)
    return handler


async def _body(request: Request) -> dict[str, Any]:
    raw = await request.body()
    data = json.loads(raw) if raw else {}
    if not isinstance(data, dict):
        raise ValueError("control API bodies are JSON objects")
    return data


def control_routes(sandbox: Sandbox) -> list[Route]:
    c = _Control(sandbox)
    table: list[tuple[str, Callable[[Request], Awaitable[Any]], list[str]]] = [
        ("/info", c.info, ["GET"]),
        ("/companies", c.create_company, ["POST"]),
        ("/apps", c.register_app, ["POST"]),
        ("/tokens", c.mint_tokens, ["POST"]),
        ("/clock", c.clock, ["GET", "POST"]),
        ("/faults", c.faults, ["POST", "DELETE"]),
        ("/requests", c.requests, ["GET", "DELETE"]),
        ("/request_counts", c.request_counts, ["GET"]),
        ("/max_in_flight", c.max_in_flight, ["GET"]),
        ("/throttle", c.throttle, ["POST"]),
        ("/latency", c.latency, ["POST"]),
        ("/webhooks", c.register_webhook, ["POST"]),
        ("/webhooks/{realm}/deliveries", c.deliveries, ["GET"]),
        ("/entities/{realm}/{entity}", c.entities, ["GET", "POST"]),
        ("/count/{realm}/{entity}", c.count, ["GET"]),
        ("/emails/{realm}", c.emails, ["GET"]),
        ("/state/save", c.save_state, ["POST"]),
        ("/state/load", c.load_state, ["POST"]),
        ("/reset", c.reset, ["POST"]),
        ("/bookkeeper/{realm}", Endpoint(sandbox).handle, ["GET", "POST", "DELETE"]),
    ]
    return [Route(PREFIX + path, _guard(sandbox, func), methods=methods)
            for path, func, methods in table]


class _Control:
    def __init__(self, sandbox: Sandbox) -> None:
        self.sandbox = sandbox

    async def info(self, request: Request) -> dict[str, Any]:
        store = self.sandbox.store
        return {"realm_id": store.default_realm, "base_url": self.sandbox.base_url,
                "apps": [{"client_id": a.client_id, "redirect_uris": a.redirect_uris}
                         for a in store.apps.values()],
                "companies": [{"realm_id": co.realm_id, "name": co.name,
                               "utc_offset": co.utc_offset} for co in store.companies.values()]}

    async def create_company(self, request: Request) -> dict[str, Any]:
        data = await _body(request)
        realm = await run_in_threadpool(
            self.sandbox.create_company, str(data.get("name", "Sandbox Company")),
            seed=bool(data.get("seed", True)), utc_offset=str(data.get("utc_offset", "-08:00")))
        return {"realm_id": realm}

    async def register_app(self, request: Request) -> dict[str, Any]:
        data = await _body(request)
        app = App(str(data["client_id"]), str(data["client_secret"]),
                  [str(u) for u in data.get("redirect_uris", [])], str(data.get("name", "App")))
        with self.sandbox.store.lock:
            existing = self.sandbox.store.apps.get(app.client_id)
            if existing is not None and not data.get("replace", False):
                app.redirect_uris = sorted(set(existing.redirect_uris) | set(app.redirect_uris))
            self.sandbox.store.apps[app.client_id] = app
        return {"client_id": app.client_id, "redirect_uris": app.redirect_uris}

    async def mint_tokens(self, request: Request) -> dict[str, Any]:
        data = await _body(request)
        client_id = data.get("client_id")
        return self.sandbox.mint_tokens(str(data["realm_id"]),
                                        str(client_id) if client_id else None)

    async def clock(self, request: Request) -> dict[str, Any]:
        if request.method == "POST":
            data = await _body(request)
            if "iso" in data:
                when = datetime.fromisoformat(str(data["iso"]).replace("Z", "+00:00"))
                if when.tzinfo is None:
                    raise ValueError("iso needs a UTC offset")
                self.sandbox.store.clock.set(when)
            if "advance_seconds" in data:
                self.sandbox.store.clock.advance(float(data["advance_seconds"]))
        return {"now": self.sandbox.now()}

    async def faults(self, request: Request) -> dict[str, Any]:
        if request.method == "DELETE":
            self.sandbox.faults.clear()
            return {"cleared": True}
        data = await _body(request)
        allowed = set(FaultRule.__dataclass_fields__)
        rule = FaultRule(**{k: v for k, v in data.items() if k in allowed})
        self.sandbox.faults.add(rule)
        return {"added": True}

    async def requests(self, request: Request) -> Any:
        if request.method == "DELETE":
            self.sandbox.log.clear()
            self.sandbox.throttle.reset_stats()
            return {"cleared": True}
        return self.sandbox.log.list(request.query_params.get("realm_id"))

    async def request_counts(self, request: Request) -> dict[str, int]:
        return self.sandbox.log.counts(request.query_params.get("realm_id"))

    async def max_in_flight(self, request: Request) -> dict[str, int]:
        realm = request.query_params.get("realm_id", self.sandbox.store.default_realm)
        return {"max_in_flight": self.sandbox.throttle.max_in_flight(realm)}

    async def throttle(self, request: Request) -> dict[str, Any]:
        """Replace the limits; fields left out take QBO's values (§8), null turns one off."""
        data = await _body(request)
        allowed = set(ThrottleSettings.__dataclass_fields__)
        unknown = set(data) - allowed
        if unknown:
            raise ValueError(f"unknown throttle settings {sorted(unknown)}")
        settings = ThrottleSettings(**data)
        self.sandbox.throttle.settings = settings
        return asdict(settings)

    async def latency(self, request: Request) -> dict[str, Any]:
        data = await _body(request)
        self.sandbox.latency_seconds = float(data.get("seconds", 0.0))
        return {"seconds": self.sandbox.latency_seconds}

    async def register_webhook(self, request: Request) -> dict[str, Any]:
        data = await _body(request)
        realm = str(data["realm_id"])
        if realm not in self.sandbox.store.companies:
            raise KeyError(realm)
        fmt = str(data.get("format", "legacy"))
        if fmt not in ("legacy", "cloudevents"):
            raise ValueError("format is legacy or cloudevents")
        retry = data.get("retry_seconds")
        self.sandbox.webhooks.register(Registration(
            realm, str(data["url"]), str(data["verifier_token"]), fmt,
            None if data.get("batch_seconds") is None else float(data["batch_seconds"]),
            float(data.get("delay_seconds", 0)),
            bool(data.get("duplicate", False)), bool(data.get("reorder", False)),
            tuple(float(s) for s in retry) if retry is not None else QBO_RETRY_SECONDS))
        return {"registered": True}

    async def deliveries(self, request: Request) -> list[dict[str, Any]]:
        return self.sandbox.webhooks.deliveries(request.path_params["realm"])

    async def entities(self, request: Request) -> Any:
        realm, entity = request.path_params["realm"], request.path_params["entity"]
        if request.method == "POST":
            data = await _body(request)
            bodies = data.get("bodies", [])
            op = str(data.get("op", "create"))
            return await run_in_threadpool(self.sandbox.write, realm, entity, bodies, op)
        include = request.query_params.get("include_inactive", "true").lower() == "true"
        return self.sandbox.entities(realm, entity, include)

    async def count(self, request: Request) -> dict[str, int]:
        include = request.query_params.get("include_inactive", "true").lower() == "true"
        rows = self.sandbox.entities(request.path_params["realm"], request.path_params["entity"],
                                     include)
        return {"count": len(rows)}

    async def emails(self, request: Request) -> list[dict[str, Any]]:
        realm = request.path_params["realm"]
        with self.sandbox.store.lock:
            return [e for e in self.sandbox.store.emails if e["realm_id"] == realm]

    async def save_state(self, request: Request) -> dict[str, Any]:
        """Write the state to ``path``, relative to the data directory (nowhere else)."""
        path = str((await _body(request))["path"])
        await run_in_threadpool(self.sandbox.save_state, path)
        return {"saved": path}

    async def load_state(self, request: Request) -> dict[str, Any]:
        path = str((await _body(request))["path"])
        await run_in_threadpool(self.sandbox.load_state, path)
        return {"loaded": path}

    async def reset(self, request: Request) -> dict[str, Any]:
        await run_in_threadpool(self.sandbox.reset)
        return {"realm_id": self.sandbox.store.default_realm}
