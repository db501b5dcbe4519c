"""Great Expectations 1.x suites over the Postgres staging tables (R40).

Nothing here imports Dagster; the staged asset's check turns the plain :class:`SuiteOutcome`
into an ``AssetCheckResult`` (:meth:`SuiteOutcome.metadata`, :meth:`SuiteOutcome.rows_table`,
:meth:`SuiteOutcome.markdown`).

* **Suites come from the constraint table** (:mod:`qbo_pipelines.quality.constraints`): every
  constraint becomes an expectation whose ``meta.rule`` is the per-record rule id that holds
  records back, so the suite and the quarantine agree by construction (limits written once).
  :func:`suite_specs` gives them as data; :data:`SUITES` holds them per entity.
* **They run in Postgres**, on ``staging.<entity>`` (its typed columns): a SQL data source on the
  warehouse, one table asset per entity, a batch definition partitioned on
  ``(realm_id, run_id)`` (the batch is what one company's run staged), the suites registered in
  an ephemeral context, a validation definition and a ``Checkpoint`` per entity whose
  ``UpdateDataDocsAction`` writes Data Docs to :func:`docs_dir`.
* **Failing rows, not a blob**: each failing (record, rule) comes back as a :class:`FailingRow`
  with the value, and the per-record rules' reason and fix when the caller passes them.
* **GX is imported once per process, and only when a batch has rows** (~3 s, ~250 MiB): the
  context, data source, assets, suites and checkpoints are built on first use and cached
  (thread-safe); an empty batch is green without importing GX at all.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import sqlalchemy as sa

from qbo_pipelines import settings
from qbo_pipelines.quality import constraints
from qbo_pipelines.quality.constraints import Column, Constraint

ENTITIES: Final = constraints.ENTITIES
"""Entities with a constraint table, a staged table with typed columns and a suite."""

DOCS_VALIDATIONS: Final = 60
"""How many validation results a process keeps, and Data Docs list (the latest first): ten
runs of every suite. Older ones leave the in-memory store and their pages the site, so a
long-lived process neither grows nor renders an index slower with every run."""

MAX_ROWS: Final = 200
"""How many failing rows an outcome keeps (the count is always complete)."""

ENV_DOCS_DIR: Final = "QBO_PIPELINES_GX_DOCS_DIR"
"""Where Data Docs are written (default ``<data dir>/gx_docs``)."""

ENV_DATA_DOCS: Final = "QBO_PIPELINES_GX_DATA_DOCS"
"""Set to 0 to validate without building Data Docs (each build costs about a second per
entity per run); the checks, their failing rows and the quarantine are the same."""

_NOT_BLANK: Final = r"\S"
_FORBIDDEN: Final = r"[:\t\n\r]"
_CONTROL: Final = r"[\u0001-\u0008\u000b\u000c\u000e-\u001f\u007f-\u009f]"


def docs_enabled() -> bool:
    """Whether checkpoints build Data Docs (:data:`ENV_DATA_DOCS`; on unless set to 0/off)."""
    return os.environ.get(ENV_DATA_DOCS, "1").strip().lower() not in {"0", "off", "false", "no"}


def docs_dir() -> Path:
    """The folder Data Docs are built in (``index.html`` at its top)."""
    configured = os.environ.get(ENV_DOCS_DIR)
    return Path(configured).resolve() if configured else settings.data_dir() / "gx_docs"


# --------------------------------------------------------------------------------------------
# Suites as data, from the constraint table
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ExpectationSpec:
    """One expectation as data: the rule it stands for, the GX class name and its arguments."""

    rule: str
    expectation: str
    kwargs: Mapping[str, Any]
    column: str | None = None


def _rows_where(col: str, condition: str) -> dict[str, Any]:
    """An ``UnexpectedRowsExpectation``'s query: the batch's rows where ``condition`` (SQL)
    holds. GX fills ``{batch}`` with ``str.format``, so the condition's own braces (regex
    counts, character classes) are doubled."""
    escaped = condition.replace("{", "{{").replace("}", "}}")
    return {
        "unexpected_rows_query": (
            f"SELECT source_id, {col}::text AS value FROM {{batch}} WHERE {escaped}"
        )
    }


def _number(value: Any) -> float | int | None:
    if value is None:
        return None
    return int(value) if value == int(value) else float(value)


def _specs(col: Column, c: Constraint) -> list[ExpectationSpec]:
    name = col.name

    def spec(expectation: str, **kwargs: Any) -> ExpectationSpec:
        return ExpectationSpec(c.rule, expectation, kwargs, name)

    check = c.check
    if check == "required":
        out = [spec("ExpectColumnValuesToNotBeNull", column=name)]
        if col.sql_type == "text":
            out.append(spec("ExpectColumnValuesToMatchRegex", column=name, regex=_NOT_BLANK))
        return out
    if check == "not_blank":
        return [spec("ExpectColumnValuesToMatchRegex", column=name, regex=_NOT_BLANK)]
    if check == "max_length":
        # UTF-16 units never exceed UTF-8 bytes: the byte count (free) settles almost every
        # row, the UTF-16 count (a regex) runs only on values longer than the limit in bytes.
        over = f"octet_length({name}) > {c.limit} AND staging.qbo_length({name}) > {c.limit}"
        return [spec("UnexpectedRowsExpectation", **_rows_where(name, over))]
    if check == "forbidden":
        return [spec("ExpectColumnValuesToNotMatchRegex", column=name, regex=_FORBIDDEN)]
    if check == "control":
        return [spec("ExpectColumnValuesToNotMatchRegex", column=name, regex=_CONTROL)]
    if check == "email":
        # EMAIL_PATTERN's shape as a regex Postgres runs fast, its lengths in SQL: together
        # the values the rules refuse (test_R40_the_suites_email_check_is_the_rules).
        return [
            spec("ExpectColumnValuesToMatchRegex", column=name, regex=constraints.EMAIL_SHAPE),
            spec(
                "UnexpectedRowsExpectation",
                **_rows_where(name, constraints.email_lengths_sql(name)),
            ),
        ]
    if check in ("money", "rate"):
        places = 2 if check == "money" else constraints.MAX_DECIMALS
        return [
            spec(
                "UnexpectedRowsExpectation",
                **_rows_where(
                    name,
                    f"NOT ({name} = round({name}, {places}) AND abs({name}) < "
                    f"{constraints.MONEY_MAX:f})",
                ),
            )
        ]
    if check == "date_range":
        return [
            spec(
                "UnexpectedRowsExpectation",
                **_rows_where(
                    name,
                    f"{name} NOT BETWEEN DATE '{constraints.EARLIEST_DATE.isoformat()}' "
                    f"AND DATE '{constraints.LATEST_DATE.isoformat()}'",
                ),
            )
        ]
    if check == "range":
        kwargs: dict[str, Any] = {"column": name}
        if c.minimum is not None:
            kwargs["min_value"] = _number(c.minimum)
            kwargs["strict_min"] = c.strict_min
        if c.maximum is not None:
            kwargs["max_value"] = _number(c.maximum)
        return [spec("ExpectColumnValuesToBeBetween", **kwargs)]
    raise ValueError(f"{c.rule}: no expectation for check {check!r}")


def suite_specs(entity: str) -> tuple[ExpectationSpec, ...]:
    """The expectations of an entity's suite, one or two per constraint of its table.

    Constraints checked only when a record is created (the billing contact, R6) are left out:
    the staged batch does not say which records QBO already holds.

    Raises:
        KeyError: for an entity without a constraint table.
    """
    table = constraints.TABLES[entity]
    return tuple(s for col, c in table.constraints if not col.create_only for s in _specs(col, c))


SUITES: Final[Mapping[str, tuple[ExpectationSpec, ...]]] = {e: suite_specs(e) for e in ENTITIES}
"""Each entity's expectations, as data."""


