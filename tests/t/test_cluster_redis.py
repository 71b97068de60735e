"""Cluster coordination through Redis (store.driver "redis", README "Redis
coordination"): instances claim each fire time in Redis (SET NX with an
expiry) and keep their history in their own SQLite files; one of them is
the leader. Against a real redis-server that these tests start
(tests/t/redis.py), on a Unix socket in a temporary directory."""

import collections
import re
import signal
import sqlite3
import time

import pytest

import redis
from conftest import MEMORY_STORE, conf_value, job, run_hourglass, wait_until
from test_api import Api, api_section, free_port
from test_cluster import kill_strays

JOBS = 4


@pytest.fixture
def server():
    redis.require(pytest)
    s = redis.RedisServer(persist=True)
    s.start()
    yield s
    s.destroy()


def redis_config(d, url, instance, jobs, api="", lease="2s", workers=2):
    text = d.config(jobs=jobs, workers=workers, extra=(
        "cluster = { instance = %s; lease = \"%s\"; }; %s"
        % (conf_value(instance), lease, api)))
    assert MEMORY_STORE in text
    return text.replace(MEMORY_STORE, "store = %s;" % conf_value(
        {"driver": "redis", "url": url, "path": str(d.dir / "history.db")}))


def shared_jobs(out, n=JOBS, **keys):
    """N jobs every second; each run appends job, fire time, instance."""
    cmd = 'echo "$HOURGLASS_JOB_ID $HOURGLASS_SCHEDULED_FOR ' \
          '$HG_TEST_INSTANCE" >> %s' % out
    return [job("r%02d" % i, command=cmd, schedule="* * * * * *",
                max_retries=0, pass_env=["HG_TEST_INSTANCE"], **keys)
            for i in range(n)]


def instance(hg, name):
    d = hg(name)
    d.extra_env["HG_TEST_INSTANCE"] = name
    return d


def runs(out):
    """{(job, fire time): [instances]} from the commands' own lines."""
    seen = collections.defaultdict(list)
    if out.exists():
        for line in out.read_text().splitlines():
            job_id, fire, who = line.split()
            seen[(job_id, fire)].append(who)
    return seen


def assert_once_and_whole(seen, begin, end, jobs=JOBS):
    twice = {k: v for k, v in seen.items() if len(v) > 1}
    assert twice == {}, "fire times run twice: %s" % list(twice.items())[:5]
    fired = {k[1] for k in seen}
    for second in range(int(begin) + 1, int(end) - 1):
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(second))
        for i in range(jobs):
            assert ("r%02d" % i, stamp) in seen, (
                "r%02d at %s ran nowhere (fired: %s)"
                % (i, stamp, sorted(fired)[:3]))


def history_instances(d):
    """The instances named by the executions in D's own SQLite file."""
    con = sqlite3.connect("file:%s?mode=ro" % (d.dir / "history.db"),
                          uri=True)
    try:
        return {r[0].split()[-1] for r in con.execute(
            "SELECT output FROM executions WHERE output IS NOT NULL")}, \
            con.execute("SELECT count(*) FROM executions").fetchone()[0]
    finally:
        con.close()


def test_each_fire_time_runs_once_through_redis(hg, server, tmp_path):
    """Three instances on four jobs every second; one is killed with
    kill -9 and started again. From the commands' side no fire time ran
    twice and every second ran for every job; Redis holds one claim per
    fire time; each instance's history is its own; exactly one instance
    leads, as the status, the metrics and Redis say."""
    out = tmp_path / "ran"
    daemons, ports = {}, {}
    for name in ("a", "b", "c"):
        d = instance(hg, name)
        ports[name] = free_port()
        d.start(redis_config(d, server.url, name, shared_jobs(out),
                             api_section(ports[name])))
        daemons[name] = d
    begin = time.time()
    time.sleep(3)
    b = daemons["b"]
    b.signal(signal.SIGKILL)
    b.wait_exit()
    kill_strays(b)
    time.sleep(1.5)
    b.start()
    time.sleep(3)
    leaders = {}

    def one_leader():
        leaders.clear()
        for name, port in ports.items():
            status, body = Api(port).json("GET", "/api/v1/status")
            cluster = body["cluster"]
            assert status == 200 and cluster["instance"] == name and \
                cluster["coordinator"] == "redis", body
            leaders[name] = cluster["leader"]
        return sum(leaders.values()) == 1
    # b's kill -9 may have taken the leader with it: its key expires
    # after the lease and a peer takes it at its next tick.
    wait_until(one_leader, timeout=10, what="exactly one leader")
    leader = [n for n, v in leaders.items() if v][0]
    assert server.get("hourglass:leader").startswith(leader + "/")
    end = time.time()
    for d in daemons.values():
        d.stop()
    seen = runs(out)
    assert_once_and_whole(seen, begin, end)
    by = collections.Counter(w for v in seen.values() for w in v)
    print("runs by instance: %s" % dict(by))

    # A clean stop gives the leadership back at once.
    assert server.get("hourglass:leader") == ""
    claims = server.keys("hourglass:claim:*")
    assert len(claims) >= len(seen), (len(claims), len(seen))
    # Each instance records only what it ran, in its own file.
    for name, d in daemons.items():
        names, count = history_instances(d)
        assert names <= {name}, (name, names)
        assert count >= by[name], (name, count, by[name])


