"""The entity catalogue, as data: the ONE registry of what syncs and how.

Each :class:`Entity` row says what syncs, which way, how it matches, deletes and conflicts, and
names (as ``"module:attribute"`` bindings, resolved lazily on first use so this module imports
nothing of the package and every module may import it) the code that handles the entity: its
canonical type, its source reader, its rule function, its constraint table, its push spec and
its pull spec. Assets, jobs and sensors are generated from this table (``qbo_pipelines/defs``);
every dispatch site asks the row instead of keeping its own dict keyed by entity name.
Adding an entity is a row here plus its canonical type, read query, transforms and tables:
see ``docs/adding_an_entity.md``.
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, cast

if TYPE_CHECKING:  # the bound modules import this one; only mypy follows these
    from qbo_pipelines.quality.constraints import Table
    from qbo_pipelines.quality.rules import Violation
    from qbo_pipelines.source_app.connector import Reader
    from qbo_pipelines.sync.pull import PullSpec
    from qbo_pipelines.sync.push import PushSpec

Direction = Literal["push", "pull"]
MatchRule = Literal["display_name", "name", "none"]
DeleteRule = Literal["never", "delete_if_created_by_sync", "void_if_created_by_sync"]
ConflictPolicy = Literal["source_wins", "qbo_wins", "manual"]
Rules = Callable[..., "list[Violation]"]
"""A rule function: ``(record, *, creating: bool) -> list[Violation]``."""


class BindingError(LookupError):
    """A catalogue row names code that does not exist (a wrong ``module:attribute``)."""


@functools.cache
def resolve(binding: str) -> Any:
    """The object a ``"package.module:attribute"`` binding names (imported once, cached)."""
    module, _, attr = binding.partition(":")
    if not module or not attr:
        raise BindingError(f"binding {binding!r} is not 'package.module:attribute'")
    try:
        return getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError) as exc:
        raise BindingError(f"binding {binding!r} does not resolve: {exc}") from exc


def _bound(binding: str | None) -> Any:
    return None if binding is None else resolve(binding)


@dataclass(frozen=True)
class Entity:
    """One entity of the source app the sync reads.

    Attributes:
        name: catalogue name, used in asset keys, ``sync.id_map.entity``, the ledger, the
            change log (``app.change_log.entity``) and the ``raw_source`` / ``staging`` tables.
        qbo_name: QBO entity name (``Customer``), as in URLs (lower-cased) and payload keys.
        source_table: the source-app table that holds it.
        directions: which ways it syncs (empty: reference data the mappings use, never synced).
        depends_on: entities whose QBO ids this one references (push order).
        match: how a source record finds an existing QBO record before creating one (R5, R10).
        delete: what a source delete does in QBO (R9, R17, R22).
        conflict: who wins when both sides changed since the last sync (R34).
        name_list: QBO name-list entity (never hard-deleted; inactivated instead).
        spec_rules: the SPEC rules the entity's behaviour implements (for docs and the UI).
        kind: how reasons and rule ids name one record (``sale`` in ``sale S-1042 (#77)``).
        label_field: the canonical field that names a record in reasons (``doc_number`` reads
            as a number: ``sale S-1042 (#77)``; others as a quoted name); None: only its id.
        qbo_names: every QBO entity its records become (default: ``(qbo_name,)``); the first
            is the usual one (a negative sale becomes a ``CreditMemo``, R11).
        amount: the canonical field QBO shows as ``TotalAmt`` (money transactions; reconcile).
        dated: the canonical business-date field (``TxnDate``): date-range backfills (R39)
            and reconcile compare on it; None for undated records.
        canonical: binding of the canonical record type (:mod:`qbo_pipelines.canonical`).
        reader: binding of its source reader (a ``source_app.connector.Reader``).
        rules: binding of its data-quality rule function (:mod:`qbo_pipelines.quality.rules`).
        constraints: binding of its constraint table (:mod:`qbo_pipelines.quality.constraints`,
            which also defines its typed ``staging`` columns and its GX suite).
        push: binding of its push spec (:mod:`qbo_pipelines.sync.specs`), if it pushes.
        pull: binding of its pull spec (:mod:`qbo_pipelines.sync.pull`), if it pulls.
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
    kind: str = ""
    label_field: str | None = None
    qbo_names: tuple[str, ...] = ()
    amount: str | None = None
    dated: str | None = None
    canonical: str = ""
    reader: str = ""
    rules: str | None = None
    constraints: str | None = None
    push: str | None = None
    pull: str | None = None

    def __post_init__(self) -> None:
        if not self.qbo_names:
            object.__setattr__(self, "qbo_names", (self.qbo_name,))

    @property
    def pushes(self) -> bool:
        return "push" in self.directions

    @property
    def pulls(self) -> bool:
        return "pull" in self.directions

    @property
    def canonical_type(self) -> type:
        """The canonical record class the reader produces."""
        return cast(type, resolve(self.canonical))

    @property
    def source_reader(self) -> Reader:
        """How the source-app connector reads the entity (query, row builder, lines)."""
        return cast("Reader", resolve(self.reader))

    @property
    def rule_check(self) -> Rules | None:
        """The per-record rule function (None: mapped reference data, never written)."""
        return cast("Rules | None", _bound(self.rules))

    @property
    def constraint_table(self) -> Table | None:
        """The constraint table (typed staging columns, GX suite), if QBO stores the entity."""
        return cast("Table | None", _bound(self.constraints))

    @property
    def push_spec(self) -> PushSpec | None:
        """How records are built into QBO bodies and matched (None: the entity never pushes)."""
        return cast("PushSpec | None", _bound(self.push))

    @property
    def pull_spec(self) -> PullSpec | None:
        """How QBO's records are written into the source (None: the entity never pulls)."""
        return cast("PullSpec | None", _bound(self.pull))

    @property
    def transaction(self) -> bool:
        """A dated money transaction (invoices, payments, bills), not a name list."""
        return self.amount is not None and self.dated is not None


def _b(module: str, attr: str) -> str:
    return f"qbo_pipelines.{module}:{attr}"


CATALOGUE: tuple[Entity, ...] = (
    Entity(
        name="customers", qbo_name="Customer", source_table="contacts",
        directions=("push", "pull"), match="display_name", delete="never",
        conflict="qbo_wins", name_list=True,
        spec_rules=("R4", "R5", "R6", "R7", "R8", "R9"),
        kind="customer", label_field="display_name",
        canonical=_b("canonical", "CanonicalCustomer"),
        reader=_b("source_app.connector", "CUSTOMERS"),
        rules=_b("quality.rules", "check_customer"),
        constraints=_b("quality.constraints", "CUSTOMERS"),
        push=_b("sync.specs", "CUSTOMERS"), pull=_b("sync.pull", "CUSTOMERS"),
    ),
    Entity(
        name="items", qbo_name="Item", source_table="products",
        directions=("push",), match="name", delete="never", name_list=True,
        spec_rules=("R10",),
        kind="item", label_field="name",
        canonical=_b("canonical", "CanonicalItem"),
        reader=_b("source_app.connector", "ITEMS"),
        rules=_b("quality.rules", "check_item"),
        constraints=_b("quality.constraints", "ITEMS"),
        push=_b("sync.specs", "ITEMS"),
    ),
    Entity(
        name="invoices", qbo_name="Invoice", source_table="sales",
        directions=("push", "pull"), depends_on=("customers", "items"),
        delete="delete_if_created_by_sync", conflict="source_wins",
        spec_rules=("R11", "R12", "R13", "R14", "R15", "R16", "R17", "R18"),
        kind="sale", label_field="doc_number", qbo_names=("Invoice", "CreditMemo"),
        amount="qbo_total", dated="txn_date",
        canonical=_b("canonical", "CanonicalSale"),
        reader=_b("source_app.connector", "SALES"),
        rules=_b("quality.rules", "check_sale"),
        constraints=_b("quality.constraints", "INVOICES"),
        push=_b("sync.specs", "INVOICES"), pull=_b("sync.pull", "INVOICES"),
    ),
    Entity(
        name="payments", qbo_name="Payment", source_table="receipts",
        directions=("push", "pull"), depends_on=("invoices",),
        delete="delete_if_created_by_sync", conflict="source_wins",
        spec_rules=("R19", "R20", "R21", "R22"),
        kind="receipt", amount="amount", dated="received_on",
        canonical=_b("canonical", "CanonicalReceipt"),
        reader=_b("source_app.connector", "RECEIPTS"),
        rules=_b("quality.rules", "check_receipt"),
        constraints=_b("quality.constraints", "PAYMENTS"),
        push=_b("sync.specs", "PAYMENTS"), pull=_b("sync.pull", "PAYMENTS"),
    ),
    Entity(
        name="vendors", qbo_name="Vendor", source_table="workers",
        directions=("push",), match="display_name", delete="never", name_list=True,
        spec_rules=("R23", "R25"),
        kind="vendor", label_field="display_name",
        canonical=_b("canonical", "CanonicalVendor"),
        reader=_b("source_app.connector", "VENDORS"),
        rules=_b("quality.rules", "check_vendor"),
        constraints=_b("quality.constraints", "VENDORS"),
        push=_b("sync.specs", "VENDORS"),
    ),
    Entity(
        name="bills", qbo_name="Bill", source_table="worker_invoices",
        directions=("push",), depends_on=("vendors",),
        delete="delete_if_created_by_sync", conflict="source_wins",
        spec_rules=("R23", "R24", "R25"),
        kind="bill", label_field="doc_number", amount="total", dated="txn_date",
        canonical=_b("canonical", "CanonicalBill"),
        reader=_b("source_app.connector", "BILLS"),
        rules=_b("quality.rules", "check_bill"),
        constraints=_b("quality.constraints", "BILLS"),
        push=_b("sync.specs", "BILLS"),
    ),
)
"""The entities that sync, in catalogue order."""

MAPPED: tuple[Entity, ...] = (
    Entity(
        name="tax_rates", qbo_name="TaxCode", source_table="tax_rates", directions=(),
        spec_rules=("R12",), kind="tax rate", label_field="name",
        canonical=_b("canonical", "CanonicalTaxRate"),
        reader=_b("source_app.connector", "TAX_RATES"),
    ),
    Entity(
        name="payment_methods", qbo_name="PaymentMethod", source_table="payment_methods",
        directions=(), spec_rules=("R19",), kind="payment method", label_field="name",
        canonical=_b("canonical", "CanonicalPaymentMethod"),
        reader=_b("source_app.connector", "PAYMENT_METHODS"),
    ),
)
"""Source reference data the mappings use (R12, R19): read and staged, never written to QBO,
so no rules, constraints or specs."""

SOURCE: tuple[Entity, ...] = CATALOGUE + MAPPED
"""Every entity the source-app connector reads (the change log reports all of them)."""

BY_NAME: dict[str, Entity] = {e.name: e for e in CATALOGUE}
_SOURCE_BY_NAME: dict[str, Entity] = {e.name: e for e in SOURCE}


def entity(name: str) -> Entity:
    """The catalogue row for ``name``; a clear error for an unknown one."""
    try:
        return BY_NAME[name]
    except KeyError:
        known = ", ".join(sorted(BY_NAME))
        raise KeyError(f"unknown entity {name!r}; known: {known}") from None


def source_entity(name: str) -> Entity:
    """The row of any entity the source app reports (the catalogue's plus mapped reference
    data); a clear error for an unknown one."""
    try:
        return _SOURCE_BY_NAME[name]
    except KeyError:
        known = ", ".join(sorted(_SOURCE_BY_NAME))
        raise KeyError(f"unknown source entity {name!r}; known: {known}") from None


@functools.cache
def _by_type() -> dict[type, Entity]:
    return {e.canonical_type: e for e in SOURCE}


def of_record(record: object) -> Entity | None:
    """The row whose canonical type ``record`` is (None for any other object)."""
    return _by_type().get(type(record))


def bound_specs(rows: Iterable[Entity], binding: Literal["push", "pull"]) -> dict[str, Any]:
    """Name -> the ``push`` (or ``pull``) spec each of ``rows`` names, in ``rows`` order; a
    clear error for a row that syncs that way but names none."""
    out: dict[str, Any] = {}
    for e in rows:
        spec = e.push_spec if binding == "push" else e.pull_spec
        if spec is None:
            raise BindingError(f"{e.name} {binding}s but its row names no {binding} spec")
        out[e.name] = spec
    return out


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
