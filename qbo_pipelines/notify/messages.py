"""What a notification message says: pure functions from notifications to an email and a
Slack-compatible JSON body.

Every record line names the company, the entity, the record id, the title, the reason, the fix
and when the problem was first seen; a resolution says "resolved" and when. Many notifications
in one delivery make ONE digest per channel: the first ``max_lines`` are listed in full and the
rest are counted by company, problem and entity (a company with 300 held records gets one
message listing 20 of them and "280 more", not 300 messages).

The webhook body is a Slack incoming-webhook message: ``text`` (the whole digest as plain text:
Slack's notification fallback, and readable by any other receiver), ``blocks`` (Block Kit: a
header, one section per listed record, a context line for the rest; within Slack's limits of 50
blocks, 150 characters per header and 3000 per section) and ``metadata`` (Slack's message
metadata: ``event_type`` plus our structured fields under ``event_payload``; it is a documented
field of incoming webhooks, so Slack accepts it, and other receivers get the data without
parsing text).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final, Literal

EventKind = Literal["opened", "resolved"]

EVENT_TYPE: Final = "qbo_pipelines_notifications"
SUBJECT_PREFIX: Final = "[qbo-pipelines]"
WHERE_TO_LOOK: Final = (
    'Every open problem: SELECT * FROM marts.open_problems; (psql "$(qbo-pipelines db url '
    '--show-password)"). Fixed records are retried automatically by the next run.'
)
_SLACK_MAX_LINES: Final = 40  # 50 blocks at most: header, records, "more", footer
_SECTION_CHARS: Final = 2900
_HEADER_CHARS: Final = 150
_TEXT_CHARS: Final = 3500


@dataclass(frozen=True, slots=True)
class Item:
    """One notification event to announce: a problem opened, or its resolution."""

    notification_id: int
    event: EventKind
    realm_id: str
    company_name: str | None
    entity: str
    record_id: str
    severity: str
    title: str
    reason: str
    fix: str | None
    first_seen: datetime
    resolved_at: datetime | None = None

    @property
    def company(self) -> str:
        if self.realm_id == "*":
            return "no company"
        if self.company_name:
            return f"{self.company_name} (company {self.realm_id})"
        return f"company {self.realm_id}"

    def as_json(self) -> dict[str, Any]:
        return {
            "notification_id": self.notification_id,
            "event": self.event,
            "realm_id": self.realm_id,
            "company": self.company_name,
            "entity": self.entity,
            "record_id": self.record_id,
            "severity": self.severity,
            "title": self.title,
            "reason": self.reason,
            "fix": self.fix,
            "first_seen": _iso(self.first_seen),
            "resolved": self.event == "resolved",
            "resolved_at": _iso(self.resolved_at) if self.resolved_at else None,
        }


@dataclass(frozen=True, slots=True)
class Message:
    """One message to one channel."""

    subject: str
    text: str
    payload: dict[str, Any]
    items: tuple[Item, ...]


def _iso(value: datetime) -> str:
    return value.astimezone(UTC).isoformat(timespec="seconds")


def _when(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _order(items: Sequence[Item]) -> list[Item]:
    return sorted(
        items,
        key=lambda i: (i.event != "opened", i.realm_id, i.title, i.entity, i.record_id),
    )


def summary(items: Sequence[Item]) -> str:
    """``3 new problems, 1 resolved`` (+ the company when there is one)."""
    opened = sum(1 for i in items if i.event == "opened")
    resolved = len(items) - opened
    parts = []
    if opened:
        parts.append(_plural(opened, "new problem"))
    if resolved:
        parts.append(f"{resolved} resolved")
    companies = {i.company for i in items}
    where = next(iter(companies)) if len(companies) == 1 else f"{len(companies)} companies"
    return f"{', '.join(parts) or 'nothing new'} ({where})"


def _subject(items: Sequence[Item]) -> str:
    if len(items) == 1:
        i = items[0]
        state = "Resolved: " if i.event == "resolved" else ""
        return f"{SUBJECT_PREFIX} {state}{i.title}: {i.entity} {i.record_id} ({i.company})"
    return f"{SUBJECT_PREFIX} {summary(items)}"


def _record_lines(item: Item) -> list[str]:
    head = "RESOLVED" if item.event == "resolved" else item.severity.upper()
    lines = [
        f"[{head}] {item.title}",
        f"  Company:    {item.company}",
        f"  Entity:     {item.entity}",
        f"  Record:     {item.record_id}",
        f"  Reason:     {item.reason}",
        f"  Fix:        {item.fix or '-'}",
        f"  First seen: {_when(item.first_seen)}",
    ]
    if item.event == "resolved":
        when = _when(item.resolved_at) if item.resolved_at else "now"
        lines.append(f"  Resolved:   {when} (the cause is gone; nothing to do)")
    return lines


def _rest_counts(rest: Sequence[Item]) -> list[tuple[str, int]]:
    counts = Counter(
        (f"{'resolved' if i.event == 'resolved' else 'new'}: {i.title}, {i.entity} ({i.company})")
        for i in rest
    )
    return sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))


def _escape(text: str) -> str:
    """Slack mrkdwn: &, < and > must be escaped."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _section(item: Item) -> dict[str, Any]:
    mark = ":white_check_mark: *Resolved:* " if item.event == "resolved" else ""
    lines = [
        f"{mark}*{_escape(item.title)}*: {_escape(item.entity)} `{_escape(item.record_id)}`"
        f" · {_escape(item.company)}",
        f"*Reason:* {_escape(item.reason)}",
        f"*Fix:* {_escape(item.fix or '-')}",
        f"_First seen {_when(item.first_seen)}_"
        + (
            f" · _resolved {_when(item.resolved_at)}_"
            if item.event == "resolved" and item.resolved_at
            else ""
        ),
    ]
    return {
        "type": "section",
        "text": {"type": "mrkdwn", "text": _clip("\n".join(lines), _SECTION_CHARS)},
    }


