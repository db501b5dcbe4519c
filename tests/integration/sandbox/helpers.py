"""Helpers for the sandbox tests: a bare QBO API caller over real HTTP."""

from __future__ import annotations

from typing import Any

import requests

from qbo_pipelines.sandbox.testing import SandboxHandle


class Api:
    """A bare QBO API caller (JSON, minorversion=75), as a plain HTTP client would be."""

    def __init__(self, handle: SandboxHandle, realm_id: str | None = None) -> None:
        self.handle = handle
        self.realm_id = realm_id or handle.realm_id
        self.tokens = handle.control.mint_tokens(self.realm_id)
        self.session = requests.Session()
        self.session.headers.update({"Accept": "application/json",
                                     "Authorization": f"Bearer {self.tokens['access_token']}"})

    @property
    def base(self) -> str:
        return self.handle.company_url(self.realm_id)

    def get(self, path: str, **params: Any) -> requests.Response:
        return self.session.get(self.base + path, params={"minorversion": 75, **params},
                                timeout=30)

    def post(self, path: str, body: Any = None, **params: Any) -> requests.Response:
        return self.session.post(self.base + path, json=body,
                                 params={"minorversion": 75, **params}, timeout=30)

    def query(self, text: str) -> requests.Response:
        return self.session.post(self.base + "/query", data=text.encode("utf-8"),
                                 params={"minorversion": 75},
                                 headers={"Content-Type": "application/text"}, timeout=30)

    def ok(self, response: requests.Response) -> dict[str, Any]:
        assert response.status_code == 200, response.text
        data: dict[str, Any] = response.json()
        assert "Fault" not in data, data
        return data

    def create(self, entity: str, body: dict[str, Any], **params: Any) -> dict[str, Any]:
        result: dict[str, Any] = self.ok(self.post(f"/{entity.lower()}", body, **params))[entity]
        return result


def fault_of(response: requests.Response) -> dict[str, Any]:
    data = response.json()
    assert "Fault" in data, data
    error: dict[str, Any] = data["Fault"]["Error"][0]
    return error
