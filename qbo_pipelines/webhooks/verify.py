"""The ``intuit-signature`` check (QBO_API.md §10.2).

QBO signs every webhook body with the app's verifier token: the header ``intuit-signature`` is
``base64(HMAC-SHA256(key=verifier token (UTF-8), message=raw body bytes))``. The receiver checks
it on the raw bytes, before parsing anything, and compares in constant time so a forger learns
nothing from response timing. The token is a :class:`~qbo_pipelines.qbo.secret.Secret` and is
only revealed to compute the HMAC.
"""

from __future__ import annotations

import base64
import hashlib
import hmac

from qbo_pipelines.qbo.secret import Secret

SIGNATURE_HEADER = "intuit-signature"


def signature(verifier: Secret, body: bytes) -> str:
    """The signature QBO would send for ``body``: base64 of the HMAC-SHA256 digest."""
    digest = hmac.new(verifier.reveal().encode("utf-8"), body, hashlib.sha256).digest()
    return base64.b64encode(digest).decode("ascii")


def is_valid(verifier: Secret, body: bytes, header: str | None) -> bool:
    """Whether ``header`` (the ``intuit-signature`` value, None when absent) signs ``body``.

    Compared as bytes with :func:`hmac.compare_digest` (a non-ASCII header cannot make it
    raise); an empty token never validates anything.
    """
    if not header or not verifier:
        return False
    expected = signature(verifier, body).encode("ascii")
    return hmac.compare_digest(expected, header.strip().encode("utf-8", "replace"))
