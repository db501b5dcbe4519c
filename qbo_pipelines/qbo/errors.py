"""QBO faults as a small exception hierarchy.

QBO reports errors in three shapes, sometimes inside an HTTP 200 and sometimes as XML even when
JSON was requested (QBO_API.md §7, §13.1-3), so :func:`error_from_response` sniffs the body rather
than trusting ``Content-Type``:

* ``{"Fault": {"Error": [{"Message", "Detail", "code", "element"}], "type": ...}}``
* gateway/auth: ``{"fault": {"error": [{"message", "detail", "code"}], "type": "AUTHENTICATION"}}``
* XML: ``<Fault type="..."><Error code="..."><Message/><Detail/></Error></Fault>``

Classification (first match wins): 401 / auth codes -> :class:`AuthError`; 429 / 3001 ->
:class:`ThrottledError`; 610 -> :class:`NotFoundError`; 5010 -> :class:`StaleObjectError`;
6240 -> :class:`DuplicateNameError`; 6140 -> :class:`DuplicateDocNumberError`; 2500 ->
:class:`InvalidReferenceError`; 5xx / 10000+ -> :class:`ServerError`; anything else ->
:class:`ValidationError`. Only throttling, server errors and transport errors are ``retryable``.

No exception ever carries a token: messages are built from the fault body only.
"""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET  # noqa: S405 - parses QBO responses; expat >= 2.4 guards entity expansion
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

AUTH_CODES = frozenset({100, 110, 120, 3100, 3200})
THROTTLE_CODE = 3001


@dataclass(frozen=True)
class FaultDetail:
    """One ``Error`` entry of a fault."""

    code: str
    message: str
    detail: str = ""
    element: str = ""


class QboError(Exception):
    """Any failure talking to QBO.

    Attributes:
        code: QBO error code as a string ("6240"), or "" when there was none.
        message: QBO's Message (short).
        detail: QBO's Detail (long, names the field or the duplicate).
        element: the offending field path when QBO names it.
        intuit_tid: the ``intuit_tid`` response header, for Intuit support.
        status: HTTP status, or None for transport errors and batch items.
        errors: every ``Error`` entry of the fault (the first is mirrored above).
    """

    def __init__(
        self,
        message: str,
        *,
        code: str = "",
        detail: str = "",
        element: str = "",
        intuit_tid: str | None = None,
        status: int | None = None,
        fault_type: str = "",
        errors: tuple[FaultDetail, ...] = (),
    ) -> None:
        self.code = code
        self.message = message
        self.detail = detail
        self.element = element
        self.intuit_tid = intuit_tid
        self.status = status
        self.fault_type = fault_type
        self.errors = errors
        super().__init__(self._summary())

    def _summary(self) -> str:
        parts = [f"QBO {self.code or '-'}: {self.message}"]
        if self.detail and self.detail != self.message:
            parts.append(self.detail)
        if self.element:
            parts.append(f"element={self.element}")
        if self.status is not None:
            parts.append(f"http={self.status}")
        if self.intuit_tid:
            parts.append(f"intuit_tid={self.intuit_tid}")
        return " | ".join(parts)

    @property
    def retryable(self) -> bool:
        """True when the same request may succeed if sent again later."""
        return False

    def __repr__(self) -> str:
        name = type(self).__name__
        return f"{name}(code={self.code!r}, message={self.message!r}, status={self.status!r})"


class AuthError(QboError):
    """401 / codes 100-150, 3100, 3200: the access token is invalid or lacks access."""


class NeedsReconnectError(AuthError):
    """The refresh token was rejected (``invalid_grant``): a person must reconnect the company."""


class ThrottledError(QboError):
    """429 / 3001 ThrottleExceeded."""

    retry_after: float | None = None

    @property
    def retryable(self) -> bool:
        return True


class NotFoundError(QboError):
    """610 Object Not Found (deleted, inactive, or never existed)."""


class StaleObjectError(QboError):
    """5010 Stale Object Error: the SyncToken we sent is out of date."""


class DuplicateNameError(QboError):
    """6240 Duplicate Name Exists (DisplayName unique across Customer/Vendor/Employee)."""


class DuplicateDocNumberError(QboError):
    """6140 Duplicate Document Number."""


class InvalidReferenceError(QboError):
    """2500 Invalid Reference Id: a referenced record does not exist or is inactive."""


class ValidationError(QboError):
    """Any other 4xx / business validation fault. Never retried."""


class ServerError(QboError):
    """5xx, SystemFault 10000+, or an unreadable response. Retried with backoff."""

    @property
    def retryable(self) -> bool:
        return True


class TransportError(ServerError):
    """Connection error or timeout: nothing (or nothing readable) came back. Retried."""


_BY_CODE: dict[int, type[QboError]] = {
    610: NotFoundError,
    5010: StaleObjectError,
    6240: DuplicateNameError,
    6140: DuplicateDocNumberError,
    2500: InvalidReferenceError,
}


