"""``qbo-pipelines reconcile`` (a queued ``reconcile_job`` run per company, like ``sync pull``)
and ``qbo-pipelines report`` (the self-contained HTML reconciliation report)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from qbo_pipelines import cli_args

DEFAULT_REPORT = "reconciliation-report.html"


def register(subparsers: Any) -> None:
    from qbo_pipelines.sync.cli import run_arguments

    rec = subparsers.add_parser(
        "reconcile",
        help="compare source app, QBO and warehouse now; repair what is safe (a queued run)",
    )
    run_arguments(rec)
    rec.set_defaults(func=_reconcile)
    report = subparsers.add_parser(
        "report", help="write the reconciliation report (one HTML file with its charts)"
    )
    report.add_argument("--realm", help="one company (default: every company reconciled)")
    report.add_argument(
        "--out", default=DEFAULT_REPORT, help=f"the HTML file to write (default: {DEFAULT_REPORT})"
    )
    report.add_argument(
        "--history",
        type=cli_args.whole(1, 10_000),
        default=60,
        help="runs per company in the drift chart (60)",
    )
    report.set_defaults(func=_report)


def _user_error(message: str) -> Exception:
    from qbo_pipelines.cli import UserError

    return UserError(message)


def _summaries(engine: sa.Engine, run_id: str) -> list[str]:
    from qbo_pipelines.reconcile import store

    return [str(r["summary"]) for r in store.runs(engine) if r["run_id"] == run_id]


def _reconcile(args: argparse.Namespace) -> int:
    from qbo_pipelines.demo.setup import demo_sandbox_served
    from qbo_pipelines.qbo.app import QboApp
    from qbo_pipelines.sync.cli import run_warehouse, syncable_companies

    engine = run_warehouse()
    try:
        realms, left_out = syncable_companies(engine, args.realm)
        if not realms:
            if not left_out:
                print("no connected QBO company: run `qbo-pipelines connect` first")
            return 2
        QboApp.resolve(engine)  # a clear error now rather than a failed run later
        from qbo_pipelines.defs import runner  # Dagster only from here on
        from qbo_pipelines.defs.reconcile import JOB

        failed = left_out
        with demo_sandbox_served(engine) as served:
            if served:
                print(f"serving the demo's QBO sandbox at {served} for this command")
            outcomes = [  # every company queued first, then each awaited
                runner.submit(
                    JOB,
                    realm,
                    tags={"qbo_pipelines/trigger": "cli", "qbo_pipelines/direction": "reconcile"},
                    wait=False,
                    warehouse=engine,
                    announce=print,
                )
                for realm in realms
            ]
            for outcome in outcomes:
                if args.wait or served:
                    outcome = runner.finish(outcome)
                realm = outcome.realm_id
                print(f"{realm}: run {outcome.run_id} {outcome.status}")
                said = _summaries(engine, outcome.run_id)
                for line in said:
                    print(f"  {line}")
                if outcome.failure and not any(line in outcome.failure for line in said):
                    print(f"  why: {outcome.failure}")
                failed += 0 if outcome.success or not outcome.finished else 1
        if failed == 0:
            print("report: qbo-pipelines report  (then open reconciliation-report.html)")
        return 1 if failed else 0
    finally:
        engine.dispose()


def _report(args: argparse.Namespace) -> int:
    from qbo_pipelines import companies
    from qbo_pipelines.reconcile import report
    from qbo_pipelines.warehouse import db

    out = Path(args.out)
    if out.is_dir():
        raise _user_error(
            f"--out {out} is a directory; give a file name, e.g. {out / DEFAULT_REPORT}"
        )
    if not out.parent.exists():
        raise _user_error(f"--out {out}: folder {out.parent} does not exist")
    stack = db.bootstrap()
    engine = db.make_engine(stack.warehouse_url)
    try:
        if args.realm is not None:
            companies.require_connected(engine, args.realm)
        text = report.render(engine, args.realm, history=args.history)
    finally:
        engine.dispose()
    try:
        out.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise _user_error(f"cannot write {out}: {exc.strerror}") from None
    print(f"wrote {out} ({len(text) // 1024 + 1} KiB)")
    return 0
