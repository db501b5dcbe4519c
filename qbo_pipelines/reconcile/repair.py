"""Repairs, through the same engine paths a user's sync takes (nothing written around it).

* The warehouse (and so the source app) is behind QBO: the pull runs
  (:func:`qbo_pipelines.sync.pipeline.pull_all`: webhook ids and one CDC call, then the
  field-level write-back), or its full re-read when counts still differ after it.
* A source record QBO lacks or is behind on: the push of exactly those records
  (:func:`qbo_pipelines.sync.pipeline.push` with ``source_ids``), in dependency order; the
  engine's rules hold (three-way merge, conflict policy, quality checks, idempotent writes).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from qbo_pipelines import entities as catalogue
from qbo_pipelines.canonical import RealmId
from qbo_pipelines.sync import pipeline
from qbo_pipelines.sync.env import SyncEnv


@dataclass(frozen=True)
class Pulled:
    """What a re-pull did: QBO reads, records QBO changed or deleted since the last pull."""

    reads: int
    changed: int
    deleted: int
    full: bool


def refresh(env: SyncEnv, realm_id: RealmId, *, run_id: str, full: bool = False) -> Pulled:
    """Bring QBO's changes into the warehouse and the source app (the pull, as scheduled)."""
    out = pipeline.pull_all(env, realm_id, run_id=run_id, full=full)
    extract: pipeline.PullExtractReport = out["extract"]
    return Pulled(extract.reads, extract.changed, extract.deleted, extract.full)


def repush(
    env: SyncEnv, realm_id: RealmId, ids: Mapping[str, Sequence[str]], *, run_id: str
) -> int:
    """Push exactly ``ids`` (per catalogue entity), parents first; returns the API calls made."""
    calls = 0
    for entity in catalogue.push_order():
        wanted = sorted(set(ids.get(entity.name, ())))
        if wanted:
            report = pipeline.push(env, realm_id, entity.name, run_id=run_id, source_ids=wanted)
            calls += report.api_calls
    return calls


__all__ = ["Pulled", "refresh", "repush"]
