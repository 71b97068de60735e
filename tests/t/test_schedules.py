"""Issue point 9: every, at and 6-field cron schedules in a running
daemon."""

import re
import time

from conftest import at_ahead, etime, job, parse_time, rfc3339, sched

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
