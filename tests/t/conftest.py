"""
End-to-end fixtures: drive the built daemon (objs/hourglass) through real
processes, files and signals.

A test asks for the `hg` fixture, a factory of `Daemon`s: each one writes a
scheduler.conf into the test's own tmp dir (pid file, JSON log at debug
level, absolute module paths), starts the master as a subprocess and reads
back what it did from the log. Every process a daemon starts carries a
marker in its environment (HG_E2E_TAG, inherited by workers and by the
commands of shell jobs), so that teardown can find and report whatever the
test left behind, whichever process group or parent it ended up with.
A job's command gets a clean environment (no HG_E2E_TAG): it is found by
its HOURGLASS_EXECUTION_ID instead, one of the execution ids in this
daemon's log.

Process facts come from /proc (no psutil). Timing is generous: the CI
machine may be small and loaded; waits poll up to 10 s by default.

What the daemon sends out over HTTP (webhooks, OTLP exports, http jobs)
goes to a `receiver`: a python http.server on 127.0.0.1 in a thread of
the test, closed at the test's end.
"""

import glob
import http.server
import json
import math
import os
import re
import socket
import signal
import sqlite3
import subprocess
import threading
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
HOURGLASS = REPO / "objs" / "hourglass"
MODULES_DIR = REPO / "modules"
TEST_MODULES_DIR = REPO / "tests" / "modules"

SANITIZER_REPORT = re.compile(r"ERROR: (AddressSanitizer|LeakSanitizer)|"
                              r"runtime error: ")
EXEC_ID = re.compile(rb"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-"
                     rb"[0-9a-f]{12}")
JOB_EXEC_ID = re.compile(rb"(?:^|\0)HOURGLASS_EXECUTION_ID=([0-9a-f-]{36})\0")
WAIT = 10.0         # default patience of wait_for
POLL = 0.05


# --- helpers usable from the tests ---------------------------------------

def tmod(name):
    """Absolute path of a misbehaving test module (tests/modules/NAME.so)."""
    return str(TEST_MODULES_DIR / (name + ".so"))


def parse_time(text):
    """RFC 3339 (with Z or a numeric offset) -> epoch seconds (float)."""
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    return datetime.fromisoformat(text).timestamp()


def rfc3339(epoch):
    """Whole-second UTC time in RFC 3339, as `at` takes it."""
    return datetime.fromtimestamp(int(epoch), timezone.utc).strftime(
        "%Y-%m-%dT%H:%M:%S+00:00")


def at_ahead(seconds=2.0):
    """A whole second at least SECONDS from now (epoch, int)."""
    return int(math.ceil(time.time() + seconds))


