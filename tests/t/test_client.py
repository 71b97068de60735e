"""The client commands (`hourglass [--url URL] [--token T] [--json] COMMAND`)
against a running daemon over its admin API: each command's table or line
for people (its key columns, not its spacing) and its --json; exit 0 done,
1 the API said no (its message and HTTP status) or cannot be reached (the
URL named, with how it was found), 2 usage; the URL found in the
configuration; the token from a file; an import all or nothing, naming each
bad job."""

import json
import os
import re
import subprocess
import urllib.request

import pytest

from conftest import HOURGLASS, job, run_hourglass, sqlite_config, wait_until
from test_api import TOKENS, api_section, free_port, self_signed

EXEC_ID = re.compile(r"execution ([0-9a-f-]{36})")


def client_env(**extra):
    """The environment of a client: nothing of the caller's HOURGLASS_*,
    times in UTC so that the tables read the same anywhere."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("HOURGLASS_")}
    env["TZ"] = "UTC"
    env.update(extra)
    return env


class Client:
    def __init__(self, url, token=TOKENS["ops"]):
        self.url = url
        self.token = token

    def run(self, *args, stdin=None, **env):
        """objs/hourglass ARGS with HOURGLASS_URL and HOURGLASS_TOKEN set
        (unless given in ENV, None to leave one out)."""
        base = {"HOURGLASS_URL": self.url, "HOURGLASS_TOKEN": self.token}
        base.update(env)
        e = client_env(**{k: v for k, v in base.items() if v is not None})
        if stdin is None:
            return run_hourglass(*args, env=e)
        return subprocess.run([str(HOURGLASS)] + [str(a) for a in args],
                              input=stdin, capture_output=True, text=True,
                              timeout=30, env=e)

    def ok(self, *args, **env):
        r = self.run(*args, **env)
        assert r.returncode == 0, (args, r.returncode, r.stdout, r.stderr)
        return r.stdout

    def json(self, *args, **env):
        return json.loads(self.ok("--json", *args, **env))


def table(text):
    """Rows of a table the client printed, split on runs of 2+ blanks
    (cells such as "Mon 2026-12-07 10:00:00 UTC" hold single blanks)."""
    return [re.split(r"\s{2,}", line.strip())
            for line in text.splitlines() if line.strip()]


@pytest.fixture
def client(daemon):
    port = free_port()
    daemon.start(sqlite_config(daemon, daemon.dir / "hg.db", jobs=[
        job("file", command="true", every="1h", tags=["nightly"]),
        job("hello", command="echo hello from the job", schedule="0 3 * * *",
            tags=["demo"]),
    ], extra=api_section(port, body_limit="64KiB")))
    return Client("http://127.0.0.1:%d" % port)


def test_status_and_jobs(daemon, client):
    out = client.ok("status")
    assert "pid %d" % daemon.pid in out, out
    assert re.search(r"^Jobs:\s+2$", out, re.M), out
    assert re.search(r"^Workers:\s+2 configured", out, re.M), out
    st = client.json("status")
    assert st["pid"] == daemon.pid and st["jobs"] == 2, st

    rows = table(client.ok("jobs"))
    assert rows[0][:5] == ["ID", "TYPE", "STATE", "NEXT", "LEFT"], rows
    by_id = {r[0]: r for r in rows[1:]}
    assert sorted(by_id) == ["file", "hello"], rows
    assert by_id["file"][1:3] == ["shell", "active"], rows
    # the next fire time in the local zone (UTC here), and how far off
    assert re.fullmatch(r"\w{3} \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC",
                        by_id["file"][3]), rows
    assert re.fullmatch(r"in (59m( \d+s)?|1h)", by_id["file"][4]), rows
    assert by_id["hello"][3].endswith("03:00:00 UTC"), rows
    assert by_id["file"][-1] == "nightly" and by_id["file"][-2] == "conf"

    body = client.json("jobs")
    assert [j["id"] for j in body["jobs"]] == ["file", "hello"], body
    assert [r[0] for r in table(client.ok("jobs", "--tag", "demo"))[1:]] \
        == ["hello"]
    assert client.ok("jobs", "--status", "paused") == "No jobs match.\n"


def test_show_trigger_runs_output(daemon, client):
    out = client.ok("show", "hello")
    assert out.startswith("Job hello (shell, defined in the configuration)")
    assert re.search(r"^  command\s+echo hello from the job$", out, re.M)
    fires = re.findall(r"^  (\w{3} \d{4}-\d\d-\d\d 03:00:00 UTC)  in ", out,
                       re.M)
    assert len(fires) == 5, out
    assert re.search(r"^  Runs:\s+0 \(0 succeeded, 0 failed\)$", out, re.M)
    assert len(client.json("show", "hello")["next_fires"]) == 5

    out = client.ok("trigger", "hello")
    m = EXEC_ID.search(out)
    assert out.startswith("hello: triggered, execution ") and m, out
    ex = m.group(1)
    daemon.wait_event("finish", exec=ex)

    def succeeded():
        runs = client.json("runs", "hello")["executions"]
        return runs and runs[0]["status"] == "succeeded" and runs
    runs = wait_until(succeeded, what="the run, succeeded, in runs")
    assert runs[0]["id"] == ex
    rows = table(client.ok("runs", "hello"))
    assert rows[0][:3] == ["EXECUTION", "JOB", "STATUS"], rows
    assert rows[1][:3] == [ex, "hello", "succeeded"], rows
    assert re.fullmatch(r"(now|\d+s ago)", rows[1][4]), rows
    assert re.fullmatch(r"\d+ms|\d+\.\ds", rows[1][5]), rows
    assert rows[1][6:] == ["0", "1", "api:ops"], rows
    # every job's runs, newest first, at most -n
    ex2 = EXEC_ID.search(client.ok("trigger", "file")).group(1)
    daemon.wait_event("finish", exec=ex2)
    rows = wait_until(lambda: len(table(client.ok("runs"))) == 3 and table(
        client.ok("runs")), what="two runs in `runs`")
    assert [r[0] for r in rows[1:]] == [ex2, ex], rows
    assert [r[0] for r in table(client.ok("runs", "-n", "1"))[1:]] == [ex2]

    r = client.run("output", ex)
    assert (r.returncode, r.stdout) == (0, "hello from the job\n"), r
    assert client.json("output", ex)["exit_code"] == 0
    out = client.ok("show", "hello")
    assert re.search(r"^  Runs:\s+1 \(1 succeeded, 0 failed\)$", out, re.M)
    assert re.search(r"^  Last run:.*, succeeded$", out, re.M), out


def test_enqueue_pause_resume_stop(daemon, client):
    out = client.ok("enqueue", "hello", "--at", "+1h", "--priority", "high",
                    "--key", "once", "--payload", "-", stdin="x")
    m = re.match(r"hello: queued, execution ([0-9a-f-]{36}), due .* UTC "
                 r"\(in (59m \d+s|1h)\)$", out)
    assert m, out
    r = client.run("enqueue", "hello", "--key", "once")
    assert r.returncode == 1, r
    assert "unique_key" in r.stderr and "(HTTP 409)" in r.stderr, r.stderr

    assert client.ok("pause", "file").startswith("file: paused")
    assert [r[0] for r in table(client.ok("jobs", "--status", "paused"))
            [1:]] == ["file"]
    assert client.json("resume", "file") == {"id": "file", "paused": False}
    assert client.ok("jobs", "--status", "paused") == "No jobs match.\n"

    client.ok("--url", client.url, "enqueue", "hello")   # --url works too
    r = client.run("trigger", "file", "--payload", daemon.dir / "nope")
    assert r.returncode == 1 and "cannot read the payload" in r.stderr, r

    (daemon.dir / "payload").write_text("the payload\n")
    # the payload reaches the job (on its standard input); a long run stops
    daemon.write(daemon.conf.read_text().replace(
        'command = "true"', 'command = "cat"').replace(
        'command = "echo hello from the job"', 'command = "sleep 30"'))
    daemon.ctl("reload")
    daemon.wait_event("reload", result="ok")
    ex = EXEC_ID.search(client.ok("trigger", "file", "--payload",
                                  daemon.dir / "payload")).group(1)
    daemon.wait_event("finish", exec=ex)
    wait_until(lambda: client.run("output", ex).stdout == "the payload\n",
               what="the payload as the output of cat")
    ex = EXEC_ID.search(client.ok("trigger", "hello")).group(1)
    daemon.wait_event("start", exec=ex)
    assert client.ok("stop", "hello") == (
        "hello: 1 running execution killed\n")
    daemon.wait_event("finish", exec=ex)
    assert client.ok("stop", "hello") == (
        "hello: 0 running executions killed\n")


def test_dead_retry_purge(daemon, client):
    req = urllib.request.Request(
        client.url + "/api/v1/jobs", method="POST", data=json.dumps({
            "id": "fails", "type": "shell", "command": "echo broke; exit 3",
            "max_retries": 0}).encode(),
        headers={"Authorization": "Bearer " + client.token,
                 "Content-Type": "application/json"})
    urllib.request.urlopen(req, timeout=10).close()
    dead = []
    for _ in range(2):
        ex = EXEC_ID.search(client.ok("trigger", "fails")).group(1)
        daemon.wait_event("finish", exec=ex)
        dead.append(ex)
    wait_until(lambda: len(client.json("dead")["executions"]) == 2,
               what="2 dead letters")
    rows = table(client.ok("dead"))
    assert sorted(r[0] for r in rows[1:]) == sorted(dead), rows
    assert all(r[1:3] == ["fails", "dead"] and r[6] == "3" for r in rows[1:])
    assert len(table(client.ok("dead", "-n", "1"))) == 2

    out = client.ok("retry", dead[0])
    m = re.fullmatch(re.escape(dead[0]) + r": off the dead-letter list, "
                     r"queued again as execution ([0-9a-f-]{36})\n", out)
    assert m, out
    daemon.wait_event("finish", exec=m.group(1))
    assert client.ok("purge", dead[1]) == (
        dead[1] + ": purged from the dead-letter list\n")
    r = client.run("purge", dead[1])
    assert r.returncode == 1 and "(HTTP 404)" in r.stderr, r
    assert r.stdout == "", r


def test_export_as_configuration_text_reads_back(hg, daemon, client,
                                                 tmp_path):
    jobs = [
        {"id": "dollars", "type": "shell", "command": "echo $HOME ${X} $$",
         "every": "1h", "tags": ["a", "b"], "env": {"X": "y"}},
        {"id": "berlin", "type": "shell", "command": "true",
         "schedule": "0 30 2 * * *", "timezone": "Europe/Berlin",
         "max_retries": 0, "backoff": {"initial": "2s", "multiplier": 1.5}},
    ]
    src = tmp_path / "jobs.json"
    src.write_text(json.dumps(jobs))
    client.ok("import", src)
    text = client.ok("export", "--conf")
    assert text.startswith("# 2 jobs defined through the admin API of %s"
                           % client.url), text
    # the jobs as a configuration file of another daemon define the same
    # jobs, "$" and all
    other = hg("other")
    port = free_port()
    conf = re.sub(r"(?ms)^jobs = \(.*?^\);$", "", other.config(
        extra=api_section(port))) + text
    other.start(conf)
    c2 = Client("http://127.0.0.1:%d" % port)
    for j in jobs:
        got = c2.json("show", j["id"])
        assert got["api"] is False and got["definition"] == j, got


def test_export_import_all_or_nothing(daemon, client, tmp_path):
    assert client.json("export") == {"jobs": []}
    good = tmp_path / "good.json"
    good.write_text(json.dumps({"jobs": [
        {"id": "nightly", "type": "shell", "command": "true",
         "schedule": "30 2 * * *"},
        {"id": "manual", "type": "shell", "command": "true"},
    ]}))
    out = client.ok("import", good)
    assert out == ("Imported 2 jobs\n  created: nightly manual\n"), out
    exported = client.json("export")
    assert [j["id"] for j in exported["jobs"]] == ["manual", "nightly"]
    # export's text is import's: again, from standard input, the list alone
    r = client.run("import", "-", stdin=json.dumps(exported["jobs"]))
    assert r.returncode == 0, r
    assert "replaced: manual nightly" in r.stdout, r.stdout
    assert client.ok("export") == client.ok("--json", "export")

    before = client.json("jobs")
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps([
        {"id": "newone", "type": "shell", "command": "true"},
        {"id": "bad-cron", "type": "shell", "command": "true",
         "schedule": "61 * * * *"},
        {"id": "bad-type", "type": "nosuchmodule"},
    ]))
    r = client.run("import", bad)
    assert r.returncode == 1, r
    assert "2 bad jobs, nothing changed (HTTP 422)" in r.stderr, r.stderr
    assert re.search(r'^  job "bad-cron": schedule: .*61', r.stderr, re.M)
    assert re.search(r'^  job "bad-type": type: .*nosuchmodule', r.stderr,
                     re.M), r.stderr
    assert "newone" not in r.stderr
    assert client.json("jobs") == before
    r = client.run("--json", "import", bad)
    assert r.returncode == 1
    assert len(json.loads(r.stdout)["error"]["errors"]) == 2, r.stdout

    broken = tmp_path / "broken.json"
    broken.write_text('{"jobs": [')
    r = client.run("import", broken)
    assert r.returncode == 1 and str(broken) + ":1:" in r.stderr, r


@pytest.mark.parametrize("args,message", [
    (["frobnicate"], "unexpected argument"),
    (["--json"], "a command is expected"),
    (["show"], "show needs JOB"),
    (["pause", "a", "b"], 'unexpected argument "b"'),
    (["runs", "-n", "0"], "-n 0: a count from 1 to 500"),
    (["jobs", "--at", "+5m"], "--at: not an option of jobs"),
    (["jobs", "--bogus"], "--bogus: unknown option"),
    (["enqueue", "x", "--at", "soon"], "--at soon:"),
    (["--url"], "--url needs a value"),
])
def test_usage_errors_exit_2(args, message):
    r = run_hourglass(*args, env=client_env(
        HOURGLASS_URL="http://127.0.0.1:9"))
    assert r.returncode == 2, r
    assert message in r.stderr, r.stderr
    assert "Usage: hourglass" in r.stderr, r.stderr
    assert r.stdout == ""


def test_api_errors_and_tokens(daemon, client, tmp_path):
    r = client.run("show", "nope")
    assert (r.returncode, r.stdout) == (1, ""), r
    assert r.stderr == 'hourglass: no job or execution "nope" (HTTP 404)\n'
    r = client.run("--json", "show", "nope")
    assert r.returncode == 1
    assert json.loads(r.stdout)["error"]["code"] == "not_found", r.stdout

    r = client.run("jobs", HOURGLASS_TOKEN="wrong-" + "w" * 30)
    assert r.returncode == 1, r
    assert "(HTTP 401)" in r.stderr, r.stderr
    assert "the token was given by HOURGLASS_TOKEN" in r.stderr, r.stderr
    r = client.run("jobs", HOURGLASS_TOKEN=None)
    assert r.returncode == 1 and "no token was given" in r.stderr, r
    # a weak role: the API's 403
    r = client.run("pause", "file", HOURGLASS_TOKEN=TOKENS["reader"])
    assert r.returncode == 1 and "(HTTP 403)" in r.stderr, r

    # a token from a file stays out of the process list
    tf = tmp_path / "token"
    tf.write_text(TOKENS["ops"] + "\n")
    assert client.ok("--token-file", tf, "pause", "file",
                     HOURGLASS_TOKEN=None).startswith("file: paused")
    assert client.ok("resume", "file", HOURGLASS_TOKEN="bad",
                     HOURGLASS_TOKEN_FILE=str(tf)) == "file: resumed\n"
    r = client.run("--token-file", tmp_path / "none", "jobs")
    assert r.returncode == 1 and "cannot read the token" in r.stderr, r
    # --token on the command line wins over the environment
    assert client.ok("--token", TOKENS["reader"], "jobs",
                     HOURGLASS_TOKEN="bad")


def test_unreachable_url_names_it_and_where_it_came_from(tmp_path):
    url = "http://127.0.0.1:%d" % free_port()
    r = run_hourglass("--url", url, "status", env=client_env())
    assert r.returncode == 1, r
    lines = r.stderr.splitlines()
    assert len(lines) == 1, r.stderr
    assert url in lines[0] and "from --url" in lines[0], lines
    assert "refused" in lines[0].lower(), lines
    r = run_hourglass("jobs", env=client_env(HOURGLASS_URL=url + "/"))
    assert r.returncode == 1 and "from HOURGLASS_URL" in r.stderr, r


def test_url_from_the_configuration(daemon, client):
    env = client_env(HOURGLASS_TOKEN=TOKENS["reader"])
    r = run_hourglass("-c", daemon.conf, "status", env=env)
    assert r.returncode == 0, r
    assert "at %s, pid %d" % (client.url, daemon.pid) in r.stdout, r.stdout
    # -p and -c after the command, as the daemon's
    r = run_hourglass("jobs", "-c", daemon.conf, "--json", env=env)
    assert r.returncode == 0 and json.loads(r.stdout)["total"] == 2, r

    # the token written "${VAR}" in the file, unset for the client: its URL
    # is still there; an error in api.listen is not passed over
    conf = daemon.conf.read_text()
    assert TOKENS["ops"] in conf
    mine = daemon.dir / "client.conf"
    mine.write_text(conf.replace(TOKENS["ops"], "${HG_CLIENT_TEST_UNSET}"))
    assert run_hourglass("-c", mine, "status", env=env).returncode == 0
    mine.write_text(conf.replace("127.0.0.1:", "127.0.0.1:x"))
    r = run_hourglass("-c", mine, "status", env=env)
    assert r.returncode == 1 and "api.listen" in r.stderr, r

    daemon.stop()
    r = run_hourglass("-c", daemon.conf, "status", env=env)
    assert r.returncode == 1, r
    assert "from api.listen in %s" % daemon.conf in r.stderr, r.stderr
    assert client.url in r.stderr, r.stderr

    other = daemon.dir / "noapi.conf"
    other.write_text(daemon.config())
    r = run_hourglass("-c", other, "status", env=env)
    assert r.returncode == 1, r
    assert "has no api section" in r.stderr and str(other) in r.stderr, r


def test_help():
    r = run_hourglass("status", "--help", env=client_env())
    assert r.returncode == 0, r
    for word in ("status", "jobs", "show JOB", "runs [JOB] [-n N]",
                 "output EXEC", "enqueue JOB", "import FILE|-",
                 "HOURGLASS_TOKEN_FILE"):
        assert word in r.stdout, (word, r.stdout)


YAML_LIST = """\
# a list of jobs, as a YAML file
- id: report
  type: shell
  command: echo report $HOME
  schedule: "0 6 * * 1-5"
  tags: [reports, daily]
  max_retries: 2
