"""``qbo-pipelines demo seed|simulate``: fill the demo source app and keep it changing."""

from __future__ import annotations

import argparse
from typing import Any

import sqlalchemy as sa

from qbo_pipelines import cli_args


def _engine() -> sa.Engine:
    from qbo_pipelines.warehouse import db

    stack = db.bootstrap()  # starts/reuses Postgres and migrates the source app's schema
    return db.make_engine(stack.source_app_url)


def _seed(args: argparse.Namespace) -> int:
    from qbo_pipelines.source_app import demo

    engine = _engine()
    try:
        report = demo.seed(engine, contacts=args.contacts, sales=args.sales,
                           workers=args.workers, seed_value=args.seed, reset_first=args.reset)
    finally:
        engine.dispose()
    print(f"seeded the demo app: {report.rows:,} rows in {report.seconds:.2f}s"
          f" ({report.rows / max(report.seconds, 1e-9):,.0f} rows/s)")
    for table, count in report.counts.items():
        print(f"  {table:22s} {count:>10,}")
    print(f"note: tax rate {demo.UNMAPPED_TAX_RATE!r} is left unmapped on purpose (R12)")
    return 0


def _simulate(args: argparse.Namespace) -> int:
    from qbo_pipelines.source_app import demo

    engine = _engine()
    try:
        report = demo.simulate(engine, rate=args.rate, duration=args.duration,
                               seed_value=args.seed,
                               on_action=(lambda name: print(name, flush=True))
                               if args.verbose else None)
    finally:
        engine.dispose()
    done = ", ".join(f"{k}={v}" for k, v in sorted(report.actions.items())) or "nothing"
    print(f"simulated {sum(report.actions.values())} changes in {report.seconds:.1f}s: {done}")
    return 0


def register(subparsers: Any) -> None:
    """Add ``demo seed`` and ``demo simulate`` to the ``qbo-pipelines`` parser."""
    demo_parser = subparsers.add_parser("demo", help="the demo source app (seed, simulate)")
    sub = demo_parser.add_subparsers(dest="demo_command", required=True)

    seed = sub.add_parser("seed", help="bulk-generate a deterministic demo business")
    seed.add_argument("--contacts", type=cli_args.COUNT, default=200)
    seed.add_argument("--sales", type=cli_args.COUNT, default=500)
    seed.add_argument("--workers", type=cli_args.COUNT, default=None,
                      help="default: contacts // 20 (at least 3)")
    seed.add_argument("--seed", type=int, default=7, help="RNG seed (same seed, same data)")
    seed.add_argument("--reset", action="store_true",
                      help="empty the demo tables and change log first")
    seed.set_defaults(func=_seed)

    sim = sub.add_parser("simulate", help="keep creating, editing and deleting records")
    sim.add_argument(
        "--rate", type=cli_args.positive(10_000), default=1.0, help="changes per second"
    )
    sim.add_argument("--duration", type=cli_args.positive(7 * 86400), default=60.0, help="seconds")
    sim.add_argument("--seed", type=int, default=11)
    sim.add_argument("--verbose", action="store_true", help="print each change")
    sim.set_defaults(func=_simulate)