def conf_value(v):
    """A Python value written in libconfig syntax."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return repr(v)
    if isinstance(v, str):
        out = ['"']
        for c in v:
            if c == '"':
                out.append('\\"')
            elif c == "\\":
                out.append("\\\\")
            elif c == "\n":
                out.append("\\n")
            elif c == "\t":
                out.append("\\t")
            elif ord(c) < 0x20:
                out.append("\\x%02x" % ord(c))
            else:
                out.append(c)
        out.append('"')
        return "".join(out)
    if isinstance(v, (list, tuple)):
        return "[ " + ", ".join(conf_value(x) for x in v) + " ]"
    if isinstance(v, dict):
        return "{ " + " ".join("%s = %s;" % (k, conf_value(x))
                               for k, x in v.items()) + " }"
    raise TypeError("no libconfig form for %r" % (v,))


def job(id, type="shell", **keys):
    """One job group, in libconfig syntax, on one line."""
    items = {"id": id, "type": type}
    items.update(keys)
    return "{ " + " ".join("%s = %s;" % (k, conf_value(v))
                           for k, v in items.items()) + " }"


def proc_stat(pid):
    """(state, ppid, pgrp) of PID from /proc/PID/stat, or None."""
    try:
        with open("/proc/%d/stat" % pid, "rb") as f:
            data = f.read().decode("latin-1")
    except OSError:
        return None
    rest = data[data.rfind(")") + 2:].split()
    return rest[0], int(rest[1]), int(rest[2])


def proc_cmdline(pid):
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            return f.read().rstrip(b"\0").split(b"\0")
    except OSError:
        return []


def proc_environ(pid):
    try:
        with open("/proc/%d/environ" % pid, "rb") as f:
            return f.read()
    except OSError:
        return b""


def all_pids():
    for name in os.listdir("/proc"):
        if name.isdigit():
            yield int(name)


def alive(pid):
    """True when PID exists and is not a zombie."""
    st = proc_stat(pid)
    return st is not None and st[0] not in ("Z", "X")


def wait_until(pred, timeout=WAIT, what="condition"):
    deadline = time.monotonic() + timeout
    while True:
        value = pred()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("timed out after %.1f s waiting for %s"
                                 % (timeout, what() if callable(what)
                                    else what))
        time.sleep(POLL)


def sanitized_build():
    """True when objs/hourglass was configured --with-sanitizers (the
    test modules are then built with UBSan too, which turns the crash
    module's null store into exit 1 instead of SIGSEGV)."""
    r = run_hourglass("-V")
    return "sanitizers" in r.stdout


def run_hourglass(*args, timeout=30, env=None):
    """Runs objs/hourglass ARGS to completion (a CompletedProcess)."""
    return subprocess.run([str(HOURGLASS)] + [str(a) for a in args],
                          capture_output=True, text=True, timeout=timeout,
                          env=env)


MEMORY_STORE = 'store = { driver = "memory"; };'


def sqlite_config(d, db=None, store_extra=None, **kw):
    """d.config(**kw) with the memory store replaced by SQLite at DB
    (default DIR/hg.db); STORE_EXTRA is a dict of more store keys."""
    db = db or d.dir / "hg.db"
    text = d.config(**kw)
    assert MEMORY_STORE in text
    keys = {"driver": "sqlite", "path": str(db)}
    keys.update(store_extra or {})
    return text.replace(MEMORY_STORE, "store = %s;" % conf_value(keys))


def db_rows(db, where="1", args=(), order="started_at, attempt, id"):
    """Rows of the store's `executions` table as dicts, in ORDER."""
    con = sqlite3.connect(str(db), timeout=10)
    con.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in con.execute(
            "SELECT * FROM executions WHERE %s ORDER BY %s" % (where, order),
            args)]
    finally:
        con.close()


FINAL = ("succeeded", "failed", "timed_out", "crashed", "killed", "skipped",
         "missed", "dead")


def wait_rows(db, pred, timeout=15, what="rows in the store",
              describe=lambda rows: rows, **kw):
    """Polls the executions table (db_rows(db, **kw)) until PRED(rows) is
    true; returns the rows. On timeout the error shows describe(rows).
    Read the store this way after what the daemon says (a log line, an
    event, an exit code of its job): a record no start waits for (a
    final one, a fire recorded queued) reaches the file a little after
    (the writer holds such records up to 20 ms, to write them by the
    hundred); after a stop, everything is there."""
    last = []

    def probe():
        last[:] = db_rows(db, **kw)
        return last if pred(last) else None
    try:
        return wait_until(probe, timeout=timeout, what=what)
    except AssertionError as e:
        raise AssertionError("%s; rows: %s" % (e, describe(last)))


# --- an HTTP receiver ------------------------------------------------------

