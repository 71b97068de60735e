"""kill -9 of the master under load loses nothing that was acknowledged.

A load of short shell jobs (20 jobs every 200 ms and 10 cron jobs every
second: about 110 executions a second, plus a few slow and failing ones),
each appending its execution id to one file (O_APPEND: a short write is
atomic), so the file lists exactly the executions whose command really
started. The same with a fast load (the `echo` test module, about 1,700
executions a second), where the master records executions running ahead
of a worker ("primed"): a kill finds some of those too. The master is killed with SIGKILL at a random moment, four
times, and restarted on the same SQLite store; then stopped gracefully.
Snapshots of the store taken while no master runs say what each restart
had to recover. And a retry waiting for its backoff at the kill must
still run after the restart."""

import os
import random
import signal
import sqlite3
import time
from collections import Counter

import pytest

from conftest import at_ahead, job, rfc3339, sqlite_config, wait_until

FINAL = ("succeeded", "failed", "timed_out", "crashed", "killed", "skipped",
         "missed", "dead")
EVERY_JOBS = 20
CRON_JOBS = 10
EVERY_MS = 200
FAST_EVERY_JOBS = 40
FAST_EVERY_MS = 25
KILLS = 4


# --- helpers (this file's own) ---------------------------------------------



def snapshot(db):
    """({id: row} of executions, {job_id: last_fire}) read-only."""
    con = sqlite3.connect("file:%s?mode=ro" % db, uri=True, timeout=10)
    con.row_factory = sqlite3.Row
    try:
        rows = {r["id"]: dict(r) for r in con.execute(
            "SELECT id, run_id, job_id, status, attempt, triggered_by,"
            " scheduled_for, started_at, finished_at, error, worker_pid"
            " FROM executions")}
        states = {r["job_id"]: r["last_fire"]
                  for r in con.execute("SELECT job_id, last_fire"
                                       " FROM job_state")}
    finally:
        con.close()
    return rows, states


def read_ids(path):
    """[(execution id, attempt)] in the order the commands appended."""
    try:
        data = path.read_text()
    except FileNotFoundError:
        return []
    out = []
    for line in data.splitlines():
        parts = line.split()
        assert len(parts) == 2, "torn line in %s: %r" % (path, line)
        out.append((parts[0], int(parts[1])))
    return out


def load_jobs(out, fast):
    """The load, and {job id: interval in ms (None: every second, cron)}.
    Short jobs (shell commands, or with FAST the `echo` test module, which
    appends the same line in-process), two slow ones (so that a kill finds
    some executions running) and two that fail their first attempt and
    retry after 1 s (so that a kill finds retries queued)."""
    append = "echo $HOURGLASS_EXECUTION_ID $HOURGLASS_ATTEMPT >> %s" % out
    backoff = {"initial": "100ms", "max": "1s", "multiplier": 2.0,
               "jitter": 0.0}
    common = {"max_retries": 1, "backoff": backoff, "timeout": "10s"}
    if fast:
        short = dict(common, type="echo", append=str(out))
        every_jobs, every_ms = FAST_EVERY_JOBS, FAST_EVERY_MS
    else:
        short = dict(common, command=append)
        every_jobs, every_ms = EVERY_JOBS, EVERY_MS
    jobs, intervals = [], {}
    for i in range(every_jobs):
        jobs.append(job("ev%02d" % i, every="%dms" % every_ms, **short))
        intervals["ev%02d" % i] = every_ms
    for i in range(CRON_JOBS):
        jobs.append(job("cr%02d" % i, schedule="* * * * * *", **short))
        intervals["cr%02d" % i] = None
    for i in range(2):
        jobs.append(job("slow%d" % i, every="500ms",
                        command=append + "; sleep 0.3", **common))
        intervals["slow%d" % i] = 500
    common["backoff"] = dict(backoff, initial="1s")
    for i in range(2):
        jobs.append(job("flaky%d" % i, every="1s", command=append
                        + '; test "$HOURGLASS_ATTEMPT" -ge 2', **common))
        intervals["flaky%d" % i] = 1000
    return jobs, intervals


