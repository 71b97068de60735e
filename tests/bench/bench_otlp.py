#!/usr/bin/env python3
"""bench_otlp.py: does the OTLP export move the schedule lag? What does
it cost the store? (issue 16, traces).

A daemon runs 200 `system` noop jobs due every second (BENCH_OTLP_JOBS),
SQLite store, 2 workers. The schedule lag is measured for
BENCH_OTLP_SECONDS (default 20) without `tracing`, then, after a reload
that turns it on (default batch and interval), for as long while every
execution's span is exported to a collector on 127.0.0.1 (a python
http.server in a thread that counts the spans it is sent).

The lag is started_at - scheduled_for of every scheduled execution due
inside a phase (its first and last second left out), read from the store
after the daemon stops. Printed side by side with the spans received, the
exports and their payload bytes in the history. Prints; never fails on a
figure. Run from the top of the tree after make (the http module too).
"""

import http.server
import json
import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_dashboards import lags, quantile   # noqa: E402

HG = os.environ.get("HG", "objs/hourglass")
SECS = float(os.environ.get("BENCH_OTLP_SECONDS", "20"))
NJOBS = int(os.environ.get("BENCH_OTLP_JOBS", "200"))


class Collector:
    """Counts the spans POSTed to /v1/traces; answers 200."""

    def __init__(self):
        self.spans = self.posts = 0
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = json.loads(self.rfile.read(
                    int(self.headers.get("Content-Length", "0"))))
                outer.posts += 1
                outer.spans += sum(len(ss["spans"])
                                   for rs in body["resourceSpans"]
                                   for ss in rs["scopeSpans"])
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0),
                                                      Handler)
        threading.Thread(target=self.server.serve_forever,
                         daemon=True).start()


def write_conf(d, otlp_port):
    jobs = ",\n".join('{ id = "j%03d"; type = "system"; task = "noop"; '
                      'every = "1s"; }' % i for i in range(NJOBS))
    tracing = ('tracing = { otlp = "http://127.0.0.1:%d"; };' % otlp_port
               if otlp_port else "")
    text = """pid = "%(d)s/hg.pid";
workers = 2;
timezone = "UTC";
log = { file = "%(d)s/hg.log"; format = "json"; level = "warn"; };
modules = { path = "%(mods)s"; load = [ "system", "http" ]; };
store = { driver = "sqlite"; path = "%(d)s/hg.db"; };
%(tracing)s
jobs = (
%(jobs)s
);
""" % {"d": d, "mods": os.path.abspath("modules"), "tracing": tracing,
       "jobs": jobs}
    path = os.path.join(d, "scheduler.conf")
    with open(path + ".tmp", "w") as f:
        f.write(text)
    os.replace(path + ".tmp", path)
    return path


def measure(d):
    col = Collector()
    conf = write_conf(d, None)
    out = open(os.path.join(d, "out"), "w")
    proc = subprocess.Popen([HG, "-p", d, "-c", conf], stdout=out,
                            stderr=out)
    try:
        time.sleep(4)                   # started, past the first fires
        load = open("/proc/loadavg").read().split()[0]
        q0 = time.time()
        time.sleep(SECS)
        q1 = time.time()
        write_conf(d, col.server.server_port)
        proc.send_signal(signal.SIGHUP)
        time.sleep(2)                   # the reload applied
        t0 = time.time()
        time.sleep(SECS)
        t1 = time.time()
        time.sleep(3)                   # the last exports
    finally:
        proc.terminate()
        proc.wait(timeout=60)
        out.close()
    db = os.path.join(d, "hg.db")
    print("%d noop jobs/s, 2 workers, SQLite, %.0f s a phase, load %s"
          % (NJOBS, SECS, load))
    for name, a, b in (("without tracing", q0, q1),
                       ("with tracing", t0, t1)):
        v, other = lags(db, a, b)
        print("  %-16s lag p50 %s ms, p99 %s ms, max %s ms (%d runs, "
              "%d not started)" % (name, quantile(v, .5), quantile(v, .99),
                                   max(v) if v else "-", len(v),
                                   sum(other.values())))
    con = sqlite3.connect(db)
    try:
        rows, payload, ok = con.execute(
            "SELECT count(*), coalesce(sum(length(payload)), 0), "
            "sum(status = 'succeeded') FROM executions "
            "WHERE job_id = 'trace:otlp'").fetchone()
    finally:
        con.close()
    print("collector: %d spans in %d POSTs; history: %d exports (%d "
          "succeeded), %d payload bytes (%.0f per span)"
          % (col.spans, col.posts, rows, ok or 0, payload,
             payload / col.spans if col.spans else float("nan")))
    return 0


if __name__ == "__main__":
    if not os.access(HG, os.X_OK):
        sys.exit("bench_otlp: build %s first (and modules/http.so)" % HG)
    with tempfile.TemporaryDirectory(prefix="hg_bench_otlp.") as tmp:
        sys.exit(measure(tmp))
