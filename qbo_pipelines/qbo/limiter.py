"""One request budget per QBO company (realm): QBO's documented limits (QBO_API.md §8, SPEC R41).

QBO counts per realm (and app; we are one app, so per realm): 500 requests per minute, 10 per
second, 10 in flight, 40 batch calls per minute (batch calls also count toward the 500; the newer
120 batch calls/min per realm across apps is looser than 40 for a single app). Those figures are
written once, in :class:`Limits`, and :func:`admission_wait` is the one rule that applies them.

Two budgets implement the same rule:

* :class:`PgRateLimiter` - **shared by every thread of every process** that talks to the company
  (Dagster step processes, the CLI, sensors). The sliding windows and the 429 pause live in the
  warehouse (``sql/warehouse/050_rate_budget.sql``) and are read and written under a row lock with
  the database's clock; the in-flight slots are session-level advisory locks on the limiter's own
  connection, which Postgres releases when that connection ends, so a process killed with -9 frees
  its slots by itself. Get it with :func:`pg_limiter_for` (one per process, database and realm).
* :class:`RateLimiter` - in-process only (unit tests, benches, scripts without a warehouse).

Either way a request holds a slot only while it is on the wire (never during a backoff or a wait
for the rate windows), and a 429 pauses the whole company budget (:meth:`pause`), not one thread.

Single calls leave room for batches: while batch calls are being made (any in the last minute),
single calls may use only ``per_minute - batch_per_minute`` of the minute (460 of 500), so a
writer mixing both gets its 40 batch calls a minute and fills the rest with single calls.

Windows are measured when a call is granted; QBO measures when it arrives, somewhere between
the grant and the answer. So a call counts as made *now* while it is on the wire (it may arrive
at any moment) and from its answer once answered (the latest time QBO can have counted it): a
request held up on its way (a busy machine, a slow network) can never make QBO see more calls
in a window than the budget granted in it, whatever the delay, and the windows need no margin
for it. ``margin_seconds`` widens every window a little for clock granularity only. (A call
unanswered after :data:`IN_FLIGHT_HORIZON` belongs to a process that died: it counts from its
grant, and so does one whose process's database session has ended.)
"""

from __future__ import annotations

import hashlib
import logging
import os
import random
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar, cast
from urllib.parse import urlsplit

import sqlalchemy as sa
from sqlalchemy.pool import NullPool

from qbo_pipelines.qbo.ids import RealmId

log = logging.getLogger(__name__)

_T = TypeVar("_T")


@dataclass(frozen=True)
class Limits:
    """QBO's per-company limits (the single definition; QBO_API.md §8).

    ``window_seconds`` is the sliding window of the per-minute caps; ``margin_seconds`` widens
    every window (see the module docstring).
    """

    per_minute: int = 500
    in_flight: int = 10
    batch_per_minute: int = 40
    window_seconds: float = 60.0
    per_second: int = 10
    margin_seconds: float = 0.05

    def __post_init__(self) -> None:
        if min(self.per_minute, self.in_flight, self.batch_per_minute, self.per_second) < 1:
            raise ValueError("limits must be at least 1")
        if self.window_seconds <= 0:
            raise ValueError("window_seconds must be positive")
        if self.margin_seconds < 0:
            raise ValueError("margin_seconds must not be negative")

    @property
    def minute_span(self) -> float:
        """How far back the per-minute caps look."""
        return self.window_seconds + self.margin_seconds

    @property
    def second_span(self) -> float:
        """How far back the per-second cap looks."""
        return 1.0 + self.margin_seconds

    @property
    def single_per_minute_with_batches(self) -> int:
        """Single calls a minute while batch calls are being made (500 - 40 = 460)."""
        return max(1, self.per_minute - self.batch_per_minute)


IN_FLIGHT_HORIZON = 180.0
"""Seconds after which a call never answered is taken as lost with its process (the transport
gives up on an answer after 120 s)."""


def _counted(call: Sequence[Any], now: float) -> float:
    """When a call counts in the windows: its answer's time, or now while it is on the wire."""
    at = float(call[0])
    answered = bool(call[2]) if len(call) > 2 else True
    if not answered and at > now - IN_FLIGHT_HORIZON:
        return max(at, now)
    return at


