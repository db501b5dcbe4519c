"""CDC windowing as pure logic against an in-memory model of QBO's /cdc rules (R29, R36)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import pytest

from qbo_pipelines.qbo import cdc
from qbo_pipelines.qbo.client import QboClient

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


@dataclass
class Rec:
    entity: str
    id: str
    t: datetime
    deleted: bool = False

    def obj(self) -> dict[str, Any]:
        meta = {"LastUpdatedTime": self.t.isoformat()}
        if self.deleted:
            return {"Id": self.id, "status": "Deleted", "domain": "QBO", "MetaData": meta}
        return {"Id": self.id, "SyncToken": "0", "MetaData": meta}


@dataclass
class FakeQbo:
    """QBO's CDC rules: 30-day lookback, live oldest-first then deletes, 1000 objects in total."""

    recs: list[Rec]
    now: datetime = NOW
    calls: dict[str, int] = field(default_factory=dict)

    def _count(self, kind: str) -> None:
        self.calls[kind] = self.calls.get(kind, 0) + 1

    def server_time(self) -> datetime:
        self._count("GET")
        return self.now

    def cdc_call(self, entities: Sequence[str], changed_since: datetime) -> dict[str, Any]:
        self._count("GET")
        if changed_since < self.now - timedelta(days=30):
            raise AssertionError("changedSince older than 30 days")
        remaining = 1000
        blocks: list[dict[str, Any]] = []
        for e in entities:
            live = sorted(
                (r for r in self.recs if r.entity == e and not r.deleted and r.t >= changed_since),
                key=lambda r: (r.t, r.id),
            )
            gone = sorted(
                (r for r in self.recs if r.entity == e and r.deleted and r.t >= changed_since),
                key=lambda r: (r.t, r.id),
            )
            objs = [r.obj() for r in [*live, *gone]][: max(remaining, 0)]
            remaining -= len(objs)
            blocks.append({e: objs} if objs else {})
        return {"CDCResponse": [{"QueryResponse": blocks}]}

    def changed_since(
        self, entity: str, since: datetime, until: datetime | None = None
    ) -> Iterator[dict[str, Any]]:
        rows = sorted(
            (
                r
                for r in self.recs
                if r.entity == entity
                and not r.deleted
                and r.t >= since
                and (until is None or r.t < until)
            ),
            key=lambda r: r.t,
        )
        for i in range(0, max(len(rows), 1), 1000):
            self._count("GET")
            yield from (r.obj() for r in rows[i : i + 1000])


def run(
    fake: FakeQbo, entities: list[str], since: datetime, until: datetime | None = None
) -> cdc.CdcResult:
    return cdc.read_changes(cast(QboClient, fake), entities, since, until)


def test_plan_windows_cover_range_without_gaps() -> None:
    since = NOW - timedelta(days=75)
    windows = cdc.plan_windows(since, NOW)
    assert [e - s for s, e in windows] == [
        timedelta(days=30),
        timedelta(days=30),
        timedelta(days=15),
    ]
    assert windows[0][0] == since
    assert windows[-1][1] == NOW
    assert all(a[1] == b[0] for a, b in zip(windows, windows[1:], strict=False))
    assert cdc.plan_windows(NOW, NOW) == []
    with pytest.raises(ValueError):
        cdc.plan_windows(datetime(2026, 1, 1), NOW)


def test_split_at_horizon() -> None:
    old, recent = cdc.split_at_horizon(NOW - timedelta(days=45), NOW, NOW)
    horizon = NOW - timedelta(days=30) + cdc.CDC_SAFETY_MARGIN
    assert old[-1][1] == horizon
    assert recent[0][0] == horizon
    assert recent[-1][1] == NOW
    old, recent = cdc.split_at_horizon(NOW - timedelta(days=2), NOW, NOW)
    assert old == []
    assert recent == [(NOW - timedelta(days=2), NOW)]


def test_R36_45_day_gap_over_cap_every_change_once() -> None:
    recs: list[Rec] = []
    start = NOW - timedelta(days=45)
    for i in range(2400):  # one change every ~27 minutes over 45 days
        recs.append(
            Rec("Customer" if i % 2 else "Invoice", str(i), start + timedelta(minutes=27 * i))
        )
    for j in range(50):  # recent deletes
        recs.append(Rec("Invoice", f"d{j}", NOW - timedelta(days=3, minutes=j), deleted=True))
    fake = FakeQbo(recs)
    result = run(fake, ["Customer", "Invoice"], start)
    keys = [(c.entity, c.id) for c in result.changes]
    assert len(keys) == len(set(keys)) == len(recs)
    assert sum(c.deleted for c in result.changes) == 50
    assert result.checkpoint == NOW
    assert result.deletes_complete_since <= NOW - timedelta(days=3, minutes=60)


def test_R36_capped_single_entity_with_deletes_resplits() -> None:
    base = NOW - timedelta(days=10)
    recs = [Rec("Invoice", str(i), base + timedelta(minutes=i)) for i in range(900)]
    recs += [
        Rec("Invoice", f"d{i}", base + timedelta(minutes=i, seconds=30), deleted=True)
        for i in range(300)
    ]
    result = run(FakeQbo(recs), ["Invoice"], base)
    assert len(result.changes) == 1200
    assert result.deletes_complete_since == base


def test_live_objects_filling_the_cap_move_delete_horizon() -> None:
    base = NOW - timedelta(days=10)
    recs = [Rec("Invoice", str(i), base + timedelta(minutes=i)) for i in range(1500)]
    recs.append(Rec("Invoice", "gone", base + timedelta(minutes=5, seconds=1), deleted=True))
    result = run(FakeQbo(recs), ["Invoice"], base)
    ids = {c.id for c in result.changes}
    assert {str(i) for i in range(1500)} <= ids
    assert result.deletes_complete_since > base  # the early delete was hidden by the cap


def test_until_is_exclusive_and_becomes_checkpoint() -> None:
    base = NOW - timedelta(days=1)
    recs = [Rec("Customer", str(i), base + timedelta(hours=i)) for i in range(10)]
    until = base + timedelta(hours=5)
    result = run(FakeQbo(recs), ["Customer"], base, until)
    assert [c.id for c in result.changes] == ["0", "1", "2", "3", "4"]
    assert result.checkpoint == until
    nxt = run(FakeQbo(recs), ["Customer"], result.checkpoint)
    assert [c.id for c in nxt.changes] == ["5", "6", "7", "8", "9"]


def test_unsupported_entities_rejected() -> None:
    with pytest.raises(ValueError):
        run(FakeQbo([]), ["TaxCode"], NOW - timedelta(days=1))


def test_newest_state_wins_and_delete_beats_same_instant() -> None:
    collector = cdc._Collector()
    t = NOW.isoformat()
    collector.add("Invoice", {"Id": "1", "MetaData": {"LastUpdatedTime": t}})
    collector.add("Invoice", {"Id": "1", "status": "Deleted", "MetaData": {"LastUpdatedTime": t}})
    assert next(iter(collector.changes.values())).deleted
