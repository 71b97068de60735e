"""What happens to a fire while the job's previous run still goes
(overlap = skip | queue | replace | allow), and the ready queue's other
rules: priority, jitter and starting_deadline. Read back from the SQLite
store and from the log."""

import functools
import signal

import conftest
from conftest import sqlite_config, at_ahead, job, rfc3339, wait_until

FINAL = ("succeeded", "failed", "timed_out", "crashed", "killed", "skipped",
         "missed", "dead")
INF = float("inf")


# --- helpers (this file's own) ---------------------------------------------







def summarize(rows):
    return [(r["id"][-6:], r["job_id"], r["status"], r["scheduled_for"],
             r["started_at"], r["finished_at"]) for r in rows]


db_rows = functools.partial(conftest.db_rows, order="scheduled_for, id")
wait_rows = functools.partial(conftest.wait_rows, order="scheduled_for, id",
                              describe=summarize)


def count(rows, status):
    return sum(1 for r in rows if r["status"] == status)


def intervals(rows):
    """[start, end) of every row that started (end = inf while running)."""
    out = []
    for r in rows:
        if r["started_at"] > 0:
            end = r["finished_at"] if r["finished_at"] > 0 else INF
            out.append((r["started_at"], end, r["id"]))
    return sorted(out)


def overlapping(rows):
    """Pairs of runs whose intervals intersect."""
    iv = intervals(rows)
    pairs = []
    for i, (s1, e1, a) in enumerate(iv):
        for s2, e2, b in iv[i + 1:]:
            if s2 < e1 and s1 < e2:
                pairs.append((a, b))
    return pairs


def sleeper(overlap, **kw):
    return job("slow", every="1s", command="sleep 2.5", overlap=overlap,
               max_retries=0, **kw)


# --- overlap ----------------------------------------------------------------

def test_overlap_skip_records_the_fire_skipped(daemon):
    db = daemon.dir / "hg.db"
    daemon.start(sqlite_config(daemon, db, workers=3,
                               jobs=[sleeper("skip")]))
    rows = wait_rows(db, lambda rs: count(rs, "skipped") >= 2
                     and count(rs, "succeeded") >= 1,
                     what="two skipped fires and a finished run")
    skipped = [r for r in rows if r["status"] == "skipped"]
    ran = [r for r in rows if r["started_at"] > 0]
    assert not overlapping(rows), summarize(rows)
    for r in skipped:
        assert r["started_at"] == 0 and r["worker_pid"] == 0, r
        assert "overlap = skip" in (r["error"] or ""), r
        assert r["triggered_by"] == "schedule", r
        # it fell while a run was going
        assert any(s <= r["scheduled_for"] < e
                   for s, e, _ in intervals(ran)), summarize(rows)
    fins = {e["exec"]: e for e in daemon.events("finish", job="slow")
            if e["status"] == "skipped"}
    assert {r["id"] for r in skipped} <= set(fins), (fins, summarize(rows))
    assert not daemon.events("start", exec=skipped[0]["id"])


def test_overlap_queue_runs_fires_one_after_another(daemon):
    db = daemon.dir / "hg.db"
    daemon.start(sqlite_config(daemon, db, workers=3,
                               jobs=[sleeper("queue")]))
    rows = wait_rows(db, lambda rs: count(rs, "succeeded") >= 2,
                     what="two runs finished", timeout=15)
    assert count(rows, "skipped") == 0, summarize(rows)
    assert not overlapping(rows), summarize(rows)
    ran = sorted((r for r in rows if r["started_at"] > 0),
                 key=lambda r: r["started_at"])
    # in fire order, each one once its predecessor finished
    assert [r["scheduled_for"] for r in ran] \
        == sorted(r["scheduled_for"] for r in ran), summarize(rows)
    for prev, nxt in zip(ran, ran[1:]):
        assert prev["finished_at"] > 0, summarize(rows)
        assert nxt["started_at"] >= prev["finished_at"], summarize(rows)
    # the second run waited: it fired while the first ran
    assert ran[1]["scheduled_for"] < ran[0]["finished_at"], summarize(rows)
    # fires waiting their turn are in the store as queued
    assert count(rows, "queued") >= 1, summarize(rows)
    assert not [e for e in daemon.events("finish", job="slow")
                if e["status"] == "skipped"]


def test_overlap_replace_kills_the_running_one(daemon):
    db = daemon.dir / "hg.db"
    daemon.start(sqlite_config(daemon, db, workers=3,
                               jobs=[sleeper("replace")]))
    rows = wait_rows(db, lambda rs: count(rs, "killed") >= 2,
                     what="two runs replaced")
    killed = [r for r in rows if r["status"] == "killed"]
    replaced = {e["exec"]: e for e in daemon.events("replace", job="slow")}
    starts = {e["exec"]: e for e in daemon.events("start", job="slow")}
    for r in killed:
        # killed by the next fire, about a second into its 2.5 s
        assert r["id"] in replaced, (r, replaced)
        assert r["finished_at"] - r["started_at"] < 2400, r
        successor = [x for x in rows
                     if x["scheduled_for"] > r["scheduled_for"]][0]
        assert successor["id"] in replaced[r["id"]]["message"]
        # and the new one runs
        assert successor["id"] in starts, summarize(rows)
        assert successor["started_at"] > 0, summarize(rows)
        assert successor["started_at"] >= r["started_at"]
    assert count(rows, "skipped") == 0, summarize(rows)
    assert count(rows, "succeeded") == 0, summarize(rows)