def first_missed(interval, last_fire):
    """The first fire time (ms) after LAST_FIRE (cron: next second)."""
    if interval is not None:
        return last_fire + interval
    return (last_fire // 1000 + 1) * 1000


# --- the test ---------------------------------------------------------------

@pytest.mark.parametrize("load", ["shell", "fast"])
def test_kill_9_under_load_loses_and_duplicates_nothing(daemon, load):
    seed = int(os.environ.get("HG_E2E_SEED", time.time()))
    rnd = random.Random(seed)
    print("seed %d (HG_E2E_SEED to repeat)" % seed)
    db = daemon.dir / "hg.db"
    out = daemon.dir / "started.txt"
    fast = load == "fast"
    jobs, intervals = load_jobs(out, fast)

    restarts = []           # per kill: (rows, states, restart time)
    for cycle in range(KILLS + 1):
        daemon.log = daemon.dir / ("hourglass.%d.log" % cycle)
        daemon.start(sqlite_config(daemon, db, jobs=jobs, workers=4,
                                   test_modules=["echo"] if fast else (),
                                   log_level="info" if fast else "debug"))
        if cycle == KILLS:
            break
        time.sleep(rnd.uniform(1.2, 2.2))
        daemon.signal(signal.SIGKILL)
        daemon.wait_exit()
        # its workers (and their commands) notice and leave
        wait_until(lambda: not daemon.tagged(), timeout=10,
                   what=lambda: "the killed master's processes to end "
                   "(left: %s)" % daemon.tagged())
        rows, states = snapshot(db)
        # down long enough, now and then, for fire times to pass
        time.sleep(rnd.uniform(0.2, 1.2))
        restarts.append((rows, states, time.time()))
    # the last run goes on a while, then a graceful stop
    time.sleep(1.5)
    daemon.signal(signal.SIGQUIT)
    assert daemon.wait_exit(timeout=15) == 0, daemon.master_output()

    final, _ = snapshot(db)
    started = read_ids(out)
    ids = [i for i, _ in started]

    # (a) every execution whose command started has one row, and it is
    # final; no execution started twice under one id
    dup = sorted(i for i, n in Counter(ids).items() if n > 1)
    assert not dup, "ids started more than once: %s" % dup[:10]
    missing = [i for i in ids if i not in final]
    assert not missing, ("%d started executions have no row: %s"
                         % (len(missing), missing[:10]))
    not_final = [(i, final[i]["status"]) for i in ids
                 if final[i]["status"] not in FINAL]
    assert not not_final, ("started executions whose row is not final: %s"
                           % not_final[:10])
    wrong_attempt = [(i, a, final[i]["attempt"]) for i, a in started
                     if final[i]["attempt"] != a]
    assert not wrong_attempt, wrong_attempt[:10]
    # and the other way: a row that says its command succeeded ran it
    idset = set(ids)
    phantom = [i for i, r in final.items()
               if r["status"] == "succeeded" and i not in idset]
    assert not phantom, ("succeeded rows whose command never started: %s"
                         % phantom[:10])

    # (b) after the graceful stop nothing is left running
    running = [r for r in final.values() if r["status"] == "running"]
    assert not running, "rows left running: %s" % [
        (r["id"], r["job_id"]) for r in running[:10]]

    # (c) rows found running at a restart were recorded crashed (or dead,
    # for a last attempt), each first attempt with a retry in its run
    by_run = {}
    for r in final.values():
        by_run.setdefault(r["run_id"], []).append(r)
    found_running = primed_at_kill = 0
    for rows, _, _ in restarts:
        for i, r in rows.items():
            if r["status"] != "running":
                continue
            found_running += 1
            # recorded running ahead of a worker, never sent to one
            primed_at_kill += not r["worker_pid"]
            now = final.get(i)
            assert now is not None, "row %s (running at a kill) lost" % i
            assert "found running" in (now["error"] or ""), now
            if now["attempt"] == 1:
                assert now["status"] == "crashed", now
                retries = [x for x in by_run.get(now["run_id"], ())
                           if x["attempt"] == 2]
                assert len(retries) == 1, (now, by_run.get(now["run_id"]))
                assert retries[0]["triggered_by"] == "retry", retries
            else:
                assert now["status"] == "dead", now
    crashed_rows = [r for r in final.values()
                    if "found running" in (r["error"] or "")]
    assert len(crashed_rows) == len({i for rows, _, _ in restarts
                                     for i, r in rows.items()
                                     if r["status"] == "running"}), \
        "rows recorded crashed at a restart that were not running then"

    # (d) queued rows survive a kill: run later or still queued
    queued_at_kill = 0
    for rows, _, _ in restarts:
        for i, r in rows.items():
            if r["status"] != "queued":
                continue
            queued_at_kill += 1
            now = final.get(i)
            assert now is not None, "row %s (queued at a kill) lost" % i
            assert now["status"] in FINAL + ("queued",), now

    # (e) run_once: one misfire execution per job whose fire time passed
    # while no master ran
    misfire_rows = [r for r in final.values()
                    if r["triggered_by"] == "misfire"]
    expected_misfires = 0
    for k, (rows, states, restarted) in enumerate(restarts):
        # the next kill's last fire bounds this restart's misfires
        later = restarts[k + 1][1] if k + 1 < len(restarts) else {}
        for job_id, last in states.items():
            if first_missed(intervals[job_id], last) \
                    > restarted * 1000 - 50:
                continue
            expected_misfires += 1
            upto = later.get(job_id, restarted * 1000 + 5000)
            got = [r for r in misfire_rows if r["job_id"] == job_id
                   and last < r["scheduled_for"] <= upto]
            assert len(got) == 1, (job_id, last, restarted, got)
    assert expected_misfires > 0, "no downtime spanned a fire time"

    # (f) a fire time the store counts as done (job_state.last_fire) has
    # its execution in the same store: the kill fell between no pair of
    # writes that a restart would need together
    for rows, states, _ in restarts:
        fired = {(r["job_id"], r["scheduled_for"]) for r in rows.values()
                 if r["triggered_by"] in ("schedule", "misfire")}
        orphans = [(j, t) for j, t in states.items() if (j, t) not in fired]
        assert not orphans, ("last fire times without their execution: %s"
                             % orphans[:10])

    retries = [r for r in final.values() if r["attempt"] == 2]
    statuses = {}
    for r in final.values():
        statuses[r["status"]] = statuses.get(r["status"], 0) + 1
    print("executions: %d rows, %d started (file); found running at a "
          "restart (crashed): %d, of which primed: %d; queued at a kill: "
          "%d; retries: %d; misfire executions: %d (expected at least %d); "
          "statuses: %s"
          % (len(final), len(ids), found_running, primed_at_kill,
             queued_at_kill, len(retries), len(misfire_rows),
             expected_misfires, statuses))
    # the load was the load asked for: about 110 executions a second
    assert len(ids) >= 100 * KILLS, len(ids)


def test_a_retry_waiting_at_kill_9_still_runs_after_the_restart(daemon):
    # Attempt 1 fails; attempt 2 waits 2.5 s of backoff, recorded queued
    # with its run_at, when the master is killed. The restarted master
    # finds it queued. Before its run_at comes, the job's next regular
    # fire (every 1 s) is due. Without the kill, a waiting retry counts
    # as the job's pending run (overlap = skip skips the regular fires
    # meanwhile) and always runs; it must run after a restart too, not
    # end skipped, which would leave its run without its retry.
    db = daemon.dir / "hg.db"
    daemon.start(sqlite_config(daemon, db, workers=2, jobs=[job(
        "flaky", every="1s", max_retries=1,
        backoff={"initial": "2500ms", "jitter": 0.0},
        command='test "$HOURGLASS_ATTEMPT" -ge 2')]))
    retry = daemon.wait_event("retry", job="flaky")[0]
    # its queued record reaches the store with the next commit
    wait_until(lambda: retry["exec"] in snapshot(db)[0],
               what="the retry's queued row")
    daemon.signal(signal.SIGKILL)
    daemon.wait_exit()
    wait_until(lambda: not daemon.tagged(), timeout=10,
               what="the killed master's processes to end")
    before = snapshot(db)[0][retry["exec"]]
    assert before["status"] == "queued", before
    daemon.start()
    row = wait_until(lambda: (lambda r: r if r["status"] in FINAL else None)(
        snapshot(db)[0][retry["exec"]]), timeout=10,
        what="the recovered retry to end")
    rows = sorted(snapshot(db)[0].values(),
                  key=lambda r: (r["scheduled_for"], r["attempt"]))
    assert row["status"] == "succeeded", (
        "the retry recovered at restart ended %s (%s); rows: %s"
        % (row["status"], row["error"],
           [(r["id"][-6:], r["attempt"], r["status"], r["triggered_by"],
             r["error"]) for r in rows]))
    assert row["attempt"] == 2 and row["run_id"] == before["run_id"], row


def test_unfinished_executions_of_a_removed_job_are_closed_at_restart(daemon):
    # The master is killed while "long" runs and while "flaky" waits for
    # its retry (queued). It restarts with a configuration that has
    # neither job: each execution is closed, not left unfinished for ever
    # nor run: the running one crashed, the queued one skipped, both
    # saying why. A job that is still configured keeps its own.
    db = daemon.dir / "hg.db"
    keep = job("keep", every="1h", command="true")
    daemon.start(sqlite_config(daemon, db, workers=2, jobs=[
        keep,
        job("long", at=rfc3339(at_ahead(1)), command="sleep 300"),
        job("flaky", at=rfc3339(at_ahead(1)), max_retries=1,
            backoff={"initial": "1h", "jitter": 0.0}, command="false")]))
    run = daemon.wait_event("start", job="long")[0]
    retry = daemon.wait_event("retry", job="flaky")[0]
    wait_until(lambda: (lambda rows: rows.get(run["exec"], {}).get("status")
                        == "running" and retry["exec"] in rows)(
        snapshot(db)[0]), what="the running and the queued rows")
    daemon.signal(signal.SIGKILL)
    daemon.wait_exit()
    wait_until(lambda: not daemon.tagged(), timeout=10,
               what="the killed master's processes to end")
    daemon.start(sqlite_config(daemon, db, workers=2, jobs=[keep]))
    rows = wait_until(lambda: (lambda r: r if r[run["exec"]]["status"]
                               != "running"
                               and r[retry["exec"]]["status"] != "queued"
                               else None)(snapshot(db)[0]),
                      what="the removed jobs' executions closed")
    assert rows[run["exec"]]["status"] == "crashed", rows[run["exec"]]
    assert rows[run["exec"]]["error"] == "its job no longer exists"
    assert rows[run["exec"]]["finished_at"] is not None
    assert rows[retry["exec"]]["status"] == "skipped", rows[retry["exec"]]
    assert rows[retry["exec"]]["error"] == "its job no longer exists"
    # nothing of theirs ran again
    assert [e["exec"] for e in daemon.events("start", job="long")] \
        == [run["exec"]]
    assert [e["exec"] for e in daemon.events("start", job="flaky")] \
        != [] and retry["exec"] not in [
            e["exec"] for e in daemon.events("start", job="flaky")]
