"""Which QBO companies are connected, and the one check every entry point makes (R1, R3).

A company is *known* once it has been connected (``sync.companies``); it stays listed as
``connected`` or ``needs_reconnect`` until it is disconnected. Every command and runner function
that takes a company id calls :func:`require_connected` before it writes anything, so a
mistyped id is refused with the list of connected companies and leaves no row, ledger entry,
quarantine row or Dagster partition behind.
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa

ACTIVE_STATUSES = ("connected", "needs_reconnect")


@dataclass(frozen=True)
class Company:
    """A connected company: realm id, QBO name, status (``connected``/``needs_reconnect``)."""

    realm_id: str
    name: str | None
    status: str
    status_reason: str | None = None

    @property
    def label(self) -> str:
        shown = f"{self.realm_id} ({self.name})" if self.name else self.realm_id
        return shown if self.status == "connected" else f"{shown} [{self.status}]"


SHOWN = 40
"""Characters of a company id an error shows (QBO's realm ids have about 19 digits)."""


def shown(typed: str, limit: int = SHOWN) -> str:
    """A value typed by hand, as an error shows it: cut to ``limit`` characters (and "..."),
    never echoed whole."""
    return typed if len(typed) <= limit else f"{typed[:limit]}..."


class NotConnectedError(LookupError):
    """A company id that is not connected; the message lists the connected ones."""

    def __init__(self, realm_id: str, connected: list[Company]) -> None:
        self.realm_id = realm_id
        self.connected = connected
        named = repr(shown(realm_id))
        if connected:
            listing = ", ".join(c.label for c in connected)
            text = f"company {named} is not connected; connected companies: {listing}"
        else:
            text = (
                f"company {named} is not connected, and no company is: run "
                "`qbo-pipelines connect` first"
            )
        super().__init__(text)


def connected(engine: sa.Engine) -> list[Company]:
    """Every company connected (or needing a reconnect), by realm id."""
    with engine.connect() as conn:
        if not conn.execute(sa.text("SELECT to_regclass('sync.companies') IS NOT NULL")).scalar():
            return []
        rows = conn.execute(
            sa.text(
                "SELECT realm_id, company_name, status, status_reason FROM sync.companies"
                " WHERE status IN ('connected', 'needs_reconnect') ORDER BY realm_id"
            )
        ).all()
    return [Company(str(r.realm_id), r.company_name, str(r.status), r.status_reason) for r in rows]


def require_connected(engine: sa.Engine, realm_id: str) -> Company:
    """The company ``realm_id``, or :class:`NotConnectedError` listing the connected ones."""
    companies = connected(engine)
    for company in companies:
        if company.realm_id == realm_id:
            return company
    raise NotConnectedError(realm_id, companies)


def resolve(engine: sa.Engine, realm_id: str | None) -> list[Company]:
    """``[require_connected(realm_id)]`` when given, else every connected company."""
    if realm_id is not None:
        return [require_connected(engine, realm_id)]
    return connected(engine)