# --------------------------------------------------------------------------------------------
# Outcomes (plain: the Dagster layer wraps them)
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FailingRow:
    """One staged record that broke one expectation.

    Attributes:
        rule: the per-record rule id (``customer.email.format``).
        column: the staged column.
        source_id: the record's id in the source app.
        value: the offending value, shortened (None for a missing value).
        reason: the per-record rule's reason, when the caller gave the violations.
        fix: what to do about it, likewise.
    """

    rule: str
    column: str | None
    source_id: str
    value: str | None
    reason: str | None = None
    fix: str | None = None

    def as_dict(self) -> dict[str, str | None]:
        """JSON-ready (the keys are the table's columns)."""
        return {
            "source_id": self.source_id,
            "rule": self.rule,
            "column": self.column,
            "value": self.value,
            "reason": self.reason,
            "fix": self.fix,
        }


@dataclass(frozen=True, slots=True)
class FailedExpectation:
    """One expectation that failed on a staged batch."""

    rule: str
    name: str
    column: str | None
    unexpected_count: int | None
    error: str | None = None


@dataclass(frozen=True, slots=True)
class SuiteOutcome:
    """The outcome of one entity's suite over one company's staged batch.

    Attributes:
        entity: catalogue entity name.
        success: True when every expectation held (an empty batch is a success).
        evaluated: how many expectations ran.
        failed: the ones that did not hold.
        rows: the failing (record, rule) pairs, at most :data:`MAX_ROWS`, ordered.
        row_count: how many failing (record, rule) pairs there were in all.
        batch_rows: how many staged rows the batch had.
        docs_url: the Data Docs page of this validation (``file://...``), if built.
    """

    entity: str
    success: bool
    evaluated: int
    failed: list[FailedExpectation]
    rows: list[FailingRow] = field(default_factory=list)
    row_count: int = 0
    batch_rows: int = 0
    docs_url: str | None = None

    @property
    def docs_index(self) -> str:
        """Path of the Data Docs index (every validation of this process, with its suite)."""
        return str(docs_dir() / "index.html")

    def rows_table(self) -> list[dict[str, str | None]]:
        """The failing rows as plain dicts (for a table in the UI)."""
        return [r.as_dict() for r in self.rows]

    def markdown(self) -> str:
        """A short summary and the failing rows as a Markdown table."""
        if self.success:
            return (
                f"**{self.entity}**: {self.evaluated} expectations held on "
                f"{self.batch_rows} staged rows."
            )
        head = (
            f"**{self.entity}**: {len(self.failed)} of {self.evaluated} expectations failed; "
            f"{self.row_count} (record, rule) pairs on {self.batch_rows} staged rows"
            + (f", first {len(self.rows)} shown" if self.row_count > len(self.rows) else "")
            + ".\n\n"
        )
        lines = ["| source_id | rule | value | reason | fix |", "|---|---|---|---|---|"]
        lines += [
            "| "
            + " | ".join(_md(v) for v in (r.source_id, r.rule, r.value, r.reason, r.fix))
            + " |"
            for r in self.rows
        ]
        errors = [
            f"- `{f.rule}` ({f.name}) could not run: {f.error}" for f in self.failed if f.error
        ]
        return head + "\n".join(lines) + ("\n\n" + "\n".join(errors) if errors else "")

    def metadata(self) -> dict[str, Any]:
        """A JSON-ready summary: counts, failed rules, the failing rows and the Data Docs."""
        return {
            "entity": self.entity,
            "rows": self.batch_rows,
            "evaluated": self.evaluated,
            "failed": len(self.failed),
            "failures": [
                {
                    "rule": f.rule,
                    "expectation": f.name,
                    "column": f.column,
                    "unexpected_count": f.unexpected_count,
                    "error": f.error,
                }
                for f in self.failed
            ],
            "failing_rows": self.rows_table(),
            "failing_row_count": self.row_count,
            "data_docs": self.docs_url or (self.docs_index if docs_enabled() else None),
        }


