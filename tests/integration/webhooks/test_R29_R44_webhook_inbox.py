"""The inbox contract the pull run codes against (R29, R44): store once, claim what is pending,
mark exactly the claimed rows done, keep deletes and merges visible, prune processed rows.
Real Postgres (a private warehouse)."""

from __future__ import annotations

import itertools
import threading
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from webhookbed import inbox_count

from qbo_pipelines.webhooks import inbox
from qbo_pipelines.webhooks.events import WebhookEvent, parse_events, parse_payload

T0 = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)


def event(
    realm: str,
    entity: str,
    qbo_id: str,
    operation: str = "Update",
    minute: int = 0,
    deleted_id: str | None = None,
) -> WebhookEvent:
    at = T0 + timedelta(minutes=minute)
    key = f"legacy:{realm}:{entity}:{qbo_id}:{operation}:{at.isoformat()}:{deleted_id or ''}"
    return WebhookEvent(realm, entity, qbo_id, operation, at, deleted_id, key)


def rows(engine: sa.Engine) -> set[tuple[object, ...]]:
    with engine.connect() as conn:
        result = conn.execute(
            sa.text(
                "SELECT realm_id, entity, qbo_id, operation, last_updated, deleted_id, event_key"
                " FROM sync.webhook_inbox"
            )
        )
        return {tuple(r) for r in result}


def test_R29_store_is_idempotent_and_independent_of_arrival_order(wh: sa.Engine) -> None:
    events = [
        event("r1", "Customer", "1", "Create"),
        event("r1", "Customer", "1", "Update", minute=1),
        event("r1", "Invoice", "5", "Delete", minute=2),
        event("r2", "Customer", "1", "Update", minute=3),
    ]
    assert inbox.store(wh, events + events) == 4
    expected = rows(wh)
    for order in itertools.islice(itertools.permutations(events), 0, None, 5):
        with wh.begin() as conn:
            conn.execute(sa.text("TRUNCATE sync.webhook_inbox"))
        for item in order:  # one delivery each, in a different order
            inbox.store(wh, [item])
        assert inbox.store(wh, list(reversed(order))) == 0
        assert rows(wh) == expected
    assert inbox.store(wh, []) == 0


