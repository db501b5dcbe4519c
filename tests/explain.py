"""Reading ``EXPLAIN (ANALYZE, FORMAT JSON)`` plans in tests (issue 9: pages that stay linear)."""

from __future__ import annotations

from typing import Any


def rows_scanned(plan: dict[str, Any], relation: str | None = None) -> int:
    """Rows the scan nodes of a plan produced over all their loops (subplans included): of
    every relation, or of ``relation`` only."""
    own = 0
    if "Scan" in plan["Node Type"] and relation in (None, plan.get("Relation Name")):
        own = int(plan["Actual Rows"] * plan["Actual Loops"])
    return own + sum(rows_scanned(child, relation) for child in plan.get("Plans", ()))
