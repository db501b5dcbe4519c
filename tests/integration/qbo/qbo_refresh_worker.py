"""A separate PROCESS that refreshes a company's token through the warehouse TokenStore.

Reads its configuration (including secrets) as JSON on stdin, waits until ``start_at`` so that
several workers start together, refreshes, uses the new access token once, and prints a JSON
summary (a hash of the token, never the token).
"""

from __future__ import annotations

import hashlib
import json
import sys
import time

import sqlalchemy as sa

from qbo_pipelines.qbo.auth import OAuthClient, OAuthConfig, TokenStore, token_cipher
from qbo_pipelines.qbo.client import QboClient
from qbo_pipelines.qbo.errors import QboError
from qbo_pipelines.qbo.ids import RealmId
from qbo_pipelines.qbo.secret import Secret


def main() -> int:
    cfg = json.loads(sys.stdin.read())
    engine = sa.create_engine(cfg["warehouse_url"])
    oauth = OAuthClient(
        OAuthConfig.for_base_url(
            cfg["base_url"], cfg["client_id"], cfg["client_secret"], cfg["redirect_uri"]
        )
    )
    store = TokenStore(engine, oauth, token_cipher(env={"QBO_PIPELINES_TOKEN_KEY": cfg["key"]}))
    realm = RealmId(cfg["realm"])
    stale = Secret(cfg["stale"]) if cfg.get("stale") else None
    delay = float(cfg["start_at"]) - time.time()
    if delay > 0:
        time.sleep(delay)
    try:
        tokens = store.refresh(realm, stale=stale, force=bool(cfg.get("force")))
        name = QboClient(cfg["base_url"], realm, store).company_info().get("CompanyName")
    except QboError as exc:
        print(json.dumps({"ok": False, "error": str(exc), "type": type(exc).__name__}))
        return 1
    digest = hashlib.sha256(tokens.access_token.reveal().encode()).hexdigest()[:16]
    print(json.dumps({"ok": True, "access_sha": digest, "company": name}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
