"""Issue 4, point 5: wall-clock steps. The master's realtime timerfd
(TFD_TIMER_CANCEL_ON_SET) notices a step and recomputes every wall-clock
schedule: nothing fires twice because the clock went back, and fire times
a forward step jumps over follow the job's misfire policy.

These tests move the machine's clock (and put it back), which disturbs
every other process on it: they run only when HG_TEST_CLOCK=1 (CI sets it
on its own machine) and as root.
"""

import collections
import os
import time

import pytest

from conftest import job, sched

pytestmark = [
    pytest.mark.skipif(
        os.environ.get("HG_TEST_CLOCK") != "1" or os.geteuid() != 0,
        reason="steps the system clock: set HG_TEST_CLOCK=1 (as root)"),
    pytest.mark.serial,                 # every daemon sees the steps
]


class ClockStep:
    """Steps CLOCK_REALTIME and always undoes the sum of the steps."""

    def __init__(self):
        self.total = 0.0

    def step(self, seconds):
        now = time.clock_gettime(time.CLOCK_REALTIME)
        time.clock_settime(time.CLOCK_REALTIME, now + seconds)
        self.total += seconds

    def restore(self):
        if self.total:
            self.step(-self.total)


@pytest.fixture
def clock():
    c = ClockStep()
    try:
        c.step(0.0)
    except PermissionError:
        pytest.skip("this machine does not let us set the clock")
    try:
        yield c
    finally:
        c.restore()


def test_clock_steps_never_repeat_and_misfire_once(daemon, clock):
    daemon.start(jobs=[job("sec", type="system", task="noop",
                           schedule="* * * * * *", misfire="run_once")],
                 load=("system",))
    daemon.wait_event("start", job="sec", count=2)

    # Back 3 s: the seconds just run come round again on the wall clock.
    clock.step(-3.0)
    daemon.wait_for(lambda evs: sum(
        "wall clock was stepped" in e.get("message", "") for e in evs) >= 1,
        what="the clock step log line")
    time.sleep(2.0)

    # Forward 8 s (3 back to where it was, 5 more): at least 4 fire times
    # are jumped over; misfire = run_once runs one of them.
    clock.step(8.0)
    daemon.wait_for(lambda evs: sum(
        "wall clock was stepped" in e.get("message", "") for e in evs) >= 2,
        what="the second clock step log line")
    daemon.wait_event("start", job="sec", trigger="misfire")
    time.sleep(1.5)
    clock.restore()
    time.sleep(1.0)

    starts = daemon.events("start", job="sec")
    due = collections.Counter(sched(e) for e in starts)
    assert [t for t, n in due.items() if n > 1] == [], due
    misfires = [e for e in starts if e["trigger"] == "misfire"]
    assert len(misfires) == 1, misfires
