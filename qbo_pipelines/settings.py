"""Project paths and environment settings, read on demand (never at import time).

Environment variables (all optional):

* ``QBO_PIPELINES_PG_URL``: a PostgreSQL server URL (``postgresql://user:pass@host:5432/postgres``).
  When set, the embedded Postgres is not started; the three databases are created on that server.
* ``QBO_PIPELINES_DATA_DIR``: where runtime data lives (embedded Postgres data, sandbox state);
  default ``<project>/.data``.
* ``QBO_PIPELINES_DB_PREFIX``: prefix for the three database names (default none), so that several
  checkouts or test sessions can share one server.
"""

from __future__ import annotations

import os
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
SQL_DIR = PROJECT_ROOT / "sql"
DAGSTER_HOME = PROJECT_ROOT / "dagster_home"

ENV_PG_URL = "QBO_PIPELINES_PG_URL"
ENV_DATA_DIR = "QBO_PIPELINES_DATA_DIR"
ENV_DB_PREFIX = "QBO_PIPELINES_DB_PREFIX"


def data_dir() -> Path:
    """The git-ignored runtime data directory."""
    return Path(os.environ.get(ENV_DATA_DIR) or PROJECT_ROOT / ".data").resolve()


def external_pg_url() -> str | None:
    """The external Postgres URL, or None to use the embedded server."""
    value = os.environ.get(ENV_PG_URL, "").strip()
    return value or None


def db_prefix() -> str:
    """Optional prefix for database names."""
    return os.environ.get(ENV_DB_PREFIX, "").strip()
