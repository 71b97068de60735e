"""The admin API's queue: GET /api/v1/queue lists every execution that
waits to start, wherever it waits in the master (the ready queue, a future
run_at, a retry's backoff, behind a running execution of its job), in the
order they will run; DELETE /api/v1/queue/{id} takes one out so that it
never runs, not after a kill -9 and a restart either, and frees its
unique_key."""

import os
import re
import signal
import time

from conftest import (at_ahead, db_rows, job, parse_time, rfc3339,
                      sqlite_config, wait_until)
from test_api import Api as BaseApi, api_section, free_port


class Api(BaseApi):
    """test_api.py's client, acting as the execute role unless told."""

    def json(self, method, path, body=None, token="runner", raw=None):
        return super().json(method, path, body, token, raw)

    def enqueue(self, **body):
        status, answer = self.json("POST", "/api/v1/queue", body)
        assert status == 202, (body, answer)
        return answer["execution"]

    def queue(self, query=""):
        status, answer = self.json("GET", "/api/v1/queue" + query,
                                   token="reader")
        assert status == 200, answer
        return answer

    def queued(self, query=""):
        return [(e["id"], e["waiting"]) for e in
                self.queue(query)["executions"]]


SLEEP = "sleep 30"


def start(daemon, jobs, workers=1):
    port = free_port()
    daemon.start(sqlite_config(daemon, daemon.dir / "hg.db", jobs=jobs,
                               workers=workers, extra=api_section(port)))
    return Api(port)


def metric(api, name):
    """A sample of /metrics (0 when it is not there)."""
    status, text, _ = api.call("GET", "/metrics", token="reader")
    assert status == 200, text
    m = re.search(r"^%s (\S+)$" % re.escape(name), text.decode(), re.M)
    return float(m.group(1)) if m else 0.0


def test_the_queue_in_the_order_it_will_run(daemon):
    """Entries from each place an execution waits, ordered by due time
    (a past one counts as now), then priority, then id; each row's
    fields; the job filter and pages."""
    api = start(daemon, [
        job("slow", command=SLEEP, overlap="queue"),
        job("cat", command="cat", overlap="allow"),
        job("fails", command="exit 3", max_retries=1,
            backoff={"initial": "2h", "max": "2h", "jitter": 0.0})])
    # a retry waiting for its backoff, once its first attempt failed
    status, body = api.json("POST", "/api/v1/jobs/fails/trigger")
    assert status == 202, body
    daemon.wait_event("retry", job="fails")
    # the one worker busy, a run of slow waits behind it (overlap)
    status, body = api.json("POST", "/api/v1/jobs/slow/trigger")
    running = body["execution"]
    daemon.wait_event("start", exec=running)
    status, body = api.json("POST", "/api/v1/jobs/slow/trigger")
    assert status == 202, body
    behind = body["execution"]
    # due now, waiting for the worker; and three in the future
    now = time.time()
    ready = api.enqueue(job="cat", priority="high")
    later = api.enqueue(job="cat", run_at=rfc3339(now + 600),
                        priority="normal", payload="abc", unique_key="u1")
    soon_low = api.enqueue(job="cat", run_at=rfc3339(now + 300))
    soon_critical = api.enqueue(job="cat", run_at=rfc3339(now + 300),
                                priority="critical")

    listing = api.queue()
    rows = listing["executions"]
    ids = [r["id"] for r in rows]
    assert running not in ids, rows
    retry = [r for r in rows if r["job_id"] == "fails"]
    assert len(retry) == 1, rows
    # due now: cat (priority high) before slow (normal), though due
    # later; then by due time, the critical one first of the two due at
    # the same time
    assert ids == [ready, behind, soon_critical, soon_low, later,
                   retry[0]["id"]], rows
    assert listing["total"] == 6, listing
    assert [r["waiting"] for r in rows] == [
        "ready", "overlap", "scheduled", "scheduled", "scheduled",
        "scheduled"], rows
    row = rows[4]
    assert row == {
        "id": later, "job_id": "cat", "due": row["run_at"],
        "run_at": row["run_at"], "scheduled_for": row["run_at"],
        "priority": "normal", "triggered_by": "api:runner", "attempt": 1,
        "unique_key": "u1", "payload_bytes": 3, "waiting": "scheduled"}, row
    assert abs(parse_time(row["run_at"]) - int(now + 600)) < 1, row
    assert "unique_key" not in rows[0] and rows[0]["run_at"] is None, rows
    assert rows[0]["priority"] == "high" and rows[0]["payload_bytes"] == 0
    assert (rows[1]["job_id"], rows[1]["triggered_by"]) == ("slow", "api:runner")
    assert (retry[0]["triggered_by"], retry[0]["attempt"]) == ("retry", 2)
    assert parse_time(retry[0]["due"]) > now + 3600, retry

    # the filter, and pages of what it matched
    cat = api.queue("?job=cat")
    assert [r["id"] for r in cat["executions"]] == [
        ready, soon_critical, soon_low, later], cat
    assert cat["total"] == 4, cat
    page = api.queue("?job=cat&page=2&page_size=3")
    assert [r["id"] for r in page["executions"]] == [later], page
    assert (page["total"], page["limit"], page["offset"]) == (4, 3, 3)
    page = api.queue("?page=2&page_size=2")
    assert [r["id"] for r in page["executions"]] == ids[2:4], page
    assert api.queue("?job=nosuch") == {"executions": [], "total": 0,
                                        "limit": 50, "offset": 0}


