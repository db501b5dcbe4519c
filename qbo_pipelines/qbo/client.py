"""The QBO Accounting API v3 client: the only code in the project that sends HTTP to QBO.

Quick start (the sync layer's view)::

    from qbo_pipelines.qbo import QboClient, BatchOp, request_id_for, select, eq

    client = QboClient(base_url, realm_id, token_store)      # token_store: a TokenProvider
    for customer in client.query_all("Customer", include_inactive=True):
        ...
    rid = request_id_for(realm_id, "Customer", source_id, content_hash, "create")
    results = client.batch_write([BatchOp.create("Customer", body, rid), ...])
    for r in results:
        if r.ok: save(r.op.key, r.entity["Id"], r.entity["SyncToken"])
        else: ledger(r.op.key, r.error.code, str(r.error))

Guarantees:

* ``minorversion=75`` and ``Accept: application/json`` on every call; (connect, read) timeouts.
* A per-realm :class:`~qbo_pipelines.qbo.limiter.RateLimiter` (500/min, 10 in flight, 40 batch
  calls/min by default) wraps every HTTP request.
* Retries with exponential backoff and jitter on 429, 5xx, connection errors and timeouts; never
  on validation faults. A 401 refreshes the access token once and retries.
* Every write takes a caller-supplied deterministic ``request_id`` (see :func:`request_id_for`)
  that is sent as QBO's ``requestid``, so a retry, a re-run or a crash-restart replays the first
  result instead of writing twice (SPEC R33). Batch calls get a requestid derived from their
  operations' ids (<= 36 chars) and bIds of <= 10 chars.
* Reads page with ``STARTPOSITION``/``MAXRESULTS 1000`` and stop only on a short page.
* Money is ``Decimal`` (``parse_float=Decimal``); timestamps via
  :func:`~qbo_pipelines.qbo.values.parse_datetime` are timezone-aware.
* No read-before-write: updates take the SyncToken from the caller's id map. A 5010 (stale
  SyncToken) re-reads the record once and re-applies the sparse change; the result says so
  (``conflict=True``) and the caller decides what that means (SPEC R34).
"""

from __future__ import annotations

import logging
import random
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal, Protocol
from urllib.parse import quote

import requests
from requests.adapters import HTTPAdapter

from qbo_pipelines.qbo import query as q
from qbo_pipelines.qbo.errors import (
    AuthError,
    NeedsReconnectError,
    NotFoundError,
    QboError,
    ServerError,
    StaleObjectError,
    ThrottledError,
    TransportError,
    error_from_fault,
    error_from_response,
    fault_in_payload,
)
from qbo_pipelines.qbo.ids import QboId, RealmId, RequestId, SyncToken
from qbo_pipelines.qbo.limiter import Limits, RateLimiter, limiter_for
from qbo_pipelines.qbo.secret import Secret
from qbo_pipelines.qbo.values import Entity, dumps, loads, parse_datetime

if TYPE_CHECKING:
    from qbo_pipelines.qbo.cdc import CdcResult

log = logging.getLogger(__name__)

PRODUCTION_BASE_URL = "https://quickbooks.api.intuit.com"
SANDBOX_BASE_URL = "https://sandbox-quickbooks.api.intuit.com"
MINOR_VERSION = 75
BATCH_SIZE = 30
PAGE_SIZE = 1000
MAX_REQUEST_ID_LENGTH = 50
MAX_BATCH_REQUEST_ID_LENGTH = 36
MAX_BID_LENGTH = 10

NAME_LIST_ENTITIES = frozenset(
    {
        "Customer",
        "Vendor",
        "Employee",
        "Item",
        "Account",
        "Class",
        "Department",
        "PaymentMethod",
        "Term",
        "TaxCode",
        "TaxRate",
        "Budget",
    }
)
"""Entities whose queries return only active rows unless ``Active`` is filtered (§13.5)."""

