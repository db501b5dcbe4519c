"""XML answers for clients that ask ``Accept: application/xml`` (QBO_API.md §1.3, §1.4).

The JSON answer is rendered in QBO's XML form: root ``<IntuitResponse xmlns=... time=...>``,
entities as ``<Customer domain="QBO" sparse="false">``, references as
``<CustomerRef name="...">1</CustomerRef>``, ``<QueryResponse startPosition=.. maxResults=..
totalCount=..>``, faults as ``<Fault type=..><Error code=.. element=..><Message>..``. Lists
repeat their element (``<Line>`` per line). Gateway auth faults (lowercase ``fault``) stay JSON.
"""

from __future__ import annotations

import json
from typing import Any
from xml.sax.saxutils import escape, quoteattr

from starlette.responses import Response

NAMESPACE = "http://schema.intuit.com/finance/v3"
XML_TYPE = "application/xml;charset=UTF-8"
_ATTRIBUTES = {
    "QueryResponse": ("startPosition", "maxResults", "totalCount"),
    "Fault": ("type",),
    "Error": ("code", "element"),
}
_ENTITY_ATTRIBUTES = ("domain", "sparse", "status")
_REF_KEYS = {"value", "name", "type"}


def wants_xml(accept: str) -> bool:
    text = accept.lower()
    return ("application/xml" in text or "text/xml" in text) and "application/json" not in text


def as_xml(response: Response) -> Response:
    """The same answer in XML, if it is a QBO JSON answer; otherwise unchanged."""
    if not response.media_type or "json" not in response.media_type:
        return response
    try:
        data = json.loads(bytes(response.body))
    except (json.JSONDecodeError, UnicodeDecodeError):
        return response
    if not isinstance(data, dict) or "fault" in data:
        return response
    headers = {k: v for k, v in response.headers.items()
               if k.lower() not in ("content-length", "content-type")}
    return Response(render(data), status_code=response.status_code, media_type=XML_TYPE,
                    headers=headers)


def render(data: dict[str, Any]) -> str:
    time = data.get("time")
    attrs = f" time={quoteattr(str(time))}" if time is not None else ""
    body = "".join(_element(k, v) for k, v in data.items() if k != "time")
    return ('<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
            f'<IntuitResponse xmlns="{NAMESPACE}"{attrs}>{body}</IntuitResponse>')


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return escape(str(value))


def _element(name: str, value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, list):
        return "".join(_element(name, item) for item in value)
    if not isinstance(value, dict):
        return f"<{name}>{_text(value)}</{name}>"
    if "value" in value and set(value) <= _REF_KEYS and not isinstance(value["value"], dict):
        attrs = "".join(f" {k}={quoteattr(_text(value[k]))}" for k in ("name", "type")
                        if value.get(k) is not None)
        return f"<{name}{attrs}>{_text(value['value'])}</{name}>"
    attr_names = _ATTRIBUTES.get(name, ())
    if "domain" in value:
        attr_names = attr_names + _ENTITY_ATTRIBUTES
    attrs = "".join(f" {k}={quoteattr(_text(value[k]))}" for k in attr_names
                    if k in value and not isinstance(value[k], dict | list))
    children = "".join(_element(k, v) for k, v in value.items()
                       if not (k in attr_names and not isinstance(v, dict | list)))
    return f"<{name}{attrs}>{children}</{name}>"