def render(items: Sequence[Item], *, max_lines: int = 20, test: bool = False) -> Message:
    """The message announcing ``items`` on one channel (one record, or a digest).

    Args:
        items: the events to announce (at least one).
        max_lines: records listed in full; the rest are counted.
        test: a test message (``notify test``): says so in the subject and text.
    """
    if not items:
        raise ValueError("nothing to render")
    ordered = _order(items)
    listed = ordered[: max(1, max_lines)]
    rest = ordered[len(listed) :]
    subject = _subject(ordered)
    if test:
        subject = f"{SUBJECT_PREFIX} Test message: {subject.removeprefix(SUBJECT_PREFIX).strip()}"
    intro = f"QuickBooks sync: {summary(ordered)}."
    if test:
        intro = "This is a test of a qbo-pipelines notification channel. " + intro
    body: list[str] = [intro, ""]
    for item in listed:
        body.extend(_record_lines(item))
        body.append("")
    rest_counts = _rest_counts(rest)
    if rest:
        body.append(f"... and {len(rest)} more not listed here:")
        body.extend(f"  {n} x {label}" for label, n in rest_counts)
        body.append("")
    body.append(WHERE_TO_LOOK)
    text = "\n".join(body)

    slack_listed = listed[:_SLACK_MAX_LINES]
    slack_rest = len(ordered) - len(slack_listed)
    blocks: list[dict[str, Any]] = [
        {
            "type": "header",
            "text": {
                "type": "plain_text",
                "text": _clip(
                    ("Test: " if test else "QuickBooks sync: ") + summary(ordered), _HEADER_CHARS
                ),
            },
        }
    ]
    blocks.extend(_section(i) for i in slack_listed)
    if slack_rest:
        more = [f"…and {slack_rest} more not listed:"]
        counts = _rest_counts(ordered[len(slack_listed) :])
        more.extend(f"• {n} × {_escape(label)}" for label, n in counts[:20])
        if len(counts) > 20:
            more.append(f"• {len(counts) - 20} other kinds")
        blocks.append(
            {
                "type": "section",
                "text": {"type": "mrkdwn", "text": _clip("\n".join(more), _SECTION_CHARS)},
            }
        )
    blocks.append(
        {"type": "context", "elements": [{"type": "mrkdwn", "text": _escape(WHERE_TO_LOOK)}]}
    )
    opened = sum(1 for i in ordered if i.event == "opened")
    payload: dict[str, Any] = {
        # Slack renders the fallback as mrkdwn too: a name or email holding "<!channel>" or
        # "<https://...|label>" would ping everyone or show a link of its own
        "text": _clip(_escape(text), _TEXT_CHARS),
        "blocks": blocks,
        "metadata": {
            "event_type": EVENT_TYPE,
            "event_payload": {
                "test": test,
                "opened": opened,
                "resolved": len(ordered) - opened,
                "notifications": [i.as_json() for i in listed],
                "not_listed": len(rest),
                "not_listed_by_cause": [{"cause": label, "count": n} for label, n in rest_counts],
            },
        },
    }
    return Message(subject=subject, text=text, payload=payload, items=tuple(ordered))


__all__ = ["EVENT_TYPE", "EventKind", "Item", "Message", "render", "summary"]