class Receiver:
    """An HTTP endpoint on 127.0.0.1, served by a thread of the test: a
    notification channel's webhook, the OTLP collector, an http job's
    target. Answers any method: 500 to the first FAIL_FIRST requests, 200
    with no body to the rest, and keeps each request it accepted (method,
    path, headers, body bytes as `data`). `attempts` counts every request,
    refused or not; a test may change `fail_first` while it runs, under
    `lock` (which guards the three)."""

    def __init__(self, fail_first=0):
        self.requests = []
        self.attempts = 0
        self.fail_first = fail_first
        self.lock = threading.Lock()
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def answer(self):
                n = int(self.headers.get("Content-Length", "0"))
                data = self.rfile.read(n) if n > 0 else b""
                with outer.lock:
                    outer.attempts += 1
                    fail = outer.attempts <= outer.fail_first
                    if not fail:
                        outer.requests.append({
                            "method": self.command, "path": self.path,
                            "headers": self.headers, "data": data})
                self.send_response(500 if fail else 200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = answer

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0),
                                                      Handler)
        self.port = self.server.server_port
        self.thread = threading.Thread(target=self.server.serve_forever,
                                       daemon=True)
        self.thread.start()

    def url(self, path=""):
        """http://127.0.0.1:PORT followed by PATH."""
        return "http://127.0.0.1:%d%s" % (self.port, path)

    def accepted(self):
        """The requests accepted so far (dicts, see above), in order."""
        with self.lock:
            return list(self.requests)

    def received(self):
        """The JSON bodies of the requests accepted so far."""
        return [json.loads(r["data"]) for r in self.accepted()]

    def header(self, name):
        """The value of header NAME (None when absent) in each request
        accepted so far."""
        return [r["headers"].get(name) for r in self.accepted()]

    def wait(self, n, what="requests"):
        """Waits (15 s) until N JSON bodies have come; returns them all."""
        return wait_until(lambda: self.received()
                          if len(self.received()) >= n else None,
                          timeout=15, what="%d %s" % (n, what))

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "serial: changes what every test shares (the system "
        "clock, the cgroup tree, objs/hourglass): tests/t/run.sh runs it "
        "alone, before the others")


@pytest.fixture
def receiver():
    """Factory of Receivers: receiver(fail_first=N) starts one; every one
    is closed when the test ends (before its daemons stop, when the test
    asked for them first)."""
    made = []

    def make(**kw):
        r = Receiver(**kw)
        made.append(r)
        return r

    yield make
    for r in made:
        r.close()


# --- the daemon -----------------------------------------------------------

