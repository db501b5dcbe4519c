"""Pull end to end: QBO (the sandbox, over real HTTP) -> warehouse -> the demo source app.

Each test pushes the demo company first (the usual state of a two-way sync), then changes QBO
the way a person would (the sandbox's user edits, which also fire its webhooks), runs the pull
as the product does (:func:`qbo_pipelines.sync.pipeline.pull_all`: extract into ``raw_qbo``,
then write back through the engine) and checks what lands on both sides.
"""

from typing import Any

import pytest
import sqlalchemy as sa
from pushbed import PushBed

from qbo_pipelines.sync import pipeline


def _rows(engine: sa.Engine, sql: str, **params: object) -> list[Any]:
    with engine.begin() as conn:
        result = conn.execute(sa.text(sql), params)
        return list(result) if result.returns_rows else []


def _writes(bed: PushBed) -> int:
    return bed.write_calls()


def _cycle(bed: PushBed) -> dict[str, Any]:
    """One push and one pull of the company, as the schedules run them."""
    pipeline.push_all(bed.env, bed.realm, run_id="push")
    return pipeline.pull_all(bed.env, bed.realm, run_id="pull")


def _qbo_customer_of(bed: PushBed, contact_id: int) -> str:
    rows = _rows(
        bed.env.warehouse,
        "SELECT qbo_id FROM sync.record_state WHERE realm_id = :r AND entity = 'customers'"
        " AND source_id = :s",
        r=bed.realm,
        s=str(contact_id),
    )
    return str(rows[0][0])


@pytest.fixture
def synced(push_bed: PushBed) -> PushBed:
    pipeline.push_all(push_bed.env, push_bed.realm, run_id="push-1")
    pipeline.pull_all(push_bed.env, push_bed.realm, run_id="pull-1")
    return push_bed


def _linked_contact(bed: PushBed) -> tuple[int, str]:
    rows = _rows(
        bed.env.warehouse,
        "SELECT source_id, qbo_id FROM sync.record_state WHERE realm_id = :r"
        " AND entity = 'customers' AND created_by = 'sync' AND status = 'synced'"
        " ORDER BY source_id::int LIMIT 1",
        r=bed.realm,
    )
    return int(rows[0][0]), str(rows[0][1])


def test_R35_push_then_pull_reaches_a_fixed_point(synced: PushBed) -> None:
    """After push then pull, the next cycle writes nothing on either side (R35)."""
    before_qbo = _writes(synced)
    before_src = _rows(synced.env.source, "SELECT count(*) FROM app.change_log")[0][0]
    _cycle(synced)
    assert _writes(synced) == before_qbo
    assert _rows(synced.env.source, "SELECT count(*) FROM app.change_log")[0][0] == before_src


def test_R7_customer_email_changed_in_qbo_reaches_the_source_contact(synced: PushBed) -> None:
    contact, qbo_id = _linked_contact(synced)
    synced.sandbox.control.user_update(
        synced.realm,
        "Customer",
        {"Id": qbo_id, "PrimaryEmailAddr": {"Address": "new.address@example.com"}, "sparse": True},
    )
    before = _writes(synced)
    pipeline.pull_all(synced.env, synced.realm, run_id="pull-2")
    email = _rows(synced.env.source, "SELECT email FROM app.contacts WHERE id = :i", i=contact)
    assert email[0][0] == "new.address@example.com"
    # the echo: the next push writes nothing back to QBO
    pipeline.push_all(synced.env, synced.realm, run_id="push-2")
    assert _writes(synced) == before


def test_R8_customer_created_in_qbo_becomes_a_source_contact(synced: PushBed) -> None:
    made = synced.sandbox.control.bulk_create(
        synced.realm,
        "Customer",
        [{"DisplayName": "Made In QBO Ltd", "PrimaryEmailAddr": {"Address": "q@example.com"}}],
    )[0]
    pipeline.pull_all(synced.env, synced.realm, run_id="pull-2")
    rows = _rows(
        synced.env.source,
        "SELECT origin, email, qbo_display_name FROM app.contacts WHERE qbo_id = :q",
        q=made["Id"],
    )
    assert [(r.origin, r.email, r.qbo_display_name) for r in rows] == [
        ("qbo", "q@example.com", "Made In QBO Ltd")
    ]
    # pulled twice: still one contact
    pipeline.pull_all(synced.env, synced.realm, run_id="pull-3", full=True)
    assert (
        len(_rows(synced.env.source, "SELECT 1 FROM app.contacts WHERE qbo_id = :q", q=made["Id"]))
        == 1
    )
