"""``QboClient.report``: QBO's own reports over the sandbox's HTTP, through the budget."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from decimal import Decimal

import pytest
from qbo_sandbox_helpers import Company

from qbo_pipelines.qbo import ServerError, ValidationError


def test_report_reads_customer_balance_with_its_parameters(
    new_company: Callable[..., Company],
) -> None:
    company = new_company(seed=True)
    client = company.client()
    company.control.reset_requests()
    report = client.report("CustomerBalance", report_date=date(2030, 1, 1))
    assert report["Header"]["ReportName"] == "CustomerBalance"
    rows = report["Rows"]["Row"]
    total = rows[-1]["Summary"]["ColData"]
    assert total[0]["value"] == "TOTAL"
    by_customer = sum(Decimal(r["ColData"][1]["value"]) for r in rows[:-1])
    assert Decimal(total[1]["value"]) == by_customer
    [call] = company.requests()
    assert call["endpoint"] == "report:CustomerBalance"
    assert client.calls == {"GET": 1}


def test_report_parameters_reach_qbo_and_its_refusals_raise(
    new_company: Callable[..., Company],
) -> None:
    client = new_company(seed=True).client()
    pnl = client.report("ProfitAndLoss", start_date=date(2026, 1, 1), end_date="2026-03-31")
    assert pnl["Header"]["StartPeriod"] == "2026-01-01"
    assert pnl["Header"]["EndPeriod"] == "2026-03-31"
    with pytest.raises(ValidationError):
        client.report("ProfitAndLoss", start_date="2026-04-01", end_date="2026-03-31")
    with pytest.raises(ValueError, match="not a QBO report name"):
        client.report("../companyinfo")


def test_report_retries_a_server_error_then_answers(new_company: Callable[..., Company]) -> None:
    company = new_company(seed=True)
    client = company.client()
    company.control.inject_fault(
        kind="server_error", realm_id=company.realm_id, path="reports", count=2, status=503
    )
    assert client.report("CustomerBalance")["Header"]["ReportName"] == "CustomerBalance"
    assert client.calls == {"GET": 3}
    company.control.inject_fault(
        kind="server_error", realm_id=company.realm_id, path="reports", count=None, status=503
    )
    with pytest.raises(ServerError):
        client.report("CustomerBalance")
