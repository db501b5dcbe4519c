"""``qbo-pipelines``: the command-line entry point.

Each area contributes its own subcommands through a ``register(subparsers)`` function in its
``cli`` module (``qbo_pipelines/<area>/cli.py``); this file only wires them together and owns the
``db`` and ``dev`` commands. Errors the user can act on are printed as one line, never a traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Sequence
from typing import NoReturn

from qbo_pipelines import cli_args, settings

# Areas that add subcommands; a module that does not exist yet is skipped.
AREA_CLIS = (
    "qbo_pipelines.sandbox.cli",
    "qbo_pipelines.qbo.cli",
    "qbo_pipelines.source_app.cli",
    "qbo_pipelines.mapping.cli",
    "qbo_pipelines.sync.cli",
    "qbo_pipelines.webhooks.cli",
    "qbo_pipelines.notify.cli",
    "qbo_pipelines.reconcile.cli",
    "qbo_pipelines.marts.cli",
)

Handler = Callable[[argparse.Namespace], int]


class UserError(Exception):
    """An error the user can act on: printed as one line, exit code 2."""


class _Parser(argparse.ArgumentParser):
    """Usage errors as one line (``error: <command>: <what>``), like every other error; the
    subcommands' parsers are of this class too."""

    def error(self, message: str) -> NoReturn:
        raise UserError(f"{self.prog}: {message} (see {self.prog} --help)")


def _db_up(args: argparse.Namespace) -> int:
    from qbo_pipelines.warehouse import db

    stack = db.bootstrap()
    where = f"embedded in {stack.pg.data_dir}" if stack.pg.embedded else "external server"
    print(f"postgres: {where}")
    print(f"warehouse: {_safe(stack.warehouse_url)}")
    print(f"source_app: {_safe(stack.source_app_url)}")
    print(f"dagster: {_safe(stack.dagster_url)}")
    print(f"migrations applied now: {', '.join(stack.applied) or 'none (up to date)'}")
    for note in stack.changed:
        print(f"warning: {note}")
    return 0


