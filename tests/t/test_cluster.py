"""Cluster mode on PostgreSQL (DESIGN.md "Cluster mode"): instances that
share a job set through one database run each scheduled fire time once.
The claim of a fire time is a row per (job, fire time) written in the
transaction that records the execution; an instance whose claim loses
forgets the fire. Against a real PostgreSQL that this module starts
(tests/t/pg.py)."""

import collections
import json
import os
import re
import signal
import time


from conftest import MEMORY_STORE, conf_value, job, run_hourglass, wait_until
from test_api import Api, api_section, free_port
from test_store_pg import db, messages, pg_config, rows, server  # noqa: F401
import pg

JOBS = 10


def cluster_config(d, url, instance, jobs, api="", lease="10s",
                   load=("shell",)):
    return pg_config(d, url, workers=2, jobs=jobs, load=load, extra=(
        "cluster = { instance = %s; lease = \"%s\"; }; %s"
        % (conf_value(instance), lease, api)))


def assert_each_fire_time_once(server, name):
    """In the store: no scheduled fire time (a retry is its run's next
    attempt, not a fire; an item the API enqueued is not one either) has
    two executions, and each holds its claim."""
    twice = rows(server, name, "SELECT job_id, scheduled_for, count(*)"
                 " FROM executions WHERE triggered_by <> 'retry'"
                 " AND triggered_by NOT LIKE 'api:%'"
                 " GROUP BY 1, 2 HAVING count(*) > 1")
    assert twice == [], "fire times with two executions: %s" % twice[:5]
    unclaimed = rows(server, name, "SELECT e.id FROM executions e LEFT JOIN"
                     " fire_claims c ON c.job_id = e.job_id AND"
                     " c.fire_time = e.scheduled_for AND c.exec_id = e.id"
                     " WHERE c.exec_id IS NULL AND e.triggered_by <> 'retry'"
                     " AND e.triggered_by NOT LIKE 'api:%'")
    assert unclaimed == [], "executions without their claim: %s" % (
        unclaimed[:5],)


def kill_strays(d):
    for pid in d.stray():
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def instance_daemon(hg, instance):
    """A daemon whose jobs can say which instance ran them: the same
    definitions everywhere (a cluster claims only for the definition most
    instances hold), the name from the environment (pass_env)."""
    d = hg(instance)
    d.extra_env["HG_TEST_INSTANCE"] = instance
    return d


def shared_jobs(out, instance=None, ids=None):
    """JOBS jobs every second (or one per id of IDS, with its schedule);
    each run appends a line to OUT: job, fire time, instance."""
    cmd = 'echo "$HOURGLASS_JOB_ID $HOURGLASS_SCHEDULED_FOR ' \
          '$HG_TEST_INSTANCE" >> %s' % out
    if ids is None:
        ids = [("c%02d" % i, "* * * * * *") for i in range(JOBS)]
    return [job(i, command=cmd, schedule=s, max_retries=0,
                pass_env=["HG_TEST_INSTANCE"]) for i, s in ids]


