"""Fire times missed while the daemon was down, per each job's `misfire`
policy (skip | run_once | run_all, capped at 100): the store keeps every
job's last fire time (table job_state), and the next start compares it
with the schedule."""

import signal
import functools
import sqlite3
import time


import conftest
from conftest import job, sqlite_config

FINAL = ("succeeded", "failed", "timed_out", "crashed", "killed", "skipped",
         "missed", "dead")
DOWNTIME = 3.5


# --- helpers (this file's own) ---------------------------------------------





def summarize(rows):
    return [(r["job_id"], r["id"][-6:], r["status"], r["triggered_by"],
             r["scheduled_for"], r["started_at"]) for r in rows]


ORDER = "job_id, scheduled_for, id"
db_rows = functools.partial(conftest.db_rows, order=ORDER)


def wait_final(db, pred, what, timeout=10):
    return conftest.wait_rows(db, pred, timeout=timeout, what=what,
                              order=ORDER, describe=summarize)


def misfires(rows, job_id):
    return [r for r in rows if r["job_id"] == job_id
            and r["triggered_by"] == "misfire"]


def two_jobs(misfire, **kw):
    """An `every` job and a cron job firing every second."""
    return [job("ev", every="1s", command="true", misfire=misfire, **kw),
            job("cr", schedule="* * * * * *", command="true",
                misfire=misfire, **kw)]


def run_stop_wait_restart(d, text, downtime=DOWNTIME, between=None):
    """Starts D, lets both jobs fire, stops it with SIGTERM, waits
    DOWNTIME seconds (calling BETWEEN, if given, meanwhile), starts it
    again on the same store. Returns (time of the stop, time of the
    restart), epoch seconds."""
    d.start(text)
    d.wait_event("finish", job="ev", status="succeeded")
    d.wait_event("finish", job="cr", status="succeeded")
    d.signal(signal.SIGTERM)
    assert d.wait_exit() == 0, d.master_output()
    stopped = time.time()
    if between is not None:
        between()
    time.sleep(max(0.0, downtime - (time.time() - stopped)))
    first_pid = d.pid
    restarted = time.time()
    d.start()
    assert d.pid != first_pid
    return stopped, restarted


def misfire_lines(d, job_id):
    """The `misfire` log lines of the restarted master for JOB_ID."""
    return [e for e in d.events("misfire", job=job_id) if e["pid"] == d.pid]




# --- tests ------------------------------------------------------------------

def test_misfire_skip_runs_nothing_for_the_downtime(daemon):
    db = daemon.dir / "hg.db"
    text = sqlite_config(daemon, db, jobs=two_jobs("skip"))
    _, restarted = run_stop_wait_restart(daemon, text)
    for j in ("ev", "cr"):
        lines = daemon.wait_event("misfire", job=j, pid=daemon.pid)
        assert "skip" in lines[0]["message"], lines
    # the schedule goes on: wait for a regular run of each after the restart
    rows = wait_final(db, lambda rs: all(
        any(r["job_id"] == j and r["started_at"] > restarted * 1000
            and r["status"] == "succeeded" for r in rs)
        for j in ("ev", "cr")), what="a run of each job after the restart")
    assert not [r for r in rows if r["triggered_by"] == "misfire"], \
        summarize(rows)
    assert not [e for e in daemon.events("start")
                if e["trigger"] == "misfire"]


