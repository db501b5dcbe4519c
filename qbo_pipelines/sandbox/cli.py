"""``qbo-pipelines sandbox``: serve the local QBO sandbox on 127.0.0.1."""

from __future__ import annotations

import argparse
from typing import Any

from qbo_pipelines.sandbox import oauth
from qbo_pipelines.sandbox.runtime import Sandbox
from qbo_pipelines.sandbox.server import serve_forever
from qbo_pipelines.sandbox.state import DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("sandbox", help="serve a local QuickBooks Online sandbox")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--state-file", default=None,
                        help="load state from this JSON file if present; save to it on exit")
    parser.add_argument("--no-seed", action="store_true",
                        help="start with an empty default company")
    parser.add_argument("--throttle", action=argparse.BooleanOptionalAction, default=True,
                        help="enforce QBO's per-company limits (default: on)")
    parser.add_argument("--token-ttl", type=int, default=3600,
                        help="access-token lifetime in seconds (QBO: 3600)")
    parser.set_defaults(func=_serve)


def banner(sandbox: Sandbox, base_url: str, token: str) -> str:
    realm = sandbox.store.default_realm
    api = f"{base_url}/v3/company/{realm}"
    return "\n".join([
        f"QBO sandbox at {base_url}",
        f"  realm id (seeded company): {realm}",
        f"  client id:     {DEFAULT_CLIENT_ID}",
        f"  client secret: {DEFAULT_CLIENT_SECRET}",
        f"  discovery:     {base_url}{oauth.DISCOVERY_PATH}",
        f"  control API:   {base_url}/_sandbox/info",
        "",
        "Dev-only bearer token for the seeded company (expires like a real one; mint another",
        f"with: curl -s -X POST {base_url}/_sandbox/tokens -d '{{\"realm_id\":\"{realm}\"}}'):",
        f"  export QBO_TOKEN={token}",
        "",
        "Try:",
        "  curl -s -H \"Authorization: Bearer $QBO_TOKEN\" -H 'Accept: application/json' \\",
        f"    '{api}/query?query=select%20*%20from%20Customer&minorversion=75'",
        "  curl -s -H \"Authorization: Bearer $QBO_TOKEN\" -H 'Accept: application/json' \\",
        "    -H 'Content-Type: application/json' -d '{\"DisplayName\":\"Jane Doe\"}' \\",
        f'    "{api}/customer?minorversion=75&requestid=$(uuidgen)"',
    ])


def _serve(args: argparse.Namespace) -> int:
    sandbox = Sandbox(seed_default=not args.no_seed, throttle=args.throttle,
                      access_token_ttl=args.token_ttl, state_file=args.state_file)
    base_url = f"http://{args.host}:{args.port}"
    token = sandbox.mint_tokens(sandbox.store.default_realm)["access_token"]
    print(banner(sandbox, base_url, str(token)), flush=True)
    serve_forever(sandbox, args.host, args.port)
    return 0