VOID_BY_UPDATE = frozenset({"Payment", "SalesReceipt", "BillPayment"})
"""Voided with ``operation=update&include=void``; others (Invoice) use ``operation=void``."""

_REQUEST_ID_NAMESPACE = uuid.UUID("6f1c7e0e-4c1b-5b8e-9a51-0b5f2a8d9c11")


# ---------------------------------------------------------------------------------------------
# Request ids


def request_id_for(
    realm_id: RealmId,
    entity: str,
    source_id: str,
    content_hash: str,
    op: str,
    attempt: int = 0,
) -> RequestId:
    """The deterministic QBO ``requestid`` of one write (32 hex chars).

    Same realm, entity, source record, content version and operation -> same id, so QBO replays
    the first result for a retry, a re-run or a restart after a crash.

    QBO also replays a *failure* for a known id. When a write failed with a validation fault
    (nothing was written) and the cause was fixed outside the record (a mapping added, a clashing
    name renamed in QBO), pass ``attempt`` = the number of such recorded failures, so the retry
    really executes. Never bump it for transport errors or throttling: those retries must reuse
    the id.
    """
    parts = (realm_id, entity, source_id, content_hash, op)
    name = "\x1f".join(parts if attempt == 0 else (*parts, f"attempt={attempt}"))
    return RequestId(uuid.uuid5(_REQUEST_ID_NAMESPACE, name).hex)


def derive_request_id(base: str, *parts: str) -> RequestId:
    """A new deterministic id derived from ``base`` (e.g. the re-apply after a 5010)."""
    return RequestId(uuid.uuid5(_REQUEST_ID_NAMESPACE, "\x1f".join((base, *parts))).hex)


def _check_request_id(request_id: str, limit: int = MAX_REQUEST_ID_LENGTH) -> str:
    if not request_id or len(request_id) > limit:
        raise ValueError(f"request_id must be 1..{limit} characters")
    return request_id


# ---------------------------------------------------------------------------------------------
# Tokens


class TokenProvider(Protocol):
    """Where the client gets bearer tokens (the warehouse :class:`TokenStore` in production)."""

    def access_token(self, realm_id: RealmId) -> Secret:
        """A currently valid access token (refreshing first if it is about to expire)."""
        ...

    def refresh_access_token(self, realm_id: RealmId, rejected: Secret) -> Secret:
        """A new access token after QBO rejected ``rejected`` with a 401."""
        ...


@dataclass
class StaticTokenProvider:
    """A fixed access token (tests, one-off scripts). A 401 cannot be fixed: it re-raises."""

    token: Secret

    def access_token(self, realm_id: RealmId) -> Secret:
        return self.token

    def refresh_access_token(self, realm_id: RealmId, rejected: Secret) -> Secret:
        return self.token


# ---------------------------------------------------------------------------------------------
# Results


@dataclass(frozen=True)
class QueryResult:
    """One query response page."""

    entity: str
    entities: list[Entity]
    start_position: int | None
    max_results: int | None
    total_count: int | None
    time: datetime | None


@dataclass(frozen=True)
class UpdateResult:
    """An update's stored entity; ``conflict`` is True when a 5010 forced a re-read + re-apply."""

    entity: Entity
    conflict: bool = False
    stale_entity: Entity | None = None


BatchOperation = Literal["create", "update", "delete", "void"]


