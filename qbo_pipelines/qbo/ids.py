"""Typed identifiers, so a source-app id can never be passed where a QBO Id is expected.

``NewType`` costs nothing at run time; mypy (strict) rejects ``client.read("Customer", source_id)``.
"""

from __future__ import annotations

from typing import NewType

QboId = NewType("QboId", str)
"""A QBO entity ``Id`` (a string of digits, unique per realm and entity type)."""

RealmId = NewType("RealmId", str)
"""A QBO company id (``realmId``)."""

SourceId = NewType("SourceId", str)
"""An id in the source application."""

SyncToken = NewType("SyncToken", str)
"""A QBO ``SyncToken`` (optimistic-concurrency version, a string integer)."""

RequestId = NewType("RequestId", str)
"""A deterministic QBO ``requestid`` (idempotency key), at most 36 characters."""
