"""Executions as the SQLite store records them: one final row per attempt
with its status, output, exit code or signal, trigger, worker, times and
usage; retries linked by run_id with their backoff; HG_FATAL and
HG_RETRY's delay (the echo test module); `hourglass -t` on a store path
that cannot be created; the system module's history_cleanup."""

import functools
import json
import time

import pytest

import conftest
from conftest import (MODULES_DIR, at_ahead, conf_value, db_rows, job,
                      rfc3339, run_hourglass, sanitized_build, sqlite_config)

FINAL = ("succeeded", "failed", "timed_out", "crashed", "killed", "skipped",
         "missed", "dead")


# --- helpers (this file's own) ---------------------------------------------







def summarize(rows):
    return [(r["job_id"], r["attempt"], r["status"], r["triggered_by"],
             r["exit_code"], r["signal"], r["error"]) for r in rows]


wait_rows = functools.partial(conftest.wait_rows, describe=summarize)


def by_job(rows):
    out = {}
    for r in rows:
        out.setdefault(r["job_id"], []).append(r)
    for v in out.values():
        v.sort(key=lambda r: r["attempt"])
    return out


def all_final(rows):
    return rows and all(r["status"] in FINAL for r in rows)


def check_times(r):
    assert r["started_at"] >= r["scheduled_for"] > 0, r
    assert r["finished_at"] >= r["started_at"], r
    assert r["duration_ms"] == r["finished_at"] - r["started_at"], r
    assert r["worker_pid"] > 0, r
    # Usage was recorded (-1 when it was not), and is a process's: any
    # worker holds more than 256 KiB resident, none here 16 GiB.
    assert 256 <= r["max_rss_kb"] <= 16 << 20, r
    assert r["cpu_user_ms"] >= 0 and r["cpu_sys_ms"] >= 0, r


BACKOFF_FAST = {"initial": "100ms", "max": "1s", "multiplier": 2.0,
                "jitter": 0.0}


# --- tests ------------------------------------------------------------------

def test_each_attempt_has_one_final_row_with_its_outcome(daemon):
    db = daemon.dir / "hg.db"
    t = at_ahead(2)
    at = rfc3339(t)
    jobs = [
        job("ok", at=at, max_retries=0,
            command="echo to-stdout; echo to-stderr >&2"),
        job("exit3", at=at, max_retries=0, command="exit 3"),
        job("exit3r", at=at, max_retries=1, backoff=BACKOFF_FAST,
            command="exit 3"),
        job("slow", at=at, max_retries=1, backoff=BACKOFF_FAST,
            timeout="1s", command="sleep 30"),
        job("boom", type="crash", at=at, max_retries=1,
            backoff=BACKOFF_FAST),
        job("big", at=at, max_retries=0, output_limit="100",
            command="seq 1 1000"),
    ]
    expect = {"ok": 1, "exit3": 1, "exit3r": 2, "slow": 2, "boom": 2,
              "big": 1}
    daemon.start(sqlite_config(daemon, db, jobs=jobs, workers=4,
                               test_modules=["crash"]))
    rows = wait_rows(
        db, lambda rs: all_final(rs) and all(
            len(by_job(rs).get(j, [])) == n for j, n in expect.items()),
        timeout=20, what="every attempt final in the store")
    jobs_rows = by_job(rows)
    starts = {e["exec"]: e for e in daemon.events("start")}

    # every started execution has exactly one row, and every row started
    ids = [r["id"] for r in rows]
    assert len(ids) == len(set(ids))
    assert set(ids) == set(starts), (sorted(ids), sorted(starts))
    for r in rows:
        assert r["scheduled_for"] == t * 1000, r
        assert r["triggered_by"] == ("schedule" if r["attempt"] == 1
                                     else "retry"), r
        assert r["run_id"] == jobs_rows[r["job_id"]][0]["id"], r
        assert r["worker_pid"] == starts[r["id"]]["worker"], r
        check_times(r)

    ok = jobs_rows["ok"][0]
    assert ok["status"] == "succeeded" and ok["exit_code"] == 0, ok
    assert ok["signal"] == 0 and ok["error"] is None, ok
    assert ok["output"] == b"to-stdout\nto-stderr\n", ok["output"]
    assert ok["output_truncated"] == 0

    e3 = jobs_rows["exit3"][0]
    assert (e3["status"], e3["exit_code"], e3["attempt"]) == ("dead", 3, 1)

    a1, a2 = jobs_rows["exit3r"]
    assert (a1["status"], a1["exit_code"]) == ("failed", 3), a1
    assert (a2["status"], a2["exit_code"]) == ("dead", 3), a2

    # the timed-out attempt ran about its timeout, not the 30 s sleep
    s1, s2 = jobs_rows["slow"]
    assert s1["status"] == "timed_out", s1
    assert s2["status"] == "dead" and "timed out" in s2["error"], s2
    for r in (s1, s2):
        assert 900 <= r["duration_ms"] < 10000, r
        assert r["exit_code"] == -1, r
        assert "timed out" in r["error"], r

    c1, c2 = jobs_rows["boom"]
    assert c1["status"] == "crashed", c1
    assert c2["status"] == "dead", c2
    for r in (c1, c2):
        assert str(r["worker_pid"]) in r["error"], r
        if sanitized_build():
            assert r["signal"] == 11 or "exited" in r["error"], r
        else:
            assert r["signal"] == 11 and r["exit_code"] == -1, r
            assert "SIGSEGV" in r["error"], r

    big = jobs_rows["big"][0]
    assert big["status"] == "succeeded", big
    assert big["output_truncated"] == 1, big
    assert len(big["output"]) == 100, big["output"]
    assert big["output"].startswith(b"1\n2\n3\n")


