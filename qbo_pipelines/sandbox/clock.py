"""The sandbox clock: real time shifted by a settable offset, and QBO's time formats."""

from __future__ import annotations

import re
import threading
import time
from datetime import UTC, date, datetime, timedelta, timezone

_OFFSET = re.compile(r"^([+-])(\d{2}):(\d{2})$")


class Clock:
    """Wall-clock time that tests can move: ``set`` jumps to an instant, ``advance`` skips ahead.

    It keeps ticking after a jump, so ordering of writes stays strictly increasing.
    """

    def __init__(self) -> None:
        self._offset = 0.0
        self._last = 0.0
        self._lock = threading.Lock()

    @property
    def offset(self) -> float:
        return self._offset

    @offset.setter
    def offset(self, value: float) -> None:
        self._offset = value

    def time(self) -> float:
        """Epoch seconds, strictly increasing between calls."""
        with self._lock:
            now = time.time() + self._offset
            if now <= self._last:
                now = self._last + 1e-6
            self._last = now
            return now

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.time(), UTC)

    def set(self, when: datetime) -> None:
        with self._lock:
            self._offset = when.timestamp() - time.time()
            self._last = 0.0

    def advance(self, seconds: float) -> None:
        with self._lock:
            self._offset += seconds


def tz(offset: str) -> timezone:
    match = _OFFSET.match(offset)
    if not match:
        raise ValueError(f"bad UTC offset {offset!r}, expected like -08:00")
    sign = -1 if match.group(1) == "-" else 1
    return timezone(sign * timedelta(hours=int(match.group(2)), minutes=int(match.group(3))))


def fmt_seconds(epoch: float, offset: str) -> str:
    """MetaData style: ``2015-07-24T10:35:08-07:00``."""
    return datetime.fromtimestamp(int(epoch), tz(offset)).isoformat()


def fmt_millis(epoch: float, offset: str) -> str:
    """Response ``time`` style: ``2015-07-28T15:16:15.435-07:00``."""
    return datetime.fromtimestamp(epoch, tz(offset)).isoformat(timespec="milliseconds")


def fmt_utc_millis(epoch: float) -> str:
    """Legacy webhook ``lastUpdated`` style: ``2016-10-05T03:09:04.000Z``."""
    text = datetime.fromtimestamp(epoch, UTC).isoformat(timespec="milliseconds")
    return text.replace("+00:00", "Z")


def local_date(epoch: float, offset: str) -> date:
    return datetime.fromtimestamp(epoch, tz(offset)).date()


def parse_instant(text: str, offset: str) -> float:
    """Parse a QBO date or date-time literal to epoch seconds.

    A bare date is midnight in the company's zone. A date-time without an offset is read in the
    company's zone too: QBO_API.md marks the server's reading of offset-less values UNCONFIRMED,
    and the company zone is the reading under which a client that omits the offset gets exactly
    what it saw in MetaData.
    """
    raw = text.strip()
    if re.fullmatch(r"\d{4}-\d{2}-\d{2}", raw):
        day = date.fromisoformat(raw)
        return datetime(day.year, day.month, day.day, tzinfo=tz(offset)).timestamp()
    raw = raw.replace("Z", "+00:00")
    raw = re.sub(r"([+-]\d{2})(\d{2})$", r"\1:\2", raw)
    parsed = datetime.fromisoformat(raw)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=tz(offset))
    return parsed.timestamp()