def _md(value: str | None) -> str:
    if value is None:
        return ""
    text = value.replace("|", "\\|").replace("\n", " ").replace("\r", " ")
    return text if len(text) <= 120 else text[:120] + "…"


# --------------------------------------------------------------------------------------------
# GX wiring (lazy, cached per process)
# --------------------------------------------------------------------------------------------

_LOCK: Final = threading.RLock()
_STATE: dict[Any, Any] = {}


def _gx() -> Any:
    """The ``great_expectations`` module (imported on first use: ~3 s)."""
    import great_expectations as gx

    return gx


def _view(name: str) -> dict[str, str]:
    return {"module_name": "qbo_pipelines.quality.gx_views", "class_name": name}


def _context() -> Any:
    """The process-wide ephemeral context, with a Data Docs site in :func:`docs_dir`."""
    with _LOCK:
        ctx = _STATE.get("context")
        if ctx is None:
            gx = _gx()
            from great_expectations.data_context.types.base import ProgressBarsConfig

            ctx = gx.get_context(mode="ephemeral")
            ctx.variables.progress_bars = ProgressBarsConfig(globally=False)
            ctx.add_data_docs_site(
                site_name="local",
                site_config={
                    "class_name": "SiteBuilder",
                    "store_backend": {
                        "class_name": "TupleFilesystemStoreBackend",
                        "base_directory": str(docs_dir()),
                    },
                    "site_index_builder": {
                        "class_name": "DefaultSiteIndexBuilder",
                        "validation_results_limit": DOCS_VALIDATIONS,
                        "view": _view("IndexPageView"),
                    },
                    "site_section_builders": {
                        "expectations": {"view": _view("PageView")},
                        "validations": {"view": _view("PageView")},
                        "profiling": "False",
                    },
                },
            )
            _STATE["context"] = ctx
        return ctx


