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
