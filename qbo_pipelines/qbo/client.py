"""The QBO Accounting API v3 client: entities, queries, writes; HTTP goes through the transport.

Quick start (the sync layer's view)::

    from qbo_pipelines.qbo import QboClient, BatchOp, plan_dispatches, request_id_for

    client = QboClient(base_url, realm_id, token_store, budget=warehouse_engine)
    for customer in client.query_all("Customer", include_inactive=True):
        ...
    rid = request_id_for(realm_id, "Customer", source_id, content_hash, "create")
    ops = [BatchOp.create("Customer", body, rid, key=source_id), ...]
    for dispatch, results in client.execute(plan_dispatches(ops)):   # up to 10 calls in flight
        for r in results:
            if r.ok: save(r.op.key, r.entity["Id"], r.entity["SyncToken"])
            elif r.error.retryable: replay_later(dispatch)               # outcome unknown
            else: ledger(r.op.key, r.error.code, str(r.error))

Guarantees:

* HTTP, auth, retries and the company's budget are :mod:`qbo_pipelines.qbo.transport`'s: every
  call holds a slot of the company's budget (500/min, 10/s, 10 in flight, 40 batch calls/min),
  shared by every process when the client is given the warehouse (``budget=``), see
  :mod:`qbo_pipelines.qbo.limiter`.
* Every write takes a caller-supplied deterministic ``request_id`` (see :func:`request_id_for`)
  that is sent as QBO's ``requestid``, so a retry, a re-run or a crash-restart replays the first
  result instead of writing twice (SPEC R33). A :class:`Dispatch` carries the id of its HTTP call:
  a single op's own id, or for a batch an id derived from its ops' ids (<= 36 chars, bIds of
  <= 10 chars). Replaying a dispatch verbatim replays QBO's answer.
* Reads page with ``STARTPOSITION``/``MAXRESULTS 1000`` and stop only on a short page.
* Money is ``Decimal`` (``parse_float=Decimal``); timestamps via
  :func:`~qbo_pipelines.qbo.values.parse_datetime` are timezone-aware.
* No read-before-write: updates take the SyncToken from the caller's id map. A 5010 (stale
  SyncToken) can re-read the record once and re-apply the sparse change; the result says so
  (``conflict=True``) and the caller decides what that means (SPEC R34).
"""

from __future__ import annotations

import logging
import math
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Literal
from urllib.parse import quote

import requests
import sqlalchemy as sa

from qbo_pipelines.qbo import query as q
from qbo_pipelines.qbo.cdc import CdcResult, read_changes
from qbo_pipelines.qbo.errors import (
    AuthError,
    NotFoundError,
    QboError,
    ServerError,
    StaleObjectError,
    error_from_fault,
    fault_in_payload,
)
from qbo_pipelines.qbo.ids import QboId, RealmId, RequestId, SyncToken
from qbo_pipelines.qbo.limiter import Budget, Limits, limiter_for, pg_limiter_for
from qbo_pipelines.qbo.transport import (
    MINOR_VERSION,
    QBO_THROTTLE_PAUSE,
    Call,
    StaticTokenProvider,
    TokenProvider,
    Transport,
    backoff_delay,
)
from qbo_pipelines.qbo.values import Entity, dumps, parse_datetime

__all__ = [
    "BATCH_SIZE",
    "MINOR_VERSION",
    "PRODUCTION_BASE_URL",
    "SANDBOX_BASE_URL",
    "BatchOp",
    "BatchOperation",
    "BatchResult",
    "Dispatch",
    "QboClient",
    "QueryResult",
    "StaticTokenProvider",
    "TokenProvider",
    "UpdateResult",
    "WriteOperation",
    "backoff_delay",
    "batch_request_id",
    "derive_request_id",
    "plan_dispatches",
    "request_id_for",
]

log = logging.getLogger(__name__)

_Call = Call  # the name older code and tests use

