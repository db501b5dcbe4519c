"""OAuth + the encrypted token store against the sandbox and the real Postgres (R1, R2, R3)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
import sqlalchemy as sa
from cryptography.fernet import Fernet

from qbo_pipelines.qbo import NeedsReconnectError, QboClient, RealmId, auth
from qbo_pipelines.qbo.cli import CallbackListener, complete_consent, connect
from qbo_pipelines.warehouse import migrations

WORKER = Path(__file__).with_name("qbo_refresh_worker.py")
KEY = Fernet.generate_key().decode()


@pytest.fixture(scope="module")
def token_db(make_database: Callable[[str], sa.Engine]) -> sa.Engine:
    engine = make_database("qbotokens")
    migrations.migrate_warehouse(engine)
    return engine


@pytest.fixture
def oauth(sandbox: Any) -> auth.OAuthClient:
    config = auth.OAuthConfig.for_base_url(
        sandbox.base_url, sandbox.client_id, sandbox.client_secret, sandbox.redirect_uri
    )
    return auth.OAuthClient(config)


@pytest.fixture
def store(token_db: sa.Engine, oauth: auth.OAuthClient) -> Iterator[auth.TokenStore]:
    with token_db.begin() as conn:  # sandbox realm ids repeat across sandboxes: start clean
        conn.execute(sa.text("DELETE FROM sync.companies"))
    return auth.TokenStore(token_db, oauth, auth.token_cipher(env={auth.ENV_TOKEN_KEY: KEY}))


def connect_company(sandbox: Any, store: auth.TokenStore, seed: bool = True) -> RealmId:
    realm = RealmId(sandbox.control.create_company(name="Token Co", seed=seed))
    minted = sandbox.control.mint_tokens(realm)
    tokens = auth.TokenSet.from_response(minted, datetime.now(UTC))
    store.save_connection(realm, tokens, api_base_url=sandbox.base_url, company_name="Token Co")
    return realm


def token_calls(sandbox: Any) -> list[dict[str, Any]]:
    return [r for r in sandbox.control.requests() if r["endpoint"] == "token"]


def run_workers(
    sandbox: Any, store: auth.TokenStore, realm: RealmId, n: int, **extra: Any
) -> list[dict[str, Any]]:
    cfg = {
        "warehouse_url": store.engine.url.render_as_string(hide_password=False),
        "base_url": sandbox.base_url,
        "client_id": sandbox.client_id,
        "client_secret": sandbox.client_secret,
        "redirect_uri": sandbox.redirect_uri,
        "key": KEY,
        "realm": realm,
        "start_at": time.time() + 4.0,
        **extra,
    }
    procs = [
        subprocess.Popen(
            [sys.executable, str(WORKER)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(n)
    ]
    for p in procs:
        assert p.stdin is not None
        p.stdin.write(json.dumps(cfg))
        p.stdin.close()
    out = []
    for p in procs:
        assert p.stdout is not None
        assert p.stderr is not None
        stdout, stderr = p.stdout.read(), p.stderr.read()
        p.wait(timeout=120)
        assert p.returncode == 0, stdout + stderr
        out.append(json.loads(stdout.strip().splitlines()[-1]))
    return out


def test_R2_two_processes_refresh_at_once_only_one_refreshes(
    sandbox: Any, store: auth.TokenStore
) -> None:
    realm = connect_company(sandbox, store)
    before = store.load(realm)
    assert before is not None
    sandbox.control.reset_requests()
    results = run_workers(sandbox, store, realm, 2, stale=before.access_token.reveal())
    assert all(r["ok"] for r in results)
    assert results[0]["access_sha"] == results[1]["access_sha"]  # the waiter reused it
    calls = token_calls(sandbox)
    assert [c["status"] for c in calls] == [200]  # one refresh, no superseded token used
    assert store.generation(realm) == 2
    # the stored refresh token is the newest: it still works
    store.refresh(realm, force=True)
    assert [c["status"] for c in token_calls(sandbox)] == [200, 200]


def test_R2_two_processes_forcing_refresh_never_use_a_superseded_token(
    sandbox: Any, store: auth.TokenStore
) -> None:
    realm = connect_company(sandbox, store)
    sandbox.control.reset_requests()
    results = run_workers(sandbox, store, realm, 3, force=True)
    assert all(r["ok"] for r in results), results
    statuses = [c["status"] for c in token_calls(sandbox)]
    assert statuses == [200, 200, 200]  # serialised: each used the newest refresh token
    assert store.generation(realm) == 4
    store.refresh(realm, force=True)
    assert token_calls(sandbox)[-1]["status"] == 200


def test_R2_token_table_holds_no_plaintext(sandbox: Any, store: auth.TokenStore) -> None:
    realm = connect_company(sandbox, store)
    tokens = store.refresh(realm, force=True)
    with store.engine.connect() as conn:
        row = (
            conn.execute(sa.text("SELECT * FROM sync.qbo_tokens WHERE realm_id = :r"), {"r": realm})
            .mappings()
            .one()
        )
        dump = json.dumps({k: str(v) for k, v in row.items()})
    assert tokens.access_token.reveal() not in dump
    assert tokens.refresh_token.reveal() not in dump
    assert row["access_token_enc"].startswith("gAAAAA")
    with pytest.raises(sa.exc.IntegrityError), store.engine.begin() as conn:
        conn.execute(
            sa.text(
                "UPDATE sync.qbo_tokens SET refresh_token_enc = 'AB11plain' WHERE realm_id = :r"
            ),
            {"r": realm},
        )
    assert "AB11" not in repr(tokens)
    assert "eyJ" not in repr(tokens)
    assert tokens.refresh_token.reveal() not in repr(store) + repr(store.oauth)


def test_R2_invalid_grant_marks_needs_reconnect(sandbox: Any, store: auth.TokenStore) -> None:
    realm = connect_company(sandbox, store)
    current = store.load(realm)
    assert current is not None
    store.oauth.revoke(current.refresh_token)  # e.g. the user disconnected in QBO
    sandbox.control.reset_requests()
    with pytest.raises(NeedsReconnectError) as info:
        store.refresh(realm, force=True)
    assert "Reconnect" in str(info.value)
    status = {c.realm_id: c for c in store.companies()}[realm]
    assert status.status == "needs_reconnect"
    assert status.status_reason is not None
    assert "qbo-pipelines connect" in status.status_reason
    with pytest.raises(NeedsReconnectError):
        store.access_token(realm)
    with pytest.raises(NeedsReconnectError):
        store.refresh(realm, force=True)
    assert len(token_calls(sandbox)) == 1  # no retry loop against the token endpoint


def test_R2_expired_access_token_refreshed_on_401(sandbox: Any, store: auth.TokenStore) -> None:
    realm = connect_company(sandbox, store)
    client = QboClient(sandbox.base_url, realm, store)
    client.company_info()
    sandbox.control.advance_clock(3700)  # QBO's clock: the access token has expired
    sandbox.control.reset_requests()
    assert client.company_info()["CompanyName"]
    statuses = [(r["endpoint"], r["status"]) for r in sandbox.control.requests()]
    assert statuses == [("read:CompanyInfo", 401), ("token", 200), ("read:CompanyInfo", 200)]


def test_R2_access_token_refreshed_before_expiry(
    sandbox: Any, token_db: sa.Engine, oauth: auth.OAuthClient, store: auth.TokenStore
) -> None:
    realm = connect_company(sandbox, store)
    later = auth.TokenStore(
        token_db,
        oauth,
        auth.token_cipher(env={auth.ENV_TOKEN_KEY: KEY}),
        clock=lambda: datetime.now(UTC) + timedelta(minutes=58),
    )
    sandbox.control.reset_requests()
    QboClient(sandbox.base_url, realm, later).company_info()
    assert [r["endpoint"] for r in sandbox.control.requests()] == ["token", "read:CompanyInfo"]


def test_R1_disconnect_revokes_deletes_and_clears_mappings(
    sandbox: Any, store: auth.TokenStore
) -> None:
    realm = connect_company(sandbox, store)
    other = connect_company(sandbox, store)
    tokens = store.load(realm)
    assert tokens is not None
    with store.engine.begin() as conn:
        conn.execute(
            sa.text(
                "CREATE TABLE IF NOT EXISTS mapping.t_qbo_disconnect_probe (realm_id text, v text)"
            )
        )
        conn.execute(
            sa.text("INSERT INTO mapping.t_qbo_disconnect_probe VALUES (:a, 'x'), (:b, 'y')"),
            {"a": realm, "b": other},
        )
    seen: list[str] = []

    @auth.register_disconnect_cleanup
    def probe(conn: sa.Connection, realm_id: RealmId) -> None:
        seen.append(realm_id)

    try:
        store.disconnect(realm)
    finally:
        auth.DISCONNECT_CLEANUPS.remove(probe)
    assert seen == [realm]
    with store.engine.begin() as conn:
        left = (
            conn.execute(sa.text("SELECT realm_id FROM mapping.t_qbo_disconnect_probe"))
            .scalars()
            .all()
        )
        conn.execute(sa.text("DROP TABLE mapping.t_qbo_disconnect_probe"))
        assert (
            conn.execute(
                sa.text("SELECT count(*) FROM sync.qbo_tokens WHERE realm_id = :r"), {"r": realm}
            ).scalar()
            == 0
        )
    assert left == [other]
    status = {c.realm_id: c for c in store.companies()}
    assert status[realm].status == "disconnected"
    assert not status[realm].has_tokens
    assert status[other].status == "connected"
    # revoked at the sandbox: the old access token no longer works
    response = requests.get(
        f"{sandbox.base_url}/v3/company/{realm}/companyinfo/{realm}",
        headers={
            "Authorization": f"Bearer {tokens.access_token.reveal()}",
            "Accept": "application/json",
        },
        timeout=10,
    )
    assert response.status_code == 401
    with pytest.raises(NeedsReconnectError):
        store.access_token(realm)


def _consent_in_browser(authorize_url: str) -> requests.Response:
    """Act as the user's browser: open the consent page, pick the company, allow."""
    page = requests.get(authorize_url, timeout=10)
    page.raise_for_status()
    fields = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)">', page.text))
    fields = {k: v.replace("&amp;", "&") for k, v in fields.items()}
    realm = re.findall(r'name="realmId" value="([^"]+)"', page.text)
    action = authorize_url.split("?")[0]
    return requests.post(
        action, data={**fields, "realmId": realm[-1], "decision": "allow"}, timeout=10
    )


