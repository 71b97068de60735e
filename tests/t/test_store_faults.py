"""The master's side of store faults: while the SQLite store cannot be
written (locked by another process past busy_timeout, disk full) the
daemon keeps scheduling and running jobs, says so once, keeps the records
in memory and writes them, with a line, when the store recovers."""

import os
import signal
import sqlite3
import subprocess
import time

import pytest

from conftest import etime, job, sqlite_config, wait_rows

FINAL = ("succeeded", "failed", "timed_out", "crashed", "killed", "skipped",
         "missed", "dead")


def messages(daemon, needle):
    return [e for e in daemon.events() if needle in e.get("message", "")]


def finishes(daemon, after=None):
    """{exec: status} of tick's finish lines (logged after AFTER)."""
    return {e["exec"]: e["status"] for e in daemon.events("finish",
                                                          job="tick")
            if after is None or etime(e) > after}


def wait_runs_during(daemon, what, runs=10):
    """Waits for the line that opens the episode, then for RUNS runs that
    succeeded after it; returns the line's time."""
    opened = daemon.wait_for(lambda evs: messages(daemon,
                                                  "store: cannot write"),
                             timeout=15, what="the line that opens the "
                             "episode")[0]
    daemon.wait_for(lambda evs: list(finishes(daemon, etime(opened))
                                     .values()).count("succeeded") >= runs,
                    what="%d runs while %s" % (runs, what))
    return etime(opened)


def check_episode(daemon, db, fault_why, during):
    """One line opened the episode (naming the file and FAULT_WHY), one
    closed it, and the master said once that executions no longer wait
    for their records; every execution that finished DURING it ({exec:
    status}) is in the store once, with its status."""
    opened = messages(daemon, "store: cannot write %s" % db)
    assert len(opened) == 1, opened
    assert fault_why in opened[0]["message"], opened
    assert "keeping" in opened[0]["message"], opened
    assert len(messages(daemon, "executions start without waiting")) == 1
    closed = daemon.wait_for(lambda evs: messages(
        daemon, "store: writing %s again" % db), what="the recovery line")
    assert len(closed) == 1, closed
    assert "committed" in closed[0]["message"], closed
    rows = wait_rows(db, lambda rs: set(during) <= {r["id"] for r in rs
                                                    if r["status"] in FINAL},
                     what="the executions run during the fault recorded",
                     describe=lambda rs: [(r["id"], r["status"])
                                          for r in rs])
    ids = [r["id"] for r in rows]
    assert len(ids) == len(set(ids))
    got = {r["id"]: r["status"] for r in rows if r["id"] in during}
    assert got == during, (got, during)


def test_store_locked_by_another_process(daemon):
    db = daemon.dir / "hg.db"
    daemon.start(sqlite_config(daemon, db, load=("system",), jobs=[
        job("tick", type="system", task="noop", every="100ms")]))
    wait_rows(db, lambda rs: len(rs) >= 3, what="three rows")
    con = sqlite3.connect(str(db), timeout=10, isolation_level=None)
    try:
        con.execute("BEGIN EXCLUSIVE")
        locked = time.time()
        # the writer gives up after busy_timeout (1 s) and says so, while
        # the jobs go on; nothing of them reaches the file. 30 runs: about
        # 3 s, for the writer to fail more than once.
        wait_runs_during(daemon, "the store is locked", runs=30)
        during = finishes(daemon, locked)
        locked_rows = {r[0] for r in con.execute(
            "SELECT id FROM executions WHERE status = 'succeeded'")}
        assert not set(during) & locked_rows
        con.execute("COMMIT")
    finally:
        con.close()
    check_episode(daemon, db, "locked", during)
    assert daemon.running()


def mount_tmpfs(path, size):
    path.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=%s" % size,
                        "tmpfs", str(path)], capture_output=True)
    return r.returncode == 0


@pytest.fixture
def small_disk(tmp_path):
    mnt = tmp_path / "disk"
    if os.geteuid() != 0 or not mount_tmpfs(mnt, "4m"):
        pytest.skip("mounting a tmpfs needs root (CAP_SYS_ADMIN)")
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


def test_store_disk_full_and_space_back(daemon, small_disk):
    db = small_disk / "hg.db"
    # 60 KB of output a run: were the WAL reused after a checkpoint, its
    # free space would be gone within a few seconds
    daemon.start(sqlite_config(daemon, db, jobs=[
        job("tick", every="100ms", command="head -c 60000 /dev/zero")]))
    wait_rows(db, lambda rs: len(rs) >= 3, what="three rows")
    filler = small_disk / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        for size in (65536, 4096, 512):
            try:
                while True:
                    os.write(fd, b"\0" * size)
            except OSError:
                pass
    finally:
        os.close(fd)
    full = time.time()
    wait_runs_during(daemon, "the disk is full")
    during = finishes(daemon, full)
    os.unlink(filler)
    check_episode(daemon, db, "full", during)
    assert daemon.running()
    daemon.signal(signal.SIGTERM)
    assert daemon.wait_exit() == 0
    con = sqlite3.connect(str(db))
    try:
        assert con.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    finally:
        con.close()