def _suite(entity: str) -> Any:
    """The entity's suite, registered in the context (built once per process)."""
    with _LOCK:
        key = ("suite", entity)
        suite = _STATE.get(key)
        if suite is None:
            gx = _gx()
            ctx = _context()
            suite = gx.ExpectationSuite(name=f"staging_{entity}")
            for spec in SUITES[entity]:
                cls = getattr(gx.expectations, spec.expectation)
                suite.add_expectation(cls(**dict(spec.kwargs), meta={"rule": spec.rule}))
            suite = ctx.suites.add(suite)
            _STATE[key] = suite
        return suite


def _definition(engine: sa.Engine, entity: str) -> tuple[Any, str]:
    """The entity's validation definition over ``staging.<entity>`` of this warehouse (built
    once), and the warehouse's tag in GX names."""
    url = engine.url.render_as_string(hide_password=False)
    tag = hashlib.sha256(url.encode()).hexdigest()[:10]
    with _LOCK:
        key = ("definition", tag, entity)
        definition = _STATE.get(key)
        if definition is not None:
            return definition, tag
        gx = _gx()
        from great_expectations.core.partitioners import PartitionerMultiColumnValue

        ctx = _context()
        source_key = ("source", tag)
        source = _STATE.get(source_key)
        if source is None:
            # a pooled connection is tested before use, as the warehouse's own engines are
            # (db.py): after a Postgres restart the suite reconnects instead of failing the stage
            source = ctx.data_sources.add_sql(
                name=f"warehouse_{tag}", connection_string=url, kwargs={"pool_pre_ping": True}
            )
            _STATE[source_key] = source
        asset = source.add_table_asset(
            name=f"staging_{entity}", table_name=entity, schema_name="staging"
        )
        batches = asset.add_batch_definition(
            name="company_run",
            partitioner=PartitionerMultiColumnValue(column_names=["realm_id", "run_id"]),
            validate_partitioner=False,
        )
        definition = ctx.validation_definitions.add(
            gx.ValidationDefinition(
                name=f"staging_{entity}_{tag}", data=batches, suite=_suite(entity)
            )
        )
        _STATE[key] = definition
        return definition, tag


