"""R28: every company is pulled at least every ``pull_interval_hours`` (12 by default), with or
without changes, through ``pull_interval_schedule`` as the Dagster daemon evaluates it; its
pause and automatic-sync switches hold it back (R30). The run it requests is the pull job, whose
pull brings a QBO change into the source app."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import dagster as dg
from reconcilebed import ReconcileBed

from qbo_pipelines.cli import main
from qbo_pipelines.defs.pull import COMPANIES, PULL_ASSETS, pull_interval_schedule, pull_job


def _tick(bed: ReconcileBed, at: datetime) -> list[dg.RunRequest] | dg.SkipReason:
    # entered: the context enters an instance of its own, which must be left before it goes
    # (Dagster's current definitions state would otherwise point at a dead instance)
    with dg.build_schedule_context(
        instance=bed.instance, resources=bed.resources(), scheduled_execution_time=at
    ) as context:
        out = pull_interval_schedule(context)
    assert isinstance(out, list | dg.SkipReason)
    return out


def test_R28_pull_interval_schedule_pulls_each_company_once_its_interval_has_passed(
    bed: ReconcileBed,
) -> None:
    # resolved before the schedule's contexts come and go (they hold the instance weakly)
    job = dg.Definitions(
        assets=PULL_ASSETS, jobs=[pull_job], resources=bed.resources()
    ).resolve_job_def(pull_interval_schedule.job_name or "pull_job")
    now = datetime.now(UTC)
    early = _tick(bed, now + timedelta(hours=1))  # the fixture pulled a moment ago
    assert isinstance(early, dg.SkipReason)
    assert "every 12 h" in str(early.skip_message)

    # due: five minutes into the first 12 h slot (of the wall clock) after 12 h have passed, so
    # the repeated tick a minute later is in the same slot whatever the time of day
    slot = 12 * 3600
    first = (int((now + timedelta(hours=12)).timestamp()) // slot + 1) * slot + 300
    at = datetime.fromtimestamp(first, UTC)
    due = _tick(bed, at)
    assert isinstance(due, list)
    assert [(r.partition_key, r.tags["qbo_pipelines/trigger"]) for r in due] == [
        (bed.realm, "schedule")
    ]
    assert due[0].run_key is not None
    assert due[0].run_key.startswith(f"interval:{bed.realm}:12h:")
    # a repeated tick in the same slot asks for the same run (the run key starts it once)
    again = _tick(bed, at + timedelta(minutes=1))
    assert isinstance(again, list)
    assert [r.run_key for r in again] == [due[0].run_key]

    # the interval is the company's setting
    assert main(["mappings", "set", "pull-interval-hours", "1", "--realm", bed.realm]) == 0
    hourly = _tick(bed, now + timedelta(hours=1, minutes=5))
    assert isinstance(hourly, list)
    assert len(hourly) == 1
    assert str(hourly[0].run_key).startswith(f"interval:{bed.realm}:1h:")

    # paused, or automatic sync off: no pull (R30)
    assert main(["sync", "pause", "--realm", bed.realm]) == 0
    paused = _tick(bed, now + timedelta(hours=3))
    assert isinstance(paused, dg.SkipReason)
    assert "paused" in str(paused.skip_message)
    assert main(["sync", "resume", "--realm", bed.realm]) == 0

    # The run the schedule asks for pulls a change made in QBO with no webhook into the source.
    row = bed.rows(
        bed.env.warehouse,
        "SELECT source_id, qbo_id FROM sync.record_state WHERE realm_id = :r"
        " AND entity = 'customers' AND created_by = 'sync' AND status = 'synced'"
        " ORDER BY source_id::int LIMIT 1",
        r=bed.realm,
    )[0]
    bed.sandbox.control.user_update(
        bed.realm,
        "Customer",
        {"Id": row[1], "PrimaryEmailAddr": {"Address": "r28@example.com"}, "sparse": True},
    )
    if not bed.instance.has_dynamic_partition(COMPANIES, bed.realm):
        bed.instance.add_dynamic_partitions(COMPANIES, [bed.realm])
    result = job.execute_in_process(
        instance=bed.instance, partition_key=bed.realm, tags=dict(hourly[0].tags)
    )
    assert result.success
    email = bed.rows(bed.env.source, "SELECT email FROM app.contacts WHERE id = :i", i=int(row[0]))
    assert email == [("r28@example.com",)]
    # that run counts as the company's pull: the next tick within the hour waits
    later = _tick(bed, datetime.now(UTC) + timedelta(minutes=30))
    assert isinstance(later, dg.SkipReason)
    assert "every 1 h" in str(later.skip_message)