def _code_int(code: str) -> int | None:
    digits = code.strip()
    return int(digits) if digits.isdigit() else None


def classify(code: str, status: int | None) -> type[QboError]:
    """The exception class for a fault code and HTTP status."""
    number = _code_int(code)
    if status == 401 or (number is not None and (number in AUTH_CODES or 100 <= number < 200)):
        return AuthError
    if status == 429 or number == THROTTLE_CODE:
        return ThrottledError
    if number is not None and number in _BY_CODE:
        return _BY_CODE[number]
    if (status is not None and status >= 500) or (number is not None and number >= 10000):
        return ServerError
    return ValidationError


def _text(value: object) -> str:
    return "" if value is None else str(value)


_CODE_IN_MESSAGE = re.compile(r"errorCode=0*(\d+)")


def _detail_from_mapping(item: Mapping[str, Any]) -> FaultDetail:
    lowered = {str(k).lower(): v for k, v in item.items()}
    message = _text(lowered.get("message"))
    code = _text(lowered.get("code"))
    if not code:
        match = _CODE_IN_MESSAGE.search(message)
        code = match.group(1) if match else ""
    code = code.lstrip("0") or code
    return FaultDetail(
        code=code,
        message=message,
        detail=_text(lowered.get("detail")),
        element=_text(lowered.get("element")),
    )


def error_from_fault(
    fault: Mapping[str, Any],
    *,
    status: int | None = None,
    intuit_tid: str | None = None,
) -> QboError:
    """Build the exception for a JSON ``Fault``/``fault`` object (also used for batch items)."""
    lowered = {str(k).lower(): v for k, v in fault.items()}
    raw_errors = lowered.get("error") or []
    if isinstance(raw_errors, Mapping):
        raw_errors = [raw_errors]
    details = tuple(_detail_from_mapping(e) for e in raw_errors if isinstance(e, Mapping))
    return _build(details, _text(lowered.get("type")), status, intuit_tid)


def _build(
    details: tuple[FaultDetail, ...],
    fault_type: str,
    status: int | None,
    intuit_tid: str | None,
) -> QboError:
    first = details[0] if details else FaultDetail(code="", message=fault_type or "QBO fault")
    cls = classify(first.code, status)
    return cls(
        first.message or fault_type or "QBO fault",
        code=first.code,
        detail=first.detail,
        element=first.element,
        intuit_tid=intuit_tid,
        status=status,
        fault_type=fault_type,
        errors=details,
    )


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _xml_fault(body: str, status: int | None, intuit_tid: str | None) -> QboError | None:
    try:
        root = ET.fromstring(body)  # noqa: S314 - see import note
    except ET.ParseError:
        return None
    fault = root if _local(root.tag) == "Fault" else None
    if fault is None:
        fault = next((el for el in root.iter() if _local(el.tag) == "Fault"), None)
    if fault is None:
        return None
    details: list[FaultDetail] = []
    for err in fault:
        if _local(err.tag) != "Error":
            continue
        fields = {_local(child.tag).lower(): (child.text or "") for child in err}
        details.append(
            _detail_from_mapping(
                {
                    "code": err.get("code", ""),
                    "element": err.get("element", ""),
                    "message": fields.get("message", ""),
                    "detail": fields.get("detail", ""),
                }
            )
        )
    return _build(tuple(details), fault.get("type", ""), status, intuit_tid)


def fault_in_payload(payload: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The ``Fault``/``fault`` object of a parsed JSON body, if it has a non-empty one."""
    for key in ("Fault", "fault"):
        value = payload.get(key)
        if isinstance(value, Mapping) and value:
            return value
    return None


def error_from_response(
    status: int,
    body: bytes | str,
    intuit_tid: str | None = None,
) -> QboError | None:
    """The error a response represents, or None when it is a success.

    A 2xx response is an error only when its body holds a fault. Any non-2xx response is an
    error, whatever its body (JSON, XML, HTML from a proxy, or nothing).
    """
    text = body.decode("utf-8", errors="replace") if isinstance(body, bytes) else body
    stripped = text.lstrip()
    if stripped.startswith("{"):
        try:
            payload = json.loads(stripped)
        except ValueError:
            payload = None
        if isinstance(payload, Mapping):
            fault = fault_in_payload(payload)
            if fault is not None:
                return error_from_fault(fault, status=status, intuit_tid=intuit_tid)
            if (
                "error" in payload and status >= 400
            ):  # OAuth-style {"error": ..., "error_description": ...}
                detail = FaultDetail(
                    code=_text(payload.get("error")),
                    message=_text(payload.get("error_description") or payload.get("error")),
                )
                return _build((detail,), "", status, intuit_tid)
    elif stripped.startswith("<"):
        xml_error = _xml_fault(stripped, status, intuit_tid)
        if xml_error is not None:
            return xml_error
    if 200 <= status < 300:
        return None
    snippet = " ".join(stripped.split())[:200]
    cls = classify("", status)
    return cls(f"HTTP {status}", detail=snippet, status=status, intuit_tid=intuit_tid)
