"""The Starlette application: QBO API under ``/v3/company/{realm}``, OAuth, and ``/_sandbox``."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any
from urllib.parse import parse_qsl, urlencode

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from qbo_pipelines.sandbox import errors, oauth, xmlout
from qbo_pipelines.sandbox.clock import fmt_millis
from qbo_pipelines.sandbox.control_api import control_routes
from qbo_pipelines.sandbox.faults import FaultRule
from qbo_pipelines.sandbox.runtime import Sandbox
from qbo_pipelines.sandbox.service import ApiRequest, classify

JSON_TYPE = "application/json;charset=UTF-8"


class DropConnection(Response):
    """Close the TCP connection without sending any response (``drop_after_commit``)."""

    def __init__(self) -> None:
        super().__init__(b"")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        transport = scope.get("sandbox.transport")
        if transport is not None:
            transport.close()
            return
        # Fallback: promise a body and never finish it.
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-length", b"100000")]})
        await send({"type": "http.response.body", "body": b"{", "more_body": True})


async def _form(request: Request) -> dict[str, str]:
    """An ``application/x-www-form-urlencoded`` body (without python-multipart)."""
    raw = (await request.body()).decode("utf-8", errors="replace")
    return dict(parse_qsl(raw, keep_blank_values=True))


def _intuit_headers() -> dict[str, str]:
    return {"intuit_tid": f"1-{int(time.time() * 1000):x}-sandbox", "QBO-Version": "1978.5"}


class QboApi:
    """Handlers for ``/v3/company/{realm}/...``."""

    def __init__(self, sandbox: Sandbox) -> None:
        self.sandbox = sandbox

    async def endpoint(self, request: Request) -> Response:
        realm = request.path_params["realm"]
        sub = "/" + request.path_params.get("rest", "")
        params = dict(request.query_params.items())
        body = await request.body()
        label = classify(request.method, sub, params, body)
        started = self.sandbox.now()
        throttle = self.sandbox.throttle
        app = oauth.bearer_client(self.sandbox.store, request.headers.get("authorization", ""))
        throttle.enter(realm, app)
        status = 0
        try:
            response = await self._handle(request, realm, sub, params, label, body, app)
            status = response.status_code if not isinstance(response, DropConnection) else 0
            if xmlout.wants_xml(request.headers.get("accept", "")):
                response = xmlout.as_xml(response)
            return response
        finally:
            throttle.leave(realm, app)
            self.sandbox.log.add({
                "realm_id": realm, "method": request.method, "path": request.url.path,
                "endpoint": label, "status": status, "request_id": params.get("requestid"),
                "time": self.sandbox.now(), "started": started, "query": params.get("query")})

    async def _handle(self, request: Request, realm: str, sub: str, params: dict[str, str],
                      label: str, body: bytes, app: str) -> Response:
        sandbox = self.sandbox
        problem = oauth.check_bearer(sandbox.store, request.headers.get("authorization", ""),
                                     realm)
        if problem is not None:
            code = "3200" if problem[0] == 401 else "3100"
            return JSONResponse(errors.auth_fault_json(problem[1], code, problem[0]),
                                status_code=problem[0], headers=_intuit_headers())
        if not sandbox.throttle.admit(realm, label == "batch", app):
            return self._throttled(realm)
        rule = sandbox.faults.take(realm, request.method, sub)
        if rule is not None and rule.kind != "drop_after_commit":
            return await self._injected(rule, realm)
        if sandbox.latency_seconds:
            await asyncio.sleep(sandbox.latency_seconds)
        api_request = ApiRequest(realm, request.method, sub, params, body,
                                 request.headers.get("content-type", ""))
        outcome = await run_in_threadpool(sandbox.execute, api_request, label)
        sandbox.publish(realm, outcome.changes)
        if rule is not None and outcome.result.committed:
            return DropConnection()
        result = outcome.result
        return Response(result.body, status_code=result.status, media_type=result.media_type,
                        headers=_intuit_headers())

    def _time(self, realm: str) -> str:
        company = self.sandbox.store.company(realm)
        return fmt_millis(self.sandbox.store.clock.time(),
                          company.utc_offset if company else "-08:00")

    def _throttled(self, realm: str) -> Response:
        return Response(errors.throttle_xml(self._time(realm)), status_code=429,
                        media_type="application/xml", headers=_intuit_headers())

    async def _injected(self, rule: FaultRule, realm: str) -> Response:
        if rule.kind == "throttle":
            return self._throttled(realm)
        if rule.kind == "server_error":
            fault = errors.QboFault(rule.code or "10000", rule.message or errors.MSG_SYSTEM,
                                    rule.detail or "System Failure Error: An unexpected error "
                                    "occurred while accessing or saving your data.",
                                    status=rule.status or 500, type=errors.SYSTEM)
            return self._fault_response(fault, realm)
        if rule.kind == "timeout":
            await asyncio.sleep(rule.delay_seconds)
            return Response("<html><body><h1>504 Gateway Time-out</h1></body></html>",
                            status_code=rule.status or 504, media_type="text/html")
        code = rule.code or "6000"
        status = rule.status or 400
        if rule.kind == "fault" and status in (401, 403):
            return JSONResponse(errors.auth_fault_json(rule.detail or "Injected", code, status),
                                status_code=status)
        fault = errors.QboFault(code, rule.message or errors.KNOWN_MESSAGES.get(
            code, errors.MSG_BUSINESS), rule.detail or f"Injected fault {code}", status=status)
        if rule.kind == "xml":
            return Response(fault.xml(self._time(realm)), status_code=status,
                            media_type="application/xml")
        return self._fault_response(fault, realm)

    def _fault_response(self, fault: errors.QboFault, realm: str) -> Response:
        body = {"Fault": fault.fault_json(), "time": self._time(realm)}
        return Response(json.dumps(body), status_code=fault.status, media_type=JSON_TYPE,
                        headers=_intuit_headers())


class OAuthEndpoints:
    def __init__(self, sandbox: Sandbox) -> None:
        self.sandbox = sandbox

    def _log(self, endpoint: str, request: Request, status: int) -> None:
        self.sandbox.log.add({"realm_id": None, "method": request.method,
                              "path": request.url.path, "endpoint": endpoint, "status": status,
                              "request_id": None, "time": self.sandbox.now(), "query": None})

    async def discovery(self, request: Request) -> Response:
        return JSONResponse(oauth.discovery(self.sandbox.base_url or _base(request)))

    async def authorize(self, request: Request) -> Response:
        params = dict(request.query_params) if request.method == "GET" else await _form(request)
        problem = oauth.authorize_problem(self.sandbox.store, params)
        if problem is not None:
            self._log("authorize", request, 400)
            return HTMLResponse(f"<h1>Invalid request</h1><p>{problem}</p>", status_code=400)
        if request.method == "GET":
            self._log("authorize", request, 200)
            return HTMLResponse(oauth.consent_page(self.sandbox.store, params))
        answer = oauth.consent(self.sandbox.store, params)
        await run_in_threadpool(self.sandbox.commit)
        self._log("consent", request, 302)
        return RedirectResponse(f"{params['redirect_uri']}?{urlencode(answer)}", status_code=302)

    async def token(self, request: Request) -> Response:
        response = await self._token(request)
        await run_in_threadpool(self.sandbox.commit)
        self._log("token", request, response.status_code)
        return response

    async def _token(self, request: Request) -> Response:
        sandbox = self.sandbox
        rule = sandbox.faults.take(None, request.method, request.url.path)
        if rule is not None:
            status = rule.status or 500
            return JSONResponse({"error": rule.code or "server_error"}, status_code=status)
        try:
            form = await _form(request)
            client_id = oauth.authenticate_client(
                sandbox.store, request.headers.get("authorization", ""), form)
            issuer = (sandbox.base_url or _base(request)) + oauth.ISSUER_PATH
            body = oauth.token(sandbox.store, client_id, form, sandbox.access_token_ttl, issuer)
        except oauth.OAuthError as exc:
            return JSONResponse(exc.body(), status_code=exc.status)
        return JSONResponse(body, headers={"Cache-Control": "no-store"})

    async def revoke(self, request: Request) -> Response:
        sandbox = self.sandbox
        try:
            client_id = oauth.client_from_basic(sandbox.store,
                                                request.headers.get("authorization", ""))
            data = json.loads((await request.body()) or b"{}")
            oauth.revoke(sandbox.store, client_id, str(data.get("token", "")))
            await run_in_threadpool(sandbox.commit)
        except oauth.OAuthError as exc:
            self._log("revoke", request, exc.status)
            return JSONResponse(exc.body(), status_code=exc.status)
        except json.JSONDecodeError:
            self._log("revoke", request, 400)
            return JSONResponse({"error": "invalid_request"}, status_code=400)
        self._log("revoke", request, 200)
        return Response(b"", status_code=200)

    async def userinfo(self, request: Request) -> Response:
        header = request.headers.get("authorization", "")
        record = self.sandbox.store.access_tokens.get(header[7:].strip())
        if record is None:
            return JSONResponse({"error": "invalid_token"}, status_code=401)
        return JSONResponse({"sub": record.grant_id, "givenName": "Sandbox",
                             "familyName": "User", "email": "sandbox.user@example.com",
                             "emailVerified": True})

    async def jwks(self, request: Request) -> Response:
        return JSONResponse(await run_in_threadpool(oauth.jwks))


def _base(request: Request) -> str:
    return f"{request.url.scheme}://{request.url.netloc}"


async def index(request: Request) -> Response:
    return JSONResponse({"service": "qbo-pipelines QBO sandbox",
                         "api": "/v3/company/{realmId}/...", "control": "/_sandbox/",
                         "discovery": oauth.DISCOVERY_PATH})


class _TransportCapture:
    """Outer ASGI layer: remembers the uvicorn transport so a response can be dropped."""

    def __init__(self, app: Starlette) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            cycle: Any = getattr(receive, "__self__", None)
            scope["sandbox.transport"] = getattr(cycle, "transport", None)
        await self.app(scope, receive, send)


def create_app(sandbox: Sandbox) -> _TransportCapture:
    api = QboApi(sandbox)
    auth = OAuthEndpoints(sandbox)
    routes = [
        Route("/", index),
        Route(oauth.DISCOVERY_PATH, auth.discovery),
        Route(oauth.DISCOVERY_PATH + "/", auth.discovery),
        Route(oauth.SANDBOX_DISCOVERY_PATH, auth.discovery),
        Route(oauth.SANDBOX_DISCOVERY_PATH + "/", auth.discovery),
        Route(oauth.AUTHORIZE_PATH, auth.authorize, methods=["GET", "POST"]),
        Route(oauth.TOKEN_PATH, auth.token, methods=["POST"]),
        Route(oauth.REVOKE_PATH, auth.revoke, methods=["POST"]),
        Route(oauth.USERINFO_PATH, auth.userinfo),
        Route(oauth.JWKS_PATH, auth.jwks),
        Route("/v3/company/{realm}/{rest:path}", api.endpoint, methods=["GET", "POST"]),
        *control_routes(sandbox),
    ]
    app = Starlette(routes=routes)
    return _TransportCapture(app)
