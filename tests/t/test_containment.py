"""Issue 10 point 2: no process escapes its execution.

Each execution runs in a cgroup of its own; whatever it leaves (a double
fork, setsid, nohup) is killed when it ends, at its timeout, at every kind
of stop and when the master is killed with -9. Per-job `limits` are
enforced through the same cgroup. A stopped worker is replaced.

Processes are counted by a marker of the test's own, not by the daemon's
environment (shell jobs get a clean one): every job process carries
HOURGLASS_EXECUTION_ID=<its execution> and the job's `env` marker
HG_CONTAIN=<a uuid of the test> in its environment.
"""

import os
import re
import shutil
import signal
import subprocess
import uuid
from pathlib import Path

import pytest

from conftest import (HOURGLASS, all_pids, alive, at_ahead, etime, job,
                      proc_environ, rfc3339, wait_until)

# Alone (tests/t/run.sh): every master removes the cgroups of the dead
# masters it finds, and these tests check who removed what and when.
pytestmark = pytest.mark.serial

# Everything a job can do to leave processes behind.
ESCAPES = ("(sleep 300 &); (setsid sleep 300 &); setsid -f sleep 300; "
           "nohup sleep 300 >/dev/null 2>&1 &")


# Forks without end, and keeps trying when a fork fails.
BOMB = """python3 -c '
import os, time
while True:
    try:
        if os.fork() == 0:
            time.sleep(300)
            os._exit(0)
    except OSError:
        pass
'"""


def soon():
    # far enough for the daemon to have started (it takes ~0.1 s)
    return rfc3339(at_ahead(1.2))


def cgroup2_dir():
    """This process's cgroup directory on the cgroup v2 mount, if it is
    writable; None otherwise."""
    mount = None
    with open("/proc/self/mountinfo") as f:
        for line in f:
            left, _, right = line.partition(" - ")
            if right.split()[0] == "cgroup2":
                mount = (left.split()[4], left.split()[3])
                break
    if mount is None:
        return None
    with open("/proc/self/cgroup") as f:
        own = [l.strip()[3:] for l in f if l.startswith("0::")]
    if not own:
        return None
    point, root = mount
    path = own[0]
    if root != "/" and path.startswith(root):
        path = path[len(root):]
    d = Path(point + (path if path != "/" else ""))
    return d if os.access(d, os.W_OK) else None


needs_cgroup = pytest.mark.skipif(
    cgroup2_dir() is None,
    reason="no writable cgroup v2 hierarchy on this host: executions are "
           "contained only by subreaper workers")


def marked(needle):
    """Live processes whose environment holds NEEDLE (bytes)."""
    found = []
    for pid in all_pids():
        if pid != os.getpid() and needle in proc_environ(pid) \
                and alive(pid):
            found.append(pid)
    return found


def of_exec(exec_id):
    return marked(b"HOURGLASS_EXECUTION_ID=" + exec_id.encode() + b"\0")


class Marker:
    def __init__(self):
        self.value = "m" + uuid.uuid4().hex
        self.env = {"HG_CONTAIN": self.value}

    def pids(self):
        return marked(b"HG_CONTAIN=" + self.value.encode() + b"\0")

    def none_left(self, what, timeout=5):
        wait_until(lambda: not self.pids(), timeout=timeout,
                   what=lambda: "%s: no process left (still: %s)"
                   % (what, self.pids()))


@needs_cgroup
def test_processes_left_by_a_finished_execution_are_killed(daemon):
    # Twenty executions, one every 300 ms: each ends with exit 0 and
    # leaves four processes behind, each escaping in its own way.
    m = Marker()
    daemon.start(workers=2, jobs=[
        job("leaky", every="300ms", max_retries=0, env=m.env,
            command=ESCAPES + " exit 0")])
    seen = set()
    for i in range(20):
        fin = daemon.wait_event("finish", job="leaky", count=i + 1,
                                timeout=15)[i]
        assert fin["status"] == "succeeded", fin
        assert fin.get("error") == "left 4 processes behind, killed", fin
        wait_until(lambda: not of_exec(fin["exec"]), timeout=5,
                   what=lambda: "execution %d: nothing left (still: %s)"
                   % (i + 1, of_exec(fin["exec"])))
        seen.add(fin["exec"])
    assert len(seen) == 20


