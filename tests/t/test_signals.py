"""Issue point 10: -s through the pid file, the pid file itself, SIGQUIT,
SIGTERM and SIGUSR1."""

import http.server
import os
import signal
import subprocess
import threading
import time

import pytest

from conftest import (HOURGLASS, alive, at_ahead, etime, job, rfc3339,
                      wait_until)


def message_events(daemon, text, **kw):
    return [e for e in daemon.events(**kw) if text in e.get("message", "")]


def test_ctl_reopen_and_reload_reach_the_master(daemon):
    daemon.start(jobs=[job("tick", every="1s", command="true")])
    r = daemon.ctl("reopen")
    assert r.returncode == 0, r.stderr
    daemon.wait_for(lambda evs: message_events(daemon, "log file reopened"),
                    what="log file reopened")
    r = daemon.ctl("reload")
    assert r.returncode == 0, r.stderr
    ev = daemon.wait_event("reload")[0]
    assert ev["result"] == "ok", ev
    assert daemon.running()


@pytest.mark.parametrize("cmd", ["stop", "quit"])
def test_ctl_stop_and_quit_end_the_master_and_remove_the_pid_file(daemon,
                                                                  cmd):
    daemon.start(jobs=[job("tick", every="1s", command="true")])
    assert daemon.pidfile.read_text().strip() == str(daemon.pid)
    workers = daemon.workers()
    r = daemon.ctl(cmd)
    assert r.returncode == 0, r.stderr
    assert daemon.wait_exit() == 0
    assert not daemon.pidfile.exists()
    wait_until(lambda: not any(alive(w) for w in workers), timeout=5,
               what="the workers to end")


def test_ctl_without_a_running_master_fails(daemon):
    daemon.write(jobs=[])
    r = daemon.ctl("reload")
    assert r.returncode == 1
    assert str(daemon.pidfile) in r.stderr
    assert "running" in r.stderr, r.stderr


def test_ctl_with_a_stale_pid_file_fails(daemon):
    daemon.write(jobs=[])
    # a pid that is certainly not a master holding the file's lock
    sleeper = subprocess.Popen(["sleep", "30"])
    try:
        daemon.pidfile.write_text("%d\n" % sleeper.pid)
        r = daemon.ctl("reload")
        assert r.returncode == 1
        assert "stale" in r.stderr, r.stderr
        assert sleeper.poll() is None, "the stale pid got the signal"
    finally:
        sleeper.kill()
        sleeper.wait()


def test_ctl_rejects_an_unknown_signal_name(daemon):
    daemon.write(jobs=[])
    r = daemon.ctl("explode")
    # a usage error: 2, as for an unknown option (README: 1 is kept for a
    # master that cannot be signalled)
    assert r.returncode == 2, (r.returncode, r.stderr)
    assert 'invalid signal "explode"' in r.stderr, r.stderr
    assert "reload" in r.stderr, "the message does not name the valid ones"


def test_second_instance_with_the_same_pid_file_refuses(hg):
    first = hg("first")
    first.start(jobs=[job("tick", every="1s", command="true")])
    r = subprocess.run([str(HOURGLASS), "-p", str(first.dir), "-c",
                        str(first.conf)], capture_output=True, text=True,
                       timeout=10, env=first.env())
    assert r.returncode == 1
    assert "already running" in r.stderr, r.stderr
    assert str(first.pid) in r.stderr, r.stderr
    # the first one is untouched
    assert first.running()
    assert first.pidfile.read_text().strip() == str(first.pid)


def test_sigquit_lets_the_running_execution_finish(daemon):
    daemon.start(jobs=[job("work", at=rfc3339(at_ahead(2)),
                           command="sleep 2")])
    start = daemon.wait_event("start", job="work")[0]
    daemon.signal(signal.SIGQUIT)
    assert daemon.wait_exit(timeout=15) == 0
    fin = daemon.events("finish", job="work", exec=start["exec"])
    assert fin and fin[0]["status"] == "succeeded", fin
    assert fin[0]["duration_ms"] >= 1900
    assert not daemon.pidfile.exists()


def test_sigquit_kills_what_outlives_shutdown_timeout(daemon):
    daemon.start(extra='shutdown_timeout = "1s";',
                 jobs=[job("long", at=rfc3339(at_ahead(2)),
                           command="sleep 30")])
    start = daemon.wait_event("start", job="long")[0]
    sleeps = wait_until(lambda: daemon.find_commands(["sleep", "30"]),
                        what="sleep 30")
    daemon.signal(signal.SIGQUIT)
    sent = time.time()
    assert daemon.wait_exit(timeout=10) == 0
    assert time.time() - sent < 5
    quit_ev = message_events(daemon, "graceful shutdown")
    kill_ev = message_events(daemon, "shutdown_timeout reached")
    assert quit_ev and kill_ev
    # the executions are killed at about 1 s
    assert 0.9 <= etime(kill_ev[0]) - etime(quit_ev[0]) <= 1.5
    fin = daemon.events("finish", job="long", exec=start["exec"])
    assert fin and fin[0]["status"] == "killed", fin
    wait_until(lambda: not any(alive(p) for p in sleeps), timeout=5,
               what="sleep 30 to end")
    assert not daemon.pidfile.exists()


