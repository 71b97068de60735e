"""The daemon on the postgres store, against a real PostgreSQL that this
module starts (tests/t/pg.py: initdb into /tmp, a Unix socket, no TCP):
jobs run and their executions are in PostgreSQL with their statuses; a
job made through the admin API survives a restart; kill -9 of the master
loses nothing it acknowledged; and PostgreSQL stopped for a few seconds
under the running daemon: one line says so, scheduling goes on, the
records of the runs made meanwhile arrive afterwards, one line says
that too."""

import os
import signal
import time

import pytest

import pg
from conftest import (REPO, MEMORY_STORE, conf_value, etime, job,
                      run_hourglass, wait_until)
from test_api import Api, api_section, free_port

FINAL = ("succeeded", "failed", "timed_out", "crashed", "killed", "skipped",
         "missed", "dead")


def built_with_postgres():
    config = REPO / "objs" / "hg_auto_config.h"
    return "#define HG_HAVE_POSTGRES 1" in config.read_text()


@pytest.fixture(scope="module")
def server():
    pg.require(pytest)
    if not built_with_postgres():
        why = "hourglass was built without libpq (apt-get install libpq-dev)"
        if os.environ.get("CI"):
            pytest.fail(why)
        pytest.skip(why)
    s = pg.PgServer().init().start()
    pg.wait_ready(s)
    yield s
    s.destroy()


@pytest.fixture
def db(server):
    """A fresh database of the module's server: (server, name, url)."""
    name = server.database()
    return server, name, server.url(name)


def pg_config(d, url, **kw):
    """d.config(**kw) with the memory store replaced by postgres at URL."""
    text = d.config(**kw)
    assert MEMORY_STORE in text
    return text.replace(MEMORY_STORE, "store = %s;" % conf_value(
        {"driver": "postgres", "url": url}))


def rows(server, name, sql):
    return server.psql(sql, dbname=name)


def statuses(server, name):
    """{execution id: status} of every execution in the database."""
    return {r[0]: r[1] for r in rows(server, name,
                                     "SELECT id, status FROM executions")}


def messages(daemon, needle):
    return [e for e in daemon.events() if needle in e.get("message", "")]


def api_up(api):
    """Waits for the API's socket: the master opens it after it forks its
    workers, which is when Daemon.start returns."""
    def answers():
        try:
            return api.call("GET", "/healthz", token=None)[0] in (200, 503)
        except OSError:
            return False
    wait_until(answers, what="the API listening")


def test_jobs_recorded_and_an_api_job_survives_a_restart(daemon, db):
    server, name, url = db
    port = free_port()
    daemon.start(pg_config(daemon, url, jobs=[
        job("ok", command="true", every="200ms"),
        job("bad", command="exit 3", every="200ms", max_retries=0)],
        extra=api_section(port)))
    api = Api(port)
    api_up(api)
    status, body = api.json("GET", "/healthz", token=None)
    assert status == 200 and body["status"] == "ok", body

    # the jobs' finish lines, and the same executions in PostgreSQL
    daemon.wait_event("finish", count=3, job="ok")
    daemon.wait_event("finish", count=3, job="bad")
    finished = {e["exec"]: e["status"] for e in daemon.events("finish")}
    assert set(finished.values()) == {"succeeded", "failed"}, finished
    # a failure without retries left is dead-lettered: failed, then dead
    want = {i: "dead" if st == "failed" else st
            for i, st in finished.items()}
    wait_until(lambda: all(statuses(server, name).get(i) == st
                           for i, st in want.items()),
               what=lambda: "the finished executions in PostgreSQL (%s)"
               % [(i, st, statuses(server, name).get(i))
                  for i, st in want.items()][:4])
    stats = {r[0]: (int(r[1]), int(r[2]), int(r[3])) for r in rows(
        server, name, "SELECT job_id, runs, successes, failures"
        " FROM job_stats")}
    assert stats["ok"][1] >= 3 and stats["ok"][2] == 0, stats
    assert stats["bad"][2] >= 3 and stats["bad"][1] == 0, stats

    # a job made through the API, run once
    status, body = api.json("POST", "/api/v1/jobs", {
        "id": "made", "type": "shell", "command": "echo made-by-api",
        "schedule": "0 3 * * *"}, token="writer")
    assert status == 201, body
    status, body = api.json("POST", "/api/v1/jobs/made/trigger",
                            token="runner")
    assert status == 202, body
    exec_id = body["execution"]
    assert daemon.wait_event("finish", exec=exec_id)[0]["status"] \
        == "succeeded"
    assert rows(server, name, "SELECT created_by FROM jobs WHERE"
                " id = 'made'") == [["api:writer"]]

    daemon.stop()
    assert daemon.proc.returncode == 0
    daemon.start()
    api_up(api)
    status, body = api.json("GET", "/api/v1/jobs/made", token="reader")
    assert status == 200, body
    assert body["definition"]["command"] == "echo made-by-api", body
    assert body["created_by"] == "api:writer", body
    # its run, read back from PostgreSQL through the API
    status, body = api.json("GET", "/api/v1/executions/%s" % exec_id,
                            token="reader")
    assert status == 200, body
    assert body["status"] == "succeeded", body
    assert "made-by-api" in body.get("output", ""), body