@dataclass(frozen=True)
class BatchOp:
    """One write in a batch. ``body`` is the entity JSON (with Id/SyncToken for update/delete).

    ``key`` is for the caller to find its record again (e.g. the source id); it is not sent.
    """

    operation: BatchOperation
    entity: str
    body: Mapping[str, Any]
    request_id: str
    key: str | None = None

    @staticmethod
    def create(
        entity: str, body: Mapping[str, Any], request_id: str, key: str | None = None
    ) -> BatchOp:
        return BatchOp("create", entity, dict(body), request_id, key)

    @staticmethod
    def update(
        entity: str,
        qbo_id: QboId,
        sync_token: SyncToken,
        changes: Mapping[str, Any],
        request_id: str,
        key: str | None = None,
        sparse: bool = True,
    ) -> BatchOp:
        body = {**changes, "Id": qbo_id, "SyncToken": sync_token, "sparse": sparse}
        return BatchOp("update", entity, body, request_id, key)

    @staticmethod
    def delete(
        entity: str, qbo_id: QboId, sync_token: SyncToken, request_id: str, key: str | None = None
    ) -> BatchOp:
        return BatchOp("delete", entity, {"Id": qbo_id, "SyncToken": sync_token}, request_id, key)

    @staticmethod
    def void(
        entity: str, qbo_id: QboId, sync_token: SyncToken, request_id: str, key: str | None = None
    ) -> BatchOp:
        body: dict[str, Any] = {"Id": qbo_id, "SyncToken": sync_token}
        if entity in VOID_BY_UPDATE:
            body["sparse"] = True
        return BatchOp("void", entity, body, request_id, key)


@dataclass(frozen=True)
class BatchResult:
    """The outcome of one :class:`BatchOp`: exactly one of ``entity`` / ``error`` is set."""

    op: BatchOp
    entity: Entity | None = None
    error: QboError | None = None
    conflict: bool = False

    @property
    def ok(self) -> bool:
        return self.error is None


# ---------------------------------------------------------------------------------------------
# Backoff


def backoff_delay(
    attempt: int, base: float, cap: float, rng: Callable[[float, float], float] = random.uniform
) -> float:
    """Exponential backoff with "equal jitter": half fixed, half random, capped at ``cap``."""
    ceiling = min(cap, base * (2**attempt))
    return float(ceiling / 2 + rng(0.0, ceiling / 2))


def _retry_after(response: requests.Response) -> float | None:
    value = response.headers.get("Retry-After")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


# ---------------------------------------------------------------------------------------------
# The client


@dataclass
class _Call:
    method: str
    path: str
    params: dict[str, str] = field(default_factory=dict)
    body: bytes | None = None
    content_type: str | None = None
    batch: bool = False


