"""Fixtures of the reconciliation tests: see reconcilebed.py."""

from __future__ import annotations

from collections.abc import Iterator

import dagster as dg
import pytest
from pushbed import UserStack, demo_company
from reconcilebed import ReconcileBed

from qbo_pipelines.source_app import demo
from qbo_pipelines.sync import pipeline


@pytest.fixture
def bed(user_stack: UserStack) -> Iterator[ReconcileBed]:
    """The demo company after a full two-way sync, in a user's stack (the CLI finds it)."""
    demo.seed(user_stack.source, contacts=30, sales=45, workers=4, seed_value=11)
    company = demo_company(user_stack.warehouse, user_stack.source, user_stack.sandbox)
    pipeline.push_all(company.env, company.realm, run_id="push-1")
    pipeline.pull_all(company.env, company.realm, run_id="pull-1")
    instance = dg.DagsterInstance.from_config(str(user_stack.dagster_home))
    try:
        yield ReconcileBed(company.env, company.sandbox, company.realm, instance)
    finally:
        instance.dispose()
