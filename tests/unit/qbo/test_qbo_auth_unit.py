"""Pure parts of OAuth and the token store: secrets, keys, token sets (R2)."""

from __future__ import annotations

import pickle
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from qbo_pipelines.qbo import auth
from qbo_pipelines.qbo.errors import AuthError
from qbo_pipelines.qbo.secret import Secret


def test_R2_secret_never_shows_itself() -> None:
    s = Secret("AB11-refresh-token")
    for text in (str(s), repr(s), f"{s}", f"{s!r}", str([s]), str({"t": s})):
        assert "AB11" not in text
    assert s.reveal() == "AB11-refresh-token"
    assert s == Secret("AB11-refresh-token")
    assert s != Secret("other")
    assert pickle.loads(pickle.dumps(s)) == s  # noqa: S301 - our own bytes


def test_R2_token_set_repr_and_expiry() -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    tokens = auth.TokenSet.from_response(
        {
            "access_token": "eyJaccess",
            "refresh_token": "AB11refresh",
            "expires_in": 3600,
            "x_refresh_token_expires_in": 8726400,
        },
        now,
    )
    assert "eyJ" not in repr(tokens)
    assert "AB11" not in repr(tokens)
    assert tokens.access_expires_at == now + timedelta(hours=1)
    assert tokens.refresh_expires_at == now + timedelta(seconds=8726400)
    assert not tokens.expires_within(timedelta(minutes=5), now)
    assert tokens.expires_within(timedelta(minutes=5), now + timedelta(minutes=56))
    with pytest.raises(AuthError):
        auth.TokenSet.from_response({"access_token": "x"}, now)


def test_R2_key_from_environment_supports_rotation() -> None:
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    encrypted_with_old = auth.token_cipher(env={auth.ENV_TOKEN_KEY: old}).encrypt(b"t")
    rotated = auth.token_cipher(env={auth.ENV_TOKEN_KEY: f"{new},{old}"})
    assert rotated.decrypt(encrypted_with_old) == b"t"
    with pytest.raises(AuthError):
        auth.token_cipher(env={auth.ENV_TOKEN_KEY: "not-a-key"})


def test_R2_local_key_file_created_with_mode_0600(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("QBO_PIPELINES_DATA_DIR", str(tmp_path))
    with pytest.raises(AuthError, match=auth.ENV_TOKEN_KEY):
        auth.token_cipher(env={})
    cipher = auth.token_cipher(create=True, env={})
    path = tmp_path / "token.key"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    again = auth.token_cipher(env={})
    assert again.decrypt(cipher.encrypt(b"x")) == b"x"


def test_R1_sandbox_endpoints_from_base_url() -> None:
    config = auth.OAuthConfig.for_base_url("http://127.0.0.1:9/", "cid", "sec", "http://cb")
    assert config.authorize_url == "http://127.0.0.1:9/connect/oauth2"
    assert config.token_url == "http://127.0.0.1:9/oauth2/v1/tokens/bearer"
    assert config.revoke_url == "http://127.0.0.1:9/v2/oauth2/tokens/revoke"
    assert "sec" not in repr(config)


def test_new_state_is_random_and_url_safe() -> None:
    states = {auth.new_state() for _ in range(50)}
    assert len(states) == 50
    assert all(s.replace("-", "").replace("_", "").isalnum() for s in states)
