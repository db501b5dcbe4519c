"""Benchmark: the push engine's non-API stages at 100k sales (read, hash, quality, transform,
plan), per stage and in all, and peak RSS.

Usage: ``.venv/bin/python bench/engine_plan.py [--sales 100000] [--contacts 20000]``.

Seeds the demo source app in a throw-away database and maps every tax rate and the default
income account in the push context (as after ``qbo-pipelines mappings``; the bench has no QBO
company) with every contact and item in the id map (the push creates them before the sales), so
sales plan as creates instead of being held for a missing mapping or reference. Then:

1. **stages**: per entity, the CPU time of each non-API stage over the same records, chunk by
   chunk as the push reads them: reading the source records with their lines (keyset pages),
   the content hash, the quality rules, the transform to the QBO body, and ``plan_record``
   (which runs the hash, the rules and the transform itself, then the three-way decision);
2. **initial**: every record read and planned as a create (an initial push, a ``--full`` after
   a mapping change), wall clock and CPU;
3. **full re-plan against the stored base**: every contact, item and sale given a synced
   ``sync.record_state`` row first (the steady state), each record read, hashed and compared;
4. **the row-hash pre-filter** (what a full re-plan does): Postgres hashes each record's read
   row, compared with the hash stored at the last sync;
5. **the push job's extract and stage** (``raw/source/*``, ``staged/qbo/*`` with their Great
   Expectations suites), on the first run (every record read into raw_source and staged) and
   with mode=full when nothing changed (only row hashes read); then ("load") the push's read
   of the staged snapshot, every staged record decoded as ``pushed/qbo/*`` plans from it.

The machine may be shared: CPU seconds of this process are printed beside wall seconds (the
CPU figure is what the stages cost; the wall figure also holds waiting on Postgres and on other
work). Prints figures only; never asserts on time.
"""

from __future__ import annotations

import argparse
import dataclasses
import resource
import time
import uuid
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from qbo_pipelines.canonical import QboId, RealmId, SourceId, content_hash
from qbo_pipelines.qbo.secret import Secret
from qbo_pipelines.quality.rules import check
from qbo_pipelines.source_app.connector import SourceAppConnector
from qbo_pipelines.source_app.demo import seed
from qbo_pipelines.sync import context as push_context
from qbo_pipelines.sync import pipeline, staged
from qbo_pipelines.sync.engine import records
from qbo_pipelines.sync.engine.records import RecordState
from qbo_pipelines.sync.env import QboApp, SyncEnv
from qbo_pipelines.sync.push import CHUNK, plan_record
from qbo_pipelines.sync.specs import SPECS
from qbo_pipelines.transforms.to_qbo import PushContext
from qbo_pipelines.warehouse import migrations, postgres

REALM = RealmId("9130000000000001")
ENTITIES = ("customers", "items", "invoices")


def _rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class _Clock:
    """Wall and CPU seconds since creation."""

    def __init__(self) -> None:
        self.wall = time.perf_counter()
        self.cpu = time.process_time()

    def lap(self) -> tuple[float, float]:
        return time.perf_counter() - self.wall, time.process_time() - self.cpu

    def line(self, label: str, count: int, extra: str = "") -> None:
        """One figure line: records, wall and CPU seconds and the rates they give."""
        wall, cpu = self.lap()
        print(
            f"{label:10} {count:>8,} records in {wall:6.2f}s ({_rate(count, wall)}), "
            f"CPU {cpu:6.2f}s ({_rate(count, cpu)}){extra}"
        )


def _rate(n: int, seconds: float) -> str:
    return f"{n / seconds:>9,.0f}/s" if seconds > 0 else "        -/s"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sales", type=int, default=100_000)
    parser.add_argument("--contacts", type=int, default=20_000)
    parser.add_argument("--chunk", type=int, default=2000)
    args = parser.parse_args()
    pg = postgres.server()
    tag = uuid.uuid4().hex[:8]
    names = (f"bench{tag}_src", f"bench{tag}_wh")
    for n in names:
        postgres.create_database(pg, n)
    source = sa.create_engine(pg.url(names[0]))
    warehouse = sa.create_engine(pg.url(names[1]))
    try:
        migrations.migrate_source_app(source)
        migrations.migrate_warehouse(warehouse)
        seed(source, contacts=args.contacts, sales=args.sales, seed_value=7)
        reader = SourceAppConnector(source)
        print(f"{args.sales:,} sales, {args.contacts:,} contacts; chunks of {args.chunk:,}")
        ctx = _mapped(push_context.load(warehouse, reader, REALM), reader)
        print("stages (CPU microseconds per record; plan_record runs hash, rules and transform)")
        _stages(reader, ctx, args.chunk)
        print("initial (every record read, hashed, checked, built and planned as a create)")
        _plan_all(warehouse, reader, ctx, args.chunk, initial=True)
        env = SyncEnv(warehouse, source, QboApp("bench", Secret("-"), _NO_QBO, _NO_QBO))
        print("the push job's extract and stage, first run (every record read and staged)")
        _job_steps(env, "first")
        _synced(warehouse, reader, ctx)
        ctx = _mapped(push_context.load(warehouse, reader, REALM), reader)
        print("full re-plan against the stored base (nothing changed)")
        _plan_all(warehouse, reader, ctx, args.chunk, initial=False)
        print("steady state through the row-hash pre-filter (what a full re-plan does)")
        _row_hashes(warehouse, reader)
        print("the push job's extract and stage with mode=full, nothing changed")
        _job_steps(env, "full")
        print(f"peak RSS   {_rss_mib():,.0f} MiB")
    finally:
        source.dispose()
        warehouse.dispose()
        for n in names:
            postgres.drop_database(pg, n)