@needs_cgroup
def test_processes_left_are_killed_at_the_timeout(daemon):
    m = Marker()
    daemon.start(workers=2, jobs=[
        job("slow", at=soon(), timeout="1s", max_retries=0, env=m.env,
            command=ESCAPES + " sleep 300")])
    start = daemon.wait_event("start", job="slow", timeout=15)[0]
    wait_until(lambda: len(of_exec(start["exec"])) >= 5, timeout=5,
               what="the job's processes")
    fin = daemon.wait_event("finish", job="slow")[0]
    assert fin["status"] == "timed_out", fin
    m.none_left("after the timeout")


@needs_cgroup
@pytest.mark.parametrize("how", ["fast stop", "quit", "replace"])
def test_processes_left_are_killed_at_every_stop(daemon, how):
    m = Marker()
    when = {"every": "2s"} if how == "replace" else {"at": soon()}
    daemon.start(workers=2, extra='shutdown_timeout = "1s";', jobs=[
        job("long", **when, overlap="replace" if how == "replace" else "skip",
            max_retries=0, env=m.env, command=ESCAPES + " sleep 300")])
    start = daemon.wait_event("start", job="long", timeout=15)[0]
    wait_until(lambda: len(of_exec(start["exec"])) >= 5, timeout=5,
               what="the job's processes")
    if how == "fast stop":
        daemon.signal(signal.SIGTERM)
        daemon.wait_exit()
    elif how == "quit":
        daemon.signal(signal.SIGQUIT)
        daemon.wait_exit()
    else:
        fin = daemon.wait_event("finish", job="long", exec=start["exec"],
                                timeout=10)[0]
        assert fin["status"] == "killed", fin
        wait_until(lambda: not of_exec(start["exec"]), timeout=5,
                   what=lambda: "the replaced run's processes to end "
                   "(still: %s)" % of_exec(start["exec"]))
        return
    m.none_left(how)


@needs_cgroup
def test_master_kill_9_leaves_no_process_ten_times_over(hg):
    for round in range(10):
        m = Marker()
        d = hg("kill9-%d" % round)
        d.start(workers=2, jobs=[
            # one busy worker whose job escaped, one idle worker
            job("busy", at=soon(), max_retries=0, env=m.env,
                command=ESCAPES + " sleep 300"),
            job("leaky", at=soon(), max_retries=0, env=m.env,
                command="nohup sleep 300 >/dev/null 2>&1 & exit 0")])
        d.wait_event("finish", job="leaky", timeout=15)
        d.wait_event("start", job="busy", timeout=15)
        wait_until(lambda: len(m.pids()) >= 5, timeout=5,
                   what="the busy job's processes")
        os.kill(d.pid, signal.SIGKILL)
        d.wait_exit()
        m.none_left("round %d after kill -9 of the master" % (round + 1))


@needs_cgroup
def test_restarted_master_removes_what_a_dead_one_left(hg):
    # Master and workers killed with -9 together: nobody was left to clean
    # up. The next master removes the dead one's cgroup and kills what is
    # still in it.
    m = Marker()
    d = hg("first")
    d.start(workers=1, jobs=[
        job("busy", at=soon(), max_retries=0, env=m.env,
            command="(setsid sleep 300 &); sleep 300")])
    d.wait_event("start", job="busy", timeout=15)
    wait_until(lambda: len(m.pids()) >= 2, timeout=5, what="the job")
    stale = cgroup2_dir() / ("hourglass.%d" % d.pid)
    assert stale.is_dir()
    workers = d.workers()
    os.kill(d.pid, signal.SIGSTOP)      # no SIGCHLD handling meanwhile
    for w in workers:
        os.kill(w, signal.SIGKILL)
    os.kill(d.pid, signal.SIGKILL)
    d.wait_exit()
    wait_until(lambda: not any(alive(w) for w in workers), what="workers")
    assert m.pids(), "the job's processes should have outlived them"
    again = hg("second")
    again.start(workers=1, jobs=[job("tick", at=soon(), command="true")])
    m.none_left("after the restart")
    assert not stale.exists()
    assert any("stale cgroup" in (e.get("message") or "")
               for e in again.events())
    # and it says at start what contains its executions
    said = [e["message"] for e in again.events()
            if (e.get("message") or "").startswith("containment:")]
    assert said and "cgroup v2" in said[0] \
        and str(cgroup2_dir() / ("hourglass.%d" % again.pid)) in said[0] \
        and "limits: " in said[0], said


