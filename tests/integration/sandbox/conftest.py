"""Fixtures for the sandbox's own tests: an authenticated requests session per test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from qbo_pipelines.sandbox.testing import SandboxHandle, run_sandbox

from .helpers import Api


@pytest.fixture
def sandbox() -> Iterator[SandboxHandle]:
    """A fresh seeded sandbox with QBO's limits off (tests of limits turn them on) and a
    short webhook aggregation window."""
    with run_sandbox(throttle=False, webhook_window=0.2) as handle:
        yield handle


@pytest.fixture
def api(sandbox: SandboxHandle) -> Iterator[Api]:
    client = Api(sandbox)
    yield client
    client.session.close()
