"""The main job (``make demo`` / ``qbo-pipelines demo-run``): the demo app synced with a local
QBO sandbox company, end to end, on the embedded (or configured) Postgres.

1. Postgres up, databases created, migrations applied.
2. The QBO sandbox served on 127.0.0.1 (state kept in ``.data/sandbox-state.json`` between runs,
   so the second run sees the company the first one filled).
3. The demo source app seeded (first run only; later runs reuse it, so they show an idempotent
   incremental sync: no write calls when nothing changed).
4. The company connected (tokens encrypted at rest), its choices pulled, the demo mappings set
   (every tax rate but ``Luxury 25%``, left unmapped on purpose).
5. The push assets materialized through Dagster on its Postgres storage, then a summary: what was
   created, updated, held back and why, and where to look.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa

from qbo_pipelines import settings
from qbo_pipelines.canonical import RealmId
from qbo_pipelines.demo import setup
from qbo_pipelines.qbo.auth import token_cipher
from qbo_pipelines.sandbox.control import SandboxControl, write_token_file
from qbo_pipelines.sandbox.runtime import Sandbox
from qbo_pipelines.sandbox.server import SandboxServer
from qbo_pipelines.sandbox.state import DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET
from qbo_pipelines.source_app import demo
from qbo_pipelines.sync import env as sync_env
from qbo_pipelines.warehouse import db

Printer = Callable[[str], None]


@dataclass(frozen=True)
class DemoOptions:
    contacts: int = 200
    sales: int = 500
    workers: int = 20
    port: int = 8765  # the sandbox's usual port; a free one is taken when it is busy


def _source_is_empty(env: sync_env.SyncEnv) -> bool:
    return next(env.connector.iter_entity("invoices", None, 1), []) == []


def _forget_company(warehouse: sa.Engine, realm_id: str) -> None:
    """The sandbox state was lost: its records are gone, so our id map for it is void."""
    with warehouse.begin() as conn:
        for table in (
            "sync.record_state",
            "sync.dispatches",
            "sync.cursors",
            "sync.quarantine",
            "sync.notifications",
        ):
            conn.execute(
                sa.text(f"DELETE FROM {table} WHERE realm_id = :r"),  # noqa: S608
                {"r": realm_id},
            )


def sandbox_state_file() -> Path:
    return settings.data_dir() / "sandbox-state.json"


def sandbox_token_file() -> Path:
    return settings.data_dir() / "sandbox-control-token"


def demo_control_token() -> str:
    """The demo sandbox's control token, kept in the data directory (mode 0600) so that a
    process can tell the demo's own sandbox (``make demo``, ``make dev``) from another server
    answering on its port."""
    path = sandbox_token_file()
    if path.exists():
        return path.read_text(encoding="utf-8").strip()
    import secrets

    token = secrets.token_urlsafe(32)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_token_file(path, token)
    return token


class SandboxAlreadyServedError(RuntimeError):
    """Another process serves the demo's sandbox on the port (two commands started together)."""


def start_demo_sandbox(
    port: int, *, ours_at: Callable[[], bool] | None = None
) -> tuple[Sandbox, SandboxServer]:
    """Serve the demo's sandbox (state kept between runs) on ``port``, or a free one if busy.

    Raises:
        SandboxAlreadyServedError: the port is busy and ``ours_at`` says the demo's own sandbox
            answers there: one state file is never served twice.
    """
    sandbox = Sandbox(
        state_file=str(sandbox_state_file()), throttle=True, control_token=demo_control_token()
    )
    try:
        server = SandboxServer(sandbox, port=port).start()
    except OSError:
        if ours_at is not None and ours_at():
            raise SandboxAlreadyServedError(f"the demo's sandbox answers on port {port}") from None
        server = SandboxServer(sandbox, port=0).start()
    _configure_app(server.base_url)
    return sandbox, server


def _configure_app(base_url: str) -> None:
    """The sandbox's own app credentials for this process and the Dagster runs it starts."""
    os.environ[sync_env.ENV_CLIENT_ID] = DEFAULT_CLIENT_ID
    os.environ[sync_env.ENV_CLIENT_SECRET] = DEFAULT_CLIENT_SECRET
    os.environ[sync_env.ENV_API_URL] = base_url
    os.environ[sync_env.ENV_OAUTH_URL] = base_url


