"""
The system module's history_cleanup when store.retention is 0: history
is kept forever, so the task deletes nothing and says why (the report is
the store's health, with no cut-off time), and the oldest runs remain.
"""

import json
import signal

from conftest import db_rows, job, sqlite_config


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