def test_R1_connect_flow_end_to_end(sandbox: Any, store: auth.TokenStore) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    redirect = f"http://127.0.0.1:{port}/callback"
    sandbox.control.register_app("cli-app", "cli-secret", [redirect], name="qbo-pipelines")
    realm = RealmId(sandbox.control.create_company(name="Consent Co", seed=True))
    oauth = auth.OAuthClient(
        auth.OAuthConfig.for_base_url(sandbox.base_url, "cli-app", "cli-secret", redirect)
    )
    flow_store = auth.TokenStore(
        store.engine, oauth, auth.token_cipher(env={auth.ENV_TOKEN_KEY: KEY})
    )
    urls: list[str] = []
    outcome: dict[str, Any] = {}

    def run() -> None:
        outcome["result"] = connect(
            oauth, flow_store, sandbox.base_url, timeout=30, announce=urls.append
        )

    thread = threading.Thread(target=run)
    thread.start()
    while not urls:
        time.sleep(0.05)
    url = urls[0].splitlines()[-1]
    assert "scope=com.intuit.quickbooks.accounting" in url
    assert "state=" in url
    landed = _consent_in_browser(url)
    assert landed.status_code == 200
    assert "Connected" in landed.text
    thread.join(30)
    got_realm, name = outcome["result"]
    assert got_realm == realm
    assert name == "Consent Co"
    status = {c.realm_id: c for c in flow_store.companies()}[realm]
    assert status.status == "connected"
    assert status.has_tokens
    assert status.api_base_url == sandbox.base_url
    assert (
        QboClient(sandbox.base_url, realm, flow_store).company_info()["CompanyName"] == "Consent Co"
    )


