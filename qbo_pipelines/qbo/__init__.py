"""QBO client library: the only code that talks to QuickBooks Online (no Dagster here).

Public interface (import from ``qbo_pipelines.qbo``):

* :class:`QboClient` - reads (query/query_all/count/read/read_many/changed_since/cdc), writes
  (create/update/delete/void/send), :meth:`QboClient.execute` of :class:`Dispatch` es planned by
  :func:`plan_dispatches` (concurrent within the company's budget) and
  :meth:`QboClient.batch_write`, with :class:`BatchOp` / :class:`BatchResult`.
* :mod:`.limiter` - the company's request budget, shared through the warehouse by every process
  (:class:`PgRateLimiter`) or in-process (:class:`RateLimiter`); :mod:`.transport` - HTTP.
* :func:`request_id_for` - the deterministic idempotency key of a write.
* :mod:`.query` - :func:`select`, :func:`eq`, :func:`in_`, ... (safe query building).
* :mod:`.errors` - :class:`QboError` and its subclasses.
* :mod:`.auth` - :class:`OAuthConfig`, :class:`OAuthClient`, :class:`TokenStore`,
  :func:`token_cipher`, :func:`register_disconnect_cleanup`.
* :mod:`.discovery` - the QBO choices users map to.
"""

from qbo_pipelines.qbo.cdc import CdcResult, Change
from qbo_pipelines.qbo.client import (
    PRODUCTION_BASE_URL,
    SANDBOX_BASE_URL,
    BatchOp,
    BatchResult,
    Dispatch,
    QboClient,
    QueryResult,
    StaticTokenProvider,
    TokenProvider,
    UpdateResult,
    derive_request_id,
    plan_dispatches,
    request_id_for,
)
from qbo_pipelines.qbo.errors import (
    AuthError,
    DuplicateDocNumberError,
    DuplicateNameError,
    InvalidReferenceError,
    NeedsReconnectError,
    NotFoundError,
    QboError,
    ServerError,
    StaleObjectError,
    ThrottledError,
    TransportError,
    ValidationError,
)
from qbo_pipelines.qbo.ids import QboId, RealmId, RequestId, SourceId, SyncToken
from qbo_pipelines.qbo.limiter import (
    Limits,
    PgRateLimiter,
    RateLimiter,
    limiter_for,
    pg_limiter_for,
)
from qbo_pipelines.qbo.query import Condition, Query, eq, gte, in_, like, lt, select
from qbo_pipelines.qbo.secret import Secret
from qbo_pipelines.qbo.values import Entity, entity_id, last_updated, parse_datetime, sync_token

__all__ = [
    "PRODUCTION_BASE_URL",
    "SANDBOX_BASE_URL",
    "AuthError",
    "BatchOp",
    "BatchResult",
    "CdcResult",
    "Change",
    "Condition",
    "Dispatch",
    "DuplicateDocNumberError",
    "DuplicateNameError",
    "Entity",
    "InvalidReferenceError",
    "Limits",
    "NeedsReconnectError",
    "NotFoundError",
    "PgRateLimiter",
    "QboClient",
    "QboError",
    "QboId",
    "Query",
    "QueryResult",
    "RateLimiter",
    "RealmId",
    "RequestId",
    "Secret",
    "ServerError",
    "SourceId",
    "StaleObjectError",
    "StaticTokenProvider",
    "SyncToken",
    "ThrottledError",
    "TokenProvider",
    "TransportError",
    "UpdateResult",
    "ValidationError",
    "derive_request_id",
    "entity_id",
    "eq",
    "gte",
    "in_",
    "last_updated",
    "like",
    "limiter_for",
    "lt",
    "parse_datetime",
    "pg_limiter_for",
    "plan_dispatches",
    "request_id_for",
    "select",
    "sync_token",
]
