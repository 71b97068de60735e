"""
The system module's history_cleanup when store.retention is 0: history
is kept forever, so the task deletes nothing and says why (the report is
the store's health, with no cut-off time), and the oldest runs remain.
A module that asks the master for a store task that does not exist is
refused with the name, and its worker goes on serving.
"""

import json
import signal

from conftest import at_ahead, db_rows, etime, job, rfc3339, sqlite_config


def stop(daemon):
    daemon.signal(signal.SIGTERM)
    assert daemon.wait_exit(timeout=20) == 0, daemon.master_output()


def test_retention_zero_keeps_history_forever(daemon):
    db = daemon.dir / "hg.db"
    jobs = [job("noop", type="system", task="noop", every="50ms"),
            job("maint", type="system", task="history_cleanup",
                every="500ms")]
    daemon.start(sqlite_config(daemon, db, load=("system",), workers=2,
                               store_extra={"retention": "0"}, jobs=jobs))
    daemon.wait_event("finish", count=3, job="maint", status="succeeded",
                      timeout=30)
    stop(daemon)

    rows = db_rows(db, "job_id = 'maint' AND status = 'succeeded'")
    assert len(rows) >= 3, rows
    for row in rows:
        report = json.loads(row["output"].decode())
        assert report["task"] == "history_cleanup", report
        assert report["deleted"] == 0, report
        assert report["note"] == ("store.retention is 0: history is kept "
                                  "forever"), report
        assert "older_than_ms" not in report, report
        assert report["store"]["driver"] == "sqlite", report
    # nothing went: the first noop runs are still there
    noop = db_rows(db, "job_id = 'noop'")
    first_maint = min(r["started_at"] for r in rows)
    assert any(r["started_at"] < first_maint for r in noop), noop



def test_unknown_store_task_is_refused(daemon):
    when = rfc3339(at_ahead(1.5))
    daemon.start(workers=1, load=("system",), test_modules=["storetask"],
                 jobs=[job("bogus", type="storetask", task="bogus", at=when,
                           max_retries=0),
                       job("health", type="storetask", task="health_check",
                           every="1s")])
    fin = daemon.wait_event("finish", job="bogus", timeout=20)[0]
    assert fin["status"] == "failed", fin
    assert fin["error"] == '"bogus" is not a store task', fin
    # the same worker serves the next one
    ok = daemon.wait_event("finish", job="health", status="succeeded",
                           timeout=20, after=etime(fin))[0]
    assert ok["worker"] == fin["worker"], (ok, fin)
