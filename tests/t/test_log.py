"""Issue point 11: log lines in text and JSON."""

import json
import re
import signal
import sqlite3

from conftest import db_rows, job, sqlite_config, wait_until


def test_text_log_lines_carry_event_job_and_exec(daemon):
    daemon.start(log_format="text", wait_ready=False,
                 jobs=[job("tick", every="500ms", command="true")])

    def finish_lines():
        return [l for l in daemon.lines() if " event=finish " in l]
    lines = wait_until(finish_lines, what="a finish line in the text log")
    m = re.search(r" event=finish job=(\S+) exec=([0-9a-f-]{36}) ", lines[0])
    assert m, lines[0]
    assert m.group(1) == "tick"
    assert "status=succeeded" in lines[0]
    starts = [l for l in daemon.lines()
              if " event=start " in l and "exec=%s" % m.group(2) in l]
    assert starts and " job=tick " in starts[0]
    # not JSON
    assert not daemon.lines()[0].startswith("{")


def test_json_log_lines_parse_and_name_job_and_exec(daemon):
    daemon.start(jobs=[job("tick", every="500ms", command="true")])
    daemon.wait_event("finish", job="tick", count=2)
    lines = daemon.lines()
    assert lines
    for line in lines:
        e = json.loads(line)
        assert isinstance(e, dict)
        assert {"time", "level", "process", "pid"} <= e.keys(), e
        if e.get("event") in ("start", "finish", "retry", "dead",
                              "timeout"):
            assert e.get("job") and e.get("exec"), e
            assert re.match(r"^[0-9a-f-]{36}$", e["exec"]), e


def test_text_log_lines_cannot_be_forged(daemon):
    """A message carrying a newline (here: a failed reload quoting a user
    name from the file) stays on its line, escaped."""
    daemon.start(log_format="text", wait_ready=False,
                 jobs=[job("tick", every="1h", command="true")])
    wait_until(lambda: any(" event=start_master " in l
                           for l in daemon.lines()),
               what="the start line")
    daemon.rewrite(log_format="text", jobs=[job(
        "tick", every="1h", command="true",
        user="nobdy\nFORGED [error] master 1: event=finish\x1b[2J")])
    daemon.signal(signal.SIGHUP)
    lines = wait_until(lambda: [l for l in daemon.lines()
                                if " event=reload " in l
                                and "result=failed" in l],
                       what="the failed reload line")
    assert any('nobdy\\nFORGED [error] master 1: event=finish\\x1b[2J' in l
               for l in lines), lines
    assert not [l for l in daemon.lines() if l.startswith("FORGED")]
    assert not [l for l in daemon.lines() if "\x1b" in l]


def test_a_log_that_cannot_be_written_does_not_stop_the_jobs(daemon):
    # Every write to the log fails (/dev/full: the disk is full). The
    # lines are dropped, and the master and its workers go on running
    # the jobs and recording them; a stop still ends it cleanly.
    db = daemon.dir / "hg.db"
    text = sqlite_config(daemon, db, workers=2, jobs=[
        job("tick", every="200ms", command="echo hi")])
    text = text.replace('file = "%s"' % daemon.log, 'file = "/dev/full"')
    assert "/dev/full" in text
    daemon.start(text, wait_ready=False)

    def succeeded():
        try:
            rows = db_rows(db, "job_id = 'tick' AND status = 'succeeded'")
        except sqlite3.OperationalError:
            return None         # the store is not made yet
        return rows if len(rows) >= 5 else None
    rows = wait_until(succeeded, what="five runs recorded")
    assert all(r["output"] == b"hi\n" for r in rows), rows
    assert daemon.running()
    daemon.signal(signal.SIGTERM)
    assert daemon.wait_exit(timeout=20) == 0, daemon.master_output()
