"""``run_sandbox()``: start a sandbox in-process on a free 127.0.0.1 port (tests, notebooks)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from qbo_pipelines.sandbox import oauth
from qbo_pipelines.sandbox.control import SandboxControl
from qbo_pipelines.sandbox.runtime import Sandbox
from qbo_pipelines.sandbox.server import SandboxServer
from qbo_pipelines.sandbox.state import (
    DEFAULT_CLIENT_ID,
    DEFAULT_CLIENT_SECRET,
    DEFAULT_REDIRECT_URI,
)


@dataclass
class SandboxHandle:
    """What a test needs to talk to a running sandbox."""

    base_url: str
    realm_id: str
    client_id: str
    client_secret: str
    redirect_uri: str
    control: SandboxControl
    sandbox: Sandbox

    @property
    def api_base(self) -> str:
        """``base_url + "/v3"``: what python-quickbooks calls ``api_url``."""
        return f"{self.base_url}/v3"

    @property
    def authorize_url(self) -> str:
        return self.base_url + oauth.AUTHORIZE_PATH

    @property
    def token_url(self) -> str:
        return self.base_url + oauth.TOKEN_PATH

    @property
    def revoke_url(self) -> str:
        return self.base_url + oauth.REVOKE_PATH

    @property
    def discovery_url(self) -> str:
        return self.base_url + oauth.DISCOVERY_PATH

    def company_url(self, realm_id: str | None = None) -> str:
        return f"{self.base_url}/v3/company/{realm_id or self.realm_id}"


@contextmanager
def run_sandbox(*, throttle: bool = False, seed: bool = True, access_token_ttl: int = 3600,
                state_file: str | None = None) -> Iterator[SandboxHandle]:
    """Serve a fresh sandbox for the duration of the ``with`` block."""
    sandbox = Sandbox(seed_default=seed, throttle=throttle, access_token_ttl=access_token_ttl,
                      state_file=state_file)
    server = SandboxServer(sandbox).start()
    control = SandboxControl(server.base_url)
    try:
        yield SandboxHandle(server.base_url, sandbox.store.default_realm, DEFAULT_CLIENT_ID,
                            DEFAULT_CLIENT_SECRET, DEFAULT_REDIRECT_URI, control, sandbox)
    finally:
        control.close()
        server.stop()
