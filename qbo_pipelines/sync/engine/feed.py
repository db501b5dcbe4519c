"""The commit-safe change feed of the source app, per company and entity.

The position is a transaction-id horizon, not a sequence number: a window covers change-log
rows whose transaction id lies in ``[previous horizon, new horizon)``, and a new horizon is the
oldest transaction still running when it is taken. A slow transaction that took a lower
sequence number and commits after a later one is therefore read by the window after it ends,
never skipped; no row is read by two windows.
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa

from qbo_pipelines.canonical import SourceId
from qbo_pipelines.source_app.connector import SourceAppConnector
from qbo_pipelines.sync import state


def cursor_name(direction: str, entity: str) -> str:
    return f"{direction}:{entity}:feed"


@dataclass(frozen=True)
class Window:
    """What changed in the source for one entity since the stored position.

    ``first`` is True when no position was stored (every record must be looked at).
    """

    lo: int | None
    hi: int
    changed: frozenset[SourceId]
    deleted: frozenset[SourceId]

    @property
    def first(self) -> bool:
        return self.lo is None


def open_window(
    engine: sa.Engine, reader: SourceAppConnector, realm_id: str, direction: str, entity: str
) -> Window:
    """The changes waiting for ``entity`` (read-only: the position moves with :func:`advance`)."""
    hi = reader.feed_horizon()
    stored = state.get_cursor(engine, realm_id, cursor_name(direction, entity))
    lo = int(stored) if stored is not None and stored.isdigit() else None
    if lo is None or lo > hi:
        return Window(None, hi, frozenset(), frozenset())
    changes = reader.feed_changes(entity, lo, hi)
    return Window(lo, hi, changes.changed, changes.deleted)


def replan_name(entity: str) -> str:
    """``sync.cursors`` name of the marker a mapping change leaves for the entities it reaches
    (``sql/warehouse/130_mapping_replan.sql`` writes it)."""
    return f"push:{entity}:replan"


def replan_requested(engine: sa.Engine, realm_id: str, entity: str) -> str | None:
    """The marker's value when a mapping the entity's records use changed since its last
    full re-plan: the next push reads and plans every record, whatever the hashes say."""
    return state.get_cursor(engine, realm_id, replan_name(entity))


def replan_done(engine: sa.Engine, realm_id: str, entity: str, marker: str) -> None:
    """Clear the marker a run re-planned every record for; a marker set again meanwhile (a
    later change, planned with a context older than it) stays, for the next run."""
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "DELETE FROM sync.cursors WHERE realm_id = :r AND name = :n AND value = :v"
            ),
            {"r": realm_id, "n": replan_name(entity), "v": marker},
        )


def advance(engine: sa.Engine, realm_id: str, direction: str, entity: str, window: Window) -> bool:
    """Store the window's end as the new position (after everything in it was handled).

    The position never moves back from a later window: a run whose window ends below the
    stored position (another run went further meanwhile) leaves it. A window opened with no
    position (a first read, or a source whose horizon restarted below it) sets it. Returns
    whether the position was set."""
    name = cursor_name(direction, entity)
    if window.lo is not None:
        stored = state.get_cursor(engine, realm_id, name)
        if stored is not None and stored.isdigit() and int(stored) > window.hi:
            return False
    state.set_cursor(engine, realm_id, name, str(window.hi))
    return True
