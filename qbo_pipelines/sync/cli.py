"""``qbo-pipelines sync ...``: push by hand, pause / resume, switch automatic sync (R30)."""

from __future__ import annotations

import argparse
import os
from typing import Any

from qbo_pipelines import settings


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("sync", help="run, pause or resume the sync")
    sub = parser.add_subparsers(dest="sync_command", required=True)
    push = sub.add_parser("push", help="push source changes to QBO now (a Dagster run)")
    push.add_argument("--realm", help="one company (default: every connected company)")
    push.add_argument(
        "--full",
        action="store_true",
        help="re-plan every record (unchanged ones still make no API call)",
    )
    push.set_defaults(func=_push)
    for name, help_text in (
        ("pause", "pause the sync of a company"),
        ("resume", "resume a paused company"),
    ):
        p = sub.add_parser(name, help=help_text)
        p.add_argument("--realm", required=True)
        p.set_defaults(func=_switch, setting="paused", value="true" if name == "pause" else "false")
    auto = sub.add_parser("auto", help="switch automatic (sensor-started) sync on or off")
    auto.add_argument("state", choices=["on", "off"])
    auto.add_argument("--realm", required=True)
    auto.set_defaults(func=_auto)


def _env() -> Any:
    from qbo_pipelines.warehouse import db

    stack = db.bootstrap()
    os.environ.setdefault("DAGSTER_HOME", str(settings.DAGSTER_HOME))
    os.environ["QBO_PIPELINES_DAGSTER_PG_URL"] = stack.dagster_url
    return stack


def _push(args: argparse.Namespace) -> int:
    from qbo_pipelines.sync.env import QboApp
    from qbo_pipelines.sync.settings import connected_realms
    from qbo_pipelines.warehouse import db

    QboApp.from_env()  # a clear error now rather than a failed run later
    stack = _env()
    engine = db.make_engine(stack.warehouse_url)
    try:
        realms = [args.realm] if args.realm else connected_realms(engine)
    finally:
        engine.dispose()
    if not realms:
        print("no connected QBO company: run `qbo-pipelines connect` first")
        return 2
    from qbo_pipelines.defs.runner import push_company  # Dagster only from here on

    failed = 0
    for realm in realms:
        result = push_company(realm, mode="full" if args.full else "incremental")
        print(f"{realm}: run {result['run_id']} {'ok' if result['success'] else 'FAILED'}")
        for key, counts in result["counts"].items():
            if key.startswith("pushed/"):
                shown = ", ".join(f"{k} {v}" for k, v in counts.items() if v)
                print(f"  {key}: {shown or 'nothing to do'}")
        failed += 0 if result["success"] else 1
    return 1 if failed else 0


def _set(realm: str, setting: str, value: str) -> None:
    from qbo_pipelines.mapping import repository
    from qbo_pipelines.warehouse import db

    stack = _env()
    engine = db.make_engine(stack.warehouse_url)
    try:
        repository.set_setting(engine, realm, setting, value, by="cli")
    finally:
        engine.dispose()


def _switch(args: argparse.Namespace) -> int:
    _set(args.realm, args.setting, args.value)
    print(f"{args.realm}: {'paused' if args.value == 'true' else 'resumed'}")
    return 0


def _auto(args: argparse.Namespace) -> int:
    _set(args.realm, "sync-enabled", "true" if args.state == "on" else "false")
    print(f"{args.realm}: automatic sync {args.state}")
    return 0
