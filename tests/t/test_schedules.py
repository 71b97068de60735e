"""Issue point 9: every, at and 6-field cron schedules in a running
daemon."""

import re
import time
from datetime import datetime
from zoneinfo import ZoneInfo

from conftest import (at_ahead, etime, job, parse_time, rfc3339,
                      run_hourglass, sched)

UTC_WHOLE_SECOND = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:(\d\d)"
                              r"(?:\.000)?(?:Z|\+00:00)$")


def test_every_1s_fires_about_once_a_second(daemon):
    daemon.start(jobs=[job("tick", every="1s", command="true")])
    t0 = etime(daemon.events("start_master")[0])
    time.sleep(max(0.0, t0 + 4.5 - time.time()))
    starts = [e for e in daemon.events("start", job="tick")
              if etime(e) <= t0 + 4.5]
    assert 3 <= len(starts) <= 5, starts
    # fixed rate: due times one second apart
    due = [sched(e) for e in starts]
    for a, b in zip(due, due[1:]):
        assert abs((b - a) - 1.0) < 0.05, due


def test_at_fires_exactly_once(daemon):
    t = at_ahead(2)
    daemon.start(jobs=[job("once", at=rfc3339(t), command="true"),
                       job("tick", every="1s", command="true")])
    start = daemon.wait_event("start", job="once")[0]
    assert sched(start) == t
    assert etime(start) >= t - 0.01
    # two more seconds (the tick proves the scheduler is alive)
    daemon.wait_event("start", job="tick", count=2, after=etime(start))
    assert len(daemon.events("start", job="once")) == 1
    fin = daemon.events("finish", job="once")
    assert len(fin) == 1 and fin[0]["status"] == "succeeded"


def test_six_field_cron_fires_on_even_seconds(daemon):
    # The command records the fire time it was given, so the test sees
    # what the job saw as well as what the log says.
    out = daemon.dir / "due.out"
    daemon.start(jobs=[job("even", schedule="*/2 * * * * *",
                           command='echo "$HOURGLASS_SCHEDULED_FOR" >> %s'
                           % out)])
    starts = daemon.wait_event("start", job="even", count=3)
    due = [sched(e) for e in starts]
    for d, e in zip(due, starts):
        # the seconds field of the UTC fire time itself is even
        m = UTC_WHOLE_SECOND.match(e["scheduled_for"])
        assert m, e["scheduled_for"]
        assert int(m.group(1)) % 2 == 0, e["scheduled_for"]
        assert d == int(d) and int(d) % 2 == 0, e["scheduled_for"]
        # it fired at that second, not before it
        assert etime(e) >= d, e
    assert [b - a for a, b in zip(due, due[1:])] == [2.0, 2.0], due
    fins = daemon.wait_event("finish", job="even", count=3)
    assert all(f["status"] == "succeeded" for f in fins), fins
    seen = [parse_time(l) for l in out.read_text().split()]
    assert seen[:3] == due, (seen, due)


def test_start_at_holds_an_every_job_until_then_and_sets_its_grid(daemon):
    # "ahead" may not fire before its start_at, then fires at it and on
    # its grid; "behind" (start_at in the past) keeps the grid of its
    # start_at: start_at + k * every, whenever the daemon started.
    ahead = at_ahead(3)
    behind = int(time.time()) - 10
    daemon.start(jobs=[
        job("ahead", every="1s", start_at=rfc3339(ahead), command="true"),
        job("behind", every="3s", start_at=rfc3339(behind),
            command="true"),
        job("tick", every="500ms", command="true")])
    starts = daemon.wait_event("start", job="ahead", count=2)
    assert [sched(e) for e in starts] == [ahead, ahead + 1], starts
    assert etime(starts[0]) >= ahead, starts[0]
    # nothing of "ahead" before its start_at, while the daemon ran
    ticks = [e for e in daemon.events("start", job="tick")
             if etime(e) < ahead]
    assert ticks, "the daemon was not scheduling before start_at"
    assert not [e for e in daemon.events() if e.get("job") == "ahead"
                and etime(e) < ahead]
    grid = [sched(e) for e in daemon.wait_event("start", job="behind",
                                                count=2)]
    for d in grid:
        assert round(d - behind, 3) % 3 == 0, (d, behind, grid)
    assert round(grid[1] - grid[0], 3) == 3, grid


def local_fields(epoch, zone):
    """A 6-field cron expression matching EPOCH's wall time in ZONE
    (second, minute, hour, day, month; any weekday)."""
    t = datetime.fromtimestamp(epoch, ZoneInfo(zone))
    return "%d %d %d %d %d *" % (t.second, t.minute, t.hour, t.day, t.month)


def test_job_timezone_and_global_timezone_in_a_running_daemon(daemon):
    # Kathmandu (+05:45) and St John's (-03:30 or -02:30) differ from UTC
    # by hours and a fraction. Each expression matches a wall time a few
    # seconds ahead in its zone only: read in any other zone it is hours
    # away.
    t = at_ahead(3)
    ktm = local_fields(t, "Asia/Kathmandu")
    nfl = local_fields(t + 1, "America/St_Johns")
    text = daemon.config(jobs=[
        job("ktm", schedule=ktm, timezone="Asia/Kathmandu", command="true"),
        job("ktm_utc", schedule=ktm, timezone="UTC", command="true"),
        job("nfl", schedule=nfl, command="true"),
        job("tick", every="500ms", command="true")])
    text = text.replace('timezone = "UTC";',
                        'timezone = "America/St_Johns";', 1)
    daemon.start(text)
    # -T shows the zones in effect
    shown = run_hourglass("-T", "-c", daemon.conf).stdout
    assert "Asia/Kathmandu" in shown and "America/St_Johns" in shown, shown
    k = daemon.wait_event("start", job="ktm")[0]
    n = daemon.wait_event("start", job="nfl")[0]
    assert sched(k) == t, (k["scheduled_for"], rfc3339(t))
    assert sched(n) == t + 1, (n["scheduled_for"], rfc3339(t + 1))
    assert etime(k) >= t and etime(n) >= t + 1
    # the same fields read in UTC are hours away: nothing fired
    daemon.wait_event("start", job="tick", count=2, after=t + 1)
    assert not daemon.events("start", job="ktm_utc")
    nxt = run_hourglass("next", "--tz", "UTC", "--from", rfc3339(t - 1),
                        "-n", "1", ktm)
    assert nxt.returncode == 0, nxt.stderr
    assert abs(parse_time(nxt.stdout.strip()) - t) >= 3600, nxt.stdout
