"""Cluster mode under chaos (issue 13, point 3): three instances on one
job set of 100 jobs in one PostgreSQL, while instances are killed with
kill -9 and started again, paused with SIGSTOP past their lease (they are
fenced, exit with status 1 and are started again, as systemd would), and
PostgreSQL itself is restarted once. Meanwhile items are enqueued
through the API of a live instance (the shared queue: any instance takes
them). Afterwards, from the store and from the jobs' own side effects:
every fire time of the window ran exactly once, none twice; every item
accepted was recorded and ended, none ran twice. The counts are
printed.

It lasts HG_CHAOS_SECONDS (default 40, one round of faults: the suite's
run); longer runs repeat the round (`HG_CHAOS_SECONDS=300 make check`
or pytest on this file)."""

import collections
import os
import signal
import time

from test_api import Api, api_section, free_port
from test_cluster import (assert_each_fire_time_once, cluster_config,
                          instance_daemon, kill_strays, queue_job,
                          ran_lines, shared_jobs)
from test_store_pg import db, rows, server  # noqa: F401
import pg

SECONDS = int(os.environ.get("HG_CHAOS_SECONDS", "40"))
LEASE = 3
EVERY_SECOND = 20           # jobs firing every second
EVERY_FIVE = 80             # jobs firing every five seconds, spread


def chaos_jobs(out):
    """100 jobs; each run appends "job fire-time instance" to OUT."""
    return shared_jobs(out, ids=[
        ("s%02d" % i, "* * * * * *") for i in range(EVERY_SECOND)] + [
        ("f%02d" % i, "%d/5 * * * * *" % (i % 5)) for i in range(EVERY_FIVE)])


class Cluster:
    def __init__(self, hg, url, out, qout):
        self.daemons = {}
        self.ports = {}
        self.fenced = 0
        self.killed = 0
        self.items = []                 # accepted through the API
        for name in ("a", "b", "c"):
            d = instance_daemon(hg, name)
            self.ports[name] = free_port()
            d.start(cluster_config(d, url, name, chaos_jobs(out) + [
                queue_job(qout, retries=0)], api_section(self.ports[name]),
                lease="%ds" % LEASE))
            self.daemons[name] = d

    def enqueue(self, n):
        """N items through the first instance that answers."""
        for _ in range(n):
            payload = "q%04d" % len(self.items)
            for name, d in self.daemons.items():
                if not d.running():
                    continue
                try:
                    status, _ = Api(self.ports[name]).json(
                        "POST", "/api/v1/queue", {"job": "q",
                                                  "payload": payload})
                except OSError:
                    continue
                if status == 202:
                    self.items.append(payload)
                    break

    def restart_fenced(self, name, timeout=30):
        """NAME's master must exit 1, having found itself fenced (its lease
        taken over); it is started again, as its service manager would."""
        d = self.daemons[name]
        code = d.wait_exit(timeout=timeout)
        assert code == 1, (name, code, d.lines()[-5:])
        assert [e for e in d.events() if "no longer holds its lease"
                in e.get("message", "")], d.lines()[-10:]
        kill_strays(d)
        self.fenced += 1
        d.start()
        return d

    def revive(self, name):
        """An instance that found itself fenced on its own (its lease lapsed
        while it could not renew) has exited: started again. Any exit other
        than a fenced one fails the test."""
        d = self.daemons[name]
        return d if d.running() else self.restart_fenced(name)

    def kill(self, name):
        d = self.revive(name)
        d.signal(signal.SIGKILL)
        d.wait_exit()
        kill_strays(d)
        self.killed += 1

    def pause_past_lease(self, name):
        """SIGSTOP past the lease; once resumed it must find itself fenced
        and exit 1 (then it is started again)."""
        d = self.revive(name)
        d.signal(signal.SIGSTOP)
        time.sleep(LEASE + 2.5)
        d.signal(signal.SIGCONT)
        self.restart_fenced(name)

    def stop(self):
        for d in self.daemons.values():
            if d.running():
                d.stop()


