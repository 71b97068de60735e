"""The admin HTTP API served from the master's loop: jobs added, read,
triggered, replaced, paused and deleted over real HTTP on loopback;
tokens and roles (401 without a token, 403 with a weak one, the allow
list before anything); and bad requests answered with the JSON error
shape, changing nothing."""

import json
import re
import time
import socket
import sqlite3
import urllib.error
import urllib.request

import pytest

from conftest import (job, parse_time, sanitized_build, sqlite_config,
                      wait_until)

TOKENS = {"reader": "r-" + "x" * 30, "runner": "e-" + "y" * 30,
          "writer": "w-" + "z" * 30, "ops": "a-" + "q" * 30}
ROLES = {"reader": "read", "runner": "execute", "writer": "write",
         "ops": "admin"}


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def api_section(port, allow=("127.0.0.0/8", "::1/128"), body_limit="4KiB",
                timeout="30s"):
    tokens = ", ".join('{ name = "%s"; token = "%s"; role = "%s"; }'
                       % (n, t, ROLES[n]) for n, t in TOKENS.items())
    return ('api = { listen = "127.0.0.1:%d"; allow = [ %s ]; '
            'body_limit = "%s"; timeout = "%s"; tokens = ( %s ); };'
            % (port, ", ".join('"%s"' % a for a in allow), body_limit,
               timeout, tokens))


def self_signed(directory):
    """A self-signed certificate for 127.0.0.1 and its key, made with
    openssl in DIRECTORY: (cert.pem, key.pem)."""
    import subprocess
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048",
                    "-nodes", "-keyout", str(key), "-out", str(cert),
                    "-days", "2", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1"],
                   check=True, capture_output=True)
    return cert, key


class Api:
    def __init__(self, port):
        self.base = "http://127.0.0.1:%d" % port

    def call(self, method, path, body=None, token="ops", raw=None,
             headers=None):
        data = raw if raw is not None else (
            json.dumps(body).encode() if body is not None else None)
        req = urllib.request.Request(self.base + path, data=data,
                                     method=method)
        if token is not None:
            req.add_header("Authorization", "Bearer " + TOKENS.get(token,
                                                                   token))
        if data is not None:
            req.add_header("Content-Type", "application/json")
        for k, v in (headers or {}).items():
            req.add_header(k, v)
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                return resp.status, resp.read(), resp.headers
        except urllib.error.HTTPError as e:
            return e.code, e.read(), e.headers

    def json(self, method, path, body=None, token="ops", raw=None):
        status, text, _ = self.call(method, path, body, token, raw)
        return status, json.loads(text)


@pytest.fixture
def api(daemon):
    port = free_port()
    db = daemon.dir / "hg.db"
    daemon.start(sqlite_config(daemon, db, jobs=[job(
        "file", command="true", every="1h")], extra=api_section(port)))
    return Api(port)


def test_jobs_through_the_api(daemon, api):
    status, body = api.json("GET", "/healthz", token=None)
    assert status == 200 and body["status"] == "ok", body
    assert body["problems"] == [] and body["workers_ready"] == 2, body

    status, body = api.json("POST", "/api/v1/jobs", {
        "id": "hello", "type": "shell", "command": "echo hello-api",
        "schedule": "0 3 * * *"}, token="writer")
    assert status == 201, body
    assert body["created_by"] == "api:writer"
    assert len(body["next_fires"]) == 5

    status, body = api.json("POST", "/api/v1/jobs/hello/trigger",
                            token="runner")
    assert status == 202, body
    exec_id = body["execution"]
    fin = daemon.wait_event("finish", exec=exec_id)[0]
    assert fin["status"] == "succeeded", fin

    status, body = api.json("GET", "/api/v1/jobs/hello", token="reader")
    assert status == 200, body
    assert body["definition"]["command"] == "echo hello-api"
    assert len(body["next_fires"]) == 5

    status, body = api.json("PUT", "/api/v1/jobs/hello", {
        "type": "shell", "command": "echo replaced", "every": "1h"},
        token="writer")
    assert status == 200, body
    assert body["definition"]["command"] == "echo replaced"
    assert body["created_by"] == "api:writer"

    status, body = api.json("PATCH", "/api/v1/jobs/hello", {
        "command": "echo patched", "every": None, "schedule": "0 4 * * *",
        "backoff": {"initial": "2s"}}, token="writer")
    assert status == 200, body
    assert body["definition"] == {
        "id": "hello", "type": "shell", "command": "echo patched",
        "schedule": "0 4 * * *", "backoff": {"initial": "2s"}}, body
    status, body = api.json("PATCH", "/api/v1/jobs/hello", {"id": "other"})
    assert status == 422 and body["error"]["errors"][0]["field"] == "id"
    status, body = api.json("PATCH", "/api/v1/jobs/hello", {
        "schedule": "not cron"})
    assert status == 422, body
    assert body["error"]["errors"][0]["field"] == "schedule", body
    assert api.json("PATCH", "/api/v1/jobs/file", {"every": "2h"})[0] == 403
    assert api.json("PATCH", "/api/v1/jobs/nope", {"every": "2h"})[0] == 404

    status, body = api.json("POST", "/api/v1/jobs/hello/pause",
                            token="runner")
    assert (status, body["paused"]) == (200, True), body
    status, body = api.json("POST", "/api/v1/jobs/hello/resume",
                            token="runner")
    assert (status, body["paused"]) == (200, False), body

    # the file's jobs are read only through the API
    status, body = api.json("PUT", "/api/v1/jobs/file", {
        "type": "shell", "command": "true", "every": "1h"})
    assert status == 403, body
    status, body = api.json("DELETE", "/api/v1/jobs/file")
    assert status == 403, body

    status, body = api.json("DELETE", "/api/v1/jobs/hello", token="writer")
    assert status == 200, body
    status, body = api.json("GET", "/api/v1/jobs/hello", token="reader")
    assert status == 404, body
    assert body["error"]["code"] == "not_found"

    status, text, headers = api.call("GET", "/metrics", token="reader")
    assert status == 200
    assert headers["Content-Type"].startswith("text/plain")
    assert b"hourglass_executions_total" in text