def _safe(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


def _db_stop(args: argparse.Namespace) -> int:
    from qbo_pipelines.warehouse import postgres

    if settings.external_pg_url():
        raise UserError(f"{settings.ENV_PG_URL} is set: the external server is not ours to stop")
    print("stopped" if postgres.stop_embedded() else "not running")
    return 0


def _db_url(args: argparse.Namespace) -> int:
    from qbo_pipelines.warehouse import postgres

    pg = postgres.ensure_databases()
    driver = "psycopg2" if args.database == "dagster" else "psycopg"
    url = postgres.database_url(args.database, driver=driver, pg=pg)
    if not args.sqlalchemy:
        # A libpq URL (psql, pg_dump, any driver): no "+driver" suffix.
        from sqlalchemy.engine import make_url

        url = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    print(url if args.show_password else _safe(url))
    return 0


def dagster_env() -> dict[str, str]:
    """Environment for Dagster processes: absolute DAGSTER_HOME and the storage URL."""
    from qbo_pipelines.warehouse import db

    stack = db.bootstrap()
    env = dict(os.environ)
    env["DAGSTER_HOME"] = str(settings.DAGSTER_HOME)
    env["QBO_PIPELINES_DAGSTER_PG_URL"] = stack.dagster_url
    return env


DEV_STOP_GRACE = 30.0
"""Seconds ``dev`` gives Dagster to stop its webserver, daemon and code servers before killing
what is left of them."""


def _dev(args: argparse.Namespace) -> int:
    from qbo_pipelines.demo.setup import demo_sandbox_served
    from qbo_pipelines.warehouse import db

    env = dagster_env()
    cmd = [
        sys.executable,
        "-m",
        "dagster",
        "dev",
        "-w",
        str(settings.PROJECT_ROOT / "workspace.yaml"),
        "-h",
        args.host,
        "-p",
        str(args.port),
    ]
    engine = db.warehouse_engine()
    try:
        # The demo's sandbox where the stored app (and the companies' tokens) expect it, its
        # URLs following it when that port is taken; never a second copy of its state.
        with demo_sandbox_served(engine) as served:
            if served:
                print(f"QBO sandbox (the demo's company): {served}")
                qbo = {k: v for k, v in os.environ.items() if k.startswith("QBO_PIPELINES_QBO_")}
                env.update(qbo)  # the sandbox's app, which serving it set here
            print(
                f"Dagster UI: http://{args.host}:{args.port}  (DAGSTER_HOME={env['DAGSTER_HOME']})"
            )
            return _run_until_stopped(cmd, env)
    finally:
        engine.dispose()


def _run_until_stopped(cmd: list[str], env: dict[str, str]) -> int:
    """Run ``cmd`` in a process group of its own until it ends or this process is told to
    stop (Ctrl-C, SIGTERM): then it is asked to stop, and after :data:`DEV_STOP_GRACE` seconds
    whatever is left of its group (webserver, daemon, code servers) is killed, so nothing
    outlives ``dev``."""

    def stop(signum: int, _frame: object) -> None:
        raise _Stopped(signum)

    # Handled here before the start, so Dagster starts with them at their defaults: started in
    # the background (`&`, nohup, a service), this process inherits SIGINT ignored, and Dagster,
    # which takes SIGTERM as SIGINT, would then ignore both and stop only when killed.
    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    proc = None
    try:
        proc = subprocess.Popen(cmd, env=env, cwd=settings.PROJECT_ROOT, start_new_session=True)
        code = proc.wait()
    except _Stopped as stopped:
        code = 128 + stopped.signum
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if proc is not None:
        _stop_group(proc)
    return code


class _Stopped(Exception):
    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def _stop_group(proc: subprocess.Popen[bytes]) -> None:
    """Ask ``proc`` (a group leader) to stop as Ctrl-C does, then kill what is left of its
    group."""
    if proc.poll() is None:
        _signal_group(proc.pid, signal.SIGINT)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=DEV_STOP_GRACE)
    _signal_group(proc.pid, signal.SIGKILL)  # the group outlives its leader
    proc.wait()


def _signal_group(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, sig)


def materialize(
    selection: str, env: dict[str, str] | None = None, partition: str | None = None
) -> int:
    """Materialize assets through the Dagster CLI on the project's Postgres-backed instance.

    ``partition``: a company (realm id) for the company-partitioned assets, ``<realm id>|<day>``
    for the backfills (by day and company, R39); refused unless the company is connected, and
    its Dagster partition added first.
    """
    env = env or dagster_env()
    realm = (partition or "").partition("|")[0]
    from qbo_pipelines import companies
    from qbo_pipelines.demo.setup import demo_sandbox_served
    from qbo_pipelines.warehouse import db

    engine = db.warehouse_engine()
    try:
        if partition is not None:  # an unknown company first: nothing else matters then
            companies.require_connected(engine, realm)
        os.environ.update({k: env[k] for k in ("DAGSTER_HOME", "QBO_PIPELINES_DAGSTER_PG_URL")})
        from qbo_pipelines.defs.runner import ensure_partition, selection_problem

        problem = selection_problem(selection, partition)
        if problem is not None:
            raise UserError(problem)
        extra = []
        if partition is not None:
            ensure_partition(realm, warehouse=engine)
            extra = ["--partition", partition]
        cmd = [
            sys.executable,
            "-m",
            "dagster",
            "asset",
            "materialize",
            "-m",
            "qbo_pipelines.defs.definitions",
            "--select",
            selection,
            *extra,
        ]
        # Dagster's note that this command has a successor the README does not use
        quiet = "ignore:Function `asset_materialize_command` is superseded"
        env = {**env, "PYTHONWARNINGS": ",".join(filter(None, [env.get("PYTHONWARNINGS"), quiet]))}
        # after `make demo`, its sandbox answers for the run (as for `sync push`)
        with demo_sandbox_served(engine) as served:
            if served:
                print(f"serving the demo's QBO sandbox at {served} for this command")
            return subprocess.call(cmd, env=env, cwd=settings.PROJECT_ROOT)
    finally:
        engine.dispose()