def test_removed_never_runs_and_its_key_is_free(daemon):
    """A future run_at taken out: 200 killed, gone from the queue, never
    started (a later one ran first), recorded killed with who removed
    it, and its unique_key can be enqueued again."""
    api = start(daemon, [job("cat", command="cat", overlap="allow")],
                workers=2)
    now = time.time()
    gone = api.enqueue(job="cat", run_at=rfc3339(now + 2), unique_key="k")
    after = api.enqueue(job="cat", run_at=rfc3339(now + 3))
    status, body = api.json("POST", "/api/v1/queue", {"job": "cat",
                                                      "unique_key": "k"})
    assert status == 409, body

    status, body = api.json("DELETE", "/api/v1/queue/%s" % gone)
    assert (status, body) == (200, {"id": gone, "job_id": "cat",
                                    "status": "killed"}), body
    assert [i for i, _ in api.queued()] == [after]
    again = api.enqueue(job="cat", run_at=rfc3339(now + 3600),
                        unique_key="k")
    assert [i for i, _ in api.queued()] == [after, again]

    # past the removed one's run_at: the one due a second after it ran
    fin = daemon.wait_event("finish", exec=after, timeout=15)[0]
    assert fin["status"] == "succeeded", fin
    assert daemon.events("start", exec=gone) == []
    status, body = api.json("GET", "/api/v1/executions/%s" % gone,
                            token="reader")
    assert status == 200, body
    assert (body["status"], body["error"], body["started_at"]) == (
        "killed", "removed from the queue by api:runner", None), body
    row = db_rows(daemon.dir / "hg.db", "id = ?", (gone,))[0]
    assert (row["status"], row["error"]) == (
        "killed", "removed from the queue by api:runner"), row
    # removed again: it is not in the queue
    status, body = api.json("DELETE", "/api/v1/queue/%s" % gone)
    assert status == 404 and "it is killed" in body["error"]["message"], body


