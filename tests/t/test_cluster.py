"""Cluster mode on PostgreSQL (DESIGN.md "Cluster mode"): instances that
share a job set through one database run each scheduled fire time once.
The claim of a fire time is a row per (job, fire time) written in the
transaction that records the execution; an instance whose claim loses
forgets the fire. Against a real PostgreSQL that this module starts
(tests/t/pg.py)."""

import collections
import os
import re
import signal
import time


from conftest import MEMORY_STORE, conf_value, job, run_hourglass
from test_api import Api, api_section, free_port
from test_store_pg import db, pg_config, rows, server  # noqa: F401

JOBS = 10


def cluster_config(d, url, instance, jobs, api="", lease="10s"):
    return pg_config(d, url, workers=2, jobs=jobs, extra=(
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
