"""The store stays sound under its own maintenance and under an operator's
hand: the system module's store tasks (history_cleanup, store_vacuum,
health_check) against a busy master, then PRAGMA integrity_check and a
restart; the store file deleted or replaced under the running daemon."""

import json
import os
import signal
import sqlite3

import pytest

from conftest import (at_ahead, db_rows, job, rfc3339, sqlite_config,
                      wait_rows)

TASKS = ("history_cleanup", "store_vacuum", "health_check")


def integrity(db):
    con = sqlite3.connect(str(db), timeout=10)
    try:
        return con.execute("PRAGMA integrity_check").fetchall()
    finally:
        con.close()


def stop(daemon):
    daemon.signal(signal.SIGTERM)
    assert daemon.wait_exit(timeout=20) == 0, daemon.master_output()


def messages(daemon, needle):
    return [e for e in daemon.events() if needle in e.get("message", "")]


@pytest.mark.parametrize("task", TASKS)
def test_store_task_against_a_busy_master_keeps_the_file_sound(daemon, task):
    db = daemon.dir / "hg.db"
    jobs = [job("noop", type="system", task="noop", every="5ms"),
            job("maint", type="system", task=task, every="250ms")]
    daemon.start(sqlite_config(daemon, db, load=("system",), workers=2,
                               store_extra={"retention": "1s"}, jobs=jobs))
    # a few seconds of both: the task's every run while noop runs 200/s
    daemon.wait_event("finish", count=10, job="maint", status="succeeded",
                      timeout=30)
    stop(daemon)
    assert integrity(db) == [("ok",)]

    rows = db_rows(db, "job_id = 'maint' AND status = 'succeeded'")
    assert rows, "no succeeded %s row" % task
    report = json.loads(rows[-1]["output"].decode())
    store = report["store"]
    assert store["driver"] == "sqlite" and store["path"] == str(db), report
    for key in ("size_bytes", "wal_bytes", "queue_depth", "write_errors",
                "failing"):
        assert key in store, report
    if task == "health_check":
        # the worker's part, then the store's
        assert report["status"] == "ok", report
        assert report["pid"] == rows[-1]["worker_pid"], report
        assert report["uptime_seconds"] >= 0, report
    else:
        assert report["task"] == task, report
    if task == "history_cleanup":
        assert report["deleted"] >= 0 and report["batch"] == 1000, report

    # it starts again on the same file, and records there
    before = len(daemon.events("finish", job="noop"))
    daemon.start()
    daemon.wait_for(lambda evs: len([e for e in evs
                                     if e.get("event") == "finish"
                                     and e.get("job") == "noop"])
                    > before + 5, what="noop runs after the restart")
    stop(daemon)
    assert integrity(db) == [("ok",)]


@pytest.mark.parametrize("how", ("deleted", "replaced"))
def test_store_file_deleted_or_replaced_under_the_daemon(daemon, how):
    db = daemon.dir / "hg.db"
    jobs = [job("tick", type="system", task="noop", every="50ms")]
    daemon.start(sqlite_config(daemon, db, load=("system",), jobs=jobs))
    wait_rows(db, lambda rs: len(rs) >= 5, what="five rows")
    kept = set()
    if how == "replaced":
        # a backup restored by moving it over the store's path
        backup = daemon.dir / "backup.db"
        src = sqlite3.connect(str(db))
        dst = sqlite3.connect(str(backup))
        src.backup(dst)
        src.close()
        dst.close()
        kept = {r["id"] for r in db_rows(backup)}
        os.replace(backup, db)
    else:
        os.unlink(db)
    line = daemon.wait_for(lambda evs: messages(daemon, "was deleted or "
                                                "replaced while hourglass "
                                                "runs"),
                           what="the line that says the file went")[0]
    assert line["level"] == "error", line
    assert str(db) in line["message"], line
    assert "restart it to go on recording" in line["message"], line
    assert len(messages(daemon, "was deleted or replaced")) == 1

    # scheduling goes on; what finishes now is kept in memory
    since = len(daemon.events("finish", job="tick"))
    daemon.wait_for(lambda evs: len([e for e in evs
                                     if e.get("event") == "finish"
                                     and e.get("job") == "tick"])
                    >= since + 5, what="five more runs")
    stop(daemon)
    # each as its finish line says (the one running at the stop is killed)
    after = {e["exec"]: e["status"]
             for e in daemon.events("finish", job="tick")[since:]}
    assert messages(daemon, "written to the file now at that path"), \
        daemon.lines()[-10:]
    assert integrity(db) == [("ok",)]
    rows = {r["id"]: r for r in db_rows(db)}
    missing = set(after) - set(rows)
    assert not missing, "runs after the file went, not in the new file: %s" \
        % sorted(missing)
    assert {i: rows[i]["status"] for i in after} == after
    assert list(after.values()).count("succeeded") >= 5
    assert kept <= set(rows)
    if how == "deleted":
        # the new file is hourglass's own: private, as it holds job output
        assert (os.stat(db).st_mode & 0o777) == 0o600


def test_answer_to_a_killed_worker_is_dropped(daemon):
    """A store task outlives its execution (timeout: the worker is
    killed); its answer goes to no one, and the next executions run."""
    db = daemon.dir / "hg.db"
    jobs = [job("vac", type="system", task="store_vacuum",
                at=rfc3339(at_ahead(2)), timeout="300ms", max_retries=0),
            job("tick", type="system", task="noop", every="100ms")]
    daemon.start(sqlite_config(daemon, db, load=("system",), jobs=jobs))
    # another process holds the write lock: the vacuum waits for it (the
    # store's busy timeout, 1 s) longer than the job may run
    other = sqlite3.connect(str(db), timeout=10, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    try:
        fin = daemon.wait_event("finish", job="vac", timeout=15)[0]
        assert fin["status"] == "timed_out", fin
        daemon.wait_for(lambda evs: messages(daemon, "answer dropped"),
                        what="the dropped answer")
    finally:
        other.execute("ROLLBACK")
        other.close()
    since = len(daemon.events("finish", job="tick", status="succeeded"))
    daemon.wait_for(lambda evs: len(daemon.events("finish", job="tick",
                                                  status="succeeded"))
                    >= since + 5, what="five more runs")
    stop(daemon)
    assert integrity(db) == [("ok",)]


def test_cleanup_that_cannot_lock_the_file_fails_with_the_reason(daemon):
    # Another process holds the file's write lock past the store's busy
    # timeout: the history_cleanup execution fails with the path, how far
    # it got and SQLite's reason (it does not hang, nor succeed having
    # done nothing); once the lock is gone its record reaches the file,
    # dead (it had no retry left).
    db = daemon.dir / "hg.db"
    daemon.start(sqlite_config(daemon, db, load=("system",), workers=1,
                               store_extra={"retention": "1s"}, jobs=[
        job("maint", type="system", task="history_cleanup",
            at=rfc3339(at_ahead(1.5)), max_retries=0)]))
    con = sqlite3.connect(str(db), isolation_level=None, timeout=10)
    try:
        con.execute("BEGIN EXCLUSIVE")
        fin = daemon.wait_event("finish", job="maint", timeout=20)[0]
    finally:
        con.close()             # rolls the lock back
    want = ("store: %s: cleanup stopped after 0 executions: database is "
            "locked" % db)
    assert fin["status"] == "failed", fin
    assert fin["error"] == want, fin
    rows = wait_rows(db, lambda rows: rows and rows[0]["status"] == "dead",
                     where="job_id = 'maint'",
                     what="the failed cleanup's record")
    assert rows[0]["error"] == want, rows
