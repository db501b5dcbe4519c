"""Fixtures for the QBO extract tests (``pull_company``)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import sqlalchemy as sa
from extract_helpers import PullCompany

from qbo_pipelines.sandbox.testing import SandboxHandle


@pytest.fixture
def pull_company(sandbox: SandboxHandle, temp_database: Callable[..., sa.Engine]) -> PullCompany:
    engine = temp_database("pull", migrated="warehouse")
    realm = sandbox.control.create_company(name="Pull Co", seed=True)
    return PullCompany(sandbox, realm, engine)