def run(options: DemoOptions, out: Printer = print) -> int:
    stack = db.bootstrap()
    out(
        f"postgres: {'embedded' if stack.pg.embedded else 'external'}; migrations applied now: "
        f"{', '.join(stack.applied) or 'none'}"
    )
    os.environ["DAGSTER_HOME"] = str(settings.DAGSTER_HOME)
    os.environ["QBO_PIPELINES_DAGSTER_PG_URL"] = stack.dagster_url
    token_cipher(create=True)  # the local demo's token key (.data/token.key, mode 0600)
    state_file = sandbox_state_file()
    fresh_sandbox = not state_file.exists()
    sandbox, server = start_demo_sandbox(options.port)
    warehouse = db.make_engine(stack.warehouse_url)
    source = db.make_engine(stack.source_app_url)
    try:
        realm = RealmId(sandbox.store.default_realm)
        out(f"QBO sandbox: {server.base_url} (company {realm}, state in {state_file})")
        env = sync_env.SyncEnv(warehouse, source, sync_env.QboApp.from_env())
        if _source_is_empty(env):
            report = demo.seed(source, options.contacts, options.sales, options.workers)
            out(f"demo source app seeded: {report.rows} rows")
        else:
            out("demo source app: reusing the existing data (incremental sync)")
        if fresh_sandbox:
            _forget_company(warehouse, realm)
        control = SandboxControl(server.base_url)
        try:
            setup.prepare_sandbox_company(control, realm)
            setup.persist_demo_app(warehouse, control, server.base_url)  # for later commands
            setup.connect_with_tokens(
                env,
                realm,
                control.mint_tokens(realm),
                server.base_url,
                company_name="Sandbox Company",
            )
        finally:
            control.close()
        mapped = setup.apply_demo_mappings(env, realm)
        out(f"mappings: {mapped} ('Luxury 25%' left unmapped on purpose)")
        from qbo_pipelines.defs.runner import push_company  # Dagster only from here on

        result = push_company(realm)
        _summarise(result, warehouse, realm, out)
        if fresh_sandbox:
            _bookkeeper(server.base_url, realm, out)
        from qbo_pipelines.defs.pull import pull_company

        pulled = pull_company(realm)
        _summarise_pull(pulled, out)
        settled = push_company(realm)  # what the pull moved in the source that QBO still lacks
        _summarise_settle(settled, out)
        from qbo_pipelines.reconcile import reconcile_company  # R38: ends every demo run

        checked = reconcile_company(env, realm, trigger="demo")
        out(f"\n{checked.run.summary}\n  charts: .venv/bin/qbo-pipelines report")
        from qbo_pipelines.defs.marts import build_marts  # issue 13: the analysts' marts

        marts = build_marts()
        checks = marts["checks"]
        out(
            f"\nmarts run {marts['run_id']} ({_verdict(marts)}):"
            f" {len(marts['models'])} dbt models in schema marts, {sum(checks.values())} of"
            f" {len(checks)} checks passed (dbt tests; P&L, balance sheet and A/R aging tie out"
            f" to QBO's reports: {'yes' if checks.get(TIE_OUT_CHECK) else 'NO'});"
            " queries: docs/analysts.md"
        )
        ok = result["success"] and pulled["success"] and settled["success"]
        return 0 if ok and marts["success"] else 1
    finally:
        server.stop()
        warehouse.dispose()
        source.dispose()


BOOKKEEPER_CHORES = (
    "edit_customer",
    "new_customer",
    "invoice",
    "payment",
    "edit_customer",
    "deposit",
    "sales_receipt",
    "credit_memo",
    "bill",
    "bill_payment",
    "void",
    "delete",
)
"""A bookkeeper's day touching every kind of QBO record the marts show (reproducible: seed 7
picks the records)."""
TIE_OUT_CHECK = "marts/profit_and_loss:ties_out_to_qbo_reports"


def _bookkeeper(base_url: str, realm: str, out: Printer) -> None:
    """A bookkeeper's day in QBO after the first push: customers edited and created, invoices
    and payments recorded, a transaction deleted (the sandbox's simulator, reproducible)."""
    control = SandboxControl(base_url)
    try:
        steps = control.bookkeeper_run(
            realm, len(BOOKKEEPER_CHORES), seed=7, chores=BOOKKEEPER_CHORES
        )
    finally:
        control.close()
    kinds: dict[str, int] = {}
    for step in steps:
        kind = str(step.get("chore") or "change").replace("_", " ")
        kinds[kind] = kinds.get(kind, 0) + 1
    out(
        "\nbookkeeper in QBO: "
        + ", ".join(f"{n} {k}" for k, n in sorted(kinds.items()))
        + " (the pull brings them into the source app)"
    )


def _verdict(result: dict[str, object]) -> str:
    """``succeeded``, or ``FAILED: <why>`` (the run's reason in one line; its log in the UI)."""
    return "succeeded" if result["success"] else f"FAILED: {result.get('failure') or 'see the UI'}"


