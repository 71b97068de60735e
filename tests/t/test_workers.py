"""Issue point 3: the pre-forked workers, seen from outside."""

import os
import re
import signal
from collections import Counter

import pytest

from conftest import (alive, at_ahead, conf_value, db_rows, etime, job,
                      proc_stat, rfc3339, sched, sqlite_config, wait_until)


def test_workers_are_children_of_the_master_and_group_leaders(daemon):
    daemon.start(workers=3)
    workers = daemon.wait_workers(3)
    for pid in workers:
        state, ppid, pgrp = proc_stat(pid)
        assert ppid == daemon.pid
        assert pgrp == pid, "worker %d is in group %d, not its own" % (
            pid, pgrp)


def test_dispatch_frame_larger_than_the_pipe_buffer(daemon):
    # The job definition travels in the dispatch frame: 200 KB of it is
    # more than PIPE_BUF (4 KiB) and more than a pipe holds (64 KiB). The
    # kernel takes no single environment string over 128 KiB
    # (MAX_ARG_STRLEN), so the 200 KB are four variables of 50 KB.
    out = daemon.dir / "big.out"
    env = {"BIG%d" % i: chr(ord("a") + i) * 50000 for i in range(4)}
    daemon.start(jobs=[job(
        "big", every="1s", env=env,
        command='printf %%s "$$(( $${#BIG0} + $${#BIG1} + $${#BIG2} '
                '+ $${#BIG3} ))" > %s' % out)])
    fin = daemon.wait_event("finish", job="big")[0]
    assert fin["status"] == "succeeded", fin
    assert out.read_text() == "200000"


def test_result_frame_larger_than_the_pipe_buffer(daemon):
    # 300 KB of output, all kept (output_limit), comes back in one result
    # frame much larger than the pipe; a second job's output is cut at
    # the default limit (64 KiB) and marked truncated.
    daemon.start(jobs=[
        job("loud", every="1s", output_limit="1MiB",
            command="head -c 300000 /dev/zero | tr '\\0' x"),
        job("capped", every="1s",
            command="head -c 300000 /dev/zero | tr '\\0' x"),
    ])
    loud = daemon.wait_event("finish", job="loud")[0]
    assert loud["status"] == "succeeded", loud
    assert loud["output_bytes"] == 300000, loud
    assert "output" not in loud, loud
    capped = daemon.wait_event("finish", job="capped")[0]
    assert capped["status"] == "succeeded", capped
    assert capped["output_bytes"] == 65536, capped
    assert capped.get("output") == "truncated", capped


def test_busy_workers_make_due_executions_wait_in_priority_order(daemon):
    # One worker, taken by "blocker" (sleep 2); "low" and "critical" fall
    # due while it is busy and wait; critical goes first once it is free.
    t = at_ahead(2)
    daemon.start(workers=1, jobs=[
        job("blocker", at=rfc3339(t), command="sleep 2"),
        job("low", at=rfc3339(t + 1), priority="low", command="true"),
        job("critical", at=rfc3339(t + 1), priority="critical",
            command="true"),
    ])
    daemon.wait_event("finish", job="low", timeout=15)
    daemon.wait_event("finish", job="critical")
    evs = daemon.events()
    order = [(e["event"], e.get("job")) for e in evs
             if e.get("event") in ("start", "finish")]
    i_block_fin = order.index(("finish", "blocker"))
    i_crit = order.index(("start", "critical"))
    i_low = order.index(("start", "low"))
    assert i_block_fin < i_crit < i_low, order
    # Both waited: they started after the blocker was done, not when due.
    crit = daemon.events("start", job="critical")[0]
    assert crit["lag_ms"] >= 500, crit


# What the master logs of each way the badframe test module breaks the
# protocol (its `mode`): %d is the worker's pid.
BAD_FRAMES = {
    None: "worker %d sent a malformed frame (bad magic 0x73696874); killing "
          "and replacing it",
    "dispatch": "worker %d sent a frame of type 1, which workers do not "
                "send; replacing it",
    "result": "worker %d sent a result that does not match its execution "
              "(field 1 (exec_id) is missing); replacing it",
}