def _checkpoint(engine: sa.Engine, entity: str) -> Any:
    """The entity's Checkpoint (built once per Data Docs setting): its validation definition,
    the Data Docs action unless :func:`docs_enabled` says no."""
    definition, tag = _definition(engine, entity)
    docs = docs_enabled()
    with _LOCK:
        key = ("checkpoint", tag, entity, docs)
        checkpoint = _STATE.get(key)
        if checkpoint is None:
            gx = _gx()
            checkpoint = _context().checkpoints.add(
                gx.Checkpoint(
                    name=f"staging_{entity}_{tag}" + ("" if docs else "_no_docs"),
                    validation_definitions=[definition],
                    actions=[gx.checkpoint.UpdateDataDocsAction(name="data_docs")] if docs else [],
                    result_format={
                        "result_format": "COMPLETE",
                        "unexpected_index_column_names": ["source_id"],
                        "partial_unexpected_count": 20,
                    },
                )
            )
            _STATE[key] = checkpoint
        return checkpoint


# --------------------------------------------------------------------------------------------
# Validation
# --------------------------------------------------------------------------------------------

Explained = Mapping[tuple[str, str], tuple[str, str | None]]
"""(source_id, rule) -> (reason, fix) of the per-record rules, to show beside each row."""


def _show(value: Any) -> str | None:
    if value is None:
        return None
    from qbo_pipelines.quality.rules import show

    return show(value)


def _error(exception_info: Any) -> str | None:
    if not isinstance(exception_info, Mapping):
        return None
    if exception_info.get("raised_exception"):
        return str(exception_info.get("exception_message"))
    for nested in exception_info.values():
        if isinstance(nested, Mapping) and nested.get("raised_exception"):
            return str(nested.get("exception_message"))
    return None


def _failing_rows(result: Any, rule: str, column: str | None) -> list[tuple[str, str | None]]:
    """(source_id, value) of each row an expectation found, from either result shape."""
    details: Mapping[str, Any] = result.result or {}
    found: list[tuple[str, str | None]] = []
    if isinstance(details.get("details"), Mapping):  # UnexpectedRowsExpectation
        for row in details["details"].get("unexpected_rows") or []:
            found.append((str(row.get("source_id")), row.get("value")))
        return found
    for row in details.get("unexpected_index_list") or []:
        if isinstance(row, Mapping):
            value = row.get(column) if column else None
            found.append((str(row.get("source_id")), None if value is None else str(value)))
    return found


def _batch_size(engine: sa.Engine, entity: str, realm_id: str, run_id: str) -> int:
    if entity not in constraints.TABLES:
        raise KeyError(f"no suite for entity {entity!r}; known: {ENTITIES}")
    with engine.connect() as conn:
        return int(
            conn.execute(
                sa.text(
                    f"SELECT count(*) FROM staging.{entity}"  # noqa: S608 - a catalogue name
                    " WHERE realm_id = :realm AND run_id = :run"
                ),
                {"realm": realm_id, "run": run_id},
            ).scalar_one()
        )


