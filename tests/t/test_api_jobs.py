"""Jobs defined through the API live in the store beside scheduler.conf:
the daemon's start reads them with the file (they run), a reload keeps
them, and one the configuration refuses stops the start with the
reader's words instead of being dropped silently. (The admin API that
creates them comes later; here they are written into the store as it
writes them.)"""

import json
import signal
import sqlite3

from conftest import job, sqlite_config, wait_rows


def store_api_job(db, definition, created_by="api:ops"):
    con = sqlite3.connect(str(db), timeout=10)
    try:
        con.execute("INSERT INTO jobs (id, definition, created_by,"
                    " created_at, updated_at) VALUES (?, ?, ?, 1, 1)",
                    (definition["id"], json.dumps(definition), created_by))
        con.commit()
    finally:
        con.close()


def messages(daemon):
    return "\n".join(e.get("message", "") for e in daemon.events())


def create_store(daemon, db):
    """A store of the current schema: one start and stop of the daemon."""
    daemon.start(sqlite_config(daemon, db, jobs=[job(
        "file", command="true", every="1h")]))
    daemon.stop()


def test_a_stored_api_job_runs_and_survives_a_reload(daemon):
    db = daemon.dir / "hg.db"
    create_store(daemon, db)
    store_api_job(db, {"id": "api-tick", "type": "shell",
                       "command": "echo from-the-store", "every": "1s"})
    daemon.start()
    rows = wait_rows(db, lambda rows: any(
        r["job_id"] == "api-tick" and r["status"] == "succeeded"
        for r in rows))
    assert b"from-the-store" in [r for r in rows
                                 if r["job_id"] == "api-tick"][0]["output"]
    daemon.signal(signal.SIGHUP)
    daemon.wait_event("reload", result="ok")
    before = len(wait_rows(db, lambda rows: rows,
                           where="job_id = 'api-tick'"))
    wait_rows(db, lambda rows: len(rows) >= before + 2,
              where="job_id = 'api-tick'", what="api-tick running on after "
              "the reload")


def test_a_stored_api_job_the_file_refuses_stops_the_start(daemon):
    db = daemon.dir / "hg.db"
    create_store(daemon, db)
    # the file takes its id
    store_api_job(db, {"id": "file", "type": "shell", "command": "true",
                       "every": "1h"})
    daemon.start(wait_ready=False)
    assert daemon.wait_exit() == 1
    out = messages(daemon)
    assert 'api: job "file": also defined in' in out, out
    assert "jobs defined through the API" in out, out


def test_a_stored_api_job_with_a_bad_schedule_is_named(daemon):
    db = daemon.dir / "hg.db"
    create_store(daemon, db)
    store_api_job(db, {"id": "bad", "type": "shell", "command": "true",
                       "schedule": "61 * * * *"})
    daemon.start(wait_ready=False)
    assert daemon.wait_exit() == 1
    out = messages(daemon)
    assert 'api: job "bad": schedule: invalid schedule "61 * * * *"' in out, \
        out