PRODUCTION_BASE_URL = "https://quickbooks.api.intuit.com"
SANDBOX_BASE_URL = "https://sandbox-quickbooks.api.intuit.com"
BATCH_SIZE = 30
PAGE_SIZE = 1000
MAX_REQUEST_ID_LENGTH = 50
MAX_BATCH_REQUEST_ID_LENGTH = 36
MAX_BID_LENGTH = 10
BATCH_LANES = 3
"""Batch calls in flight at once from one :meth:`QboClient.execute` (40/min needs ~1-2)."""

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
"""Writes a /batch call can carry."""
WriteOperation = Literal["create", "update", "delete", "void", "send"]
"""Every write a :class:`BatchOp` can describe (a ``send`` is a single call only)."""


@dataclass(frozen=True)
class BatchOp:
    """One write. ``body`` is the entity JSON (with Id/SyncToken for update/delete/void).

    ``key`` is for the caller to find its record again (e.g. the source id); it is not sent.
    A ``send`` (email a sales form, ``POST /{entity}/{Id}/send[?sendTo=]``) has ``{"Id": ...}``
    as its body and ``send_to``; QBO has no batch form of it, so it is always a single call.
    """

    operation: WriteOperation
    entity: str
    body: Mapping[str, Any]
    request_id: str
    key: str | None = None
    send_to: str | None = None

    @property
    def batchable(self) -> bool:
        return self.operation != "send"

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

    @staticmethod
    def send(
        entity: str,
        qbo_id: QboId,
        request_id: str,
        send_to: str | None = None,
        key: str | None = None,
    ) -> BatchOp:
        return BatchOp("send", entity, {"Id": qbo_id}, request_id, key, send_to)


@dataclass(frozen=True)
class BatchResult:
    """The outcome of one :class:`BatchOp`: exactly one of ``entity`` / ``error`` is set.

    An error with ``error.retryable`` (throttled, 5xx, timeout, lost answer after every retry)
    means the outcome is unknown: replay the same :class:`Dispatch` (same request id) later.
    """

    op: BatchOp
    entity: Entity | None = None
    error: QboError | None = None
    conflict: bool = False

    @property
    def ok(self) -> bool:
        return self.error is None


# ---------------------------------------------------------------------------------------------
# Dispatches: how ops become HTTP calls


def batch_request_id(ops: Sequence[BatchOp]) -> RequestId:
    """The requestid of a batch call: derived from its ops' ids, in order (32 chars)."""
    return derive_request_id("batch", *(op.request_id for op in ops))


@dataclass(frozen=True, eq=False)
class Dispatch:
    """One HTTP write call: a batch of <=30 BatchOps sent to /batch with request_id (<=36 chars,
    bIds short, §4), or a single op (create/update/delete/void or invoice send) sent to its own
    endpoint with request_id (<=50 chars).

    Store it (or rebuild it from the same ops in the same order) to replay it verbatim: the same
    request id makes QBO answer with what it did the first time.
    """

    request_id: str
    ops: tuple[BatchOp, ...]
    single: bool

    def __post_init__(self) -> None:
        if not self.ops:
            raise ValueError("a dispatch needs at least one op")
        if self.single:
            if len(self.ops) != 1:
                raise ValueError("a single dispatch carries exactly one op")
            _check_request_id(self.request_id)
        else:
            if len(self.ops) > BATCH_SIZE:
                raise ValueError(f"a batch carries at most {BATCH_SIZE} ops")
            if not all(op.batchable for op in self.ops):
                raise ValueError("a send cannot go in a batch")
            _check_request_id(self.request_id, MAX_BATCH_REQUEST_ID_LENGTH)

    @staticmethod
    def one(op: BatchOp) -> Dispatch:
        """``op`` alone, at its own endpoint, with its own request id."""
        return Dispatch(op.request_id, (op,), True)

    @staticmethod
    def batch(ops: Sequence[BatchOp]) -> Dispatch:
        """``ops`` in one /batch call with :func:`batch_request_id`."""
        return Dispatch(batch_request_id(ops), tuple(ops), False)


Preference = Literal["fewest_calls", "fastest"]


def batch_share(total: int, limits: Limits | None = None) -> float:
    """The exact number of batches that make ``total`` calls' worth of work finish soonest.

    Per minute QBO takes ``batch_per_minute`` batch calls of 30 and ``per_minute`` calls in all,
    so b batches and s singles take ``max(b / 40, (b + s) / 500)`` minutes; with 30 b + s fixed
    that is least at b = 40 N / (40 * 30 + 460) = 40 N / 1660, about 72% of the ops in batches.
    """
    lim = limits or Limits()
    per_minute = lim.batch_per_minute * BATCH_SIZE + lim.single_per_minute_with_batches
    return total * lim.batch_per_minute / per_minute


