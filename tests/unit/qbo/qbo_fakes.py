"""A scripted fake ``requests.Session`` for pure client tests (no network)."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import requests


@dataclass
class Sent:
    method: str
    path: str
    params: dict[str, str]
    body: bytes | None
    headers: dict[str, str]


def make_response(
    status: int = 200,
    body: Any = None,
    *,
    text: str | None = None,
    headers: dict[str, str] | None = None,
) -> requests.Response:
    response = requests.Response()
    response.status_code = status
    if text is not None:
        response._content = text.encode("utf-8")
    else:
        response._content = json.dumps(body if body is not None else {}).encode("utf-8")
    response.headers.update(headers or {})
    return response


Handler = Callable[[Sent], requests.Response | Exception]


@dataclass
class FakeSession:
    """Answers each request with the next scripted handler (the last one repeats)."""

    handlers: list[Handler] = field(default_factory=list)
    sent: list[Sent] = field(default_factory=list)

    def request(
        self,
        method: str,
        url: str,
        params: dict[str, str] | None = None,
        data: bytes | None = None,
        headers: dict[str, str] | None = None,
        timeout: object = None,
    ) -> requests.Response:
        sent = Sent(method, urlsplit(url).path, dict(params or {}), data, dict(headers or {}))
        self.sent.append(sent)
        handler = self.handlers[min(len(self.sent) - 1, len(self.handlers) - 1)]
        result = handler(sent)
        if isinstance(result, Exception):
            raise result
        return result

    def close(self) -> None:
        pass