@pytest.mark.parametrize("mode", list(BAD_FRAMES))
def test_malformed_result_frame_replaces_the_worker(daemon, mode):
    t = at_ahead(2)
    keys = {"mode": mode} if mode else {}
    daemon.start(workers=2, test_modules=["badframe"], jobs=[
        job("garbage", type="badframe", at=rfc3339(t), max_retries=0,
            **keys),
        job("tick", every="500ms", command="true"),
    ])
    before = set(daemon.workers())
    fin = daemon.wait_event("finish", job="garbage")[0]
    assert fin["status"] == "crashed", fin
    start = daemon.events("start", job="garbage")[0]
    bad_worker = start["worker"]
    assert fin["error"] == ("worker %d broke the protocol and was replaced"
                            % bad_worker), fin
    said = [e for e in daemon.events() if e.get("level") == "error"
            and "worker %d" % bad_worker in e.get("message", "")]
    assert [e["message"] for e in said] == [BAD_FRAMES[mode] % bad_worker]
    # Replaced: the bad worker is gone, and a new one took its place.
    now = daemon.wait_workers(2, exclude=[bad_worker])
    assert set(now) - before, (before, now)
    assert not alive(bad_worker)
    # The master still schedules.
    daemon.wait_event("start", job="tick", count=2, after=etime(fin))
    assert daemon.running()


def test_killed_idle_worker_is_replaced(daemon):
    db = daemon.dir / "hg.db"
    out = daemon.dir / "ran.out"
    daemon.start(sqlite_config(daemon, db, workers=2, jobs=[job(
        "tick", every="1s",
        command="echo $HOURGLASS_EXECUTION_ID >> %s" % out)]))
    # Right after a run: the next one is about a second away, so both
    # workers are idle.
    daemon.wait_event("finish", job="tick")
    done = {e["exec"] for e in daemon.events("finish")}
    running = {e["worker"] for e in daemon.events("start")
               if e["exec"] not in done}
    victim = next(w for w in daemon.workers() if w not in running)
    os.kill(victim, signal.SIGKILL)
    gone = daemon.wait_event("worker_exit", worker=victim)[0]
    assert gone["status"] == -9, gone
    daemon.wait_workers(2, exclude=[victim])
    # The master keeps scheduling ...
    daemon.wait_event("start", job="tick", count=2, after=etime(gone))
    assert daemon.running()
    # ... and no execution was lost with the worker: stopped gracefully,
    # every fire from the first to the last is there once (fixed rate:
    # one a second, no gap, no repeat), ran once, finished once and has
    # one row in the store, succeeded.
    daemon.signal(signal.SIGQUIT)
    assert daemon.wait_exit(timeout=15) == 0
    starts = daemon.events("start", job="tick")
    fins = daemon.events("finish", job="tick")
    started = Counter(e["exec"] for e in starts)
    finished = Counter(e["exec"] for e in fins)
    assert max(started.values()) == 1 and max(finished.values()) == 1, \
        (started, finished)
    assert set(started) == set(finished), (started, finished)
    assert all(f["status"] == "succeeded" for f in fins), fins
    due = sorted(sched(e) for e in starts)
    steps = [round(b - a, 2) for a, b in zip(due, due[1:])]
    assert steps and set(steps) == {1.0}, ("fires missing or repeated",
                                          [e["scheduled_for"] for e in starts])
    assert any(etime(e) > etime(gone) for e in starts)
    rows = db_rows(db, "job_id = 'tick'")
    assert sorted(r["id"] for r in rows) == sorted(started), rows
    assert all(r["status"] == "succeeded" for r in rows), rows
    assert sorted(r["scheduled_for"] / 1000 for r in rows) == due
    ran = out.read_text().split()
    assert sorted(ran) == sorted(started), ran


