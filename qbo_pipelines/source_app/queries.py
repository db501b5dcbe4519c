"""The SQL the source-app connector runs, loaded from ``sql/source_app/queries/*.sql``.

A team adapting the connector to its own application edits (or points ``queries_dir`` at a copy
of) these files; the Python never embeds source-app SQL. Each file documents its parameters.
"""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from qbo_pipelines import settings

DEFAULT_QUERIES_DIR = settings.SQL_DIR / "source_app" / "queries"

# The ``:ids`` / ``:qbo_ids`` parameters take a list: written ``IN :ids`` it is rendered as
# IN (...) with one placeholder per value; written ``= ANY(:ids)`` it is sent as one array (no
# statement of thousands of placeholders to build and parse, the lines queries' choice).
_EXPANDING = ("ids", "qbo_ids")


class QueryNotFoundError(FileNotFoundError):
    """A query file is missing from the queries directory."""


@lru_cache(maxsize=256)
def _read(path: Path) -> str:
    return path.read_text(encoding="utf-8")


def load_text(name: str, queries_dir: Path = DEFAULT_QUERIES_DIR) -> str:
    """The raw SQL text of ``<queries_dir>/<name>.sql``.

    Raises:
        QueryNotFoundError: when the file does not exist.
    """
    path = queries_dir / f"{name}.sql"
    if not path.is_file():
        raise QueryNotFoundError(f"source-app query {name!r} not found at {path}")
    return _read(path)


def strip_comments(sql: str) -> str:
    """Drop whole-line ``--`` comments (so ``:name`` in prose is never taken for a parameter)."""
    return "\n".join(line for line in sql.splitlines() if not line.lstrip().startswith("--"))


def load(name: str, queries_dir: Path = DEFAULT_QUERIES_DIR) -> sa.TextClause:
    """A SQLAlchemy ``text()`` clause for a query file, list parameters marked expanding."""
    sql = strip_comments(load_text(name, queries_dir))
    clause = sa.text(sql)
    expanding: list[sa.BindParameter[Any]] = [
        sa.bindparam(p, expanding=True)
        for p in _EXPANDING
        if re.search(rf"\bIN\s+:{p}\b", sql, re.IGNORECASE)
    ]
    if expanding:
        clause = clause.bindparams(*expanding)
    return clause