def batches_for_fastest(
    batchable: int, total: int, limits: Limits | None = None, ahead: float = 0.0
) -> int:
    """How many full batches make ``total`` writes finish soonest (``batchable`` may batch):
    :func:`batch_share` rounded up. ``ahead``: batches earlier plans of the same stream made
    beyond their exact share (their rounding up), taken off this one, so that over a stream of
    chunks the rounding does not add up."""
    wanted = math.ceil(batch_share(total, limits) - ahead - 1e-9)
    return max(0, min(wanted, math.ceil(batchable / BATCH_SIZE)))


def plan_dispatches(
    ops: Sequence[BatchOp],
    *,
    prefer: Preference = "fastest",
    limits: Limits | None = None,
    reserved_singles: int = 0,
    ahead: float = 0.0,
) -> list[Dispatch]:
    """The HTTP calls for ``ops``: pure and deterministic (same ops, same order -> same calls).

    * ``fewest_calls``: every batchable op in batches of 30, in input order; sends alone.
    * ``fastest``: the first ops (in input order) in as many full batches as
      :func:`batches_for_fastest` says, the rest (and every send) as single calls, which
      :meth:`QboClient.execute` runs alongside the batches within the company's budget.

    Batches and singles are interleaved in proportion, so a caller that executes the list as it
    goes keeps both kinds of call busy. Items of one batch must not depend on each other, and
    neither may two dispatches of one plan (they run concurrently, in no set order).
    ``reserved_singles`` counts single calls the caller will make right after these (e.g.
    invoice sends): with fewer singles left for ``ops``, more of them go in batches.
    ``ahead``: see :func:`batches_for_fastest`.
    """
    if prefer not in ("fewest_calls", "fastest"):
        raise ValueError(f"prefer must be 'fewest_calls' or 'fastest', not {prefer!r}")
    batchable = [i for i, op in enumerate(ops) if op.batchable]
    if prefer == "fewest_calls":
        n_batches = math.ceil(len(batchable) / BATCH_SIZE)
    else:
        n_batches = batches_for_fastest(
            len(batchable), len(ops) + reserved_singles, limits, ahead
        )
    in_batches = batchable[: n_batches * BATCH_SIZE]
    batches = [
        Dispatch.batch([ops[i] for i in in_batches[start : start + BATCH_SIZE]])
        for start in range(0, len(in_batches), BATCH_SIZE)
    ]
    taken = set(in_batches)
    singles = [Dispatch.one(op) for i, op in enumerate(ops) if i not in taken]
    if not batches:
        return singles
    plan: list[Dispatch] = []
    n, s = len(batches), len(singles)
    for i, dispatch in enumerate(batches):
        plan.append(dispatch)
        plan.extend(singles[i * s // n : (i + 1) * s // n])
    return plan


# ---------------------------------------------------------------------------------------------
# The client


class QboClient:
    """A client for one QBO company (realm) at ``base_url``.

    Args:
        base_url: API host, e.g. :data:`PRODUCTION_BASE_URL`, :data:`SANDBOX_BASE_URL` or the
            local sandbox's ``http://127.0.0.1:PORT``.
        realm_id: the company.
        token_provider: hands out access tokens and refreshes them after a 401.
        limiter: the company's budget. Default: with ``budget``, the one shared through that
            database by every process (:func:`~qbo_pipelines.qbo.limiter.pg_limiter_for`);
            without, this process's (:func:`~qbo_pipelines.qbo.limiter.limiter_for`).
        limits: limits used when the default limiter is created.
        budget: the warehouse (engine or URL) holding the shared budget
            (``sql/warehouse/050_rate_budget.sql``).
        timeout: (connect, read) seconds per HTTP request.
        max_retries: retries after the first attempt for retryable failures.
        backoff_base: first backoff in seconds (doubles per attempt, with jitter).
        backoff_max: longest single backoff.
        throttle_pause: how long a 429 without ``Retry-After`` pauses the company (QBO: 60 s).
        throttle_backoff_base: the older name of ``throttle_pause``.
        batch_lanes: batch calls in flight at once in :meth:`execute`.
        session: a ``requests.Session`` to reuse (connection pooling); created when omitted.
        sleep: injectable for tests.
    """

    def __init__(
        self,
        base_url: str,
        realm_id: RealmId,
        token_provider: TokenProvider,
        *,
        limiter: Budget | None = None,
        limits: Limits | None = None,
        budget: sa.Engine | sa.URL | str | None = None,
        timeout: float | tuple[float, float] = (10.0, 120.0),
        max_retries: int = 6,
        backoff_base: float = 1.0,
        backoff_max: float = 60.0,
        throttle_pause: float | None = None,
        throttle_backoff_base: float | None = None,
        batch_lanes: int = BATCH_LANES,
        minor_version: int = MINOR_VERSION,
        session: requests.Session | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        base = base_url.rstrip("/")
        if limiter is None:
            if budget is not None:
                limiter = pg_limiter_for(budget, realm_id, limits, scope=base)
            else:
                limiter = limiter_for(realm_id, limits, scope=base)
        if throttle_pause is None:
            throttle_pause = (
                throttle_backoff_base if throttle_backoff_base is not None else QBO_THROTTLE_PAUSE
            )
        self.transport = Transport(
            base,
            realm_id,
            token_provider,
            limiter,
            timeout=timeout,
            max_retries=max_retries,
            backoff_base=backoff_base,
            backoff_max=backoff_max,
            throttle_pause=throttle_pause,
            minor_version=minor_version,
            session=session,
            sleep=sleep,
        )
        self.base_url = base
        self.realm_id = realm_id
        self.tokens = token_provider
        self.limiter = limiter
        self.batch_lanes = max(1, batch_lanes)

    def __repr__(self) -> str:
        return f"QboClient(base_url={self.base_url!r}, realm_id={self.realm_id!r})"

    @property
    def calls(self) -> dict[str, int]:
        """HTTP attempts so far, by kind (``GET``, ``POST``, ``batch``)."""
        return self.transport.calls

    @property
    def session(self) -> requests.Session:
        return self.transport.session

    def close(self) -> None:
        self.transport.close()

    def __enter__(self) -> QboClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _request(self, call: Call) -> dict[str, Any]:
        return self.transport.request(call)

    # -- reads ----------------------------------------------------------------------------

    def query(self, statement: str | q.Query) -> QueryResult:
        """Run one query statement (one page)."""
        text = statement.build() if isinstance(statement, q.Query) else statement
        if len(text) < 1500:
            payload = self._request(Call("GET", "query", params={"query": text}))
        else:
            payload = self._request(
                Call("POST", "query", body=text.encode("utf-8"), content_type="application/text")
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
        payload = self._request(Call("GET", f"{entity.lower()}/{quote(qbo_id, safe='')}"))
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
        return self._request(Call("GET", "cdc", params=params))

    def cdc(
        self,
        entities: Sequence[str],
        since: datetime,
        until: datetime | None = None,
    ) -> CdcResult:
        """Every change (deletes included) since ``since``; see :mod:`qbo_pipelines.qbo.cdc`."""
        return read_changes(self, entities, since, until)

    def company_info(self) -> Entity:
        payload = self._request(Call("GET", f"companyinfo/{quote(self.realm_id, safe='')}"))
        return _entity_from(payload, "CompanyInfo")

    def preferences(self) -> Entity:
        return _entity_from(self._request(Call("GET", "preferences")), "Preferences")

    def report(self, name: str, **params: str | int | date) -> dict[str, Any]:
        """``GET /reports/{name}``: one of QBO's own reports (``CustomerBalance``,
        ``ProfitAndLoss``, ``BalanceSheet``, ``AgedReceivables``, ...) as QBO's JSON (``Header``,
        ``Columns``, ``Rows``), through the company's budget. ``params`` are the report's query
        parameters, e.g. ``start_date=date(2026, 1, 1)``, ``end_date="2026-03-31"``,
        ``accounting_method="Accrual"`` (dates as ``YYYY-MM-DD``)."""
        if not name.isascii() or not name.isalpha():
            raise ValueError(f"not a QBO report name: {name!r}")
        values = {k: v.isoformat() if isinstance(v, date) else str(v) for k, v in params.items()}
        return self._request(Call("GET", f"reports/{name}", params=values))

    def server_time(self) -> datetime:
        """QBO's clock (the ``time`` of a cheap response): CDC windows are measured by it."""
        payload = self._request(
            Call("GET", "query", params={"query": "SELECT COUNT(*) FROM Account"})
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
        call = Call(
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
        return self._single_write(BatchOp.delete(entity, qbo_id, sync_token, request_id))

    def void(self, entity: str, qbo_id: QboId, sync_token: SyncToken, *, request_id: str) -> Entity:
        """Void: ``?operation=void`` (Invoice) or ``?operation=update&include=void``
        (Payment, SalesReceipt, BillPayment)."""
        return self._single_write(BatchOp.void(entity, qbo_id, sync_token, request_id))

    def send(
        self, entity: str, qbo_id: QboId, *, request_id: str, send_to: str | None = None
    ) -> Entity:
        """Email a sales form (``POST /{entity}/{id}/send[?sendTo=]``)."""
        return self._single_write(BatchOp.send(entity, qbo_id, request_id, send_to))

    def _single_write(self, op: BatchOp, request_id: str | None = None) -> Entity:
        """``op`` at its own endpoint with ``request_id`` (default: the op's own)."""
        rid = request_id or op.request_id
        if op.operation in ("create", "update"):
            return self._write(op.entity, op.body, rid)
        if op.operation == "delete":
            return self._write(op.entity, op.body, rid, {"operation": "delete"})
        if op.operation == "void":
            if op.entity in VOID_BY_UPDATE:
                body = {**op.body, "sparse": True}
                return self._write(op.entity, body, rid, {"operation": "update", "include": "void"})
            return self._write(op.entity, op.body, rid, {"operation": "void"})
        if op.operation == "send":
            q.entity_name(op.entity)
            params = {"requestid": _check_request_id(rid)}
            if op.send_to:
                params["sendTo"] = op.send_to
            call = Call(
                "POST",
                f"{op.entity.lower()}/{quote(str(op.body['Id']), safe='')}/send",
                params=params,
                body=b"",
                content_type="application/octet-stream",
            )
            return _entity_from(self._request(call), op.entity)
        raise ValueError(f"unknown operation {op.operation!r}")

    # -- many writes ----------------------------------------------------------------------

    def execute(
        self,
        dispatches: Iterable[Dispatch | None],
        *,
        reapply_on_stale: bool = False,
        lookahead: int | None = None,
    ) -> Iterator[tuple[Dispatch, list[BatchResult]]]:
        """Run write calls concurrently within the company's budget; yield each as it completes.

        Up to ``limits.in_flight`` calls are in flight (single calls), of which up to
        ``batch_lanes`` batch calls; the budget paces batch calls to the batch limit and single
        calls to the rest of the minute. ``dispatches`` is read lazily, up to four times the
        calls in flight ahead of those running; with ``lookahead``, it is read while either
        lane (batch, single) has fewer than that many calls waiting, within the same bound, so
        that a backlog of one kind never starves the other. It may be a feed that grows with
        the answers: ``None`` from it means "nothing more for now, ask again after the next
        answer" (only while calls it gave are unanswered).

        Each dispatch is yielded exactly once with one result per op, in op order; dispatches
        complete in no set order. Retries of a call (429, 5xx, timeouts, lost answers) reuse its
        request id, so QBO replays rather than writes twice; when retries run out the results
        carry that retryable error (outcome unknown: replay the same dispatch later). A failing
        item never fails the others. An auth failure, or a failure of the feed, stops new
        calls, yields the ones in flight and is raised. With ``reapply_on_stale`` an update
        refused with 5010 is re-read and re-applied (``conflict=True``).
        """
        source = iter(dispatches)
        caps = {True: self.batch_lanes, False: self.limiter.limits.in_flight}
        queued: dict[bool, deque[Dispatch]] = {True: deque(), False: deque()}
        busy = {True: 0, False: 0}
        running: dict[Future[list[BatchResult]], Dispatch] = {}
        bound = 4 * (caps[True] + caps[False])

        def hungry() -> bool:
            if sum(map(len, queued.values())) >= bound:
                return False
            return lookahead is None or min(map(len, queued.values())) < lookahead
        failure: BaseException | None = None
        exhausted = False
        pool = ThreadPoolExecutor(
            max_workers=caps[True] + caps[False], thread_name_prefix=f"qbo-{self.realm_id}"
        )

        def submit() -> None:
            for lane, waiting in queued.items():
                while waiting and busy[lane] < caps[lane]:
                    dispatch = waiting.popleft()
                    future = pool.submit(self._run_dispatch, dispatch, reapply_on_stale)
                    running[future] = dispatch
                    busy[lane] += 1

        try:
            while True:
                paused = False
                while failure is None and not exhausted and hungry():
                    try:
                        dispatch = next(source)
                    except StopIteration:
                        exhausted = True
                        break
                    except BaseException as exc:  # noqa: BLE001 - re-raised once in-flight calls end
                        failure = exc  # the feed failed: answer what is in flight, then raise
                        break
                    if dispatch is None:
                        paused = True
                        break
                    if not isinstance(dispatch, Dispatch):
                        raise TypeError(f"execute takes Dispatch objects, not {dispatch!r}")
                    queued[not dispatch.single].append(dispatch)
                if failure is None:
                    submit()
                if not running:
                    if paused and failure is None:
                        raise RuntimeError("the write feed paused with no call in flight")
                    if exhausted or failure is not None:
                        break
                    continue
                done, _ = wait(running, return_when=FIRST_COMPLETED)
                answered: list[tuple[Dispatch, list[BatchResult]]] = []
                for future in done:
                    dispatch = running.pop(future)
                    busy[not dispatch.single] -= 1
                    try:
                        answered.append((dispatch, future.result()))
                    except BaseException as exc:  # noqa: BLE001 - re-raised once in-flight calls end
                        failure = failure or exc
                if failure is None:
                    submit()  # the freed lanes take their next calls before answers are recorded
                yield from answered
            if failure is not None:
                raise failure
        finally:
            pool.shutdown(wait=True, cancel_futures=True)

    def _run_dispatch(self, dispatch: Dispatch, reapply_on_stale: bool) -> list[BatchResult]:
        if dispatch.single:
            op = dispatch.ops[0]
            try:
                results = [BatchResult(op, entity=self._single_write(op, dispatch.request_id))]
            except AuthError:
                raise
            except QboError as err:
                results = [BatchResult(op, error=err)]
        else:
            results = self._batch_call(dispatch.ops, dispatch.request_id)
        if reapply_on_stale:
            results = self._reapply_stale(results)
        return results

    def batch_write(
        self, ops: Sequence[BatchOp], *, reapply_on_stale: bool = True
    ) -> list[BatchResult]:
        """Run writes in batch calls of up to 30 operations; one result per op, in order.

        :func:`plan_dispatches` (``fewest_calls``) run by :meth:`execute`. A failing item never
        fails the others. A whole call that still fails after retries turns into that error on
        each of its ops (auth errors are raised: nothing can proceed). Updates that hit 5010 are
        re-read (one query per entity) and re-applied in a follow-up batch, flagged
        ``conflict=True``. Keep ``ops`` in a stable order (e.g. by source id): the batch
        requestid is derived from each chunk's op request ids, so a re-run that builds the same
        chunks is replayed by QBO rather than executed twice.
        """
        plan = plan_dispatches(ops, prefer="fewest_calls")
        position = {id(d): i for i, d in enumerate(plan)}
        answered: list[list[BatchResult]] = [[] for _ in plan]
        for dispatch, results in self.execute(plan):
            answered[position[id(dispatch)]] = results
        by_op = {id(r.op): r for chunk in answered for r in chunk}
        results_in_order = [by_op[id(op)] for op in ops]
        if reapply_on_stale:
            results_in_order = self._reapply_stale(results_in_order)
        return results_in_order

    def _batch_call(self, ops: Sequence[BatchOp], request_id: str) -> list[BatchResult]:
        items = [_batch_item(str(index), op) for index, op in enumerate(ops)]
        call = Call(
            "POST",
            "batch",
            params={"requestid": _check_request_id(request_id, MAX_BATCH_REQUEST_ID_LENGTH)},
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