def test_retries_share_a_run_id_and_follow_the_backoff(daemon):
    db = daemon.dir / "hg.db"
    daemon.start(sqlite_config(daemon, db, workers=2, jobs=[job(
        "flaky", at=rfc3339(at_ahead(2)), max_retries=2, command="exit 1",
        backoff={"initial": "200ms", "max": "1s", "multiplier": 2.0,
                 "jitter": 0.0})]))
    daemon.wait_event("dead", job="flaky", timeout=15)
    rows = wait_rows(db, lambda rs: len(rs) == 3 and all_final(rs),
                     what="three final attempts")
    assert [r["attempt"] for r in rows] == [1, 2, 3], summarize(rows)
    assert [r["status"] for r in rows] == ["failed", "failed", "dead"]
    assert [r["triggered_by"] for r in rows] == ["schedule", "retry",
                                                 "retry"]
    assert {r["run_id"] for r in rows} == {rows[0]["id"]}
    assert len({r["id"] for r in rows}) == 3
    assert all(r["exit_code"] == 1 for r in rows)
    # retries keep the fire time they retry
    assert len({r["scheduled_for"] for r in rows}) == 1
    d1 = rows[1]["started_at"] - rows[0]["started_at"]
    d2 = rows[2]["started_at"] - rows[1]["started_at"]
    print("delays between starts: %d ms, %d ms" % (d1, d2))
    assert 50 <= d1 <= 350, (d1, summarize(rows))
    assert 250 <= d2 <= 550, (d2, summarize(rows))


def test_fatal_result_is_dead_without_retries(daemon):
    db = daemon.dir / "hg.db"
    daemon.start(sqlite_config(daemon, db, test_modules=["echo"], jobs=[job(
        "fatal", type="echo", at=rfc3339(at_ahead(2)), max_retries=3,
        backoff=BACKOFF_FAST, message="bye", **{"exit": 3})]))
    dead = daemon.wait_event("dead", job="fatal")[0]
    assert "fatal" in dead["message"], dead
    rows = wait_rows(db, all_final, what="the fatal execution final")
    assert len(rows) == 1, summarize(rows)
    r = rows[0]
    assert (r["status"], r["attempt"]) == ("dead", 1), r
    assert r["output"] == b"bye", r
    assert "fail for good" in (r["error"] or ""), r
    check_times(r)
    # still one row a while later: no retry was scheduled
    time.sleep(0.8)
    assert not daemon.events("retry")
    assert len(db_rows(db)) == 1


