"""The sync engine: one direction-neutral core, plan -> intent -> write -> record.

Push (source -> QBO, :mod:`qbo_pipelines.sync.push`) and pull (QBO -> source,
:mod:`qbo_pipelines.sync.pull`) are planners over the same pieces.

- :mod:`.diff`: pure three-way, field-level comparison against the last synced base (R7, R34).
- :mod:`.records`: ``sync.record_state``, the engine's only decision input, and
  ``sync.dispatches``, the write calls whose outcome is still unknown.
- :mod:`.writes`: intents stored before every call, requestids per record write, verbatim
  replay after an unknown outcome, outcomes recorded with the ledger in one transaction (R33,
  R37).
- :mod:`.source_writes`: the pull's intents, stored before each write into the source app and
  settled by the next pull when a run stopped between the source's commit and the warehouse's
  (the write is recorded once, R37).
- :mod:`.lock`: one writer per company (a Postgres advisory lock).
- :mod:`.feed`: the commit-safe change feed of the source app.
- :mod:`.names`: names the way QBO sees them (one name space per company).
"""
