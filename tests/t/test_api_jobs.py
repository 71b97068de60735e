"""Jobs defined through the API live in the store beside scheduler.conf:
the daemon's start reads them with the file (they run), a reload keeps
them, and one the configuration refuses stops the start with the
reader's words instead of being dropped silently. (The admin API that
creates them comes later; here they are written into the store as it
writes them.)"""

import json
import signal
import sqlite3

import pytest

from conftest import job, parse_time, sqlite_config, wait_rows, wait_until
from test_store_pg import db, server  # noqa: F401 (PostgreSQL's fixtures)


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


# --- the jobs list's columns (GET /api/v1/jobs) ----------------------------

@pytest.mark.parametrize("driver", ["memory", "sqlite", "postgres"])
def test_the_list_carries_each_jobs_statistics_and_next_fires(daemon,
                                                              driver,
                                                              request):
    """Each driver's one read of every job's statistics (memory's walk,
    sqlite's and postgres' joined SELECT) gives the list its columns."""
    from test_api import Api, api_section, free_port
    port = free_port()
    jobs = [job("ok", command="true", every="1h"),
            job("bad", command="exit 3", every="1h"),
            job("idle", command="true", schedule="30 2 * * *",
                timezone="Asia/Kolkata")]
    if driver == "postgres":
        from test_store_pg import pg_config
        config = pg_config(daemon, request.getfixturevalue("db")[2],
                           jobs=jobs, extra=api_section(port))
    elif driver == "memory":
        config = daemon.config(jobs=jobs, extra=api_section(port))
    else:
        config = sqlite_config(daemon, jobs=jobs, extra=api_section(port))
    daemon.start(config)
    api = Api(port)
    for name in ("ok", "ok", "bad"):
        status, body = api.json("POST", "/api/v1/jobs/%s/trigger" % name)
        assert status == 202, body
        daemon.wait_event("finish", exec=body["execution"])

    def rows():
        status, body = api.json("GET", "/api/v1/jobs", token="reader")
        assert status == 200, body
        found = {j["id"]: j for j in body["jobs"]}
        return found if found["ok"]["runs"] == 2 and found["bad"][
            "runs"] == 1 else None
    found = wait_until(rows, what="both jobs' runs counted in the list")
    ok, bad, idle = found["ok"], found["bad"], found["idle"]
    assert ok["last_status"] == "succeeded" and ok["success_rate"] == 1, ok
    assert ok["successes"] == 2 and ok["failures"] == 0, ok
    assert isinstance(ok["p95_duration_ms"], int), ok
    assert ok["last_run"] is not None, ok
    assert bad["last_status"] == "failed" and bad["success_rate"] == 0, bad
    assert bad["failures"] == 1 and bad["p95_duration_ms"] >= 0, bad
    # never ran: nothing made up
    assert idle["runs"] == 0 and idle["last_status"] is None, idle
    assert idle["success_rate"] is None and idle["p95_duration_ms"] is None
    # the next five fire times, with the job's zone's offset, a day apart
    fires = idle["next_fires"]
    assert len(fires) == 5, idle
    assert all(f.endswith("T02:30:00+05:30") for f in fires), fires
    assert [parse_time(b) - parse_time(a) for a, b in zip(fires, fires[1:])
            ] == [86400] * 4, fires
    assert parse_time(fires[0]) == parse_time(idle["next_fire"]), idle
    assert len(ok["next_fires"]) == 5, ok


# --- a window on a job's executions (since, until) ---------------------------

BASE_MS = 1767225600000             # 2026-01-01T00:00:00Z


def store_executions(db, job_id, n):
    """N finished executions of JOB_ID, one a second from BASE_MS: the
    I-th is "x%03d" % I, scheduled at BASE_MS + I s."""
    con = sqlite3.connect(str(db), timeout=10)
    try:
        con.executemany(
            "INSERT INTO executions (id, run_id, job_id, status,"
            " scheduled_for, started_at, finished_at, duration_ms)"
            " VALUES (?, ?, ?, 'succeeded', ?, ?, ?, 10)",
            [("x%03d" % i, "x%03d" % i, job_id, BASE_MS + i * 1000,
              BASE_MS + i * 1000, BASE_MS + i * 1000 + 10)
             for i in range(n)])
        con.commit()
    finally:
        con.close()


def test_a_window_on_a_jobs_executions(daemon):
    from test_api import Api, api_section, free_port
    db = daemon.dir / "hg.db"
    create_store(daemon, db)
    store_executions(db, "file", 450)
    port = free_port()
    daemon.start(sqlite_config(daemon, db, jobs=[job(
        "file", command="true", every="1h")], extra=api_section(port)))
    api = Api(port)

    def window(query):
        status, body = api.json("GET", "/api/v1/jobs/file/executions?"
                                + query, token="reader")
        assert status == 200, (query, body)
        return [e["id"] for e in body["executions"]], body["total"]

    def ids(first, last):
        return ["x%03d" % i for i in range(last, first - 1, -1)]
    # ms and RFC 3339, across the store's pages of 200, UNTIL excluded
    assert window("page_size=500&since=%d&until=2026-01-01T00:06:40Z"
                  % (BASE_MS + 100000)) == (ids(100, 399), 300)
    # fractions of a second count
    assert window("since=2026-01-01T00:07:19.500Z") == (ids(440, 449), 10)
    assert window("since=2026-01-01T00:07:19.5%2B00:00") == (
        ids(440, 449), 10)
    # pages within the window; the total is the window's
    assert window("since=%d&page_size=100&page=3" % BASE_MS) == (
        ids(150, 249), 450)
    assert window("until=%d" % (BASE_MS + 5000)) == (ids(0, 4), 5)
    assert window("since=2027-01-01T00:00:00Z") == ([], 0)
    assert window("page_size=2") == (ids(448, 449), 450)
    for query in ("since=yesterday", "since=-5", "until=2026-13-01T00:00:00Z",
                  "since=", "until=12abc", "since=1e9"):
        status, body = api.json("GET", "/api/v1/jobs/file/executions?"
                                + query)
        assert status == 400, (query, body)
        name = query.split("=")[0]
        assert body["error"]["message"].startswith(name + ": "), body


def test_the_clients_jobs_list_says_each_last_status(daemon):
    from test_api import api_section, free_port
    from test_client import Client, table
    port = free_port()
    daemon.start(daemon.config(jobs=[
        job("ok", command="true", every="1h"),
        job("idle", command="true", every="1h")], extra=api_section(port)))
    client = Client("http://127.0.0.1:%d" % port)
    assert client.ok("trigger", "ok")
    daemon.wait_event("finish", job="ok")

    def rows():
        found = table(client.ok("jobs"))
        by_id = {r[0]: r for r in found[1:]}
        return by_id["ok"][5] == "succeeded" and (found[0], by_id)
    head, by_id = wait_until(rows, what="ok's last status in the list")
    assert head[:6] == ["ID", "TYPE", "STATE", "NEXT", "LEFT", "LAST"], head
    assert by_id["idle"][5] == "-", by_id
