"""R43: the marts' profit and loss, balance sheet and A/R aging equal, to the cent, what QBO's own
reports say for the same dates.

For one company: ``ProfitAndLoss`` and ``BalanceSheet`` summarized by month over the months the
marts cover, and ``AgedReceivables`` as of the marts' ``as_of_date``, are read over HTTP through
the company's client (its rate budget), and every non-zero cell is compared with the marts:
per month and account (P&L, balance sheet; Retained Earnings and Net Income by name), per
customer and aging bucket (A/R), and the reports' totals (net income per month, total assets
per month, total receivables).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any

import sqlalchemy as sa

from qbo_pipelines.canonical import RealmId
from qbo_pipelines.companies import connected
from qbo_pipelines.qbo.client import QboClient
from qbo_pipelines.qbo.errors import QboError
from qbo_pipelines.qbo.transport import Call
from qbo_pipelines.sync.env import SyncEnv

CENT = Decimal("0.01")
AGING_COLUMNS = (
    "current_amount",
    "days_1_30",
    "days_31_60",
    "days_61_90",
    "days_91_and_over",
    "total",
)
Cells = dict[tuple[str, str], Decimal]


@dataclass(frozen=True)
class Mismatch:
    """One cell where the marts and QBO's report differ (None: absent/zero on that side)."""

    report: str
    column: str
    line: str
    qbo: Decimal | None
    marts: Decimal | None

    def describe(self) -> str:
        return f"{self.report} {self.column} {self.line}: QBO {self.qbo}, marts {self.marts}"


@dataclass
class TieOut:
    """The comparison for one company."""

    realm_id: str
    start: date | None = None
    end: date | None = None
    as_of: date | None = None
    cells: dict[str, int] = field(default_factory=dict)  # report -> cells compared
    mismatches: list[Mismatch] = field(default_factory=list)
    error: str | None = None
    """Why QBO's reports could not be read (nothing was compared)."""

    @property
    def ok(self) -> bool:
        return not self.mismatches and self.error is None

    def summary(self) -> str:
        if self.error is not None:
            return (
                f"company {self.realm_id}: QBO's reports could not be read ({self.error}); "
                "nothing compared: the next marts build ties out again"
            )
        checked = ", ".join(f"{k} {v} cells" for k, v in self.cells.items())
        verdict = "ties out to the cent" if self.ok else f"{len(self.mismatches)} cells differ"
        return f"company {self.realm_id}: {verdict} ({checked})"


def _report(client: QboClient, name: str, params: Mapping[str, str]) -> dict[str, Any]:
    return client.transport.request(Call("GET", f"reports/{name}", params=dict(params)))


def _money(value: Any) -> Decimal:
    text = str(value or "").strip()
    try:
        return Decimal(text).quantize(CENT) if text else Decimal(0)
    except ArithmeticError:
        return Decimal(0)