def test_tokens_and_roles(api):
    status, body = api.json("GET", "/api/v1/jobs/file", token=None)
    assert status == 401 and "a bearer token is required" in \
        body["error"]["message"], body
    # a wrong token is told apart from none, and never echoed
    status, body = api.json("GET", "/api/v1/jobs/file", token="wrong")
    assert status == 401 and body["error"]["message"] == \
        "this bearer token is not one of api.tokens", body
    assert api.json("GET", "/api/v1/jobs/file", token="reader")[0] == 200
    status, body = api.json("GET", "/api/v1/jobs", token="reader")
    assert [j["id"] for j in body["jobs"]] == ["file"], body
    status, body = api.json("POST", "/api/v1/jobs/file/trigger",
                            token="reader")
    assert status == 403 and "execute" in body["error"]["message"], body
    status, body = api.json("POST", "/api/v1/jobs", {
        "id": "x", "type": "shell", "command": "true"}, token="runner")
    assert status == 403, body
    assert api.json("GET", "/metrics", token=None)[0] == 401


def test_outside_the_allow_list_is_refused_first(daemon):
    port = free_port()
    daemon.start(daemon.config(jobs=[job("file", command="true",
                                         every="1h")],
                               extra=api_section(port,
                                                 allow=("10.0.0.0/8",))))
    api = Api(port)
    for path in ("/healthz", "/api/v1/jobs/file", "/nowhere"):
        status, body = api.json("GET", path, token=None)
        assert status == 403, (path, body)
        assert body["error"]["code"] == "forbidden"


def test_bad_requests_change_nothing(daemon, api):
    cases = [
        ("POST", "/api/v1/jobs", b"{not json", 400),
        ("POST", "/api/v1/jobs", b"[1, 2]", 400),
        ("POST", "/api/v1/jobs", b"", 400),
        ("POST", "/api/v1/jobs", b'{"id": "a", "id": "b"}', 400),
        ("POST", "/api/v1/jobs", b'{"id": "b d", "type": "shell"}', 422),
        ("POST", "/api/v1/jobs", b'{"id": "' + b"x" * 129 + b'"}', 422),
        ("POST", "/api/v1/jobs",
         b'{"id": "c", "type": "shell", "command": "true",'
         b' "schedule": "61 * * * *"}', 422),
        ("POST", "/api/v1/jobs",
         b'{"id": "c", "type": "shell", "command": 7}', 422),
        ("POST", "/api/v1/jobs", b'{"id": "c", "type": "nosuch"}', 422),
        ("POST", "/api/v1/jobs",
         b'{"id": "c", "type": "shell", "command": "true", "colour": 1}',
         422),
        ("POST", "/api/v1/jobs", b'{"id": "file", "type": "shell",'
         b' "command": "true"}', 409),
        ("POST", "/api/v1/jobs", b'{"id": "' + b"y" * 5000 + b'"}', 413),
        ("PUT", "/api/v1/jobs/other", b'{"id": "file"}', 422),
        ("GET", "/api/v1/jobs/..", None, 404),
        ("GET", "/api/v1/jobs/..%2Fetc", None, 404),
        ("GET", "/api/v1/jobs/%00", None, 404),
        ("GET", "/api/v1/jobs/" + "z" * 200, None, 404),
        ("GET", "/api/v1/nothing", None, 404),
        ("PATCH", "/api/v1/jobs", None, 405),
        ("DELETE", "/healthz", None, 405),
        ("POST", "/api/v1/jobs/none/trigger", None, 404),
    ]
    for method, path, raw, want in cases:
        status, text, headers = api.call(method, path, raw=raw)
        assert status == want, (method, path, raw, status, text)
        body = json.loads(text)
        assert set(body) == {"error"}, body
        assert body["error"]["code"] and body["error"]["message"], body
    status, body = api.json("POST", "/api/v1/jobs", raw=b'{"id": "c", '
                            b'"type": "shell", "command": "true", '
                            b'"schedule": "61 * * * *"}')
    assert body["error"]["errors"][0]["field"] == "schedule", body
    # nothing was added
    for jid in ("a", "b", "c", "b d"):
        assert api.json("GET", "/api/v1/jobs/%s" % jid.replace(" ", "%20"),
                        token="reader")[0] == 404
    assert api.json("GET", "/api/v1/jobs/file", token="reader")[0] == 200
    status, body = api.json("GET", "/api/v1/jobs", token="reader")
    assert [j["id"] for j in body["jobs"]] == ["file"], body


