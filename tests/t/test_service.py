"""
hourglass as a service: systemd's notify protocol (Type=notify), spoken to a
NOTIFY_SOCKET each test binds itself (systemd is not PID 1 here), the
install tree `make install` writes, the man pages and the Debian package.
"""

import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time

import pytest

from conftest import REPO, job, wait_until

WAIT = 15.0


def need(tool, package):
    """TOOL on the PATH, else the test is skipped, or failed on CI
    (.ci/run installs PACKAGE)."""
    if shutil.which(tool) is None:
        why = "%s is missing (apt-get install %s)" % (tool, package)
        if os.environ.get("CI"):
            pytest.fail(why)
        pytest.skip(why)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Manager:
    """The service manager's end of NOTIFY_SOCKET: a Unix datagram socket
    in a short temporary directory (sun_path holds 108 bytes)."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="hg-notify-")
        self.path = os.path.join(self.dir, "notify")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        self.sock.setblocking(False)
        self.messages = []          # each a dict of its KEY=VALUE lines

    def read(self):
        while True:
            try:
                data = self.sock.recv(4096)
            except BlockingIOError:
                return self.messages
            self.messages.append(dict(line.split("=", 1) for line in
                                      data.decode().splitlines() if line))

    def wait(self, pred, after=0, what="a notification"):
        """The first message from index AFTER on for which PRED holds
        (its index and itself)."""
        def found():
            for i, msg in enumerate(self.read()[after:], after):
                if pred(msg):
                    return (i, msg)
            return None
        return wait_until(found, timeout=WAIT,
                          what=lambda: "%s in %r" % (what, self.messages))

    def close(self):
        self.sock.close()
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def manager(monkeypatch):
    m = Manager()
    monkeypatch.setenv("NOTIFY_SOCKET", m.path)
    monkeypatch.delenv("WATCHDOG_USEC", raising=False)
    monkeypatch.delenv("WATCHDOG_PID", raising=False)
    yield m
    m.close()


def api_extra(port):
    return 'api = { listen = "127.0.0.1:%d"; };' % port


def two_jobs():
    return [job("a", every="1h", command="true"),
            job("b", every="1h", command="true")]


def test_notify_ready_reload_stop(hg, manager):
    """READY=1 once the API listens, RELOADING=1 (with MONOTONIC_USEC)
    then READY=1 around a reload, good or bad, STOPPING=1 at stop."""
    port = free_port()
    d = hg()
    d.start(jobs=two_jobs(), extra=api_extra(port), wait_ready=False)
    i, ready = manager.wait(lambda m: m.get("READY") == "1", what="READY=1")
    # Ready means the API listens: a connection is taken at once.
    with socket.create_connection(("127.0.0.1", port), timeout=5):
        pass
    assert ready.get("STATUS") == "running 2 jobs"
    assert not any("RELOADING" in m or "STOPPING" in m
                   for m in manager.messages)

    d.write(jobs=two_jobs() + [job("c", every="1h", command="true")],
            extra=api_extra(port))
    before = time.clock_gettime(time.CLOCK_MONOTONIC) * 1e6
    assert d.ctl("reload").returncode == 0
    i, reloading = manager.wait(lambda m: m.get("RELOADING") == "1",
                                after=i + 1, what="RELOADING=1")
    after = time.clock_gettime(time.CLOCK_MONOTONIC) * 1e6
    assert before <= int(reloading["MONOTONIC_USEC"]) <= after
    i, ready = manager.wait(lambda m: m.get("READY") == "1", after=i + 1,
                            what="READY=1 after the reload")
    assert ready.get("STATUS") == "running 3 jobs"

    # A reload refused: ready again, the status says why and where.
    d.write(text=d.conf.read_text().replace('every = "1h"',
                                            'every = "1x"', 1))
    d.signal(signal.SIGHUP)         # -s reload checks the file first
    i, _ = manager.wait(lambda m: m.get("RELOADING") == "1", after=i + 1,
                        what="RELOADING=1 (bad file)")
    i, ready = manager.wait(lambda m: m.get("READY") == "1", after=i + 1,
                            what="READY=1 after the failed reload")
    assert re.match(r"reload failed: .*scheduler\.conf:\d+: .*every",
                    ready.get("STATUS", "")), ready

    d.signal(signal.SIGTERM)
    manager.wait(lambda m: m.get("STOPPING") == "1", after=i + 1,
                 what="STOPPING=1")
    assert d.proc.wait(timeout=WAIT) == 0


def test_no_ready_when_the_api_cannot_listen(hg, manager):
    """A start that fails after the first cycle (the API's port is taken)
    exits 1 and never says READY=1."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        d = hg()
        d.start(jobs=two_jobs(), extra=api_extra(taken.getsockname()[1]),
                wait_ready=False)
        assert d.proc.wait(timeout=WAIT) == 1
    assert not any("READY" in m for m in manager.read()), manager.messages


def test_notify_stopping_on_graceful_quit(hg, manager):
    d = hg()
    d.start(jobs=two_jobs(), wait_ready=False)
    manager.wait(lambda m: m.get("READY") == "1", what="READY=1")
    assert d.ctl("quit").returncode == 0
    manager.wait(lambda m: m.get("STOPPING") == "1", what="STOPPING=1")
    assert d.proc.wait(timeout=WAIT) == 0


def test_watchdog_pings_from_the_loop(hg, manager, monkeypatch):
    """With WATCHDOG_USEC set, WATCHDOG=1 comes again and again (every
    half period, from a timer on the master's loop)."""
    monkeypatch.setenv("WATCHDOG_USEC", "200000")
    d = hg()
    d.start(jobs=two_jobs(), wait_ready=False)
    i, _ = manager.wait(lambda m: m.get("READY") == "1", what="READY=1")
    for _ in range(3):
        i, _ = manager.wait(lambda m: m.get("WATCHDOG") == "1", after=i + 1,
                            what="WATCHDOG=1")


def test_no_watchdog_unless_asked(hg, manager):
    d = hg()
    d.start(jobs=two_jobs(), wait_ready=False)
    manager.wait(lambda m: m.get("READY") == "1", what="READY=1")
    d.wait_event("start_master")
    time.sleep(0.5)
    assert not any("WATCHDOG" in m for m in manager.read())


# --- make install ----------------------------------------------------------

def make(*args, timeout=600):
    return subprocess.run(["make", "-s"] + list(args), cwd=str(REPO),
                          capture_output=True, text=True, timeout=timeout)


def readme_module():
    """The README's example module: (its source, the command its first
    line gives to build it)."""
    readme = (REPO / "README.md").read_text()
    code = re.search(r"^## Writing a module$.*?^```c\n(.*?)^```", readme,
                     re.S | re.M).group(1)
    cmd = re.match(r"/\* hello\.c: (.*) \*/\n", code).group(1)
    return code, cmd


@pytest.mark.serial                     # rebuilds objs/hourglass
def test_make_install_compiles_the_prefix_in(tmp_path):
    """make install PREFIX=X DESTDIR=D: the tree under D/X, and a binary
    that, once the tree is at X, finds its configuration and modules
    without -p; the installed hourglass.pc builds the README's module."""
    prefix = tmp_path / "prefix"
    dest = tmp_path / "dest"
    try:
        r = make("install", "PREFIX=%s" % prefix, "DESTDIR=%s" % dest)
        assert r.returncode == 0, r.stdout + r.stderr
    finally:
        # objs/hourglass back to the configured prefix, for the other tests
        assert make("all").returncode == 0
    tree = dest / prefix.relative_to("/")
    for f in ("sbin/hourglass", "modules/shell.so", "modules/system.so",
              "conf/scheduler.conf", "html/index.html",
              "include/hourglass/module.h", "lib/pkgconfig/hourglass.pc",
              "share/man/man8/hourglass.8", "share/man/man5/scheduler.conf.5",
              "lib/systemd/system/hourglass.service",
              "etc/logrotate.d/hourglass",
              "share/doc/hourglass/examples/scheduler.conf"):
        assert (tree / f).is_file(), f
    assert not prefix.exists()      # DESTDIR: nothing went to PREFIX itself
    unit = (tree / "lib/systemd/system/hourglass.service").read_text()
    assert "ExecStart=%s/sbin/hourglass -c %s/conf/scheduler.conf\n" % (
        prefix, prefix) in unit
    assert "@" not in unit
    assert "ReadWritePaths=-%s/var\n" % prefix in unit
    assert "@" not in (tree / "etc/logrotate.d/hourglass").read_text()

    prefix.symlink_to(tree)         # the tree where it was built to be
    hourglass = str(prefix / "sbin" / "hourglass")
    if shutil.which("systemd-analyze") is not None:
        # its man pages are those of Documentation=
        r = subprocess.run(["systemd-analyze", "verify", str(
            prefix / "lib/systemd/system/hourglass.service")],
            env=dict(os.environ, MANPATH=str(prefix / "share" / "man")),
            capture_output=True, text=True, timeout=60)
        assert r.returncode == 0 and r.stderr == "", r.stderr
    r = subprocess.run([hourglass, "-t"], cwd="/", capture_output=True,
                       text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    assert ("configuration file %s/conf/scheduler.conf test is successful"
            % prefix) in r.stdout + r.stderr
    r = subprocess.run([hourglass, "-V"], capture_output=True, text=True,
                       timeout=30)
    assert "prefix: %s\n" % prefix in r.stdout

    # The README's example module, built exactly as its first line says
    # against the installed hourglass.pc, then loaded by the installed
    # binary.
    code, cmd = readme_module()
    mod = tmp_path / "mod"
    mod.mkdir()
    (mod / "hello.c").write_text(code)
    env = dict(os.environ, PKG_CONFIG_PATH=str(prefix / "lib" / "pkgconfig"))
    r = subprocess.run(cmd, shell=True, cwd=str(mod), env=env,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    conf = tmp_path / "hello.conf"
    conf.write_text('pid = "%s/hg.pid";\n'
                    'modules = { load = [ "shell", "%s/hello.so" ]; };\n'
                    'store = { driver = "memory"; };\n'
                    'jobs = ( %s );\n'
                    % (tmp_path, mod, job("hi", type="hello", every="1h",
                                          greeting="hi")))
    r = subprocess.run([hourglass, "-t", "-c", str(conf)], cwd="/",
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr


def test_logrotate_file_has_the_daemon_reopen_its_log(hg, tmp_path):
    """dist/hourglass.logrotate.in, pointed at a running daemon's log: after
    a forced rotation the daemon writes to the new file (postrotate:
    hourglass -s reopen), not to the one moved away."""
    need("logrotate", "logrotate")
    d = hg()
    d.start(jobs=[job("tick", every="200ms", command="true")])
    d.wait_event("finish")
    conf = tmp_path / "logrotate.conf"
    conf.write_text((REPO / "dist" / "hourglass.logrotate.in").read_text()
                    .replace("@LOGDIR@", str(d.dir))
                    .replace("@SBINDIR@", str(REPO / "objs"))
                    .replace("@CONFFILE@", str(d.conf)))
    r = subprocess.run(["logrotate", "-f", "-s", str(tmp_path / "state"),
                        str(conf)], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0, r.stderr
    assert (d.dir / "hourglass.log.1").exists()
    # the new file gets the master's line and then a worker's execution
    d.wait_for(lambda evs: any("log file reopened" in e.get("message", "")
                               for e in evs),
               what="the master's reopen line in the new file")
    d.wait_event("finish")


# --- man pages ---------------------------------------------------------------

def man_entries(path):
    """{key: [text of each `.TP` / `.B key` entry, or section opened by
    `.B key = ...`]} of a man page, with
    the roff escapes that matter here undone."""
    entries = {}
    lines = path.read_text().splitlines()
    for i, line in enumerate(lines[:-1]):
        # a group is a section's opening line, `.B name = { ... };`
        m = re.match(r"\.BR? (\w+)", lines[i + 1])
        if line != ".TP" or m is None:
            m = re.match(r"\.B (\w+) = ", line)
            if m is None or not lines[i - 1].startswith(".SH"):
                continue
        body = []
        for more in lines[i + 2:]:
            if re.match(r"\.(TP|SH|SS|RS|RE)\b", more):
                break
            body.append(more)
        text = re.sub(r"\\f[BIRP]", "", " ".join(body))
        text = text.replace("\\-", "-").replace("\\(dq", '"')
        entries.setdefault(m.group(1), []).append(text)
    return entries


def conf_table_keys():
    """(name, default or None) of every key of the key table."""
    src = (REPO / "core" / "hg_conf.c").read_text()
    keys = []
    for block in re.findall(r"^static const hg_conf_key_t \w+\[\] = \{\n"
                            r"(.*?)^\};", src, re.S | re.M):
        for entry in block.split("{ .name = ")[1:]:
            name = re.match(r'"(\w+)"', entry).group(1)
            dflt = re.search(r'\.dflt = "([^"]*)"', entry)
            keys.append((name, dflt.group(1) if dflt else None))
    return keys


def module_keys():
    keys = []
    for src in (REPO / "modules").glob("*/*.c"):
        for block in re.findall(r"static const char \*const hg_\w+_keys\[\]"
                                r" = \{(.*?)\};", src.read_text(), re.S):
            keys += re.findall(r'"(\w+)"', block)
    return keys


def test_scheduler_conf_5_has_every_key_with_its_default():
    entries = man_entries(REPO / "man" / "scheduler.conf.5")
    table = conf_table_keys()
    assert len(table) > 40 and ("shutdown_timeout", "30s") in table
    mods = module_keys()
    assert {"command", "url", "task"} <= set(mods)
    missing = sorted({k for k, _ in table} | set(mods))
    missing = [k for k in missing if k not in entries]
    assert not missing, "keys without an entry in scheduler.conf(5)"
    wrong = []
    for name, dflt in table:
        if not dflt:
            continue
        said = [re.search(r"Default: (.*?)\.( |$)", t) for t in entries[name]]
        if not any(s and all(w in s.group(1) for w in dflt.split())
                   for s in said):
            wrong.append("%s (default %s)" % (name, dflt))
    assert not wrong, "defaults missing or wrong in scheduler.conf(5)"


@pytest.mark.parametrize("page", ["hourglass.8", "scheduler.conf.5"])
def test_man_page_renders_without_warnings(page):
    path = str(REPO / "man" / page)
    need("groff", "groff")
    r = subprocess.run(["groff", "-ww", "-z", "-man", path],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and r.stderr == "", r.stderr
    if shutil.which("mandoc") is not None:
        r = subprocess.run(["mandoc", "-T", "lint", "-W", "warning", path],
                           capture_output=True, text=True, timeout=60)
        assert r.stdout + r.stderr == "", r.stdout + r.stderr


# --- the Debian package -------------------------------------------------------

def source_copy(dest):
    """The tree as it is (tracked and new files, not the ignored build
    products) copied to DEST: the package is built there, never in the
    tree the other tests use."""
    r = subprocess.run(["git", "ls-files", "-z", "-co", "--exclude-standard"],
                       cwd=str(REPO), capture_output=True, timeout=60)
    if r.returncode != 0:
        pytest.skip("not a git checkout: cannot list the source files")
    for name in r.stdout.decode().split("\0"):
        if name and (REPO / name).is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(str(REPO / name), str(dest / name))


@pytest.mark.serial                     # builds with every CPU
def test_debian_package(tmp_path):
    """dpkg-buildpackage -b builds hourglass and hourglass-dev, lintian has
    nothing to say, and the packages hold what they promise: extracted
    into a scratch root, the binary tests the packaged configuration and
    the README's module builds from the packaged hourglass.pc."""
    need("dpkg-buildpackage", "dpkg-dev")
    need("dh", "debhelper")
    need("lintian", "lintian")
    src = tmp_path / "hourglass"
    source_copy(src)
    env = dict(os.environ, DEB_BUILD_OPTIONS="parallel=%d" % os.cpu_count())
    r = subprocess.run(["dpkg-buildpackage", "-us", "-uc", "-b"],
                       cwd=str(src), env=env, capture_output=True,
                       text=True, timeout=900)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    changes = next(tmp_path.glob("hourglass_*.changes"))
    r = subprocess.run(["lintian", "--display-info", str(changes)],
                       capture_output=True, text=True, timeout=300)
    said = [l for l in (r.stdout + r.stderr).splitlines()
            if not l.startswith("running with root privileges")]
    assert r.returncode == 0 and not said, "\n".join(said)

    root = tmp_path / "root"
    for deb in ("hourglass_*.deb", "hourglass-dev_*.deb"):
        subprocess.run(["dpkg", "-x", str(next(tmp_path.glob(deb))),
                        str(root)], check=True, timeout=60)
    for f in ("usr/sbin/hourglass", "usr/lib/hourglass/modules/shell.so",
              "usr/lib/hourglass/modules/system.so",
              "usr/share/hourglass/html/index.html",
              "etc/hourglass/scheduler.conf", "etc/logrotate.d/hourglass",
              "lib/systemd/system/hourglass.service",
              "usr/share/man/man8/hourglass.8.gz",
              "usr/share/man/man5/scheduler.conf.5.gz",
              "usr/share/doc/hourglass/examples/backup.conf",
              "usr/include/hourglass/module.h",
              "usr/share/pkgconfig/hourglass.pc"):
        assert (root / f).is_file(), f
    # The prefix compiled in, and what the binary finds there.
    assert os.readlink(str(root / "usr/lib/hourglass/conf")) == \
        "/etc/hourglass"
    hourglass = str(root / "usr/sbin/hourglass")
    r = subprocess.run([hourglass, "-V"], capture_output=True, text=True,
                       timeout=30)
    assert "prefix: /usr/lib/hourglass\n" in r.stdout
    r = subprocess.run([hourglass, "-t", "-p",
                        str(root / "usr/lib/hourglass"), "-c",
                        str(root / "etc/hourglass/scheduler.conf")],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    unit = (root / "lib/systemd/system/hourglass.service").read_text()
    assert "ExecStart=/usr/sbin/hourglass -c /etc/hourglass/scheduler.conf" \
        in unit
    # conffiles, and the unit enabled by the maintainer scripts
    control = tmp_path / "control"
    subprocess.run(["dpkg-deb", "-e", str(next(tmp_path.glob(
        "hourglass_*.deb"))), str(control)], check=True, timeout=60)
    conffiles = (control / "conffiles").read_text().split()
    assert {"/etc/hourglass/scheduler.conf",
            "/etc/logrotate.d/hourglass"} <= set(conffiles)
    assert "hourglass.service" in (control / "postinst").read_text()

    code, cmd = readme_module()
    mod = tmp_path / "mod"
    mod.mkdir()
    (mod / "hello.c").write_text(code)
    env = dict(os.environ, PKG_CONFIG_PATH=str(root / "usr/share/pkgconfig"),
               PKG_CONFIG_SYSROOT_DIR=str(root))
    r = subprocess.run(cmd, shell=True, cwd=str(mod), env=env,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
