"""Architecture rules that keep the library usable without Dagster."""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "qbo_pipelines"
ALLOWED = {PACKAGE / "defs", PACKAGE / "definitions.py"}


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def _allowed(path: Path) -> bool:
    return any(path == a or a in path.parents for a in ALLOWED)


def test_only_defs_imports_dagster() -> None:
    offenders = [
        str(path.relative_to(PACKAGE.parent))
        for path in PACKAGE.rglob("*.py")
        if not _allowed(path)
        and any(n == "dagster" or n.startswith(("dagster.", "dagster_")) for n in _imports(path))
    ]
    assert offenders == [], f"modules outside qbo_pipelines/defs import dagster: {offenders}"


def test_architecture_check_sees_the_defs_layer() -> None:
    """Guard against the scan above silently passing because it found nothing."""
    defs_files = [p for p in (PACKAGE / "defs").rglob("*.py") if "dagster" in _imports(p)]
    assert defs_files, "expected the Dagster layer to import dagster"
