"""``qbo-pipelines sandbox``: the subcommand is registered and prints what a newcomer needs."""

from __future__ import annotations

import argparse

from qbo_pipelines.sandbox.cli import banner, register
from qbo_pipelines.sandbox.runtime import Sandbox
from qbo_pipelines.sandbox.state import DEFAULT_CLIENT_ID


def test_sandbox_subcommand_defaults_to_localhost() -> None:
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["sandbox", "--port", "9999", "--no-throttle"])
    assert args.host == "127.0.0.1"
    assert args.port == 9999
    assert args.throttle is False
    assert args.no_seed is False


def test_banner_has_realm_client_token_and_curl() -> None:
    sandbox = Sandbox()
    token = sandbox.mint_tokens(sandbox.store.default_realm)["access_token"]
    text = banner(sandbox, "http://127.0.0.1:8765", token)
    assert sandbox.store.default_realm in text
    assert DEFAULT_CLIENT_ID in text
    assert token in text
    assert "curl" in text