def test_kill_9_loses_nothing_acknowledged(daemon, db, tmp_path):
    """Each command appends its execution id to a file before anything
    else: every id there started, so the master had its record running
    acknowledged by PostgreSQL first (it waits for that before the
    dispatch). After kill -9 each of them is in the database; after a
    restart none is left running: those that were are recorded crashed."""
    server, name, url = db
    out = tmp_path / "started"
    cmd = "echo $HOURGLASS_EXECUTION_ID >> %s; sleep 0.05" % out
    daemon.start(pg_config(daemon, url, workers=4, jobs=[
        job("j%02d" % i, command=cmd, every="100ms", max_retries=0)
        for i in range(10)]))

    def started():
        try:
            return out.read_text().split()
        except FileNotFoundError:
            return []
    wait_until(lambda: len(started()) >= 100, timeout=30,
               what="100 commands started")
    daemon.signal(signal.SIGKILL)
    daemon.wait_exit()
    for pid in daemon.stray():          # workers and commands left behind
        os.kill(pid, signal.SIGKILL)
    ids = started()
    recorded = statuses(server, name)
    lost = [i for i in ids if i not in recorded]
    assert lost == [], "%d of %d started executions not recorded: %s" % (
        len(lost), len(ids), lost[:5])
    running = [i for i in ids if recorded[i] == "running"]
    print("%d started, all recorded; %d running at the kill"
          % (len(ids), len(running)))

    daemon.start()
    daemon.wait_event("finish", count=5)
    daemon.stop()
    after = statuses(server, name)
    assert all(after[i] in FINAL for i in ids), \
        [(i, after[i]) for i in ids if after[i] not in FINAL][:5]
    # running at the kill: recorded crashed, then dead (no retries left)
    assert all(after[i] in ("crashed", "dead") for i in running), \
        [(i, after[i]) for i in running]


def test_postgres_stopped_for_a_few_seconds(daemon, db):
    server, name, url = db
    port = free_port()
    daemon.start(pg_config(daemon, url, jobs=[
        job("tick", command="true", every="100ms")],
        extra=api_section(port)))
    api = Api(port)
    api_up(api)
    daemon.wait_event("finish", count=3, job="tick")

    server.stop()
    try:
        opened = daemon.wait_for(lambda evs: messages(
            daemon, "store: cannot write postgresql://"), timeout=15,
            what="the line that opens the episode")[0]
        # scheduling goes on without the database
        daemon.wait_for(lambda evs: len([
            e for e in daemon.events("finish", job="tick")
            if etime(e) > etime(opened)]) >= 10,
            what="10 runs while PostgreSQL is away")
        # /healthz says why (the shared writer's figures)
        status, body = api.json("GET", "/healthz", token=None)
        assert status == 503, body
        assert any("the store cannot be written: cannot connect" in p
                   for p in body["problems"]), body
        time.sleep(1)                   # a few retries, still one line
    finally:
        server.start()
    closed = daemon.wait_for(lambda evs: messages(
        daemon, "store: writing postgresql://"), timeout=15,
        what="the line that closes the episode")
    during = {e["exec"]: e["status"] for e in daemon.events("finish",
                                                            job="tick")
              if etime(opened) < etime(e) < etime(closed[0])}
    assert len(during) >= 10, during
    wait_until(lambda: all(statuses(server, name).get(i) == s
                           for i, s in during.items()),
               what="the runs made while PostgreSQL was away recorded")
    assert len(messages(daemon, "store: cannot write postgresql://")) == 1
    assert len(messages(daemon, "store: writing postgresql://")) == 1
    assert "committed" in closed[0]["message"], closed
    wait_until(lambda: api.json("GET", "/healthz", token=None)[0] == 200,
               what="/healthz well again")
    daemon.stop()
    assert daemon.proc.returncode == 0


def test_t_checks_the_url_without_connecting(hg):
    """hourglass -t reads the url as libpq does and connects to nothing:
    a host that answers nobody passes, a parameter libpq does not know is
    named."""
    if not built_with_postgres():
        pytest.skip("hourglass was built without libpq")
    d = hg()
    d.write(pg_config(d, "postgresql://nobody@192.0.2.1:1/nowhere"))
    r = run_hourglass("-t", "-p", d.dir, "-c", d.conf, timeout=10)
    assert r.returncode == 0, r.stderr
    assert "test is successful" in r.stdout
    d.write(pg_config(d, "postgresql://h/db?nosuchparam=1"))
    r = run_hourglass("-t", "-p", d.dir, "-c", d.conf, timeout=10)
    assert r.returncode == 1, r.stdout
    assert "store.url: not a PostgreSQL connection url: invalid URI query " \
        "parameter: \"nosuchparam\"" in r.stderr, r.stderr
