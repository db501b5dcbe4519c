"""Fixtures for the webhook receiver tests: a private warehouse and the real receiver."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
import sqlalchemy as sa
from webhookbed import VERIFIER, Connector, ReceiverServer

from qbo_pipelines.warehouse import migrations
from qbo_pipelines.webhooks import inbox
from qbo_pipelines.webhooks.receiver import create_app


@pytest.fixture(scope="module")
def webhook_warehouse(make_database: Callable[[str], sa.Engine]) -> sa.Engine:
    """A migrated warehouse private to this module (sandbox realm ids repeat across tests)."""
    engine = make_database("webhooks")
    migrations.migrate_warehouse(engine)
    return engine


@pytest.fixture
def wh(webhook_warehouse: sa.Engine) -> sa.Engine:
    """The private warehouse with an empty inbox and no companies."""
    with webhook_warehouse.begin() as conn:
        conn.execute(sa.text("TRUNCATE sync.webhook_inbox, sync.companies CASCADE"))
    return webhook_warehouse


@pytest.fixture
def receiver(wh: sa.Engine) -> Iterator[ReceiverServer]:
    """The receiver storing events for the companies connected in ``wh``."""
    app = create_app(wh, VERIFIER, connected_realms=lambda: inbox.connected_realms(wh))
    server = ReceiverServer(app).start()
    yield server
    server.stop()


@pytest.fixture
def connect(wh: sa.Engine) -> Connector:
    return Connector(wh)
