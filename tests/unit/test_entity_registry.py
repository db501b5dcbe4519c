"""The entity catalogue is the one registry (issue 9, "Shape").

Every row resolves every binding it declares (canonical type, source reader, rules, constraint
table, push and pull spec), the dispatch sites ask the row, and no module outside the registry
keeps its own per-entity dict keyed by catalogue names.
"""

import ast
import dataclasses
import inspect
import re
import sys
from decimal import Decimal
from pathlib import Path

import pytest

from qbo_pipelines import entities as catalogue
from qbo_pipelines.canonical import (
    SOURCE_ENTITIES,
    CanonicalPaymentMethod,
    CanonicalTaxRate,
    SourceId,
)
from qbo_pipelines.quality import constraints, rules
from qbo_pipelines.source_app import queries
from qbo_pipelines.source_app.connector import Reader
from qbo_pipelines.sync import pull, specs
from qbo_pipelines.sync.push import PushSpec
from qbo_pipelines.warehouse import raw_qbo

sys.path.insert(0, str(Path(__file__).parent / "quality"))
import quality_factories as make  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "qbo_pipelines"
ROWS = catalogue.SOURCE
IDS = [e.name for e in ROWS]


@pytest.mark.parametrize("e", ROWS, ids=IDS)
def test_every_row_resolves_every_binding_it_declares(e: catalogue.Entity) -> None:
    kind = e.canonical_type
    assert dataclasses.is_dataclass(kind), f"{e.name}: {kind} is not a canonical dataclass"
    assert isinstance(e.source_reader, Reader)
    if e.rules is not None:
        check = e.rule_check
        assert callable(check)
        assert "creating" in inspect.signature(check).parameters, (
            f"{e.name}: rule functions take creating= (only customers use it)"
        )
    if e.constraints is not None:
        table = e.constraint_table
        assert isinstance(table, constraints.Table)
        assert table.entity == e.name
    if e.push is not None:
        spec = e.push_spec
        assert isinstance(spec, PushSpec)
        assert spec.entity is e
    if e.pull is not None:
        pspec = e.pull_spec
        assert isinstance(pspec, pull.PullSpec)
        assert pspec.entity is e


@pytest.mark.parametrize("e", ROWS, ids=IDS)
def test_a_row_declares_what_its_directions_need(e: catalogue.Entity) -> None:
    assert e.kind, f"{e.name}: no kind (how reasons name one record)"
    assert e.canonical, f"{e.name}: every source entity has a canonical type"
    assert e.reader, f"{e.name}: every source entity has a reader"
    assert (e.push is not None) == e.pushes, f"{e.name}: push spec iff it pushes"
    assert (e.pull is not None) == e.pulls, f"{e.name}: pull spec iff it pulls"
    if e.directions:  # written to QBO: rules and constraints hold bad records back (R40)
        assert e.rules is not None
        assert e.constraints is not None
    for qbo_name in e.qbo_names:
        if e.directions:
            assert qbo_name in raw_qbo.ENTITY_TABLES, f"{e.name}: no raw_qbo table for {qbo_name}"
    assert e.qbo_names[0] == e.qbo_name
    for dep in e.depends_on:
        assert dep in catalogue.BY_NAME


@pytest.mark.parametrize("e", ROWS, ids=IDS)
def test_fields_a_row_names_exist_on_its_canonical_type(e: catalogue.Entity) -> None:
    for field in (e.label_field, e.amount, e.dated):
        if field is not None:
            assert hasattr(e.canonical_type, field), f"{e.name}: no field {field!r}"


@pytest.mark.parametrize("e", ROWS, ids=IDS)
def test_the_reader_reads_existing_queries(e: catalogue.Entity) -> None:
    """(That each reader builds its row's canonical type, from a real database:
    tests/integration/source_app/test_read_fast_paths.py.)"""
    reader = e.source_reader
    names = [reader.query]
    if reader.lines is not None:
        names += [reader.lines.query, reader.lines.hash_query]
    for name in names:
        assert (queries.DEFAULT_QUERIES_DIR / f"{name}.sql").is_file(), name


def test_views_follow_the_rows() -> None:
    assert tuple(e.name for e in ROWS) == SOURCE_ENTITIES
    assert list(specs.SPECS) == [e.name for e in catalogue.push_order()]
    assert list(pull.SPECS) == [e.name for e in catalogue.CATALOGUE if e.pulls]
    assert list(constraints.TABLES) == [e.name for e in catalogue.CATALOGUE]
    assert len({e.canonical_type for e in ROWS}) == len(ROWS), "one row per type"
    assert len({e.name for e in ROWS}) == len(ROWS)


RECORDS = {
    "customers": make.customer(email="not an email"),
    "items": make.item(),
    "invoices": make.sale(),
    "payments": make.receipt(),
    "vendors": make.vendor(),
    "bills": make.bill(),
}


