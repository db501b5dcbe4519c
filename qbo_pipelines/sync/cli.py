"""``qbo-pipelines sync ...``: run by hand, pause / resume, switch automatic sync (R30).

``sync push`` submits a run of ``push_job`` per company through the Dagster instance's run queue
(:func:`qbo_pipelines.defs.runner.submit`) and waits for it; with no dagster-daemon running it
launches the queued run itself once the company is free. Every subcommand refuses a company
that is not connected (:func:`qbo_pipelines.companies.require_connected`) before writing
anything.

Adding a direction (``sync pull``) is one ``register`` block and one handler calling
:func:`_run_job` with its job name and run config.
"""

from __future__ import annotations

import argparse
import os
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from qbo_pipelines import companies, settings


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("sync", help="run, pause or resume the sync")
    sub = parser.add_subparsers(dest="sync_command", required=True)
    push = sub.add_parser("push", help="push source changes to QBO now (a queued Dagster run)")
    run_arguments(push)
    push.add_argument(
        "--full",
        action="store_true",
        help="re-plan every record (unchanged ones still make no API call)",
    )
    push.add_argument(
        "--delete-missing",
        action="store_true",
        help="with --full: delete in QBO the records gone from the source app without a delete "
        "in its change log, however many (else more than a few at once are held as missing)",
    )
    push.set_defaults(func=_push)
    pull = sub.add_parser(
        "pull", help="pull QBO changes into the warehouse and the source app now (a queued run)"
    )
    run_arguments(pull)
    pull.add_argument("--full", action="store_true", help="re-read every QBO entity instead of CDC")
    pull.set_defaults(func=_pull)
    backfill = sub.add_parser(
        "backfill",
        help="re-extract from QBO and re-push to QBO the transactions of any range of days "
        "(a queued run of backfill_range_job; R39)",
    )
    run_arguments(backfill)
    backfill.add_argument("--from", dest="first_day", required=True, help="first day, YYYY-MM-DD")
    backfill.add_argument(
        "--to", dest="last_day", required=True, help="last day, YYYY-MM-DD (included)"
    )
    backfill.add_argument(
        "--qbo",
        nargs="*",
        action="extend",
        metavar="ENTITY",
        help="QBO entities re-extracted by TxnDate, e.g. Invoice Payment (default: every dated "
        "one; none: --qbo with no name; repeated: all those named)",
    )
    backfill.add_argument(
        "--source",
        nargs="*",
        action="extend",
        metavar="ENTITY",
        help="source entities re-pushed by their date: invoices, payments, bills (default: all; "
        "none: --source with no name; repeated: all those named)",
    )
    backfill.set_defaults(func=_backfill)
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


def run_arguments(parser: argparse.ArgumentParser) -> None:
    """``--realm`` and ``--no-wait`` of a command that submits a queued run per company."""
    parser.add_argument("--realm", help="one company (default: every connected company)")
    parser.add_argument(
        "--no-wait", dest="wait", action="store_false", help="return once the run is queued"
    )


def run_warehouse() -> sa.Engine:
    """The migrated warehouse; Dagster's variables set for the runs this process starts."""
    from qbo_pipelines.warehouse import db

    stack = db.bootstrap()
    os.environ.setdefault("DAGSTER_HOME", str(settings.DAGSTER_HOME))
    os.environ.setdefault("QBO_PIPELINES_DAGSTER_PG_URL", stack.dagster_url)
    return db.make_engine(stack.warehouse_url)


def chosen_companies(engine: sa.Engine, realm: str | None) -> list[str]:
    """The company given (refused when not connected), else every connected one."""
    return [c.realm_id for c in _chosen(engine, realm)]


def syncable_companies(engine: sa.Engine, realm: str | None) -> tuple[list[str], int]:
    """The companies a run can sync, and how many were left out: a company that needs
    reconnecting given by ``--realm`` is a one-line error; among every company it is named,
    with the fix, and left out (the others run)."""
    chosen = _chosen(engine, realm)
    left_out = [c for c in chosen if c.status != "connected"]
    for c in left_out:
        said = f"company {c.label} needs reconnecting" + (
            f" ({c.status_reason})" if c.status_reason else ""
        )
        fix = "run `qbo-pipelines connect` and consent to it again"
        if realm is not None:
            from qbo_pipelines.cli import UserError

            raise UserError(f"{said}: {fix}")
        print(f"{said}: left out; {fix}")
    return [c.realm_id for c in chosen if c.status == "connected"], len(left_out)


