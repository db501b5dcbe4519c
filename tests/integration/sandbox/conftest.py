"""Fixtures for the sandbox's own tests: an authenticated requests session per test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from qbo_pipelines.sandbox.testing import SandboxHandle

from .helpers import Api


@pytest.fixture
def api(sandbox: SandboxHandle) -> Iterator[Api]:
    client = Api(sandbox)
    yield client
    client.session.close()