@pytest.mark.parametrize("name", list(RECORDS))
def test_rules_and_labels_dispatch_through_the_row(name: str) -> None:
    record = RECORDS[name]
    row = catalogue.of_record(record)
    assert row is catalogue.entity(name)
    check = row.rule_check
    assert check is not None
    assert rules.check(record) == check(record, creating=True)
    assert rules.record_label(record).startswith(f"{row.kind} ")
    assert rules.unquotable_value(record, "memo", "a\x07b").rule.startswith(f"{row.kind}.")


def test_mapped_reference_data_has_no_rules_and_a_kind() -> None:
    rate = CanonicalTaxRate(source_id=SourceId("3"), name="GST", rate=Decimal("15"))
    method = CanonicalPaymentMethod(source_id=SourceId("4"), name="Card")
    assert rules.check(rate) == []
    assert rules.check(method) == []
    assert rules.record_label(rate) == "tax rate 'GST' (#3)"
    assert rules.record_label(method) == "payment method 'Card' (#4)"
    with pytest.raises(TypeError, match="no data-quality rules for str"):
        rules.check("not a record")


def test_a_wrong_binding_is_a_clear_error() -> None:
    with pytest.raises(catalogue.BindingError, match="does not resolve"):
        catalogue.resolve("qbo_pipelines.sync.specs:NO_SUCH_SPEC")
    with pytest.raises(catalogue.BindingError, match="is not 'package.module:attribute'"):
        catalogue.resolve("qbo_pipelines.sync.specs")
    with pytest.raises(KeyError, match="unknown source entity 'estimates'"):
        catalogue.source_entity("estimates")


# ------------------------------------------------------------------ no parallel registries

ALLOWED: dict[str, str] = {}
"""Dict or set literals keyed by >= 3 catalogue entities that may stay (file:name -> why)."""


def _registry_keys() -> set[str]:
    keys = {e.name for e in ROWS}
    keys |= {e.canonical_type.__name__ for e in ROWS}
    return keys


def _assigned_name(tree: ast.Module, node: ast.AST) -> str:
    for parent in ast.walk(tree):
        if isinstance(parent, ast.Assign | ast.AnnAssign) and parent.value is node:
            target = parent.targets[0] if isinstance(parent, ast.Assign) else parent.target
            if isinstance(target, ast.Name):
                return target.id
    return f"line {getattr(node, 'lineno', '?')}"


def _keyed_in(tree: ast.Module, rel: str) -> list[str]:
    """``file:name`` of each dict or set literal in ``tree`` keyed by >= 3 catalogue
    entities (names or canonical types)."""
    keys = _registry_keys()
    found: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Dict):
            elts = [k for k in node.keys if k is not None]
        elif isinstance(node, ast.Set):
            elts = list(node.elts)
        else:
            continue
        names = {
            k.value if isinstance(k, ast.Constant) else k.id
            for k in elts
            if isinstance(k, ast.Constant | ast.Name)
        }
        if len({n for n in names if isinstance(n, str)} & keys) >= 3:
            found.append(f"{rel}:{_assigned_name(tree, node)}")
    return found


def _keyed_by_entities() -> list[str]:
    found: list[str] = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(ROOT).as_posix()
        if rel.startswith("qbo_pipelines/sandbox/") or rel == "qbo_pipelines/entities.py":
            continue  # the sandbox is QBO (its own entities); entities.py is the registry
        found += _keyed_in(ast.parse(path.read_text(encoding="utf-8"), filename=rel), rel)
    return found


def test_no_module_keeps_a_per_entity_dict_beside_the_catalogue() -> None:
    found = _keyed_by_entities()
    offenders = [f for f in found if f not in ALLOWED]
    assert offenders == [], (
        "per-entity dicts/sets keyed by catalogue names outside qbo_pipelines/entities.py; "
        f"put the fact on the catalogue row instead: {offenders}"
    )
    stale = sorted(set(ALLOWED) - set(found))
    assert stale == [], f"allow-list entries no longer needed (remove them): {stale}"


def test_the_scan_sees_a_parallel_registry() -> None:
    """Guard: the scan is not silently blind (dict keys, set members, canonical types)."""
    source = (
        'READ = {"customers": "read_customers", "items": "read_items", "bills": "read_bills"}\n'
        'DATED = {"invoices", "payments", "bills"}\n'
        "KINDS = {CanonicalSale: 'sale', CanonicalBill: 'bill', CanonicalItem: 'item'}\n"
        'FINE = {"customers": 1, "Invoice": 2, "accounts": 3}\n'
    )
    assert _keyed_in(ast.parse(source), "x.py") == ["x.py:READ", "x.py:DATED", "x.py:KINDS"]


def test_the_guide_names_only_files_that_exist() -> None:
    guide = (ROOT / "docs" / "adding_an_entity.md").read_text(encoding="utf-8")
    paths = set(re.findall(r"`((?:qbo_pipelines|sql|tests|docs)/[\w./-]+\.(?:py|sql|md))`", guide))
    assert len(paths) >= 8
    missing = sorted(p for p in paths if not (ROOT / p).is_file())
    assert missing == [], f"docs/adding_an_entity.md names files that do not exist: {missing}"
