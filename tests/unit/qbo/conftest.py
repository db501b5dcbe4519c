"""Fixtures for the pure QBO client tests."""

from __future__ import annotations

import pytest
from qbo_fakes import FakeSession


@pytest.fixture
def fake_session() -> FakeSession:
    return FakeSession()