def test_executions_dead_letters_stop_and_reload(daemon, api):
    status, body = api.json("POST", "/api/v1/jobs", {
        "id": "fails", "type": "shell", "command": "echo broke; exit 3",
        "max_retries": 0})
    assert status == 201, body
    dead = []
    for _ in range(3):
        status, body = api.json("POST", "/api/v1/jobs/fails/trigger")
        assert status == 202, body
        dead.append(body["execution"])
        daemon.wait_event("finish", exec=body["execution"])

    status, body = api.json("GET", "/api/v1/executions/%s" % dead[0],
                            token="reader")
    assert status == 200, body
    assert body["output"] == "broke\n" and body["exit_code"] == 3, body
    assert body["triggered_by"] == "api:ops", body
    assert api.json("GET", "/api/v1/executions/nope")[0] == 404

    def dead_ids():
        status, body = api.json("GET", "/api/v1/dead?job=fails&page_size=10",
                                token="reader")
        assert status == 200, body
        assert body["total"] == len(body["executions"]), body
        return [e["id"] for e in body["executions"]]
    wait_until(lambda: len(dead_ids()) == 3, what="3 dead letters")
    assert api.json("GET", "/api/v1/dead?page_size=0")[0] == 400
    assert api.json("GET", "/api/v1/dead?page=x")[0] == 400

    status, body = api.json("POST", "/api/v1/dead/%s/retry" % dead[0],
                            token="runner")
    assert status == 200 and len(body["retried"]) == 1, body
    daemon.wait_event("finish", exec=body["retried"][0]["execution"])
    status, body = api.json("DELETE", "/api/v1/dead/%s" % dead[1],
                            token="writer")
    assert (status, body) == (200, {"purged": 1}), body
    assert api.json("DELETE", "/api/v1/dead/%s" % dead[1])[0] == 404
    wait_until(lambda: len(dead_ids()) == 2, what="2 dead letters (one "
               "retried and dead again, one left)")
    status, body = api.json("POST", "/api/v1/dead/purge", {"job": "fails"},
                            token="writer")
    assert (status, body) == (200, {"purged": 2}), body
    assert dead_ids() == []
    assert api.json("POST", "/api/v1/dead/purge", {"job": 1})[0] == 422
    assert api.json("POST", "/api/v1/dead/purge", {"before": "soon"})[0] \
        == 422
    assert api.json("POST", "/api/v1/dead/purge", {"jobs": "x"})[0] == 422
    assert api.json("POST", "/api/v1/dead/purge", {"job": "fails"},
                    token="runner")[0] == 403

    status, body = api.json("POST", "/api/v1/jobs", {
        "id": "sleeper", "type": "shell", "command": "sleep 30"})
    assert status == 201, body
    status, body = api.json("POST", "/api/v1/jobs/sleeper/trigger")
    daemon.wait_event("start", exec=body["execution"])
    status, body = api.json("POST", "/api/v1/jobs/sleeper/stop",
                            token="runner")
    assert (status, body["killed"]) == (200, 1), body
    fin = daemon.wait_event("finish", job="sleeper")[0]
    assert fin["status"] == "killed", fin

    assert api.json("POST", "/api/v1/reload", token="writer")[0] == 403
    status, body = api.json("POST", "/api/v1/reload")
    assert status == 202, body
    daemon.wait_event("reload", result="ok")
    # the API's jobs are still there after the reload
    assert api.json("GET", "/api/v1/jobs/sleeper")[0] == 200


def test_enqueue(daemon, api):
    status, body = api.json("POST", "/api/v1/jobs", {
        "id": "cat", "type": "shell", "command": "cat", "overlap": "allow"})
    assert status == 201, body
    status, body = api.json("POST", "/api/v1/queue", {
        "job": "cat", "payload": {"order": 42}, "priority": "high"},
        token="runner")
    assert status == 202, body
    fin = daemon.wait_event("finish", exec=body["execution"])[0]
    assert fin["status"] == "succeeded", fin
    status, body = api.json("GET", "/api/v1/executions/%s"
                            % body["execution"])
    assert body["output"] == '{"order":42}' and body["triggered_by"] \
        == "api:runner", body
    # a unique key pending is refused; run_at in the future keeps it pending
    status, body = api.json("POST", "/api/v1/queue", {
        "job": "cat", "run_at": "2099-01-01T00:00:00Z", "unique_key": "k"})
    assert status == 202, body
    status, body = api.json("POST", "/api/v1/queue", {
        "job": "cat", "unique_key": "k"})
    assert status == 409, body
    for bad, want in (({"job": "nope"}, 404), ({}, 422),
                      ({"job": "cat", "priority": "urgent"}, 422),
                      ({"job": "cat", "run_at": "tomorrow"}, 422),
                      ({"job": "cat", "unique_key": 5}, 422),
                      ({"job": "cat", "colour": "red"}, 422)):
        status, body = api.json("POST", "/api/v1/queue", bad)
        assert status == want, (bad, body)
    assert api.json("POST", "/api/v1/queue", {"job": "cat"},
                    token="reader")[0] == 403


