#!/usr/bin/env python3
"""bench_dashboards.py: do ten open dashboards move the schedule lag p99?
(issue 14, "Live").

A daemon runs 200 `system` noop jobs due every second (BENCH_DASH_JOBS),
SQLite store, 2 workers, the api section on. The schedule lag is measured
for BENCH_DASH_SECONDS (default 20) with no client, then for as long with
ten clients (BENCH_DASH_CLIENTS) that do what an open dashboard on its
jobs view does: one events stream each (GET /api/v1/events, read as it
comes), and after an event, at most once per 200 ms as html/app.js does,
the view read again: GET /api/v1/jobs?page_size=500, then the selected
job (GET /api/v1/jobs/ID) and its last 20 executions. With 200 jobs due
each second the stream never rests, so each client reads its view about
five times a second: more than a person's dashboard, the point of a
bound.

The lag is started_at - scheduled_for of every scheduled execution due
inside a phase (its first and last second left out), read from the store
after the daemon stops; the histogram's buckets are too coarse to compare
p99s. Printed side by side, with the clients' request count and errors.
Prints; never fails on a figure. Run from the top of the tree after make.
"""

import json
import os
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

HG = os.environ.get("HG", "objs/hourglass")
SECS = float(os.environ.get("BENCH_DASH_SECONDS", "20"))
NJOBS = int(os.environ.get("BENCH_DASH_JOBS", "200"))
NCLIENTS = int(os.environ.get("BENCH_DASH_CLIENTS", "10"))
TOKEN = "bench-" + os.urandom(12).hex()
REFRESH_S = 0.2                 # app.js: a burst of events is one reload


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def write_conf(d, port):
    jobs = ",\n".join('{ id = "j%03d"; type = "system"; task = "noop"; '
                      'every = "1s"; }' % i for i in range(NJOBS))
    text = """pid = "%(d)s/hg.pid";
workers = 2;
timezone = "UTC";
log = { file = "%(d)s/hg.log"; format = "json"; level = "warn"; };
modules = { path = "%(mods)s"; load = [ "system" ]; };
store = { driver = "sqlite"; path = "%(d)s/hg.db"; };
api = { listen = "127.0.0.1:%(port)d";
        tokens = ( { name = "bench"; token = "%(tok)s"; role = "read"; } ); };
jobs = (
%(jobs)s
);
""" % {"d": d, "mods": os.path.abspath("modules"), "port": port,
       "tok": TOKEN, "jobs": jobs}
    path = os.path.join(d, "scheduler.conf")
    with open(path, "w") as f:
        f.write(text)
    return path


class Dashboard(threading.Thread):
    """One open dashboard: an events stream, and the jobs view read again
    after events, at most every REFRESH_S."""

    def __init__(self, base, stop, n):
        super().__init__(daemon=True)
        self.base, self.stop, self.n = base, stop, n
        self.requests = self.errors = self.events = 0
        self.dirty = threading.Event()

    def get(self, path, timeout=10):
        req = urllib.request.Request(self.base + path)
        req.add_header("Authorization", "Bearer " + TOKEN)
        return urllib.request.urlopen(req, timeout=timeout)

    def listen(self):
        try:
            with self.get("/api/v1/events", timeout=5) as stream:
                while not self.stop.is_set():
                    line = stream.readline()
                    if not line:
                        break
                    if line.startswith(b"event:"):
                        self.events += 1
                        self.dirty.set()
        except OSError:
            if not self.stop.is_set():
                self.errors += 1

    def run(self):
        threading.Thread(target=self.listen, daemon=True).start()
        job = "j%03d" % (self.n % NJOBS)
        while not self.stop.is_set():
            if not self.dirty.wait(0.5):
                continue
            time.sleep(REFRESH_S)
            self.dirty.clear()
            for path in ("/api/v1/jobs?page_size=500",
                         "/api/v1/jobs/" + job,
                         "/api/v1/jobs/%s/executions?page_size=20" % job):
                try:
                    with self.get(path) as r:
                        json.load(r)
                    self.requests += 1
                except (OSError, ValueError):
                    self.errors += 1


def lags(db, a, b):
    lo, hi = int((a + 1) * 1000), int((b - 1) * 1000)
    con = sqlite3.connect(db)
    try:
        started = sorted(v for (v,) in con.execute(
            "SELECT started_at - scheduled_for FROM executions "
            "WHERE triggered_by = 'schedule' AND started_at > 0 "
            "AND scheduled_for >= ? AND scheduled_for < ?", (lo, hi)))
        not_started = dict(con.execute(
            "SELECT status, count(*) FROM executions WHERE started_at = 0 "
            "AND scheduled_for >= ? AND scheduled_for < ? GROUP BY status",
            (lo, hi)).fetchall())
    finally:
        con.close()
    return started, not_started


def quantile(v, q):
    return v[min(len(v) - 1, int(q * len(v)))] if v else float("nan")


def main():
    if not os.access(HG, os.X_OK):
        print("bench_dashboards: build %s first" % HG)
        return 1
    with tempfile.TemporaryDirectory(prefix="hg_bench_dash.") as d:
        return measure(d)


def measure(d):
    port = free_port()
    conf = write_conf(d, port)
    base = "http://127.0.0.1:%d" % port
    out = open(os.path.join(d, "out"), "w")
    proc = subprocess.Popen([HG, "-p", d, "-c", conf], stdout=out,
                            stderr=out)
    try:
        deadline = time.time() + 10
        while time.time() < deadline:
            try:
                urllib.request.urlopen(base + "/healthz", timeout=1).close()
                break
            except OSError:
                time.sleep(0.1)
        time.sleep(3)                   # past the first fires
        print("%d system noop jobs every 1s, 2 workers, SQLite store; "
              "phases of %.0f s; load before: %s"
              % (NJOBS, SECS, " ".join(open("/proc/loadavg").read()
                                       .split()[:3])))
        q0 = time.time()
        time.sleep(SECS)
        q1 = time.time()
        stop = threading.Event()
        clients = [Dashboard(base, stop, n) for n in range(NCLIENTS)]
        for c in clients:
            c.start()
        d0 = time.time()
        time.sleep(SECS)
        d1 = time.time()
        stop.set()
        time.sleep(2)                   # the last executions' records
    finally:
        proc.terminate()
        proc.wait(timeout=60)
        out.close()
    db = os.path.join(d, "hg.db")
    res = {}
    for name, a, b in (("no dashboard", q0, q1),
                       ("%d dashboards" % NCLIENTS, d0, d1)):
        v, other = lags(db, a, b)
        res[name] = v
        print("lag %-15s %6d executions: p50 %4s ms, p99 %4s ms, max %5s ms%s"
              % (name + ":", len(v), quantile(v, .5), quantile(v, .99),
                 v[-1] if v else "-", "; not started: " + ", ".join(
                     "%s %d" % kv for kv in sorted(other.items()))
                 if other else ""))
    reqs = sum(c.requests for c in clients)
    print("the %d dashboards: %d events read, %d requests (%.0f/s), "
          "%d errors" % (NCLIENTS, sum(c.events for c in clients), reqs,
                         reqs / (d1 - d0), sum(c.errors for c in clients)))
    a, b = res["no dashboard"], res["%d dashboards" % NCLIENTS]
    if a and b:
        print("lag p99 with dashboards / without: %.2fx; p50 %.2fx"
              % (quantile(b, .99) / max(quantile(a, .99), 1),
                 quantile(b, .5) / max(quantile(a, .5), 1)))
    print("load after: %s" % " ".join(open("/proc/loadavg").read()
                                      .split()[:3]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
