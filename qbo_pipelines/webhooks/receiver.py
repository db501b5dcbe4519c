"""The HTTP endpoint QBO posts webhooks to: verify, parse, store, answer (R29).

QBO wants an HTTP 200 within 3 seconds and retries anything else on its own schedule, holding
later events back meanwhile (QBO_API.md §10.4). So the endpoint does the least that makes the
event safe - it stores it in ``sync.webhook_inbox`` - and leaves the reading of QBO to the pull
run. What it answers, and why:

* 413: the body is larger than ``max_body`` (checked on ``Content-Length`` and while reading; at
  most ``max_body + 1`` bytes are kept). No webhook is that large.
* 401: ``intuit-signature`` missing or wrong, checked on the raw bytes before any parsing;
  nothing is stored. Logged with the size and the peer, never the body, signature or token.
* 400: signed but not a webhook body (bad JSON, wrong shape); logged with where it is wrong.
  A retry would be the same bytes, so there is no point asking for one.
* 200: stored (duplicates are absorbed by the inbox). Events for companies that are not
  connected are acknowledged but dropped (QBO would otherwise retry them for days), with a
  count in the log.
* 503: the database is unreachable or failed; QBO retries later, nothing is lost.
* 500: anything else, with a generic body; the traceback goes to the server log only.

``GET /healthz`` answers 200 for load balancers and the TLS proxy. Database calls run in a
worker thread so the event loop keeps accepting deliveries.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import sqlalchemy as sa
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from qbo_pipelines.qbo.secret import Secret
from qbo_pipelines.webhooks import inbox
from qbo_pipelines.webhooks.events import MalformedPayload, ParsedEvent, parse_body
from qbo_pipelines.webhooks.verify import SIGNATURE_HEADER, is_valid

logger = logging.getLogger("qbo_pipelines.webhooks")

DEFAULT_PATH = "/webhooks/qbo"
DEFAULT_MAX_BODY = 1024 * 1024  # 1 MiB


class BodyTooLarge(Exception):
    """The request body is larger than the receiver accepts."""


async def read_capped(request: Request, cap: int) -> bytes:
    """The raw body, reading at most ``cap + 1`` bytes.

    Raises:
        BodyTooLarge: ``Content-Length`` says more than ``cap``, or more than ``cap`` bytes
            arrived.
    """
    declared = request.headers.get("content-length")
    if declared is not None and declared.strip().isdigit() and int(declared) > cap:
        raise BodyTooLarge
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        if not chunk:
            continue
        room = cap + 1 - size
        chunks.append(chunk[:room])
        size += min(len(chunk), room)
        if size > cap:
            raise BodyTooLarge
    return b"".join(chunks)


def _peer(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def create_app(
    engine: sa.Engine,
    verifier: Secret,
    *,
    connected_realms: Callable[[], set[str]] | None = None,
    max_body: int = DEFAULT_MAX_BODY,
    path: str = DEFAULT_PATH,
) -> Starlette:
    """The receiver as a Starlette ASGI app.

    Args:
        engine: the migrated warehouse (``sync.webhook_inbox``).
        verifier: the app's webhook verifier token (Intuit developer portal).
        connected_realms: returns the realm ids whose events are stored (called per delivery,
            e.g. ``lambda: inbox.connected_realms(engine)``); None stores every realm.
        max_body: largest body accepted, in bytes.
        path: where QBO posts.
    """
    if not isinstance(verifier, Secret):
        raise TypeError("verifier must be a qbo_pipelines.qbo.secret.Secret")
    if not verifier:
        raise ValueError("the webhook verifier token is empty")

    async def receive(request: Request) -> Response:
        try:
            return await _receive(request)
        except sa.exc.SQLAlchemyError as exc:
            logger.error("webhook not stored, database unavailable: %s", type(exc).__name__)
            return JSONResponse({"error": "storage unavailable, retry later"}, status_code=503)
        except Exception:
            logger.exception("webhook handling failed")
            return JSONResponse({"error": "internal error"}, status_code=500)

    async def _receive(request: Request) -> Response:
        peer = _peer(request)
        try:
            body = await read_capped(request, max_body)
        except BodyTooLarge:
            logger.warning("webhook rejected from %s: body larger than %d bytes", peer, max_body)
            return JSONResponse({"error": "body too large"}, status_code=413)
        except ClientDisconnect:
            logger.warning("webhook from %s: client went away before the body arrived", peer)
            return Response(status_code=400)
        header = request.headers.get(SIGNATURE_HEADER)
        if not is_valid(verifier, body, header):
            logger.warning(
                "webhook rejected from %s: %s intuit-signature (%d bytes, nothing stored)",
                peer,
                "missing" if not header else "invalid",
                len(body),
            )
            return JSONResponse({"error": "invalid signature"}, status_code=401)
        try:
            parsed = parse_body(body)
        except MalformedPayload as exc:
            logger.warning("webhook rejected from %s: malformed body: %s", peer, exc)
            return JSONResponse({"error": f"malformed webhook body: {exc}"}, status_code=400)
        return await _store(parsed)

    async def _store(parsed: list[ParsedEvent]) -> Response:
        keep = parsed
        if connected_realms is not None:
            realms = await run_in_threadpool(connected_realms)
            keep = [p for p in parsed if p.event.realm_id in realms]
            dropped = len(parsed) - len(keep)
            if dropped:
                others = sorted({p.event.realm_id for p in parsed} - realms)
                logger.info(
                    "webhook: %d event(s) for companies not connected ignored (realms %s)",
                    dropped,
                    ", ".join(others),
                )
        unknown = [p.event for p in keep if not p.event.known]
        if unknown:
            logger.warning(
                "webhook: %d event(s) of an undocumented entity or operation stored, flagged: %s",
                len(unknown),
                ", ".join(sorted({f"{e.entity}/{e.operation}" for e in unknown})),
            )
        stored = await run_in_threadpool(inbox.store, engine, keep) if keep else 0
        logger.info(
            "webhook: %d event(s), %d new, %d duplicate(s)", len(keep), stored, len(keep) - stored
        )
        return JSONResponse({"received": len(parsed), "stored": stored})

    async def healthz(request: Request) -> Response:
        return PlainTextResponse("ok")

    return Starlette(
        routes=[
            Route(path, receive, methods=["POST"]),
            Route("/healthz", healthz, methods=["GET"]),
        ]
    )