def test_R1_a_callback_with_another_state_is_refused_and_the_connect_keeps_waiting(
    sandbox: Any, store: auth.TokenStore
) -> None:
    """A request to the callback port that is not this consent's (a forged or stale state: a
    page of another site, an old browser tab) is answered as a failure, never "Connected", and
    does not end the connect: the user's real consent still completes it (found by an attack:
    the browser was told "Connected" and the CLI failed with a state mismatch)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    redirect = f"http://127.0.0.1:{port}/callback"
    sandbox.control.register_app("cli-app-2", "cli-secret-2", [redirect], name="qbo-pipelines")
    realm = RealmId(sandbox.control.create_company(name="Stray Co", seed=True))
    oauth = auth.OAuthClient(
        auth.OAuthConfig.for_base_url(sandbox.base_url, "cli-app-2", "cli-secret-2", redirect)
    )
    flow_store = auth.TokenStore(
        store.engine, oauth, auth.token_cipher(env={auth.ENV_TOKEN_KEY: KEY})
    )
    urls: list[str] = []
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["result"] = connect(
                oauth, flow_store, sandbox.base_url, timeout=30, announce=urls.append
            )
        except Exception as exc:  # noqa: BLE001 - the assertion below names it
            outcome["error"] = exc

    thread = threading.Thread(target=run)
    thread.start()
    while not urls:
        time.sleep(0.05)
    stray = requests.get(f"{redirect}?state=forged&code=AB11stray&realmId={realm}", timeout=10)
    assert stray.status_code == 400
    assert "Connected" not in stray.text
    landed = _consent_in_browser(urls[0].splitlines()[-1])
    assert "Connected" in landed.text
    thread.join(30)
    assert "error" not in outcome, outcome.get("error")
    assert outcome["result"][0] == realm


def test_R1_callback_state_is_verified(sandbox: Any, store: auth.TokenStore) -> None:
    from qbo_pipelines.qbo.cli import ConnectError

    with pytest.raises(ConnectError, match="state"):
        complete_consent(
            {"code": "x", "realmId": "1", "state": "forged"},
            "expected",
            store.oauth,
            store,
            sandbox.base_url,
        )
    with pytest.raises(ConnectError, match="access_denied"):
        complete_consent(
            {"error": "access_denied", "state": "expected"},
            "expected",
            store.oauth,
            store,
            sandbox.base_url,
        )
    with pytest.raises(ConnectError):
        CallbackListener("http://example.com/callback")


def test_R1_authorization_url_and_intuit_endpoints() -> None:
    config = auth.OAuthConfig.intuit("cid", "shh", "https://app.example.com/cb")
    url = auth.OAuthClient(config).authorization_url("st4te")
    assert url.startswith("https://appcenter.intuit.com/connect/oauth2?")
    assert "client_id=cid" in url
    assert "response_type=code" in url
    assert "state=st4te" in url
    assert "redirect_uri=https%3A%2F%2Fapp.example.com%2Fcb" in url
    assert config.token_url == "https://oauth.platform.intuit.com/oauth2/v1/tokens/bearer"
    assert "shh" not in repr(config)


def test_R1_R3_cli_companies_and_disconnect(
    sandbox: Any,
    store: auth.TokenStore,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from qbo_pipelines import cli as top
    from qbo_pipelines.qbo import cli as qbo_cli

    first = connect_company(sandbox, store)
    second = connect_company(sandbox, store)
    tokens = store.load(first)
    assert tokens is not None
    monkeypatch.setattr(qbo_cli, "_warehouse", lambda: store.engine)
    monkeypatch.setenv(auth.ENV_TOKEN_KEY, KEY)
    monkeypatch.setenv(qbo_cli.ENV_CLIENT_ID, sandbox.client_id)
    monkeypatch.setenv(qbo_cli.ENV_CLIENT_SECRET, sandbox.client_secret)

    assert top.main(["companies"]) == 0
    listed = capsys.readouterr().out
    assert first in listed
    assert second in listed
    assert "connected" in listed
    assert tokens.access_token.reveal() not in listed
    assert tokens.refresh_token.reveal() not in listed

    assert top.main(["disconnect", first, "--base-url", sandbox.base_url]) == 0
    capsys.readouterr()
    assert top.main(["companies"]) == 0
    lines = {line.split()[0]: line for line in capsys.readouterr().out.splitlines()[1:]}
    assert "disconnected" in lines[first]
    assert " no " in lines[first]
    assert "connected" in lines[second]
    assert "disconnected" not in lines[second]
    revoked = [r for r in sandbox.control.requests() if r["endpoint"] == "revoke"]
    assert [r["status"] for r in revoked] == [200]


def test_R2_tokens_never_logged_or_in_errors(
    sandbox: Any, store: auth.TokenStore, caplog: pytest.LogCaptureFixture
) -> None:
    import logging

    caplog.set_level(logging.DEBUG)
    realm = connect_company(sandbox, store)
    client = QboClient(sandbox.base_url, realm, store)
    sandbox.control.advance_clock(3700)
    client.company_info()  # 401 -> refresh -> retry, all logged at DEBUG
    tokens = store.load(realm)
    assert tokens is not None
    store.oauth.revoke(tokens.refresh_token)
    with pytest.raises(NeedsReconnectError) as info:
        store.refresh(realm, force=True)
    text = caplog.text + str(info.value) + repr(info.value)
    for secret in (tokens.access_token.reveal(), tokens.refresh_token.reveal()):
        assert secret not in text
    assert "token" in caplog.text.lower()  # the flow was logged, just not the secrets
