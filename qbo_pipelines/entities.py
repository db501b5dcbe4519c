"""The entity catalogue, as data: what syncs, which way, how it matches, deletes and conflicts.

Assets, jobs and sensors are generated from this table (``qbo_pipelines/defs``); the sync use
cases read their rules from it. Adding an entity is a row here plus its transforms.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Direction = Literal["push", "pull"]
MatchRule = Literal["display_name", "name", "none"]
DeleteRule = Literal["never", "delete_if_created_by_sync", "void_if_created_by_sync"]
ConflictPolicy = Literal["source_wins", "qbo_wins", "manual"]


@dataclass(frozen=True)
class Entity:
    """One syncable entity.

    Attributes:
        name: catalogue name, used in asset keys, ``sync.id_map.entity`` and the ledger.
        qbo_name: QBO entity name (``Customer``), as in URLs (lower-cased) and payload keys.
        source_table: the source-app table that holds it.
        directions: which ways it syncs.
        depends_on: entities whose QBO ids this one references (push order).
        match: how a source record finds an existing QBO record before creating one (R5, R10).
        delete: what a source delete does in QBO (R9, R17, R22).
        conflict: who wins when both sides changed since the last sync (R34).
        name_list: QBO name-list entity (never hard-deleted; inactivated instead).
        spec_rules: the SPEC rules the entity's behaviour implements (for docs and the UI).
    """

    name: str
    qbo_name: str
    source_table: str
    directions: tuple[Direction, ...]
    depends_on: tuple[str, ...] = ()
    match: MatchRule = "none"
    delete: DeleteRule = "never"
    conflict: ConflictPolicy = "source_wins"
    name_list: bool = False
    spec_rules: tuple[str, ...] = ()

    @property
    def pushes(self) -> bool:
        return "push" in self.directions

    @property
    def pulls(self) -> bool:
        return "pull" in self.directions


CATALOGUE: tuple[Entity, ...] = (
    Entity(
        name="customers", qbo_name="Customer", source_table="contacts",
        directions=("push", "pull"), match="display_name", delete="never",
        conflict="qbo_wins", name_list=True,
        spec_rules=("R4", "R5", "R6", "R7", "R8", "R9"),
    ),
    Entity(
        name="items", qbo_name="Item", source_table="service_types",
        directions=("push",), match="name", delete="never", name_list=True,
        spec_rules=("R10",),
    ),
    Entity(
        name="invoices", qbo_name="Invoice", source_table="sales",
        directions=("push", "pull"), depends_on=("customers", "items"),
        delete="delete_if_created_by_sync", conflict="source_wins",
        spec_rules=("R11", "R12", "R13", "R14", "R15", "R16", "R17", "R18"),
    ),
    Entity(
        name="payments", qbo_name="Payment", source_table="receipts",
        directions=("push", "pull"), depends_on=("invoices",),
        delete="delete_if_created_by_sync", conflict="source_wins",
        spec_rules=("R19", "R20", "R21", "R22"),
    ),
    Entity(
        name="vendors", qbo_name="Vendor", source_table="workers",
        directions=("push",), match="display_name", delete="never", name_list=True,
        spec_rules=("R23", "R25"),
    ),
    Entity(
        name="bills", qbo_name="Bill", source_table="worker_invoices",
        directions=("push",), depends_on=("vendors",),
        delete="delete_if_created_by_sync", conflict="source_wins",
        spec_rules=("R23", "R24", "R25"),
    ),
)

BY_NAME: dict[str, Entity] = {e.name: e for e in CATALOGUE}


def entity(name: str) -> Entity:
    """The catalogue row for ``name``; a clear error for an unknown one."""
    try:
        return BY_NAME[name]
    except KeyError:
        known = ", ".join(sorted(BY_NAME))
        raise KeyError(f"unknown entity {name!r}; known: {known}") from None


def push_order() -> list[Entity]:
    """Push entities, each after everything it depends on (stable topological order)."""
    ordered: list[Entity] = []
    seen: set[str] = set()

    def visit(e: Entity) -> None:
        if e.name in seen:
            return
        for dep in e.depends_on:
            visit(BY_NAME[dep])
        seen.add(e.name)
        ordered.append(e)

    for e in CATALOGUE:
        if e.pushes:
            visit(e)
    return ordered