def test_job_list_filters_and_pages(daemon, api):
    for i in range(7):
        status, body = api.json("POST", "/api/v1/jobs", {
            "id": "j%d" % i, "type": "shell", "command": "true",
            "every": "1h", "tags": ["even" if i % 2 == 0 else "odd",
                                    "nightly"]})
        assert status == 201, body
    api.json("POST", "/api/v1/jobs/j3/pause")
    status, body = api.json("GET", "/api/v1/jobs?page_size=3&page=2",
                            token="reader")
    assert status == 200, body
    assert body["total"] == 8 and body["page"] == 2, body
    assert [j["id"] for j in body["jobs"]] == ["j2", "j3", "j4"], body
    assert body["jobs"][0]["api"] is True and body["jobs"][0]["next_fire"]
    status, body = api.json("GET", "/api/v1/jobs?status=paused")
    assert [j["id"] for j in body["jobs"]] == ["j3"], body
    status, body = api.json("GET", "/api/v1/jobs?status=active&page_size=500")
    assert body["total"] == 7, body
    status, body = api.json("GET", "/api/v1/jobs?type=http")
    assert body["total"] == 0, body
    status, body = api.json("GET", "/api/v1/jobs?tag=odd", token="reader")
    assert [j["id"] for j in body["jobs"]] == ["j1", "j3", "j5"], body
    assert body["jobs"][0]["tags"] == ["odd", "nightly"], body
    status, body = api.json("GET", "/api/v1/jobs?tag=even&status=active")
    assert [j["id"] for j in body["jobs"]] == ["j0", "j2", "j4", "j6"], body
    status, body = api.json("GET", "/api/v1/jobs?tag=nightly&type=shell")
    assert body["total"] == 7, body
    status, body = api.json("GET", "/api/v1/jobs?tag=weekly")
    assert body["total"] == 0 and body["jobs"] == [], body
    # a job of the file without tags shows an empty list
    assert api.json("GET", "/api/v1/jobs?page_size=1")[1]["jobs"][0][
        "tags"] == [], body
    # the listing follows the table: a job deleted is gone from it
    assert api.json("DELETE", "/api/v1/jobs/j6")[0] == 200
    status, body = api.json("GET", "/api/v1/jobs?tag=even")
    assert [j["id"] for j in body["jobs"]] == ["j0", "j2", "j4"], body
    status, body = api.json("GET", "/api/v1/jobs?page=3&page_size=3")
    assert body["total"] == 7 and [j["id"] for j in body["jobs"]] == [
        "j5"], body
    for q in ("status=gone", "page=0", "page_size=501", "page_size=-1",
              "page=1e3"):
        assert api.json("GET", "/api/v1/jobs?" + q)[0] == 400, q


def test_every_described_route_answers(api):
    status, doc = api.json("GET", "/api/v1/openapi.json", token=None)
    assert status == 200 and doc["openapi"].startswith("3."), doc
    n = 0
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            url = path.replace("{id}", "none")
            n += 1
            if path == "/api/v1/events":    # a stream: opened, not read
                req = urllib.request.Request(api.base + url)
                req.add_header("Authorization", "Bearer " + TOKENS["ops"])
                with urllib.request.urlopen(req, timeout=10) as resp:
                    assert resp.status == 200
                continue
            status, text, _ = api.call(method.upper(), url, raw=b"{}"
                                       if method in ("post", "put") else
                                       None)
            assert status != 405, (method, path)
            if status == 404:
                assert json.loads(text)["error"]["message"] \
                    != "no such route", (method, path)
            if op["x-hourglass-role"] != "none":
                assert api.call(method.upper(), url, token=None)[0] == 401, \
                    (method, path)
    assert n >= 20


def test_status(daemon, api):
    status, body = api.json("POST", "/api/v1/jobs/file/trigger")
    daemon.wait_event("finish", exec=body["execution"])
    status, body = api.json("GET", "/api/v1/status", token="reader")
    assert status == 200, body
    assert body["version"] and body["pid"] == daemon.pid, body
    assert body["configuration"] == str(daemon.conf), body
    assert body["workers_configured"] == 2, body
    assert body["workers"]["idle"] + body["workers"]["busy"] == 2, body
    assert body["jobs"] == 1 and body["executions_ended"]["succeeded"] == 1
    assert body["uptime_s"] >= 0 and body["reloads"] == {"ok": 0,
                                                         "failed": 0}
    status, body = api.json("GET", "/api/v1/stats", token="reader")
    assert status == 200, body
    assert body["executions_ended"]["succeeded"] == 1, body
    assert body["jobs"] == {"scheduled": 1, "paused": 0, "disabled": 0,
                            "manual": 0}, body
    assert body["dispatched"] == 1 and body["finished"] == 1, body


def test_healthz_says_what_is_wrong(daemon):
    """A store another process holds cannot be written: 503 naming it;
    200 again once it can."""
    port = free_port()
    db = daemon.dir / "hg.db"
    daemon.start(sqlite_config(daemon, db, jobs=[job(
        "tick", command="true", every="200ms")], extra=api_section(port)))
    api = Api(port)
    assert api.json("GET", "/healthz", token=None)[0] == 200
    con = sqlite3.connect(str(db), timeout=10, isolation_level=None)
    con.execute("BEGIN EXCLUSIVE")
    try:
        def unwell():
            status, body = api.json("GET", "/healthz", token=None)
            return body if status == 503 else None
        body = wait_until(unwell, what="/healthz saying 503")
        assert body["status"] == "unwell", body
        assert any("store" in p for p in body["problems"]), body
    finally:
        con.execute("ROLLBACK")
        con.close()
    wait_until(lambda: api.json("GET", "/healthz", token=None)[0] == 200,
               what="/healthz well again")


