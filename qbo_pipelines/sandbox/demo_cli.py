"""``qbo-pipelines demo simulate --sandbox-url URL``: the QBO side of the demo changes too.

``demo simulate`` (``qbo_pipelines.source_app.cli``) keeps the demo source app changing; with
``--sandbox-url`` a bookkeeper (``qbo_pipelines.sandbox.bookkeeper``) works in the running
sandbox's company at the same rate for the same duration, and ``--sandbox-only`` leaves the
source app alone (no Postgres needed). The control token comes from ``--control-token``,
``QBO_SANDBOX_CONTROL_TOKEN`` or ``--data-dir``/control-token.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

Handler = Any


def _subparser(parser: argparse.ArgumentParser, name: str) -> argparse.ArgumentParser | None:
    for action in parser._actions:  # argparse keeps sub-commands in a _SubParsersAction
        if isinstance(action, argparse._SubParsersAction):
            found = action.choices.get(name)
            return found if isinstance(found, argparse.ArgumentParser) else None
    return None


def extend(subparsers: Any) -> None:
    """Add the sandbox options to ``demo simulate`` (registered by the source app's CLI)."""
    demo = subparsers.choices.get("demo")
    simulate = _subparser(demo, "simulate") if demo is not None else None
    if simulate is None:
        return
    simulate.add_argument("--sandbox-url", default=None,
                          help="also run the QBO bookkeeper in this running sandbox")
    simulate.add_argument("--realm", default=None, help="sandbox company (default: its first)")
    simulate.add_argument("--control-token", default=None, help="the sandbox's control token")
    simulate.add_argument("--data-dir", default=None,
                          help="the sandbox's data directory (to read its control token)")
    simulate.add_argument("--sandbox-only", action="store_true",
                          help="only the sandbox bookkeeper, not the source app")
    source_side = simulate.get_default("func")

    def run(args: argparse.Namespace) -> int:
        if not args.sandbox_url:
            return int(source_side(args))
        return _with_sandbox(args, source_side)

    simulate.set_defaults(func=run)


def _with_sandbox(args: argparse.Namespace, source_side: Handler) -> int:
    from qbo_pipelines.sandbox.control import SandboxControl

    control = SandboxControl(args.sandbox_url, token=args.control_token,
                             data_dir=args.data_dir)
    try:
        realm = args.realm or str(control.info()["realm_id"])
        steps = max(1, round(args.rate * args.duration))
        control.bookkeeper_start(realm, rate_per_minute=args.rate * 60, seed=args.seed,
                                 max_steps=steps)
        code = 0
        try:
            if args.sandbox_only:
                # max_steps ends the bookkeeper; the grace covers the last interval.
                deadline = time.monotonic() + args.duration + 2.0
                while time.monotonic() < deadline and \
                        control.bookkeeper_status(realm)["steps"] < steps:
                    time.sleep(min(0.5, max(deadline - time.monotonic(), 0)))
            else:
                code = int(source_side(args))
        finally:
            done = control.bookkeeper_stop(realm)
        print(f"sandbox bookkeeper: {done} chores in company {realm} at {args.sandbox_url}")
        return code
    finally:
        control.close()
