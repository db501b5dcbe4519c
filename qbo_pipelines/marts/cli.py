"""``qbo-pipelines marts build | test | docs``: the analysts' marts (dbt, schema ``marts``)."""

from __future__ import annotations

import argparse
import sys
from typing import Any


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "marts", help="the analysts' marts: dbt models and tests in schema marts"
    )
    sub = parser.add_subparsers(dest="marts_command", required=True)
    build = sub.add_parser("build", help="build every mart (views) and run the dbt tests")
    build.add_argument("--select", nargs="+", default=[], help="dbt selectors (default: all)")
    build.set_defaults(func=_build)
    test = sub.add_parser("test", help="run the dbt tests on the marts as they are")
    test.add_argument("--select", nargs="+", default=[], help="dbt selectors (default: all)")
    test.set_defaults(func=_test)
    docs = sub.add_parser(
        "docs", help="generate the dbt docs site (one self-contained HTML file) and print its path"
    )
    docs.set_defaults(func=_docs)


def _warehouse_url() -> str:
    from qbo_pipelines.warehouse import db

    return db.bootstrap().warehouse_url


def _report(outcome: Any) -> int:
    from qbo_pipelines.marts.run import DbtOutcome

    assert isinstance(outcome, DbtOutcome)
    print(outcome.summary())
    for failed in outcome.failed:
        message = " ".join(failed.message.split())[:300]
        print(f"  {failed.kind} {failed.name}: {failed.status}: {message}", file=sys.stderr)
    return 0 if outcome.success else 1


def _run(
    command: str, args: argparse.Namespace, extra: tuple[str, ...] = (), url: str | None = None
) -> int:
    from qbo_pipelines.cli import UserError
    from qbo_pipelines.marts import run
    from qbo_pipelines.marts.project import MartsError

    try:
        outcome = run.run(
            command, url or _warehouse_url(), select=getattr(args, "select", ()), extra=extra
        )
    except MartsError as exc:
        raise UserError(str(exc)) from None
    if outcome.error and not outcome.results:
        raise UserError(outcome.summary())
    selected = getattr(args, "select", ())
    if selected and not outcome.results and outcome.success:
        raise UserError(
            f"--select {' '.join(selected)} matches no model or test of the marts"
            " (names: `ls sql/marts/models/*/`; dbt's selector syntax works)"
        )
    return _report(outcome)


def _build(args: argparse.Namespace) -> int:
    return _run("build", args)


def _test(args: argparse.Namespace) -> int:
    import sqlalchemy as sa

    from qbo_pipelines.cli import UserError

    url = _warehouse_url()
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            tables = "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'marts'"
            built: int = conn.execute(sa.text(tables)).scalar_one()
    finally:
        engine.dispose()
    if not built:
        raise UserError("the marts are not built yet: run `qbo-pipelines marts build` first")
    return _run("test", args, url=url)


def _docs(args: argparse.Namespace) -> int:
    from qbo_pipelines.marts.project import DOCS_DIR

    code = _run("docs", args, extra=("--static",))
    if code == 0:
        print(f"open {DOCS_DIR / 'static_index.html'} in a browser")
    return code