def test_counters_stay_right_and_what_waited_behind_goes(daemon):
    """Executions taken out of the ready queue and out of an overlap =
    queue list (its middle, its end) leave the job's pending count, the
    queue depth of /status and of /metrics right; one that waited behind
    a ready one moves up, and the list takes new ones at its end."""
    api = start(daemon, [
        job("hold", command=SLEEP),
        job("q", command="true", overlap="queue")])
    status, body = api.json("POST", "/api/v1/jobs/hold/trigger")
    hold = body["execution"]
    daemon.wait_event("start", exec=hold)

    def trigger():
        return api.json("POST", "/api/v1/jobs/q/trigger")[1]["execution"]

    def remove(exec_id):
        status, body = api.json("DELETE", "/api/v1/queue/%s" % exec_id)
        assert (status, body["status"]) == (200, "killed"), body

    def counts():
        return (api.json("GET", "/api/v1/jobs/q", token="reader")[1][
                    "pending"],
                api.json("GET", "/api/v1/status", token="reader")[1][
                    "queue_depth"],
                metric(api, "hourglass_queue_depth"))
    first, second, third = trigger(), trigger(), trigger()
    assert api.queued() == [(first, "ready"), (second, "overlap"),
                            (third, "overlap")]
    assert counts() == (1, 1, 1.0)

    remove(second)
    assert api.queued() == [(first, "ready"), (third, "overlap")]
    assert counts() == (1, 1, 1.0)
    remove(first)
    assert api.queued() == [(third, "ready")]
    assert counts() == (1, 1, 1.0)
    fourth = trigger()
    assert api.queued() == [(third, "ready"), (fourth, "overlap")]
    remove(fourth)
    fifth = trigger()
    assert api.queued() == [(third, "ready"), (fifth, "overlap")]
    remove(third)
    assert api.queued() == [(fifth, "ready")]
    remove(fifth)
    assert api.queued() == []
    assert counts() == (0, 0, 0.0)
    assert metric(api, 'hourglass_executions_total{job="q",'
                  'status="killed"}') == 5.0

    # the job is free again: a new run goes through once the worker is
    last = trigger()
    status, body = api.json("POST", "/api/v1/jobs/hold/stop")
    assert status == 200, body
    fin = daemon.wait_event("finish", exec=last, timeout=15)[0]
    assert fin["status"] == "succeeded", fin
    for gone in (first, second, third, fourth, fifth):
        assert daemon.events("start", exec=gone) == []


def test_a_jitter_wait_and_a_backoff_removed(daemon):
    """The two waits on a timer that count as the job's pending ones: a
    fire waiting out its jitter, a retry its backoff. Each taken out
    leaves its job's pending count."""
    api = start(daemon, [
        job("jit", command="true", at=rfc3339(at_ahead(1)), jitter="10h"),
        job("fails", command="exit 3", max_retries=1,
            backoff={"initial": "2h", "max": "2h", "jitter": 0.0})])
    status, body = api.json("POST", "/api/v1/jobs/fails/trigger")
    assert status == 202, body
    daemon.wait_event("retry", job="fails")
    wait_until(lambda: len(api.queued("?job=jit")) == 1,
               what="the fire of jit waiting out its jitter")
    waits = {e["job_id"]: (e["id"], e["waiting"])
             for e in api.queue()["executions"]}
    assert [w for _, w in waits.values()] == ["jitter", "scheduled"] \
        or [w for _, w in waits.values()] == ["scheduled", "jitter"], waits

    def pending():
        return [api.json("GET", "/api/v1/jobs/%s" % j, token="reader")[1][
            "pending"] for j in ("jit", "fails")]
    assert pending() == [1, 1]
    for j in ("jit", "fails"):
        status, body = api.json("DELETE", "/api/v1/queue/%s" % waits[j][0])
        assert (status, body["job_id"], body["status"]) == (200, j, "killed")
    assert api.queued() == [] and pending() == [0, 0]


def test_removal_survives_kill_9(daemon):
    """The answer comes once the store has it: a master killed right
    after, restarted, does not run it; it stays killed in the store."""
    api = start(daemon, [job("cat", command="cat", overlap="allow")],
                workers=2)
    now = time.time()
    gone = api.enqueue(job="cat", run_at=rfc3339(now + 2), unique_key="k")
    after = api.enqueue(job="cat", run_at=rfc3339(now + 4))
    status, body = api.json("DELETE", "/api/v1/queue/%s" % gone)
    assert (status, body["status"]) == (200, "killed"), body
    os.kill(daemon.pid, signal.SIGKILL)
    daemon.wait_exit()

    daemon.start()
    assert [i for i, _ in api.queued()] == [after]
    fin = daemon.wait_event("finish", exec=after, timeout=15)[0]
    assert fin["status"] == "succeeded", fin
    assert daemon.events("start", exec=gone) == []
    row = db_rows(daemon.dir / "hg.db", "id = ?", (gone,))[0]
    assert (row["status"], row["error"]) == (
        "killed", "removed from the queue by api:runner"), row
    api.enqueue(job="cat", unique_key="k")


