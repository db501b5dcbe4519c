"""``dbt build | test | docs generate`` of the marts, in this process (``dbtRunner``).

Each command runs under the warehouse's build lock with the profile generated for it, and
returns a :class:`DbtOutcome`: one line per model and test, and the failures with dbt's own
message, so a red test is never a traceback.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy.engine import URL

from qbo_pipelines.marts.project import (
    DOCS_DIR,
    PROJECT_DIR,
    MartsError,
    Profile,
    build_lock,
    ensure_manifest,
)


@dataclass(frozen=True)
class NodeResult:
    """One model or test dbt ran."""

    name: str
    kind: str  # model, test, ...
    status: str  # success, pass, fail, error, warn, skipped
    message: str = ""
    failures: int = 0


@dataclass
class DbtOutcome:
    """What a dbt command did."""

    command: str
    success: bool
    results: list[NodeResult] = field(default_factory=list)
    error: str | None = None
    target_path: Path | None = None

    def count(self, kind: str, *statuses: str) -> int:
        return sum(1 for r in self.results if r.kind == kind and r.status in statuses)

    @property
    def failed(self) -> list[NodeResult]:
        return [r for r in self.results if r.status in ("fail", "error")]

    def summary(self) -> str:
        if self.error:
            return f"dbt {self.command}: {self.error}"
        if self.command == "docs":
            return "dbt docs: generated" if self.success else "dbt docs: FAILED"
        models = self.count("model", "success")
        tests = self.count("test", "pass")
        total_tests = self.count("test", "pass", "fail", "error", "warn")
        warned = self.count("test", "warn")
        text = f"dbt {self.command}: {models} models built, {tests} of {total_tests} tests passed"
        if warned:
            text += f", {warned} warned"
        if self.failed:
            text += "; failed: " + ", ".join(r.name for r in self.failed)
        return text


def _dbt_env() -> None:
    os.environ.setdefault("DBT_SEND_ANONYMOUS_USAGE_STATS", "false")
    os.environ.setdefault("DO_NOT_TRACK", "1")


def invoke(args: Sequence[str], profile: Profile) -> DbtOutcome:
    """Run one dbt command against ``profile``'s warehouse (no lock; see :func:`run`)."""
    _dbt_env()
    from dbt.cli.main import dbtRunner  # dbt is imported only when dbt runs

    full = [
        *args,
        "--project-dir",
        str(PROJECT_DIR),
        "--profiles-dir",
        str(profile.profiles_dir),
        "--log-path",
        str(profile.target_path / "logs"),
        "--quiet",
    ]
    result = dbtRunner().invoke(full)
    outcome = DbtOutcome(command=args[0], success=bool(result.success))
    if result.exception is not None:
        outcome.error = f"{type(result.exception).__name__}: {result.exception}".splitlines()[0]
        outcome.success = False
    for node in getattr(result.result, "results", None) or []:
        outcome.results.append(_node_result(node))
    return outcome


def _node_result(node: Any) -> NodeResult:
    props = getattr(node, "node", None)
    return NodeResult(
        name=str(getattr(props, "name", "?")),
        kind=str(getattr(getattr(props, "resource_type", None), "value", "?")),
        status=str(getattr(getattr(node, "status", None), "value", node.status)),
        message=str(getattr(node, "message", "") or ""),
        failures=int(getattr(node, "failures", 0) or 0),
    )


def run(
    command: str,
    url: str | URL,
    *,
    select: Sequence[str] = (),
    extra: Sequence[str] = (),
) -> DbtOutcome:
    """``dbt <command>`` (build, run, test, docs) against the warehouse at ``url``, under its
    build lock. ``select``: dbt selectors (``open_problems``, ``+profit_and_loss``)."""
    known = {"build": ["build"], "run": ["run"], "test": ["test"], "docs": ["docs", "generate"]}
    if command not in known:
        raise MartsError(f"unknown dbt command {command!r}; one of {', '.join(known)}")
    ensure_manifest()
    with build_lock(url) as profile:
        target = DOCS_DIR if command == "docs" else profile.target_path
        args = [*known[command], "--target-path", str(target)]
        if select:
            args += ["--select", *select]
        outcome = invoke([*args, *extra], profile)
        outcome.command = command
        outcome.target_path = target
        return outcome