class QboClient:
    """A client for one QBO company (realm) at ``base_url``.

    Args:
        base_url: API host, e.g. :data:`PRODUCTION_BASE_URL`, :data:`SANDBOX_BASE_URL` or the
            local sandbox's ``http://127.0.0.1:PORT``.
        realm_id: the company.
        token_provider: hands out access tokens and refreshes them after a 401.
        limiter: the realm's rate limiter; default: the process-wide one for this realm.
        limits: limits used when the default limiter is created.
        timeout: (connect, read) seconds per HTTP request.
        max_retries: retries after the first attempt for retryable failures.
        backoff_base: first backoff in seconds (doubles per attempt, with jitter).
        backoff_max: longest single backoff.
        throttle_backoff_base: first backoff after a 429 (QBO asks for ~60 s in total).
        session: a ``requests.Session`` to reuse (connection pooling); created when omitted.
        sleep: injectable for tests.
    """

    def __init__(
        self,
        base_url: str,
        realm_id: RealmId,
        token_provider: TokenProvider,
        *,
        limiter: RateLimiter | None = None,
        limits: Limits | None = None,
        timeout: float | tuple[float, float] = (10.0, 120.0),
        max_retries: int = 6,
        backoff_base: float = 1.0,
        backoff_max: float = 60.0,
        throttle_backoff_base: float = 8.0,
        minor_version: int = MINOR_VERSION,
        session: requests.Session | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.realm_id = realm_id
        self.tokens = token_provider
        self.limiter = limiter or limiter_for(realm_id, limits, scope=self.base_url)
        self.timeout = timeout
        self.max_retries = max_retries
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.throttle_backoff_base = throttle_backoff_base
        self.minor_version = minor_version
        self.session = session or self._new_session()
        self._sleep = sleep
        self._stats_lock = threading.Lock()
        self.calls: dict[str, int] = {}

    def __repr__(self) -> str:
        return f"QboClient(base_url={self.base_url!r}, realm_id={self.realm_id!r})"

    def _new_session(self) -> requests.Session:
        session = requests.Session()
        size = self.limiter.limits.in_flight + 2
        adapter = HTTPAdapter(pool_connections=2, pool_maxsize=size, max_retries=0)
        session.mount("http://", adapter)
        session.mount("https://", adapter)
        return session

    def close(self) -> None:
        self.session.close()

    def __enter__(self) -> QboClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- transport ------------------------------------------------------------------------

    def _url(self, path: str) -> str:
        return f"{self.base_url}/v3/company/{quote(self.realm_id, safe='')}/{path}"

    def _count_call(self, kind: str) -> None:
        with self._stats_lock:
            self.calls[kind] = self.calls.get(kind, 0) + 1

    def _send_once(self, call: _Call, token: Secret) -> dict[str, Any]:
        headers = {
            "Accept": "application/json",
            "Authorization": f"Bearer {token.reveal()}",
        }
        if call.content_type:
            headers["Content-Type"] = call.content_type
        try:
            with self.limiter.slot(batch=call.batch):
                response = self.session.request(
                    call.method,
                    self._url(call.path),
                    params=call.params,
                    data=call.body,
                    headers=headers,
                    timeout=self.timeout,
                )
        except requests.Timeout as exc:
            raise TransportError(f"timeout: {type(exc).__name__}", code="timeout") from None
        except (requests.ConnectionError, requests.exceptions.ChunkedEncodingError) as exc:
            # includes a connection dropped after QBO committed: the retry reuses the requestid
            raise TransportError(
                f"connection error: {type(exc).__name__}", code="connection"
            ) from None
        return self._parse(response)

    @staticmethod
    def _parse(response: requests.Response) -> dict[str, Any]:
        tid = response.headers.get("intuit_tid")
        status = response.status_code
        content = response.content
        if 200 <= status < 300 and content.lstrip().startswith(b"{"):
            try:
                payload = loads(content)
            except ValueError:
                payload = None
            if isinstance(payload, dict):
                fault = fault_in_payload(payload)
                if fault is not None:
                    raise error_from_fault(fault, status=status, intuit_tid=tid)
                return payload
        error = error_from_response(status, content, tid)
        if error is None:
            error = ServerError(
                "unreadable QBO response", code="10000", status=status, intuit_tid=tid
            )
        if isinstance(error, ThrottledError):
            error.retry_after = _retry_after(response)
        raise error

    def _request(self, call: _Call) -> dict[str, Any]:
        call.params["minorversion"] = str(self.minor_version)
        attempt = 0
        refreshed = False
        token = self.tokens.access_token(self.realm_id)
        while True:
            self._count_call("batch" if call.batch else call.method)
            try:
                return self._send_once(call, token)
            except NeedsReconnectError:
                raise
            except AuthError as err:
                if refreshed or err.status != 401:
                    raise
                log.info("QBO 401 for realm %s; refreshing the access token once", self.realm_id)
                token = self.tokens.refresh_access_token(self.realm_id, token)
                refreshed = True
            except QboError as err:
                if not err.retryable or attempt >= self.max_retries:
                    raise
                delay = self._delay(err, attempt)
                log.warning(
                    "QBO %s %s failed (%s); retry %d/%d in %.2fs",
                    call.method,
                    call.path,
                    err.code or type(err).__name__,
                    attempt + 1,
                    self.max_retries,
                    delay,
                )
                attempt += 1
                self._sleep(delay)

    def _delay(self, err: QboError, attempt: int) -> float:
        if isinstance(err, ThrottledError):
            delay = backoff_delay(attempt, self.throttle_backoff_base, self.backoff_max)
            if err.retry_after is not None:
                delay = max(delay, min(err.retry_after, self.backoff_max))
            self.limiter.pause(delay)
            return delay
        return backoff_delay(attempt, self.backoff_base, self.backoff_max)

    # -- reads ----------------------------------------------------------------------------

    def query(self, statement: str | q.Query) -> QueryResult:
        """Run one query statement (one page)."""
        text = statement.build() if isinstance(statement, q.Query) else statement
        if len(text) < 1500:
            payload = self._request(_Call("GET", "query", params={"query": text}))
        else:
            payload = self._request(
                _Call("POST", "query", body=text.encode("utf-8"), content_type="application/text")
            )
        return _query_result(payload, statement.entity if isinstance(statement, q.Query) else None)

    def query_all(
        self,
        entity: str,
        where: Sequence[q.Condition] | dict[str, q.Scalar] | None = None,
        *,
        order_by: str | None = None,
        page_size: int = PAGE_SIZE,
        include_inactive: bool = False,
    ) -> Iterator[Entity]:
        """Every matching row, page by page (``STARTPOSITION``/``MAXRESULTS``).

        Stops after the first page with fewer than ``page_size`` rows (an exact multiple costs one
        extra, empty page: QBO gives no other end-of-data signal). Rows are de-duplicated by Id in
        case a page overlaps. ``include_inactive`` adds ``Active IN (true, false)`` for name-list
        entities, which QBO otherwise filters to active rows.
        """
        base = self._select(entity, where, include_inactive)
        if order_by:
            base = base.order_by(order_by)
        seen: set[str] = set()
        start = 1
        while True:
            page = self.query(base.page(start, page_size))
            for row in page.entities:
                row_id = str(row.get("Id", ""))
                if row_id and row_id in seen:
                    continue
                seen.add(row_id)
                yield row
            if len(page.entities) < page_size:
                return
            start += len(page.entities)

    def _select(
        self,
        entity: str,
        where: Sequence[q.Condition] | dict[str, q.Scalar] | None,
        include_inactive: bool,
    ) -> q.Query:
        conditions = q.conditions_from(where)
        if (
            include_inactive
            and entity in NAME_LIST_ENTITIES
            and not any(c.field.lower() == "active" for c in conditions)
        ):
            conditions = (*conditions, q.in_("Active", (True, False)))
        return q.select(entity, *conditions)

    def count(
        self,
        entity: str,
        where: Sequence[q.Condition] | dict[str, q.Scalar] | None = None,
        *,
        include_inactive: bool = False,
    ) -> int:
        """``SELECT COUNT(*)`` with the same filters as :meth:`query_all`."""
        result = self.query(self._select(entity, where, include_inactive).count())
        return result.total_count or 0

    def read(self, entity: str, qbo_id: QboId) -> Entity:
        """``GET /{entity}/{id}``; raises :class:`NotFoundError` (610) when it is gone."""
        q.entity_name(entity)
        payload = self._request(_Call("GET", f"{entity.lower()}/{quote(qbo_id, safe='')}"))
        return _entity_from(payload, entity)

    def read_many(self, entity: str, ids: Sequence[QboId]) -> dict[QboId, Entity]:
        """Records by Id with ``Id IN (...)`` queries (up to 1000 ids per call)."""
        found: dict[QboId, Entity] = {}
        unique = list(dict.fromkeys(ids))
        for i in range(0, len(unique), PAGE_SIZE):
            chunk = unique[i : i + PAGE_SIZE]
            statement = self._select(entity, [q.in_("Id", tuple(chunk))], True)
            # Ids are unique: one page of len(chunk) rows holds every match.
            for row in self.query(statement.page(1, len(chunk))).entities:
                found[QboId(str(row["Id"]))] = row
        return found

    def missing(self, entity: str, ids: Sequence[QboId]) -> set[QboId]:
        """Which of ``ids`` no longer exist in QBO (hard-deleted); inactive ones are present."""
        present = self.read_many(entity, ids)
        return {i for i in ids if i not in present}

    def changed_since(
        self,
        entity: str,
        since: datetime,
        until: datetime | None = None,
        *,
        page_size: int = PAGE_SIZE,
    ) -> Iterator[Entity]:
        """Incremental read: rows with ``since <= MetaData.LastUpdatedTime < until``, oldest first.

        Inactive name-list rows are included (an inactivation is a change).
        """
        conds = [q.gte("MetaData.LastUpdatedTime", since)]
        if until is not None:
            conds.append(q.lt("MetaData.LastUpdatedTime", until))
        return self.query_all(
            entity,
            conds,
            order_by="MetaData.LastUpdatedTime",
            page_size=page_size,
            include_inactive=True,
        )

    def cdc_call(self, entities: Sequence[str], changed_since: datetime) -> dict[str, Any]:
        """One raw ``GET /cdc`` call (use :meth:`cdc` for windowing and de-duplication)."""
        names = ",".join(q.entity_name(e) for e in entities)
        params = {"entities": names, "changedSince": q.format_datetime(changed_since)}
        return self._request(_Call("GET", "cdc", params=params))

    def cdc(
        self,
        entities: Sequence[str],
        since: datetime,
        until: datetime | None = None,
    ) -> CdcResult:
        """Every change (deletes included) since ``since``; see :mod:`qbo_pipelines.qbo.cdc`."""
        from qbo_pipelines.qbo.cdc import read_changes

        return read_changes(self, entities, since, until)

    def company_info(self) -> Entity:
        payload = self._request(_Call("GET", f"companyinfo/{quote(self.realm_id, safe='')}"))
        return _entity_from(payload, "CompanyInfo")

    def preferences(self) -> Entity:
        return _entity_from(self._request(_Call("GET", "preferences")), "Preferences")

    def server_time(self) -> datetime:
        """QBO's clock (the ``time`` of a cheap response): CDC windows are measured by it."""
        payload = self._request(
            _Call("GET", "query", params={"query": "SELECT COUNT(*) FROM Account"})
        )
        stamp = payload.get("time")
        if not isinstance(stamp, str):
            raise ServerError("QBO response carried no time", code="10000")
        return parse_datetime(stamp)

    # -- single writes --------------------------------------------------------------------

    def _write(
        self,
        entity: str,
        body: Mapping[str, Any],
        request_id: str,
        params: dict[str, str] | None = None,
    ) -> Entity:
        q.entity_name(entity)
        call = _Call(
            "POST",
            entity.lower(),
            params={**(params or {}), "requestid": _check_request_id(request_id)},
            body=dumps(body),
            content_type="application/json",
        )
        return _entity_from(self._request(call), entity)

    def create(self, entity: str, body: Mapping[str, Any], *, request_id: str) -> Entity:
        """Create a record. ``body`` must not hold an Id."""
        if "Id" in body:
            raise ValueError("create body must not contain Id")
        return self._write(entity, body, request_id)

    def update(
        self,
        entity: str,
        qbo_id: QboId,
        sync_token: SyncToken,
        changes: Mapping[str, Any],
        *,
        request_id: str,
        sparse: bool = True,
        reapply_on_stale: bool = True,
    ) -> UpdateResult:
        """Sparse (default) update. On 5010 re-reads once and re-applies ``changes``.

        The re-applied write uses ``derive_request_id(request_id, "stale", fresh_sync_token)``
        so it too is idempotent; the result has ``conflict=True`` and ``stale_entity`` (what QBO
        held before our change was re-applied).
        """
        body = {**changes, "Id": qbo_id, "SyncToken": sync_token, "sparse": sparse}
        try:
            return UpdateResult(self._write(entity, body, request_id))
        except StaleObjectError:
            if not reapply_on_stale:
                raise
        fresh = self.read(entity, qbo_id)
        fresh_token = str(fresh.get("SyncToken", "0"))
        body = {**changes, "Id": qbo_id, "SyncToken": fresh_token, "sparse": sparse}
        rid = derive_request_id(request_id, "stale", fresh_token)
        return UpdateResult(self._write(entity, body, rid), conflict=True, stale_entity=fresh)

    def delete(
        self, entity: str, qbo_id: QboId, sync_token: SyncToken, *, request_id: str
    ) -> Entity:
        """Hard delete (transactions). Returns the ``status: Deleted`` stub.

        Name-list entities (Customer, Item, ...) cannot be deleted: update ``Active`` to false.
        """
        if entity in NAME_LIST_ENTITIES:
            raise ValueError(f"{entity} cannot be deleted in QBO; set Active=false instead")
        body = {"Id": qbo_id, "SyncToken": sync_token}
        return self._write(entity, body, request_id, {"operation": "delete"})

    def void(self, entity: str, qbo_id: QboId, sync_token: SyncToken, *, request_id: str) -> Entity:
        """Void: ``?operation=void`` (Invoice) or ``?operation=update&include=void``
        (Payment, SalesReceipt, BillPayment)."""
        if entity in VOID_BY_UPDATE:
            body: dict[str, Any] = {"Id": qbo_id, "SyncToken": sync_token, "sparse": True}
            return self._write(entity, body, request_id, {"operation": "update", "include": "void"})
        body = {"Id": qbo_id, "SyncToken": sync_token}
        return self._write(entity, body, request_id, {"operation": "void"})

    def send(
        self, entity: str, qbo_id: QboId, *, request_id: str, send_to: str | None = None
    ) -> Entity:
        """Email a sales form (``POST /{entity}/{id}/send[?sendTo=]``)."""
        q.entity_name(entity)
        params = {"requestid": _check_request_id(request_id)}
        if send_to:
            params["sendTo"] = send_to
        call = _Call(
            "POST",
            f"{entity.lower()}/{quote(qbo_id, safe='')}/send",
            params=params,
            body=b"",
            content_type="application/octet-stream",
        )
        return _entity_from(self._request(call), entity)

    # -- batch ----------------------------------------------------------------------------

    def batch_write(
        self, ops: Sequence[BatchOp], *, reapply_on_stale: bool = True
    ) -> list[BatchResult]:
        """Run writes in batch calls of up to 30 operations; one result per op, in order.

        A failing item never fails the others. A whole call that still fails after retries
        turns into that error on each of its ops (auth errors are raised: nothing can proceed).
        Updates that hit 5010 are re-read (one query per entity) and re-applied in a follow-up
        batch, flagged ``conflict=True``. Keep ``ops`` in a stable order (e.g. by source id):
        the batch requestid is derived from each chunk's op request ids, so a re-run that
        builds the same chunks is replayed by QBO rather than executed twice.
        """
        results: list[BatchResult] = []
        for i in range(0, len(ops), BATCH_SIZE):
            results.extend(self._batch_chunk(list(ops[i : i + BATCH_SIZE])))
        if reapply_on_stale:
            results = self._reapply_stale(results)
        return results

    def _batch_chunk(self, ops: list[BatchOp]) -> list[BatchResult]:
        items = [_batch_item(str(index), op) for index, op in enumerate(ops)]
        rid = derive_request_id("batch", *(op.request_id for op in ops))
        call = _Call(
            "POST",
            "batch",
            params={"requestid": _check_request_id(rid, MAX_BATCH_REQUEST_ID_LENGTH)},
            body=dumps({"BatchItemRequest": items}),
            content_type="application/json",
            batch=True,
        )
        try:
            payload = self._request(call)
        except AuthError:
            raise
        except QboError as err:
            return [BatchResult(op, error=err) for op in ops]
        by_bid: dict[str, Mapping[str, Any]] = {}
        for item in payload.get("BatchItemResponse") or []:
            if isinstance(item, Mapping) and "bId" in item:
                by_bid[str(item["bId"])] = item
        return [_batch_result(op, by_bid.get(str(index))) for index, op in enumerate(ops)]

    def _reapply_stale(self, results: list[BatchResult]) -> list[BatchResult]:
        stale = [
            (pos, r)
            for pos, r in enumerate(results)
            if isinstance(r.error, StaleObjectError) and r.op.operation == "update"
        ]
        if not stale:
            return results
        by_entity: dict[str, list[QboId]] = {}
        for _, r in stale:
            by_entity.setdefault(r.op.entity, []).append(QboId(str(r.op.body["Id"])))
        fresh: dict[tuple[str, str], Entity] = {}
        for entity, ids in by_entity.items():
            for qbo_id, row in self.read_many(entity, ids).items():
                fresh[(entity, qbo_id)] = row
        retry_ops: list[tuple[int, BatchOp]] = []
        out = list(results)
        for pos, r in stale:
            current = fresh.get((r.op.entity, str(r.op.body["Id"])))
            if current is None:
                out[pos] = BatchResult(
                    r.op,
                    error=NotFoundError(
                        "Object Not Found", code="610", detail="re-read after 5010"
                    ),
                )
                continue
            token = str(current.get("SyncToken", "0"))
            body = {**r.op.body, "SyncToken": token}
            new_op = BatchOp(
                "update",
                r.op.entity,
                body,
                derive_request_id(r.op.request_id, "stale", token),
                r.op.key,
            )
            retry_ops.append((pos, new_op))
        second = self.batch_write([op for _, op in retry_ops], reapply_on_stale=False)
        for (pos, _), res in zip(retry_ops, second, strict=True):
            out[pos] = BatchResult(
                results[pos].op, entity=res.entity, error=res.error, conflict=True
            )
        return out


# ---------------------------------------------------------------------------------------------
# Response helpers


def _entity_from(payload: Mapping[str, Any], entity: str) -> Entity:
    value = payload.get(entity)
    if isinstance(value, dict):
        return value
    for key, candidate in payload.items():  # tolerate case differences
        if key.lower() == entity.lower() and isinstance(candidate, dict):
            return candidate
    raise ServerError(f"QBO response has no {entity} object", code="10000")


def _query_result(payload: Mapping[str, Any], entity: str | None) -> QueryResult:
    response = payload.get("QueryResponse")
    if not isinstance(response, Mapping):
        response = {}
    rows: list[Entity] = []
    name = entity or ""
    for key, value in response.items():
        if key in ("startPosition", "maxResults", "totalCount"):
            continue
        if isinstance(value, list) and (entity is None or key.lower() == entity.lower()):
            rows = [r for r in value if isinstance(r, dict)]
            name = key
    stamp = payload.get("time")
    return QueryResult(
        entity=name,
        entities=rows,
        start_position=_int_or_none(response.get("startPosition")),
        max_results=_int_or_none(response.get("maxResults")),
        total_count=_int_or_none(response.get("totalCount")),
        time=parse_datetime(stamp) if isinstance(stamp, str) else None,
    )


def _int_or_none(value: object) -> int | None:
    if value is None:
        return None
    try:
        return int(str(value))
    except ValueError:
        return None


def _batch_item(bid: str, op: BatchOp) -> dict[str, Any]:
    if len(bid) > MAX_BID_LENGTH:
        raise ValueError("bId too long")
    q.entity_name(op.entity)
    item: dict[str, Any] = {"bId": bid, op.entity: dict(op.body)}
    if op.operation == "void":
        item["operation"] = "update"
        item["optionsData"] = "void"
    else:
        item["operation"] = op.operation
    return item


def _batch_result(op: BatchOp, item: Mapping[str, Any] | None) -> BatchResult:
    if item is None:
        return BatchResult(
            op, error=ServerError("no BatchItemResponse for this item", code="10000")
        )
    fault = fault_in_payload(item)
    if fault is not None:
        return BatchResult(op, error=error_from_fault(fault))
    value = item.get(op.entity)
    if not isinstance(value, dict):
        value = next(
            (v for k, v in item.items() if k.lower() == op.entity.lower() and isinstance(v, dict)),
            None,
        )
    if value is None:
        return BatchResult(op, error=ServerError(f"batch item has no {op.entity}", code="10000"))
    return BatchResult(op, entity=value)