def _window_wait(times: Sequence[float], limit: int, span: float, now: float) -> float:
    """Seconds until fewer than ``limit`` of ``times`` (ascending, all within ``span``) remain."""
    if len(times) < limit:
        return 0.0
    return times[len(times) - limit] + span - now


def admission_wait(
    limits: Limits,
    now: float,
    calls: Iterable[Sequence[Any]],
    paused_until: float,
    batch: bool,
) -> float:
    """Seconds until a call may start (0: now). The one place QBO's limits are applied.

    Args:
        now: the current time on the clock that stamped ``calls``.
        calls: ``(time, is batch[, answered])`` of calls granted in the last
            :attr:`Limits.minute_span` (older ones are ignored): the grant time, or the
            answer's once answered; a call not answered (``answered`` False) counts as now.
        paused_until: no call before this time (after a 429).
        batch: whether the call is a batch call.
    """
    horizon = now - limits.minute_span
    counted = [(_counted(c, now), bool(c[1])) for c in calls]
    times = sorted(t for t, _ in counted if t > horizon)
    batch_times = sorted(t for t, b in counted if b and t > horizon)
    waits = [paused_until - now]
    if batch:
        cap = limits.per_minute
        waits.append(_window_wait(batch_times, limits.batch_per_minute, limits.minute_span, now))
    else:
        # while batch calls are being made, keep the minute's remaining batch calls free
        reserve = max(0, limits.batch_per_minute - len(batch_times)) if batch_times else 0
        cap = max(1, limits.per_minute - reserve)
    waits.append(_window_wait(times, cap, limits.minute_span, now))
    recent = [t for t in times if t > now - limits.second_span]
    waits.append(_window_wait(recent, limits.per_second, limits.second_span, now))
    return max(0.0, *waits)


class Budget(Protocol):
    """What the transport needs from a limiter (both implementations below)."""

    limits: Limits

    def slot(self, batch: bool = False) -> AbstractContextManager[None]:
        """Hold one in-flight slot, granted by the rate windows, around one HTTP request."""
        ...

    def pause(self, seconds: float) -> None:
        """Hold back every new request of the company for ``seconds`` (after a 429)."""
        ...


# ---------------------------------------------------------------------------------------------
# In-process