def _mapped(ctx: PushContext, reader: SourceAppConnector) -> PushContext:
    """Every tax rate mapped and a default income account, as a configured company has, and
    every contact and item in the id map, as when the push reaches the sales (it pushes
    customers and items first)."""
    ids = {
        entity: {
            SourceId(key): QboId(key) for page in reader.iter_row_hashes(entity) for key, _ in page
        }
        for entity in ("customers", "items")
    }
    return dataclasses.replace(
        ctx,
        qbo_ids={**ctx.qbo_ids, **ids},
        tax_codes={rate: f"TAX{rate}" for rate in ctx.tax_rate_names},
        default_income_account="79",
    )


def _stages(reader: SourceAppConnector, ctx: PushContext, chunk_size: int) -> None:
    now = datetime.now(UTC)
    for entity in ENTITIES:
        spec = SPECS[entity]
        stages: dict[str, Callable[[Any], object]] = {
            "hash": content_hash,
            "quality": check,
            "transform": lambda r, spec=spec: spec.create(r, ctx),  # type: ignore[misc]
            "plan_record": lambda r, spec=spec: plan_record(spec, r, None, ctx, now),  # type: ignore[misc]
        }
        cpu = dict.fromkeys(["read", *stages], 0.0)
        count = 0
        pages = reader.iter_entity(entity, None, chunk_size)
        while True:
            started = time.process_time()
            chunk = next(pages, None)
            cpu["read"] += time.process_time() - started
            if chunk is None:
                break
            count += len(chunk)
            for name, stage in stages.items():
                started = time.process_time()
                for r in chunk:
                    stage(r)
                cpu[name] += time.process_time() - started
        per = "  ".join(f"{k} {v / count * 1e6:5.1f}" for k, v in cpu.items())
        total = cpu["read"] + cpu["plan_record"]
        print(f"{entity:10} {count:>8,}  {per}  -> read + plan_record {_rate(count, total)}")


def _synced(warehouse: sa.Engine, reader: SourceAppConnector, ctx: PushContext) -> None:
    """Every contact, item and sale synced once, mapped to itself (the steady state)."""
    for entity in ENTITIES:
        spec = SPECS[entity]
        for chunk in reader.iter_entity(entity, None, 5000):
            rows = [
                RecordState(
                    REALM,
                    entity,
                    SourceId(r.source_id),
                    spec.qbo_entity_of(r),
                    QboId(r.source_id),
                    source_hash=r.content_hash(),
                    source_base=getattr(spec.fields(r, ctx), "body", None),
                    status="synced",
                )
                for r in chunk
            ]
            with warehouse.begin() as conn:
                records.save(conn, rows, "bench")


def _plan_all(
    warehouse: sa.Engine,
    reader: SourceAppConnector,
    ctx: PushContext,
    chunk_size: int,
    *,
    initial: bool,
) -> None:
    total = 0
    clock_all = _Clock()
    for entity in ENTITIES:
        spec = SPECS[entity]
        actions: Counter[str] = Counter()
        clock = _Clock()
        read = 0
        now = datetime.now(UTC)
        for chunk in reader.iter_entity(entity, None, chunk_size):
            read += len(chunk)
            states = (
                {}
                if initial
                else records.load(warehouse, REALM, entity, [r.source_id for r in chunk])
            )
            for r in chunk:
                actions[
                    plan_record(spec, r, states.get(SourceId(r.source_id)), ctx, now).action
                ] += 1
        clock.line(entity, read, f"  plans: {dict(actions)}")
        total += read
    clock_all.line("all", total)


_NO_QBO = "http://127.0.0.1:9"  # the extract and the stage make no QBO call


def _job_steps(env: SyncEnv, run_id: str) -> None:
    """``raw/source/<entity>`` then ``staged/qbo/<entity>`` as the push job runs them (mode
    full): records read into raw_source, left out as in step, staged and checked by the
    entity's Great Expectations suite (its first run in the process loads GX)."""
    clock_all = _Clock()
    total = 0
    for entity in ENTITIES:
        clock = _Clock()
        extract = pipeline.extract(env, REALM, entity, run_id=run_id, mode="full")
        seen = extract.read + extract.unchanged
        clock.line(
            f"{entity[:5]} read", seen, f"  read {extract.read:,}, unchanged {extract.unchanged:,}"
        )
        clock = _Clock()
        stage = pipeline.stage(env, entity, run_id=run_id, realm_id=REALM)
        clock.line(f"{entity[:5]} stage", seen, f"  staged {stage.staged:,}")
        clock = _Clock()
        snapshot = staged.find(env.warehouse, REALM, entity, [run_id])
        decoded = sum(
            len(page.records) for page in staged.iter_staged(env.warehouse, snapshot, CHUNK)
        )
        clock.line(f"{entity[:5]} load", seen, f"  decoded {decoded:,} (the push's plan input)")
        total += seen
    clock_all.line("all", total)


def _row_hashes(warehouse: sa.Engine, reader: SourceAppConnector) -> None:
    for entity in ENTITIES:
        rows: list[tuple[SourceId, str]] = []
        for page in reader.iter_row_hashes(entity):
            rows += page
        records.set_row_hashes(warehouse, REALM, entity, dict(rows))
    clock_all = _Clock()
    total = 0
    for entity in ENTITIES:
        clock = _Clock()
        seen = moved = 0
        for page in reader.iter_row_hashes(entity):
            hashes = dict(page)
            steady = records.in_step(warehouse, REALM, entity, hashes)
            seen += len(hashes)
            moved += len(hashes) - len(steady)
        clock.line(entity, seen, f"  to re-plan: {moved}")
        total += seen
    clock_all.line("all", total)


if __name__ == "__main__":
    main()
