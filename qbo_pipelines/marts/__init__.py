"""The analysts' marts: a dbt project (``sql/marts``) over the warehouse, built with dbt-core.

* :mod:`qbo_pipelines.marts.project`: where the project is, the profiles.yml generated for the
  configured warehouse (no secret on disk), the manifest Dagster loads, the build lock.
* :mod:`qbo_pipelines.marts.run`: ``dbt build|test|docs generate`` in-process
  (``dbt.cli.main.dbtRunner``).
* :mod:`qbo_pipelines.marts.tieout`: P&L, balance sheet and A/R aging compared, to the cent,
  with QBO's own reports (R43).
* :mod:`qbo_pipelines.marts.cli`: ``qbo-pipelines marts build|test|docs``.

No Dagster here: ``qbo_pipelines/defs/marts.py`` loads the project into Dagster.
"""