def validate_staged(
    engine: sa.Engine,
    entity: str,
    realm_id: str,
    run_id: str,
    explained: Explained | Callable[[Iterable[str]], Explained] | None = None,
) -> SuiteOutcome:
    """Run the entity's Checkpoint on what one company's run staged in ``staging.<entity>``.

    Args:
        engine: the warehouse.
        entity: one of :data:`ENTITIES`.
        realm_id: the company.
        run_id: the run that staged the batch.
        explained: the per-record rules' (reason, fix) per (source_id, rule), shown beside
            each failing row; or a function giving them for the failing rows' source ids
            (only the records the suite failed are checked by the rules).

    Returns:
        A plain :class:`SuiteOutcome`; an empty batch is a success without running GX.

    Raises:
        KeyError: for an entity without a suite.
    """
    size = _batch_size(engine, entity, realm_id, run_id)
    if size == 0:
        return SuiteOutcome(entity, True, 0, [], batch_rows=0)
    checkpoint = _checkpoint(engine, entity)
    _forget_old_results()
    from great_expectations.exceptions.exceptions import NoAvailableBatchesError

    try:
        result = checkpoint.run(batch_parameters={"realm_id": realm_id, "run_id": run_id})
    except NoAvailableBatchesError:
        # A concurrent run of the company staged the same records after this batch was
        # counted, which moves their rows to its own batch: that run checks them, this one has
        # nothing left to check (its push finds none of them its own).
        if _batch_size(engine, entity, realm_id, run_id) == 0:
            return SuiteOutcome(entity, True, 0, [], batch_rows=0)
        raise
    ((identifier, validation),) = result.run_results.items()
    failed: list[FailedExpectation] = []
    pairs: dict[tuple[str, str], FailingRow] = {}
    found_by: list[tuple[str, str | None, list[tuple[str, str | None]]]] = []
    for r in validation.results:
        if r.success:
            continue
        config = r.expectation_config
        rule = str((config.meta or {}).get("rule", ""))
        column = config.kwargs.get("column") or _column_of(entity, rule)
        found = _failing_rows(r, rule, column)
        details: Mapping[str, Any] = r.result or {}
        count = details.get("unexpected_count", details.get("observed_value"))
        failed.append(
            FailedExpectation(
                rule,
                str(config.type),
                column,
                int(count) if count is not None else None,
                _error(r.exception_info),
            )
        )
        found_by.append((rule, column, found))
    reasons = (
        explained(sorted({sid for _, _, found in found_by for sid, _ in found}))
        if callable(explained)
        else explained or {}
    )
    for rule, column, found in found_by:
        for source_id, value in found:
            reason, fix = reasons.get((source_id, rule), (None, None))
            pairs.setdefault(
                (source_id, rule), FailingRow(rule, column, source_id, _show(value), reason, fix)
            )
    rows = sorted(pairs.values(), key=lambda p: (p.rule, _sortable(p.source_id)))
    urls = _context().get_docs_sites_urls(resource_identifier=identifier) if docs_enabled() else []
    return SuiteOutcome(
        entity=entity,
        success=bool(validation.success),
        evaluated=len(validation.results),
        failed=sorted(failed, key=lambda f: (f.rule, f.name)),
        rows=rows[:MAX_ROWS],
        row_count=len(rows),
        batch_rows=size,
        docs_url=next((u.get("site_url") for u in urls if u.get("site_url")), None),
    )


def _forget_old_results() -> None:
    """Keep the newest :data:`DOCS_VALIDATIONS` - 1 results in the context's store (the run
    about to start adds one)."""
    store = _context().validation_results_store
    with _LOCK:
        keys = sorted(store.list_keys(), key=lambda k: k.run_id.run_time, reverse=True)
        for key in keys[DOCS_VALIDATIONS - 1 :]:
            with contextlib.suppress(Exception):
                store.remove_key(key)


def _column_of(entity: str, rule: str) -> str | None:
    for col, c in constraints.TABLES[entity].constraints:
        if c.rule == rule:
            return col.name
    return None


def _sortable(source_id: str) -> tuple[int, str]:
    return (int(source_id), "") if source_id.isdigit() else (1 << 62, source_id)


def explain(
    violations: Mapping[str, Sequence[Any]],
) -> dict[tuple[str, str], tuple[str, str | None]]:
    """(source_id, rule) -> (reason, fix) from each record's violations (``rules.Violation``)."""
    from qbo_pipelines.quality.rules import merge_by_rule

    out: dict[tuple[str, str], tuple[str, str | None]] = {}
    for source_id, found in violations.items():
        for v in merge_by_rule(found):
            out[(source_id, v.rule)] = (v.reason, v.fix)
    return out


__all__ = [
    "ENTITIES",
    "ENV_DOCS_DIR",
    "Explained",
    "MAX_ROWS",
    "SUITES",
    "ExpectationSpec",
    "FailedExpectation",
    "FailingRow",
    "SuiteOutcome",
    "docs_dir",
    "explain",
    "suite_specs",
    "validate_staged",
]
