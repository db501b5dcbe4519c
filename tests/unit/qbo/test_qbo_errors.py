"""Fault parsing: JSON, lowercase gateway JSON, XML, faults inside 200, proxies' HTML (R41)."""

from __future__ import annotations

import json

import pytest

from qbo_pipelines.qbo import errors as e

STALE = {
    "Fault": {
        "Error": [
            {
                "Message": "Stale Object Error",
                "Detail": "Stale Object Error : You and root were working on this at the same time",
                "code": "5010",
                "element": "",
            }
        ],
        "type": "ValidationFault",
    },
    "time": "2017-09-29T09:17:31.892-07:00",
}
GATEWAY_401 = {
    "warnings": None,
    "fault": {
        "error": [
            {
                "message": "message=AuthenticationFailed; errorCode=003200; statusCode=401",
                "detail": "Token expired",
                "code": "3200",
                "element": None,
            }
        ],
        "type": "AUTHENTICATION",
    },
    "time": 1633520295688,
}
THROTTLE_XML = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
    '<IntuitResponse xmlns="http://schema.intuit.com/finance/v3" time="2016-12-01T10:00:00-08:00">'
    '<Fault type="SERVICE"><Error code="3001">'
    "<Message>message=ThrottleExceeded; errorCode=003001; statusCode=429</Message>"
    "<Detail>The request limit was reached.  Try again later</Detail></Error></Fault>"
    "</IntuitResponse>"
)
AUTH_XML = (
    '<Fault type="AuthenticationFault"><Error code="100">'
    "<Message>General Authentication Error</Message>"
    "<Detail>AuthenticationErrorGeneral: SRV-110-Authentication Failure , statusCode: 401</Detail>"
    "</Error></Fault>"
)


def fault(code: str, message: str = "m", element: str = "") -> dict[str, object]:
    return {
        "Fault": {
            "Error": [{"Message": message, "Detail": "d", "code": code, "element": element}],
            "type": "ValidationFault",
        }
    }


def test_R41_json_fault_fields() -> None:
    err = e.error_from_response(400, json.dumps(STALE), intuit_tid="tid-1")
    assert isinstance(err, e.StaleObjectError)
    assert err.code == "5010"
    assert err.message == "Stale Object Error"
    assert err.detail.startswith("Stale Object Error :")
    assert err.intuit_tid == "tid-1"
    assert err.status == 400
    assert not err.retryable


@pytest.mark.parametrize(
    ("code", "cls"),
    [
        ("610", e.NotFoundError),
        ("5010", e.StaleObjectError),
        ("6240", e.DuplicateNameError),
        ("6140", e.DuplicateDocNumberError),
        ("2500", e.InvalidReferenceError),
        ("2020", e.ValidationError),
        ("6000", e.ValidationError),
        ("4000", e.ValidationError),
        ("3001", e.ThrottledError),
        ("3200", e.AuthError),
        ("100", e.AuthError),
        ("10000", e.ServerError),
    ],
)
def test_R41_codes_map_to_classes(code: str, cls: type[e.QboError]) -> None:
    err = e.error_from_response(400, json.dumps(fault(code, element="Line.ItemRef")))
    assert type(err) is cls
    assert err is not None
    assert err.element == "Line.ItemRef"


def test_R41_gateway_lowercase_fault_is_auth() -> None:
    err = e.error_from_response(401, json.dumps(GATEWAY_401))
    assert isinstance(err, e.AuthError)
    assert err.code == "3200"
    assert err.detail == "Token expired"


def test_R41_xml_throttle_even_with_json_content_type() -> None:
    err = e.error_from_response(429, THROTTLE_XML)
    assert isinstance(err, e.ThrottledError)
    assert err.code == "3001"
    assert err.retryable
    assert err.fault_type == "SERVICE"


def test_R41_xml_auth_fault() -> None:
    err = e.error_from_response(401, AUTH_XML)
    assert isinstance(err, e.AuthError)
    assert err.code == "100"


def test_R41_fault_inside_http_200_is_an_error() -> None:
    err = e.error_from_response(200, json.dumps(fault("6240", "Duplicate Name Exists Error")))
    assert isinstance(err, e.DuplicateNameError)


def test_success_is_not_an_error() -> None:
    assert e.error_from_response(200, json.dumps({"Customer": {"Id": "1"}})) is None


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_R41_html_gateway_errors_are_retryable(status: int) -> None:
    err = e.error_from_response(status, "<html><body>Bad gateway</body></html>")
    assert isinstance(err, e.ServerError)
    assert err.retryable


def test_429_without_body_is_throttled() -> None:
    err = e.error_from_response(429, "")
    assert isinstance(err, e.ThrottledError)


def test_oauth_style_error_body() -> None:
    err = e.error_from_response(400, json.dumps({"error": "invalid_request"}))
    assert isinstance(err, e.ValidationError)
    assert err.code == "invalid_request"


def test_code_from_message_when_code_missing() -> None:
    body = {
        "fault": {
            "error": [{"message": "message=ThrottleExceeded; errorCode=003001; statusCode=429"}]
        }
    }
    err = e.error_from_response(200, json.dumps(body))
    assert isinstance(err, e.ThrottledError)
    assert err.code == "3001"


def test_multiple_errors_are_kept() -> None:
    body = {
        "Fault": {"Error": [{"Message": "a", "code": "2020"}, {"Message": "b", "code": "2010"}]}
    }
    err = e.error_from_response(400, json.dumps(body))
    assert err is not None
    assert len(err.errors) == 2


def test_str_and_repr_are_informative() -> None:
    err = e.error_from_response(
        400, json.dumps(fault("6240", "Duplicate Name Exists Error")), "tid"
    )
    assert err is not None
    assert "6240" in str(err)
    assert "intuit_tid=tid" in str(err)
    assert repr(err).startswith("DuplicateNameError(")


def test_needs_reconnect_is_an_auth_error_and_not_retryable() -> None:
    err = e.NeedsReconnectError("reconnect", code="invalid_grant")
    assert isinstance(err, e.AuthError)
    assert not err.retryable