def test_sigterm_during_a_graceful_shutdown_stops_at_once(daemon):
    # A second SIGQUIT changes nothing (one graceful shutdown, its timeout
    # not started again); SIGTERM then turns it into a fast stop that
    # kills the execution the graceful one was waiting for.
    daemon.start(jobs=[job("long", at=rfc3339(at_ahead(1)),
                           command="sleep 300")])
    start = daemon.wait_event("start", job="long")[0]
    daemon.signal(signal.SIGQUIT)
    daemon.wait_for(lambda evs: message_events(daemon, "graceful shutdown"),
                    what="the graceful shutdown")
    daemon.signal(signal.SIGQUIT)
    daemon.signal(signal.SIGTERM)
    assert daemon.wait_exit(timeout=20) == 0, daemon.master_output()
    assert len(message_events(daemon, "graceful shutdown")) == 1
    assert len(message_events(daemon, "fast shutdown")) == 1
    fin = daemon.events("finish", job="long", exec=start["exec"])
    assert fin and fin[0]["status"] == "killed", fin
    assert not daemon.pidfile.exists()

@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT],
                         ids=["SIGTERM", "SIGINT"])
def test_sigterm_stops_at_once_killing_running_executions(daemon, sig):
    # README: SIGTERM and SIGINT both stop at once.
    daemon.start(jobs=[job("long", at=rfc3339(at_ahead(2)),
                           command="sleep 30")])
    start = daemon.wait_event("start", job="long")[0]
    sleeps = wait_until(lambda: daemon.find_commands(["sleep", "30"]),
                        what="sleep 30")
    workers = daemon.workers()
    daemon.signal(sig)
    sent = time.monotonic()
    assert daemon.wait_exit(timeout=10) == 0, daemon.master_output()
    assert time.monotonic() - sent < 2.0
    fin = daemon.events("finish", job="long", exec=start["exec"])
    assert fin and fin[0]["status"] == "killed", fin
    assert len(daemon.events("finish", job="long")) == 1
    assert not message_events(daemon, "graceful shutdown")
    wait_until(lambda: not any(alive(w) for w in workers), timeout=5,
               what="the workers to end")
    wait_until(lambda: not any(alive(p) for p in sleeps), timeout=5,
               what="sleep 30 to end")
    assert not daemon.pidfile.exists()


def test_sigusr1_reopens_the_log_file(daemon):
    daemon.start(jobs=[job("tick", every="500ms", command="true")])
    daemon.wait_event("finish", job="tick")
    rotated = daemon.dir / "hourglass.log.1"
    os.rename(daemon.log, rotated)
    r = daemon.ctl("reopen")
    assert r.returncode == 0, r.stderr
    wait_until(lambda: daemon.log.exists(), what="a new log file")
    daemon.wait_for(lambda evs: message_events(daemon, "log file reopened"),
                    what="'log file reopened' in the new file")
    daemon.wait_event("finish", job="tick")
    # nothing after the reopen went to the renamed file
    old = daemon.events(path=rotated)
    assert old and old[0]["event"] == "start_master"
    assert not [e for e in old if "log file reopened" in
                e.get("message", "")]
    new = daemon.events()
    assert etime(new[0]) >= etime(old[-1])


def test_sigusr1_that_cannot_reopen_keeps_logging_where_it_was(daemon):
    # After a rotation the log's path cannot be opened (a directory
    # stands there): the master says so in the file it still holds and
    # goes on; a later reopen, once the path is free, moves the log.
    daemon.start(jobs=[job("tick", every="300ms", command="true")])
    daemon.wait_event("finish", job="tick")
    rotated = daemon.dir / "hourglass.log.1"
    os.rename(daemon.log, rotated)
    daemon.log.mkdir()
    assert daemon.ctl("reopen").returncode == 0
    failed = wait_until(
        lambda: message_events(daemon, "cannot reopen the log file",
                               path=rotated),
        what="the failed reopen, in the file the master still holds")
    assert failed[0]["message"] == ("cannot reopen the log file: Is a "
                                    "directory"), failed
    assert failed[0]["level"] == "error", failed
    n = len(daemon.events("finish", job="tick", path=rotated))
    wait_until(lambda: len(daemon.events("finish", job="tick",
                                         path=rotated)) >= n + 2,
               what="the job's runs still logged in the held file")
    assert daemon.running()
    daemon.log.rmdir()
    assert daemon.ctl("reopen").returncode == 0
    daemon.wait_for(lambda evs: message_events(daemon, "log file reopened"),
                    what="'log file reopened' in the new file")
    daemon.wait_event("finish", job="tick")