def _chosen(engine: sa.Engine, realm: str | None) -> list[companies.Company]:
    try:
        return companies.resolve(engine, realm)
    except companies.NotConnectedError as exc:
        from qbo_pipelines.cli import UserError

        raise UserError(str(exc)) from None


def _run_job(
    args: argparse.Namespace, job_name: str, direction: str, run_config: dict[str, Any]
) -> int:
    """Submit ``job_name`` for the chosen companies (all queued, then each awaited); print the
    counts."""
    from qbo_pipelines.demo.setup import demo_sandbox_served
    from qbo_pipelines.qbo.app import QboApp

    engine = run_warehouse()
    try:
        realms, left_out = syncable_companies(engine, args.realm)
        QboApp.resolve(engine)  # a clear error now rather than a failed run later
        if not realms:
            if not left_out:
                print("no connected QBO company: run `qbo-pipelines connect` first")
            return 2
        from qbo_pipelines.defs import runner  # Dagster only from here on

        failed = 0
        began = datetime.now(UTC)
        with demo_sandbox_served(engine) as served:
            if served:
                print(f"serving the demo's QBO sandbox at {served} for this command")
            # Every company is queued first (their runs go at once, one per company, under the
            # instance's limits), then each is waited for; a sandbox served here must outlive
            # the runs.
            outcomes = [
                runner.submit(
                    job_name,
                    realm,
                    run_config=run_config,
                    tags={"qbo_pipelines/trigger": "cli", "qbo_pipelines/direction": direction},
                    wait=False,
                    warehouse=engine,
                    announce=print,
                )
                for realm in realms
            ]
            for outcome in outcomes:
                if args.wait or served:
                    outcome = runner.finish(outcome)
                _print_outcome(outcome)
                failed += 0 if outcome.success or not outcome.finished else 1
            failed += left_out
            if served:  # other commands' runs queued meanwhile use it too: they end first
                runner.await_company_runs(
                    realms, since=began, exclude=[o.run_id for o in outcomes], say=print
                )
        return 1 if failed else 0
    finally:
        engine.dispose()


_NOT_COUNTS = frozenset({"source_cursor", "cursor"})


def _print_outcome(outcome: Any) -> None:
    print(f"{outcome.realm_id}: run {outcome.run_id} {outcome.status}")
    if outcome.failure:
        print(f"  why: {outcome.failure}")
    for key, counts in outcome.counts.items():
        if key.startswith(("pushed/", "pulled/")):
            shown = ", ".join(f"{k} {v}" for k, v in counts.items() if v and k not in _NOT_COUNTS)
            print(f"  {key}: {shown or 'nothing to do'}")


def _push(args: argparse.Namespace) -> int:
    from qbo_pipelines.defs import runner

    if args.delete_missing and not args.full:
        from qbo_pipelines.cli import UserError

        raise UserError("--delete-missing goes with --full (a full read finds what is missing)")
    config = runner.push_run_config(
        "full" if args.full else "incremental", delete_missing=args.delete_missing
    )
    return _run_job(args, "push_job", "push", config)


def _pull(args: argparse.Namespace) -> int:
    return _run_job(args, "pull_job", "pull", {"ops": {"raw_qbo": {"config": {"full": args.full}}}})


def _backfill(args: argparse.Namespace) -> int:
    from qbo_pipelines.cli import UserError
    from qbo_pipelines.sync import backfill

    qbo = list(backfill.QBO_TRANSACTIONS) if args.qbo is None else args.qbo
    source = list(backfill.SOURCE_TRANSACTIONS) if args.source is None else args.source
    try:
        window = backfill.range_window(args.first_day, args.last_day, qbo, source)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    config = {
        "first_day": window.lo.isoformat(),
        "last_day": window.last.isoformat(),
        "qbo_entities": qbo,
        "source_entities": source,
    }
    run_config = {"ops": {"backfill_range": {"config": config}}}
    return _run_job(args, "backfill_range_job", "both", run_config)


def _set(realm: str, setting: str, value: str) -> None:
    from qbo_pipelines.mapping import repository

    engine = run_warehouse()
    try:
        chosen_companies(engine, realm)
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