@needs_cgroup
def test_memory_limit_kill_is_recorded(daemon):
    daemon.start(workers=1, jobs=[
        job("hog", at=soon(), max_retries=0,
            limits={"memory": "32MiB"},
            command="python3 -c 'b = bytearray(512 << 20); print(len(b))'")])
    fin = daemon.wait_event("finish", job="hog", timeout=20)[0]
    assert fin["status"] == "failed", fin
    assert fin["error"] == "killed by its memory limit (32MiB)", fin


@needs_cgroup
def test_fork_bomb_under_tasks_limit_does_not_starve_the_master(daemon):
    m = Marker()
    daemon.start(workers=2, jobs=[
        job("bomb", at=soon(), timeout="4s", max_retries=0, env=m.env,
            limits={"tasks": 64, "cpu": 0.5},
            command=BOMB),
        job("tick", every="250ms", command="true")])
    start = daemon.wait_event("start", job="bomb", timeout=15)[0]
    # The bomb fills its tasks limit and stays there.
    wait_until(lambda: len(m.pids()) >= 60, timeout=5,
               what=lambda: "the bomb at its limit (%d)" % len(m.pids()))
    assert len(m.pids()) <= 64
    fin = daemon.wait_event("finish", job="bomb", timeout=15)[0]
    assert fin["status"] == "timed_out", fin
    m.none_left("after the bomb's timeout")
    # The other job kept its schedule throughout.
    ticks = [e for e in daemon.events("start", job="tick")
             if etime(start) <= etime(e) <= etime(fin)]
    assert len(ticks) >= 8, ticks


def test_stopped_busy_worker_is_replaced_and_its_execution_recorded(daemon):
    daemon.start(workers=2, jobs=[
        # no timeout: without the fix it would wait forever
        job("forever", at=soon(), timeout="0s", max_retries=0,
            command="sleep 300")])
    start = daemon.wait_event("start", job="forever", timeout=15)[0]
    os.kill(start["worker"], signal.SIGSTOP)
    fin = daemon.wait_event("finish", job="forever", timeout=10)[0]
    assert fin["status"] == "crashed", fin
    assert "stopped" in fin["error"], fin
    daemon.wait_workers(2, exclude=[start["worker"]])
    wait_until(lambda: not of_exec(start["exec"]), timeout=5,
               what="the execution's processes to end")


def test_stopped_idle_worker_is_replaced(daemon):
    daemon.start(workers=2, jobs=[])
    victim = daemon.workers()[0]
    os.kill(victim, signal.SIGSTOP)
    daemon.wait_event("worker_exit", worker=victim, reason="stopped")
    daemon.wait_workers(2, exclude=[victim])


# --- a host without cgroups ----------------------------------------------

def no_cgroup_daemon(d, **conf):
    """Starts D with /sys/fs/cgroup hidden (a private mount namespace with
    an empty tmpfs over it): the daemon sees a host without cgroups."""
    d.write(**conf)
    out = open(d.output, "ab")
    try:
        d.proc = subprocess.Popen(
            ["unshare", "-m", "sh", "-c",
             'mount -t tmpfs none /sys/fs/cgroup && exec "$0" "$@"',
             str(HOURGLASS), "-p", str(d.dir), "-c", str(d.conf)],
            stdin=subprocess.DEVNULL, stdout=out, stderr=out, env=d.env(),
            cwd=str(d.dir), start_new_session=True)
    finally:
        out.close()
    d.pid = d.proc.pid
    d.wait_for(lambda evs: any(e.get("event") == "start_master"
                               for e in evs), what="start_master")
    return d


needs_unshare = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("unshare") is None,
    reason="hiding the cgroup hierarchies needs root and unshare(1)")