def test_killed_busy_worker_records_its_execution_crashed(daemon):
    daemon.start(workers=2, jobs=[
        job("victim", at=rfc3339(at_ahead(2)), max_retries=0,
            command="sleep 30"),
        job("tick", every="500ms", command="true")])
    start = daemon.wait_event("start", job="victim")[0]
    sleeps = wait_until(lambda: daemon.find_commands(["sleep", "30"]),
                        what="sleep 30")
    os.kill(start["worker"], signal.SIGKILL)
    fin = daemon.wait_event("finish", job="victim")[0]
    assert fin["status"] == "crashed", fin
    assert fin["signal"] == 9, fin
    # the command went with its worker's group (dash forks `sleep 30`, so
    # it is the worker's grandchild: only the group reaches it)
    survivors = []

    def gone():
        survivors[:] = [(p, proc_stat(p)) for p in sleeps if alive(p)]
        return not survivors
    try:
        wait_until(gone, timeout=5, what="sleep 30 to end with its worker")
    except AssertionError:
        raise AssertionError(
            "the command outlived its worker %d (killed with SIGKILL): "
            "still alive as (pid, (state, ppid, pgrp)) %s"
            % (start["worker"], survivors))
    # ... and the worker was replaced
    daemon.wait_workers(2, exclude=[start["worker"]])
    daemon.wait_event("start", job="tick", count=2, after=etime(fin))


def test_master_death_leaves_no_orphans(daemon):
    # The command has a child of its own (sleep 300 in the background).
    daemon.start(workers=2, jobs=[
        job("long", every="1s", command="sleep 300 & wait")])
    daemon.wait_event("start", job="long")
    sleeps = wait_until(lambda: daemon.find_commands(["sleep", "300"]),
                        what="the sleep 300 process")
    workers = daemon.workers()
    assert workers
    os.kill(daemon.pid, signal.SIGKILL)
    daemon.wait_exit()
    wait_until(lambda: not any(alive(p) for p in workers + sleeps),
               timeout=5, what=lambda: "the workers and the sleep to end "
               "(still alive: %s)" % [p for p in workers + sleeps
                                       if alive(p)])
    wait_until(lambda: not daemon.tagged(), timeout=5,
               what="every process of the daemon to end")


def test_workers_dying_at_start_are_reforked_with_a_growing_delay(daemon):
    # The workerfail module's init fails in workers (not in the cycle
    # reader) while FLAG exists: every worker dies as it starts.
    flag = daemon.dir / "fail"
    flag.write_text("")
    text = daemon.config(workers=1, test_modules=["workerfail"],
                         jobs=[job("tick", every="500ms", command="true")])
    text = re.sub(r"^(modules = \{.*?)\s*\};$",
                  lambda m: "%s workerfail = { fail_while = %s; }; };"
                  % (m.group(1), conf_value(str(flag))), text, flags=re.M)
    daemon.start(text, wait_ready=False)
    exits = daemon.wait_for(lambda evs: [
        e for e in evs if e.get("event") == "worker_exit"][:5] if len([
            e for e in evs if e.get("event") == "worker_exit"]) >= 5
        else None, what="five workers dying at start")
    flag.unlink()
    assert all(e["status"] == 70 for e in exits), exits
    said = [e for e in daemon.events()
            if "could not initialise its modules" in e.get("message", "")]
    assert len(said) >= 5, said
    # Each re-fork waits longer than the one before: at least 100 ms,
    # then 200, 400, 800 (doubling up to 5 s).
    gaps = [etime(b) - etime(a) for a, b in zip(exits, exits[1:])]
    print("gaps between deaths: %s" % ["%.3f" % g for g in gaps])
    for i, g in enumerate(gaps):
        assert g >= 0.1 * (1 << i) * 0.95, (i, gaps)
    # The master outlived them all and, the fault gone, runs again.
    assert daemon.running()
    daemon.wait_workers(1)
    daemon.wait_event("finish", job="tick", status="succeeded")