def _rows(rows: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """Every row of a report, depth first (data rows and sections, whose Summary is the total)."""
    for row in rows:
        yield row
        nested = (row.get("Rows") or {}).get("Row") or []
        yield from _rows(nested)


def _month_cells(payload: dict[str, Any], months: list[str]) -> tuple[Cells, Cells]:
    """(account or line name, month) -> value of the data rows, and group -> value of the
    section summaries, for the month columns (the Total column is left out)."""
    data: Cells = {}
    totals: Cells = {}
    for row in _rows(payload.get("Rows", {}).get("Row", [])):
        cols = row.get("ColData") or (row.get("Summary") or {}).get("ColData") or []
        if not cols:
            continue
        values = cols[1 : 1 + len(months)]
        for month, cell in zip(months, values, strict=False):
            amount = _money(cell.get("value"))
            if not amount:
                continue
            if row.get("type") == "Data":
                data[(month, str(cols[0].get("id") or cols[0].get("value")))] = amount
            elif "Summary" in row and row.get("group"):
                totals[(month, str(row["group"]))] = amount
    return data, totals


def _compare(out: TieOut, report: str, qbo: Cells, marts: Cells) -> None:
    out.cells[report] = out.cells.get(report, 0) + len(set(qbo) | set(marts))
    for key in sorted(set(qbo) | set(marts)):
        if qbo.get(key) != marts.get(key):
            out.mismatches.append(Mismatch(report, key[0], key[1], qbo.get(key), marts.get(key)))


def _compare_total(out: TieOut, report: str, group: str, qbo_totals: Cells, marts: Cells) -> None:
    """Compare one summary line of the report (``group``) per month with the marts' sums."""
    _compare(
        out,
        report,
        {k: v for k, v in qbo_totals.items() if k[1] == group},
        {k: v for k, v in marts.items() if v},
    )


def _months(conn: sa.Connection, realm_id: str) -> list[date]:
    return list(
        conn.execute(
            sa.text(
                "SELECT DISTINCT period_end FROM marts.balance_sheet WHERE realm_id = :r ORDER BY 1"
            ),
            {"r": realm_id},
        ).scalars()
    )


def tie_out(engine: sa.Engine, client: QboClient, realm_id: str) -> TieOut:
    """Compare the company's marts with QBO's reports (three report reads)."""
    out = TieOut(realm_id=realm_id)
    with engine.connect() as conn:
        ends = _months(conn, realm_id)
        as_of: date = conn.execute(sa.text("SELECT current_date")).scalar_one()
        pl_rows = conn.execute(
            sa.text(
                "SELECT period_end, account_qbo_id, amount, net_income_effect"
                " FROM marts.profit_and_loss WHERE realm_id = :r"
            ),
            {"r": realm_id},
        ).all()
        bs_rows = conn.execute(
            sa.text(
                "SELECT period_end, coalesce(account_qbo_id, line_name) AS line, side, amount"
                " FROM marts.balance_sheet WHERE realm_id = :r"
            ),
            {"r": realm_id},
        ).all()
        ar_rows = (
            conn.execute(
                sa.text(
                    "SELECT customer_qbo_id, "
                    + ", ".join(AGING_COLUMNS)
                    + " FROM marts.ar_aging WHERE realm_id = :r"
                ),
                {"r": realm_id},
            )
            .mappings()
            .all()
        )
    out.as_of = as_of
    if ends:
        out.start, out.end = ends[0].replace(day=1), ends[-1]
        months = [e.isoformat() for e in ends]
        params = {
            "start_date": out.start.isoformat(),
            "end_date": out.end.isoformat(),
            "summarize_column_by": "Month",
            "accounting_method": "Accrual",
        }

        qbo_pl, qbo_pl_totals = _month_cells(_report(client, "ProfitAndLoss", params), months)
        marts_pl: Cells = {}
        net: Cells = {}
        for row in pl_rows:
            month = row.period_end.isoformat()
            marts_pl[(month, str(row.account_qbo_id))] = Decimal(row.amount)
            net[(month, "NetIncome")] = net.get((month, "NetIncome"), Decimal(0)) + Decimal(
                row.net_income_effect
            )
        _compare(out, "ProfitAndLoss", qbo_pl, marts_pl)
        _compare_total(out, "ProfitAndLoss net income", "NetIncome", qbo_pl_totals, net)

        qbo_bs, qbo_bs_totals = _month_cells(_report(client, "BalanceSheet", params), months)
        marts_bs: Cells = {}
        assets: Cells = {}
        for row in bs_rows:
            month, amount = row.period_end.isoformat(), Decimal(row.amount)
            if amount:
                marts_bs[(month, str(row.line))] = amount
            if row.side == "Assets":
                assets[(month, "TotalAssets")] = (
                    assets.get((month, "TotalAssets"), Decimal(0)) + amount
                )
        _compare(out, "BalanceSheet", qbo_bs, marts_bs)
        _compare_total(out, "BalanceSheet total assets", "TotalAssets", qbo_bs_totals, assets)

    aged = _report(client, "AgedReceivables", {"report_date": as_of.isoformat()})
    qbo_ar: Cells = {}
    for aged_row in _rows(aged.get("Rows", {}).get("Row", [])):
        cols = aged_row.get("ColData") or []
        if aged_row.get("type") == "Data" and cols:
            for name, cell in zip(AGING_COLUMNS, cols[1:], strict=False):
                if _money(cell.get("value")):
                    qbo_ar[(name, str(cols[0].get("id") or cols[0].get("value")))] = _money(
                        cell.get("value")
                    )
    marts_ar: Cells = {
        (name, str(r["customer_qbo_id"])): r[name]
        for r in ar_rows
        for name in AGING_COLUMNS
        if r[name]
    }
    _compare(out, "AgedReceivables", qbo_ar, marts_ar)
    return out


def tie_out_companies(env: SyncEnv) -> list[TieOut]:
    """:func:`tie_out` for every connected company (one needing a reconnect is skipped: its
    reports cannot be read)."""
    results = []
    for company in connected(env.warehouse):
        if company.status != "connected":
            continue
        client = env.client(RealmId(company.realm_id))
        try:
            results.append(tie_out(env.warehouse, client, company.realm_id))
        except QboError as err:  # one company's failing reports fail its tie-out, not all
            results.append(TieOut(company.realm_id, error=str(err)))
        finally:
            client.close()
    return results
