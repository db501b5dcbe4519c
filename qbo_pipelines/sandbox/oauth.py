"""OAuth 2.0 as Intuit runs it: consent, code exchange, rotating refresh tokens, revocation."""

from __future__ import annotations

import base64
import binascii
import hashlib
import html
import json
import secrets
import threading
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from qbo_pipelines.sandbox.state import AccessToken, AuthCode, Grant, RefreshToken, Store

ACCOUNTING_SCOPE = "com.intuit.quickbooks.accounting"
OPENID_SCOPE = "openid"
ID_TOKEN_TTL = 3600
REFRESH_TTL = 8726400  # x_refresh_token_expires_in: about 101 days, rolling
CODE_TTL = 300

AUTHORIZE_PATH = "/connect/oauth2"
TOKEN_PATH = "/oauth2/v1/tokens/bearer"  # noqa: S105 (a URL path)
REVOKE_PATH = "/v2/oauth2/tokens/revoke"
DISCOVERY_PATH = "/.well-known/openid_configuration"
SANDBOX_DISCOVERY_PATH = "/.well-known/openid_sandbox_configuration"
USERINFO_PATH = "/v1/openid_connect/userinfo"
JWKS_PATH = "/op/v1/jwks"
ISSUER_PATH = "/op/v1"


@dataclass
class OAuthError(Exception):
    """A token-endpoint error: ``{"error": ...}`` with an HTTP status."""

    error: str
    status: int = 400
    description: str = ""

    def body(self) -> dict[str, str]:
        out = {"error": self.error}
        if self.description:
            out["error_description"] = self.description
        return out


