"""Issue point 10: SIGHUP reloads the configuration without stopping the
executions that are running."""

import os
import re
import signal
import time

from conftest import (at_ahead, etime, job, rfc3339, run_hourglass,
                      sanitized_build, sched, sqlite_config, wait_rows)


def reload(daemon, text=None, timeout=10, **kw):
    """Rewrites the configuration, sends SIGHUP and waits (up to TIMEOUT
    seconds) for the reload event(s) that answer it; returns them."""
    before = len(daemon.events("reload"))
    daemon.rewrite(text, **kw)
    daemon.signal(signal.SIGHUP)

    def answered(evs):
        got = [e for e in evs if e.get("event") == "reload"][before:]
        return got if got else None
    # (the lines of one reload are written together: one flush per turn
    # of the master's loop)
    return daemon.wait_for(answered, timeout=timeout,
                           what="the reload event")


def test_reload_adds_a_job(daemon):
    daemon.start(jobs=[job("old", every="1s", command="true")])
    daemon.wait_event("start", job="old")
    evs = reload(daemon, jobs=[job("old", every="1s", command="true"),
                               job("new", every="1s", command="true")])
    assert evs[0]["result"] == "ok", evs
    fin = daemon.wait_event("finish", job="new")[0]
    assert fin["status"] == "succeeded"


def test_reload_removes_a_job_and_lets_its_execution_finish(daemon):
    daemon.start(jobs=[job("doomed", every="1s", command="sleep 2"),
                       job("keep", every="1s", command="true")])
    start = daemon.wait_event("start", job="doomed")[0]
    rel = reload(daemon, jobs=[job("keep", every="1s", command="true")])[0]
    assert rel["result"] == "ok", rel
    fin = daemon.wait_event("finish", job="doomed", exec=start["exec"])[0]
    assert fin["status"] == "succeeded", fin
    # Two more seconds of scheduling: nothing of doomed starts.
    daemon.wait_event("start", job="keep", count=2, after=etime(fin))
    evs = daemon.events()
    i = evs.index(rel)
    late = [e for e in evs[i:] if e.get("event") == "start"
            and e.get("job") == "doomed"]
    assert not late, late


def test_reload_gives_a_changed_job_its_new_definition(daemon):
    out = daemon.dir / "changed.out"

    def jobs(word):
        return [job("chg", every="1s",
                    command='echo "%s $HOURGLASS_EXECUTION_ID" >> %s'
                    % (word, out))]
    daemon.start(jobs=jobs("one"))
    daemon.wait_event("finish", job="chg")
    rel = reload(daemon, jobs=jobs("two"))[0]
    assert rel["result"] == "ok", rel
    daemon.wait_event("finish", job="chg", count=2, after=etime(rel))
    evs = daemon.events()
    i = evs.index(rel)
    words = dict(reversed(l.split()) for l in out.read_text().splitlines())
    before = [e["exec"] for e in evs[:i] if e.get("event") == "start"
              and e.get("job") == "chg"]
    done = {e["exec"] for e in evs if e.get("event") == "finish"}
    started_after = [e["exec"] for e in evs[i:] if e.get("event") == "start"
                     and e.get("job") == "chg" and e["exec"] in done]
    assert len(started_after) >= 2
    assert all(words.get(x) == "two" for x in started_after), (
        words, started_after)
    assert all(words[x] == "one" for x in before if x in words), words


def test_reload_keeps_the_rhythm_of_an_unchanged_job(daemon):
    rhythm = job("rhythm", every="3s", command="true")
    daemon.start(jobs=[rhythm])
    first = daemon.wait_event("start", job="rhythm")[0]
    time.sleep(max(0.0, etime(first) + 1.0 - time.time()))
    rel = reload(daemon, jobs=[rhythm, job("other", every="1s",
                                           command="true")])[0]
    assert rel["result"] == "ok", rel
    assert etime(rel) - etime(first) < 2.0, "reload too late to tell"
    second = daemon.wait_event("start", job="rhythm", count=2)[1]
    gap = etime(second) - etime(first)
    assert 2.5 <= gap <= 3.5, gap
    # the due times did not move either
    assert abs(sched(second) - sched(first) - 3.0) < 0.05


def test_reload_of_an_invalid_file_keeps_the_running_configuration(daemon):
    good = daemon.config(jobs=[job("tick", every="1s", command="true")])
    daemon.start(good)
    daemon.wait_event("start", job="tick")
    bad = good.replace('command = "true";',
                       'command = "true"; timout = "1s";')
    assert bad != good
    line = next(n for n, l in enumerate(bad.split("\n"), 1)
                if "timout" in l)
    evs = reload(daemon, bad)
    assert all(e["result"] == "failed" for e in evs), evs
    pat = re.compile(r"^%s:%d: " % (re.escape(str(daemon.conf)), line))
    hit = [e for e in evs if pat.match(e.get("message", ""))
           and "timout" in e["message"]]
    assert hit, evs
    assert "timeout" in hit[0]["message"].replace("timout", "")
    # The old jobs keep running.
    daemon.wait_event("start", job="tick", count=2, after=etime(evs[-1]))
    assert daemon.running()
    # and a corrected file is taken
    fixed = good.replace('command = "true";', 'command = "true"; '
                         'timeout = "1s";')
    assert reload(daemon, fixed)[0]["result"] == "ok"


