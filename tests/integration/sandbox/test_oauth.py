"""OAuth 2.0 as Intuit runs it: consent, code exchange, rotation, revocation, 401 shapes."""

from __future__ import annotations

from urllib.parse import parse_qs, urlparse

import pytest
import requests
from intuitlib.client import AuthClient
from intuitlib.enums import Scopes
from intuitlib.exceptions import AuthClientError

from qbo_pipelines.sandbox.testing import SandboxHandle


def _consent(sandbox: SandboxHandle, scope: str = "com.intuit.quickbooks.accounting") -> dict:
    params = {"client_id": sandbox.client_id, "response_type": "code", "scope": scope,
              "redirect_uri": sandbox.redirect_uri, "state": "xyz"}
    page = requests.get(sandbox.authorize_url, params=params, timeout=10)
    assert page.status_code == 200
    assert sandbox.realm_id in page.text
    answer = requests.post(sandbox.authorize_url, data={**params, "realmId": sandbox.realm_id,
                                                        "decision": "allow"},
                           allow_redirects=False, timeout=10)
    assert answer.status_code == 302
    location = urlparse(answer.headers["location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == sandbox.redirect_uri
    return {k: v[0] for k, v in parse_qs(location.query).items()}


def _auth(sandbox: SandboxHandle) -> AuthClient:
    return AuthClient(sandbox.client_id, sandbox.client_secret, sandbox.redirect_uri,
                      environment=sandbox.discovery_url)


def test_R1_discovery_document_points_at_sandbox(sandbox: SandboxHandle) -> None:
    doc = requests.get(sandbox.discovery_url, timeout=10).json()
    assert doc["token_endpoint"] == sandbox.token_url
    assert doc["authorization_endpoint"] == sandbox.authorize_url
    assert doc["revocation_endpoint"] == sandbox.revoke_url


def test_R1_consent_redirects_with_code_state_realm_and_code_exchanges_once(
        sandbox: SandboxHandle) -> None:
    auth = _auth(sandbox)
    url = auth.get_authorization_url([Scopes.ACCOUNTING], state_token="xyz")
    assert url.startswith(sandbox.authorize_url)
    callback = _consent(sandbox)
    assert callback["state"] == "xyz"
    assert callback["realmId"] == sandbox.realm_id
    auth.get_bearer_token(callback["code"], realm_id=callback["realmId"])
    assert auth.access_token
    assert auth.expires_in == 3600
    assert auth.x_refresh_token_expires_in == 8726400
    with pytest.raises(AuthClientError) as info:
        _auth(sandbox).get_bearer_token(callback["code"])
    assert info.value.status_code == 400
    assert b"invalid_grant" in info.value.content


def test_R2_rotated_refresh_token_is_refused_invalid_grant(sandbox: SandboxHandle) -> None:
    first = sandbox.control.mint_tokens(sandbox.realm_id)
    auth = _auth(sandbox)
    auth.refresh(refresh_token=first["refresh_token"])
    assert auth.refresh_token != first["refresh_token"]
    stale = requests.post(sandbox.token_url, auth=(sandbox.client_id, sandbox.client_secret),
                          data={"grant_type": "refresh_token",
                                "refresh_token": first["refresh_token"]}, timeout=10)
    assert stale.status_code == 400
    assert stale.json()["error"] == "invalid_grant"
    auth.refresh()  # the newest one still works


def test_token_endpoint_requires_basic_client_auth(sandbox: SandboxHandle) -> None:
    tokens = sandbox.control.mint_tokens(sandbox.realm_id)
    wrong = requests.post(sandbox.token_url, auth=(sandbox.client_id, "wrong"),
                          data={"grant_type": "refresh_token",
                                "refresh_token": tokens["refresh_token"]}, timeout=10)
    assert wrong.status_code == 401
    assert wrong.json()["error"] == "invalid_client"


def test_R1_revoke_disconnects_and_api_answers_401_3200(sandbox: SandboxHandle) -> None:
    tokens = sandbox.control.mint_tokens(sandbox.realm_id)
    url = f"{sandbox.company_url()}/companyinfo/{sandbox.realm_id}"
    headers = {"Authorization": f"Bearer {tokens['access_token']}",
               "Accept": "application/json"}
    assert requests.get(url, headers=headers, timeout=10).status_code == 200
    _auth(sandbox).revoke(token=tokens["refresh_token"])
    denied = requests.get(url, headers=headers, timeout=10)
    assert denied.status_code == 401
    body = denied.json()
    assert body["fault"]["error"][0]["code"] == "3200"
    assert body["fault"]["type"] == "AUTHENTICATION"
    assert isinstance(body["time"], int)
    refused = requests.post(sandbox.token_url, auth=(sandbox.client_id, sandbox.client_secret),
                            data={"grant_type": "refresh_token",
                                  "refresh_token": tokens["refresh_token"]}, timeout=10)
    assert refused.json() == {"error": "invalid_grant",
                              "error_description": "Incorrect or invalid refresh token"}


def test_R2_access_token_expires_after_ttl(sandbox: SandboxHandle) -> None:
    tokens = sandbox.control.mint_tokens(sandbox.realm_id)
    url = f"{sandbox.company_url()}/preferences"
    headers = {"Authorization": f"Bearer {tokens['access_token']}",
               "Accept": "application/json"}
    assert requests.get(url, headers=headers, timeout=10).status_code == 200
    sandbox.control.advance_clock(3601)
    expired = requests.get(url, headers=headers, timeout=10)
    assert expired.status_code == 401
    assert expired.json()["fault"]["error"][0]["code"] == "3200"


def test_R3_token_for_one_company_cannot_read_another(sandbox: SandboxHandle) -> None:
    other = sandbox.control.create_company("Second Co")
    tokens = sandbox.control.mint_tokens(sandbox.realm_id)
    response = requests.get(f"{sandbox.company_url(other)}/preferences",
                            headers={"Authorization": f"Bearer {tokens['access_token']}"},
                            timeout=10)
    assert response.status_code == 403
    assert response.json()["fault"]["error"][0]["code"] == "3100"
