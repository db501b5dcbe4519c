"""Wire the demo source app to a local sandbox company: connect, reference data, mappings.

Used by the main job (``make demo``) and by the end-to-end tests, so both exercise the same
path a user takes: tokens from the sandbox's OAuth server stored encrypted, the company's choices
pulled into ``raw_qbo``, and mappings chosen by name from those choices. The demo maps every tax
rate except ``Luxury 25%`` (left unmapped on purpose, R12).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from typing import Any

import requests
import sqlalchemy as sa

from qbo_pipelines.canonical import RealmId
from qbo_pipelines.mapping import repository
from qbo_pipelines.qbo.app import DEFAULT_REDIRECT_URI, ConfigError, QboApp, save_app
from qbo_pipelines.qbo.auth import TokenSet
from qbo_pipelines.qbo.secret import Secret
from qbo_pipelines.sandbox.control import SandboxControl
from qbo_pipelines.sandbox.control_api import TOKEN_HEADER
from qbo_pipelines.sandbox.state import DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET
from qbo_pipelines.sync import reference
from qbo_pipelines.sync.env import SyncEnv

# Source tax rate -> QBO tax code name (Luxury 25% deliberately absent).
DEMO_TAX_CODES = {"GST 10%": "GST", "Reduced 5%": "Reduced 5%", "Zero rated": "Exempt"}
# Source payment method -> (QBO payment method name, Bank deposit account name).
DEMO_PAYMENT_METHODS = {
    "Cash": ("Cash", "Checking"),
    "Cheque": ("Check", "Checking"),
    "Credit Card": ("Visa", "Checking"),
    "Direct Deposit": (None, "Savings"),
}
# Worker-invoice concept -> QBO expense account name.
DEMO_EXPENSE_CONCEPTS = {
    "Development": "Contractors",
    "Design work": "Contractors",
    "Travel expenses": "Travel",
    "Equipment": "Office Supplies",
    "Bonus": "Contractors",
    "Reimbursement": "Travel",
}
DEMO_DEFAULTS = {"income_account": "Services", "tax_code": "Exempt", "deposit_account": "Checking"}


class SetupError(RuntimeError):
    """The demo company lacks something the demo mappings need."""


def demo_app(base_url: str) -> QboApp:
    """The sandbox's own dev app, with API and OAuth on ``base_url``."""
    return QboApp(
        client_id=DEFAULT_CLIENT_ID,
        client_secret=Secret(DEFAULT_CLIENT_SECRET),
        api_url=base_url,
        oauth_url=base_url,
        redirect_uri=DEFAULT_REDIRECT_URI,
        origin="demo-sandbox",
    )


def persist_demo_app(warehouse: sa.Engine, control: SandboxControl, base_url: str) -> QboApp:
    """Store the app configuration the demo used (secret encrypted with the token key), so
    every later command and Dagster run finds it without environment variables; and register
    the default redirect URI with the sandbox, so ``qbo-pipelines connect`` works against its
    consent page."""
    control.register_app(
        DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, [DEFAULT_REDIRECT_URI], name="qbo-pipelines demo"
    )
    app = demo_app(base_url)
    save_app(warehouse, app, origin="demo-sandbox")
    return app


def _ours_answers(base_url: str, token: str) -> bool:
    """The demo's own sandbox answers at ``base_url`` (``make dev`` running): it knows the
    demo's control token. Another server on that port (another checkout's sandbox, anything)
    does not, and must never be handed the demo company's tokens (it would refuse the refresh
    token and the company would need reconnecting)."""
    try:
        answer = requests.get(
            base_url.rstrip("/") + "/_sandbox/info", headers={TOKEN_HEADER: token}, timeout=2
        )
    except requests.RequestException:
        return False
    return answer.status_code == 200  # noqa: PLR2004 - HTTP OK


def _ours_answers_soon(base_url: str, token: str, seconds: float = 5.0) -> bool:
    """:func:`_ours_answers`, allowing a sandbox another command is starting a moment to."""
    deadline = time.monotonic() + seconds
    while True:
        if _ours_answers(base_url, token):
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.25)


