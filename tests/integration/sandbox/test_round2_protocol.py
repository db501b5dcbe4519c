"""Issue 10, protocol gaps: client_secret_post, QBO's limits by default, the sandbox email cap,
XML answers and the OpenID id_token. All over real HTTP against a running sandbox."""

from __future__ import annotations

import concurrent.futures
import time
import xml.etree.ElementTree as ET
from typing import Any
from urllib.parse import parse_qs, urlparse

import jwt
import pytest
import requests
from intuitlib.client import AuthClient
from requests_oauthlib import OAuth2Session

from qbo_pipelines.sandbox.testing import SandboxHandle, run_sandbox

from .helpers import Api, fault_of

NS = {"q": "http://schema.intuit.com/finance/v3"}


def _xml(content: bytes) -> ET.Element:
    return ET.fromstring(content)  # noqa: S314 (our own sandbox's answer)
THROTTLE_FAULT = (
    '<Fault type="SERVICE"><Error code="3001"><Message>message=ThrottleExceeded; '
    "errorCode=003001; statusCode=429</Message><Detail>The request limit was reached.  Try "
    "again later</Detail></Error></Fault>")


# -- 1. client_secret_post ----------------------------------------------------------------------


def test_token_endpoint_accepts_client_secret_post(sandbox: SandboxHandle,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """§9.1/§9.3: the discovery document advertises ``client_secret_post``; a refresh that
    sends client_id/client_secret in the form body (as requests-oauthlib does) succeeds."""
    monkeypatch.setenv("OAUTHLIB_INSECURE_TRANSPORT", "1")  # the sandbox is plain http
    doc = requests.get(sandbox.discovery_url, timeout=10).json()
    assert "client_secret_post" in doc["token_endpoint_auth_methods_supported"]
    tokens = sandbox.control.mint_tokens(sandbox.realm_id)
    # requests-oauthlib: credentials as body parameters, no Authorization header.
    session = OAuth2Session(sandbox.client_id, token={**tokens, "token_type": "Bearer"})
    fresh = session.refresh_token(sandbox.token_url, refresh_token=tokens["refresh_token"],
                                  client_id=sandbox.client_id,
                                  client_secret=sandbox.client_secret)
    assert fresh["refresh_token"] != tokens["refresh_token"]
    api = requests.get(f"{sandbox.company_url()}/companyinfo/{sandbox.realm_id}",
                       headers={"Authorization": f"Bearer {fresh['access_token']}",
                                "Accept": "application/json"}, timeout=10)
    assert api.status_code == 200
    # Plain form post, then a wrong secret in the body.
    again = requests.post(sandbox.token_url, data={
        "grant_type": "refresh_token", "refresh_token": fresh["refresh_token"],
        "client_id": sandbox.client_id, "client_secret": sandbox.client_secret},
        headers={"Accept": "application/json"}, timeout=10)
    assert again.status_code == 200, again.text
    wrong = requests.post(sandbox.token_url, data={
        "grant_type": "refresh_token", "refresh_token": again.json()["refresh_token"],
        "client_id": sandbox.client_id, "client_secret": "not-the-secret"}, timeout=10)
    assert wrong.status_code == 401
    assert wrong.json()["error"] == "invalid_client"


# -- 2. QBO's limits by default -----------------------------------------------------------------


def _session(handle: SandboxHandle, client_id: str | None = None) -> requests.Session:
    tokens = handle.control.mint_tokens(handle.realm_id, client_id)
    session = requests.Session()
    session.headers.update({"Accept": "application/json",
                            "Authorization": f"Bearer {tokens['access_token']}"})
    return session


def _second_app(handle: SandboxHandle, name: str = "other") -> str:
    client_id = f"AB{name}ClientId"
    handle.control.register_app(client_id, f"{name}-secret", [handle.redirect_uri], name)
    return client_id


def _get(handle: SandboxHandle, session: requests.Session) -> requests.Response:
    return session.get(f"{handle.company_url()}/preferences", params={"minorversion": 75},
                       timeout=10)


def test_default_sandbox_enforces_10_per_second_per_realm_and_app() -> None:
    """§8: 10 requests/s per realm+app, on by default; the 429 body is §8's fault verbatim;
    another app of the same company has its own 10/s."""
    with run_sandbox() as handle:
        first = _session(handle)
        other = _session(handle, _second_app(handle))
        start = time.monotonic()
        statuses = [_get(handle, first).status_code for _ in range(12)]
        refused = _get(handle, first)
        others = [_get(handle, other).status_code for _ in range(5)]
        assert time.monotonic() - start < 1.0, "too slow to observe a per-second limit"
        assert statuses == [200] * 10 + [429, 429]
        assert refused.status_code == 429
        assert refused.headers["content-type"].startswith("application/xml")
        assert THROTTLE_FAULT in refused.text
        assert others == [200] * 5


def test_default_sandbox_enforces_500_per_minute_per_realm_across_apps() -> None:
    """§8: 500 requests/min per realm, counted over all apps (limit lowered to 15 here so the
    test runs in a second; the default is QBO's 500)."""
    with run_sandbox() as handle:
        assert handle.control.set_throttle()["per_minute"] == 500
        handle.control.set_throttle(per_minute=15)
        first = _session(handle)
        other = _session(handle, _second_app(handle))
        assert [_get(handle, first).status_code for _ in range(10)] == [200] * 10
        assert [_get(handle, other).status_code for _ in range(6)] == [200] * 5 + [429]


def test_default_sandbox_enforces_10_in_flight_per_realm_and_app() -> None:
    """§8: at most 10 concurrent requests per realm+app; the 11th and 12th get 429."""
    with run_sandbox() as handle:
        handle.control.set_throttle(per_second=None)  # isolate the in-flight rule
        handle.control.set_latency(0.6)
        session = _session(handle)
        url = f"{handle.company_url()}/preferences"
        headers = dict(session.headers)
        barrier = concurrent.futures.ThreadPoolExecutor(12)
        with barrier as pool:
            statuses = list(pool.map(lambda _: requests.get(url, headers=headers, timeout=10)
                                     .status_code, range(12)))
        assert sorted(statuses) == [200] * 10 + [429] * 2


def test_default_sandbox_limits_batch_calls_per_app_and_per_realm() -> None:
    """§4/§8: 40 batch calls/min per realm+app and 120 batch calls/min per realm."""
    with run_sandbox() as handle:
        handle.control.set_throttle(per_second=None, in_flight=None)  # the batch rules only
        body = {"BatchItemRequest": [{"bId": "1", "Query": "select * from Term"}]}
        url = f"{handle.company_url()}/batch"
        apps = [None, _second_app(handle, "b"), _second_app(handle, "c"),
                _second_app(handle, "d")]
        sessions = [_session(handle, app) for app in apps]

        def batch(session: requests.Session) -> int:
            return session.post(url, json=body, params={"minorversion": 75},
                                timeout=10).status_code

        assert [batch(sessions[0]) for _ in range(41)] == [200] * 40 + [429]
        assert [batch(sessions[1]) for _ in range(40)] == [200] * 40
        assert [batch(sessions[2]) for _ in range(40)] == [200] * 40
        # 120 batch calls in the minute for this company: a fourth app is refused too.
        assert batch(sessions[3]) == 429
        # Plain calls are still allowed (500/min not reached).
        assert _get(handle, sessions[3]).status_code == 200


def test_limits_can_be_turned_off_per_sandbox_and_by_control_api() -> None:
    """§8 limits are opt-out: ``run_sandbox(throttle=False)`` and ``set_throttle(False)``."""
    with run_sandbox(throttle=False) as handle:
        session = _session(handle)
        assert all(_get(handle, session).status_code == 200 for _ in range(25))
    with run_sandbox() as handle:
        handle.control.set_throttle(False)
        session = _session(handle)
        assert all(_get(handle, session).status_code == 200 for _ in range(25))


# -- 9. sandbox email cap, XML, id_token --------------------------------------------------------


def _invoice(api: Api) -> dict[str, Any]:
    return api.create("Invoice", {"CustomerRef": {"value": "1"},
                                  "BillEmail": {"Address": "amy@example.com"}, "Line": [
        {"Amount": 10, "DetailType": "SalesItemLineDetail",
         "SalesItemLineDetail": {"ItemRef": {"value": "1"}}}]})


def test_sandbox_company_sends_at_most_40_emails_a_day(sandbox: SandboxHandle,
                                                       api: Api) -> None:
    """§8/§12: sandbox companies send 40 emails a day; the 41st send is refused with a QBO
    fault (HTTP 400, ``Fault.Error[].code``) and nothing is sent."""
    sandbox.control.set_throttle(per_second=None, per_minute=None, in_flight=None)
    invoice = _invoice(api)
    for n in range(40):
        response = api.session.post(f"{api.base}/invoice/{invoice['Id']}/send",
                                    params={"minorversion": 75, "requestid": f"send-{n}"},
                                    headers={"Content-Type": "application/octet-stream"},
                                    timeout=10)
        assert response.status_code == 200, response.text
    refused = api.session.post(f"{api.base}/invoice/{invoice['Id']}/send",
                               params={"minorversion": 75},
                               headers={"Content-Type": "application/octet-stream"},
                               timeout=10)
    assert refused.status_code == 400
    error = fault_of(refused)
    assert error["code"] == "6000"
    assert "40 emails a day" in error["Detail"]
    assert len(sandbox.control.emails(api.realm_id)) == 40
    # A retried send (same requestid) still replays its first answer.
    replay = api.session.post(f"{api.base}/invoice/{invoice['Id']}/send",
                              params={"minorversion": 75, "requestid": "send-3"},
                              headers={"Content-Type": "application/octet-stream"},
                              timeout=10)
    assert replay.status_code == 200


def test_xml_answers_when_accept_is_application_xml(api: Api) -> None:
    """§1.3/§1.4: ``Accept: application/xml`` gets ``<IntuitResponse>`` XML: entities with
    domain/sparse attributes and refs as ``name`` attributes, QueryResponse paging attributes,
    and faults as ``<Fault type><Error code>``."""
    xml = {"Accept": "application/xml"}
    invoice = _invoice(api)
    read = api.session.get(f"{api.base}/invoice/{invoice['Id']}",
                           params={"minorversion": 75}, headers=xml, timeout=10)
    assert read.status_code == 200
    assert read.headers["content-type"].startswith("application/xml")
    root = _xml(read.content)
    assert root.tag == "{http://schema.intuit.com/finance/v3}IntuitResponse"
    assert root.get("time")
    entity = root.find("q:Invoice", NS)
    assert entity is not None
    assert entity.get("domain") == "QBO"
    assert entity.findtext("q:Id", namespaces=NS) == invoice["Id"]
    ref = entity.find("q:CustomerRef", NS)
    assert ref is not None
    assert ref.text == "1"
    assert ref.get("name")
    assert len(entity.findall("q:Line", NS)) == len(invoice["Line"])

    query = api.session.get(f"{api.base}/query", params={
        "query": "select * from Customer maxresults 2", "minorversion": 75}, headers=xml,
        timeout=10)
    response = _xml(query.content).find("q:QueryResponse", NS)
    assert response is not None
    assert response.get("startPosition") == "1"
    assert response.get("maxResults") == "2"
    assert len(response.findall("q:Customer", NS)) == 2

    missing = api.session.get(f"{api.base}/invoice/999999", params={"minorversion": 75},
                              headers=xml, timeout=10)
    assert missing.status_code == 400
    error = _xml(missing.content).find("q:Fault/q:Error", NS)
    assert error is not None
    assert error.get("code") == "610"
    assert error.findtext("q:Message", namespaces=NS) == "Object Not Found"
    # JSON is still JSON.
    assert api.get(f"/invoice/{invoice['Id']}").json()["Invoice"]["Id"] == invoice["Id"]


def _openid_consent(handle: SandboxHandle) -> dict[str, str]:
    params = {"client_id": handle.client_id, "response_type": "code",
              "scope": "com.intuit.quickbooks.accounting openid email",
              "redirect_uri": handle.redirect_uri, "state": "st"}
    answer = requests.post(handle.authorize_url, data={**params, "realmId": handle.realm_id,
                                                       "decision": "allow"},
                           allow_redirects=False, timeout=10)
    assert answer.status_code == 302
    return {k: v[0] for k, v in parse_qs(urlparse(answer.headers["location"]).query).items()}


def test_openid_scope_yields_rs256_id_token_verifiable_with_jwks(
        sandbox: SandboxHandle) -> None:
    """§9.1/§9.3/§9.5: with the ``openid`` scope the token answer carries an RS256 ``id_token``
    whose key is published at ``/op/v1/jwks`` (the discovery ``jwks_uri``), issued by the
    discovery ``issuer``; intuitlib validates and keeps it. Without openid, no id_token."""
    doc = requests.get(sandbox.discovery_url, timeout=10).json()
    assert doc["jwks_uri"] == f"{sandbox.base_url}/op/v1/jwks"
    assert doc["id_token_signing_alg_values_supported"] == ["RS256"]
    callback = _openid_consent(sandbox)
    auth = AuthClient(sandbox.client_id, sandbox.client_secret, sandbox.redirect_uri,
                      environment=sandbox.discovery_url)
    auth.get_bearer_token(callback["code"], realm_id=callback["realmId"])
    assert auth.id_token, "intuitlib did not accept the id_token"
    key = jwt.PyJWKClient(doc["jwks_uri"]).get_signing_key_from_jwt(auth.id_token)
    claims = jwt.decode(auth.id_token, key.key, algorithms=["RS256"],
                        audience=sandbox.client_id, issuer=doc["issuer"])
    assert claims["realmid"] == sandbox.realm_id
    assert claims["aud"] == [sandbox.client_id]
    assert claims["exp"] > claims["iat"]
    plain = sandbox.control.mint_tokens(sandbox.realm_id)
    assert "id_token" not in plain