def test_reload_changes_the_number_of_workers(daemon):
    def conf(n):
        return daemon.config(workers=n, jobs=[job("tick", every="1s",
                                                  command="true")])
    daemon.start(conf(2))
    old = daemon.wait_workers(2)
    assert reload(daemon, conf(3))[0]["result"] == "ok"
    daemon.wait_workers(3, exclude=old)
    assert reload(daemon, conf(1))[0]["result"] == "ok"
    one = daemon.wait_workers(1)
    # and the one left works
    daemon.wait_event("finish", job="tick", worker=one[0])


def test_reload_retires_busy_workers_once_their_execution_ends(daemon):
    def conf(n):
        return daemon.config(workers=n, jobs=[
            job("w%d" % i, at=at, command="sleep 2") for i in range(3)])
    at = rfc3339(at_ahead(2))
    daemon.start(conf(3))
    starts = daemon.wait_event("start", count=3)
    busy = {s["worker"] for s in starts}
    assert len(busy) == 3
    rel = reload(daemon, conf(1))[0]
    assert rel["result"] == "ok", rel
    # the running executions are not touched ...
    fins = daemon.wait_event("finish", count=3)
    assert all(f["status"] == "succeeded" for f in fins), fins
    assert all(etime(f) > etime(rel) for f in fins)
    # ... and then their workers leave: one new worker remains
    left = daemon.wait_workers(1, exclude=busy)
    assert left


# --- issue 10, point 3: the master outlives every module bug -------------
#
# Reading the file and the modules' validate happen in a cycle reader
# process: a crash or a hang there is a failed reload, and the loop goes on
# scheduling while a big file is read.

TICK = job("tick", every="100ms", command="true")


def fires_between(daemon, first, last, id="tick"):
    """Start events of job ID logged between the events FIRST and LAST
    (positions in the log, not times)."""
    evs = daemon.events()
    i, j = evs.index(first), evs.index(last)
    return [e for e in evs[i:j] if e.get("event") == "start"
            and e.get("job") == id]


def reload_started(daemon):
    """The log line that opens the last reload."""
    return [e for e in daemon.events() if e.get("message", "")
            .startswith("reloading ")][-1]


def assert_still_scheduling(daemon, after):
    daemon.wait_event("start", job="tick", count=3, after=after)
    assert daemon.running()


def test_reload_survives_a_module_whose_validate_crashes(daemon):
    daemon.start(test_modules=["badvalidate"], jobs=[TICK])
    daemon.wait_event("start", job="tick")
    evs = reload(daemon, test_modules=["badvalidate"], jobs=[
        TICK, job("boom", type="badvalidate", mode="crash")])
    assert all(e["result"] == "failed" for e in evs), evs
    msgs = [e["message"] for e in evs]
    want = "configuration reader killed by signal 11 (SIGSEGV) while " \
           "validating job \"boom\""
    if sanitized_build():       # UBSan may turn the crash into an exit
        assert any("configuration reader" in m and "\"boom\"" in m
                   for m in msgs), msgs
    else:
        assert any(m == "%s: %s" % (daemon.conf, want) for m in msgs), msgs
    assert_still_scheduling(daemon, etime(evs[-1]))
    # the old configuration is in force: the next good file is taken
    assert reload(daemon, jobs=[TICK])[0]["result"] == "ok"


def test_reload_gives_up_on_a_validate_that_never_returns(daemon):
    bound = 'reload_timeout = "1s";'
    daemon.start(test_modules=["badvalidate"], extra=bound, jobs=[TICK])
    daemon.wait_event("start", job="tick")
    evs = reload(daemon, test_modules=["badvalidate"], extra=bound, jobs=[
        TICK, job("stuck", type="badvalidate", mode="hang")])
    assert all(e["result"] == "failed" for e in evs), evs
    assert any(e["message"] == "%s: configuration reader timed out after "
               "1 s while validating job \"stuck\"" % daemon.conf
               for e in evs), evs
    # the loop went on while the reader hung
    assert len(fires_between(daemon, reload_started(daemon), evs[0])) >= 3
    assert_still_scheduling(daemon, etime(evs[-1]))
    assert not daemon.find_commands(["hourglass", "--cycle-reader"])