def test_sigusr1_reopen_also_moves_the_workers_log_lines(daemon):
    # Lines that modules log go out from the worker that runs them (the
    # http module logs every request). After a reopen they belong in the
    # new file too, like the master's own.
    class Ok(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Ok)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = "http://127.0.0.1:%d/" % server.server_address[1]
        daemon.start(workers=2, load=("shell", "http"),
                     jobs=[job("ping", type="http", every="500ms", url=url)])
        daemon.wait_event("module", job="ping")
        workers = daemon.workers()
        rotated = daemon.dir / "hourglass.log.1"
        os.rename(daemon.log, rotated)
        assert daemon.ctl("reopen").returncode == 0
        daemon.wait_for(
            lambda evs: message_events(daemon, "log file reopened"),
            what="'log file reopened' in the new file")
        # executions dispatched after the reopen, by the same workers
        starts = daemon.wait_event("start", job="ping", count=3)
        assert {s["worker"] for s in starts} <= set(workers)
        time.sleep(0.5)
        new = {e["exec"] for e in daemon.events("module", job="ping")}
        old = {e["exec"] for e in daemon.events("module", path=rotated)
               if e.get("job") == "ping"}
        misplaced = [s["exec"] for s in starts if s["exec"] in old]
        assert not misplaced, (
            "module lines of executions started after the reopen went to "
            "the renamed file: %s" % misplaced)
        assert {s["exec"] for s in starts} & new
    finally:
        # the daemon first: pings failing once the server is gone would
        # leave retries pending
        daemon.stop()
        server.shutdown()
        server.server_close()


def test_sigquit_records_a_retry_still_waiting_for_its_backoff(daemon):
    # Attempt 1 fails (exit 75); attempt 2 waits 5 s of backoff when the
    # master is told to quit. Nothing is running, so the master leaves at
    # once; the waiting attempt must not vanish without a record (it is
    # dropped like the queued ones, "skipped", or kept; never forgotten).
    daemon.start(workers=1, jobs=[job(
        "flaky", at=rfc3339(at_ahead(2)), max_retries=3,
        backoff={"initial": "5s", "jitter": 0.0}, command="exit 75")])
    retry = daemon.wait_event("retry", job="flaky")[0]
    daemon.signal(signal.SIGQUIT)
    assert daemon.wait_exit(timeout=10) == 0, daemon.master_output()
    assert not daemon.pidfile.exists()
    # kept in the store for the next start ("queued"), or ended "skipped"
    recorded = [e for e in daemon.events() if e.get("exec") == retry["exec"]
                and (e.get("event") == "queued"
                     or (e.get("event") == "finish"
                         and e.get("status") == "skipped"))]
    assert recorded, ("the pending attempt %s left no record at shutdown"
                      % retry["exec"])


def test_stop_and_reopen_work_when_the_file_has_an_error(daemon):
    """-s stop|quit|reopen need only the pid file: a file broken since the
    start (here a key it does not know) still names it, so the signal
    goes, after the errors and a line saying so; -s reload is refused
    (the daemon would refuse the file anyway)."""
    daemon.start(jobs=[job("tick", every="1s", command="true")])
    daemon.conf.write_text(daemon.conf.read_text() + "colour = true;\n")
    r = daemon.ctl("reload")
    assert r.returncode == 1, r.stderr
    assert 'unknown key "colour"' in r.stderr, r.stderr
    r = daemon.ctl("reopen")
    assert r.returncode == 0, r.stderr
    assert "sending SIGUSR1 anyway" in r.stderr, r.stderr
    daemon.wait_for(lambda evs: any("log file reopened" in e.get("message", "")
                                    for e in evs), what="the reopen")
    r = daemon.ctl("stop")
    assert r.returncode == 0, r.stderr
    assert "sending SIGTERM anyway" in r.stderr, r.stderr
    assert daemon.wait_exit(timeout=15) == 0


def test_a_normal_stop_warns_of_no_worker(daemon):
    """SIGTERM and SIGQUIT stop the workers on purpose: their exits are
    logged at debug, not as one warning each."""
    for sig in (signal.SIGTERM, signal.SIGQUIT):
        daemon.start(workers=3, jobs=[job("tick", every="1s",
                                          command="true")])
        daemon.signal(sig)
        assert daemon.wait_exit(timeout=15) == 0
        exits = daemon.events("worker_exit")
        assert len(exits) >= 3, exits
        assert [e for e in exits if e["level"] != "debug"] == [], exits
        daemon.log.unlink()