def discovery(base_url: str) -> dict[str, Any]:
    return {
        "issuer": f"{base_url}{ISSUER_PATH}",
        "authorization_endpoint": f"{base_url}{AUTHORIZE_PATH}",
        "token_endpoint": f"{base_url}{TOKEN_PATH}",
        "userinfo_endpoint": f"{base_url}{USERINFO_PATH}",
        "revocation_endpoint": f"{base_url}{REVOKE_PATH}",
        "jwks_uri": f"{base_url}{JWKS_PATH}",
        "response_types_supported": ["code"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "scopes_supported": ["openid", "email", "profile", "address", "phone"],
        "token_endpoint_auth_methods_supported": ["client_secret_post", "client_secret_basic"],
        "claims_supported": ["aud", "exp", "iat", "iss", "realmid", "sub"],
    }


def _issue(store: Store, grant: Grant, ttl: int, issuer: str = "") -> dict[str, Any]:
    now = store.clock.time()
    access = "eyJlbmMiOiJBMTI4Q0JDLUhTMjU2IiwiYWxnIjoiZGlyIn0.." + secrets.token_urlsafe(48)
    refresh = "AB11" + secrets.token_hex(23)
    store.access_tokens[access] = AccessToken(grant.grant_id, now + ttl)
    store.refresh_tokens[refresh] = RefreshToken(grant.grant_id, now + REFRESH_TTL)
    out: dict[str, Any] = {"token_type": "bearer", "access_token": access,
                           "refresh_token": refresh, "expires_in": ttl,
                           "x_refresh_token_expires_in": REFRESH_TTL}
    if issuer and OPENID_SCOPE in grant.scope.split():
        out["id_token"] = id_token(grant, issuer, now)
    return out


# -- OpenID: RS256 id_token, keys at /op/v1/jwks ---------------------------------------------

_KEY_LOCK = threading.Lock()
_KEY: rsa.RSAPrivateKey | None = None


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def signing_key() -> rsa.RSAPrivateKey:
    """The process's RSA key for id_tokens (generated on first use, published in the JWKS)."""
    global _KEY
    with _KEY_LOCK:
        if _KEY is None:
            _KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        return _KEY


def _int_bytes(value: int) -> bytes:
    return value.to_bytes((value.bit_length() + 7) // 8, "big")


def jwks() -> dict[str, Any]:
    numbers = signing_key().public_key().public_numbers()
    n, e = _b64url(_int_bytes(numbers.n)), _b64url(_int_bytes(numbers.e))
    return {"keys": [{"kty": "RSA", "alg": "RS256", "use": "sig", "kid": _kid(n), "n": n,
                      "e": e}]}


def _kid(n: str) -> str:
    return hashlib.sha256(n.encode("ascii")).hexdigest()[:16]


def _segment(obj: dict[str, Any]) -> str:
    """base64url(JSON) without ``-``/``_``: intuitlib decodes header and payload with the
    standard base64 alphabet, so (as Intuit's own tokens evidently do) the sandbox keeps the
    two alphabets' common characters by varying insignificant JSON whitespace."""
    text = json.dumps(obj, separators=(",", ":"))
    for pad in range(64):
        encoded = _b64url((text + " " * pad).encode("utf-8"))
        if "-" not in encoded and "_" not in encoded:
            return encoded
    return _b64url(text.encode("utf-8"))


def id_token(grant: Grant, issuer: str, now: float) -> str:
    key = signing_key()
    kid = jwks()["keys"][0]["kid"]
    header = _segment({"kid": kid, "alg": "RS256"})
    payload = _segment({"sub": grant.grant_id, "aud": [grant.client_id],
                        "realmid": grant.realm_id, "auth_time": int(now), "iss": issuer,
                        "exp": int(now) + ID_TOKEN_TTL, "iat": int(now)})
    signing_input = f"{header}.{payload}".encode("ascii")
    signature = key.sign(signing_input, padding.PKCS1v15(), hashes.SHA256())
    return f"{header}.{payload}.{_b64url(signature)}"


def mint(store: Store, realm_id: str, client_id: str, ttl: int,
         scope: str = ACCOUNTING_SCOPE) -> dict[str, Any]:
    """Tokens as if the user had consented (control API)."""
    with store.lock:
        if realm_id not in store.companies:
            raise OAuthError("invalid_request", 404, f"unknown realm {realm_id}")
        if client_id not in store.apps:
            raise OAuthError("invalid_client", 401)
        grant = Grant(secrets.token_hex(8), client_id, realm_id, scope)
        store.grants[grant.grant_id] = grant
        return {**_issue(store, grant, ttl), "realmId": realm_id}


def authorize_problem(store: Store, params: dict[str, str]) -> str | None:
    """Why an authorize request must be refused outright (no redirect), or None."""
    app = store.apps.get(params.get("client_id", ""))
    if app is None:
        return "Unknown client_id."
    if params.get("redirect_uri", "") not in app.redirect_uris:
        return "The redirect_uri is not registered for this app."
    if params.get("response_type") != "code":
        return "response_type must be code."
    return None


def consent_page(store: Store, params: dict[str, str]) -> str:
    hidden = "".join(
        f'<input type="hidden" name="{html.escape(k)}" value="{html.escape(v)}">'
        for k, v in params.items())
    options = "".join(
        f'<li><label><input type="radio" name="realmId" value="{html.escape(c.realm_id)}"'
        f'{" checked" if n == 0 else ""}> {html.escape(c.name)} ({html.escape(c.realm_id)})'
        "</label></li>" for n, c in enumerate(store.companies.values()))
    app = store.apps[params["client_id"]]
    return (
        "<!doctype html><html><head><title>Connect to QuickBooks (sandbox)</title></head><body>"
        f"<h1>{html.escape(app.name)} wants to connect to your QuickBooks company</h1>"
        f"<p>Scopes: {html.escape(params.get('scope', ''))}</p>"
        f'<form method="post" action="{AUTHORIZE_PATH}">{hidden}<ul>{options}</ul>'
        '<button type="submit" name="decision" value="allow">Connect</button> '
        '<button type="submit" name="decision" value="deny">Cancel</button></form>'
        "</body></html>")


def consent(store: Store, form: dict[str, str]) -> dict[str, str]:
    """The user's answer: the query parameters of the redirect back to the app."""
    out = {"state": form.get("state", "")}
    if form.get("decision") == "deny":
        return {**out, "error": "access_denied"}
    scope = form.get("scope", "")
    if ACCOUNTING_SCOPE not in scope.split():
        return {**out, "error": "invalid_scope"}
    realm_id = form.get("realmId", "")
    with store.lock:
        if realm_id not in store.companies:
            return {**out, "error": "access_denied"}
        grant = Grant(secrets.token_hex(8), form["client_id"], realm_id, scope)
        store.grants[grant.grant_id] = grant
        code = "AB11" + secrets.token_urlsafe(30)
        store.codes[code] = AuthCode(grant.grant_id, form["redirect_uri"],
                                     store.clock.time() + CODE_TTL)
    return {"code": code, **out, "realmId": realm_id}


def client_from_basic(store: Store, header: str) -> str:
    """Check ``Authorization: Basic base64(client_id:client_secret)``; return the client id."""
    if not header.lower().startswith("basic "):
        raise OAuthError("invalid_client", 401)
    try:
        decoded = base64.b64decode(header[6:].strip()).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError) as exc:
        raise OAuthError("invalid_client", 401) from exc
    client_id, _, secret = decoded.partition(":")
    return _check_client(store, client_id, secret)


def authenticate_client(store: Store, header: str, form: dict[str, str]) -> str:
    """The token endpoint's client authentication: HTTP Basic (``client_secret_basic``) or
    ``client_id``/``client_secret`` in the form body (``client_secret_post``), both of which
    the discovery document advertises (QBO_API.md §9.1, §9.3)."""
    if header.lower().startswith("basic "):
        return client_from_basic(store, header)
    if "client_id" in form and "client_secret" in form:
        return _check_client(store, form["client_id"], form["client_secret"])
    raise OAuthError("invalid_client", 401)


def _check_client(store: Store, client_id: str, secret: str) -> str:
    app = store.apps.get(client_id)
    if app is None or not secrets.compare_digest(app.client_secret, secret):
        # The exact invalid_client body is UNCONFIRMED; RFC 6749 shape is used.
        raise OAuthError("invalid_client", 401)
    return client_id


def token(store: Store, client_id: str, form: dict[str, str], ttl: int,
          issuer: str = "") -> dict[str, Any]:
    grant_type = form.get("grant_type", "")
    with store.lock:
        if grant_type == "authorization_code":
            return _exchange_code(store, client_id, form, ttl, issuer)
        if grant_type == "refresh_token":
            return _refresh(store, client_id, form.get("refresh_token", ""), ttl, issuer)
    raise OAuthError("unsupported_grant_type")


def _exchange_code(store: Store, client_id: str, form: dict[str, str],
                   ttl: int, issuer: str) -> dict[str, Any]:
    code = store.codes.get(form.get("code", ""))
    if code is None or code.expires_at < store.clock.time():
        raise OAuthError("invalid_grant")
    grant = store.grants[code.grant_id]
    if grant.client_id != client_id or code.redirect_uri != form.get("redirect_uri"):
        raise OAuthError("invalid_grant")
    if code.used:
        # Exchanging a code twice also invalidates what the first exchange returned.
        grant.revoked = True
        raise OAuthError("invalid_grant")
    code.used = True
    return _issue(store, grant, ttl, issuer)


def _refresh(store: Store, client_id: str, value: str, ttl: int,
             issuer: str) -> dict[str, Any]:
    record = store.refresh_tokens.get(value)
    if record is None:
        raise OAuthError("invalid_grant", description="Incorrect or invalid refresh token")
    grant = store.grants[record.grant_id]
    if grant.client_id != client_id:
        raise OAuthError("invalid_grant", description="Incorrect or invalid refresh token")
    # Whether a rotated refresh token stays usable is UNCONFIRMED: the sandbox makes it
    # single-use (stricter), so a client that loses the newest token is locked out here first.
    if grant.revoked or record.superseded or record.expires_at < store.clock.time():
        raise OAuthError("invalid_grant", description="Incorrect or invalid refresh token")
    record.superseded = True
    return _issue(store, grant, ttl, issuer)


def revoke(store: Store, client_id: str, value: str) -> None:
    """Revoking either token disconnects the app from the company (the whole grant)."""
    with store.lock:
        record: AccessToken | RefreshToken | None = (
            store.refresh_tokens.get(value) or store.access_tokens.get(value))
        if record is None:
            raise OAuthError("invalid_request", description="Token not found")
        grant = store.grants[record.grant_id]
        if grant.client_id != client_id:
            raise OAuthError("invalid_client", 401)
        grant.revoked = True


def bearer_client(store: Store, header: str) -> str:
    """The OAuth client (app) a bearer token was issued to, or "" (throttling key)."""
    record = store.access_tokens.get(header[7:].strip()) if len(header) > 7 else None
    grant = store.grants.get(record.grant_id) if record is not None else None
    return grant.client_id if grant is not None else ""


def check_bearer(store: Store, header: str, realm_id: str) -> tuple[int, str] | None:
    """None when the bearer token may call this realm, else (HTTP status, detail)."""
    if not header.lower().startswith("bearer "):
        return 401, "Authorization header is missing or not a bearer token"
    record = store.access_tokens.get(header[7:].strip())
    if record is None:
        return 401, "Token invalid"
    grant = store.grants.get(record.grant_id)
    if grant is None or grant.revoked:
        return 401, "Token revoked"
    if record.expires_at < store.clock.time():
        return 401, "Token expired"
    if grant.realm_id != realm_id:
        return 403, f"The token is not authorized for company {realm_id}"
    return None