def test_retry_after_sets_the_delay_of_the_next_attempt(daemon):
    db = daemon.dir / "hg.db"
    # the backoff (5 s) would be used without the module's retry_after
    daemon.start(sqlite_config(daemon, db, test_modules=["echo"], jobs=[job(
        "later", type="echo", at=rfc3339(at_ahead(2)), max_retries=1,
        backoff={"initial": "5s", "jitter": 0.0},
        retry_after=300, **{"exit": 2})]))
    daemon.wait_event("dead", job="later", timeout=15)
    rows = wait_rows(db, lambda rs: len(rs) == 2 and all_final(rs),
                     what="two final attempts")
    a1, a2 = rows
    assert (a1["attempt"], a1["status"]) == (1, "failed"), summarize(rows)
    assert (a2["attempt"], a2["status"]) == (2, "dead"), summarize(rows)
    assert a2["run_id"] == a1["id"] and a2["triggered_by"] == "retry"
    retry = daemon.events("retry", job="later")[0]
    assert retry["delay_ms"] == 300, retry
    gap = a2["started_at"] - a1["finished_at"]
    print("retry started %d ms after the first attempt finished" % gap)
    assert 150 <= gap <= 450, (gap, summarize(rows))


@pytest.mark.parametrize("where", ["under_a_file", "under_proc"])
def test_t_rejects_a_store_path_that_cannot_be_created(tmp_path, where):
    if where == "under_a_file":
        plain = tmp_path / "file"
        plain.write_text("not a directory\n")
        path = str(plain / "sub" / "hg.db")
    else:
        path = "/proc/hg-e2e-no-such-dir/hg.db"
    conf = tmp_path / "scheduler.conf"
    conf.write_text("\n".join([
        'pid = "hourglass.pid";',
        'log = { file = "hourglass.log"; };',
        "modules = { path = %s; load = [ \"shell\" ]; };"
        % conf_value(str(MODULES_DIR)),
        "store = { driver = \"sqlite\"; path = %s; };" % conf_value(path),
        "jobs = ();", ""]))
    r = run_hourglass("-p", tmp_path, "-c", conf, "-t")
    assert r.returncode == 1, (r.returncode, r.stdout, r.stderr)
    lines = [l for l in r.stderr.splitlines() if "store.path" in l]
    assert lines, r.stderr
    assert any(path in l for l in lines), r.stderr
    assert "test failed" in r.stderr, r.stderr
    # -t creates nothing
    assert not (tmp_path / "hg.db").exists()


def test_history_cleanup_deletes_rows_past_the_retention(daemon):
    db = daemon.dir / "hg.db"
    t = at_ahead(2)
    jobs = [job("a%d" % i, at=rfc3339(t), command="echo %d" % i)
            for i in range(3)]
    jobs.append(job("lost", at=rfc3339(t), max_retries=0, command="exit 1"))
    jobs.append(job("cleanup", type="system", task="history_cleanup",
                    at=rfc3339(t + 3)))
    daemon.start(sqlite_config(daemon, db, load=("shell", "system"),
                               store_extra={"retention": "1s"}, jobs=jobs))
    before = wait_rows(db, lambda rs: len(rs) == 4 and all_final(rs),
                       what="four final rows")
    assert sorted(r["status"] for r in before) == ["dead", "succeeded",
                                                   "succeeded", "succeeded"]
    fin = daemon.wait_event("finish", job="cleanup", timeout=15)[0]
    assert fin["status"] == "succeeded", fin
    after = wait_rows(db, lambda rs: any(r["job_id"] == "cleanup"
                                         and r["status"] in FINAL
                                         for r in rs),
                      what="the cleanup's final row")
    print("rows before: %d, after: %d" % (len(before), len(after)))
    left = {r["job_id"]: r for r in after}
    # the succeeded ones went; the dead one stays (dead-letter list)
    assert set(left) == {"lost", "cleanup"}, summarize(after)
    report = json.loads(left["cleanup"]["output"].decode())
    assert report["deleted"] == 3, report
    assert report.get("task") == "history_cleanup", report
