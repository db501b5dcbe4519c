"""How one HTTP call reaches QBO: session, bearer token, the company's budget, retries, faults.

:class:`Transport` is the only code that sends HTTP to the QBO API. It knows nothing of entities:
:class:`~qbo_pipelines.qbo.client.QboClient` builds :class:`Call` s and reads the JSON they return.

* ``minorversion`` and ``Accept: application/json`` on every call; (connect, read) timeouts.
* Every request holds a slot of the company's budget (:mod:`qbo_pipelines.qbo.limiter`) while it
  is on the wire, and only then.
* Retries with exponential backoff and jitter on 5xx, connection errors and timeouts (a dropped
  answer included); never on validation faults. A call keeps its ``requestid`` across retries,
  so QBO replays a write it already made instead of making it twice (SPEC R33).
* A 429 pauses the whole company budget, shared by every thread and process, for the
  ``Retry-After`` the answer gave or else QBO's advice of 60 seconds (QBO_API.md §8), then the
  call is retried.
* A 401 refreshes the access token once and retries; tokens never reach a log or an exception.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import quote

import requests
from requests.adapters import HTTPAdapter

from qbo_pipelines.qbo.errors import (
    AuthError,
    NeedsReconnectError,
    QboError,
    ServerError,
    ThrottledError,
    TransportError,
    ValidationError,
    error_from_fault,
    error_from_response,
    fault_in_payload,
)
from qbo_pipelines.qbo.ids import RealmId
from qbo_pipelines.qbo.limiter import Budget
from qbo_pipelines.qbo.secret import Secret
from qbo_pipelines.qbo.values import loads

log = logging.getLogger(__name__)

MINOR_VERSION = 75
QBO_THROTTLE_PAUSE = 60.0
"""QBO's advice after a 429 without ``Retry-After``: wait 60 seconds (QBO_API.md §8)."""
MAX_PAUSE = 600.0
"""The longest pause a ``Retry-After`` can impose."""


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


def backoff_delay(
    attempt: int, base: float, cap: float, rng: Callable[[float, float], float] = random.uniform
) -> float:
    """Exponential backoff with "equal jitter": half fixed, half random, capped at ``cap``."""
    ceiling = min(cap, base * (2**attempt))
    return float(ceiling / 2 + rng(0.0, ceiling / 2))


def retry_after(response: requests.Response) -> float | None:
    """The ``Retry-After`` header in seconds, if present and numeric."""
    value = response.headers.get("Retry-After")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


@dataclass
class Call:
    """One HTTP call under ``/v3/company/{realm}/``; ``batch`` counts it as a batch call."""

    method: str
    path: str
    params: dict[str, str] = field(default_factory=dict)
    body: bytes | None = None
    content_type: str | None = None
    batch: bool = False


class Transport:
    """HTTP to one QBO company through its budget. See the module docstring.

    Args:
        base_url: API host (no trailing ``/v3``).
        realm_id: the company.
        token_provider: hands out access tokens and refreshes them after a 401.
        limiter: the company's budget (:class:`~qbo_pipelines.qbo.limiter.Budget`).
        timeout: (connect, read) seconds per HTTP request.
        max_retries: retries after the first attempt for retryable failures.
        backoff_base: first backoff in seconds (doubles per attempt, with jitter).
        backoff_max: longest single backoff.
        throttle_pause: how long a 429 without ``Retry-After`` pauses the company.
        session: a ``requests.Session`` to reuse; created (pooled to the in-flight cap) if omitted.
        sleep: injectable for tests.
    """

    def __init__(
        self,
        base_url: str,
        realm_id: RealmId,
        token_provider: TokenProvider,
        limiter: Budget,
        *,
        timeout: float | tuple[float, float] = (10.0, 120.0),
        max_retries: int = 6,
        backoff_base: float = 1.0,
        backoff_max: float = 60.0,
        throttle_pause: float = QBO_THROTTLE_PAUSE,
        minor_version: int = MINOR_VERSION,
        session: requests.Session | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.realm_id = realm_id
        self.tokens = token_provider
        self.limiter = limiter
        self.timeout = timeout
        self.max_retries = max_retries
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.throttle_pause = throttle_pause
        self.minor_version = minor_version
        self.session = session or self._new_session()
        self._sleep = sleep
        self._stats_lock = threading.Lock()
        self.calls: dict[str, int] = {}

    def __repr__(self) -> str:
        return f"Transport(base_url={self.base_url!r}, realm_id={self.realm_id!r})"

    def _new_session(self) -> requests.Session:
        session = requests.Session()
        size = self.limiter.limits.in_flight + 2
        adapter = HTTPAdapter(pool_connections=2, pool_maxsize=size, max_retries=0)
        session.mount("http://", adapter)
        session.mount("https://", adapter)
        return session

    def close(self) -> None:
        self.session.close()

    def url(self, path: str) -> str:
        return f"{self.base_url}/v3/company/{quote(self.realm_id, safe='')}/{path}"

    def _count_call(self, kind: str) -> None:
        with self._stats_lock:
            self.calls[kind] = self.calls.get(kind, 0) + 1

    # -- one attempt ------------------------------------------------------------------------

    def send_once(self, call: Call, token: Secret) -> dict[str, Any]:
        """One HTTP attempt inside a budget slot; the JSON payload or a :class:`QboError`."""
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
                    self.url(call.path),
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
        return parse_response(response)

    # -- with retries -----------------------------------------------------------------------

    def request(self, call: Call) -> dict[str, Any]:
        """Send ``call`` until it succeeds, fails for good, or retries run out (then raise)."""
        call.params["minorversion"] = str(self.minor_version)
        attempt = 0
        refreshed = False
        token = self.tokens.access_token(self.realm_id)
        while True:
            self._count_call("batch" if call.batch else call.method)
            try:
                return self.send_once(call, token)
            except NeedsReconnectError:
                raise
            except AuthError as err:
                if refreshed or err.status != 401:
                    raise
                log.info("QBO 401 for realm %s; refreshing the access token once", self.realm_id)
                token = self.tokens.refresh_access_token(self.realm_id, token)
                refreshed = True
            except QboError as err:
                if not _worth_again(err, call) or attempt >= self.max_retries:
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
            pause = err.retry_after if err.retry_after is not None else self.throttle_pause
            # every thread and process of this company waits: the next slot opens after it
            self.limiter.pause(min(pause, MAX_PAUSE))
            return 0.0
        return backoff_delay(attempt, self.backoff_base, self.backoff_max)


GENERIC_REFUSAL = "6000"
"""QBO's catch-all business validation fault ("A business validation error has occurred")."""


def _worth_again(err: QboError, call: Call) -> bool:
    """Retryable failures, and a read (GET) refused with the generic business fault 6000: a
    read changes nothing, so sending it again costs one call, where giving up ends the run
    (a pull's extract). Specific answers to a read (610 not found, 4000 query errors, 500 a CDC
    window too old) are never sent again."""
    if err.retryable:
        return True
    return call.method == "GET" and isinstance(err, ValidationError) and err.code == (
        GENERIC_REFUSAL
    )


def parse_response(response: requests.Response) -> dict[str, Any]:
    """The JSON payload of a successful answer, or the :class:`QboError` it carries."""
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
        error = ServerError("unreadable QBO response", code="10000", status=status, intuit_tid=tid)
    if isinstance(error, ThrottledError):
        error.retry_after = retry_after(response)
    raise error
