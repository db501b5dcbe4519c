"""``qbo-pipelines sandbox``: serve the local QBO sandbox on 127.0.0.1."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from qbo_pipelines import cli_args
from qbo_pipelines.sandbox import oauth
from qbo_pipelines.sandbox.control import TOKEN_FILE, TOKEN_HEADER, write_token_file
from qbo_pipelines.sandbox.runtime import Sandbox
from qbo_pipelines.sandbox.server import serve_forever
from qbo_pipelines.sandbox.state import DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET
from qbo_pipelines.sandbox.webhooks import DEFAULT_WINDOW_SECONDS


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("sandbox", help="serve a local QuickBooks Online sandbox")
    parser.add_argument("--port", type=cli_args.PORT, default=8765, help="0 picks a free port")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--data-dir", default=None,
                        help="keep state here: every committed write is journaled (survives "
                             "kill -9) and control-API state files are confined to it")
    parser.add_argument("--state-file", default=None,
                        help="snapshot file (its directory becomes the data directory)")
    parser.add_argument("--journal", action=argparse.BooleanOptionalAction, default=None,
                        help="journal every committed write to the data directory (default: "
                             "on with --data-dir or --state-file); --no-journal keeps the state "
                             "in memory only, e.g. for benchmarks of large companies")
    parser.add_argument("--no-seed", action="store_true",
                        help="start with an empty default company")
    parser.add_argument("--throttle", action=argparse.BooleanOptionalAction, default=True,
                        help="enforce QBO's limits: 500/min per company, 10/s and 10 in flight "
                             "per company+app, 40 batch/min per company+app and 120 per "
                             "company, 40 emails/day (default: on)")
    parser.add_argument("--webhook-window", type=float, default=DEFAULT_WINDOW_SECONDS,
                        help="seconds over which a company's changes are aggregated into one "
                             "webhook notification (0: one per change)")
    parser.add_argument("--token-ttl", type=cli_args.whole(1, 10**7), default=3600,
                        help="access-token lifetime in seconds (QBO: 3600)")
    parser.set_defaults(func=_serve)


def banner(sandbox: Sandbox, base_url: str, token: str) -> str:
    realm = sandbox.store.default_realm
    api = f"{base_url}/v3/company/{realm}"
    control = sandbox.control_token
    return "\n".join([
        f"QBO sandbox at {base_url}",
        f"  realm id (seeded company): {realm}",
        f"  client id:     {DEFAULT_CLIENT_ID}",
        f"  client secret: {DEFAULT_CLIENT_SECRET}",
        f"  discovery:     {base_url}{oauth.DISCOVERY_PATH}",
        f"  control API:   {base_url}/_sandbox/info",
        f"  control token: {control}",
        f"  data dir:      {sandbox.data_dir or '(none: state is in memory only)'}",
        "",
        "Dev-only bearer token for the seeded company (expires like a real one; mint another",
        f"with: curl -s -X POST {base_url}/_sandbox/tokens -H '{TOKEN_HEADER}: {control}' \\",
        f"        -H 'Content-Type: application/json' -d '{{\"realm_id\":\"{realm}\"}}'):",
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
                      access_token_ttl=args.token_ttl, state_file=args.state_file,
                      data_dir=args.data_dir, journal=args.journal,
                      webhook_window=args.webhook_window)
    if sandbox.data_dir is not None:
        write_token_file(Path(sandbox.data_dir) / TOKEN_FILE, sandbox.control_token)

    def ready(base_url: str) -> None:
        token = sandbox.mint_tokens(sandbox.store.default_realm)["access_token"]
        print(banner(sandbox, base_url, str(token)), flush=True)

    serve_forever(sandbox, args.host, args.port, ready)
    return 0