def test_misfire_run_once_runs_one_at_start(daemon):
    db = daemon.dir / "hg.db"
    text = sqlite_config(daemon, db, jobs=two_jobs("run_once"))
    stopped, restarted = run_stop_wait_restart(daemon, text)
    rows = wait_final(db, lambda rs: all(
        misfires(rs, j) and all(r["status"] in FINAL
                                for r in misfires(rs, j))
        for j in ("ev", "cr")), what="a final misfire execution per job")
    for j in ("ev", "cr"):
        got = misfires(rows, j)
        assert len(got) == 1, summarize(rows)
        r = got[0]
        assert r["status"] == "succeeded", r
        # one of the missed fire times (the last), run right after start
        assert stopped * 1000 - 1000 < r["scheduled_for"] <= \
            restarted * 1000 + 1000, (r, stopped, restarted)
        assert restarted * 1000 <= r["started_at"] <= \
            restarted * 1000 + 5000, (r, restarted)
        lines = misfire_lines(daemon, j)
        assert lines and "run_once" in lines[0]["message"], lines
    # and only one, a little later too
    time.sleep(1.2)
    rows = db_rows(db)
    assert len(misfires(rows, "ev")) == 1 and \
        len(misfires(rows, "cr")) == 1, summarize(rows)


def check_run_all(daemon, db, stopped, restarted):
    rows = wait_final(db, lambda rs: all(
        misfires(rs, j) and all(r["status"] in FINAL
                                for r in misfires(rs, j))
        for j in ("ev", "cr")), what="the misfire executions final")
    time.sleep(0.5)
    rows = db_rows(db)
    for j in ("ev", "cr"):
        got = misfires(rows, j)
        print("%s: %d misfire executions: %s" % (
            j, len(got), [r["status"] for r in got]))
        # one per second of downtime
        assert 2 <= len(got) <= 5, summarize(rows)
        times = [r["scheduled_for"] for r in got]
        assert len(set(times)) == len(times), summarize(got)
        for t in times:
            assert stopped * 1000 - 1500 < t <= restarted * 1000 + 500, \
                (t, stopped, restarted, summarize(got))
        lines = misfire_lines(daemon, j)
        assert lines and "run_all" in lines[0]["message"], lines
    return rows


def test_misfire_run_all_runs_each_missed_time(daemon):
    # overlap = queue: the catch-up runs go one after another
    db = daemon.dir / "hg.db"
    text = sqlite_config(daemon, db, jobs=two_jobs("run_all",
                                                   overlap="queue"))
    stopped, restarted = run_stop_wait_restart(daemon, text)
    rows = check_run_all(daemon, db, stopped, restarted)
    for j in ("ev", "cr"):
        got = misfires(rows, j)
        assert all(r["status"] == "succeeded" for r in got), summarize(got)


def test_misfire_run_all_with_the_default_overlap(daemon):
    # The default overlap is skip. The catch-up fires are made at once at
    # start; the log says "running each (misfire = run_all)": each missed
    # fire time should run, not be skipped as if it overlapped a run that
    # only exists because of the same catch-up.
    db = daemon.dir / "hg.db"
    text = sqlite_config(daemon, db, jobs=two_jobs("run_all"))
    stopped, restarted = run_stop_wait_restart(daemon, text)
    rows = check_run_all(daemon, db, stopped, restarted)
    for j in ("ev", "cr"):
        got = misfires(rows, j)
        skipped = [r for r in got if r["status"] == "skipped"]
        assert not skipped, (
            "run_all: %d of %d catch-up executions of %s recorded skipped "
            "(%s)" % (len(skipped), len(got), j, skipped[0]["error"]))


def test_misfire_run_all_is_capped_at_100(daemon):
    db = daemon.dir / "hg.db"
    jobs = [job("cr", schedule="* * * * * *", command="true",
                misfire="run_all", overlap="allow"),
            job("ev", every="1s", command="true", misfire="skip")]
    text = sqlite_config(daemon, db, workers=4, jobs=jobs)

    def age_last_fire():
        con = sqlite3.connect(str(db), timeout=10)
        try:
            old = int((time.time() - 200) * 1000)
            n = con.execute("UPDATE job_state SET last_fire = ? WHERE"
                            " job_id = 'cr'", (old,)).rowcount
            con.commit()
        finally:
            con.close()
        assert n == 1

    run_stop_wait_restart(daemon, text, downtime=0.5, between=age_last_fire)
    line = daemon.wait_for(lambda evs: [
        e for e in evs if e.get("event") == "misfire" and e.get("job") == "cr"
        and e.get("pid") == daemon.pid], what="the misfire line of cr")[0]
    assert "100" in line["message"] and "capped" in line["message"], line
    wait_final(db, lambda rs: len(misfires(rs, "cr")) >= 100
               and all(r["status"] in FINAL for r in misfires(rs, "cr")),
               what="100 misfire executions final", timeout=15)
    time.sleep(1.0)
    got = misfires(db_rows(db), "cr")
    print("cr: %d misfire executions: %d succeeded" % (
        len(got), sum(r["status"] == "succeeded" for r in got)))
    assert len(got) == 100, len(got)
    assert len({r["scheduled_for"] for r in got}) == 100