def test_metrics_say_who_leads(hg, server, tmp_path):
    """hourglass_leader is 1 on the leader and 0 on the other; status
    lists both instances live with their lease left."""
    ports = {}
    for name in ("a", "b"):
        d = instance(hg, name)
        ports[name] = free_port()
        d.start(redis_config(d, server.url, name, [], api_section(
            ports[name])))
    values = {}

    def settled():
        for name, port in ports.items():
            text = Api(port).call("GET", "/metrics")[1].decode()
            values[name] = re.search(r"^hourglass_leader (\S+)$", text,
                                     re.M).group(1)
        return sorted(values.values()) == ["0", "1"]
    wait_until(settled, timeout=10, what="one leader in the metrics")
    peers = {}

    def both_seen():
        status, body = Api(ports["a"]).json("GET", "/api/v1/status")
        assert status == 200, body
        peers.clear()
        peers.update({p["name"]: p for p in body["cluster"]["instances"]})
        return set(peers) == {"a", "b"}
    # a's picture is as old as its last tick (a third of the lease)
    wait_until(both_seen, timeout=10, what="both instances in a's status")
    body = peers
    assert all(p["live"] and 0 < p["lease_left_ms"] <= 2000
               for p in peers.values()), body
    assert [n for n, p in peers.items() if p["leader"]] == \
        [n for n, v in values.items() if v == "1"], (peers, values)


def test_redis_restart_loses_nothing(hg, server, tmp_path):
    """Redis (with its append-only file) stops for two seconds and starts
    again. Each instance says once that it cannot reach it and once that
    it answers again; the fires of the outage wait and run after it (all
    of them: overlap = "queue", as with "skip" the fires claimed together
    after the outage would skip each other); none runs twice and every
    second ran for every job."""
    out = tmp_path / "ran"
    daemons = []
    for name in ("a", "b"):
        d = instance(hg, name)
        d.start(redis_config(d, server.url, name, shared_jobs(
            out, 3, overlap="queue")))
        daemons.append(d)
    begin = time.time()
    time.sleep(2.5)
    server.stop()
    time.sleep(2)
    server.start()
    for d in daemons:
        d.wait_for(lambda evs: any("answers again" in e.get("message", "")
                                   or "writes again" in e.get("message", "")
                                   for e in evs),
                   timeout=15, what="the store writing again")
    time.sleep(2.5)
    end = time.time()
    for d in daemons:
        d.stop()
    assert_once_and_whole(runs(out), begin, end, jobs=3)
    for d in daemons:
        warned = [e["message"] for e in d.events()
                  if e.get("level") in ("warn", "error")
                  and ("Redis" in e.get("message", "")
                       or "redis" in e.get("message", ""))]
        print(d.dir.name, warned)
        assert warned, "nothing said of Redis going away"
        assert len(warned) <= 2, warned


def test_second_process_under_the_same_name_is_fenced(hg, server):
    """A second process started as instance "a" takes a new term; the
    first finds at its next tick that it no longer holds the name, says
    so and exits with status 1."""
    first, second = hg("first"), hg("second")
    first.start(redis_config(first, server.url, "a", []))
    second.start(redis_config(second, server.url, "a", []))
    first.wait_exit(timeout=15)
    assert first.proc.returncode == 1
    said = [e["message"] for e in first.events()
            if "another process joined as instance" in e.get("message", "")]
    assert said, first.master_output()
    assert second.running()


def test_t_names_an_unreachable_redis(hg, tmp_path):
    """-t with nothing at store.url, or a URL that is not Redis's: the
    error names the key and what is wrong."""
    d = hg()
    url = "unix://%s/nothing.sock" % tmp_path
    d.write(redis_config(d, url, "a", []))
    r = run_hourglass("-t", "-p", d.dir, "-c", d.conf, timeout=10)
    assert r.returncode == 1, r.stdout
    assert "store.url: cannot reach Redis: %s: " % url in r.stderr, r.stderr
    d.write(redis_config(d, "http://127.0.0.1:6379", "a", []))
    r = run_hourglass("-t", "-p", d.dir, "-c", d.conf, timeout=10)
    assert r.returncode == 1, r.stdout
    assert 'store.url: "http://127.0.0.1:6379" is not a Redis URL' \
        in r.stderr, r.stderr


def test_dead_man_alerts_are_the_leaders_and_see_every_instance(hg, server,
                                                                 tmp_path):
    """Job "watched" expects a run every 3 s. Instance a runs it every
    second; b holds it too but with a yearly schedule, so b's own history
    never has a run. b must not say it is overdue: the last run anywhere
    comes from Redis. Then a stops (cleanly: b leads at once) and the job
    runs nowhere: b, the leader, raises overdue."""
    out = tmp_path / "ran"
    expect = {"run_within": "3s"}
    cmd = "echo ran >> %s" % out
    a, b = instance(hg, "a"), instance(hg, "b")
    a.start(redis_config(a, server.url, "a", [job(
        "watched", command=cmd, schedule="* * * * * *", expect=expect)]))
    b.start(redis_config(b, server.url, "b", [job(
        "watched", command=cmd, schedule="0 0 1 1 *", expect=expect)]))
    time.sleep(6)
    assert out.exists() and len(out.read_text().split()) >= 4
    for d in (a, b):
        assert d.events("overdue") == [], d.events("overdue")
    a.stop()
    b.wait_event("overdue", timeout=15)
    ev = b.events("overdue")[0]
    assert ev["job"] == "watched", ev