def test_R29_concurrent_deliveries_of_the_same_events_store_each_once(wh: sa.Engine) -> None:
    events = [event("r1", "Customer", str(n), minute=n) for n in range(50)]
    results: list[int] = []

    def deliver(offset: int) -> None:
        batch = events[offset:] + events[:offset]
        results.append(inbox.store(wh, batch))

    threads = [threading.Thread(target=deliver, args=(n * 7,)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(results) == 50
    assert inbox_count(wh) == 50


def test_R29_cloudevents_duplicates_collapse_on_their_id_and_raw_events_are_kept(
    wh: sa.Engine,
) -> None:
    ce = {
        "specversion": "1.0",
        "id": "6b0c2a9e-0000-4000-8000-000000000001",
        "type": "qbo.invoice.voided.v1",
        "time": "2025-09-10T21:31:25.179851517Z",
        "intuitentityid": "42",
        "intuitaccountid": "r1",
        "data": {},
    }
    assert inbox.store(wh, parse_payload([ce, ce])) == 1
    assert inbox.store(wh, parse_payload([ce])) == 0
    with wh.connect() as conn:
        stored = conn.execute(
            sa.text("SELECT operation, format, known, payload FROM sync.webhook_inbox")
        ).one()
    assert stored == ("Void", "cloudevents", True, ce)


def test_R29_claim_then_done_marks_exactly_the_claimed_rows(wh: sa.Engine) -> None:
    inbox.store(wh, [event("r1", "Customer", "1"), event("r1", "Invoice", "7", "Create")])
    inbox.store(wh, [event("r2", "Customer", "1")])
    claim = inbox.claim(wh, "r1")
    assert claim.ids == {"Customer": ["1"], "Invoice": ["7"]}
    assert len(claim.row_ids) == 2
    assert claim.max_row_id == max(claim.row_ids)

    # an event arriving during the run (even for a record already claimed) waits for the next
    inbox.store(wh, [event("r1", "Customer", "1", minute=5)])
    assert inbox.done(wh, claim.row_ids, "run-a") == 2
    assert inbox.done(wh, claim.row_ids, "run-b") == 0  # first run keeps the rows
    assert inbox.pending(wh) == {"r1": {"Customer": {"1"}}, "r2": {"Customer": {"1"}}}
    nxt = inbox.claim(wh, "r1")
    assert nxt.ids == {"Customer": ["1"]}
    assert min(nxt.row_ids) > claim.max_row_id  # type: ignore[operator]
    with wh.connect() as conn:
        marked = conn.execute(
            sa.text(
                "SELECT run_id, count(*) FROM sync.webhook_inbox"
                " WHERE processed_at IS NOT NULL GROUP BY run_id"
            )
        ).all()
    assert marked == [("run-a", 2)]


def test_R44_claim_names_each_changed_id_once_and_respects_the_limit(wh: sa.Engine) -> None:
    inbox.store(
        wh, [event("r1", "Customer", str(n % 3), minute=n) for n in range(9)]
    )  # 9 events, 3 records
    claim = inbox.claim(wh, "r1")
    assert claim.ids == {"Customer": ["0", "1", "2"]}
    assert len(claim.events) == 9
    first = inbox.claim(wh, "r1", limit=4)
    assert len(first.row_ids) == 4
    assert first.row_ids == claim.row_ids[:4]
    inbox.done(wh, first.row_ids, "run-1")
    assert inbox.claim(wh, "r1").row_ids == claim.row_ids[4:]
    assert inbox.claim(wh, "nobody").empty


def test_R29_deletes_and_merges_are_visible_to_the_consumer(wh: sa.Engine) -> None:
    merge_body = {
        "eventNotifications": [
            {
                "realmId": "r1",
                "dataChangeEvent": {
                    "entities": [
                        {
                            "name": "Customer",
                            "id": "10",
                            "operation": "Merge",
                            "deletedId": "11",
                            "lastUpdated": "2024-03-01T12:00:00.000Z",
                        },
                        {
                            "name": "Invoice",
                            "id": "20",
                            "operation": "Delete",
                            "lastUpdated": "2024-03-01T12:00:01.000Z",
                        },
                        {
                            "name": "Invoice",
                            "id": "21",
                            "operation": "Void",
                            "lastUpdated": "2024-03-01T12:00:02.000Z",
                        },
                    ]
                },
            }
        ]
    }
    inbox.store(wh, parse_payload(merge_body))
    assert inbox.pending(wh, "r1") == {"r1": {"Customer": {"10", "11"}, "Invoice": {"20", "21"}}}
    claim = inbox.claim(wh, "r1")
    assert claim.ids == {"Customer": ["10", "11"], "Invoice": ["20", "21"]}
    assert claim.removed == {"Customer": ["11"], "Invoice": ["20"]}
    assert claim.to_read == {"Customer": ["10"], "Invoice": ["21"]}
    merge = next(r.event for r in claim.events if r.event.operation == "Merge")
    assert (merge.qbo_id, merge.deleted_id, merge.removes) == ("10", "11", True)


def test_R29_unknown_entities_are_stored_and_flagged(wh: sa.Engine) -> None:
    (odd,) = parse_events(
        [
            {
                "id": "x1",
                "type": "qbo.gizmo.updated.v1",
                "intuitentityid": "3",
                "intuitaccountid": "r1",
            }
        ]
    )
    inbox.store(wh, [odd, event("r1", "Customer", "1")])
    claim = inbox.claim(wh, "r1")
    assert sorted((r.event.entity, r.known) for r in claim.events) == [
        ("Customer", True),
        ("gizmo", False),
    ]


def test_R29_prune_deletes_only_processed_rows_older_than_the_cutoff(wh: sa.Engine) -> None:
    inbox.store(wh, [event("r1", "Customer", str(n), minute=n) for n in range(4)])
    claim = inbox.claim(wh, "r1")
    inbox.done(wh, claim.row_ids[:2], "run-1")
    with wh.begin() as conn:  # the first row was processed long ago
        conn.execute(
            sa.text(
                "UPDATE sync.webhook_inbox SET processed_at = now() - interval '40 days'"
                " WHERE id = :i"
            ),
            {"i": claim.row_ids[0]},
        )
    assert inbox.prune(wh, timedelta(days=30)) == 1
    assert inbox_count(wh) == 3
    assert inbox.prune(wh, datetime.now(UTC) + timedelta(seconds=5)) == 1  # the other processed
    assert inbox.pending(wh, "r1") == {"r1": {"Customer": {"2", "3"}}}
    assert inbox.prune(wh, timedelta(0)) == 0  # pending rows are never pruned