AT_POLICIES = ("skip", "run_once", "run_all")


def test_misfire_of_at_jobs_follows_each_policy(daemon):
    # `done` fires before the stop; the `at` of the others passes while
    # the daemon is down. At the restart: run_once and run_all run the
    # missed time once (an `at` has one), skip runs nothing and says so,
    # and `done` does not run again.
    db = daemon.dir / "hg.db"
    t0 = conftest.at_ahead(2)
    due = t0 + 3
    jobs = [job("done", at=conftest.rfc3339(t0), command="true")]
    jobs += [job("at_" + p, at=conftest.rfc3339(due), command="true",
                 misfire=p) for p in AT_POLICIES]
    daemon.start(sqlite_config(daemon, db, jobs=jobs))
    daemon.wait_event("finish", job="done", status="succeeded")
    daemon.signal(signal.SIGTERM)
    assert daemon.wait_exit() == 0, daemon.master_output()
    assert time.time() < due, "stopped too late: the at already passed"
    assert not daemon.events("start", job="at_run_once")
    time.sleep(max(0.0, due + 1 - time.time()))
    daemon.start()
    rows = wait_final(db, lambda rs: all(
        misfires(rs, "at_" + p) and all(r["status"] in FINAL
                                        for r in misfires(rs, "at_" + p))
        for p in ("run_once", "run_all")),
        what="the missed at of run_once and run_all run")
    time.sleep(0.5)
    rows = db_rows(db)
    for p in ("run_once", "run_all"):
        got = [r for r in rows if r["job_id"] == "at_" + p]
        assert len(got) == 1, summarize(rows)
        assert got[0]["triggered_by"] == "misfire", summarize(got)
        assert got[0]["scheduled_for"] == due * 1000, summarize(got)
        assert got[0]["status"] == "succeeded", summarize(got)
    assert not [r for r in rows if r["job_id"] == "at_skip"], summarize(rows)
    assert len([r for r in rows if r["job_id"] == "done"]) == 1, \
        summarize(rows)
    for p in AT_POLICIES:
        lines = misfire_lines(daemon, "at_" + p)
        assert lines and p in lines[0]["message"], lines


def test_an_at_that_ran_does_not_run_again_after_a_restart(daemon):
    # Whatever the policy: its one fire time is done, not missed.
    db = daemon.dir / "hg.db"
    t0 = conftest.at_ahead(2)
    jobs = [job("at_" + p, at=conftest.rfc3339(t0), command="true",
                misfire=p) for p in AT_POLICIES]
    jobs.append(job("tick", every="500ms", command="true"))
    daemon.start(sqlite_config(daemon, db, jobs=jobs))
    for p in AT_POLICIES:
        daemon.wait_event("finish", job="at_" + p, status="succeeded")
    daemon.signal(signal.SIGTERM)
    assert daemon.wait_exit() == 0, daemon.master_output()
    time.sleep(1.0)
    daemon.start()
    # the restarted master schedules (two ticks) and runs no `at` again
    daemon.wait_event("finish", job="tick", count=2, pid=daemon.pid)
    rows = db_rows(db)
    for p in AT_POLICIES:
        got = [r for r in rows if r["job_id"] == "at_" + p]
        assert len(got) == 1 and got[0]["triggered_by"] == "schedule", \
            summarize(rows)
        assert not misfire_lines(daemon, "at_" + p)
