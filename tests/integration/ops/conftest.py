"""The CLI as a user runs it (the shared ``user_stack``: its own databases, a data directory, a
Dagster home, the QBO sandbox over HTTP) with the app registered for the CLI's redirect and a
second company to choose at consent."""

from __future__ import annotations

import pytest
from opsbed import OpsStack, free_port
from pushbed import UserStack


@pytest.fixture
def ops(user_stack: UserStack) -> OpsStack:
    sb = user_stack.sandbox
    redirect = f"http://127.0.0.1:{free_port()}/callback"
    sb.control.register_app(sb.client_id, sb.client_secret, [redirect], name="ops tests")
    second = sb.control.create_company("Second Company")
    return OpsStack(user_stack.env, user_stack.warehouse, user_stack.source, sb, second, redirect)
