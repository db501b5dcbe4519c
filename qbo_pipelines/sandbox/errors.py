"""QBO fault shapes: the exception the sandbox raises internally and the bodies it renders.

Every Message/Detail string that QBO_API.md quotes is reproduced verbatim here; codes whose
wire text is not documented use a plausible text and are listed as fidelity gaps.
"""

from __future__ import annotations

import time as _time
from dataclasses import dataclass, field
from typing import Any
from xml.sax.saxutils import escape

VALIDATION = "ValidationFault"
SYSTEM = "SystemFault"

MSG_NOT_FOUND = "Object Not Found"
DETAIL_INACTIVE = (
    "Object Not Found : Something you're trying to use has been made inactive. "
    "Check the fields with accounts, customers, items, vendors or employees."
)
DETAIL_DELETED = "Object Not Found : Another user has deleted this transaction."
MSG_STALE = "Stale Object Error"
DETAIL_STALE = (
    "Stale Object Error : You and root were working on this at the same time. "
    "root finished before you did, so your work was not saved."
)
MSG_DUP_NAME = "Duplicate Name Exists Error"
DETAIL_DUP_NAME = (
    "The name supplied already exists. : Another customer, vendor or employee is already "
    "using this name. Please use a different name."
)
MSG_DUP_DOC = "Duplicate Document Number Error"
MSG_REQUIRED = "Required param missing, need to supply the required value for the API"
MSG_BUSINESS = "A business validation error has occurred while processing your request"
MSG_INVALID_REF = "Invalid Reference Id"
MSG_UNSUPPORTED = "Unsupported Operation"
MSG_PARSE = "Error parsing query"
MSG_INVALID_QUERY = "Invalid query"
MSG_SYSTEM = "An application error has occurred while processing your request"

# Messages used when a fault is injected by code only (control API).
KNOWN_MESSAGES: dict[str, str] = {
    "500": MSG_UNSUPPORTED,
    "600": "Duplicate Request ID",
    "610": MSG_NOT_FOUND,
    "1040": "Batch size exceeds allowed limit",
    "2010": "Request has invalid or unsupported property",
    "2020": MSG_REQUIRED,
    "2500": MSG_INVALID_REF,
    "3001": "message=ThrottleExceeded; errorCode=003001; statusCode=429",
    "3100": "message=ApplicationAuthorizationFailed; errorCode=003100; statusCode=403",
    "3200": "message=AuthenticationFailed; errorCode=003200; statusCode=401",
    "4000": MSG_PARSE,
    "4001": MSG_INVALID_QUERY,
    "5010": MSG_STALE,
    "6000": MSG_BUSINESS,
    "6140": MSG_DUP_DOC,
    "6240": MSG_DUP_NAME,
    "10000": MSG_SYSTEM,
}


@dataclass
class QboFault(Exception):
    """A QBO fault: rendered as ``{"Fault": {"Error": [...], "type": ...}}``."""

    code: str
    message: str
    detail: str = ""
    element: str = ""
    status: int = 400
    type: str = VALIDATION
    extra: list[dict[str, str]] = field(default_factory=list)

    def __str__(self) -> str:
        return f"{self.code} {self.message}: {self.detail}"

    def errors(self) -> list[dict[str, str]]:
        first = {"Message": self.message, "Detail": self.detail or self.message,
                 "code": self.code, "element": self.element}
        return [first, *self.extra]

    def fault_json(self) -> dict[str, Any]:
        return {"Error": self.errors(), "type": self.type}

    def xml(self, time: str) -> str:
        return xml_fault(self.type, self.code, self.message, self.detail, time)


def required(name: str, element: str = "") -> QboFault:
    return QboFault("2020", MSG_REQUIRED, f"Required parameter {name} is missing in the request",
                    element or name)


def business(detail: str, code: str = "6000", element: str = "") -> QboFault:
    return QboFault(code, MSG_BUSINESS, f"Business Validation Error: {detail}", element)


def not_found(deleted: bool = False, element: str = "") -> QboFault:
    return QboFault("610", MSG_NOT_FOUND, DETAIL_DELETED if deleted else DETAIL_INACTIVE, element)


def stale() -> QboFault:
    return QboFault("5010", MSG_STALE, DETAIL_STALE)


def duplicate_name(detail: str = DETAIL_DUP_NAME) -> QboFault:
    return QboFault("6240", MSG_DUP_NAME, detail)


def unsupported(detail: str, status: int = 400) -> QboFault:
    return QboFault("500", MSG_UNSUPPORTED, detail, status=status)


def parse_error(detail: str) -> QboFault:
    return QboFault("4000", MSG_PARSE, f"QueryParserError: {detail}")


def invalid_query(detail: str) -> QboFault:
    return QboFault("4001", MSG_INVALID_QUERY, f"QueryValidationError: {detail}")


def xml_fault(fault_type: str, code: str, message: str, detail: str, time: str) -> str:
    return (
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
        f'<IntuitResponse xmlns="http://schema.intuit.com/finance/v3" time="{escape(time)}">'
        f'<Fault type="{escape(fault_type)}"><Error code="{escape(code)}">'
        f"<Message>{escape(message)}</Message><Detail>{escape(detail)}</Detail>"
        "</Error></Fault></IntuitResponse>"
    )


THROTTLE_MESSAGE = "message=ThrottleExceeded; errorCode=003001; statusCode=429"
THROTTLE_DETAIL = "The request limit was reached.  Try again later"


def throttle_xml(time: str) -> str:
    """The 429 body: QBO answers throttling in XML whatever Accept said."""
    return xml_fault("SERVICE", "3001", THROTTLE_MESSAGE, THROTTLE_DETAIL, time)


def auth_fault_json(detail: str, code: str = "3200", status: int = 401) -> dict[str, Any]:
    """The gateway's 401/403 body: lowercase ``fault`` wrapper and epoch-millisecond ``time``."""
    name = "AuthenticationFailed" if code == "3200" else "ApplicationAuthorizationFailed"
    fault_type = "AUTHENTICATION" if status == 401 else "AUTHORIZATION"
    message = f"message={name}; errorCode={int(code):06d}; statusCode={status}"
    return {
        "warnings": None,
        "intuitObject": None,
        "fault": {"error": [{"message": message, "detail": detail, "code": code,
                             "element": None}], "type": fault_type},
        "report": None,
        "queryResponse": None,
        "batchItemResponse": [],
        "attachableResponse": [],
        "syncErrorResponse": None,
        "requestId": None,
        "time": int(_time.time() * 1000),
        "status": None,
        "cdcresponse": [],
    }