def test_reload_of_an_include_of_a_fifo_fails_and_the_master_goes_on(daemon):
    bound = 'reload_timeout = "1s";'
    daemon.start(extra=bound, jobs=[TICK])
    daemon.wait_event("start", job="tick")
    fifo = daemon.dir / "fifo.conf"
    os.mkfifo(fifo)
    evs = reload(daemon, daemon.config(extra=bound, jobs=[TICK])
                 + '@include "fifo.conf"\n')
    assert all(e["result"] == "failed" for e in evs), evs
    assert any("configuration reader timed out after 1 s while reading"
               in e["message"] for e in evs), evs
    assert len(fires_between(daemon, reload_started(daemon), evs[0])) >= 3
    assert_still_scheduling(daemon, etime(evs[-1]))


def test_reload_of_a_file_with_a_3mb_comment_keeps_scheduling(daemon):
    daemon.start(jobs=[TICK])
    daemon.wait_event("start", job="tick")
    text = daemon.config(jobs=[TICK]) + "# " + "x" * (3 << 20) + "\n"
    evs = reload(daemon, text, timeout=60)      # seconds of libconfig
    assert evs[0]["result"] == "ok", evs
    assert len(fires_between(daemon, reload_started(daemon), evs[0])) >= 3


def test_reload_of_100000_jobs_keeps_scheduling(daemon):
    daemon.start(jobs=[TICK])
    daemon.wait_event("start", job="tick")
    many = [job("j%d" % i, schedule="0 0 1 1 *", command="true")
            for i in range(100000)]
    evs = reload(daemon, jobs=[TICK] + many, timeout=60)
    assert evs[0]["result"] == "ok", evs
    assert "100001 jobs" in evs[0]["message"], evs
    assert len(fires_between(daemon, reload_started(daemon), evs[0])) >= 3
    assert_still_scheduling(daemon, etime(evs[-1]))


def test_t_and_the_start_report_a_validate_crash(daemon):
    text = daemon.config(test_modules=["badvalidate"], jobs=[
        TICK, job("boom", type="badvalidate", mode="crash")])
    daemon.write(text)
    r = run_hourglass("-t", "-c", daemon.conf, env=daemon.env())
    assert r.returncode == 1, r
    assert "configuration reader" in r.stderr and '"boom"' in r.stderr, r
    assert ("configuration file %s test failed" % daemon.conf) in r.stderr
    if not sanitized_build():
        assert ("%s: configuration reader killed by signal 11 (SIGSEGV) "
                "while validating job \"boom\"" % daemon.conf) in r.stderr
    daemon.start(wait_ready=False)
    assert daemon.wait_exit() == 1
    assert "configuration reader" in daemon.master_output()


def test_a_sighup_during_a_reload_gets_a_reload_of_its_own(daemon):
    bound = 'reload_timeout = "1s";'
    daemon.start(test_modules=["badvalidate"], extra=bound, jobs=[TICK])
    daemon.wait_event("start", job="tick")
    before = len(daemon.events("reload"))
    daemon.write(test_modules=["badvalidate"], extra=bound, jobs=[
        TICK, job("stuck", type="badvalidate", mode="hang")])
    daemon.signal(signal.SIGHUP)
    daemon.wait_for(lambda evs: reload_started(daemon) if any(
        e.get("message", "").startswith("reloading ") for e in evs)
        else None, what="the first reload to start")
    daemon.write(test_modules=["badvalidate"], extra=bound,
                 jobs=[TICK, job("new", every="1s", command="true")])
    daemon.signal(signal.SIGHUP)
    evs = daemon.wait_for(
        lambda evs: [e for e in evs if e.get("event") == "reload"][before:]
        if any(e.get("result") == "ok" for e in evs
               if e.get("event") == "reload") else None,
        what="the second reload")
    assert evs[0]["result"] == "failed", evs
    assert evs[-1]["result"] == "ok", evs
    daemon.wait_event("finish", job="new")


def test_reload_says_which_settings_wait_for_a_restart(daemon):
    """A reload applies what it can and names each setting read once at
    start that the file changed (store, pid, api), with both values: none
    is ignored silently. The store stays the one the daemon started with."""
    db = daemon.dir / "hg.db"
    moved = daemon.dir / "moved.db"
    jobs = [job("tick", every="200ms", command="true")]
    daemon.start(sqlite_config(daemon, db=db, jobs=jobs))
    daemon.wait_event("finish", job="tick")
    text = sqlite_config(daemon, db=moved, jobs=jobs,
                         extra='api = { listen = "127.0.0.1:18080"; };')
    text = text.replace(str(daemon.pidfile), str(daemon.dir / "other.pid"))
    rel = reload(daemon, text)[0]
    assert rel["result"] == "ok", rel
    said = {}
    for e in daemon.events():
        m = re.match(r"reload: (\S+) changed from (.*) to (.*), which takes "
                     r"effect at the next start only", e.get("message", ""))
        if m:
            said[m.group(1)] = (m.group(2), m.group(3))
    assert said.get("store.path") == ('"%s"' % db, '"%s"' % moved), said
    assert said.get("pid") == ('"%s"' % daemon.pidfile,
                               '"%s"' % (daemon.dir / "other.pid")), said
    assert said.get("api") == ("no section", "a section"), said
    assert set(said) == {"store.path", "pid", "api"}, said
    # Still recording into the store it opened, not the new path.
    daemon.wait_event("finish", job="tick", count=3, after=etime(rel))
    assert not moved.exists()
    wait_rows(db, lambda rs: rs, where="job_id = 'tick'",
              what="tick's rows in the store it opened")