def test_a_jobs_executions_newest_first_in_pages(daemon, api):
    status, body = api.json("POST", "/api/v1/jobs", {
        "id": "n", "type": "shell", "command": "exit $((RANDOM % 1))",
        "overlap": "allow"})
    ids = []
    for _ in range(5):
        status, body = api.json("POST", "/api/v1/jobs/n/trigger")
        ids.append(body["execution"])
        daemon.wait_event("finish", exec=body["execution"])
    status, body = api.json("GET", "/api/v1/jobs/n/executions?page_size=2",
                            token="reader")
    assert status == 200, body
    assert body["total"] == 5, body
    assert [e["id"] for e in body["executions"]] == ids[::-1][:2], body
    assert "output" in body["executions"][0]
    status, body = api.json("GET", "/api/v1/jobs/n/executions?page=3"
                            "&page_size=2&status=succeeded")
    assert [e["id"] for e in body["executions"]] == [ids[0]], body
    assert api.json("GET", "/api/v1/jobs/n/executions?status=fine")[0] == 400
    assert api.json("GET", "/api/v1/jobs/none/executions")[0] == 404


def test_tls(daemon, tmp_path):
    """api.tls serves HTTPS with the given pair; -t names a missing file."""
    import ssl
    cert, key = self_signed(tmp_path)
    port = free_port()
    tls = ' tls = { cert = "%s"; key = "%s"; };' % (cert, key)
    text = daemon.config(jobs=[job("file", command="true", every="1h")],
                         extra=api_section(port).replace(
                             "tokens =", tls + " tokens ="))
    daemon.start(text)
    ctx = ssl.create_default_context(cafile=str(cert))
    req = urllib.request.Request("https://127.0.0.1:%d/api/v1/jobs/file"
                                 % port)
    req.add_header("Authorization", "Bearer " + TOKENS["reader"])
    with urllib.request.urlopen(req, context=ctx, timeout=10) as resp:
        assert resp.status == 200
        assert json.loads(resp.read())["id"] == "file"
    # plain HTTP on the TLS port is no answer
    with pytest.raises(Exception):
        urllib.request.urlopen("http://127.0.0.1:%d/healthz" % port,
                               timeout=5).read()
    daemon.stop()

    from conftest import run_hourglass
    daemon.write(text.replace(str(key), str(tmp_path / "nokey.pem")))
    r = run_hourglass("-t", "-p", str(daemon.dir), "-c", str(daemon.conf))
    assert r.returncode == 1, r
    assert "api.tls.key %s: No such file" % (tmp_path / "nokey.pem") \
        in r.stderr, r.stderr


def read_events(resp, want, limit=200):
    """Events from an open text/event-stream until WANT(event, data) is
    true; returns those read."""
    seen, event, data = [], None, None
    for _ in range(limit * 4):
        line = resp.readline().decode().rstrip("\n")
        if line.startswith("event: "):
            event = line[7:]
        elif line.startswith("data: "):
            data = json.loads(line[6:])
        elif line == "" and event is not None:
            seen.append((event, data))
            if want(event, data):
                return seen
            event, data = None, None
    raise AssertionError("no such event in %r" % seen)


def test_events(daemon, api):
    req = urllib.request.Request(api.base + "/api/v1/events")
    req.add_header("Authorization", "Bearer " + TOKENS["reader"])
    with urllib.request.urlopen(req, timeout=10) as stream:
        assert stream.headers["Content-Type"] == "text/event-stream"
        status, body = api.json("POST", "/api/v1/jobs", {
            "id": "ev", "type": "shell", "command": "echo x"})
        assert status == 201, body
        status, body = api.json("POST", "/api/v1/jobs/ev/trigger")
        exec_id = body["execution"]
        seen = read_events(stream, lambda e, d: e == "execution_finished"
                           and d["id"] == exec_id)
        kinds = [e for e, d in seen]
        assert ("job_changed", {"id": "ev", "change": "added",
                                "by": "api:ops"}) in seen, seen
        assert kinds.index("execution_started") \
            < kinds.index("execution_finished"), seen
        assert seen[-1][1]["status"] == "succeeded", seen
        api.json("POST", "/api/v1/reload")
        seen = read_events(stream, lambda e, d: e == "reload")
        assert seen[-1][1]["result"] == "ok", seen
    assert api.call("GET", "/api/v1/events", token=None)[0] == 401
    # the daemon serves on after the client went
    assert api.json("GET", "/api/v1/jobs/ev")[0] == 200


def test_a_slow_events_client_is_dropped(daemon):
    """A client that never reads is dropped once 256 KiB of events wait
    for it; the daemon's memory stays bounded and it serves on."""
    port = free_port()
    daemon.start(sqlite_config(daemon, load=("shell", "system"),
                               extra=api_section(port)))
    api = Api(port)
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", int(api.base.rsplit(":", 1)[1])))
    sock.sendall(("GET /api/v1/events HTTP/1.1\r\nHost: x\r\n"
                  "Authorization: Bearer %s\r\n\r\n"
                  % TOKENS["reader"]).encode())
    # every execution is two events of about 250 bytes: jobs that run
    # every millisecond and cost no process fill the daemon's send buffer
    # (megabytes on loopback) and the 256 KiB behind it in a few seconds
    for i in range(4):
        status, body = api.json("POST", "/api/v1/jobs", {
            "id": "flood%d" % i, "type": "system", "task": "noop",
            "every": "1ms", "overlap": "allow", "max_retries": 0})
        assert status == 201, body
    wait_until(lambda: any(e.get("message", "").startswith(
        "api: an events client fell") for e in daemon.events()),
        timeout=60, what="the slow client to be dropped")
    rss_kb = int(re.search(r"VmRSS:\s+(\d+)", open(
        "/proc/%d/status" % daemon.pid).read()).group(1))
    # (AddressSanitizer's shadow and quarantine are not the daemon's)
    assert sanitized_build() or rss_kb < 200 * 1024, rss_kb
    sock.close()
    assert api.json("GET", "/healthz", token=None)[0] == 200