def _materialize(args: argparse.Namespace) -> int:
    return materialize(args.select, partition=args.partition)


def _db_env(args: argparse.Namespace) -> int:
    """``eval "$(qbo-pipelines db env)"``: what the plain ``dagster`` CLI needs."""
    import shlex

    env = dagster_env()
    for key in ("DAGSTER_HOME", "QBO_PIPELINES_DAGSTER_PG_URL"):
        print(f"export {key}={shlex.quote(env[key])}")
    return 0


def _demo_run(args: argparse.Namespace) -> int:
    """The main job: the demo app synced with the local QBO sandbox, end to end."""
    from qbo_pipelines.demo.run import DemoOptions, run

    return run(DemoOptions(contacts=args.contacts, sales=args.sales, workers=args.workers))


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="qbo-pipelines",
        description="Two-way sync between a source app and QuickBooks Online.",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    db_parser = sub.add_parser("db", help="the embedded or external Postgres")
    db_sub = db_parser.add_subparsers(dest="db_command", required=True)
    up = db_sub.add_parser("up", help="start or reuse Postgres, create databases, migrate")
    up.set_defaults(func=_db_up)
    stop = db_sub.add_parser("stop", help="stop the embedded Postgres")
    stop.set_defaults(func=_db_stop)
    url = db_sub.add_parser("url", help="print a database URL")
    url.add_argument(
        "database", nargs="?", default="warehouse", choices=["warehouse", "source_app", "dagster"]
    )
    url.add_argument("--show-password", action="store_true")
    url.add_argument(
        "--sqlalchemy", action="store_true", help="the SQLAlchemy URL (with its driver) instead"
    )
    url.set_defaults(func=_db_url)
    env_cmd = db_sub.add_parser("env", help="print the exports the plain `dagster` CLI needs")
    env_cmd.set_defaults(func=_db_env)

    dev = sub.add_parser("dev", help="Dagster webserver + daemon on 127.0.0.1")
    dev.add_argument("--host", default="127.0.0.1")
    dev.add_argument("--port", type=cli_args.PORT, default=3000)
    dev.set_defaults(func=_dev)

    mat = sub.add_parser("materialize", help="materialize assets on the Postgres-backed instance")
    mat.add_argument("--select", default="*", help="Dagster asset selection (default: all)")
    mat.add_argument(
        "--partition",
        help="a connected company's realm id (partitioned assets); for backfill/* assets "
        "'<realm id>|<YYYY-MM-DD>' (one day of one company)",
    )
    mat.set_defaults(func=_materialize)

    demo_run = sub.add_parser("demo-run", help="the main job: the whole demo, end to end")
    demo_run.add_argument("--contacts", type=cli_args.COUNT, default=200)
    demo_run.add_argument("--sales", type=cli_args.COUNT, default=500)
    demo_run.add_argument("--workers", type=cli_args.COUNT, default=20)
    demo_run.set_defaults(func=_demo_run)

    for module_name in AREA_CLIS:
        importlib.import_module(module_name).register(sub)
    # ``demo simulate --sandbox-url``: the sandbox's bookkeeper changes the QBO side too.
    importlib.import_module("qbo_pipelines.sandbox.demo_cli").extend(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from qbo_pipelines.companies import NotConnectedError
    from qbo_pipelines.sync.env import ConfigError
    from qbo_pipelines.warehouse.migrations import MigrationError
    from qbo_pipelines.warehouse.postgres import PostgresError

    try:
        args = build_parser().parse_args(argv)
        handler: Handler = args.func
        code = handler(args)
        sys.stdout.flush()  # a reader gone (``| head``) shows here, not at interpreter exit
        return code
    except (UserError, PostgresError, MigrationError, ConfigError, NotConnectedError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # the reader went away (``| head``): stop quietly, as Unix tools do
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141


if __name__ == "__main__":
    # Through the package module, so that ``UserError`` raised by the areas is this one.
    from qbo_pipelines.cli import main as package_main

    raise SystemExit(package_main())
