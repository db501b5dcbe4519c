"""``run_sandbox()``: start a sandbox in-process on a free 127.0.0.1 port (tests, notebooks)."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

from qbo_pipelines.sandbox import oauth
from qbo_pipelines.sandbox.control import SandboxControl
from qbo_pipelines.sandbox.runtime import Sandbox
from qbo_pipelines.sandbox.server import SandboxServer
from qbo_pipelines.sandbox.state import (
    DEFAULT_CLIENT_ID,
    DEFAULT_CLIENT_SECRET,
    DEFAULT_REDIRECT_URI,
)
from qbo_pipelines.sandbox.throttle import ThrottleSettings
from qbo_pipelines.sandbox.webhooks import DEFAULT_WINDOW_SECONDS


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
    control_token: str = ""
    data_dir: Path | None = None

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
def run_sandbox(*, throttle: bool | ThrottleSettings = True, seed: bool = True,
                access_token_ttl: int = 3600, state_file: str | None = None,
                data_dir: str | Path | None = None, journal: bool | None = None,
                webhook_window: float = DEFAULT_WINDOW_SECONDS) -> Iterator[SandboxHandle]:
    """Serve a fresh sandbox for the duration of the ``with`` block.

    QBO's limits (§8) are enforced unless ``throttle=False``. Without ``data_dir`` (or
    ``state_file``) the state lives in memory, with a throw-away data directory for control-API
    state files; with one, every committed write is journaled there. ``handle.control`` carries
    the control token.
    """
    with ExitStack() as stack:
        if data_dir is None and state_file is None:
            data_dir = stack.enter_context(tempfile.TemporaryDirectory(prefix="qbo-sandbox-"))
            journal = bool(journal)
        sandbox = Sandbox(seed_default=seed, throttle=throttle,
                          access_token_ttl=access_token_ttl, state_file=state_file,
                          data_dir=data_dir, journal=journal, webhook_window=webhook_window)
        server = SandboxServer(sandbox).start()
        control = SandboxControl(server.base_url, token=sandbox.control_token)
        try:
            yield SandboxHandle(server.base_url, sandbox.store.default_realm, DEFAULT_CLIENT_ID,
                                DEFAULT_CLIENT_SECRET, DEFAULT_REDIRECT_URI, control, sandbox,
                                sandbox.control_token, sandbox.data_dir)
        finally:
            control.close()
            server.stop()