BAD_BODIES = [
    b"{not json", b"[1, 2]", b"", b"null", b"42", b'"text"',
    b'{"id": "a", "id": "b"}', b"\xff\xfe{}", b'{"id": "\xc3\x28"}',
    b'{"id": "b d", "type": "shell"}', b'{"id": "' + b"x" * 129 + b'"}',
    b'{"id": 7, "type": "shell"}', b'{"id": "c", "type": 5}',
    b'{"id": "c", "type": "shell", "command": 7}',
    b'{"id": "c", "type": "shell", "command": "true", "every": 5}',
    b'{"id": "c", "type": "shell", "command": "true", "every": "-1s"}',
    b'{"id": "c", "type": "shell", "command": "true", "every": "1 fortnight"}',
    b'{"id": "c", "type": "shell", "command": "true", "schedule": "61 * * * *"}',
    b'{"id": "c", "type": "shell", "command": "true", "schedule": ""}',
    b'{"id": "c", "type": "shell", "command": "true", "at": "yesterday"}',
    b'{"id": "c", "type": "shell", "command": "true", "schedule": "* * * * *",'
    b' "every": "1m"}',
    b'{"id": "c", "type": "shell", "command": "true", "timezone": "Nowhere"}',
    b'{"id": "c", "type": "shell", "command": "true", "max_retries": -1}',
    b'{"id": "c", "type": "shell", "command": "true", "max_retries": "3"}',
    b'{"id": "c", "type": "shell", "command": "true", "timeout": true}',
    b'{"id": "c", "type": "shell", "command": "true", "overlap": "sometimes"}',
    b'{"id": "c", "type": "shell", "command": "true", "misfire": 1}',
    b'{"id": "c", "type": "shell", "command": "true", "backoff": 1}',
    b'{"id": "c", "type": "shell", "command": "true",'
    b' "backoff": {"jitter": 7}}',
    b'{"id": "c", "type": "shell", "command": "true", "tags": "x"}',
    b'{"id": "c", "type": "shell", "command": "true", "tags": [1]}',
    b'{"id": "c", "type": "shell", "command": "true", "enabled": "yes"}',
    b'{"id": "c", "type": "shell", "command": "true", "colour": "red"}',
    b'{"id": "c", "type": "shell", "command": "true", "pass_env": ["HOME"]}',
    b'{"id": "c", "type": "shell"}',
    b'{"id": "c", "type": "nosuch"}',
    b'{"id": "c"}',
    b'{"id": "c", "type": "shell", "command": "true", "limits": {"memory": "lots"}}',
    b'{"id": "c", "type": "shell", "command": "true", "priority": "urgent"}',
    b'{"id": "file", "type": "shell", "command": "true"}',
    b'{"id": "' + b"y" * 5000 + b'"}',
]

BAD_REQUESTS = [
    ("PUT", "/api/v1/jobs/other", b'{"id": "file"}'),
    ("PUT", "/api/v1/jobs/file", b'{"type": "shell", "command": "true"}'),
    ("DELETE", "/api/v1/jobs/file", None),
    ("PATCH", "/api/v1/jobs/file", b'{"every": "1s"}'),
    ("GET", "/api/v1/jobs/..", None),
    ("GET", "/api/v1/jobs/..%2Fetc", None),
    ("GET", "/api/v1/jobs/%2e%2e", None),
    ("GET", "/api/v1/jobs/a%2Fb", None),
    ("GET", "/api/v1/jobs/%00", None),
    ("GET", "/api/v1/jobs/%ff", None),
    ("GET", "/api/v1/jobs/" + "z" * 200, None),
    ("GET", "/api/v1/nothing", None),
    ("GET", "/api/v2/jobs", None),
    ("GET", "//api/v1/jobs", None),
    ("PATCH", "/api/v1/jobs", None),
    ("DELETE", "/healthz", None),
    ("PUT", "/metrics", b"{}"),
    ("POST", "/api/v1/jobs/none/trigger", None),
    ("POST", "/api/v1/queue", b'{"job": "file", "run_at": "then"}'),
    ("POST", "/api/v1/queue", b'{"job": "file", "extra": 1}'),
    ("POST", "/api/v1/dead/purge", b'{"job": ["file"]}'),
    ("GET", "/api/v1/jobs?page=-1", None),
    ("GET", "/api/v1/jobs?page_size=100000", None),
]