@contextlib.contextmanager
def demo_sandbox_served(warehouse: sa.Engine) -> Iterator[str | None]:
    """Serve the demo's sandbox for the ``with`` block when the configured QBO app is the one
    ``make demo`` stored and nothing answers at its URL (no ``make dev`` running): so commands
    such as ``sync push``, ``choices`` and ``connect`` work after ``make demo`` as written.

    Yields the base URL served, or None when nothing had to be started. When the usual port is
    taken the sandbox gets another one, and the stored URLs follow it.
    """
    try:
        app = QboApp.resolve(warehouse)
    except ConfigError:
        yield None
        return
    if app.origin != "demo-sandbox":
        yield None
        return
    from qbo_pipelines.demo.run import (
        SandboxAlreadyServedError,
        demo_control_token,
        sandbox_state_file,
        start_demo_sandbox,
    )

    token = demo_control_token()
    if not sandbox_state_file().exists() or _ours_answers(app.api_url, token):
        yield None
        return
    from urllib.parse import urlsplit

    try:
        _, server = start_demo_sandbox(
            urlsplit(app.api_url).port or 8765,
            ours_at=lambda: _ours_answers_soon(app.api_url, token),
        )
    except SandboxAlreadyServedError:  # another command started serving it a moment ago
        yield None
        return
    try:
        if server.base_url != app.api_url:
            save_app(warehouse, app.with_api_url(server.base_url), origin="demo-sandbox")
            with warehouse.begin() as conn:
                conn.execute(
                    sa.text(
                        "UPDATE sync.qbo_tokens SET api_base_url = :new WHERE api_base_url = :old"
                    ),
                    {"new": server.base_url, "old": app.api_url},
                )
        yield server.base_url
    finally:
        server.stop()  # saves the sandbox's state


def prepare_sandbox_company(control: SandboxControl, realm_id: str) -> None:
    """Give the sandbox company a 5 % tax code (real companies create theirs in QBO)."""
    codes = {c.get("Name") for c in control.entities(realm_id, "TaxCode")}
    if "Reduced 5%" in codes:
        return
    [rate] = control.bulk_create(
        realm_id,
        "TaxRate",
        [{"Name": "Reduced 5%", "Description": "Reduced rate 5%", "RateValue": 5, "Active": True}],
    )
    control.bulk_create(
        realm_id,
        "TaxCode",
        [
            {
                "Name": "Reduced 5%",
                "Description": "Reduced rate 5%",
                "Active": True,
                "Taxable": True,
                "SalesTaxRateList": {
                    "TaxRateDetail": [
                        {
                            "TaxRateRef": {"value": rate["Id"], "name": "Reduced 5%"},
                            "TaxTypeApplicable": "TaxOnAmount",
                            "TaxOrder": 0,
                        }
                    ]
                },
            }
        ],
    )


def connect_with_tokens(
    env: SyncEnv,
    realm_id: RealmId,
    token_response: Mapping[str, Any],
    api_url: str,
    company_name: str | None = None,
) -> None:
    """Store a token response (as the OAuth callback would) for ``realm_id``."""
    tokens = TokenSet.from_response(token_response, datetime.now(UTC))
    env.tokens.save_connection(realm_id, tokens, api_base_url=api_url, company_name=company_name)


def _source_ids(env: SyncEnv, entity: str) -> dict[str, str]:
    """Source name -> source id of a reference entity, through the connector."""
    return {r.name: str(r.source_id) for chunk in env.connector.iter_entity(entity) for r in chunk}


def apply_demo_mappings(env: SyncEnv, realm_id: RealmId) -> dict[str, int]:
    """Pull the company's choices and map the demo's values to them, through the same
    validated repository the ``mappings`` CLI uses (idempotent)."""
    with env.client(realm_id) as client:
        reference.refresh(env.warehouse, client)
    wh = env.warehouse
    for setting, value in (
        ("default-income-account", DEMO_DEFAULTS["income_account"]),
        ("default-tax-code", DEMO_DEFAULTS["tax_code"]),
        ("default-deposit-account", DEMO_DEFAULTS["deposit_account"]),
    ):
        repository.set_setting(wh, realm_id, setting, value, by="demo")
    rates = _source_ids(env, "tax_rates")
    mapped_rates = [
        repository.set_tax_rate(wh, realm_id, rates[src], src, code, by="demo")
        for src, code in DEMO_TAX_CODES.items()
        if src in rates
    ]
    methods = _source_ids(env, "payment_methods")
    mapped_methods = [
        repository.set_payment_method(wh, realm_id, methods[src], src, pm, account, by="demo")
        for src, (pm, account) in DEMO_PAYMENT_METHODS.items()
        if src in methods
    ]
    concepts = [
        repository.set_expense_concept(wh, realm_id, concept, account, by="demo")
        for concept, account in DEMO_EXPENSE_CONCEPTS.items()
    ]
    return {
        "tax_rates": len(mapped_rates),
        "payment_methods": len(mapped_methods),
        "expense_concepts": len(concepts),
    }


def choice_id(engine: sa.Engine, realm_id: str, kind: str, name: str) -> str:
    """The QBO id of a reference record by name (``kind``: accounts, tax_codes, ...)."""
    options = getattr(repository.load_choices(engine, realm_id), kind)
    for option in options:
        if option.name == name:
            return str(option.id)
    raise SetupError(f"the QBO company has no {kind} entry named {name!r}")