def test_each_fire_time_runs_once_across_three_instances(hg, db, tmp_path):
    """Three instances on ten jobs that fire every second, for about ten
    seconds; one of them is killed with kill -9 in the middle and started
    again. In the store, no (job, fire time) has two executions, each
    execution holds its fire time's claim, and every second of the window
    ran for every job (the other two instances took over); from the
    commands' side: no fire time ran twice."""
    server, name, url = db
    out = tmp_path / "ran"
    daemons = {}
    ports = {}
    for instance in ("a", "b", "c"):
        d = instance_daemon(hg, instance)
        ports[instance] = free_port()
        d.start(cluster_config(d, url, instance, shared_jobs(out, instance),
                               api_section(ports[instance])))
        daemons[instance] = d
    begin = time.time()
    time.sleep(4)
    b = daemons["b"]
    b.signal(signal.SIGKILL)
    b.wait_exit()
    kill_strays(b)
    time.sleep(2)
    b.start()
    time.sleep(4)
    end = time.time()
    claims = {}
    for instance, port in ports.items():
        api = Api(port)
        status, body = api.json("GET", "/api/v1/status")
        cluster = body["cluster"]
        assert status == 200 and cluster["instance"] == instance and \
            cluster["lease_ms"] == 10000 and cluster["term"] >= 1, body
        # every instance's lease as the database sees it
        peers = {p["name"]: p for p in cluster["instances"]}
        assert set(peers) == {"a", "b", "c"}, cluster
        assert all(p["live"] and 0 < p["lease_left_ms"] <= 10000
                   for p in peers.values()), cluster
        assert peers[instance]["term"] == cluster["term"], cluster
        metrics = api.call("GET", "/metrics")[1].decode()
        assert re.search(r'^hourglass_cluster_instances\{state="live"\} 3$',
                         metrics, re.M), metrics
        assert re.search(r'^hourglass_claim_seconds_count [1-9]', metrics,
                         re.M), metrics
        claims[instance] = {r: int(float(n)) for r, n in re.findall(
            r'^hourglass_claims_total\{result="(\w+)"\} (\S+)$', metrics,
            re.M)}
    # Every instance took part: it claimed fire times, won or lost. Who
    # wins a race is not promised (one instance may win every one), so
    # the work's spread across instances is printed, not asserted.
    for instance, counts in claims.items():
        assert sum(counts.values()) > 0, (instance, claims)
    assert sum(c.get("won", 0) for c in claims.values()) > 0, claims
    assert sum(c.get("lost", 0) for c in claims.values()) > 0, claims
    for d in daemons.values():
        d.stop()

    assert_each_fire_time_once(server, name)
    by_instance = {i: int(n) for i, n in rows(
        server, name, "SELECT instance, count(*) FROM executions GROUP BY 1")}
    # every whole second of the window, for every job
    first = int(begin) + 2
    last = int(end) - 2
    fired = collections.defaultdict(set)
    for job_id, ms in rows(server, name, "SELECT job_id, scheduled_for FROM"
                           " executions"):
        fired[job_id].add(int(ms) // 1000)
    missing = [(j, s) for j in ("c%02d" % i for i in range(JOBS))
               for s in range(first, last + 1) if s not in fired[j]]
    assert missing == [], "%d fire times ran nowhere: %s" % (
        len(missing), missing[:5])

    lines = out.read_text().split("\n")
    ran = collections.Counter(tuple(line.split()[:2]) for line in lines
                              if line.strip())
    again = [k for k, n in ran.items() if n > 1]
    assert again == [], "commands run twice for one fire time: %s" % (
        again[:5],)
    print("%d executions (%s), %d commands run, %d seconds x %d jobs "
          "checked, none twice; claims: %s" % (
              sum(by_instance.values()),
              ", ".join("%s %s" % kv for kv in sorted(by_instance.items())),
              sum(ran.values()), last - first + 1, JOBS, claims))
    assert set(by_instance) <= {"a", "b", "c"}, by_instance
    # b's restart recovered b's executions only: a and c never stopped
    taken = rows(server, name, "SELECT id, instance, status FROM executions"
                 " WHERE status IN ('crashed', 'dead') AND instance <> 'b'")
    assert taken == [], taken


MASK = (1 << 64) - 1


def preferred(job_id, fire_ms, live):
    """The instance of LIVE (names in order) that claims JOB_ID's fire time
    FIRE_MS first: hg_store_preferred's hash (FNV-1a of the job, the
    fire time mixed in by splitmix64's finalizer)."""
    h = 1469598103934665603
    for byte in job_id.encode():
        h = ((h ^ byte) * 1099511628211) & MASK
    h ^= fire_ms & MASK
    h ^= h >> 30
    h = (h * 0xbf58476d1ce4e5b9) & MASK
    h ^= h >> 27
    h = (h * 0x94d049bb133111eb) & MASK
    h ^= h >> 31
    return live[h % len(live)]


def test_fire_times_of_a_stopped_instance_run_once_elsewhere(hg, db,
                                                               tmp_path):
    """Each fire time is claimed first by its preferred instance (a hash of
    job and fire time over the live instances), the others claiming it
    right after their own. c is stopped (SIGSTOP) for 5 s, less than its
    10 s lease: still live, it stays the preferred claimer of a third of
    the fire times, which a and b claim after theirs. Every second of the
    stop ran for every job, each fire time once; how much later the fire
    times c preferred started than the others is printed (no timed
    assertion), and so is the share of fire times won by their preferred
    instance while all three ran."""
    server, name, url = db
    out = tmp_path / "ran"
    daemons = {}
    for instance in ("a", "b", "c"):
        d = instance_daemon(hg, instance)
        d.start(cluster_config(d, url, instance, shared_jobs(out, instance)))
        daemons[instance] = d
    time.sleep(4)
    stopped = time.time()
    daemons["c"].signal(signal.SIGSTOP)
    time.sleep(5)
    daemons["c"].signal(signal.SIGCONT)
    resumed = time.time()
    time.sleep(2)
    for d in daemons.values():
        d.stop()

    assert_each_fire_time_once(server, name)
    runs = rows(server, name, "SELECT job_id, scheduled_for, instance,"
                " started_at FROM executions WHERE triggered_by = 'schedule'")
    window = range(int(stopped) + 1, int(resumed))
    fired = {(j, int(ms) // 1000) for j, ms, _, _ in runs}
    missing = [(j, s) for j in ("c%02d" % i for i in range(JOBS))
               for s in window if (j, s) not in fired]
    assert missing == [], "%d fire times of c's stop ran nowhere: %s" % (
        len(missing), missing[:5])
    late = {True: [], False: []}
    before = [0, 0]
    for job_id, ms, instance, started in runs:
        ms = int(ms)
        prefer = preferred(job_id, ms, ["a", "b", "c"])
        if ms // 1000 in window:
            assert instance in ("a", "b"), (job_id, ms, instance)
            late[prefer == "c"].append(int(started) - ms)
        elif ms // 1000 < int(stopped) - 1:
            before[0] += prefer == instance
            before[1] += 1
    assert late[True] and late[False], late

    def summary(delays):
        delays.sort()
        return "median %d ms, max %d ms (%d runs)" % (
            delays[len(delays) // 2], delays[-1], len(delays))
    print("\nwhile c was stopped: fire times c preferred started %s after "
          "their fire time; the others %s. Before the stop, %d of %d fire "
          "times were won by their preferred instance" % (
              summary(late[True]), summary(late[False]), before[0],
              before[1]))
    lines = out.read_text().split("\n")
    ran = collections.Counter(tuple(line.split()[:2]) for line in lines
                              if line.strip())
    assert [k for k, n in ran.items() if n > 1] == []


def test_cluster_needs_postgres(hg):
    """A cluster section with another store is refused by -t, at its
    line, saying why."""
    d = hg()
    text = d.config(extra='cluster = { instance = "a"; };')
    d.write(text.replace(MEMORY_STORE, 'store = { driver = "sqlite"; };'))
    r = run_hourglass("-t", "-p", d.dir, "-c", d.conf, timeout=10)
    assert r.returncode == 1, r.stdout
    line = text.split("\n").index('cluster = { instance = "a"; };') + 1
    assert ('%s:%d: cluster: needs store.driver = "postgres" or "redis"'
            % (d.conf, line) in r.stderr), r.stderr


def wait_rows(server, name, sql, pred, what, timeout=20):
    deadline = time.monotonic() + timeout
    while True:
        got = rows(server, name, sql)
        if pred(got):
            return got
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting for %s: %s" % (what, got))
        time.sleep(0.2)


def test_a_postgres_restart_longer_than_the_lease_fences_nobody(hg, db,
                                                                tmp_path):
    """PostgreSQL stopped for longer than the lease, then started: every
    lease lapsed meanwhile, which says nothing of the instances. b, held
    still (SIGSTOP) through the outage and half a second past it, comes
    back after a has reconnected, and must find itself not fenced: a peer
    is taken over only once it had a lease from the server's start to
    renew. Both keep running; each fire time runs once."""
    server, name, url = db
    out = tmp_path / "ran"
    daemons = []
    for instance in ("a", "b"):
        d = instance_daemon(hg, instance)
        d.start(cluster_config(d, url, instance, shared_jobs(out),
                               lease="3s"))
        daemons.append(d)
    a, b = daemons
    wait_lines(out, lambda r: len(r) >= 10, "the jobs running")
    server.stop()
    b.signal(signal.SIGSTOP)
    time.sleep(4)
    server.start()
    pg.wait_ready(server)
    time.sleep(0.5)
    b.signal(signal.SIGCONT)
    after = len(ran_lines(out))
    wait_lines(out, lambda r: len(r) >= after + 3 * JOBS,
               "the jobs running again")
    time.sleep(3)
    for d in daemons:
        assert d.running(), (str(d.dir), d.lines()[-5:])
        assert not [e for e in d.events() if "no longer holds its lease"
                    in e.get("message", "")], d.lines()[-10:]
        assert not [e for e in d.events() if "stopped renewing its lease"
                    in e.get("message", "")], d.lines()[-10:]
    for d in daemons:
        d.stop()
    assert_each_fire_time_once(server, name)


def test_a_dead_instance_is_taken_over_within_its_lease(hg, db, tmp_path):
    """b runs a long execution and dies (kill -9, its workers too); a
    notices b's lease lapse, records the execution crashed and retries it
    per policy here; b, started again, recovers nothing (its work is a's
    now) and joins under a new term."""
    server, name, url = db
    out = tmp_path / "ran"
    long_job = job("long", command="echo $HOURGLASS_ATTEMPT >> %s; sleep 30"
                   % out, max_retries=1, backoff={"initial": "500ms"})
    port = free_port()
    b = hg("b")
    b.start(cluster_config(b, url, "b", [long_job], api_section(port),
                           lease="2s"))
    a = hg("a")
    port_a = free_port()
    a.start(cluster_config(a, url, "a", [long_job], api_section(port_a),
                           lease="2s"))
    status, _ = Api(port).json("POST", "/api/v1/jobs/long/trigger")
    assert status in (200, 201, 202), status
    running = wait_rows(server, name, "SELECT id, instance FROM executions"
                        " WHERE status = 'running'", lambda r: len(r) == 1,
                        "the long run on b")
    assert running[0][1] == "b", running
    killed = time.monotonic()
    b.signal(signal.SIGKILL)
    b.wait_exit()
    kill_strays(b)

    crashed = wait_rows(server, name, "SELECT instance, error FROM executions"
                        " WHERE id = '%s' AND status = 'crashed'"
                        % running[0][0], lambda r: len(r) == 1,
                        "b's run recorded crashed by a")
    noticed = time.monotonic() - killed
    print("\nkill -9 of b to its run recorded crashed by a: %.2f s (lease "
          "2 s)" % noticed)
    assert crashed[0][0] == "a", crashed
    assert "stopped renewing its cluster lease" in crashed[0][1], crashed
    # the lease is 2 s, renewed and swept every third of it
    assert noticed < 2 + 2 + 5, noticed
    retry = wait_rows(server, name, "SELECT instance, attempt FROM executions"
                      " WHERE job_id = 'long' AND status = 'running'",
                      lambda r: len(r) == 1, "the retry running on a")
    assert [tuple(map(str, x)) for x in retry] == [("a", "2")], retry
    a.wait_for(lambda evs: [e for e in evs if 'instance "b" stopped '
                            'renewing its lease' in e.get("message", "")],
               what="a's line about taking b over")
    metrics = Api(port_a).call("GET", "/metrics")[1].decode()
    assert re.search(r"^hourglass_lease_expirations_total 1$", metrics,
                     re.M), metrics
    terms = dict(rows(server, name, "SELECT name, term FROM instances"))
    b.start()
    b.wait_for(lambda evs: [e for e in evs if 'joined as instance "b"'
                            in e.get("message", "")], what="b joins again")
    assert int(dict(rows(server, name, "SELECT name, term FROM instances"))
               ["b"]) > int(terms["b"])
    assert not [e for e in b.events() if "recovered" in e.get("message", "")]
    a.stop()
    b.stop()


def test_a_paused_instance_is_fenced_and_stops(hg, db, tmp_path):
    """b is paused (SIGSTOP) past its lease; a takes its work over; b,
    resumed, finds its term gone: it writes and starts nothing more and
    exits with status 1, saying why. No fire time ran twice."""
    server, name, url = db
    out = tmp_path / "ran"
    daemons = {}
    for instance in ("a", "b"):
        d = instance_daemon(hg, instance)
        d.start(cluster_config(d, url, instance, shared_jobs(out, instance),
                               lease="2s"))
        daemons[instance] = d
    a, b = daemons["a"], daemons["b"]
    time.sleep(2)
    b.signal(signal.SIGSTOP)
    a.wait_for(lambda evs: [e for e in evs if 'instance "b" stopped '
                            'renewing its lease' in e.get("message", "")],
               what="a taking b over", timeout=20)
    time.sleep(1)
    b.signal(signal.SIGCONT)
    assert b.wait_exit(timeout=20) == 1
    said = [e for e in b.events() if "no longer holds its lease"
            in e.get("message", "")]
    assert said, "\n".join(b.lines()[-10:])
    # Its failing writes never let a start go without its record.
    assert not [e for e in b.events() if "start without waiting"
                in e.get("message", "")], "\n".join(b.lines()[-10:])
    time.sleep(2)
    a.stop()
    assert_each_fire_time_once(server, name)
    lines = out.read_text().split("\n")
    ran = collections.Counter(tuple(line.split()[:2]) for line in lines
                              if line.strip())
    assert [k for k, n in ran.items() if n > 1] == []


def test_an_odd_definition_is_not_claimed(hg, db, tmp_path):
    """Job "odd" is defined one way in a and c and another in b: b says so
    once, naming the job, and leaves its fire times to a and c, which run
    every one; b still claims the jobs it shares. Once b's file matches
    (a reload), b says it holds the cluster's definition again."""
    server, name, url = db
    out = tmp_path / "ran"
    ids = [("same", "* * * * * *"), ("odd", "* * * * * *")]
    daemons = {}
    for instance in ("a", "b", "c"):
        d = instance_daemon(hg, instance)
        jobs = shared_jobs(out, ids=ids)
        if instance == "b":
            jobs[1] = jobs[1].replace("max_retries = 0;", "max_retries = 1;")
        d.start(cluster_config(d, url, instance, jobs))
        daemons[instance] = d
    b = daemons["b"]
    odd = b.wait_for(lambda evs: [e for e in evs if 'job "odd": the '
                                  'definition of instance "b"' in
                                  e.get("message", "")],
                     what="b saying its odd definition")
    assert odd[0]["level"] == "warn", odd
    time.sleep(4)
    ran_by_b = rows(server, name, "SELECT job_id, count(*) FROM executions"
                    " WHERE instance = 'b' GROUP BY 1")
    assert "odd" not in dict(ran_by_b), ran_by_b
    b.write(cluster_config(b, url, "b", shared_jobs(out, ids=ids)))
    b.signal(signal.SIGHUP)
    b.wait_for(lambda evs: [e for e in evs if 'job "odd": instance "b" '
                            'holds the cluster\'s definition again'
                            in e.get("message", "")],
               what="b holding the cluster's definition again")
    for d in daemons.values():
        d.stop()
    assert_each_fire_time_once(server, name)
    fired = {int(ms) // 1000 for (ms,) in rows(
        server, name, "SELECT scheduled_for FROM executions"
        " WHERE job_id = 'odd'")}
    first = min(fired)
    assert set(range(first + 1, max(fired))) <= fired, sorted(fired)
    assert len([e for e in b.events() if 'job "odd": the definition'
                in e.get("message", "")]) == 1


# --- the shared queue and pause state (issue 13's leftovers) -------------

def queue_job(out, block_on=None, retries=1):
    """Job "q": each run appends "payload instance attempt" to OUT; a run
    whose payload is BLOCK_ON (or, with block_on "attempt1", any first
    attempt) sleeps long after saying so."""
    cmd = ('read p; echo "$p $HG_TEST_INSTANCE $HOURGLASS_ATTEMPT" >> %s; '
           % out)
    if block_on == "attempt1":
        cmd += '[ "$HOURGLASS_ATTEMPT" = 1 ] && sleep 60; true'
    elif block_on is not None:
        cmd += '[ "$p" = %s ] && sleep 2; sleep 0.2' % block_on
    else:
        cmd += "sleep 0.3"
    return job("q", command=cmd, overlap="allow", max_retries=retries,
               backoff={"initial": "200ms"}, pass_env=["HG_TEST_INSTANCE"])


def ran_lines(out):
    """[(payload, instance, attempt)] in the order the runs started."""
    if not out.exists():
        return []
    return [tuple(line.split()) for line in out.read_text().split("\n")
            if line.strip()]


def wait_lines(out, pred, what, timeout=30):
    deadline = time.monotonic() + timeout
    while True:
        got = ran_lines(out)
        if pred(got):
            return got
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting for %s: %s" % (what, got))
        time.sleep(0.1)


def enqueue(port, payload, priority=None):
    body = {"job": "q", "payload": payload}
    if priority is not None:
        body["priority"] = priority
    status, answer = Api(port).json("POST", "/api/v1/queue", body)
    assert status in (200, 201, 202), (status, answer)
    return answer


def test_shared_queue_runs_on_every_instance_once(hg, db, tmp_path):
    """Three instances; thirty items enqueued through ONE instance's API
    are recorded with no instance and taken by whichever has free workers
    (FOR UPDATE SKIP LOCKED): they run on more than one instance, each
    exactly once (from the runs' own lines), and each execution's
    instance is the one that ran it."""
    server, name, url = db
    out = tmp_path / "ran"
    ports = {}
    daemons = []
    for instance in ("a", "b", "c"):
        d = instance_daemon(hg, instance)
        ports[instance] = free_port()
        d.start(cluster_config(d, url, instance, [queue_job(out)],
                               api_section(ports[instance]), lease="3s"))
        daemons.append(d)
    items = ["i%02d" % i for i in range(30)]
    for item in items:
        enqueue(ports["a"], item)
    got = wait_lines(out, lambda r: len(r) >= len(items), "every item run")
    time.sleep(1)                       # a second run would show by now
    got = ran_lines(out)
    for d in daemons:
        d.stop()
    ran = collections.Counter(p for p, _, _ in got)
    assert sorted(ran) == items and set(ran.values()) == {1}, ran
    where = {p: i for p, i, _ in got}
    stored = dict(rows(server, name, "SELECT convert_from(payload, 'UTF8'),"
                       " instance FROM executions WHERE status = 'succeeded'"))
    assert stored == where, (stored, where)
    spread = collections.Counter(where.values())
    print("\n%d items enqueued on a ran on: %s" % (
        len(items), dict(sorted(spread.items()))))
    assert len(spread) > 1, spread
    assert rows(server, name, "SELECT count(*) FROM executions WHERE"
                " instance IS NULL") == [["0"]]


def test_shared_queue_takes_by_priority(hg, db, tmp_path):
    """One instance with one worker, busy: items queued meanwhile wait in
    the database; as the worker frees, the take picks the highest
    priority first, then the oldest."""
    server, name, url = db
    out = tmp_path / "ran"
    d = instance_daemon(hg, "a")
    port = free_port()
    text = cluster_config(d, url, "a", [queue_job(out, block_on="block")],
                          api_section(port), lease="3s")
    d.start(text.replace("workers = 2;", "workers = 1;"))
    enqueue(port, "block")
    wait_lines(out, lambda r: len(r) == 1, "the blocking run")
    order = [("l1", "low"), ("n1", "normal"), ("c1", "critical"),
             ("l2", "low"), ("h1", "high"), ("c2", "critical")]
    for payload, priority in order:
        enqueue(port, payload, priority)
    assert rows(server, name, "SELECT count(*) FROM executions WHERE"
                " instance IS NULL") == [["6"]]
    got = wait_lines(out, lambda r: len(r) == 7, "every item run")
    d.stop()
    assert [p for p, _, _ in got] == ["block", "c1", "c2", "h1", "n1",
                                      "l1", "l2"], got


def test_shared_items_of_a_killed_instance_run_elsewhere_once(hg, db,
                                                              tmp_path):
    """b takes two items and is killed (kill -9) while they run; an item
    enqueued while b had no free worker waits unowned and runs on a as
    soon as a joins. b's lease lapses: a records b's two crashed and
    retries each once, here."""
    server, name, url = db
    out = tmp_path / "ran"
    b = instance_daemon(hg, "b")
    port_b = free_port()
    b.start(cluster_config(b, url, "b", [queue_job(out, "attempt1")],
                           api_section(port_b), lease="2s"))
    for item in ("x1", "x2"):
        enqueue(port_b, item)
    wait_lines(out, lambda r: len(r) == 2, "b running both")
    enqueue(port_b, "x3")
    time.sleep(1)                       # b has no room: x3 waits unowned
    assert rows(server, name, "SELECT convert_from(payload, 'UTF8') FROM"
                " executions WHERE instance IS NULL") == [["x3"]]
    a = instance_daemon(hg, "a")
    a.start(cluster_config(a, url, "a", [queue_job(out, "attempt1")],
                           lease="2s"))
    wait_lines(out, lambda r: ("x3", "a", "1") in r, "x3 run on a")
    b.signal(signal.SIGKILL)
    b.wait_exit()
    kill_strays(b)
    got = wait_lines(out, lambda r: {("x1", "a", "2"), ("x2", "a", "2")}
                     <= set(r), "b's two retried on a", timeout=40)
    time.sleep(1)
    got = ran_lines(out)
    a.stop()
    assert sorted(got) == [("x1", "a", "2"), ("x1", "b", "1"),
                           ("x2", "a", "2"), ("x2", "b", "1"),
                           ("x3", "a", "1")], got
    crashed = rows(server, name, "SELECT convert_from(payload, 'UTF8'),"
                   " instance FROM executions WHERE status = 'crashed'"
                   " ORDER BY 1")
    assert crashed == [["x1", "a"], ["x2", "a"]], crashed
    # x3 was taken (its instance is a), not found by a's start-up
    # recovery, which reads a's own rows only (its first attempt sleeps
    # on: a's stop kills it)
    assert rows(server, name, "SELECT instance, status FROM executions"
                " WHERE convert_from(payload, 'UTF8') = 'x3'") == [
        ["a", "killed"]]


def test_pause_and_resume_reach_every_instance(hg, db, tmp_path):
    """Job "p" fires every second on a and b (each fire time once). Paused
    through a's API, b hears of it within a tick and stops firing it:
    no run at all for a few seconds; resumed through b's API, a hears of
    it and the job runs again."""
    server, name, url = db
    out = tmp_path / "ran"
    ports = {}
    daemons = {}
    for instance in ("a", "b"):
        d = instance_daemon(hg, instance)
        ports[instance] = free_port()
        d.start(cluster_config(d, url, instance,
                               shared_jobs(out, ids=[("p", "* * * * * *")]),
                               api_section(ports[instance]), lease="3s"))
        daemons[instance] = d
    a, b = daemons["a"], daemons["b"]
    wait_lines(out, lambda r: len(r) >= 2, "p running")
    status, _ = Api(ports["a"]).json("POST", "/api/v1/jobs/p/pause")
    assert status == 200, status
    b.wait_for(lambda evs: [e for e in evs
                            if e.get("event") == "job_paused"],
               what="b hearing of a's pause")
    time.sleep(1.2)                     # a fire already claimed may end
    before = len(ran_lines(out))
    time.sleep(3)
    assert len(ran_lines(out)) == before, ran_lines(out)[before:]
    status, _ = Api(ports["b"]).json("POST", "/api/v1/jobs/p/resume")
    assert status == 200, status
    a.wait_for(lambda evs: [e for e in evs
                            if e.get("event") == "job_resumed"],
               what="a hearing of b's resume")
    wait_lines(out, lambda r: len(r) >= before + 2, "p running again")
    status, body = Api(ports["a"]).json("GET", "/api/v1/jobs/p")
    assert status == 200 and not body.get("paused"), body
    for d in daemons.values():
        d.stop()
    assert_each_fire_time_once(server, name)
    assert rows(server, name, "SELECT paused, changed_by FROM job_state"
                " WHERE job_id = 'p'") == [["f", "b"]]


def alerts(path):
    """The overdue events a command channel appended to PATH."""
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines()
            if line.strip()]


def leader_of(ports):
    """{instance: (status's cluster.leader, hourglass_leader)}, read once
    from each instance in PORTS."""
    seen = {}
    for instance, port in ports.items():
        status, body = Api(port).json("GET", "/api/v1/status")
        assert status == 200, body
        metrics = Api(port).call("GET", "/metrics")[1].decode()
        gauge = re.search(r"^hourglass_leader (\S+)$", metrics, re.M)
        flags = {p["name"]: p.get("leader")
                 for p in body["cluster"]["instances"]}
        seen[instance] = (body["cluster"].get("leader"),
                          float(gauge.group(1)), flags)
    return seen


def one_leader(ports):
    """The one instance that leads, once every instance's status, gauge
    and picture of the others agree on it; else None."""
    seen = leader_of(ports)
    leaders = [i for i, (flag, gauge, _) in seen.items()
               if flag is True and gauge == 1]
    others = [i for i, (flag, gauge, _) in seen.items()
              if flag is False and gauge == 0]
    if len(leaders) != 1 or len(others) != len(ports) - 1:
        return None
    if any(flags.get(leaders[0]) is not True
           or [n for n, f in flags.items() if f] != leaders
           for _, _, flags in seen.values()):
        return None
    return leaders[0]


def test_one_leader_raises_the_dead_man_alerts(hg, db, tmp_path):
    """Three instances hold job "watched", which expects a run every 4 s
    and has no schedule. Exactly one instance leads (status, each
    instance's flag, hourglass_leader 1 there and 0 elsewhere), and only
    it raises overdue: one notification per window for the cluster, not
    three. A run on a follower (triggered there) ends the episode on the
    leader too; the next one is a window later. Then the leader is killed
    (kill -9): another takes the lead and raises the alert, still due."""
    server, name, url = db
    out = tmp_path / "alerts"
    channel = ('channels = ( { name = "page"; type = "command"; command = '
               '"cat >> %s; echo >> %s"; } );' % (out, out))
    watched = job("watched", command="true", expect={"run_within": "4s"},
                  notify={"on": ["overdue"], "via": ["page"]})
    daemons, ports = {}, {}
    for instance in ("a", "b", "c"):
        d = hg(instance)
        ports[instance] = free_port()
        d.start(cluster_config(d, url, instance, [watched],
                               api_section(ports[instance]) + channel,
                               lease="2s"))
        daemons[instance] = d
    leader = wait_until(lambda: one_leader(ports), timeout=15,
                        what="one leader that every instance agrees on")
    followers = sorted(set(ports) - {leader})
    # the first window passes with no run anywhere
    wait_until(lambda: alerts(out), timeout=20, what="the first overdue")
    status, _ = Api(ports[followers[0]]).json(
        "POST", "/api/v1/jobs/watched/trigger")
    assert status == 202, status
    # the run on a follower restarts the leader's window: the next alert
    # names it as the last run
    got = wait_until(lambda: alerts(out) if len(alerts(out)) >= 2 else None,
                     timeout=20, what="the second episode's overdue")
    assert len(got) == 2, got
    assert [e["event"] for e in got] == ["overdue", "overdue"], got
    # (the first counts from the leader's start: no run known)
    assert got[1]["last_run"] > got[0]["last_run"], got
    raised = {i: len(d.events("overdue")) for i, d in daemons.items()}
    assert raised == {leader: 2, followers[0]: 0, followers[1]: 0}, raised
    assert rows(server, name, "SELECT name FROM cluster_leader") == [
        [leader]]

    # the leader dies: another leads within about a lease and says it
    daemons[leader].signal(signal.SIGKILL)
    daemons[leader].wait_exit()
    kill_strays(daemons[leader])
    del ports[leader]
    new = wait_until(lambda: one_leader(ports), timeout=15,
                     what="a new leader among the two left")
    assert new in followers, new
    daemons[new].wait_event("overdue", timeout=20)
    other = [i for i in followers if i != new][0]
    assert daemons[other].events("overdue") == []
    wait_until(lambda: len(alerts(out)) >= 3, timeout=20,
               what="the new leader's overdue delivered")
    daemons[other].stop()
    daemons[new].stop()
    # a clean stop gives the lead back: its lease ends now
    assert rows(server, name, "SELECT name, lease_until FROM"
                " cluster_leader") == [[new, "0"]]


def test_the_queue_lists_and_removes_unowned_items(hg, db, tmp_path):
    """a has one worker, busy, and a manual trigger waiting behind it (its
    own); three items enqueued through its API wait unowned in the
    database. GET /api/v1/queue lists a's own (instance "a") and then the
    unowned ones (instance null, waiting "unowned"), in the order they
    are taken, with a page across both. DELETE of an unowned item takes
    it out of the shared queue: recorded killed, counted in the job's
    statistics, never run. b joins and takes the other two: a's DELETE of
    one of them is refused with 409, naming b."""
    server, name, url = db
    out = tmp_path / "ran"
    a = instance_daemon(hg, "a")
    port_a = free_port()
    text = cluster_config(a, url, "a", [queue_job(out, "attempt1")],
                          api_section(port_a), lease="3s")
    a.start(text.replace("workers = 2;", "workers = 1;"))
    enqueue(port_a, "busy")
    wait_lines(out, lambda r: len(r) == 1, "a's one worker busy")
    status, mine = Api(port_a).json("POST", "/api/v1/jobs/q/trigger")
    assert status == 202, (status, mine)
    ids = [enqueue(port_a, p, priority)["execution"]
           for p, priority in (("x1", "high"), ("x2", None), ("x3", None))]
    api = Api(port_a)
    status, body = api.json("GET", "/api/v1/queue")
    assert status == 200, body
    got = body["executions"]
    assert body["total"] == 4, body
    assert [(e["id"], e["instance"], e["waiting"]) for e in got] == [
        (mine["execution"], "a", "ready")] + [
        (i, None, "unowned") for i in ids], got
    assert got[1]["priority"] == "high" and got[1]["payload_bytes"] == 2
    status, body = api.json("GET", "/api/v1/queue?page=2&page_size=2")
    assert status == 200 and body["total"] == 4, body
    assert [e["id"] for e in body["executions"]] == ids[1:], body

    status, body = api.json("DELETE", "/api/v1/queue/%s" % ids[0])
    assert status == 200, body
    assert body == {"id": ids[0], "job_id": "q", "status": "killed"}, body
    assert rows(server, name, "SELECT status, instance IS NULL, error FROM"
                " executions WHERE id = '%s'" % ids[0]) == [
        ["killed", "t", "removed from the queue by api:ops"]]
    assert rows(server, name, "SELECT runs, failures FROM job_stats"
                " WHERE job_id = 'q'") == [["1", "1"]]
    status, body = api.json("DELETE", "/api/v1/queue/%s" % ids[0])
    assert status == 404 and "it is killed" in body["error"]["message"], \
        body
    status, body = api.json("GET", "/api/v1/queue")
    assert [e["id"] for e in body["executions"]] == [mine["execution"]] + \
        ids[1:], body

    b = instance_daemon(hg, "b")
    b.start(cluster_config(b, url, "b", [queue_job(out, "attempt1")],
                           lease="3s"))
    wait_lines(out, lambda r: {("x2", "b", "1"), ("x3", "b", "1")}
               <= set(r), "b taking x2 and x3")
    status, body = api.json("DELETE", "/api/v1/queue/%s" % ids[1])
    assert status == 409, body
    assert body["error"]["code"] == "taken", body
    assert 'instance "b" took it (it is running there' in \
        body["error"]["message"], body
    status, body = api.json("GET", "/api/v1/queue")
    assert [e["id"] for e in body["executions"]] == [mine["execution"]], \
        body
    a.stop()
    b.stop()
    assert "x1" not in [p for p, _, _ in ran_lines(out)]


def test_a_job_readded_by_a_reload_is_unpaused_in_the_store(hg, db,
                                                            tmp_path):
    """Job "p" is paused (the store says so), then removed by a reload and
    added again by the next: it runs, unpaused, and the store says so too,
    so that the restart after brings it back running, not paused."""
    from test_reload import reload
    server, name, url = db
    out = tmp_path / "ran"
    a = instance_daemon(hg, "a")
    port = free_port()
    p = shared_jobs(out, ids=[("p", "* * * * * *")])
    keep = [job("keep", command="true")]
    text = cluster_config(a, url, "a", p + keep, api_section(port),
                          lease="3s")
    a.start(text)
    wait_lines(out, lambda r: len(r) >= 1, "p running")
    status, _ = Api(port).json("POST", "/api/v1/jobs/p/pause")
    assert status == 200, status
    wait_rows(server, name, "SELECT paused FROM job_state WHERE job_id = 'p'",
              lambda r: r == [["t"]], "p paused in the store")
    assert reload(a, cluster_config(a, url, "a", keep, api_section(port),
                                    lease="3s"))[0]["result"] == "ok"
    assert reload(a, text)[0]["result"] == "ok"
    status, body = Api(port).json("GET", "/api/v1/jobs/p")
    assert status == 200 and not body.get("paused"), body
    before = len(ran_lines(out))
    wait_lines(out, lambda r: len(r) >= before + 1, "p running again")
    wait_rows(server, name, "SELECT paused FROM job_state WHERE job_id = 'p'",
              lambda r: r == [["f"]], "p unpaused in the store")
    a.stop()
    a.start()
    status, body = Api(port).json("GET", "/api/v1/jobs/p")
    assert status == 200 and not body.get("paused"), body
    before = len(ran_lines(out))
    wait_lines(out, lambda r: len(r) >= before + 1, "p running after the "
               "restart")
    a.stop()


def test_unique_key_is_the_clusters(hg, db, tmp_path):
    """Two instances; for each of twenty keys, an enqueue with that
    unique_key is sent to both at once (all forty in parallel, due in a
    few seconds). Per key: one 202 and one 409 with today's local
    conflict, one execution in the store, one run. Once the runs ended,
    the key is free again."""
    import concurrent.futures
    server, name, url = db
    out = tmp_path / "ran"
    ports = {}
    daemons = []
    for instance in ("a", "b"):
        d = instance_daemon(hg, instance)
        ports[instance] = free_port()
        d.start(cluster_config(d, url, instance, [queue_job(out)],
                               api_section(ports[instance]), lease="3s"))
        daemons.append(d)
    run_at = time.strftime("%Y-%m-%dT%H:%M:%SZ",
                           time.gmtime(time.time() + 4))
    keys = ["k%02d" % i for i in range(20)]

    def post(args):
        key, instance = args
        return key, Api(ports[instance]).json("POST", "/api/v1/queue", {
            "job": "q", "payload": key, "unique_key": key, "run_at": run_at})
    with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
        answers = list(pool.map(post, [(k, i) for k in keys
                                       for i in ("a", "b")]))
    by_key = collections.defaultdict(list)
    for key, (status, body) in answers:
        by_key[key].append((status, body))
    for key in keys:
        got = sorted(s for s, _ in by_key[key])
        assert got == [202, 409], (key, by_key[key])
        refused = [b for s, b in by_key[key] if s == 409][0]
        assert refused["error"] == {
            "code": "exists", "message": "an execution with this "
            "unique_key is queued already"}, refused
    assert rows(server, name, "SELECT unique_key, count(*) FROM executions"
                " GROUP BY 1 HAVING count(*) <> 1") == []
    got = wait_lines(out, lambda r: len(r) >= len(keys), "every key run")
    time.sleep(1)                       # a second run would show by now
    got = ran_lines(out)
    assert sorted(p for p, _, _ in got) == keys, got
    wait_rows(server, name, "SELECT count(*) FROM executions WHERE status"
              " IN ('queued', 'running')", lambda r: r == [["0"]],
              "every run ended")
    status, body = Api(ports["a"]).json("POST", "/api/v1/queue", {
        "job": "q", "payload": "again", "unique_key": "k00",
        "run_at": time.strftime("%Y-%m-%dT%H:%M:%SZ",
                                time.gmtime(time.time() + 60))})
    assert status == 202, body
    status, body = Api(ports["b"]).json("POST", "/api/v1/queue", {
        "job": "q", "payload": "twice", "unique_key": "k00"})
    assert status == 409 and body["error"]["code"] == "exists", body
    for d in daemons:
        d.stop()


def test_a_peer_job_refused_here_holds_back_no_other(hg, db):
    """Two jobs made through a's API in the same moment, one of a module
    b does not load: b refuses that one, saying why, and takes the other
    (each peer change is checked alone). A reload of b that loads the
    module checks the refused job again, as a's latest change has it."""
    server, name, url = db
    ports, daemons = {}, {}
    for instance, load in (("a", ("shell", "system")), ("b", ("shell",))):
        d = instance_daemon(hg, instance)
        ports[instance] = free_port()
        d.start(cluster_config(d, url, instance, [],
                               api_section(ports[instance]), lease="3s",
                               load=load))
        daemons[instance] = d
    a, b = Api(ports["a"]), Api(ports["b"])
    for body in ({"id": "sys", "type": "system", "task": "noop",
                  "every": "1h"},
                 {"id": "sh", "type": "shell", "command": "true",
                  "every": "1h"}):
        status, reply = a.json("POST", "/api/v1/jobs", body)
        assert status == 201, reply
    refused = daemons["b"].wait_event("job_refused", job="sys", timeout=15)
    assert "unknown module type" in refused[0]["message"], refused
    wait_until(lambda: b.json("GET", "/api/v1/jobs/sh")[0] == 200,
               timeout=15, what="sh on b")
    assert b.json("GET", "/api/v1/jobs/sys")[0] == 404
    assert a.json("GET", "/api/v1/jobs/sys")[0] == 200
    # a changes sys again: b refuses the newer definition too
    status, reply = a.json("PUT", "/api/v1/jobs/sys", {
        "id": "sys", "type": "system", "task": "noop", "every": "2h"})
    assert status == 200, reply
    daemons["b"].wait_event("job_refused", count=2, job="sys", timeout=15)
    # a reload of b that loads system checks the refused change again
    # (the newest), and b takes it; the reload after that has nothing
    # left to check
    nb = daemons["b"]
    nb.write(cluster_config(nb, url, "b", [], api_section(ports["b"]),
                            lease="3s", load=("shell", "system")))
    nb.signal(signal.SIGHUP)
    wait_until(lambda: b.json("GET", "/api/v1/jobs/sys")[0] == 200,
               timeout=15, what="sys on b after the reload that loads "
               "its module")
    job = b.json("GET", "/api/v1/jobs/sys")[1]
    assert job["definition"]["every"] == "2h", job
    assert len(nb.wait_event("job_added", job="sys")) == 1
    nb.signal(signal.SIGHUP)
    nb.wait_event("reload", count=2, result="ok")
    time.sleep(1)
    assert len(messages(nb, 'API job "sys", refused here before')) == 1
    assert len([e for e in nb.events() if e.get("event") == "job_added"
                and e.get("job") == "sys"]) == 1
    for d in daemons.values():
        d.stop()


def test_api_jobs_reach_every_instance(hg, db, tmp_path):
    """A job created through a's API reaches b within a tick (checked there
    as its own API's would be) and each of its fire times runs once in the
    cluster; replaced through b's API, a runs the new definition; deleted
    through a's, b drops it. A restart of b loads what the store has."""
    server, name, url = db
    out = tmp_path / "ran"
    ports, daemons = {}, {}
    for instance in ("a", "b"):
        d = instance_daemon(hg, instance)
        ports[instance] = free_port()
        d.start(cluster_config(d, url, instance, [],
                               api_section(ports[instance]), lease="3s"))
        daemons[instance] = d
    a, b = Api(ports["a"]), Api(ports["b"])

    def definition(word):
        return {"id": "dyn", "type": "shell", "schedule": "* * * * * *",
                "max_retries": 0,
                "command": 'echo "%s $HOURGLASS_SCHEDULED_FOR" >> %s'
                           % (word, out)}
    status, body = a.json("POST", "/api/v1/jobs", definition("one"))
    assert status == 201, body
    wait_until(lambda: b.json("GET", "/api/v1/jobs/dyn")[0] == 200,
               timeout=15, what="dyn on b")
    status, body = b.json("GET", "/api/v1/jobs/dyn")
    assert body["api"] and body["definition"]["command"].startswith(
        'echo "one'), body
    assert body["created_by"] == "api:ops", body
    daemons["b"].wait_for(lambda evs: [
        e for e in evs if e.get("event") == "job_added"
        and "another instance of the cluster" in e.get("message", "")],
        what="b saying whose job it added")
    wait_lines(out, lambda r: len(r) >= 4, "dyn running")

    # a job paused at once where it was made is paused where it arrives
    # (its pause, read before that instance knew the job, is read again)
    still = dict(definition("still"), id="still")
    assert a.json("POST", "/api/v1/jobs", still)[0] == 201
    assert a.json("POST", "/api/v1/jobs/still/pause")[0] == 200
    wait_until(lambda: b.json("GET", "/api/v1/jobs/still")[1].get("paused"),
               timeout=15, what="still paused on b")
    status, body = a.json("GET", "/api/v1/jobs/still")
    assert body["paused"], body
    assert rows(server, name, "SELECT paused FROM job_state WHERE"
                " job_id = 'still'") == [["t"]]

    status, body = b.json("PUT", "/api/v1/jobs/dyn", definition("two"))
    assert status == 200, body
    wait_until(lambda: a.json("GET", "/api/v1/jobs/dyn")[1]
               ["definition"]["command"].startswith('echo "two'),
               timeout=15, what="a running the new definition")
    wait_lines(out, lambda r: len([x for x in r if x[0] == "two"]) >= 3,
               "the new definition running")

    status, body = a.json("DELETE", "/api/v1/jobs/dyn")
    assert status == 200, body
    wait_until(lambda: b.json("GET", "/api/v1/jobs/dyn")[0] == 404,
               timeout=15, what="dyn gone from b")
    time.sleep(1.2)                     # a fire claimed already may end
    before = len(ran_lines(out))
    time.sleep(2)
    assert len(ran_lines(out)) == before, ran_lines(out)[before:]
    assert rows(server, name, "SELECT deleted, changed_by FROM jobs"
                " WHERE id = 'dyn'") == [["t", "a"]]
    daemons["b"].stop()
    daemons["b"].start()
    assert b.json("GET", "/api/v1/jobs/dyn")[0] == 404
    for d in daemons.values():
        d.stop()
    # each fire time of dyn ran once, whichever instance claimed it
    ran = collections.Counter((x[0] == "still", x[1])
                              for x in ran_lines(out))
    assert [t for t, n in ran.items() if n > 1] == [], ran
