"""Soak: kill -9 the push and the pull (and the QBO sandbox, and Postgres) at random points,
then compare source, warehouse and QBO field by field.

Usage::

    .venv/bin/python bench/soak.py [--kills 200] [--contacts 60] [--sales 150] [--seed 1]
        [--mode push|both] [--fault-rate 0.3] [--pg-kill-rate 0.2] [--bookkeeper-steps 6]
        [--chunk 500]

One demo company on real Postgres and the sandbox served by its CLI in a subprocess (QBO's
limits on, journal on: a killed sandbox keeps every write it answered 200 for).

``--mode push`` (the default; issue 9): each trial edits the source app (new, changed and
deleted sales, receipts and contacts, through the demo simulator), starts ``pipeline.push_all``
in a worker process and kills it with SIGKILL after a random delay; one trial in five also kills
the sandbox with SIGKILL and restarts it, one in five leaves a source transaction open across the
push.

``--mode both`` (issue 11): each trial ALSO edits QBO - the sandbox's bookkeeper (customers
edited and created, invoices raised, payments recorded, deposits, voids, deletes) plus targeted
races: the same customer's email changed on both sides (customers: ``qbo_wins``), a sale deleted
in the source while its invoice is edited in QBO, an invoice deleted in QBO while its sale is
edited in the source - and the worker runs ``pipeline.push_all`` and ``pipeline.pull_all`` (the
functions the assets and the CLI call) in a random order before being killed.
``--pg-kill-rate`` SIGKILLs the Postgres postmaster (and its backends) mid-run in that share of
trials and restarts it (the soak then runs its own pgserver, never the shared one);
``--fault-rate`` makes that share of QBO calls fail (429, 5xx, gateway timeouts, XML faults,
answers lost after commit).

After the last kill the faults stop, push and pull run to completion twice, and the script
compares:

* lost: a source sale, receipt or contact that should be in QBO (synced, not held back) and is
  not, a source delete of a record the sync created that is still live in QBO, or (``both``) a
  live QBO customer, invoice or payment with no source record;
* duplicated: two QBO records for one source record (same DocNumber, or more QBO payments than
  receipts linked), or two source records for one QBO record;
* amounts: an invoice's or payment's total in QBO that differs from the source;
* (``both``) fields: a linked contact's email or phone, a sale's balance, memo or doc number, a
  receipt's amount that differs between the source and QBO; revived: a record deleted on one side
  that came back; policy: a customer edited on both sides whose final email is not QBO's;
  fixed point: a third push + pull that writes anything on either side.

Prints the figures (the tables in tests/reliability/README.md); never asserts on time.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from cryptography.fernet import Fernet
from sandbox_process import SandboxProcess

from qbo_pipelines.canonical import RealmId
from qbo_pipelines.demo import setup
from qbo_pipelines.qbo.auth import ENV_TOKEN_KEY
from qbo_pipelines.qbo.secret import Secret
from qbo_pipelines.sandbox.control import SandboxControl
from qbo_pipelines.sandbox.state import DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET
from qbo_pipelines.source_app import demo
from qbo_pipelines.sync import pipeline, push
from qbo_pipelines.sync.env import QboApp, SyncEnv
from qbo_pipelines.warehouse import migrations, postgres

FAST = {"backoff_base": 0.01, "throttle_backoff_base": 0.5, "backoff_max": 0.2}
EVENTS: list[str] = []
"""The soak's own steps (trials, edits, kills), time-stamped for :func:`print_trace`."""


def event(text: str) -> None:
    EVENTS.append(f"{datetime.now(UTC).isoformat()} {text}")


def _env(warehouse_url: str, source_url: str, sandbox_url: str) -> SyncEnv:
    app = QboApp(
        client_id=DEFAULT_CLIENT_ID,
        client_secret=Secret(DEFAULT_CLIENT_SECRET),
        api_url=sandbox_url,
        oauth_url=sandbox_url,
        redirect_uri="http://127.0.0.1/callback",
    )
    return SyncEnv(
        sa.create_engine(warehouse_url), sa.create_engine(source_url), app, client_options=FAST
    )


def worker(args: argparse.Namespace) -> None:
    env = _env(args.warehouse, args.source, args.sandbox)
    realm = RealmId(args.realm)
    run_id = f"soak-{uuid.uuid4().hex[:6]}"
    for step in args.steps.split(","):
        if step == "push" and args.push_path == "job":
            _push_job(args)
        elif step == "push":
            pipeline.push_all(env, realm, run_id=run_id)
        else:
            pipeline.pull_all(env, realm, run_id=run_id)


def _push_job(args: argparse.Namespace) -> None:
    """The push as a Dagster run executes it: every ``raw/source``, ``staged/qbo`` and
    ``pushed/qbo`` asset of the company partition in this process (one snapshot per run), on
    an in-memory Dagster instance."""
    import dagster as dg

    from qbo_pipelines.defs.push import COMPANIES, PUSH_ASSETS
    from qbo_pipelines.defs.resources import QboResource, SourceAppResource, WarehouseResource

    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions(COMPANIES, [args.realm])
    result = dg.materialize(
        PUSH_ASSETS,
        partition_key=args.realm,
        instance=instance,
        resources={
            "warehouse": WarehouseResource(database_url=args.warehouse),
            "source_app": SourceAppResource(database_url=args.source),
            "qbo": QboResource(
                client_id=DEFAULT_CLIENT_ID,
                client_secret=DEFAULT_CLIENT_SECRET,
                api_url=args.sandbox,
                oauth_url=args.sandbox,
            ),
        },
        raise_on_error=True,
    )
    assert result.success


