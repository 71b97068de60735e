"""GET /api/v1/export and POST /api/v1/import: the API's jobs all at once.
An import creates or replaces every job it gives or none of them, names
each bad job, and survives a restart and a reload; what export gives,
import takes back."""

import signal
import sqlite3

import pytest

from conftest import job, sqlite_config, wait_rows, wait_until
from test_api import Api, api_section, free_port


@pytest.fixture
def api(daemon):
    port = free_port()
    daemon.start(sqlite_config(daemon, daemon.dir / "hg.db", jobs=[job(
        "file", command="true", every="1h")], extra=api_section(
            port, body_limit="64KiB")))
    return Api(port)


def stored_jobs(daemon):
    with sqlite3.connect(str(daemon.dir / "hg.db")) as c:
        return sorted(r[0] for r in c.execute("SELECT id FROM jobs"))


def job_ids(api):
    status, body = api.json("GET", "/api/v1/jobs?page_size=500")
    assert status == 200, body
    return [j["id"] for j in body["jobs"]]


JOBS = [
    {"id": "tick", "type": "shell", "command": "echo imported-tick",
     "every": "1s", "tags": ["imported"]},
    {"id": "nightly", "type": "shell", "command": "true",
     "schedule": "0 30 2 * * *", "timezone": "Europe/Berlin"},
    {"id": "manual", "type": "shell", "command": "true"},
]


def test_import_then_export_round_trip(daemon, api):
    assert api.json("GET", "/api/v1/export", token="reader") == (
        200, {"jobs": []})
    status, body = api.json("POST", "/api/v1/import", {"jobs": JOBS},
                            token="writer")
    assert status == 200, body
    assert body == {"imported": 3, "created": ["tick", "nightly", "manual"],
                    "replaced": []}, body
    assert job_ids(api) == ["file", "manual", "nightly", "tick"]
    assert stored_jobs(daemon) == ["manual", "nightly", "tick"]
    status, exported = api.json("GET", "/api/v1/export", token="reader")
    assert status == 200
    assert exported["jobs"] == sorted(JOBS, key=lambda j: j["id"]), exported
    # the imported jobs run, recorded as any job's runs
    wait_rows(daemon.dir / "hg.db", lambda rows: any(
        r["status"] == "succeeded" and b"imported-tick" in r["output"]
        for r in rows), where="job_id = 'tick'")
    status, body = api.json("GET", "/api/v1/jobs/tick")
    assert body["created_by"] == "api:writer", body

    # what export gives, import takes back: one changed, one new
    changed = exported["jobs"]
    changed[0]["command"] = "echo changed"          # manual
    changed.append({"id": "extra", "type": "shell", "command": "true"})
    status, body = api.json("POST", "/api/v1/import", {"jobs": changed},
                            token="ops")
    assert status == 200, body
    assert body["created"] == ["extra"], body
    assert sorted(body["replaced"]) == ["manual", "nightly", "tick"], body
    status, body = api.json("GET", "/api/v1/jobs/manual")
    assert body["definition"]["command"] == "echo changed", body
    # a replaced job keeps its creator
    assert body["created_by"] == "api:writer", body

    # they survive a reload and a restart
    daemon.signal(signal.SIGHUP)
    daemon.wait_event("reload", result="ok")
    assert job_ids(api) == ["extra", "file", "manual", "nightly", "tick"]
    daemon.stop()
    daemon.start()
    wait_until(lambda: job_ids(api) == ["extra", "file", "manual",
                                        "nightly", "tick"],
               what="the imported jobs after a restart")
    assert api.json("GET", "/api/v1/export")[1]["jobs"] == sorted(
        changed, key=lambda j: j["id"])


def test_an_import_with_bad_jobs_changes_nothing_and_names_each(daemon, api):
    api.json("POST", "/api/v1/import", {"jobs": JOBS[2:]})
    before = (job_ids(api), stored_jobs(daemon),
              api.json("GET", "/api/v1/export")[1])

    # what can be said before reading the jobs: every bad one named
    status, body = api.json("POST", "/api/v1/import", {"jobs": [
        {"id": "good", "type": "shell", "command": "true"},
        {"id": "file", "type": "shell", "command": "true"},
        {"id": "good", "type": "shell", "command": "true"},
        "not a job",
        {"type": "shell", "command": "true"},
    ]})
    assert status == 422, body
    errors = body["error"]["errors"]
    assert [(e["index"], e["job"], e["field"]) for e in errors] == [
        (1, "file", "id"), (2, "good", "id"), (3, None, "id"),
        (4, None, "id")], errors
    assert "configuration file" in errors[0]["message"]
    assert "given twice" in errors[1]["message"]

    # what the reader finds (module, keys, schedule): every bad job named,
    # the good ones in the same import are not created either
    status, body = api.json("POST", "/api/v1/import", {"jobs": [
        {"id": "good", "type": "shell", "command": "true"},
        {"id": "bad-cron", "type": "shell", "command": "true",
         "schedule": "61 * * * *"},
        {"id": "bad-key", "type": "shell", "command": "true",
         "colour": "red"},
        {"id": "bad-type", "type": "nosuchmodule"},
        {"id": "manual", "type": "shell", "command": "echo replaced?"},
    ]})
    assert status == 422, body
    named = {e["job"] for e in body["error"]["errors"]}
    assert {"bad-cron", "bad-key", "bad-type"} <= named, body
    assert "good" not in named and "manual" not in named, body
    fields = {e["job"]: e["field"] for e in body["error"]["errors"]}
    assert fields["bad-cron"] == "schedule" and fields["bad-key"] == "colour"

    assert (job_ids(api), stored_jobs(daemon),
            api.json("GET", "/api/v1/export")[1]) == before
    assert api.json("GET", "/api/v1/jobs/good")[0] == 404


@pytest.mark.parametrize("body, status", [
    ({"jobs": []}, 422),
    ({"jobs": {}}, 422),
    ({"jobs": [{"id": "x", "type": "shell", "command": "true"}], "x": 1},
     422),
    ({}, 422),
    (None, 400),
])
def test_bad_import_bodies(daemon, api, body, status):
    got, answer = api.json("POST", "/api/v1/import", body)
    assert got == status, answer
    assert set(answer) == {"error"} and answer["error"]["message"], answer
    assert job_ids(api) == ["file"]


def test_import_needs_the_write_role(daemon, api):
    body = {"jobs": JOBS[2:]}
    assert api.json("POST", "/api/v1/import", body, token="reader")[0] == 403
    assert api.json("POST", "/api/v1/import", body, token="runner")[0] == 403
    assert api.json("POST", "/api/v1/import", body, token=None)[0] == 401
    assert api.json("GET", "/api/v1/export", token=None)[0] == 401
    assert job_ids(api) == ["file"]