def test_overlap_allow_runs_them_at_once(daemon):
    db = daemon.dir / "hg.db"
    daemon.start(sqlite_config(daemon, db, workers=3,
                               jobs=[sleeper("allow")]))
    rows = wait_rows(db, lambda rs: overlapping(rs)
                     and count(rs, "succeeded") >= 1,
                     what="two runs at once")
    assert count(rows, "skipped") == 0 and count(rows, "killed") == 0, \
        summarize(rows)
    live = wait_until(lambda: len(daemon.find_commands(["sleep", "2.5"]))
                      >= 2 and daemon.find_commands(["sleep", "2.5"]),
                      what="two sleep commands alive at once")
    assert len(live) >= 2


# --- the ready queue ----------------------------------------------------------

def test_priority_orders_the_ready_queue(daemon):
    db = daemon.dir / "hg.db"
    t = at_ahead(2)
    jobs = [job("blocker", at=rfc3339(t), command="sleep 2")]
    # defined low first, so definition order would be wrong
    for name in ("low", "critical", "normal"):
        jobs.append(job("p-" + name, at=rfc3339(t + 1), priority=name,
                        command="true"))
    daemon.start(sqlite_config(daemon, db, workers=1, jobs=jobs))
    starts = daemon.wait_event("start", count=4, timeout=15)
    order = [s["job"] for s in starts]
    assert order == ["blocker", "p-critical", "p-normal", "p-low"], order
    rows = wait_rows(db, lambda rs: len(rs) == 4
                     and all(r["status"] == "succeeded" for r in rs),
                     what="four succeeded")
    prio = {r["job_id"]: r["priority"] for r in rows}
    assert prio["p-critical"] > prio["p-normal"] > prio["p-low"], prio
    by_start = [r["job_id"] for r in sorted(rows,
                                            key=lambda r: r["started_at"])]
    assert by_start[1:] == ["p-critical", "p-normal", "p-low"], by_start


def test_jitter_delays_starts_within_its_bound(daemon):
    daemon.start(workers=2, jobs=[job("jittery", every="1s", command="true",
                                      jitter="800ms")])
    starts = daemon.wait_event("start", count=6, job="jittery", timeout=15)
    lags = [s["lag_ms"] for s in starts]
    print("lags (ms):", lags)
    assert all(0 <= l <= 800 + 250 for l in lags), lags
    assert max(lags) > 50, lags
    # not one fixed delay either
    assert len(set(lags)) > 1, lags


def test_starting_deadline_records_a_late_run_missed(daemon):
    db = daemon.dir / "hg.db"
    t = at_ahead(2)
    daemon.start(sqlite_config(daemon, db, workers=1, jobs=[
        job("blocker", at=rfc3339(t), command="sleep 3"),
        job("tight", at=rfc3339(t + 1), starting_deadline="500ms",
            command="true"),
        job("loose", at=rfc3339(t + 1), starting_deadline="30s",
            command="true"),
    ]))
    rows = wait_rows(db, lambda rs: len(rs) == 3
                     and all(r["status"] in FINAL for r in rs),
                     what="three final rows")
    got = {r["job_id"]: r for r in rows}
    tight = got["tight"]
    assert tight["status"] == "missed", summarize(rows)
    assert tight["started_at"] == 0 and tight["worker_pid"] == 0, tight
    assert "starting_deadline" in (tight["error"] or ""), tight
    assert got["loose"]["status"] == "succeeded", summarize(rows)
    assert got["blocker"]["status"] == "succeeded", summarize(rows)
    fin = daemon.events("finish", job="tight")
    assert [f["status"] for f in fin] == ["missed"], fin
    assert not daemon.events("start", job="tight")


def test_fires_queued_behind_a_run_are_skipped_when_the_job_is_removed(
        daemon):
    # overlap = queue keeps fires waiting behind the running one. A reload
    # that removes the job closes each waiting fire as skipped, saying
    # why, rather than running it for a job that no longer exists or
    # leaving it queued; the running one finishes.
    db = daemon.dir / "hg.db"
    tick = job("tick", every="1h", command="true")
    daemon.start(sqlite_config(daemon, db, workers=2, jobs=[
        tick, job("slow", every="300ms", command="sleep 2", overlap="queue",
                  max_retries=0)]))
    rows = wait_rows(db, lambda rs: count(rs, "queued") >= 2
                     and count(rs, "running") == 1,
                     where="job_id = 'slow'", what="fires waiting their turn")
    running = [r["id"] for r in rows if r["status"] == "running"]
    daemon.rewrite(sqlite_config(daemon, db, workers=2, jobs=[tick]))
    daemon.signal(signal.SIGHUP)
    daemon.wait_event("job_removed", job="slow")
    rows = wait_rows(db, lambda rs: rs and count(rs, "queued") == 0
                     and count(rs, "running") == 0,
                     where="job_id = 'slow'", what="the removed job's rows "
                     "closed")
    skipped = [r for r in rows if r["status"] == "skipped"]
    assert len(skipped) >= 2, summarize(rows)
    for r in skipped:
        assert r["error"] == "job removed from the configuration", r
        assert r["started_at"] == 0, r
    assert [r["status"] for r in rows if r["id"] in running] \
        == ["succeeded"], summarize(rows)
    assert {r["status"] for r in rows} == {"succeeded", "skipped"}, \
        summarize(rows)
