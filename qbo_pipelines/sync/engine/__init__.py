"""The sync engine: one direction-neutral core, plan -> intent -> write -> record.

Push (source -> QBO) is a planner over it today (:mod:`qbo_pipelines.sync.push`); the pull
writes into the source app through the same pieces.

- :mod:`.diff`: pure three-way, field-level comparison against the last synced base (R7, R34).
- :mod:`.records`: ``sync.record_state``, the engine's only decision input, and
  ``sync.dispatches``, the write calls whose outcome is still unknown.
- :mod:`.writes`: intents stored before every call, requestids per record write, verbatim
  replay after an unknown outcome, outcomes recorded with the ledger in one transaction (R33,
  R37).
- :mod:`.lock`: one writer per company (a Postgres advisory lock).
- :mod:`.feed`: the commit-safe change feed of the source app.
- :mod:`.names`: names the way QBO sees them (one name space per company).
"""