def test_fifty_bad_requests_change_nothing(daemon):
    """Every bad request gets the JSON error shape; then the job set, the
    store's jobs and the rhythm of a job every 300 ms are as before."""
    port = free_port()
    db = daemon.dir / "hg.db"
    daemon.start(sqlite_config(daemon, db, jobs=[
        job("file", command="true", every="1h"),
        job("tick", command="true", every="300ms", overlap="allow")],
        extra=api_section(port)))
    api = Api(port)
    def job_set():
        return [(j["id"], j["type"], j["api"], j["enabled"], j["paused"])
                for j in api.json("GET", "/api/v1/jobs?page_size=500")[1][
                    "jobs"]]
    before_jobs = job_set()
    start = time.time()
    n = 0
    for raw in BAD_BODIES:
        status, text, _ = api.call("POST", "/api/v1/jobs", raw=raw)
        n += 1
        assert 400 <= status < 500, (raw, status, text)
        body = json.loads(text)
        assert set(body) == {"error"} and body["error"]["message"], body
    for method, path, raw in BAD_REQUESTS:
        status, text, _ = api.call(method, path, raw=raw)
        n += 1
        assert 400 <= status < 500, (method, path, status, text)
        body = json.loads(text)
        assert set(body) == {"error"} and body["error"]["message"], body
    assert n >= 50, n
    end = time.time()
    assert job_set() == before_jobs
    con = sqlite3.connect(str(db), timeout=10)
    assert con.execute("SELECT COUNT(*) FROM jobs").fetchone()[0] == 0
    con.close()
    # the schedule kept its rhythm while the requests came: a fire every
    # 300 ms, none missed
    time.sleep(0.7)
    fires = sorted(e["scheduled_for"] for e in daemon.events("start")
                   if e.get("job") == "tick")
    due = [parse_time(t) for t in fires]
    inside = [t for t in due if start <= t <= end]
    gaps = [b - a for a, b in zip(due, due[1:])]
    assert all(abs(g - 0.3) < 0.01 for g in gaps), gaps
    assert len(inside) >= int((end - start) / 0.3) - 1, (inside, start, end)


def test_tokens_are_never_shown(daemon, api):
    """-T masks them; the log never has one, not even a wrong one."""
    from conftest import run_hourglass
    wrong = "wrong-" + "k" * 30
    assert api.json("GET", "/api/v1/status", token=wrong)[0] == 401
    assert api.json("GET", "/api/v1/status", token="reader")[0] == 200
    assert api.json("POST", "/api/v1/reload", token="reader")[0] == 403
    r = run_hourglass("-T", "-p", str(daemon.dir), "-c", str(daemon.conf))
    assert r.returncode == 0, r
    assert 'name = "reader"' in r.stdout, r.stdout
    daemon.stop()
    text = daemon.log.read_text() + daemon.output.read_text()
    for secret in list(TOKENS.values()) + [wrong]:
        assert secret not in r.stdout and secret not in r.stderr
        assert secret[2:] not in text, "a token is in the log"


def test_trigger_keeps_the_rhythm_and_pause_persists(daemon, api):
    status, body = api.json("POST", "/api/v1/jobs", {
        "id": "hourly", "type": "shell", "command": "echo once",
        "schedule": "0 * * * *"})
    assert status == 201, body
    fires = body["next_fires"]
    status, body = api.json("POST", "/api/v1/jobs/hourly/trigger")
    assert status == 202, body
    fin = daemon.wait_event("finish", exec=body["execution"])[0]
    assert fin["status"] == "succeeded", fin
    status, body = api.json("GET", "/api/v1/jobs/hourly")
    assert body["next_fires"] == fires, "a trigger moved the schedule"
    status, body = api.json("GET", "/api/v1/executions/%s"
                            % fin["exec"])
    assert body["triggered_by"] == "api:ops", body

    assert api.json("POST", "/api/v1/jobs/hourly/pause")[0] == 200
    assert api.json("POST", "/api/v1/jobs/file/pause")[0] == 200
    daemon.stop()
    daemon.start()
    wait_until(lambda: api.json("GET", "/healthz", token=None)[0] == 200,
               what="the API after the restart")
    for job_id in ("hourly", "file"):
        status, body = api.json("GET", "/api/v1/jobs/" + job_id)
        assert (status, body["paused"]) == (200, True), body
    assert api.json("POST", "/api/v1/jobs/hourly/resume")[0] == 200
    status, body = api.json("GET", "/api/v1/jobs/hourly")
    assert body["paused"] is False and body["next_fires"][1:] == fires[1:] \
        or body["next_fires"] == fires, body


def status_from(port, source):
    """GET /api/v1/status from SOURCE (an address of 127.0.0.0/8)."""
    import http.client
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10,
                                      source_address=(source, 0))
    try:
        conn.request("GET", "/api/v1/status", headers={
            "Authorization": "Bearer " + TOKENS["reader"]})
        resp = conn.getresponse()
        return resp.status, json.loads(resp.read())
    finally:
        conn.close()


def closed(sock):
    """Whether the server closed SOCK (without waiting)."""
    try:
        return sock.recv(1, socket.MSG_DONTWAIT) == b""
    except (BlockingIOError, socket.timeout):
        return False
    except OSError:
        return True


def test_slow_and_many_clients_are_bounded(daemon):
    """A client that trickles its request (slowloris) is cut off after
    api.timeout though never idle; one address cannot take every
    connection; and neither holds the loop: others are answered and the
    schedule runs on."""
    port = free_port()
    daemon.start(sqlite_config(daemon, daemon.dir / "hg.db", jobs=[job(
        "tick", command="true", every="1s")], extra=api_section(
            port, timeout="2s")))

    slow = []
    for _ in range(20):
        s = socket.create_connection(("127.0.0.1", port))
        s.sendall(b"GET /api/v1/status HTTP/1.1\r\nHost: x\r\n")
        slow.append(s)
    deadline = time.monotonic() + 15
    while not all(closed(s) for s in slow) and time.monotonic() < deadline:
        for s in slow:
            try:
                s.send(b"X")            # one byte: never idle
            except OSError:
                pass
        # meanwhile, the others are answered
        assert status_from(port, "127.0.0.1")[0] == 200
        time.sleep(0.3)
    assert all(closed(s) for s in slow), "a trickling client was kept"
    for s in slow:
        s.close()
    assert "did not send a whole request within api.timeout" in \
        daemon.log.read_text()

    # a flood of connections from one address: some are refused, the
    # other addresses are still served, and the flood ends at the timeout
    flood = []
    for _ in range(150):
        try:
            flood.append(socket.create_connection(("127.0.0.1", port)))
        except OSError:
            break
    time.sleep(0.5)
    assert any(closed(s) for s in flood), "no connection limit per address"
    assert status_from(port, "127.0.0.2")[0] == 200
    wait_until(lambda: all(closed(s) for s in flood), timeout=15,
               what="the idle flood closed at api.timeout")
    for s in flood:
        s.close()

    # the address is served again once the server has let the flood go
    # (a connection closed at the timeout frees its slot when the server
    # cleans it up, not at the instant the client sees it closed)
    def served_again():
        try:
            return status_from(port, "127.0.0.1")[0] == 200
        except OSError:
            return False
    wait_until(served_again, timeout=10, what="127.0.0.1 served again")
    daemon.wait_for(lambda evs: len([
        e for e in evs if e.get("event") == "finish"
        and e.get("job") == "tick"]) >= 5, what="the schedule running on")