class PrivatePostgres:
    """A pgserver of the soak's own (never the shared one): its postmaster can be SIGKILLed
    and restarted (crash recovery on start) without touching anyone else's databases."""

    def __init__(self, pgdata: Path) -> None:
        import pgserver

        self.pgdata = pgdata
        self.server = pgserver.get_server(pgdata, cleanup_mode=None)  # type: ignore[attr-defined]
        self.pg = postgres.PgServer(
            admin_url=sa.make_url(self.server.get_uri("postgres")), embedded=True, data_dir=pgdata
        )

    def postmaster(self) -> int | None:
        return postgres.embedded_pid(self.pgdata)

    def kill(self) -> None:
        """SIGKILL the postmaster and every backend it started (no clean shutdown at all)."""
        pid = self.postmaster()
        if pid is None:
            return
        children = [
            int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit() and _ppid(p) == pid
        ]
        for victim in [pid, *children]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(victim, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and any(_alive(v) for v in [pid, *children]):
            time.sleep(0.05)

    def restart(self) -> None:
        """Start it again on the same data directory (Postgres runs crash recovery). A SIGKILLed
        postmaster may linger as a zombie when nothing reaps it (a container's PID 1): its lock
        files are removed once the process is dead, or Postgres would refuse to start."""
        lock = self.pgdata / "postmaster.pid"
        if lock.exists():
            try:
                pid = int(lock.read_text().splitlines()[0])
            except (ValueError, IndexError):
                pid = 0
            if not pid or not _alive(pid):
                lock.unlink()
                for socket_lock in self.pgdata.glob(".s.PGSQL.*.lock"):
                    socket_lock.unlink()
        type(self.server)._lock.acquire()
        try:
            self.server.ensure_postgres_running()
        finally:
            type(self.server)._lock.release()

    def stop(self) -> None:
        postgres.stop_embedded(self.pgdata)


def _ppid(proc: Path) -> int | None:
    try:
        stat = (proc / "stat").read_text()
    except OSError:
        return None
    return int(stat.rsplit(")", 1)[1].split()[1])


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    state = Path(f"/proc/{pid}/stat")
    try:
        return state.read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _sql(engine: sa.Engine, text: str, **params: object) -> list[Any]:
    with engine.begin() as conn:
        result = conn.execute(sa.text(text), params)
        return list(result) if result.returns_rows else []


def compare(
    env: SyncEnv, control: SandboxControl, realm: str, *, qbo_edited: bool = False
) -> dict[str, int]:
    """Lost, duplicated and amount mismatches between source, warehouse and QBO."""
    wh, src = env.warehouse, env.source
    qbo = {k: control.entities(realm, k) for k in ("Invoice", "CreditMemo", "Payment", "Customer")}
    out: Counter[str] = Counter()
    examples: list[str] = []
    ours = {  # QBO numbers its own documents per type (1001, ...): only the source's count
        str(n)
        for (n,) in _sql(src, "SELECT doc_number FROM app.sales WHERE origin = 'source'")
        if n
    }
    docs = Counter(
        d["DocNumber"]
        for k in ("Invoice", "CreditMemo")
        for d in qbo[k]
        if d.get("DocNumber") in ours
    )
    out["duplicated"] += sum(n - 1 for n in docs.values() if n > 1)
    examples += [f"DocNumber {d} {n} times in QBO" for d, n in docs.items() if n > 1]
    live = {(k, d["Id"]): d for k in qbo for d in qbo[k]}
    states = _sql(
        wh,
        "SELECT entity, source_id, qbo_entity, qbo_id, status, created_by,"
        " deleted_in_source, deleted_in_qbo FROM sync.record_state WHERE realm_id = :r",
        r=realm,
    )
    sales = {
        str(i): (d, Decimal(t))
        for i, d, t in _sql(src, "SELECT id, doc_number, total FROM app.sales")
    }
    receipts = {str(i): Decimal(a) for i, a in _sql(src, "SELECT id, amount FROM app.receipts")}
    checked = 0
    for entity, sid, kind, qid, status, created_by, _deleted_src, _deleted in states:
        if entity not in {"invoices", "payments"}:
            continue
        gone = sid not in (sales if entity == "invoices" else receipts)
        if gone:
            if (
                created_by == "sync"
                and qid
                and (kind, qid) in live
                and kind != "Invoice"
                or (
                    created_by == "sync"
                    and qid
                    and (kind, qid) in live
                    and live[(kind, qid)].get("TotalAmt") not in (0, 0.0, "0")
                )
            ):
                if status == "failed":
                    out["refused"] += 1  # QBO refused the delete: reported, retried when due
                    continue
                out["lost"] += 1  # a delete not carried out
                examples.append(f"delete not carried out: {entity} #{sid} ({status})")
            continue
        if status in {"held", "skipped"}:
            continue
        if status == "deleted" or _deleted:
            out["deleted_in_qbo"] += 1  # deleted in QBO: the source record kept and marked
            continue
        if status == "failed":
            out["refused"] += 1  # QBO refused it: reported with a fix, retried, not lost
            continue
        checked += 1
        if not qid or (kind, qid) not in live:
            out["lost"] += 1
            why = _sql(
                wh,
                "SELECT error_code, error_message FROM sync.record_state WHERE"
                " realm_id = :r AND entity = :e AND source_id = :s",
                r=realm,
                e=entity,
                s=sid,
            )
            examples.append(f"missing in QBO: {entity} #{sid} ({status}, {kind} {qid}) {why}")
            continue
        record = live[(kind, qid)]
        want = sales[sid][1] if entity == "invoices" else receipts[sid]
        got = Decimal(str(record.get("TotalAmt", 0)))
        if qbo_edited and got == 0 and want != 0:
            out["voided_in_qbo"] += 1  # the bookkeeper voided it: QBO's change, kept in QBO
        elif abs(got) != abs(want):
            out["amounts"] += 1
            examples.append(f"amount: {entity} #{sid} source {want} QBO {kind} {qid} {got}")
    ours_payments = sum(1 for e, *_rest in states if e == "payments" and _rest[2])
    out["duplicated"] += max(0, len(qbo["Payment"]) - ours_payments)
    if len(qbo["Payment"]) > ours_payments:
        known = {q for e, _s, _k, q, *_r in states if e == "payments" and q}
        extra = [p["Id"] for p in qbo["Payment"] if p["Id"] not in known]
        examples.append(f"QBO payments no receipt is linked to: {extra[:10]}")
    synced_sales = {sid for e, sid, _k, q, st, *_ in states if e == "invoices" and q}
    pending = [sid for sid in sales if sid not in synced_sales]
    held = {
        sid
        for e, sid, _k, _q, st, *_ in states
        if e == "invoices" and st in {"held", "skipped", "failed"}
    }
    missing = [s for s in pending if s not in held]
    out["lost"] += len(missing)
    status_of = {sid: st for e, sid, _k, _q, st, *_ in states if e == "invoices"}
    examples += [f"never synced: invoices #{s} ({status_of.get(s, 'no state')})" for s in missing]
    out["checked"] = checked
    for line in examples[:20]:
        print("  " + line)
    return dict(out)


# --------------------------------------------------------------------------- both directions


@dataclass
class Races:
    """The targeted two-sided edits made so far, and what each must end as."""

    email: dict[str, tuple[str, str]] = field(default_factory=dict)
    """source contact id -> (QBO id, the QBO-side email that must win: customers are qbo_wins)"""
    source_deleted: dict[str, str] = field(default_factory=dict)
    """source sale id deleted in the source while QBO edited its invoice -> QBO invoice id"""
    qbo_deleted: dict[str, str] = field(default_factory=dict)
    """source sale id edited in the source while QBO deleted its invoice -> QBO invoice id"""
    made: int = 0


def _linked(env: SyncEnv, realm: str, entity: str, qbo_entity: str) -> list[tuple[str, str]]:
    return [
        (str(s), str(q))
        for s, q in _sql(
            env.warehouse,
            "SELECT source_id, qbo_id FROM sync.record_state WHERE realm_id = :r AND entity = :e"
            " AND qbo_entity = :q AND qbo_id IS NOT NULL AND status = 'synced'"
            " AND intent IS NULL AND NOT deleted_in_source AND NOT deleted_in_qbo",
            r=realm,
            e=entity,
            q=qbo_entity,
        )
    ]


def qbo_side_edits(
    env: SyncEnv,
    control: SandboxControl,
    realm: str,
    rng: random.Random,
    races: Races,
    trial: int,
    steps: int,
) -> None:
    """The bookkeeper's chores, then one targeted race of each kind (when a record fits)."""
    touched: set[str] = set()
    for done in control.bookkeeper_run(realm, steps, seed=rng.randrange(10**6)):
        if done.get("entity") == "Customer":
            event(f"bookkeeper: Customer {done.get('id')} {done}")
        if done.get("entity") == "Customer" and done.get("field") in (None, "email"):
            touched.add(str(done.get("id")))
    if touched:  # a later edit of the same field by the bookkeeper: its value stands
        for sid, (qid, _v) in list(races.email.items()):
            if qid in touched:
                del races.email[sid]
    contacts = _linked(env, realm, "customers", "Customer")
    if contacts:
        sid, qid = rng.choice(contacts)
        qbo_value = f"qbo.t{trial}@example.com"
        with contextlib.suppress(Exception):  # a record the bookkeeper just made inactive
            control.user_update(
                realm,
                "Customer",
                {"Id": qid, "PrimaryEmailAddr": {"Address": qbo_value}, "sparse": True},
            )
            _sql(
                env.source,
                "UPDATE app.contacts SET email = :e WHERE id = :i",
                e=f"src.t{trial}@example.com",
                i=int(sid),
            )
            races.email[sid] = (qid, qbo_value)
            races.made += 1
            event(f"email race on contact #{sid} / Customer {qid}: QBO {qbo_value}")
    invoices = {
        q: s
        for s, q in _linked(env, realm, "invoices", "Invoice")
        if _sql(env.source, "SELECT 1 FROM app.sales WHERE id = :i AND origin = 'source'", i=int(s))
    }
    live = {i["Id"]: i for i in control.entities(realm, "Invoice")}
    paid = {
        str(link.get("TxnId"))
        for p in control.entities(realm, "Payment")
        for line in p.get("Line", [])
        for link in line.get("LinkedTxn", [])
    }
    fits = sorted(q for q in invoices if q in live and q not in paid)
    if len(fits) >= 2 and rng.random() < 0.5:
        qid = rng.choice(fits)
        fits.remove(qid)
        sid = invoices[qid]
        control.user_update(
            realm, "Invoice", {"Id": qid, "PrivateNote": f"edited in QBO t{trial}", "sparse": True}
        )
        _sql(env.source, "DELETE FROM app.receipts WHERE sale_id = :i", i=int(sid))
        _sql(env.source, "DELETE FROM app.sales WHERE id = :i", i=int(sid))
        races.source_deleted[sid] = qid
        races.made += 1
    if fits and rng.random() < 0.5:
        qid = rng.choice(fits)
        sid = invoices[qid]
        control.user_delete(realm, "Invoice", qid)
        event(f"invoice {qid} deleted in QBO, its sale #{sid} edited in the source")
        _sql(
            env.source,
            "UPDATE app.sales SET memo = :m WHERE id = :i",
            m=f"src t{trial}",
            i=int(sid),
        )
        races.qbo_deleted[sid] = qid
        races.made += 1


def _norm(value: object) -> object:
    if isinstance(value, Decimal):
        return value.normalize()
    if isinstance(value, (int, float)):
        return Decimal(str(value)).normalize()
    text = str(value).strip() if value is not None else ""
    return text or None


def compare_both(env: SyncEnv, control: SandboxControl, realm: str, races: Races) -> dict[str, int]:
    """The QBO side against the source, field by field, after the push and the pull converged."""
    wh, src = env.warehouse, env.source
    out: Counter[str] = Counter()
    examples: list[str] = []
    qbo = {
        k: {d["Id"]: d for d in control.entities(realm, k)}
        for k in ("Customer", "Invoice", "Payment")
    }
    states = _sql(
        wh,
        "SELECT entity, qbo_entity, qbo_id, source_id, status, created_by, deleted_in_source,"
        " deleted_in_qbo FROM sync.record_state WHERE realm_id = :r AND qbo_id IS NOT NULL",
        r=realm,
    )
    by_qbo: dict[tuple[str, str], list[Any]] = {}
    for row in states:
        by_qbo.setdefault((row.qbo_entity, row.qbo_id), []).append(row)
    tables = {"Customer": "contacts", "Invoice": "sales", "Payment": "receipts"}
    rows = {
        k: {str(r["id"]): dict(r) for r in _sql_maps(src, f"SELECT * FROM app.{t}")}  # noqa: S608
        for k, t in tables.items()
    }
    held = {
        (str(e), str(q))
        for e, q in _sql(
            wh,
            "SELECT DISTINCT entity, qbo_id FROM sync.ledger WHERE realm_id = :r AND direction ="
            " 'pull' AND outcome IN ('held', 'skipped') AND qbo_id IS NOT NULL",
            r=realm,
        )
    }
    entity_of = {"Customer": "customers", "Invoice": "invoices", "Payment": "payments"}
    traced: list[tuple[str, str]] = []
    for kind, live in qbo.items():
        for qid, obj in live.items():
            if kind == "Customer" and obj.get("Active") is False:
                continue
            linked = [s for s in by_qbo.get((kind, qid), []) if s.source_id]
            mirrors = [r for r in rows[kind].values() if r.get("qbo_id") == qid]
            sids = {s.source_id for s in linked} | {str(r["id"]) for r in mirrors}
            if len(sids) > 1:
                out["duplicated"] += len(sids) - 1
                examples.append(f"two source records for QBO {kind} {qid}: {sorted(sids)}")
            if not sids:
                if kind == "Payment" and not any((("Invoice", i) in by_qbo) for i in _applied(obj)):
                    out["unplaceable"] += 1  # a payment of an invoice the source cannot hold
                    continue
                if (entity_of[kind], qid) in held:
                    out["held"] += 1
                    continue
                out["lost"] += 1
                examples.append(f"QBO {kind} {qid} has no source record")
                continue
            if any(s.deleted_in_qbo for s in linked):
                # voided in QBO (a voided record stays in QBO with zero amounts): the source
                # record is kept as it was, by policy, so its fields are not compared
                out["voided_kept"] += 1
                continue
            out["checked_qbo"] += 1
            sid = next(iter(sids))
            row = rows[kind].get(sid)
            if row is None:
                st = linked[0] if linked else None
                if st is not None and st.deleted_in_source:
                    continue  # deleted in the source, kept in QBO by policy (not revived)
                out["lost"] += 1
                examples.append(f"QBO {kind} {qid}: source #{sid} missing")
                continue
            for name, want, got in _fields(kind, obj, row):
                if _norm(want) != _norm(got):
                    out["fields"] += 1
                    examples.append(f"{kind} {qid} / #{sid} {name}: QBO {want!r} source {got!r}")
                    if kind == "Customer" and (sid, qid) not in traced:
                        traced.append((sid, qid))
                    if out["fields"] <= 3:  # the record's story, for the post-mortem
                        examples += [
                            f"    {tuple(h)}"
                            for h in _sql(
                                wh,
                                "SELECT run_id, direction, operation, outcome,"
                                " left(coalesce(error_message, details::text, ''), 160)"
                                " FROM sync.ledger WHERE realm_id = :r AND entity = :e"
                                " AND (source_id = :s OR qbo_id = :q) ORDER BY id",
                                r=realm,
                                e=entity_of[kind],
                                s=sid,
                                q=qid,
                            )[-12:]
                        ]
    for sid, qid in races.source_deleted.items():
        if sid in rows["Invoice"] or any(r.get("qbo_id") == qid for r in rows["Invoice"].values()):
            out["revived"] += 1
            examples.append(f"sale #{sid} deleted in the source came back")
        if qid in qbo["Invoice"]:
            why = _sql(
                wh,
                "SELECT status, fix FROM sync.record_state WHERE realm_id = :r"
                " AND entity = 'invoices' AND source_id = :s",
                r=realm,
                s=sid,
            )
            if why and why[0][0] == "failed" and why[0][1]:
                # QBO refused the delete (the bookkeeper paid the invoice meanwhile): reported
                # with its fix and retried, not revived
                out["refused_deletes"] += 1
                continue
            out["revived"] += 1  # source_wins + created by the sync: must be deleted in QBO
            examples.append(f"invoice {qid} of deleted sale #{sid} still live in QBO {why}")
    for sid, qid in races.qbo_deleted.items():
        sale = rows["Invoice"].get(sid)
        if sale is not None and not sale.get("qbo_deleted"):
            out["revived"] += 1
            examples.append(f"sale #{sid}: invoice {qid} deleted in QBO, sale not marked")
            examples += [
                f"    {tuple(h)}"
                for h in _sql(
                    wh,
                    "SELECT run_id, direction, operation, outcome, at,"
                    " left(coalesce(error_message, details::text, ''), 160)"
                    " FROM sync.ledger WHERE realm_id = :r AND entity = 'invoices'"
                    " AND (source_id = :s OR qbo_id = :q) ORDER BY id",
                    r=realm,
                    s=sid,
                    q=qid,
                )[-10:]
            ]
            examples += [
                f"    state {tuple(h)}"
                for h in _sql(
                    wh,
                    "SELECT status, deleted_in_source, deleted_in_qbo, sync_token, pulled_token,"
                    " intent IS NOT NULL, error_code, retry_at FROM sync.record_state"
                    " WHERE realm_id = :r AND entity = 'invoices' AND source_id = :s",
                    r=realm,
                    s=sid,
                )
            ]
            examples += [
                f"    raw_qbo {tuple(h)}"
                for h in _sql(
                    wh,
                    "SELECT deleted, sync_token, loaded_at FROM raw_qbo.invoices"
                    " WHERE realm_id = :r AND qbo_id = :q",
                    r=realm,
                    q=qid,
                )
            ]
            examples += [f"    soak {e}" for e in EVENTS if f"invoice {qid} " in e]
        doc = sale.get("doc_number") if sale else None
        again = [i for i in qbo["Invoice"].values() if doc and i.get("DocNumber") == doc]
        if again:
            out["revived"] += 1
            examples.append(f"sale #{sid}: invoice deleted in QBO re-created as {again[0]['Id']}")
    for sid, (qid, value) in races.email.items():
        contact = rows["Customer"].get(sid)
        customer = qbo["Customer"].get(qid)
        if contact is None or customer is None:
            continue
        out["policy_checked"] += 1
        got_qbo = (customer.get("PrimaryEmailAddr") or {}).get("Address")
        if contact.get("email") != value or got_qbo != value:
            out["policy"] += 1
            examples.append(
                f"contact #{sid}: email {contact.get('email')!r} / QBO {got_qbo!r}, want {value!r}"
            )
    out["conflicts"] = int(
        _sql(
            wh,
            "SELECT count(*) FROM sync.ledger WHERE realm_id = :r AND operation = 'conflict'",
            r=realm,
        )[0][0]
    )
    for line in examples[:80]:
        print("  " + line)
    for sid, qid in traced[:3]:
        print(f"  the story of contact #{sid} / Customer {qid}:")
        print_trace(env, realm, sid, qid, EVENTS)
    return dict(out)


def _applied(obj: dict[str, Any]) -> list[str]:
    return [
        str(link.get("TxnId"))
        for line in obj.get("Line", [])
        for link in line.get("LinkedTxn", [])
        if link.get("TxnType") == "Invoice"
    ]


def _fields(kind: str, obj: dict[str, Any], row: dict[str, Any]) -> list[tuple[str, Any, Any]]:
    if kind == "Customer":
        return [
            ("email", (obj.get("PrimaryEmailAddr") or {}).get("Address"), row.get("email")),
            ("phone", (obj.get("PrimaryPhone") or {}).get("FreeFormNumber"), row.get("phone")),
        ]
    if kind == "Invoice":
        out: list[tuple[str, Any, Any]] = [
            ("balance", Decimal(str(obj.get("Balance", 0))), row.get("balance"))
        ]
        if row.get("origin") == "qbo":
            out += [
                ("total", Decimal(str(obj.get("TotalAmt", 0))), row.get("total")),
                ("memo", obj.get("PrivateNote"), row.get("memo")),
                ("doc_number", obj.get("DocNumber"), row.get("doc_number")),
            ]
        return out
    return [("amount", Decimal(str(obj.get("TotalAmt", 0))), row.get("amount"))]


def _sql_maps(engine: sa.Engine, text: str) -> list[Any]:
    with engine.connect() as conn:
        return list(conn.execute(sa.text(text)).mappings())


def write_counts(control: SandboxControl, realm: str) -> tuple[int, int]:
    """QBO write calls and CDC reads so far (the sandbox's request log)."""
    counts = control.request_counts(realm)
    writes = sum(
        n
        for label, n in counts.items()
        if label == "batch" or label.startswith(("create", "update", "delete", "send", "void"))
    )
    return writes, counts.get("cdc", 0)


def _converge(
    env: SyncEnv, realm: str, both: bool, run_id: str, push: Callable[[str], None] | None = None
) -> None:
    """Every scheduled retry falls due (as time would make it), then one push (and pull);
    ``push`` (given the run id) replaces the library push (``--push-path job``)."""
    event(f"converge {run_id}")
    _sql(
        env.warehouse,
        "UPDATE sync.record_state SET retry_at = now() WHERE realm_id = :r AND retry_at > now()",
        r=realm,
    )
    if push is not None:
        push(run_id)
    else:
        pipeline.push_all(env, RealmId(realm), run_id=run_id)
    if both:
        pipeline.pull_all(env, RealmId(realm), run_id=run_id)


# --------------------------------------------------------------------------- post-mortem trace

_TRACE_WAREHOUSE = """
CREATE SCHEMA IF NOT EXISTS soak;
COMMENT ON SCHEMA soak IS 'The soak''s post-mortem trace (bench/soak.py only, never the product).';
CREATE TABLE IF NOT EXISTS soak.trace (
    id bigserial PRIMARY KEY,
    at timestamptz NOT NULL DEFAULT clock_timestamp(),
    pid int NOT NULL DEFAULT pg_backend_pid(),
    kind text NOT NULL,
    key text NOT NULL,
    row jsonb NOT NULL
);
COMMENT ON TABLE soak.trace IS 'Every version of a customer''s sync state and raw_qbo row.';
COMMENT ON COLUMN soak.trace.id IS 'Order of the writes.';
COMMENT ON COLUMN soak.trace.at IS 'When (clock time of the write).';
COMMENT ON COLUMN soak.trace.pid IS 'The writing backend.';
COMMENT ON COLUMN soak.trace.kind IS 'state or raw.';
COMMENT ON COLUMN soak.trace.key IS 'source id (state) or QBO id (raw).';
COMMENT ON COLUMN soak.trace.row IS 'The row as written.';
CREATE OR REPLACE FUNCTION soak.trace_state() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO soak.trace (kind, key, row) VALUES ('state', NEW.source_id, to_jsonb(NEW));
    RETURN NULL;
END $$;
CREATE OR REPLACE FUNCTION soak.trace_raw() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO soak.trace (kind, key, row) VALUES ('raw', NEW.qbo_id, jsonb_build_object(
        'sync_token', NEW.sync_token, 'run_id', NEW.run_id,
        'email', NEW.data->'PrimaryEmailAddr'->>'Address',
        'phone', NEW.data->'PrimaryPhone'->>'FreeFormNumber'));
    RETURN NULL;
END $$;
DROP TRIGGER IF EXISTS soak_trace ON sync.record_state;
CREATE TRIGGER soak_trace AFTER INSERT OR UPDATE ON sync.record_state FOR EACH ROW
    WHEN (NEW.entity = 'customers') EXECUTE FUNCTION soak.trace_state();
DROP TRIGGER IF EXISTS soak_trace ON raw_qbo.customers;
CREATE TRIGGER soak_trace AFTER INSERT OR UPDATE ON raw_qbo.customers FOR EACH ROW
    EXECUTE FUNCTION soak.trace_raw();
"""

_TRACE_SOURCE = """
CREATE SCHEMA IF NOT EXISTS soak;
CREATE TABLE IF NOT EXISTS soak.contacts (
    id bigserial PRIMARY KEY,
    at timestamptz NOT NULL DEFAULT clock_timestamp(),
    txid bigint NOT NULL DEFAULT txid_current(),
    pid int NOT NULL DEFAULT pg_backend_pid(),
    origin text NOT NULL DEFAULT app.change_origin(),
    contact_id bigint NOT NULL,
    email text,
    phone text
);
COMMENT ON TABLE soak.contacts IS 'Every version of a contact''s email and phone (soak only).';
CREATE OR REPLACE FUNCTION soak.trace_contact() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.email IS DISTINCT FROM OLD.email OR NEW.phone IS DISTINCT FROM OLD.phone THEN
        INSERT INTO soak.contacts (contact_id, email, phone) VALUES (NEW.id, NEW.email, NEW.phone);
    END IF;
    RETURN NULL;
END $$;
DROP TRIGGER IF EXISTS soak_trace ON app.contacts;
CREATE TRIGGER soak_trace AFTER UPDATE ON app.contacts FOR EACH ROW
    EXECUTE FUNCTION soak.trace_contact();
"""


def start_trace(env: SyncEnv) -> None:
    """Record every version of customers' sync state, raw_qbo rows and source contacts (the
    post-mortem of a field that differs, :func:`print_trace`)."""
    with env.warehouse.begin() as conn:
        conn.exec_driver_sql(_TRACE_WAREHOUSE)
    with env.source.begin() as conn:
        conn.exec_driver_sql(_TRACE_SOURCE)


def _short(value: object) -> str:
    if isinstance(value, dict):
        email = (value.get("PrimaryEmailAddr") or {}).get("Address")
        phone = (value.get("PrimaryPhone") or {}).get("FreeFormNumber")
        return f"email={email} phone={phone}"
    return str(value)


def print_trace(env: SyncEnv, realm: str, sid: str, qid: str, events: list[str]) -> None:
    """One customer's whole story, in time order: source versions, QBO versions as extracted,
    sync state versions, ledger rows and the soak's own steps."""
    lines: list[tuple[Any, str]] = []
    for at, txid, origin, email, phone in _sql(
        env.source,
        "SELECT at, txid, origin, email, phone FROM soak.contacts WHERE contact_id = :i",
        i=int(sid),
    ):
        lines.append((at, f"source  {origin:4} tx{txid} email={email} phone={phone}"))
    for at, pid, kind, row in _sql(
        env.warehouse,
        "SELECT at, pid, kind, row FROM soak.trace WHERE (kind = 'state' AND key = :s)"
        " OR (kind = 'raw' AND key = :q) ORDER BY id",
        s=sid,
        q=qid,
    ):
        if kind == "raw":
            lines.append((at, f"raw_qbo pid{pid} {row}"))
            continue
        intent = row.get("intent") or {}
        lines.append(
            (
                at,
                f"state   pid{pid} run={row.get('last_run_id')} {row.get('status')}"
                f" tok={row.get('sync_token')} pulled={row.get('pulled_token')}"
                f" hash={str(row.get('source_hash'))[:8]} due={row.get('pull_due')}"
                f" src_base[{_short(row.get('source_base'))}]"
                f" qbo_base[{_short(row.get('qbo_base'))}]"
                + (
                    f" intent={intent.get('op')} body[{_short(intent.get('body'))}]"
                    f" intent_base[{_short(intent.get('source_base'))}]"
                    if intent
                    else ""
                ),
            )
        )
    for at, run, direction, op, outcome, text in _sql(
        env.warehouse,
        "SELECT at, run_id, direction, operation, outcome,"
        " left(coalesce(error_message, details::text, ''), 140) FROM sync.ledger"
        " WHERE realm_id = :r AND entity = 'customers' AND (source_id = :s OR qbo_id = :q)",
        r=realm,
        s=sid,
        q=qid,
    ):
        lines.append((at, f"ledger  {run} {direction} {op} {outcome} {text}"))
    for event in events:
        at_text, _, what = event.partition(" ")
        lines.append((datetime.fromisoformat(at_text), f"soak    {what}"))
    for at, text in sorted(lines, key=lambda x: x[0]):
        print(f"    {at:%H:%M:%S.%f} {text}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--kills", type=int, default=200)
    parser.add_argument("--contacts", type=int, default=60)
    parser.add_argument("--sales", type=int, default=150)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--mode",
        choices=("push", "both"),
        default="push",
        help="push: the push alone (issue 9); both: QBO edited too, push and pull killed",
    )
    parser.add_argument(
        "--fault-rate",
        type=float,
        default=0.0,
        help="share of QBO calls that fail (429, 5xx, gateway timeouts, XML faults, answers "
        "lost after commit), e.g. 0.3 for a 30%% fault storm",
    )
    parser.add_argument(
        "--pg-kill-rate",
        type=float,
        default=0.0,
        help="share of trials in which Postgres itself is SIGKILLed mid-run and restarted "
        "(the soak then runs a pgserver of its own)",
    )
    parser.add_argument(
        "--bookkeeper-steps", type=int, default=6, help="QBO-side chores per trial (both)"
    )
    parser.add_argument(
        "--keep", action="store_true", help="keep the two databases for a post-mortem (printed)"
    )
    parser.add_argument(
        "--push-path",
        choices=("library", "job"),
        default="library",
        help="library: the workers push with pipeline.push_all; job: they run the push_job's "
        "assets (raw/source, staged/qbo, pushed/qbo: one snapshot per run) in process",
    )
    parser.add_argument(
        "--chunk",
        type=int,
        default=push.CHUNK,
        help="records per push chunk (smaller: a push of many chunks, streamed, at a small size)",
    )
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--steps", default="push", help=argparse.SUPPRESS)
    parser.add_argument("--warehouse")
    parser.add_argument("--source")
    parser.add_argument("--sandbox")
    parser.add_argument("--realm")
    args = parser.parse_args()
    push.CHUNK = args.chunk
    if args.worker:
        worker(args)
        return
    os.environ.setdefault(ENV_TOKEN_KEY, Fernet.generate_key().decode())
    rng = random.Random(args.seed)
    both = args.mode == "both"
    private = (
        PrivatePostgres(Path(tempfile.mkdtemp(prefix="qbo-soak-pg-")) / "pg")
        if args.pg_kill_rate
        else None
    )
    pg = private.pg if private is not None else postgres.server()
    tag = uuid.uuid4().hex[:8]
    names = (f"soak{tag}_wh", f"soak{tag}_src")
    for n in names:
        postgres.create_database(pg, n)
    wh_url = pg.url(names[0]).render_as_string(hide_password=False)
    src_url = pg.url(names[1]).render_as_string(hide_password=False)
    data_dir = Path(tempfile.mkdtemp(prefix="qbo-soak-"))
    sandbox = SandboxProcess(data_dir)
    sandbox.start()
    env = _env(wh_url, src_url, sandbox.url)
    races = Races()
    try:
        migrations.migrate_warehouse(env.warehouse)
        migrations.migrate_source_app(env.source)
        start_trace(env)
        demo.seed(
            env.source, contacts=args.contacts, sales=args.sales, workers=4, seed_value=args.seed
        )
        control = sandbox.control()
        realm = RealmId(str(control.info()["realm_id"]))
        setup.prepare_sandbox_company(control, realm)
        setup.connect_with_tokens(env, realm, control.mint_tokens(realm), sandbox.url)
        setup.apply_demo_mappings(env, realm)
        if both:  # a first full cycle: the usual state of a two-way sync before the storm
            pipeline.push_all(env, realm, run_id="soak-initial")
            pipeline.pull_all(env, realm, run_id="soak-initial")
        kills = sandbox_kills = open_tx = crashed = pg_kills = pg_stopped = 0
        started = time.monotonic()
        for trial in range(args.kills):
            demo.simulate(
                env.source,
                rate=200.0,
                duration=rng.uniform(0.01, 0.05),
                seed_value=rng.randrange(10**6),
            )
            if both:
                qbo_side_edits(
                    env, sandbox.control(), realm, rng, races, trial, args.bookkeeper_steps
                )
            slow = None
            if rng.random() < 0.2:
                slow = env.source.connect()
                slow.begin()
                slow.execute(
                    sa.text(
                        "UPDATE app.contacts SET phone = phone || '' WHERE id ="
                        " (SELECT min(id) FROM app.contacts)"
                    )
                )
                open_tx += 1
            if args.fault_rate:
                control = sandbox.control()
                control.clear_faults()
                for kind in ("throttle", "server_error", "timeout", "xml", "drop_after_commit"):
                    control.inject_fault(
                        kind=kind,
                        realm_id=realm,
                        count=None,
                        probability=args.fault_rate / 5,
                        delay_seconds=0.5,
                    )
            steps = rng.choice(("push,pull", "pull,push")) if both else "push"
            event(f"trial {trial + 1}: worker {steps} starts")
            proc = subprocess.Popen(
                [
                    sys.executable,
                    __file__,
                    "--worker",
                    "--steps",
                    steps,
                    "--warehouse",
                    wh_url,
                    "--source",
                    src_url,
                    "--sandbox",
                    sandbox.url,
                    "--realm",
                    realm,
                    "--push-path",
                    args.push_path,
                    "--chunk",
                    str(args.chunk),
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
            )
            pg_killed = private is not None and rng.random() < args.pg_kill_rate
            # (a job-path worker first spends some 4 s importing Dagster and loading assets)
            lead = 4.0 if args.push_path == "job" else 0.0
            time.sleep(lead + rng.uniform(0.2, 4.0 if not both else 6.0))
            if pg_killed and private is not None:
                if slow is not None:  # its connection dies with the server
                    with contextlib.suppress(Exception):
                        slow.close()
                    slow = None
                private.kill()
                pg_kills += 1
                time.sleep(rng.uniform(0.0, 1.0))
                private.restart()
                env.warehouse.dispose()
                env.source.dispose()
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
                kills += 1
                event(f"trial {trial + 1}: worker killed")
            else:
                event(f"trial {trial + 1}: worker ended ({proc.returncode})")
            _, err = proc.communicate()
            if proc.returncode not in (0, -signal.SIGKILL):
                text = err.decode(errors="replace")
                if pg_killed and ("OperationalError" in text or "terminating connection" in text):
                    pg_stopped += 1  # the run died with its database: expected, recovered next
                else:
                    crashed += 1
                    lines = text.strip().splitlines()
                    where = [x.strip() for x in lines if "qbo_pipelines/" in x][-2:]
                    print(
                        f"  worker exited {proc.returncode}: {(lines or ['?'])[-1][:300]}"
                        f" at {where}",
                        flush=True,
                    )
            if rng.random() < 0.2:
                sandbox.kill()
                sandbox.start()
                sandbox_kills += 1
                event(f"trial {trial + 1}: sandbox killed and restarted")
            if slow is not None:
                slow.commit()
                slow.close()
            print(
                f"trial {trial + 1}/{args.kills}: {kills} workers killed, {sandbox_kills}"
                f" sandbox kills, {pg_kills} Postgres kills",
                flush=True,
            )
        control = sandbox.control()
        control.clear_faults()
        # Convergence: the faults stop and every scheduled retry falls due, then push (and
        # pull) run to the end twice; a third cycle must write nothing (the fixed point).
        job_push = None
        if args.push_path == "job":

            def job_push(_run_id: str) -> None:
                _push_job(
                    argparse.Namespace(
                        warehouse=wh_url, source=src_url, sandbox=sandbox.url, realm=realm
                    )
                )

        for cycle in range(3 if not both else 2):
            _converge(env, realm, both, f"soak-final-{cycle}", job_push)
        figures = compare(env, control, realm, qbo_edited=both)
        extra: dict[str, int] = {}
        if both:
            writes, cdc = write_counts(control, realm)
            calls = control.request_counts(realm)
            log = int(_sql(env.source, "SELECT count(*) FROM app.change_log")[0][0])
            # as the schedules run it: refused records wait for their retry time
            if job_push is not None:
                job_push("soak-fixed-point")
            else:
                pipeline.push_all(env, realm, run_id="soak-fixed-point")
            pipeline.pull_all(env, realm, run_id="soak-fixed-point")
            writes2, cdc2 = write_counts(control, realm)
            log2 = int(_sql(env.source, "SELECT count(*) FROM app.change_log")[0][0])
            moved = {
                k: n - calls.get(k, 0)
                for k, n in control.request_counts(realm).items()
                if n != calls.get(k, 0)
            }
            print(f"  calls of the fixed-point cycle: {moved}")
            for row in _sql(
                env.source,
                "SELECT entity, op, origin, count(*) FROM app.change_log"
                " WHERE seq > (SELECT max(seq)"
                " FROM app.change_log) - :n GROUP BY 1, 2, 3",
                n=log2 - log,
            ):
                print(f"  source writes of the fixed-point cycle: {tuple(row)}")
            extra = compare_both(env, control, realm, races)
            extra["qbo_writes_at_fixed_point"] = writes2 - writes
            extra["source_writes_at_fixed_point"] = log2 - log
            extra["cdc_reads_at_fixed_point"] = cdc2 - cdc
        print(
            f"\nkill points: {args.kills} trials, {kills} workers killed with SIGKILL, "
            f"{sandbox_kills} sandbox SIGKILLs, {pg_kills} Postgres SIGKILLs ({pg_stopped} runs "
            f"stopped with their database), {open_tx} open source transactions, "
            f"{crashed} runs that stopped with an error; {time.monotonic() - started:.0f}s"
        )
        print(
            f"records checked: {figures.get('checked', 0)}; lost: {figures.get('lost', 0)};"
            f" duplicated: {figures.get('duplicated', 0)}; amount mismatches:"
            f" {figures.get('amounts', 0)}; refused by QBO with a fix (not lost):"
            f" {figures.get('refused', 0)}; voided or deleted in QBO (kept in the source):"
            f" {figures.get('voided_in_qbo', 0) + figures.get('deleted_in_qbo', 0)}"
        )
        if both:
            print(
                f"QBO side: {extra.get('checked_qbo', 0)} QBO records checked against the source;"
                f" lost: {extra.get('lost', 0)}; duplicated: {extra.get('duplicated', 0)};"
                f" field mismatches: {extra.get('fields', 0)}; voided in QBO, kept in the source"
                f" as it was (not compared): {extra.get('voided_kept', 0)};"
                f" revived: {extra.get('revived', 0)};"
                f" held with a reason: {extra.get('held', 0)}; deletes QBO refused (reported"
                f" with a fix): {extra.get('refused_deletes', 0)}; payments of invoices the source"
                f" cannot hold: {extra.get('unplaceable', 0)}\n"
                f"races: {races.made} made ({len(races.email)} email conflicts checked against"
                f" the policy: {extra.get('policy', 0)} wrong; {len(races.source_deleted)} deleted"
                f" in the source + edited in QBO; {len(races.qbo_deleted)} deleted in QBO +"
                f" edited in the source); conflicts recorded: {extra.get('conflicts', 0)}\n"
                f"fixed point (a third push + pull): QBO writes"
                f" {extra['qbo_writes_at_fixed_point']}, source writes"
                f" {extra['source_writes_at_fixed_point']}, CDC reads"
                f" {extra['cdc_reads_at_fixed_point']}"
            )
    finally:
        sandbox.kill()
        env.warehouse.dispose()
        env.source.dispose()
        for n in names:
            if args.keep:
                print(f"kept database {n}")
                continue
            with contextlib.suppress(Exception):
                postgres.drop_database(pg, n)
        if private is not None:
            private.stop()


if __name__ == "__main__":
    main()
