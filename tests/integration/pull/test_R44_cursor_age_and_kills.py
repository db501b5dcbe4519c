"""A cursor too old for CDC means a full re-read (R44); a run killed half-way leaves the cursor
where it was and the next run converges with no duplicates; CDC answers capped at 1000
objects are re-split so nothing is missed."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
import requests
from extract_helpers import PullCompany

from qbo_pipelines.qbo import QboError, parse_datetime
from qbo_pipelines.sync.extract import CDC_ENTITIES, CURSOR_NAME, ENTITIES, extract_qbo
from qbo_pipelines.sync.state import get_cursor
from qbo_pipelines.warehouse import raw_qbo


def _counts(company: PullCompany) -> dict[str, int]:
    return {
        e: int(company.scalar(f"SELECT count(*) FROM {raw_qbo.table_for(e)} WHERE realm_id = :r"))
        for e in ENTITIES
    }


def _sandbox_counts(company: PullCompany) -> dict[str, int]:
    return {e: company.control.count(company.realm_id, e) for e in ENTITIES}


def test_R44_a_cursor_older_than_30_days_triggers_a_full_reread(
    pull_company: PullCompany,
) -> None:
    company = pull_company
    company.seed_transactions(2)
    client = company.client()
    first = extract_qbo(client, company.engine, company.realm_id)
    company.control.advance_clock(timedelta(days=31).total_seconds())
    company.control.user_update(
        company.realm_id, "Customer", {"Id": "1", "sparse": True, "Notes": "a month later"}
    )
    company.control.reset_requests()

    later = parse_datetime(company.control.now())
    client = company.client()  # a token minted on the new clock
    report = extract_qbo(client, company.engine, company.realm_id, now=later)

    assert report.full
    assert "cdc" not in company.endpoints()
    assert set(company.endpoints()) == {"query"}
    assert "1" in report.changed["Customer"]
    assert report.cursor is not None
    assert first.cursor is not None
    assert parse_datetime(report.cursor) > parse_datetime(first.cursor) + timedelta(days=30)
    assert _counts(company) == _sandbox_counts(company)


def test_R44_cdc_refused_as_too_old_by_qbo_falls_back_to_a_full_reread(
    pull_company: PullCompany,
) -> None:
    """Our clock says the cursor is fresh, QBO's says it is 31 days old: QBO refuses the CDC
    call and the extract re-reads in full instead of failing."""
    company = pull_company
    company.seed_transactions(2)
    client = company.client()
    extract_qbo(client, company.engine, company.realm_id)
    company.control.advance_clock(timedelta(days=31).total_seconds())
    client = company.client()  # a token minted on the new clock
    company.control.reset_requests()

    report = extract_qbo(client, company.engine, company.realm_id)

    assert report.full
    endpoints = company.endpoints()
    assert endpoints[0] == "cdc"  # refused
    assert set(endpoints[1:]) == {"query"}
    assert _counts(company) == _sandbox_counts(company)
    cursor = get_cursor(company.engine, company.realm_id, CURSOR_NAME)
    assert cursor == report.cursor
    assert cursor is not None
    assert parse_datetime(cursor) > parse_datetime(company.control.now()) - timedelta(minutes=5)


def _kill_after(company: PullCompany, client: Any, pages: int) -> None:
    """After ``pages`` query answers, QBO starts failing every query (a fault the client
    retries, then gives up on): the run dies half-way through its full read."""
    seen = {"n": 0}

    def hook(response: requests.Response, *args: object, **kwargs: object) -> None:
        if "/query" in response.url:
            seen["n"] += 1
            if seen["n"] == pages:
                company.control.inject_fault(
                    kind="server_error", realm_id=company.realm_id, path="query", count=None
                )

    client.session.hooks["response"].append(hook)


def test_R44_a_run_killed_mid_read_keeps_the_cursor_and_the_rerun_converges(
    pull_company: PullCompany,
) -> None:
    company = pull_company
    company.seed_transactions(2)
    company.control.bulk_create(
        company.realm_id, "Customer", [{"DisplayName": f"Bulk {i:04d}"} for i in range(2500)]
    )
    client = company.client(max_retries=2)
    _kill_after(company, client, pages=14)  # 9 small entities, 3 pages of customers, ...

    with pytest.raises(QboError):
        extract_qbo(client, company.engine, company.realm_id)

    assert get_cursor(company.engine, company.realm_id, CURSOR_NAME) is None
    partial = _counts(company)
    assert partial["Customer"] == company.control.count(company.realm_id, "Customer")
    assert sum(partial.values()) < sum(_sandbox_counts(company).values())

    company.control.clear_faults()
    rerun = extract_qbo(company.client(), company.engine, company.realm_id)

    assert rerun.full
    assert "Customer" not in rerun.changed  # already loaded by the killed run
    assert _counts(company) == _sandbox_counts(company)  # primary keys: no duplicates
    assert get_cursor(company.engine, company.realm_id, CURSOR_NAME) == rerun.cursor
    assert rerun.cursor is not None


def test_R44_a_run_killed_at_its_cdc_call_keeps_the_cursor_and_the_rerun_reads_the_edit(
    pull_company: PullCompany,
) -> None:
    company = pull_company
    company.seed_transactions(2)
    client = company.client(max_retries=1)
    first = extract_qbo(client, company.engine, company.realm_id)
    company.control.advance_clock(5)
    company.control.user_update(
        company.realm_id, "Customer", {"Id": "2", "sparse": True, "Notes": "during outage"}
    )
    company.control.inject_fault(
        kind="server_error", realm_id=company.realm_id, path="cdc", count=None
    )
    with pytest.raises(QboError):
        extract_qbo(client, company.engine, company.realm_id)
    assert get_cursor(company.engine, company.realm_id, CURSOR_NAME) == first.cursor

    company.control.clear_faults()
    report = extract_qbo(client, company.engine, company.realm_id)
    assert report.changed["Customer"] == ("2",)
    assert not report.full


def test_R44_a_cdc_answer_capped_at_1000_objects_is_resplit_and_nothing_is_missed(
    pull_company: PullCompany,
) -> None:
    company = pull_company
    company.seed_transactions(2)
    client = company.client()
    extract_qbo(client, company.engine, company.realm_id)
    company.control.advance_clock(5)
    created: list[dict[str, Any]] = []
    for batch in range(3):  # 1200 changes over three seconds of QBO's clock
        created += company.control.bulk_create(
            company.realm_id,
            "Customer",
            [{"DisplayName": f"Later {batch}-{i:03d}"} for i in range(400)],
        )
        company.control.advance_clock(1)
    vendors = company.control.bulk_create(
        company.realm_id, "Vendor", [{"DisplayName": f"Supplier {i}"} for i in range(3)]
    )
    company.control.advance_clock(5)  # (changes stamped in QBO's current second wait a cycle)
    company.control.reset_requests()

    report = extract_qbo(client, company.engine, company.realm_id)

    assert not report.full
    assert set(report.changed["Customer"]) == {c["Id"] for c in created}
    assert set(report.changed["Vendor"]) == {v["Id"] for v in vendors}
    assert company.endpoints().count("cdc") >= 2  # the capped call, then its re-split
    # the capped call, QBO's clock, one call per entity, and the capped entity's next window
    assert report.calls <= len(CDC_ENTITIES) + 4
    assert _counts(company) == _sandbox_counts(company)
    company.control.reset_requests()
    quiet = extract_qbo(client, company.engine, company.realm_id)
    assert (company.endpoints(), quiet.changed) == (["cdc"], {})


def test_R44_more_than_1000_changes_in_one_second_fall_back_to_a_full_read(
    pull_company: PullCompany,
) -> None:
    """CDC cannot page 1000+ changes of one entity stamped in the same second (a bulk import):
    the extract reads in full rather than fail or skip any."""
    company = pull_company
    client = company.client()
    extract_qbo(client, company.engine, company.realm_id)
    company.control.advance_clock(5)
    company.control.bulk_create(
        company.realm_id, "Customer", [{"DisplayName": f"Import {i:04d}"} for i in range(1100)]
    )
    company.control.advance_clock(5)

    report = extract_qbo(client, company.engine, company.realm_id)

    assert report.full
    assert len(report.changed["Customer"]) == 1100
    assert _counts(company) == _sandbox_counts(company)