RFC3339 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$")


def conforms(doc, schema, value, where="answer"):
    """Problems of VALUE against SCHEMA (the OpenAPI 3.0 subset the
    description uses: $ref, type, nullable, enum, format date-time,
    properties, required, additionalProperties false, items)."""
    if "$ref" in schema:
        schema = doc["components"]["schemas"][schema["$ref"].split("/")[-1]]
    if value is None:
        return [] if schema.get("nullable") else ["%s: null" % where]
    kinds = {"string": str, "integer": int, "number": (int, float),
             "boolean": bool, "object": dict, "array": list}
    want = schema.get("type")
    if want is not None and (not isinstance(value, kinds[want]) or (
            want in ("integer", "number") and isinstance(value, bool))):
        return ["%s: %r is not %s" % (where, value, want)]
    problems = []
    if "enum" in schema and value not in schema["enum"]:
        problems.append("%s: %r not in %s" % (where, value, schema["enum"]))
    if schema.get("format") == "date-time" and not RFC3339.match(value):
        problems.append("%s: %r is not RFC 3339" % (where, value))
    if want == "object":
        props = schema.get("properties", {})
        for key in schema.get("required", []):
            if key not in value:
                problems.append("%s: %s missing" % (where, key))
        for key, v in value.items():
            if key in props:
                problems += conforms(doc, props[key], v, where + "." + key)
            elif schema.get("additionalProperties") is False:
                problems.append("%s: %s is not described" % (where, key))
    if want == "array" and "items" in schema:
        for i, v in enumerate(value):
            problems += conforms(doc, schema["items"], v,
                                 "%s[%d]" % (where, i))
    return problems


def test_answers_are_as_described(daemon, api):
    """What the routes answer has the shape api/openapi.json gives it:
    no field missing, none undescribed, types and formats right."""
    doc = api.json("GET", "/api/v1/openapi.json", token=None)[1]

    def check(method, path, status_wanted, answer, route=None):
        route = route or re.sub(r"/(jobs|executions|dead)/[^/?]+",
                                r"/\1/{id}", path.split("?")[0])
        op = doc["paths"][route][method.lower()]
        schema = op["responses"][str(status_wanted)]["content"][
            "application/json"]["schema"]
        assert conforms(doc, schema, answer) == [], (path, answer)

    api.json("POST", "/api/v1/import", {"jobs": [
        {"id": "ok", "type": "shell", "command": "echo fine", "tags": ["t"],
         "schedule": "0 3 * * *"},
        {"id": "bad", "type": "shell", "command": "exit 4",
         "max_retries": 0}]})
    runs = {}
    for job_id in ("ok", "bad", "file"):
        runs[job_id] = api.json("POST", "/api/v1/jobs/%s/trigger"
                                % job_id)[1]["execution"]
        daemon.wait_event("finish", exec=runs[job_id])
    for path in ("/api/v1/jobs", "/api/v1/jobs?tag=t",
                 "/api/v1/jobs/ok", "/api/v1/jobs/file",
                 "/api/v1/jobs/ok/executions", "/api/v1/dead",
                 "/api/v1/executions/" + runs["ok"],
                 "/api/v1/executions/" + runs["bad"], "/api/v1/export"):
        status, body = api.json("GET", path)
        assert status == 200, (path, body)
        assert body.get("executions", body.get("jobs", [1])), path
        check("GET", path, 200, body)
    assert api.json("POST", "/api/v1/queue", {
        "job": "ok", "run_at": "2099-01-01T00:00:00Z", "unique_key": "k",
        "priority": "high", "payload": "p"})[0] == 202
    status, body = api.json("GET", "/api/v1/queue")
    assert status == 200 and body["executions"], body
    check("GET", "/api/v1/queue", 200, body)
    status, body = api.json("POST", "/api/v1/import", {"jobs": [
        {"id": "ok", "type": "shell", "command": "true"}]})
    check("POST", "/api/v1/import", 200, body)
    status, body = api.json("POST", "/api/v1/import", {"jobs": [
        {"id": "x", "type": "shell", "command": "true", "colour": 1}]})
    assert status == 422
    assert conforms(doc, doc["components"]["schemas"]["Error"], body) == []
    # the checker sees a difference
    assert conforms(doc, doc["components"]["schemas"]["Execution"],
                    {"id": "x", "job_id": "j", "status": "fine",
                     "attempt": 1, "colour": 2}) != []
