"""R27/R30: the debounce planner behind the source-changes sensor (pure)."""

from datetime import UTC, datetime, timedelta

from qbo_pipelines.sync.triggers import Pending, TriggerSettings, decide

NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)


def _pending(first_ago: int, last_ago: int, count: int = 3, seq: int = 42) -> Pending:
    return Pending(
        count, seq, NOW - timedelta(seconds=first_ago), NOW - timedelta(seconds=last_ago)
    )


def test_R27_no_changes_no_run() -> None:
    d = decide("1", NOW, Pending(0, 0, None, None), TriggerSettings())
    assert not d.run
    assert "no source changes" in d.reason


def test_R27_changes_still_settling_wait() -> None:
    d = decide("1", NOW, _pending(first_ago=30, last_ago=10), TriggerSettings())
    assert not d.run
    assert "settling" in d.reason


def test_R27_settled_changes_start_one_run_keyed_by_last_seq() -> None:
    d = decide("1", NOW, _pending(first_ago=300, last_ago=121), TriggerSettings())
    assert d.run
    assert d.run_key == "push:1:42"
    assert d.covers_seq == 42


def test_R27_maximum_wait_reached_runs_even_while_changes_keep_coming() -> None:
    d = decide("1", NOW, _pending(first_ago=601, last_ago=1), TriggerSettings(max_wait_seconds=600))
    assert d.run
    assert "maximum" in d.reason


def test_R30_paused_or_switched_off_never_runs() -> None:
    pending = _pending(first_ago=900, last_ago=800)
    assert not decide("1", NOW, pending, TriggerSettings(paused=True)).run
    assert not decide("1", NOW, pending, TriggerSettings(sync_enabled=False)).run
