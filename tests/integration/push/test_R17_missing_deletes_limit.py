"""R17 as an operator sets it: how many records a full push may find gone from the source app
(no delete in its change log) and still delete in QBO by itself is the company's setting
(``qbo-pipelines mappings set missing-deletes-max N`` / ``missing-deletes-percent P``), driven
through the CLI and ``sync push --full`` (a queued push_job run) over the sandbox."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from pushbed import PushBed, UserStack, demo_company

from qbo_pipelines.cli import main
from qbo_pipelines.quality import quarantine
from qbo_pipelines.source_app import demo
from qbo_pipelines.sync import pipeline


@pytest.fixture
def bed(user_stack: UserStack) -> PushBed:
    """The demo company pushed once, in a user's stack (the CLI finds it)."""
    demo.seed(user_stack.source, contacts=30, sales=45, workers=4, seed_value=11)
    company = demo_company(user_stack.warehouse, user_stack.source, user_stack.sandbox)
    pipeline.push_all(company.env, company.realm, run_id="push-1")
    return company


def _payments(bed: PushBed) -> dict[str, str]:
    """Receipt source id -> QBO payment id, of the receipts the sync wrote."""
    with bed.env.warehouse.connect() as conn:
        rows = conn.execute(
            sa.text(
                "SELECT source_id, qbo_id FROM sync.record_state WHERE realm_id = :r"
                " AND entity = 'payments' AND qbo_id IS NOT NULL AND status = 'synced'"
                " ORDER BY source_id::bigint"
            ),
            {"r": bed.realm},
        )
        return {str(s): str(q) for s, q in rows}


def _live_payments(bed: PushBed) -> set[str]:
    return {str(p["Id"]) for p in bed.sandbox.control.entities(bed.realm, "Payment")}


def _missing_note(bed: PushBed) -> list[quarantine.Notification]:
    return [
        n
        for n in quarantine.open_notifications(bed.env.warehouse, bed.realm, "payments")
        if n.title == pipeline.MISSING_TITLE
    ]


def test_R17_a_company_sets_how_many_missing_records_a_full_push_deletes_by_itself(
    bed: PushBed, capsys: pytest.CaptureFixture[str]
) -> None:
    """Two receipts removed with the change capture off: under the default limit (20) a full
    push would delete their QBO payments. A company that wants every such loss confirmed sets
    the limit to 0 and 0: the full push holds them, deletes nothing, and its notification names
    the limit and the setting. Raised to 5, the next full push carries the two deletes out and
    the notification resolves. A bad value is one line, exit 2."""
    written = _payments(bed)
    assert len(written) >= 2, "the seed has receipts the sync wrote"
    gone = list(written)[:2]
    assert {written[g] for g in gone} <= _live_payments(bed)

    realm = ["--realm", bed.realm]
    assert main(["mappings", "set", "missing-deletes-max", "0", *realm]) == 0
    assert main(["mappings", "set", "missing-deletes-percent", "0", *realm]) == 0
    assert main(["mappings", "list", *realm]) == 0
    assert "missing-deletes-max=0 missing-deletes-percent=0" in capsys.readouterr().out
    assert main(["mappings", "set", "missing-deletes-percent", "101", *realm]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["error: refused: missing-deletes-percent is at most 100, got 101"], err
    assert main(["mappings", "set", "missing-deletes-max", "-1", *realm]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["error: refused: missing-deletes-max is at least 0, got -1"], err

    with bed.env.source.begin() as conn:
        conn.exec_driver_sql("ALTER TABLE app.receipts DISABLE TRIGGER USER")
        ids = [int(g) for g in gone]
        conn.execute(sa.text("DELETE FROM app.receipts WHERE id = ANY(:ids)"), {"ids": ids})
        conn.exec_driver_sql("ALTER TABLE app.receipts ENABLE TRIGGER USER")

    assert main(["sync", "push", "--full", *realm]) == 0
    assert {written[g] for g in gone} <= _live_payments(bed), "nothing deleted in QBO"
    [note] = _missing_note(bed)
    assert "2 payments the sync knows are gone" in note.reason
    assert "more than the 0 the company lets a full read delete by itself" in note.reason
    assert "mappings set missing-deletes-max" in (note.fix or "")

    assert main(["mappings", "set", "missing-deletes-max", "5", *realm]) == 0
    assert main(["sync", "push", "--full", *realm]) == 0
    assert not {written[g] for g in gone} & _live_payments(bed), "the two deletes carried out"
    assert set(written.values()) - {written[g] for g in gone} <= _live_payments(bed)
    assert not _missing_note(bed)
