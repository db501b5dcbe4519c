"""A pull killed -9 between its two commits (the source app's, then the warehouse's) still
leaves every write it made in ``sync.ledger``, exactly once (R37, issue 9: plan -> intent ->
write -> record in both directions).

The pull runs in a process of its own (``pull_worker.py``, what the write-back asset runs) over
the sandbox and real Postgres. The test holds a lock that stops the run at the chosen point,
sees the run get there, kills it with SIGKILL, and runs the pull again the way the next cycle
does (``pipeline.pull_all``)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from extract_helpers import linked_contact
from pushbed import PushBed

from qbo_pipelines.sync import pipeline

WORKER = Path(__file__).with_name("pull_worker.py")
NEW_EMAIL = "killed.between.commits@example.com"


@pytest.fixture
def edited(push_bed: PushBed) -> tuple[PushBed, int, str]:
    """A synced company whose first linked customer got a new email in QBO, extracted into
    raw_qbo (the write-back is what the test kills)."""
    pipeline.push_all(push_bed.env, push_bed.realm, run_id="push-1")
    pipeline.pull_all(push_bed.env, push_bed.realm, run_id="pull-1")
    contact, qbo_id = linked_contact(push_bed.env.warehouse, push_bed.realm)
    push_bed.sandbox.control.user_update(
        push_bed.realm,
        "Customer",
        {"Id": qbo_id, "PrimaryEmailAddr": {"Address": NEW_EMAIL}, "sparse": True},
    )
    pipeline.pull_extract(push_bed.env, push_bed.realm, run_id="extract-2")
    return push_bed, contact, qbo_id


@contextmanager
def _locked(engine: sa.Engine, table: str) -> Iterator[None]:
    """Holds ``table`` so that no other transaction can write it until the block ends."""
    with engine.connect() as conn:
        trans = conn.begin()
        conn.execute(sa.text(f"LOCK TABLE {table} IN EXCLUSIVE MODE"))
        try:
            yield
        finally:
            trans.rollback()


def _start(bed: PushBed, run_id: str, entity: str = "customers") -> subprocess.Popen[str]:
    cfg = {
        "warehouse": bed.env.warehouse.url.render_as_string(hide_password=False),
        "source": bed.env.source.url.render_as_string(hide_password=False),
        "api_url": bed.sandbox.base_url,
        "client_id": bed.sandbox.client_id,
        "client_secret": bed.sandbox.client_secret,
        "realm": bed.realm,
        "entity": entity,
        "run_id": run_id,
    }
    proc = subprocess.Popen(
        [sys.executable, str(WORKER)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=dict(os.environ),
    )
    assert proc.stdin is not None
    proc.stdin.write(json.dumps(cfg))
    proc.stdin.close()
    return proc


def _wait_for(check: Any, proc: subprocess.Popen[str], what: str) -> None:
    deadline = time.monotonic() + 60
    while not check():
        if proc.poll() is not None:
            raise AssertionError(f"the pull ended before {what}: {proc.stderr.read()}")  # type: ignore[union-attr]
        if time.monotonic() > deadline:
            raise AssertionError(f"the pull never reached {what}")
        time.sleep(0.05)
    time.sleep(0.3)  # the run is now blocked on the lock, past the point


def _kill(proc: subprocess.Popen[str]) -> None:
    proc.kill()  # SIGKILL
    proc.wait(timeout=30)
    assert proc.returncode == -9


def _email(bed: PushBed, contact: int) -> str | None:
    return bed.sql(bed.env.source, "SELECT email FROM app.contacts WHERE id = :i", i=contact)[0][0]


def _updates(bed: PushBed, qbo_id: str) -> list[Any]:
    """The pull's writes of the customer's email into its contact, in the ledger."""
    return bed.sql(
        bed.env.warehouse,
        "SELECT run_id, outcome, details FROM sync.ledger WHERE realm_id = :r"
        " AND direction = 'pull' AND entity = 'customers' AND operation = 'update'"
        " AND qbo_id = :q AND details->'columns' ? 'email' ORDER BY id",
        r=bed.realm,
        q=qbo_id,
    )


def _intents(bed: PushBed) -> int:
    return int(bed.sql(bed.env.warehouse, "SELECT count(*) FROM sync.source_write_intents")[0][0])


def _settled(bed: PushBed, contact: int, qbo_id: str) -> None:
    """After the next cycle: the source holds QBO's value, the write is in the ledger once,
    no intent is left, and the record is in step (a further cycle writes nothing)."""
    assert _email(bed, contact) == NEW_EMAIL
    updates = _updates(bed, qbo_id)
    assert len(updates) == 1, updates
    assert updates[0][1] == "ok"
    assert "email" in updates[0][2]["columns"]
    assert _intents(bed) == 0
    state = bed.sql(
        bed.env.warehouse,
        "SELECT status, source_base->'PrimaryEmailAddr'->>'Address' FROM sync.record_state"
        " WHERE realm_id = :r AND entity = 'customers' AND qbo_id = :q",
        r=bed.realm,
        q=qbo_id,
    )
    assert state == [("synced", NEW_EMAIL)]
    pipeline.push_all(bed.env, bed.realm, run_id="push-3")  # its invoices take it (R18)
    log = bed.sql(bed.env.source, "SELECT count(*) FROM app.change_log")[0][0]
    writes = bed.write_calls()
    pipeline.pull_all(bed.env, bed.realm, run_id="pull-4")
    pipeline.push_all(bed.env, bed.realm, run_id="push-4")
    assert bed.sql(bed.env.source, "SELECT count(*) FROM app.change_log")[0][0] == log
    assert bed.write_calls() == writes
    assert len(_updates(bed, qbo_id)) == 1


def test_R37_pull_killed_after_the_source_commit_records_the_write_once(
    edited: tuple[PushBed, int, str],
) -> None:
    """Killed after the source app committed the new email and before the warehouse recorded
    it: the write is in the source but nowhere in the warehouse. The next pull finds the
    intent, sees the source holds the written value and adds the ledger entry under the run
    that wrote it (before: the write was missing from the history for good)."""
    bed, contact, qbo_id = edited
    with _locked(bed.env.warehouse, "sync.ledger"):
        proc = _start(bed, "pull-killed")
        _wait_for(lambda: _email(bed, contact) == NEW_EMAIL, proc, "the source commit")
        _kill(proc)
    assert _updates(bed, qbo_id) == []  # the warehouse transaction died with the run
    assert _intents(bed) == 1
    pipeline.pull_all(bed.env, bed.realm, run_id="pull-3")
    updates = _updates(bed, qbo_id)
    assert [u[0] for u in updates] == ["pull-killed"]
    assert updates[0][2]["recorded_by"] == "pull-3"
    _settled(bed, contact, qbo_id)


def test_R37_pull_killed_before_the_source_commit_writes_and_records_once(
    edited: tuple[PushBed, int, str],
) -> None:
    """Killed after its intent was stored and before the source transaction committed: the
    write never landed. The next pull drops the intent and makes the write itself, recorded
    once under its own run."""
    bed, contact, qbo_id = edited
    with _locked(bed.env.source, "app.contacts"):
        proc = _start(bed, "pull-killed")
        _wait_for(lambda: _intents(bed) == 1, proc, "its intent")
        _kill(proc)
    assert _email(bed, contact) != NEW_EMAIL
    pipeline.pull_all(bed.env, bed.realm, run_id="pull-3")
    assert [u[0] for u in _updates(bed, qbo_id)] == ["pull-3"]
    _settled(bed, contact, qbo_id)


def _customer_of_invoice(bed: PushBed, qbo_id: str) -> str:
    invoices = bed.sandbox.control.entities(bed.realm, "Invoice")
    invoice = next(i for i in invoices if i["Id"] == qbo_id)
    return str(invoice["CustomerRef"]["value"])


def test_R42_R37_a_pull_killed_after_the_source_commit_never_writes_its_value_back_over_qbo(
    push_bed: PushBed,
) -> None:
    """The bookkeeper moves an invoice to another customer; the pull writing the move into the
    sale (its contact) is killed -9 after the source app committed it and before the warehouse
    recorded it. The bookkeeper then moves the invoice back, and the sale's memo is edited in
    the source app. The next push writes the memo only: the killed pull's value (the customer
    the invoice was moved away from) is QBO's own, not a source edit, and never goes back over
    the bookkeeper's last move (R42: no intermediate value written back). The pull after it
    brings the move back into the sale, so both sides agree, and a further cycle writes
    nothing. Before, the push sent the intermediate customer back to QBO as a source change
    (with no conflict recorded), or, with no source edit, the sale kept it for good."""
    bed = push_bed
    env, realm, control = bed.env, bed.realm, bed.sandbox.control
    pipeline.push_all(env, realm, run_id="push-1")
    pipeline.pull_all(env, realm, run_id="pull-1")
    sale, invoice = next(
        (int(s), str(q))
        for s, q in bed.sql(
            env.warehouse,
            "SELECT source_id, qbo_id FROM sync.record_state WHERE realm_id = :r"
            " AND entity = 'invoices' AND qbo_entity = 'Invoice' AND created_by = 'sync'"
            " AND status = 'synced' ORDER BY source_id::int",
            r=realm,
        )
        if not bed.sql(env.source, "SELECT 1 FROM app.receipts WHERE sale_id = :s", s=int(s))
    )
    first = _customer_of_invoice(bed, invoice)
    [(contact,)] = bed.sql(env.source, "SELECT contact_id FROM app.sales WHERE id = :i", i=sale)
    other, moved_to = next(
        (int(s), str(q))
        for s, q in bed.sql(
            env.warehouse,
            "SELECT source_id, qbo_id FROM sync.record_state WHERE realm_id = :r"
            " AND entity = 'customers' AND status = 'synced' AND qbo_id <> :q"
            " ORDER BY source_id::int",
            r=realm,
            q=first,
        )
    )
    assert other != contact
    move = {"Id": invoice, "CustomerRef": {"value": moved_to}, "sparse": True}
    control.user_update(realm, "Invoice", move)
    pipeline.pull_extract(env, realm, run_id="extract-2")

    def sale_contact() -> int:
        found = bed.sql(env.source, "SELECT contact_id FROM app.sales WHERE id = :i", i=sale)
        return int(found[0][0])

    with _locked(env.warehouse, "sync.ledger"):
        proc = _start(bed, "pull-killed", "invoices")
        _wait_for(lambda: sale_contact() == other, proc, "the source commit")
        _kill(proc)
    control.user_update(realm, "Invoice", {**move, "CustomerRef": {"value": first}})
    bed.sql(env.source, "UPDATE app.sales SET memo = 'edited after the kill' WHERE id = :i", i=sale)

    pipeline.push_all(env, realm, run_id="push-after-kill")
    assert _customer_of_invoice(bed, invoice) == first  # the bookkeeper's last move stands
    made = next(i for i in control.entities(realm, "Invoice") if i["Id"] == invoice)
    assert made.get("PrivateNote") == "edited after the kill"
    pipeline.pull_all(env, realm, run_id="pull-after-kill")
    assert sale_contact() == contact  # the move back reached the sale
    assert _intents(bed) == 0
    writes = bed.write_calls()
    log = bed.sql(env.source, "SELECT count(*) FROM app.change_log")[0][0]
    pipeline.push_all(env, realm, run_id="push-again")
    pipeline.pull_all(env, realm, run_id="pull-again")
    assert bed.write_calls() == writes
    assert bed.sql(env.source, "SELECT count(*) FROM app.change_log")[0][0] == log
    assert _customer_of_invoice(bed, invoice) == first
    assert sale_contact() == contact