class RateLimiter:
    """Thread-safe in-process budget for one realm (no database).

    Use as ``with limiter.slot(batch=False): send_request()``.
    """

    def __init__(
        self,
        limits: Limits | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.limits = limits or Limits()
        self._clock = clock
        self._cond = threading.Condition()
        self._in_flight = 0
        self._recent: deque[list[Any]] = deque()  # [time, is batch, answered]
        self._paused_until = float("-inf")
        self.max_in_flight_seen = 0
        self.total_requests = 0

    def _prune(self, now: float) -> None:
        horizon = now - self.limits.minute_span
        while self._recent and self._recent[0][0] <= horizon and self._recent[0][2]:
            self._recent.popleft()

    def _wait_time(self, now: float, batch: bool) -> float:
        """Seconds until a request may start (0 when it may start now)."""
        return admission_wait(self.limits, now, self._recent, self._paused_until, batch)

    def acquire(self, batch: bool = False) -> list[Any]:
        """Block until a request may start, then count it as started; returns its entry for
        :meth:`release`."""
        with self._cond:
            while True:
                now = self._clock()
                self._prune(now)
                if self._in_flight >= self.limits.in_flight:
                    self._cond.wait()
                    continue
                wait = self._wait_time(now, batch)
                if wait > 0:
                    self._cond.wait(timeout=wait)
                    continue
                self._in_flight += 1
                self.max_in_flight_seen = max(self.max_in_flight_seen, self._in_flight)
                self.total_requests += 1
                entry = [now, batch, False]
                self._recent.append(entry)
                return entry

    def release(self, entry: list[Any] | None = None) -> None:
        """Mark a started request as finished (answered: ``entry``, by default the oldest
        unanswered, counts from now on)."""
        with self._cond:
            self._in_flight -= 1
            if entry is None:
                entry = next((e for e in self._recent if not e[2]), None)
            if entry is not None:
                entry[0] = max(entry[0], self._clock())
                entry[2] = True
            self._cond.notify_all()

    @contextmanager
    def slot(self, batch: bool = False) -> Iterator[None]:
        """Context manager around one HTTP request."""
        entry = self.acquire(batch=batch)
        try:
            yield
        finally:
            self.release(entry)

    def pause(self, seconds: float) -> None:
        """Hold back every new request of this realm for ``seconds`` (after a 429)."""
        with self._cond:
            self._paused_until = max(self._paused_until, self._clock() + seconds)
            self._cond.notify_all()

    @property
    def in_flight(self) -> int:
        with self._cond:
            return self._in_flight


_REGISTRY: dict[tuple[str, RealmId], RateLimiter] = {}
_REGISTRY_LOCK = threading.Lock()


def limiter_for(realm_id: RealmId, limits: Limits | None = None, scope: str = "") -> RateLimiter:
    """The process-wide in-process limiter of a realm (created with ``limits`` on first use).

    ``scope`` separates budgets that must not be shared (e.g. the base URL, so a sandbox and
    production company with the same id never share one).
    """
    key = (same_api(scope), realm_id)
    with _REGISTRY_LOCK:
        limiter = _REGISTRY.get(key)
        if limiter is None:
            limiter = RateLimiter(limits)
            _REGISTRY[key] = limiter
        return limiter


# ---------------------------------------------------------------------------------------------
# Shared through Postgres


def budget_key(realm_id: RealmId, scope: str = "") -> str:
    """The name of a company's budget: its API host and realm id."""
    return f"{same_api(scope)}#{realm_id}"


_DEFAULT_PORTS = {"http": 80, "https": 443}


def same_api(base_url: str) -> str:
    """One spelling of an API base URL (scheme and host in lower case, a default port and a
    trailing slash left out), so two processes configured with ``HTTPS://Host:443/v3/`` and
    ``https://host/v3`` count in one budget of a company, not two."""
    try:
        parts = urlsplit(base_url.strip())
        port = parts.port
    except ValueError:
        return base_url
    if not parts.scheme or not parts.hostname:
        return base_url
    scheme = parts.scheme.lower()
    host = parts.hostname if ":" not in parts.hostname else f"[{parts.hostname}]"
    shown_port = f":{port}" if port is not None and port != _DEFAULT_PORTS.get(scheme) else ""
    return f"{scheme}://{host}{shown_port}{parts.path.rstrip('/')}"


def lock_key(key: str) -> int:
    """The advisory-lock namespace (a positive int4) of a budget's in-flight slots."""
    digest = hashlib.blake2b(f"qbo-budget:{key}".encode(), digest_size=4).digest()
    return int.from_bytes(digest, "big") & 0x7FFFFFFF


_ENSURE = sa.text(
    "INSERT INTO sync.rate_budget (budget_key, lock_key) VALUES (:k, :l) "
    "ON CONFLICT (budget_key) DO NOTHING"
)
_TAKE_SLOT = sa.text("SELECT sync.rate_budget_take_slot(:l, :n, CAST(:skip AS integer[]))")
_LOCK_ROW = sa.text(
    "SELECT coalesce(extract(epoch FROM paused_until), 0) FROM sync.rate_budget "
    "WHERE budget_key = :k FOR UPDATE"
)
_NOW = sa.text("SELECT extract(epoch FROM clock_timestamp())")
# A call is on the wire while unanswered and its process's session (holder) lives: a process
# killed -9 ends its session, and its calls count from their grant.
_RECENT = sa.text(
    "SELECT extract(epoch FROM c.at), c.batch, c.answered OR NOT EXISTS"
    " (SELECT 1 FROM pg_stat_activity a WHERE a.pid = c.holder) FROM sync.rate_budget_call c"
    " WHERE c.budget_key = :k AND (c.at > to_timestamp(:since)"
    " OR (NOT c.answered AND c.at > to_timestamp(:lost))) ORDER BY c.at"
)
_RECORD = sa.text(
    "INSERT INTO sync.rate_budget_call (budget_key, at, batch, answered, holder)"
    " VALUES (:k, to_timestamp(:now), :b, false, pg_backend_pid()) RETURNING id"
)
_ANSWERED = sa.text(
    "UPDATE sync.rate_budget_call SET at = greatest(at, clock_timestamp()), answered = true"
    " WHERE id = :id"
)
_PRUNE = sa.text(
    "DELETE FROM sync.rate_budget_call WHERE budget_key = :k AND at < to_timestamp(:before)"
)
_UNLOCK = sa.text("SELECT pg_advisory_unlock(:l, :s)")
_PAUSE = sa.text(
    "UPDATE sync.rate_budget SET updated_at = now(), paused_until = greatest("
    "coalesce(paused_until, '-infinity'), clock_timestamp() + make_interval(secs => :s)) "
    "WHERE budget_key = :k"
)
_HOLDERS = sa.text(
    "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted "
    "AND classid = CAST(CAST(:l AS bigint) AS oid) AND objsubid = 2"
)


class PgRateLimiter:
    """A company's budget shared through the warehouse by every thread and process.

    One instance per process and company (see :func:`pg_limiter_for`); it keeps one database
    connection of its own (not from the caller's pool) on which it holds the advisory locks of its
    in-flight slots. Threads of the process take turns on that connection; each grant is one short
    transaction.

    Args:
        db: the warehouse, as an engine or a URL (only its URL is used).
        key: the budget's name (:func:`budget_key`).
        limits: QBO's limits (:class:`Limits`).
        poll_seconds: longest wait between looks for a free in-flight slot held elsewhere.
    """

    def __init__(
        self,
        db: sa.Engine | sa.URL | str,
        key: str,
        limits: Limits | None = None,
        *,
        poll_seconds: float = 0.05,
    ) -> None:
        url = db.url if isinstance(db, sa.Engine) else sa.make_url(db)
        self._engine = sa.create_engine(url, poolclass=NullPool)
        self.key = key
        self.lock_key = lock_key(key)
        self.limits = limits or Limits()
        self.poll_seconds = poll_seconds
        self._db = threading.Lock()
        self._freed = threading.Condition()
        self._conn: sa.Connection | None = None
        self._pid = os.getpid()
        self._held: set[int] = set()
        self._calls: dict[int, int] = {}  # slot held -> its call in sync.rate_budget_call
        self.max_in_flight_seen = 0
        self.total_requests = 0

    def __repr__(self) -> str:
        return f"PgRateLimiter(key={self.key!r})"

    # -- connection ---------------------------------------------------------------------------

    def _connection(self) -> sa.Connection:
        if self._pid != os.getpid():  # forked: the parent's connection and locks are not ours
            self._conn, self._held, self._pid = None, set(), os.getpid()
            self._calls = {}
        if self._conn is None or self._conn.closed or self._conn.invalidated:
            self._held.clear()
            self._conn = self._engine.connect()
            self._conn.execute(_ENSURE, {"k": self.key, "l": self.lock_key})
            self._conn.commit()
        return self._conn

    def _run(self, work: Callable[[sa.Connection], _T]) -> _T:
        """``work`` in one transaction on the limiter's connection (reconnecting if it broke)."""
        for attempt in range(3):
            with self._db:
                try:
                    conn = self._connection()
                    try:
                        result = work(conn)
                        conn.commit()
                        return result
                    except BaseException:
                        if not conn.invalidated:
                            conn.rollback()
                        raise
                except sa.exc.DBAPIError as exc:
                    lost = exc.connection_invalidated or isinstance(exc, sa.exc.OperationalError)
                    if not lost or attempt == 2:
                        raise
                    log.warning(
                        "rate budget %s: database connection lost (%s); reconnecting",
                        self.key,
                        type(exc.orig).__name__,
                    )
                    self._drop_connection()
            time.sleep(0.2 * (attempt + 1))
        raise AssertionError("unreachable")

    def _drop_connection(self) -> None:
        conn, self._conn = self._conn, None
        self._held.clear()  # the server ends the session and its locks with the connection
        if conn is not None:
            try:
                conn.invalidate()
                conn.close()
            except sa.exc.SQLAlchemyError:
                pass

    def close(self) -> None:
        """Close the connection (releasing any slot still held)."""
        with self._db:
            if self._conn is not None and self._pid == os.getpid():
                self._conn.close()
            self._conn = None
            self._held.clear()
        self._engine.dispose()

    # -- budget -------------------------------------------------------------------------------

    def _try(self, conn: sa.Connection, batch: bool) -> tuple[int | None, float]:
        """(slot, 0) when granted; (None, 0) when no slot is free; (None, wait) otherwise."""
        skip = sorted(self._held)
        slot = conn.execute(
            _TAKE_SLOT, {"l": self.lock_key, "n": self.limits.in_flight, "skip": skip}
        ).scalar()
        if slot is None:
            return None, 0.0
        paused_until = float(conn.execute(_LOCK_ROW, {"k": self.key}).scalar_one())
        now = float(conn.execute(_NOW).scalar_one())
        rows = conn.execute(
            _RECENT,
            {
                "k": self.key,
                "since": now - self.limits.minute_span,
                "lost": now - IN_FLIGHT_HORIZON,
            },
        )
        calls = [(float(cast(Any, at)), bool(b), bool(answered)) for at, b, answered in rows]
        wait = admission_wait(self.limits, now, calls, paused_until, batch)
        if wait > 0:
            conn.execute(_UNLOCK, {"l": self.lock_key, "s": slot})
            return None, wait
        self._calls[int(slot)] = int(
            conn.execute(_RECORD, {"k": self.key, "now": now, "b": batch}).scalar_one()
        )
        conn.execute(_PRUNE, {"k": self.key, "before": now - 2 * self.limits.minute_span})
        self._held.add(int(slot))
        self.total_requests += 1
        self.max_in_flight_seen = max(self.max_in_flight_seen, len(self._held))
        return int(slot), 0.0

    def acquire(self, batch: bool = False) -> int:
        """Block until a call may start; returns the in-flight slot to :meth:`release`."""
        poll = 0.005
        while True:
            slot, wait = self._run(lambda conn: self._try(conn, batch))
            if slot is not None:
                return slot
            if wait > 0:  # the rate windows or a pause: nothing frees earlier than this
                time.sleep(min(wait, 2.0) + random.uniform(0.0, 0.01))  # noqa: S311
                continue
            with self._freed:  # every slot taken: wake on a local release or poll
                self._freed.wait(timeout=poll)
            poll = min(poll * 2, self.poll_seconds)

    def release(self, slot: int) -> None:
        """Free a slot taken by :meth:`acquire`; its call counts from now on (answered)."""

        call = self._calls.pop(slot, None)

        def unlock(conn: sa.Connection) -> None:
            if call is not None:
                conn.execute(_ANSWERED, {"id": call})
            if slot in self._held:
                conn.execute(_UNLOCK, {"l": self.lock_key, "s": slot})
                self._held.discard(slot)

        try:
            self._run(unlock)
        finally:
            with self._freed:
                self._freed.notify_all()

    @contextmanager
    def slot(self, batch: bool = False) -> Iterator[None]:
        """Context manager around one HTTP request."""
        taken = self.acquire(batch=batch)
        try:
            yield
        finally:
            self.release(taken)

    def pause(self, seconds: float) -> None:
        """Hold back every new request of this company, in every process, for ``seconds``."""
        self._run(lambda conn: conn.execute(_PAUSE, {"k": self.key, "s": float(seconds)}))

    @property
    def in_flight(self) -> int:
        """Slots held by this process."""
        return len(self._held)

    def in_flight_everywhere(self) -> int:
        """Slots held by every process (live sessions' advisory locks)."""
        return int(
            self._run(lambda conn: conn.execute(_HOLDERS, {"l": self.lock_key}).scalar_one())
        )


_PG_REGISTRY: dict[tuple[int, str, str], PgRateLimiter] = {}


def pg_limiter_for(
    db: sa.Engine | sa.URL | str,
    realm_id: RealmId,
    limits: Limits | None = None,
    scope: str = "",
) -> PgRateLimiter:
    """This process's shared-budget limiter of a company (created on first use)."""
    url = db.url if isinstance(db, sa.Engine) else sa.make_url(db)
    key = budget_key(realm_id, scope)
    registry_key = (os.getpid(), url.render_as_string(hide_password=False), key)
    with _REGISTRY_LOCK:
        limiter = _PG_REGISTRY.get(registry_key)
        if limiter is None:
            limiter = PgRateLimiter(url, key, limits)
            _PG_REGISTRY[registry_key] = limiter
        return limiter