@needs_unshare
def test_without_cgroups_workers_are_subreapers_and_kill_leftovers(daemon):
    m = Marker()
    no_cgroup_daemon(daemon, workers=1, jobs=[
        job("leaky", every="1s", max_retries=0, env=m.env,
            command=ESCAPES + " exit 0")])
    said = [e for e in daemon.events()
            if "containment" in (e.get("message") or "")]
    assert said and "subreaper" in said[0]["message"], said
    for i in range(3):
        fin = daemon.wait_event("finish", job="leaky", count=i + 1,
                                timeout=15)[i]
        assert fin.get("error") == "left 4 processes behind, killed", fin
        wait_until(lambda: not of_exec(fin["exec"]), timeout=5,
                   what=lambda: "nothing left (still: %s)"
                   % of_exec(fin["exec"]))


@needs_unshare
def test_without_cgroups_master_kill_9_leaves_no_process(daemon):
    m = Marker()
    no_cgroup_daemon(daemon, workers=1, jobs=[
        job("busy", at=soon(), max_retries=0, env=m.env,
            command=ESCAPES + " sleep 300")])
    daemon.wait_event("start", job="busy", timeout=15)
    wait_until(lambda: len(m.pids()) >= 5, timeout=5,
               what="the busy job's processes")
    os.kill(daemon.pid, signal.SIGKILL)
    daemon.wait_exit()
    m.none_left("after kill -9 of the master")


@needs_unshare
def test_limits_without_cgroups_are_a_warning_not_a_silent_ignore(daemon):
    jobs = [job("capped", every="1h", limits={"memory": "64MiB"},
                command="true")]
    daemon.write(jobs=jobs)
    r = subprocess.run(
        ["unshare", "-m", "sh", "-c",
         'mount -t tmpfs none /sys/fs/cgroup && exec "$0" "$@"',
         str(HOURGLASS), "-t", "-p", str(daemon.dir), "-c",
         str(daemon.conf)], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r
    assert re.search(r'scheduler\.conf:\d+: warning: job "capped": limits '
                     r'cannot be enforced on this host \(no writable memory',
                     r.stderr), r.stderr
    no_cgroup_daemon(daemon, jobs=jobs)
    assert any('job "capped": limits cannot be enforced' in
               (e.get("message") or "") for e in daemon.events()), \
        daemon.lines()


# --- the `limits` key ----------------------------------------------------

def test_limits_are_checked_with_their_line_and_dumped_merged(daemon):
    text = daemon.config(extra='defaults = { limits = { memory = "1GiB"; '
                         'cpu = 2; }; };', jobs=[
        job("a", every="1h", command="true", limits={"tasks": 10}),
        job("b", every="1h", command="true")])
    daemon.write(text)
    r = subprocess.run([str(HOURGLASS), "-T", "-p", str(daemon.dir), "-c",
                        str(daemon.conf)], capture_output=True, text=True,
                       timeout=30)
    assert r.returncode == 0, r
    # a job's limits add to those of `defaults`, key by key
    assert 'limits = { memory = "1GiB"; cpu = 2.0; tasks = 10; };' \
        in r.stdout, r.stdout
    assert 'limits = { memory = "1GiB"; cpu = 2.0; };' in r.stdout

    daemon.write(daemon.config(jobs=[
        job("bad", every="1h", command="true",
            limits={"memory": "5x", "cpu": 0, "tasks": -1, "swap": 1})]))
    r = subprocess.run([str(HOURGLASS), "-t", "-p", str(daemon.dir), "-c",
                        str(daemon.conf)], capture_output=True, text=True,
                       timeout=30)
    assert r.returncode == 1, r
    line = [i + 1 for i, l in enumerate(daemon.conf.read_text().split("\n"))
            if '"bad"' in l][0]
    where = "scheduler.conf:%d: job \"bad\": " % line
    for message in ['limits.memory: "5x" is not a size',
                    "limits.cpu: 0 is out of range 0.01-4096",
                    "limits.tasks: -1 is out of range 1-4194304"]:
        assert where + message in r.stderr, r.stderr
    assert 'unknown key "swap" in limits of job "bad"' in r.stderr
