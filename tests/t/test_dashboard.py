"""The dashboard's files served by the daemon from html/ under its prefix:
GET / and GET /ui/NAME without a token (the allow list still first),
typed by extension, the JSON error shape for what is not there, and
nothing outside html/ (.., %2e%2e, a symbolic link, a directory)."""

import http.client
import json
import shutil
import subprocess

import pytest

from conftest import REPO, job, sqlite_config
from test_api import ROLES, Api, api_section, free_port


@pytest.fixture
def site(daemon, tmp_path):
    html = daemon.dir / "html"
    shutil.copytree(REPO / "html", html)
    outside = tmp_path / "secret.txt"
    outside.write_text("secret-outside-html\n")
    (html / "link.txt").symlink_to(outside)
    (html / "sub.css").mkdir()
    (html / ".hidden.txt").write_text("hidden\n")
    port = free_port()
    daemon.start(sqlite_config(daemon, daemon.dir / "hg.db", jobs=[job(
        "file", command="true", every="1h")], extra=api_section(port)))
    return port


def raw_get(port, path):
    """GET PATH as written (urllib would tidy it), no token."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        return resp.status, resp.read(), resp.getheader("Content-Type")
    finally:
        conn.close()


def test_the_page_is_served_without_a_token(site):
    api = Api(site)
    status, body, headers = api.call("GET", "/", token=None)
    assert status == 200, body
    assert headers["Content-Type"] == "text/html; charset=utf-8"
    assert b'<script src="/ui/app.js"' in body
    status, body, headers = api.call("GET", "/ui/app.js", token=None)
    assert status == 200, body
    assert headers["Content-Type"] == "text/javascript; charset=utf-8"
    assert "default-src 'self'" in headers["Content-Security-Policy"]
    status, body, headers = api.call("GET", "/ui/app.css", token=None)
    assert status == 200, body
    assert headers["Content-Type"] == "text/css; charset=utf-8"
    # the API behind it still wants a token
    assert api.call("GET", "/api/v1/jobs", token=None)[0] == 401


@pytest.mark.parametrize("name", ["reader", "runner", "writer", "ops"])
def test_the_status_names_the_token_and_its_role(site, name):
    status, body = Api(site).json("GET", "/api/v1/status", token=name)
    assert status == 200, body
    assert body["token"] == {"name": name, "role": ROLES[name]}, body


def test_the_page_fetches_nothing_from_elsewhere():
    for f in (REPO / "html").iterdir():
        # an SVG's namespace is a name, never fetched
        text = f.read_text().replace('xmlns="http://www.w3.org/2000/svg"',
                                     "")
        assert "http://" not in text and "https://" not in text, f.name
        assert "?token=" not in text, f.name


@pytest.mark.parametrize("path", [
    "/ui/missing.html", "/ui/", "/ui/link.txt", "/ui/sub.css",
    "/ui/.hidden.txt", "/ui/index", "/ui/../hg.db", "/ui/%2e%2e/hg.db",
    "/ui/..%2fhg.db", "/ui/%2e%2e%2fscheduler.conf", "/../hg.db",
    "/ui/./index.html", "/ui/html/index.html"])
def test_nothing_else_is_served(site, path):
    status, body, ctype = raw_get(site, path)
    assert status == 404, (path, status, body)
    assert ctype == "application/json", (path, ctype)
    error = json.loads(body)["error"]
    assert error["code"] == "not_found" and error["message"], error
    assert b"secret-outside-html" not in body


def test_the_allow_list_comes_first(daemon):
    port = free_port()
    (daemon.dir / "html").mkdir()
    (daemon.dir / "html" / "index.html").write_text("<p>hi</p>\n")
    daemon.start(sqlite_config(daemon, daemon.dir / "hg.db", jobs=[job(
        "file", command="true", every="1h")],
        extra=api_section(port, allow=("10.9.9.9/32",))))
    status, body, _ = Api(port).call("GET", "/", token=None)
    assert status == 403, body
    assert json.loads(body)["error"]["code"] == "forbidden"


@pytest.mark.serial                     # rebuilds objs/hourglass
def test_make_install_puts_the_dashboard_where_the_daemon_serves_it(daemon):
    """make install PREFIX=DIR copies html/ to DIR/html, and a daemon with
    that prefix serves each file as it is in the tree."""
    r = subprocess.run(["make", "-s", "install", "PREFIX=%s" % daemon.dir],
                       cwd=REPO, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    port = free_port()
    daemon.start(sqlite_config(daemon, daemon.dir / "hg.db", jobs=[job(
        "file", command="true", every="1h")], extra=api_section(port)))
    files = sorted(f.name for f in (REPO / "html").iterdir())
    assert sorted(f.name for f in (daemon.dir / "html").iterdir()) == files
    for name in files:
        status, body, _ = Api(port).call(
            "GET", "/" if name == "index.html" else "/ui/" + name, token=None)
        assert status == 200, (name, body)
        assert body == (REPO / "html" / name).read_bytes(), name


def head(port, path):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("HEAD", path)
        resp = conn.getresponse()
        return resp.status, resp.read(), dict(resp.getheaders())
    finally:
        conn.close()


def test_head_is_get_without_the_body(site):
    for path, name in (("/", "index.html"), ("/ui/app.js", "app.js")):
        status, body, headers = head(site, path)
        assert status == 200, (path, status)
        assert body == b""
        assert int(headers["Content-Length"]) == len(
            (REPO / "html" / name).read_bytes())
        assert "default-src 'self'" in headers["Content-Security-Policy"]
    assert head(site, "/ui/missing.js")[0] == 404
    # the API's routes keep their methods
    assert head(site, "/api/v1/status")[0] == 405


def test_the_files_are_read_once_at_the_start(site, daemon):
    """A request never reads the disk from the master's loop: a file
    changed, added or removed after the start is served as it was read
    (a new dashboard comes with a restart, as a new binary does)."""
    html = daemon.dir / "html"
    before = (html / "app.css").read_bytes()
    (html / "app.css").write_text("/* changed */\n")
    (html / "new.js").write_text("'use strict';\n")
    (html / "index.html").unlink()
    api = Api(site)
    assert api.call("GET", "/ui/app.css", token=None)[1] == before
    assert api.call("GET", "/ui/new.js", token=None)[0] == 404
    status, body, _ = api.call("GET", "/", token=None)
    assert status == 200 and body == (REPO / "html" / "index.html").read_bytes()
