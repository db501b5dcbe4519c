"""The reconciliation report: one self-contained HTML file (inline CSS and SVG charts; no
script, no CDN) from ``marts.reconciliation_*``: per company, drift over time (one bar per run),
records per state and problems by reason, then the latest run's figures and open problems."""

from __future__ import annotations

import html
from collections import defaultdict
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from qbo_pipelines.reconcile import store

COLORS = {
    "repaired": "#2e7d32",
    "problems": "#c62828",
    "synced": "#2e7d32",
    "pending": "#f9a825",
    "held": "#ef6c00",
    "failed": "#c62828",
    "skipped": "#9e9e9e",
    "deleted_in_source": "#5d4037",
    "deleted_in_qbo": "#6a1b9a",
}
_PALETTE = ("#1565c0", "#00838f", "#ad1457", "#4e342e", "#283593", "#558b2f")

_CSS = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px;color:#212121}
h1{font-size:22px}h2{font-size:18px;margin-top:32px;border-bottom:1px solid #ddd}
h3{font-size:15px;margin:20px 0 6px}table{border-collapse:collapse;margin:8px 0}
td,th{border:1px solid #ddd;padding:3px 8px;text-align:left;vertical-align:top}
th{background:#f5f5f5}.no{color:#c62828;font-weight:600}.muted{color:#757575}
svg text{font:11px system-ui,sans-serif;fill:#424242}.legend span{margin-right:12px}
.sw{display:inline-block;width:10px;height:10px;margin-right:4px}
"""


def _e(value: object) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def _color(name: str, i: int) -> str:
    return COLORS.get(name, _PALETTE[i % len(_PALETTE)])


def _legend(names: Sequence[str]) -> str:
    return (
        '<div class="legend">'
        + "".join(
            f'<span><i class="sw" style="background:{_color(n, i)}"></i>{_e(n)}</span>'
            for i, n in enumerate(names)
        )
        + "</div>"
    )


def drift_chart(runs: Sequence[dict[str, Any]], width: int = 720, height: int = 220) -> str:
    """One stacked bar per run: differences repaired and left as problems (drift over time)."""
    if not runs:
        return '<p class="muted">No reconciliation run yet.</p>'
    top = max(max(int(r["differences"]) for r in runs), 1)
    left, bottom, plot_h = 40, 40, height - 60
    step = (width - left - 10) / len(runs)
    bar = max(min(step * 0.7, 40), 2)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img"'
        ' aria-label="Differences per reconciliation run">',
        f'<line x1="{left}" y1="{height - bottom}" x2="{width - 10}" y2="{height - bottom}"'
        ' stroke="#9e9e9e"/>',
        f'<text x="4" y="{height - bottom - plot_h + 4}">{top}</text>',
        f'<text x="4" y="{height - bottom}">0</text>',
    ]
    for i, r in enumerate(runs):
        x = left + i * step + (step - bar) / 2
        y = float(height - bottom)
        for part in ("repaired", "problems"):
            h = plot_h * int(r[part]) / top
            y -= h
            if h:
                parts.append(
                    f'<rect x="{x:.1f}" y="{y:.1f}" width="{bar:.1f}" height="{h:.1f}"'
                    f' fill="{COLORS[part]}"><title>{_e(r["run_id"])}: {int(r[part])} {part}'
                    f", drift {_e(r['drift_amount'])}</title></rect>"
                )
        when = r["finished_at"]
        label = when.strftime("%m-%d %H:%M") if isinstance(when, datetime) else str(when)
        if len(runs) <= 14 or i % max(1, len(runs) // 12) == 0:
            parts.append(
                f'<text x="{x + bar / 2:.1f}" y="{height - bottom + 14}"'
                f' text-anchor="middle">{_e(label)}</text>'
            )
    parts.append("</svg>")
    return "".join(parts) + _legend(["repaired", "problems"])


def hbar_chart(
    rows: dict[str, dict[str, int]], order: Sequence[str], width: int = 720, label: str = ""
) -> str:
    """Horizontal stacked bars: one per row key, segments in ``order``."""
    if not rows:
        return '<p class="muted">Nothing to show.</p>'
    left, bar_h, gap = 150, 18, 8
    top = max(max(sum(v.values()) for v in rows.values()), 1)
    scale = (width - left - 60) / top
    height = len(rows) * (bar_h + gap) + gap
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img"'
        f' aria-label="{_e(label)}">'
    ]
    for i, (name, segments) in enumerate(rows.items()):
        y = gap + i * (bar_h + gap)
        parts.append(f'<text x="4" y="{y + 13}">{_e(name)}</text>')
        x = float(left)
        for j, seg in enumerate(order):
            n = segments.get(seg, 0)
            if not n:
                continue
            w = n * scale
            parts.append(
                f'<rect x="{x:.1f}" y="{y}" width="{max(w, 1):.1f}" height="{bar_h}"'
                f' fill="{_color(seg, j)}"><title>{_e(name)}: {n} {_e(seg)}</title></rect>'
            )
            x += w
        parts.append(f'<text x="{x + 4:.1f}" y="{y + 13}">{sum(segments.values())}</text>')
    parts.append("</svg>")
    return "".join(parts) + _legend(order)


def _table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{_e(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _company(engine: sa.Engine, realm_id: str, runs: Sequence[dict[str, Any]]) -> str:
    latest = runs[-1]
    run_id = str(latest["run_id"])
    states = store.rows_of(engine, "states", run_id)
    figures = store.rows_of(engine, "figures", run_id)
    findings = store.rows_of(engine, "findings", run_id)
    per_state: dict[str, dict[str, int]] = defaultdict(dict)
    for s in states:
        per_state[str(s["entity"])][str(s["state"])] = int(s["records"])
    seen_states = [s for s in COLORS if any(s in v for v in per_state.values())]
    seen_states += sorted({k for v in per_state.values() for k in v} - set(seen_states))
    problems = [f for f in findings if not f["repaired"]]
    by_reason: dict[str, dict[str, int]] = defaultdict(dict)
    for f in problems:
        kind = str(f["kind"]) + (f" ({f['field']})" if f["field"] else "")
        by_reason[kind][str(f["entity"])] = by_reason[kind].get(str(f["entity"]), 0) + 1
    entities = sorted({e for v in by_reason.values() for e in v})
    figure_rows = [
        (
            f["entity"],
            f["measure"],
            f["source_value"],
            f["qbo_value"],
            f["warehouse_value"],
            "yes" if f["agrees"] else "NO",
            f["qbo_report"],
        )
        for f in figures
    ]
    problem_rows = [
        (
            f["entity"],
            f["record_id"],
            f["qbo_id"],
            f["kind"],
            f["field"],
            f["source_value"],
            f["qbo_value"],
            f["reason"],
            f["fix"],
        )
        for f in problems[:500]
    ]
    repaired_rows = [
        (f["entity"], f["record_id"], f["qbo_id"], f["kind"], f["action"], f["reason"])
        for f in findings
        if f["repaired"]
    ][:500]
    return "".join(
        [
            f"<h2>Company {_e(realm_id)}</h2>",
            f"<p><b>Latest run</b> {_e(run_id)} at {_e(latest['finished_at'])}: "
            f"{_e(latest['summary'])}</p>",
            "<h3>Drift over time (differences per run)</h3>",
            drift_chart(runs),
            "<h3>Records per state</h3>",
            hbar_chart(per_state, seen_states, label="Records per engine state"),
            "<h3>Problems by reason</h3>",
            hbar_chart(by_reason, entities, label="Open problems by reason"),
            "<h3>Counts and totals</h3>",
            _table(
                ["entity", "measure", "source", "QBO", "warehouse", "agrees", "QBO figure"],
                figure_rows,
            ),
            f"<h3>Open problems ({len(problems)})</h3>",
            _table(
                ["entity", "record", "QBO id", "kind", "field", "source", "QBO", "reason", "fix"],
                problem_rows,
            )
            if problems
            else '<p class="muted">None.</p>',
            f"<h3>Repaired in this run ({len(repaired_rows)})</h3>",
            _table(["entity", "record", "QBO id", "kind", "action", "reason"], repaired_rows)
            if repaired_rows
            else '<p class="muted">None.</p>',
        ]
    )


def render(engine: sa.Engine, realm_id: str | None = None, history: int = 60) -> str:
    """The whole report as one HTML document (every company, or one)."""
    runs = store.runs(engine, realm_id, limit=history * 50 if realm_id is None else history)
    by_company: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in runs:
        by_company[str(r["realm_id"])].append(r)
    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    sections = [
        _company(engine, realm, company_runs[-history:])
        for realm, company_runs in sorted(by_company.items())
    ]
    body = "".join(sections) or (
        "<p>No reconciliation has run yet: <code>qbo-pipelines reconcile</code> runs one now; "
        "the nightly schedule runs one per company under <code>make dev</code>.</p>"
    )
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        "<title>qbo-pipelines reconciliation report</title>"
        f"<style>{_CSS}</style></head><body>"
        "<h1>Reconciliation report</h1>"
        f'<p class="muted">Source app, QuickBooks Online and the warehouse compared (R38). '
        f"Generated {now}. Tables: marts.reconciliation_runs, _figures, _findings, _states; "
        "what needs a person is also in marts.open_problems.</p>"
        f"{body}</body></html>"
    )


__all__ = ["drift_chart", "hbar_chart", "render"]