def test_reload_refuses_an_invalid_schedule_at_or_timezone(daemon):
    # Every bad time key is reported with its line; the running jobs go
    # on with their old definition, and none of the new jobs exists.
    good = daemon.config(jobs=[job("tick", every="1s", command="true")])
    daemon.start(good)
    daemon.wait_event("start", job="tick")
    bad_jobs = {
        "b_sched": job("b_sched", schedule="61 * * * *", command="true"),
        "b_never": job("b_never", schedule="0 0 30 2 *", command="true"),
        "b_at": job("b_at", at="2026-13-01T00:00:00Z", command="true"),
        "b_tz": job("b_tz", schedule="* * * * * *", command="true",
                    timezone="Mars/Olympus"),
    }
    bad = daemon.config(jobs=[job("tick", every="1s", command="exit 3")]
                        + list(bad_jobs.values()))
    evs = reload(daemon, bad)
    assert all(e["result"] == "failed" for e in evs), evs
    lines = bad.split("\n")
    for jid, key in (("b_sched", "schedule"), ("b_never", "schedule"),
                     ("b_at", "at"), ("b_tz", "timezone")):
        n = next(i for i, l in enumerate(lines, 1) if '"%s"' % jid in l)
        want = '%s:%d: job "%s": %s: ' % (daemon.conf, n, jid, key)
        assert [e for e in evs if e.get("message", "").startswith(want)], \
            (want, evs)
    # the old definition keeps running (command true, not exit 3)
    after = etime(evs[-1])
    fins = daemon.wait_event("finish", job="tick", count=2, after=after)
    assert all(f["status"] == "succeeded" for f in fins), fins
    assert not [e for e in daemon.events() if e.get("job") in bad_jobs]
    assert daemon.running()


def test_reload_that_loads_a_new_module_runs_its_jobs(daemon):
    # `system` is not loaded at start: a job of its type is refused, then
    # a reload that loads it brings the job, and workers that can run it.
    daemon.start(jobs=[job("tick", every="1s", command="true")])
    old_workers = daemon.workers()
    refused = reload(daemon, jobs=[
        job("tick", every="1s", command="true"),
        job("chk", type="system", task="noop", every="1s")])
    assert refused[0]["result"] == "failed", refused
    assert any("system" in e.get("message", "") for e in refused), refused
    evs = reload(daemon, load=("shell", "system"), jobs=[
        job("tick", every="1s", command="true"),
        job("chk", type="system", task="noop", every="1s")])
    assert evs[0]["result"] == "ok", evs
    fin = daemon.wait_event("finish", job="chk", count=2)
    assert all(f["status"] == "succeeded" for f in fin), fin
    # run by workers forked after the reload (they carry the module)
    starts = daemon.events("start", job="chk")
    assert not {e["worker"] for e in starts} & set(old_workers), starts
    daemon.wait_event("finish", job="tick", status="succeeded",
                      after=etime(fin[-1]))


def test_reload_to_a_log_file_that_cannot_be_opened_keeps_the_old_one(daemon):
    # The new log.file cannot be opened (its directory does not exist):
    # the rest of the reload applies, the master says why in the log it
    # keeps writing, and goes on.
    daemon.start(jobs=[job("tick", every="300ms", command="true")])
    daemon.wait_event("finish", job="tick")
    gone = daemon.dir / "no-such-dir" / "hourglass.log"
    text = daemon.config(jobs=[job("tick", every="300ms", command="true"),
                               job("new", every="300ms", command="true")])
    text = text.replace('file = "%s"' % daemon.log, 'file = "%s"' % gone)
    assert str(gone) in text
    rel = reload(daemon, text)[0]
    assert rel["result"] == "ok", rel
    said = [e for e in daemon.events()
            if "logging stays where it was" in e.get("message", "")]
    assert [e["message"] for e in said] == [
        "cannot open log file %s: No such file or directory; logging stays "
        "where it was" % gone], said
    assert said[0]["level"] == "error", said
    daemon.wait_event("finish", job="new", after=etime(rel))
    assert not gone.parent.exists()
