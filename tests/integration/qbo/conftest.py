"""Fixtures for QBO client tests against the local sandbox over real HTTP."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from qbo_sandbox_helpers import Company

from qbo_pipelines.qbo import RealmId


@pytest.fixture
def new_company(sandbox: Any) -> Callable[..., Company]:
    """Factory: a fresh company (empty unless ``seed=True``) with a token."""

    def make(seed: bool = False, name: str = "Test Co") -> Company:
        realm = sandbox.control.create_company(name=name, seed=seed)
        token = sandbox.control.mint_tokens(realm)["access_token"]
        return Company(sandbox, RealmId(realm), token)

    return make


@pytest.fixture
def empty_company(new_company: Callable[..., Company]) -> Company:
    return new_company(seed=False)