class Daemon:
    """One hourglass master under test, in its own directory."""

    def __init__(self, tmp_path, name="hg"):
        self.dir = tmp_path / name
        self.dir.mkdir(parents=True, exist_ok=True)
        self.conf = self.dir / "scheduler.conf"
        self.pidfile = self.dir / "hourglass.pid"
        self.log = self.dir / "hourglass.log"
        self.output = self.dir / "master.out"
        self.tag = "hg-e2e-" + uuid.uuid4().hex
        self.proc = None
        self.pid = None
        self.seen_workers = set()
        self.returncode = None
        self.extra_env = {}             # added to the master's environment

    # configuration

    def config(self, jobs=(), workers=2, load=("shell",), test_modules=(),
               log_format="json", log_level="debug", extra=""):
        """scheduler.conf text. JOBS are strings (see job()); LOAD names
        bundled modules, TEST_MODULES tests/modules/NAME.so by path."""
        names = list(load) + [tmod(m) for m in test_modules]
        return "\n".join([
            "pid = %s;" % conf_value(str(self.pidfile)),
            "workers = %d;" % workers,
            'timezone = "UTC";',
            "log = { file = %s; format = %s; level = %s; };"
            % (conf_value(str(self.log)), conf_value(log_format),
               conf_value(log_level)),
            "modules = { path = %s; load = %s; };"
            % (conf_value(str(MODULES_DIR)), conf_value(names)),
            'store = { driver = "memory"; };',
            extra,
            "jobs = (",
            ",\n".join("    " + j for j in jobs),
            ");",
            "",
        ])

    def write(self, text=None, **kw):
        """Writes TEXT (or config(**kw)) as the configuration file."""
        if text is None:
            text = self.config(**kw)
        tmp = self.conf.with_suffix(".tmp")
        tmp.write_text(text)
        os.replace(tmp, self.conf)
        return text

    rewrite = write

    def env(self):
        env = dict(os.environ)
        env["HG_E2E_TAG"] = self.tag
        # Under --with-sanitizers, let a SIGSEGV (the crash module's) kill
        # the worker as it would without them.
        env["ASAN_OPTIONS"] = ":".join(
            x for x in (env.get("ASAN_OPTIONS"), "handle_segv=0") if x)
        env.pop("HOURGLASS_TOKEN", None)
        env.update(self.extra_env)
        return env

    # life

    def start(self, text=None, wait_ready=True, **kw):
        if text is not None or kw or not self.conf.exists():
            self.write(text, **kw)
        out = open(self.output, "ab")
        try:
            self.proc = subprocess.Popen(
                [str(HOURGLASS), "-p", str(self.dir), "-c", str(self.conf)],
                stdin=subprocess.DEVNULL, stdout=out, stderr=out,
                env=self.env(), cwd=str(self.dir), start_new_session=True)
        finally:
            out.close()
        self.pid = self.proc.pid
        if wait_ready:
            self.wait_for(lambda evs: any(e.get("event") == "start_master"
                                          for e in evs),
                          what="the start_master log line")
            want = self.configured_workers()
            if want is not None:
                self.wait_workers(want)
            self.wait_api()
        return self

    def wait_api(self):
        """With an api section, waits until its port takes connections:
        the master opens it after start_master and its workers."""
        m = re.search(r'\bapi\s*=\s*\{[^}]*?listen\s*=\s*"([^"]+):(\d+)"',
                      self.conf.read_text(), re.S)
        if m is None:
            return

        def accepts():
            if self.proc is not None and self.proc.poll() is not None:
                return True             # exited: the caller sees why
            try:
                socket.create_connection((m.group(1).strip("[]"),
                                          int(m.group(2))), timeout=1).close()
                return True
            except OSError:
                return False
        wait_until(accepts, timeout=WAIT, what="the API's port")

    def configured_workers(self):
        m = re.search(r"^workers\s*=\s*(\d+)\s*;", self.conf.read_text(),
                      re.M)
        return int(m.group(1)) if m else None

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def wait_exit(self, timeout=WAIT):
        try:
            self.returncode = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError("the master (pid %d) did not exit within "
                                 "%.1f s" % (self.pid, timeout))
        return self.returncode

    def master_output(self):
        try:
            return self.output.read_text(errors="replace")
        except OSError:
            return ""

    # log

    def lines(self, path=None):
        """Complete lines of the log (a partial last line is left out)."""
        try:
            data = Path(path or self.log).read_text(errors="replace")
        except FileNotFoundError:
            return []
        lines = data.split("\n")
        return lines[:-1]

    def events(self, event=None, path=None, **match):
        """Log lines as dicts (JSON format), optionally only those of one
        EVENT whose fields equal MATCH."""
        out = []
        for line in self.lines(path):
            if not line.strip():
                continue
            e = json.loads(line)
            if event is not None and e.get("event") != event:
                continue
            if any(e.get(k) != v for k, v in match.items()):
                continue
            out.append(e)
        return out

    def fail_if_exited(self, what):
        """Raises, with its output and log tail, when the master has exited
        while a test waits for WHAT."""
        if self.proc is not None and self.proc.poll() is not None:
            raise AssertionError(
                "the master exited (status %s) while waiting for %s;\n"
                "its output:\n%s\nlog tail:\n%s"
                % (self.proc.returncode, what, self.master_output(),
                   "\n".join(self.lines()[-20:])))

    def wait_for(self, pred, timeout=WAIT, what="a log condition"):
        """Polls the log until PRED(events) is truthy; returns its value.
        Gives up at once if the master exits meanwhile."""
        deadline = time.monotonic() + timeout
        while True:
            value = pred(self.events())
            if value:
                return value
            self.fail_if_exited(what)
            if time.monotonic() > deadline:
                raise AssertionError(
                    "timed out after %.1f s waiting for %s; log tail:\n%s"
                    % (timeout, what, "\n".join(self.lines()[-30:])))
            time.sleep(POLL)

    def wait_event(self, event, count=1, timeout=WAIT, after=None, **match):
        """Waits for COUNT events of a kind (fields equal to MATCH, log time
        after AFTER if given); returns them all."""
        def pred(evs):
            found = [e for e in evs if e.get("event") == event
                     and all(e.get(k) == v for k, v in match.items())
                     and (after is None or etime(e) > after)]
            return found if len(found) >= count else None
        desc = "%d %s event(s)%s" % (count, event,
                                     " with %r" % match if match else "")
        return self.wait_for(pred, timeout=timeout, what=desc)

    # signals and control

    def signal(self, sig):
        os.kill(self.pid, sig)

    def ctl(self, cmd, timeout=30):
        return run_hourglass("-p", self.dir, "-c", self.conf, "-s", cmd,
                             timeout=timeout)

    # processes

    def workers(self):
        """Live children of the master (its workers), from /proc."""
        if self.pid is None:
            return []
        pids = []
        for pid in all_pids():
            st = proc_stat(pid)
            if st is not None and st[1] == self.pid and st[0] not in "ZX":
                pids.append(pid)
        self.seen_workers.update(pids)
        return sorted(pids)

    def wait_workers(self, n, timeout=WAIT, exclude=()):
        """Waits until the master has exactly N live workers (none of them
        in EXCLUDE); returns their pids."""
        def pred():
            self.fail_if_exited("%d workers" % n)
            w = self.workers()
            return w if len(w) == n and not set(w) & set(exclude) else None
        return wait_until(pred, timeout, lambda: "%d workers, none of %s "
                          "(have %s); the master's state %s, kernel stack:"
                          "\n%s\nlog tail:\n%s"
                          % (n, list(exclude), self.workers(),
                             self.master_state(), self.master_stack(),
                             "\n".join(self.lines()[-30:])))

    def master_state(self):
        st = proc_stat(self.pid) if self.pid is not None else None
        return st[0] if st is not None else "gone"

    def master_stack(self):
        """Where the master is, for a report: the kernel's stack of each of
        its threads (root only) and what they wait in."""
        out = []
        for task in sorted(glob.glob("/proc/%s/task/*" % self.pid)):
            for name in ("comm", "wchan", "stack"):
                try:
                    with open(os.path.join(task, name)) as f:
                        out.append("%s %s: %s" % (os.path.basename(task),
                                                  name, f.read().strip()))
                except OSError:
                    pass
        return "\n".join(out)

    def execution_ids(self):
        """Ids of the executions this daemon's log names (text or JSON)."""
        try:
            data = self.log.read_bytes()
        except OSError:
            return set()
        return set(EXEC_ID.findall(data))

    def tagged(self):
        """Live processes started by this daemon: the master and workers,
        found by the marker in their environment, and job commands, found
        by the id of one of this daemon's executions in theirs."""
        needle = ("HG_E2E_TAG=" + self.tag).encode() + b"\0"
        ids = None
        found = []
        for pid in all_pids():
            if pid == os.getpid():
                continue
            env = proc_environ(pid)
            if needle in env:
                if alive(pid):
                    found.append(pid)
                continue
            m = JOB_EXEC_ID.search(env)
            if m is None:
                continue
            if ids is None:
                ids = self.execution_ids()
            if m.group(1) in ids and alive(pid):
                found.append(pid)
        return found

    def find_commands(self, argv_prefix):
        """Live processes of this daemon whose argv starts with
        ARGV_PREFIX (a list of str)."""
        want = [a.encode() for a in argv_prefix]
        return [pid for pid in self.tagged()
                if proc_cmdline(pid)[:len(want)] == want]

    def stray(self):
        """Processes left behind: anything carrying the tag, anything in
        the process group of a worker or of the master."""
        groups = set(self.seen_workers)
        if self.pid is not None:
            groups.add(self.pid)
        out = set(self.tagged())
        for pid in all_pids():
            st = proc_stat(pid)
            if st is not None and st[2] in groups and st[0] not in "ZX" \
                    and pid != os.getpid():
                out.add(pid)
        return sorted(out)

    def stop(self):
        """Fast stop (SIGTERM; SIGKILL after 5 s) if the master runs."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.workers()
        try:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=5)

    def teardown(self):
        """Stops the master whatever state it is in, then reports what it
        left behind (and kills that too)."""
        if self.proc is None:
            return []
        self.stop()
        left = []
        deadline = time.monotonic() + 5
        while True:
            left = self.stray()
            if not left or time.monotonic() > deadline:
                break
            time.sleep(POLL)
        described = ["%d %s" % (p, b" ".join(proc_cmdline(p)).decode(
            errors="replace")) for p in left]
        for pid in left:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        # A master killed with -9 leaves its cgroups: the test's, so its
        # teardown's (the next daemon on the machine would log each).
        remove_stale_cgroups(self.pid)
        return described


def own_cgroup_dirs():
    """The directories of this process's cgroups, one per hierarchy (v2
    and each v1 one): where a master started from here makes its
    hourglass.<pid> groups."""
    mounts = []                         # (mount point, fs type, options)
    with open("/proc/mounts") as f:
        for line in f:
            parts = line.split()
            if len(parts) >= 4 and parts[2] in ("cgroup", "cgroup2"):
                mounts.append((parts[1], parts[2], parts[3].split(",")))
    dirs = []
    with open("/proc/self/cgroup") as f:
        for line in f:
            hid, controllers, path = line.rstrip("\n").split(":", 2)
            for point, fstype, options in mounts:
                if (hid == "0" and fstype == "cgroup2") or (
                        fstype == "cgroup" and controllers and all(
                            c in options for c in controllers.split(","))):
                    dirs.append(point + path.rstrip("/"))
                    break
    return dirs


def remove_stale_cgroups(pid):
    """Removes the hourglass.PID groups of a master that died without
    removing them (kill -9), killing what is left in them: what the next
    master on the machine would do, saying so in its log."""
    for parent in own_cgroup_dirs():
        top = os.path.join(parent, "hourglass.%d" % pid)
        if not os.path.isdir(top):
            continue
        for _ in range(50):
            for root, _dirs, _files in os.walk(top, topdown=False):
                try:
                    with open(os.path.join(root, "cgroup.procs")) as f:
                        for p in f.read().split():
                            os.kill(int(p), signal.SIGKILL)
                except OSError:
                    pass
                try:
                    os.rmdir(root)
                except OSError:
                    pass
            if not os.path.isdir(top):
                break
            time.sleep(POLL)


def etime(e):
    """The log time of an event (epoch seconds)."""
    return parse_time(e["time"])


def sched(e):
    """The scheduled_for of an event (epoch seconds)."""
    return parse_time(e["scheduled_for"])


@pytest.fixture
def hg(tmp_path):
    """Factory of daemons: hg() gives a new Daemon (not yet started).
    Teardown stops every one and fails the test if any process remains."""
    if not HOURGLASS.exists():
        pytest.fail("%s is missing: run ./configure && make" % HOURGLASS)
    daemons = []

    def make(name=None):
        d = Daemon(tmp_path, name or "hg%d" % len(daemons))
        daemons.append(d)
        return d

    yield make
    problems = []
    for d in daemons:
        left = d.teardown()
        if left:
            problems.append("daemon %s left processes behind: %s"
                            % (d.dir.name, "; ".join(left)))
        # A build with --with-sanitizers reports on the master's (and the
        # workers') standard error; the test modules' faults are meant.
        reports = [l for l in d.master_output().splitlines()
                   if SANITIZER_REPORT.search(l)
                   and "tests/modules/" not in l]
        if reports:
            problems.append("daemon %s: sanitizer reports in %s:\n%s"
                            % (d.dir.name, d.output, "\n".join(reports)))
    if problems:
        pytest.fail("\n".join(problems))


@pytest.fixture
def daemon(hg):
    """The common case: one daemon."""
    return hg("hg")