def _summarise_pull(result: dict[str, object], out: Printer) -> None:
    counts = result["counts"]
    assert isinstance(counts, dict)
    raw = {k: v for k, v in counts.items() if k.startswith("raw/qbo/")}
    reads = max((v.get("api_reads", 0) for v in raw.values()), default=0)
    rows = sum(v.get("rows", 0) for v in raw.values())
    out(
        f"\npull run {result['run_id']} ({_verdict(result)}):"
        f" {rows} QBO records extracted into raw_qbo with {reads} API reads"
    )
    columns = ("created", "updated", "unchanged", "conflicts", "deleted", "held_back", "skipped")
    out(f"  {'asset':36}" + "".join(f"{c:>11}" for c in columns))
    for key, values in counts.items():
        if key.startswith("pushed/source/"):
            out(f"  {key:36}" + "".join(f"{values.get(c, 0):>11}" for c in columns))


def _summarise_settle(result: dict[str, object], out: Printer) -> None:
    """The push after the pull: what the pull moved in the source that QBO's records still lack
    (an email the bookkeeper changed reaches the contact's invoices as their BillEmail, R18)."""
    counts = result["counts"]
    assert isinstance(counts, dict)
    pushed = {k: v for k, v in counts.items() if k.startswith("pushed/")}
    moved = {
        k.removeprefix("pushed/qbo/"): v.get("created", 0) + v.get("updated", 0)
        for k, v in pushed.items()
        if v.get("created", 0) + v.get("updated", 0)
    }
    calls = sum(v.get("api_calls", 0) for v in pushed.values())
    what = ", ".join(f"{n} {k}" for k, n in moved.items()) or "nothing"
    out(
        f"\npush run {result['run_id']} ({_verdict(result)}),"
        f" after the pull: {what} written, {calls} API calls"
    )


def _summarise(result: dict[str, object], warehouse: sa.Engine, realm: str, out: Printer) -> None:
    out(f"\npush run {result['run_id']} ({_verdict(result)}):")
    counts = result["counts"]
    checks = result.get("checks") or {}
    assert isinstance(counts, dict)
    assert isinstance(checks, dict)
    read = sum(v.get("read", 0) for k, v in counts.items() if k.startswith("raw/"))
    staged = sum(v.get("staged", 0) for k, v in counts.items() if k.startswith("staged/"))
    failing = sorted(k.split(":")[0] for k, ok in checks.items() if not ok)
    out(
        f"  extracted {read} source records, staged {staged}; Great Expectations: "
        f"{len(checks) - len(failing)} of {len(checks)} suites passed"
        + (
            f" (warnings on {', '.join(failing)}: the records concerned are held back below)"
            if failing
            else ""
        )
    )
    columns = (
        "created",
        "updated",
        "matched",
        "unchanged",
        "deleted",
        "held_back",
        "failed",
        "sent",
        "send_failed",
        "api_calls",
    )
    out(f"  {'asset':24}" + "".join(f"{c:>12}" for c in columns))
    for key, values in counts.items():
        if not key.startswith("pushed/"):
            continue
        out(f"  {key:24}" + "".join(f"{values.get(c, 0):>12}" for c in columns))
    from qbo_pipelines.status import problems, total_differences

    with warehouse.connect() as conn:
        held, failed = problems(conn, realm)
        differ = total_differences(conn, realm)
    if held:
        out("\nheld back (fix, and the next run syncs them):")
        for h in held[:SHOWN]:
            out(f"  {h.count:4} {h.entity:9} {h.reason}: e.g. {h.example}")
        _more(out, len(held))
    if failed:
        out("\nrefused by QBO (retried automatically; the fix):")
        for f in failed[:SHOWN]:
            out(f"  {f.count:4} {f.entity:9} QBO {f.reason}: e.g. {f.example}")
            out(f"       fix: {f.fix}")
        _more(out, len(failed))
    if differ:
        out("\nwritten, but QBO shows another total (the fix):")
        for d in differ:
            out(f"  {d.count:4} {d.entity:9} e.g. {d.example}")
            out(f"       fix: {d.fix}")
    out("\nwhere to look:")
    out("  Dagster UI (runs, asset lineage, metadata):  make dev, then http://127.0.0.1:3000")
    out('  warehouse:  psql "$(.venv/bin/qbo-pipelines db url --show-password)"')
    out("    SELECT * FROM marts.sync_status LIMIT 20;   SELECT * FROM marts.open_problems;")


SHOWN = 20
"""Problem groups the demo's summary lists before pointing at ``qbo-pipelines status``."""


def _more(out: Printer, groups: int) -> None:
    if groups > SHOWN:
        out(f"  ... and {groups - SHOWN} more kinds: qbo-pipelines status lists every one")