def fault_round(cluster, server, restart_pg):
    """One round of faults, about 30 s."""
    cluster.enqueue(30)
    time.sleep(3)
    cluster.kill("a")
    cluster.enqueue(30)
    time.sleep(2)
    cluster.daemons["a"].start()
    time.sleep(3)
    cluster.enqueue(30)
    cluster.pause_past_lease("b")
    cluster.enqueue(30)
    time.sleep(3)
    if restart_pg:
        server.stop()
        time.sleep(2)
        server.start()
        pg.wait_ready(server)
        time.sleep(4)
    cluster.kill("c")
    time.sleep(1)
    cluster.daemons["c"].start()
    time.sleep(3)


def test_every_fire_time_once_under_chaos(hg, db, tmp_path):
    server, name, url = db
    out = tmp_path / "ran"
    qout = tmp_path / "items"
    cluster = Cluster(hg, url, out, qout)
    try:
        begin = time.time()
        rounds = 0
        while time.time() - begin < SECONDS - 10:
            fault_round(cluster, server, restart_pg=rounds == 0)
            rounds += 1
        time.sleep(max(0.0, SECONDS - (time.time() - begin)))
        end = time.time()
        time.sleep(3)                   # the window's last runs finish
    finally:
        cluster.stop()

    assert_each_fire_time_once(server, name)

    # Every item accepted was recorded once and ended (run, or crashed
    # with the instance that ran it: dead, as max_retries = 0); none ran
    # twice.
    items = collections.Counter()
    ended = collections.Counter()
    for payload, st, instance in rows(
            server, name, "SELECT convert_from(payload, 'UTF8'), status,"
            " coalesce(instance, '-') FROM executions WHERE job_id = 'q'"):
        items[payload] += 1
        ended[st] += 1
    assert sorted(items) == sorted(cluster.items) and set(
        items.values()) <= {1}, (len(items), len(cluster.items))
    assert set(ended) <= {"succeeded", "dead"}, ended
    item_runs = collections.Counter(p for p, _, _ in ran_lines(qout))
    twice = [r for r in ran_lines(qout) if item_runs[r[0]] > 1]
    assert twice == [], "items run twice: %s" % twice
    item_by = collections.Counter(i for _, i, _ in ran_lines(qout))

    # Every fire time of the window (after the start, before the end,
    # with a margin) has its execution, whatever its status.
    first, last = int(begin) + 3, int(end) - 3
    fired = collections.defaultdict(set)
    status = collections.Counter()
    for job_id, ms, st in rows(server, name, "SELECT job_id, scheduled_for,"
                               " status FROM executions"):
        fired[job_id].add(int(ms) // 1000)
        status[st] += 1
    ids = ["s%02d" % i for i in range(EVERY_SECOND)] + [
        "f%02d" % i for i in range(EVERY_FIVE)]
    due = [(j, s) for j in ids for s in range(first, last + 1)
           if j.startswith("s") or s % 5 == int(j[1:]) % 5]
    missing = [(j, s) for j, s in due if s not in fired[j]]
    assert missing == [], "%d of %d fire times ran nowhere: %s" % (
        len(missing), len(due), missing[:5])

    lines = [line.split() for line in out.read_text().split("\n")
             if line.strip()]
    ran = collections.Counter((l[0], l[1]) for l in lines)
    again = [k for k, n in ran.items() if n > 1]
    assert again == [], "commands run twice for one fire time: %s" % (
        again[:5],)
    by_instance = collections.Counter(l[2] for l in lines)
    print("\nchaos: %d s, %d rounds (%d kill -9, %d paused past the lease "
          "and fenced, PostgreSQL restarted once); %d fire times due in the "
          "window, all recorded once; executions by status: %s; commands "
          "run: %d (%s), none twice" % (
              int(end - begin), rounds, cluster.killed, cluster.fenced,
              len(due), dict(status), len(lines),
              ", ".join("%s %d" % kv for kv in sorted(by_instance.items()))))
    print("chaos: %d items enqueued through the API, recorded once each "
          "(%s), run at most once each: %d runs (%s)" % (
              len(cluster.items), dict(ended), sum(item_runs.values()),
              ", ".join("%s %d" % kv for kv in sorted(item_by.items()))))