- id: two-lines
  type: shell
  command: |
    echo one
    echo two
  env:
    GREETING: hello
  enabled: true
"""

YAML_OBJECTS = """\
apiVersion: hourglass/v1
kind: Job
metadata:
  name: backup
spec:
  type: shell
  command: /usr/local/bin/backup
  every: 6h
---
apiVersion: hourglass/v1
kind: Job
metadata:
  name: cleanup
spec:
  type: shell
  command: "true"
  schedule: "@daily"
  enabled: false
"""


def test_import_yaml(daemon, client, tmp_path):
    f = tmp_path / "jobs.yaml"
    f.write_text(YAML_LIST)
    assert client.ok("import", f) == (
        "Imported 2 jobs\n  created: report two-lines\n")
    assert client.json("show", "report")["definition"] == {
        "id": "report", "type": "shell", "command": "echo report $HOME",
        "schedule": "0 6 * * 1-5", "tags": ["reports", "daily"],
        "max_retries": 2}
    assert client.json("show", "two-lines")["definition"] == {
        "id": "two-lines", "type": "shell",
        "command": "echo one\necho two\n", "env": {"GREETING": "hello"},
        "enabled": True}
    # Kubernetes-style objects, one a document, from standard input (no
    # name to tell: it does not start as JSON does)
    r = client.run("import", "-", stdin=YAML_OBJECTS)
    assert r.returncode == 0 and "created: backup cleanup" in r.stdout, r
    assert client.json("show", "cleanup")["definition"] == {
        "id": "cleanup", "type": "shell", "command": "true",
        "schedule": "@daily", "enabled": False}
    assert client.json("show", "backup")["enabled"] is True

    # a bad job named, nothing imported; a file that is not YAML located
    before = client.json("export")
    f.write_text(YAML_LIST.replace('"0 6 * * 1-5"', '"0 6 * * 1-8"') +
                 "- {id: third, type: shell, command: 'true'}\n")
    r = client.run("import", f)
    assert r.returncode == 1, r
    assert re.search(r'^  job "report": schedule: .*8', r.stderr, re.M), \
        r.stderr
    assert client.json("export") == before
    f.write_text("jobs:\n  - id: x\n    type: shell\n   command: y\n")
    r = client.run("import", f)
    assert r.returncode == 1, r
    assert r.stderr.startswith("hourglass: %s:4:" % f), r.stderr


def test_https(daemon, tmp_path):
    """With api.tls, the URL from the configuration is https and the
    daemon's own certificate is trusted; a URL given alone is checked
    against the system's CAs, or --cacert / HOURGLASS_CACERT."""
    cert, key = self_signed(tmp_path)
    port = free_port()
    tls = ' tls = { cert = "%s"; key = "%s"; };' % (cert, key)
    daemon.start(daemon.config(jobs=[job("file", command="true",
                                         every="1h")],
                               extra=api_section(port).replace(
                                   "tokens =", tls + " tokens =")))
    env = client_env(HOURGLASS_TOKEN=TOKENS["reader"])
    url = "https://127.0.0.1:%d" % port
    r = run_hourglass("-c", daemon.conf, "status", env=env)
    assert r.returncode == 0 and "at %s," % url in r.stdout, r
    r = run_hourglass("--url", url, "status", env=env)
    assert r.returncode == 1 and url in r.stderr, r
    assert "certificate" in r.stderr.lower(), r.stderr
    assert run_hourglass("--url", url, "--cacert", cert, "jobs",
                         env=env).returncode == 0
    r = run_hourglass("--url", url, "jobs", env=client_env(
        HOURGLASS_TOKEN=TOKENS["reader"], HOURGLASS_CACERT=str(cert)))
    assert r.returncode == 0 and "file" in r.stdout, r


def test_the_daemons_signal_names_are_not_commands(daemon, client):
    """"stop" in "-s stop" is the daemon's signal, not the client's stop
    (which would want a JOB)."""
    r = run_hourglass("-p", daemon.dir, "-c", daemon.conf, "-s", "stop",
                      env=client_env())
    assert r.returncode == 0, r
    assert daemon.wait_exit() == 0