def test_what_was_accepted_survives_kill_9(daemon):
    """A 202 (enqueue, trigger) comes once the store has the execution: a
    master killed right after the answer, restarted, still has each one
    (queued, or ended with a status), none lost."""
    api = start(daemon, [job("cat", command="cat", overlap="allow"),
                         job("slow", command=SLEEP)], workers=1)
    later = rfc3339(time.time() + 3600)
    queued = [api.enqueue(job="cat", run_at=later, payload=str(i))
              for i in range(5)]
    status, body = api.json("POST", "/api/v1/jobs/slow/trigger")
    assert status == 202, body
    triggered = body["execution"]
    os.kill(daemon.pid, signal.SIGKILL)
    daemon.wait_exit()

    daemon.start()
    assert sorted(i for i, _ in api.queued("?job=cat")) == sorted(queued)
    status, body = api.json("GET", "/api/v1/executions/" + triggered,
                            token="reader")
    assert status == 200, body


def test_what_cannot_be_removed(daemon):
    """404 for an unknown id and one that ended, 409 for one that runs,
    403 for a read token; bad ids get the JSON error shape."""
    api = start(daemon, [job("slow", command=SLEEP),
                         job("quick", command="true")], workers=2)
    status, body = api.json("POST", "/api/v1/jobs/slow/trigger")
    running = body["execution"]
    daemon.wait_event("start", exec=running)
    status, body = api.json("POST", "/api/v1/jobs/quick/trigger")
    ended = body["execution"]
    daemon.wait_event("finish", exec=ended)
    waiting = api.enqueue(job="slow", run_at=rfc3339(time.time() + 3600))

    status, body = api.json("DELETE", "/api/v1/queue/%s" % running)
    assert (status, body["error"]["code"]) == (409, "running"), body
    assert "POST /api/v1/jobs/slow/stop" in body["error"]["message"], body
    status, body = api.json("DELETE", "/api/v1/queue/%s" % ended)
    assert status == 404, body
    assert "it is succeeded" in body["error"]["message"], body
    status, body = api.json("DELETE", "/api/v1/queue/no-such-execution")
    assert (status, body["error"]["code"]) == (404, "not_found"), body
    status, body = api.json("DELETE", "/api/v1/queue/%s" % waiting,
                            token="reader")
    assert (status, body["error"]["code"]) == (403, "forbidden"), body

    for path in ["/api/v1/queue/" + "a" * 129, "/api/v1/queue/..",
                 "/api/v1/queue/%2e%2e", "/api/v1/queue/..%2Fjobs",
                 "/api/v1/queue/a%2Fb", "/api/v1/queue/%00"]:
        status, body = api.json("DELETE", path)
        assert 400 <= status < 500 and set(body) == {"error"} \
            and body["error"]["message"], (path, status, body)
    for query in ["?page=0", "?page=x", "?page_size=0", "?page_size=501",
                  "?page=-1"]:
        status, body = api.json("GET", "/api/v1/queue" + query)
        assert status == 400 and set(body) == {"error"}, (query, body)
    for method in ["PUT", "PATCH"]:
        status, body = api.json(method, "/api/v1/queue/%s" % waiting, {})
        assert 400 <= status < 500 and set(body) == {"error"}, (method, body)
    # none of that changed the queue or stopped what runs
    assert api.queued() == [(waiting, "scheduled")]
    assert daemon.events("finish", exec=running) == []
