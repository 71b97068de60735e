"""The dashboard driven by a real browser: headless Chromium (Debian's
`chromium` and `chromium-driver`, through python3-selenium) against a
running daemon. The token is typed into the page; the jobs of the
configuration are listed; a job's executions open; a trigger from the
page, and one from elsewhere, appear without a reload (the events
stream); pause and resume; a `read` token sees no action buttons. After
each test the browser's console has no error and every resource the page
loaded came from the daemon (the Content-Security-Policy holds).

Skipped, saying why, only when the browser is missing outside CI; in CI
(CI set, as .ci/run does) a missing browser fails the test.

With HG_SCREENSHOTS=DIR (make screenshots), the tests also save a PNG of
each view they reach into DIR; nothing else changes."""

import os
import re
import shutil
import signal
import time

import pytest

from conftest import (REPO, at_ahead, job, parse_time, rfc3339,
                      sqlite_config, wait_until)
from test_api import TOKENS, Api, api_section, free_port
from test_cluster import cluster_config, kill_strays
from test_store_pg import db, server  # noqa: F401 (PostgreSQL's fixtures)
from test_cluster_redis import redis_config
import redis

try:
    from selenium import webdriver
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import Select
    from selenium.common.exceptions import (NoSuchElementException,
                                            StaleElementReferenceException)
except ImportError:          # reported by the fixture, not at collection
    webdriver = None

CHROMIUM = shutil.which("chromium")
CHROMEDRIVER = shutil.which("chromedriver")
PATIENCE = 20.0             # a loaded 2-core machine renders slowly
SHOTS = os.environ.get("HG_SCREENSHOTS")
JOBS = ["broken", "hourly", "nightly", "waiter"]    # the site's, sorted


def browser_missing():
    missing = [what for what, have in (
        ("chromium", CHROMIUM), ("chromium-driver", CHROMEDRIVER),
        ("python3-selenium", webdriver)) if not have]
    return ", ".join(missing)


@pytest.fixture(scope="module")
def chrome():
    missing = browser_missing()
    if missing:
        why = ("the dashboard's browser test needs %s (apt-get install "
               "chromium chromium-driver python3-selenium)" % missing)
        if os.environ.get("CI"):
            pytest.fail(why)
        pytest.skip(why)
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for arg in ("--headless=new", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1280,%d" % (1600 if SHOTS else 1000),
                "--no-first-run",
                "--disable-extensions", "--disable-background-networking"):
        opts.add_argument(arg)
    if os.geteuid() == 0:
        opts.add_argument("--no-sandbox")
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    service = webdriver.ChromeService(executable_path=CHROMEDRIVER) \
        if hasattr(webdriver, "ChromeService") else \
        webdriver.chrome.service.Service(executable_path=CHROMEDRIVER)
    driver = webdriver.Chrome(service=service, options=opts)
    try:
        yield driver
    finally:
        driver.quit()


class Page:
    """The dashboard open in CHROME at PORT."""

    def __init__(self, driver, port):
        self.d = driver
        self.base = "http://127.0.0.1:%d" % port
        self.opened = False

    def open(self, token):
        self.opened = True
        self.d.get(self.base + "/")
        self.d.execute_script("sessionStorage.clear()")
        self.d.get(self.base + "/")
        box = self.wait(lambda: self.visible("#token"), "the token form")
        box.send_keys(TOKENS[token])
        self.d.find_element(By.CSS_SELECTOR, "#login button").click()
        # the page's own marker: gone if anything reloads it
        self.d.execute_script("window.hgMarker = 42")

    def wait(self, pred, what, timeout=PATIENCE):
        def probe():
            try:
                return pred()
            except (NoSuchElementException, StaleElementReferenceException):
                return None
        return wait_until(probe, timeout=timeout,
                          what=lambda: "%s; the page says: %s" % (
                              what() if callable(what) else what,
                          self.text("body")))

    def visible(self, css):
        el = self.d.find_element(By.CSS_SELECTOR, css)
        return el if el.is_displayed() else None

    def all(self, css):
        return self.d.find_elements(By.CSS_SELECTOR, css)

    def text(self, css):
        try:
            return self.d.find_element(By.CSS_SELECTOR, css).text
        except NoSuchElementException:
            return ""

    def facts(self, dl):
        """DL's terms and descriptions as a dict."""
        return dict(self.d.execute_script(
            "return [...document.querySelectorAll(arguments[0] + ' dt')]"
            ".map(dt => [dt.innerText, dt.nextElementSibling.innerText])",
            dl))

    def job_row(self, id):
        for row in self.all("#jobs tbody tr"):
            if row.find_element(By.CSS_SELECTOR, "td").text == id:
                return row
        return None

    def job_ids(self):
        return [r[0] for r in self.rows("#jobs")]

    def rows(self, table):
        """The cells' text of TABLE's body, row by row."""
        # read at once, in the page: a redraw in between cannot go stale
        return self.d.execute_script(
            "return [...document.querySelectorAll(arguments[0] + ' tbody tr')]"
            ".map(tr => [...tr.cells].map(td => td.innerText.trim()))",
            table)

    def run_rows(self):
        return self.rows("#runs")

    def actions(self, within="main"):
        """The action buttons in WITHIN, shown or not."""
        return [b.get_attribute("textContent")
                for b in self.all(within + " button.action")]

    def open_listed(self, token):
        """Opens the page with TOKEN, waits for the configuration's jobs
        and the events stream."""
        self.open(token)
        self.wait(lambda: sorted(self.job_ids()) == JOBS,
                  "the configuration's jobs listed")
        self.wait(lambda: self.text("#live") == "live",
                  "the events stream open")

    def press(self, css, index=0):
        """Clicks the INDEXth element matching CSS, again if the page
        redrew it in between (a live page redraws on every event)."""
        def once():
            found = self.all(css)
            if len(found) <= index:
                return False
            found[index].click()
            return True
        self.wait(once, "%s [%d] clicked" % (css, index))

    def click(self, row_of, label):
        """Clicks the LABEL button on job ROW_OF's row."""
        index = self.job_ids().index(row_of)
        self.press("#jobs tbody tr:nth-child(%d) button.%s"
                   % (index + 1, label.lower()))

    def open_job(self, id):
        self.press("#jobs tbody tr:nth-child(%d) a"
                   % (self.job_ids().index(id) + 1))

    def shot(self, name):
        """The page as it is, into $HG_SCREENSHOTS/NAME.png (if set)."""
        if SHOTS:
            os.makedirs(SHOTS, exist_ok=True)
            self.d.save_screenshot(os.path.join(SHOTS, name + ".png"))

    def not_reloaded(self):
        assert self.d.execute_script("return window.hgMarker") == 42, \
            "the page was reloaded"

    def check_clean(self):
        """No console errors; every resource loaded from this daemon."""
        errors = [e for e in self.d.get_log("browser")
                  if e["level"] in ("SEVERE", "ERROR")]
        assert errors == [], errors
        origins = self.d.execute_script(
            "return performance.getEntriesByType('resource')"
            ".map(e => new URL(e.name).origin)")
        assert origins, "no resource timing: the page loaded nothing?"
        assert set(origins) == {self.base}, origins


@pytest.fixture
def site(daemon, chrome):
    shutil.copytree(REPO / "html", daemon.dir / "html")
    port = free_port()
    daemon.start(sqlite_config(daemon, daemon.dir / "hg.db", jobs=[
        job("nightly", command="echo nightly-out", schedule="30 2 * * *",
            timezone="Europe/Berlin", tags=["db", "nightly"]),
        job("hourly", command="echo hourly-out-$HOURGLASS_EXECUTION_ID",
            every="1h", tags=["web"]),
        # dead at its first failure; succeeds once its flag exists
        job("broken", command="echo broken-out; test -e %s || exit 3"
            % (daemon.dir / "fixed"), every="1h", max_retries=0),
        # busy until its flag exists
        job("waiter", command="while ! test -e %s; do sleep 0.05; done"
            % (daemon.dir / "go"), every="1h"),
    ], extra=api_section(port)))
    chrome.get("about:blank")           # nothing of an earlier test's
    chrome.get_log("browser")
    page = Page(chrome, port)
    yield page, Api(port)
    try:
        if page.opened:
            page.check_clean()
    finally:
        chrome.get("about:blank")       # before this daemon stops


def test_jobs_executions_trigger_live_pause(site):
    page, api = site
    page.open_listed("ops")
    assert page.actions() == ["Trigger", "Pause"] * len(JOBS)
    page.open_job("hourly")
    page.wait(lambda: page.visible("#runs-section"), "the executions")
    assert page.run_rows() == []

    # trigger from the page: the execution arrives with its output
    page.click("hourly", "Trigger")
    rows = page.wait(lambda: [r for r in page.run_rows()
                              if r[1] == "succeeded"], "the triggered run")
    assert len(rows) == 1 and "hourly-out-" in rows[0][6], rows
    assert re.fullmatch(r"\d+ KiB, \d+ ms CPU", rows[0][5]), rows

    # one triggered elsewhere arrives too, by the events alone
    status, body = api.json("POST", "/api/v1/jobs/hourly/trigger")
    assert status == 202, body
    page.wait(lambda: sum(r[1] == "succeeded" for r in page.run_rows()) == 2,
              "the second run, from the events stream")
    assert any(body["execution"] in r[6] for r in page.run_rows()), \
        page.run_rows()
    page.wait(lambda: page.facts("#job-facts")["Runs"] == "2",
              "the job's statistics, live")
    facts = page.facts("#job-facts")
    assert facts["Last status"] == "succeeded", facts
    assert facts["Success rate"] == "100 %", facts
    page.shot("1-jobs-and-a-job")

    page.click("hourly", "Pause")
    page.wait(lambda: "paused" in page.job_row("hourly").text,
              "hourly paused")
    assert api.json("GET", "/api/v1/jobs/hourly")[1]["paused"] is True
    page.click("hourly", "Resume")
    page.wait(lambda: "paused" not in page.job_row("hourly").text,
              "hourly resumed")
    assert api.json("GET", "/api/v1/jobs/hourly")[1]["paused"] is False
    page.not_reloaded()


def test_a_read_token_sees_no_actions(site):
    page, api = site
    page.open_listed("reader")
    assert page.actions() == []
    page.shot("6-read-token-no-buttons")
    # what it may see, it sees: a run triggered by someone else, live
    page.open_job("nightly")
    assert api.json("POST", "/api/v1/jobs/nightly/trigger")[0] == 202
    page.wait(lambda: any(r[1] == "succeeded" and "nightly-out" in r[6]
                          for r in page.run_rows()), "nightly's run, live")
    assert page.actions() == []
    page.not_reloaded()


def test_the_queue(site):
    page, api = site
    later = rfc3339(at_ahead(3600))
    status, body = api.json("POST", "/api/v1/queue", {
        "job": "nightly", "run_at": later, "priority": "high",
        "payload": {"n": 1}})
    assert status == 202, body
    page.open_listed("reader")
    page.d.find_element(By.LINK_TEXT, "Queue").click()
    rows = page.wait(lambda: page.rows("#queue"), "the queue's entry")
    assert rows == [["nightly", rows[0][1], "scheduled", "high",
                     "api:ops", "1", rows[0][6], ""]], rows
    assert page.actions() == []
    page.open_listed("ops")
    page.d.find_element(By.LINK_TEXT, "Queue").click()
    page.wait(lambda: page.rows("#queue"), "the queue's entry")
    assert page.actions("#queue") == ["Remove"]
    page.press("#queue button.action", 0)
    page.wait(lambda: page.rows("#queue") == [], "the entry removed")
    assert api.json("GET", "/api/v1/queue")[1]["total"] == 0

    # enqueue from the page, with a JSON payload, an hour ahead
    page.d.find_element(By.ID, "q-job").send_keys("nightly")
    page.d.find_element(By.ID, "q-payload").send_keys("{not json")
    Select(page.d.find_element(By.ID, "q-priority")).select_by_visible_text(
        "critical")
    page.d.execute_script(
        "const d = new Date(Date.now() + 3600e3);"
        "d.setSeconds(0, 0);"
        "document.getElementById('q-at').value = new Date("
        "d - d.getTimezoneOffset() * 60000).toISOString().slice(0, 16)")
    page.press("#enqueue button")
    page.wait(lambda: page.text("#error").startswith("payload: not JSON"),
              "the bad payload refused in the page")
    assert api.json("GET", "/api/v1/queue")[1]["total"] == 0
    page.d.find_element(By.ID, "q-payload").clear()
    page.d.find_element(By.ID, "q-payload").send_keys('{"n": 2}')
    page.press("#enqueue button")
    rows = page.wait(lambda: page.rows("#queue"), "the enqueued entry")
    assert rows[0][:5] == ["nightly", rows[0][1], "scheduled", "critical",
                           "api:ops"], rows
    entry = api.json("GET", "/api/v1/queue")[1]["executions"][0]
    assert entry["payload_bytes"] == len('{"n":2}'), entry
    assert parse_time(entry["run_at"]) > time.time() + 3000, entry
    page.shot("2-queue")
    page.not_reloaded()


def dead_ids(api, job="broken"):
    return sorted(x["id"] for x in api.json(
        "GET", "/api/v1/dead?job=" + job)[1]["executions"])


def test_dead_letters(site, daemon):
    page, api = site
    for n in range(1, 4):       # one at a time: it does not overlap
        assert api.json("POST", "/api/v1/jobs/broken/trigger")[0] == 202
        wait_until(lambda: len(dead_ids(api)) == n, what="%d dead" % n)

    page.open_listed("reader")
    page.d.find_element(By.LINK_TEXT, "Dead letters").click()
    rows = page.wait(lambda: len(page.rows("#dead")) == 3
                     and page.rows("#dead"), "3 dead letters")
    assert all(r[0] == "broken" and r[3] == "exit code 3"
               and r[4] == "broken-out" for r in rows), rows
    assert page.actions() == []

    page.open_listed("ops")
    page.d.find_element(By.LINK_TEXT, "Dead letters").click()
    page.wait(lambda: len(page.rows("#dead")) == 3, "3 dead letters")
    assert page.actions("#dead-bulk") == ["Retry all 3", "Purge all 3"]
    assert page.actions("#dead tbody") == ["Retry", "Purge"] * 3
    page.shot("3-dead-letters")
    before = dead_ids(api)
    page.press("#dead tbody button.action", 1)        # purge one
    page.wait(lambda: len(page.rows("#dead")) == 2, "one purged")
    assert len(dead_ids(api)) == 2 and set(dead_ids(api)) < set(before)

    (daemon.dir / "fixed").write_text("")
    page.press("#dead tbody button.action", 0)        # retry one
    page.wait(lambda: len(page.rows("#dead")) == 1, "one retried")
    wait_until(lambda: any(x["status"] == "succeeded" for x in api.json(
        "GET", "/api/v1/jobs/broken/executions")[1]["executions"]),
        what="the retried run succeeded")
    # all matching the job filter
    page.d.find_element(By.ID, "dead-job").send_keys("broken\n")
    page.wait(lambda: page.actions("#dead-bulk")[:1] == ["Retry all 1"],
              "the filter applied")
    page.press("#dead-bulk button.action", 0)
    page.wait(lambda: page.rows("#dead") == [], "all retried")
    assert dead_ids(api) == []
    wait_until(lambda: sum(x["status"] == "succeeded" for x in api.json(
        "GET", "/api/v1/jobs/broken/executions")[1]["executions"]) == 2,
        what="the 2 retried runs succeeded")

    (daemon.dir / "fixed").unlink()
    assert api.json("POST", "/api/v1/jobs/broken/trigger")[0] == 202
    page.wait(lambda: len(page.rows("#dead")) == 1, "a new dead letter, live")
    page.press("#dead-bulk button.action", 1)         # purge all
    page.d.switch_to.alert.accept()
    page.wait(lambda: page.rows("#dead") == [], "all purged")
    assert dead_ids(api) == []
    page.not_reloaded()


def test_workers_and_status(site, daemon):
    page, api = site
    page.open_listed("reader")
    page.d.find_element(By.LINK_TEXT, "Workers and status").click()
    page.wait(lambda: page.rows("#workers"), "the workers")
    facts = page.facts("#instance")
    status = api.json("GET", "/api/v1/status")[1]
    assert facts["Version"] == status["version"]
    assert facts["Process"] == str(daemon.pid)
    assert facts["Jobs"] == str(len(JOBS))
    assert facts["Your token"] == "reader (read)"
    workers = dict(page.rows("#workers"))
    assert workers["configured"] == "2" and workers["idle"] == "2", workers
    assert not page.visible("#cluster-section"), "peers outside a cluster"

    # a worker turns busy and idle again, live
    assert api.json("POST", "/api/v1/jobs/waiter/trigger")[0] == 202
    page.wait(lambda: dict(page.rows("#workers"))["busy"] == "1",
              "a busy worker")
    page.shot("4-workers-and-status")
    (daemon.dir / "go").write_text("")
    page.wait(lambda: dict(page.rows("#workers"))["busy"] == "0"
              and dict(page.rows("#ended"))["succeeded"] == "1",
              "the worker idle again, one success")
    page.not_reloaded()


def test_jobs_filters(site):
    page, api = site
    assert api.json("POST", "/api/v1/jobs/nightly/pause")[0] == 200
    page.open_listed("reader")

    def shown(what, want):
        page.wait(lambda: sorted(page.job_ids()) == want,
                  lambda: "%s: %s, not %s" % (what, page.job_ids(), want))

    tag = page.d.find_element(By.ID, "f-tag")
    tag.send_keys("web")
    shown("tag web", ["hourly"])
    tag.clear()
    tag.send_keys("db")
    shown("tag db", ["nightly"])
    tag.clear()
    shown("no filter", JOBS)
    status = Select(page.d.find_element(By.ID, "f-status"))
    status.select_by_visible_text("paused")
    shown("paused", ["nightly"])
    page.shot("5-jobs-filtered-paused")
    status.select_by_visible_text("active")
    shown("active", ["broken", "hourly", "waiter"])
    page.d.find_element(By.ID, "f-id").send_keys("r")
    shown("active, id with r", ["broken", "hourly", "waiter"])
    page.d.find_element(By.ID, "f-id").send_keys("o")
    shown("active, id with ro", ["broken"])
    page.d.find_element(By.ID, "f-type").send_keys("http")
    shown("type http", [])
    assert page.text("#jobs-total") == "0 of 0"


def test_a_job_in_words(site):
    page, api = site
    page.open_listed("reader")
    page.open_job("nightly")
    page.wait(lambda: page.text("#job-title") == "nightly", "nightly open")
    facts = page.facts("#job-facts")
    assert facts["Schedule"] == "at 02:30 every day, Europe/Berlin", facts
    assert facts["Runs"] == "0" and facts["Last status"] == "—", facts
    fires = [e.text for e in page.all("#next-fires li")]
    want = api.json("GET", "/api/v1/jobs/nightly")[1]["next_fires"]
    assert len(fires) == 5 and len(want) == 5, fires
    # in the job's zone, whatever the browser's
    assert all(" 02:30 Europe/Berlin" in f for f in fires), fires
    assert [e.get_attribute("datetime") for e in page.all(
        "#next-fires time")] == want
    page.open_job("hourly")
    page.wait(lambda: page.facts("#job-facts").get("Schedule")
              == "every 1h", "hourly's schedule")
    words = page.d.execute_script("return [" + ", ".join(
        "cronWords('%s')" % e for e in (
            "*/15 * * * *", "0 * * * *", "0 9 * * 1-5", "0 0 0 1 * *",
            "@weekly", "5 4 * * 0,6", "1 2 3 4 5")) + "]")
    assert words == [
        "every 15 minutes", "at minute 0 of every hour",
        "at 09:00 on weekdays", "at 00:00 on day 1 of every month",
        "at 00:00 every Sunday", "at 04:05 every Sunday, Saturday",
        None], words


def test_phone_width_and_dark(site, chrome):
    page, api = site
    page.open_listed("reader")
    page.open_job("nightly")
    page.wait(lambda: page.text("#job-title") == "nightly", "nightly open")
    background = ("return getComputedStyle(document.body)"
                  ".backgroundColor")
    assert chrome.execute_script(background) == "rgb(253, 253, 253)"
    try:
        chrome.execute_cdp_cmd("Emulation.setEmulatedMedia", {"features": [
            {"name": "prefers-color-scheme", "value": "dark"}]})
        chrome.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {
            "width": 390, "height": 844, "deviceScaleFactor": 1,
            "mobile": True})
        page.wait(lambda: chrome.execute_script(background)
                  == "rgb(20, 20, 20)", "the dark scheme")
        # nothing wider than the phone: no sideways scrolling
        for view in ("Jobs", "Queue", "Dead letters", "Timeline",
                     "Workers and status"):
            page.d.find_element(By.LINK_TEXT, view).click()
            if view == "Timeline":      # wider than a phone: its box scrolls
                page.wait(lambda: len(timeline_marks(page)[0]) == 4,
                          "the timeline's lanes")
                assert chrome.execute_script(
                    "const b = document.getElementById('timeline-box');"
                    "return b.scrollWidth > b.clientWidth"), "no scrolling"
                page.shot("9-phone-dark-timeline")
            # (a mobile viewport widens to its content: the phone's own
            # width is the bound)
            width = page.wait(lambda: chrome.execute_script(
                "return document.documentElement.scrollWidth"), "the width")
            assert width <= 390, (view, width)
            if view == "Jobs":
                page.shot("7-phone-dark-jobs")
    finally:
        chrome.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
        chrome.execute_cdp_cmd("Emulation.setEmulatedMedia",
                               {"features": []})


def test_keyboard_only(site):
    """Token typed and sent with Enter, then Tab to hourly's Trigger and
    Enter: the run happens, no mouse."""
    page, api = site
    page.d.get(page.base + "/")
    page.d.execute_script("sessionStorage.clear()")
    page.d.get(page.base + "/")
    page.opened = True
    box = page.wait(lambda: page.visible("#token"), "the token form")
    box.send_keys(TOKENS["ops"] + Keys.ENTER)
    page.wait(lambda: sorted(page.job_ids()) == JOBS, "the jobs listed")
    focused = ("const e = document.activeElement;"
               "return [e.textContent, e.closest('tr') &&"
               " e.closest('tr').cells[0].textContent]")
    for _ in range(60):
        if page.d.execute_script(focused) == ["Trigger", "hourly"]:
            break
        page.d.switch_to.active_element.send_keys(Keys.TAB)
    else:
        raise AssertionError("Tab never reached hourly's Trigger")
    page.d.switch_to.active_element.send_keys(Keys.ENTER)
    wait_until(lambda: api.json("GET", "/api/v1/jobs/hourly/executions")[1]
               ["total"] == 1, what="hourly triggered from the keyboard")


def test_the_page_comes_back_live_after_a_restart(site, daemon, chrome):
    page, api = site
    page.open_listed("reader")
    page.open_job("hourly")
    page.wait(lambda: page.text("#job-title") == "hourly", "hourly open")
    daemon.stop()
    page.wait(lambda: page.text("#live") == "disconnected",
              "the page sees the daemon gone")
    daemon.start()
    page.wait(lambda: page.text("#live") == "live", "live again")
    assert api.json("POST", "/api/v1/jobs/hourly/trigger")[0] == 202
    page.wait(lambda: any(r[1] == "succeeded" for r in page.run_rows()),
              "a run after the restart, live")
    assert page.text("#error") == ""
    page.not_reloaded()
    # what the console said while the daemon was away, and only that: the
    # stream cut as the daemon stopped, then refused connections
    gone = [e for e in chrome.get_log("browser")
            if e["level"] in ("SEVERE", "ERROR")]
    assert all("ERR_CONNECTION_REFUSED" in e["message"]
               or "/api/v1/events - Failed to load resource: "
               "net::ERR_INCOMPLETE_CHUNKED_ENCODING" in e["message"]
               for e in gone), gone


def test_stop_a_running_job(site):
    page, api = site
    page.open_listed("ops")
    assert api.json("POST", "/api/v1/jobs/waiter/trigger")[0] == 202
    page.open_job("waiter")
    page.wait(lambda: "Stop" in page.actions("#jobs"), "a Stop button")
    page.click("waiter", "Stop")
    rows = page.wait(lambda: [r for r in page.run_rows()
                              if r[1] == "killed"], "the run killed, live")
    assert len(rows) == 1, rows
    page.wait(lambda: "Stop" not in page.actions("#jobs"), "Stop gone")


def timeline_marks(page):
    """The timeline's marks, read at once: {job: [(id, class), ...]} and
    {job: [fire time, ...]}."""
    return page.d.execute_script(
        "const runs = {}, fires = {};"
        "for (const g of document.querySelectorAll('#timeline .lane')) {"
        "  runs[g.dataset.job] = [...g.querySelectorAll('.mark')]"
        "    .map(m => [m.dataset.id, m.getAttribute('class')]);"
        "  fires[g.dataset.job] = [...g.querySelectorAll('.fire')]"
        "    .map(m => m.dataset.time); }"
        "return [runs, fires]")


def test_the_timeline(site):
    page, api = site
    ran = {}
    for name in ("hourly", "broken"):
        for n in range(2):      # one at a time: they do not overlap
            status, body = api.json("POST", "/api/v1/jobs/%s/trigger" % name)
            assert status == 202, body
            wait_until(lambda: all(x["finished_at"] for x in api.json(
                "GET", "/api/v1/jobs/%s/executions" % name)[1]["executions"]),
                what="%s's run %d done" % (name, n + 1))
        ran[name] = {x["id"]: x["status"] for x in api.json(
            "GET", "/api/v1/jobs/%s/executions" % name)[1]["executions"]}
    assert set(ran["hourly"].values()) == {"succeeded"}, ran
    assert set(ran["broken"].values()) <= {"failed", "dead"}, ran

    page.open_listed("reader")
    page.d.execute_script("performance.clearResourceTimings()")
    page.d.find_element(By.LINK_TEXT, "Timeline").click()
    runs, fires = page.wait(lambda: len(timeline_marks(page)[0]) == 4
                            and timeline_marks(page), "the timeline's lanes")
    assert sorted(runs) == JOBS, runs
    # a lane is one request, its executions of the hour (since=): no
    # paging through a job's history, no read of each job for its fires
    asked = page.d.execute_script(
        "return performance.getEntriesByType('resource')"
        ".map(e => new URL(e.name)).filter(u => u.pathname"
        ".startsWith('/api/v1/jobs/')).map(u => u.pathname + u.search)")
    lanes = [re.fullmatch(r"/api/v1/jobs/([^/]+)/executions\?page_size=500"
                          r"&since=\d+", a) for a in asked]
    assert asked and all(lanes), asked
    assert sorted({m.group(1) for m in lanes}) == JOBS, asked
    for name in ("hourly", "broken"):
        assert {id: cls.split() for id, cls in runs[name]} == {
            id: ["mark", status] for id, status in ran[name].items()}, runs
    assert runs["nightly"] == runs["waiter"] == [], runs
    # every=1h: each has its next fire within the hour, drawn hollow
    now = time.time()
    assert len(fires["hourly"]) == 1, fires
    assert now - 5 <= parse_time(fires["hourly"][0]) <= now + 3600, fires

    # the details, by keyboard focus (the hover title says the same)
    failed = runs["broken"][0][0]
    page.d.execute_script(
        "document.querySelector('#timeline [data-id=\"' + arguments[0]"
        " + '\"]').focus()", failed)
    detail = page.wait(lambda: page.text("#timeline-detail"), "the details")
    assert detail.startswith("broken: " + ran["broken"][failed]), detail
    assert detail.endswith(", exit code 3"), detail
    assert page.d.execute_script(
        "return document.querySelector('#timeline [data-id=\"' + arguments[0]"
        " + '\"] title').textContent", failed) == detail
    assert "the first" not in page.text("#timeline-note")
    page.shot("8-timeline")

    # a run triggered elsewhere appears, by the events alone
    status, body = api.json("POST", "/api/v1/jobs/hourly/trigger")
    assert status == 202, body
    page.wait(lambda: [c for id, c in timeline_marks(page)[0]["hourly"]
                       if id == body["execution"]] == ["mark succeeded"],
              "the new run's mark, live")
    page.not_reloaded()


def test_overlapping_runs_share_their_lane_visibly(site):
    """Two runs of one job at once (overlap = allow) are drawn in rows of
    their lane, both visible, not one over the other."""
    page, api = site
    status, body = api.json("POST", "/api/v1/jobs", {
        "id": "overlaps", "type": "shell", "command": "sleep 1.5",
        "every": "1h", "overlap": "allow"})
    assert status in (200, 201), body
    for _ in range(2):
        status, body = api.json("POST", "/api/v1/jobs/overlaps/trigger")
        assert status == 202, body

    def both_done():
        runs = api.json("GET", "/api/v1/jobs/overlaps/executions")[1][
            "executions"]
        return len(runs) == 2 and all(x["finished_at"] for x in runs) \
            and runs
    runs = wait_until(both_done, what="the two runs done")
    started = sorted(parse_time(x["started_at"]) for x in runs)
    ended = sorted(parse_time(x["finished_at"]) for x in runs)
    assert started[1] < ended[0], runs          # they did overlap

    page.open("reader")
    page.wait(lambda: "overlaps" in page.job_ids(), "the API's job listed")
    page.d.find_element(By.LINK_TEXT, "Timeline").click()
    rects = page.wait(lambda: page.d.execute_script(
        "return [...document.querySelectorAll("
        "'#timeline .lane[data-job=\"overlaps\"] .mark rect')]"
        ".map(r => r.getBBox()).map(b => [b.x, b.y, b.width, b.height])"),
        "the two marks of the overlapping runs")
    assert len(rects) == 2, rects
    (x1, y1, w1, h1), (x2, y2, w2, h2) = rects
    assert x1 < x2 + w2 and x2 < x1 + w1, rects     # side by side in time
    assert y1 + h1 <= y2 or y2 + h2 <= y1, rects    # so one row each
    assert min(h1, h2) >= 4, rects


def test_the_jobs_columns(site, chrome):
    """Each job's row: last status, success rate, p95 and its next five
    fire times in its own zone (from GET /jobs alone); at phone width the
    less important columns give way."""
    page, api = site
    for name in ("hourly", "broken"):
        status, body = api.json("POST", "/api/v1/jobs/%s/trigger" % name)
        assert status == 202, body
    page.open_listed("reader")
    heads = page.d.execute_script(
        "return [...document.querySelectorAll('#jobs th')]"
        ".map(th => th.innerText.trim())")
    col = {h.split(",")[0]: i for i, h in enumerate(heads)}

    def row(id):
        return [r for r in page.rows("#jobs") if r[0] == id][0]
    page.wait(lambda: row("broken")[col["Last status"]] == "dead"
              and row("hourly")[col["Last status"]] == "succeeded",
              "both runs' statuses in the list")
    assert row("hourly")[col["Success"]] == "100 % of 1", row("hourly")
    assert row("broken")[col["Success"]] == "0 % of 1", row("broken")
    assert re.fullmatch(r"\d+ ms", row("hourly")[col["p95"]]), row("hourly")
    nightly = row("nightly")
    assert nightly[col["Last status"]] == "never ran", nightly
    assert nightly[col["Success"]] == nightly[col["p95"]] == "—", nightly
    # the first fire shown in Berlin's wall time, the next four folded
    assert re.fullmatch(r"\d{4}-\d\d-\d\d 02:30 \+01:00",
                        nightly[col["Next fires"]]), nightly
    fires = page.d.execute_script(
        "return [...document.querySelectorAll('#jobs tbody tr')]"
        ".filter(tr => tr.cells[0].innerText.trim() === 'nightly')"
        ".map(tr => [...tr.querySelectorAll('td.next time')]"
        ".map(t => t.dateTime))[0]")
    assert len(fires) == 5 and all(f.endswith("T02:30:00+01:00")
                                   for f in fires), fires
    page.shot("1b-jobs-columns")
    shown = ("return [...document.querySelectorAll('#jobs th')]"
             ".filter(th => getComputedStyle(th).display !== 'none')"
             ".map(th => th.innerText.trim().split(',')[0])")
    assert len(page.d.execute_script(shown)) == 9
    try:
        chrome.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {
            "width": 390, "height": 844, "deviceScaleFactor": 1,
            "mobile": True})
        page.wait(lambda: page.d.execute_script(shown) == [
            "Job", "Last status", "Next fires", "Actions"],
            "the phone's columns")
        width = chrome.execute_script(
            "return document.documentElement.scrollWidth")
        assert width <= 390, width
    finally:
        chrome.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})


def peers_rows(page, n):
    """Opens the instance view with a read token; the peers' rows once
    N are shown."""
    page.open("reader")
    page.wait(lambda: page.visible("#views"), "the views")
    page.d.find_element(By.LINK_TEXT, "Workers and status").click()
    return page.wait(lambda: len(page.rows("#peers")) == n
                     and page.rows("#peers"), "%d instances" % n)


def test_the_peers_of_a_cluster(hg, db, chrome):
    """In a cluster (store postgres: two instances on one database), the
    instance view shows this instance and its peers, live or not, lease
    left and term; once a peer dies (kill -9), it is shown dead, its
    lease lapsed, and taken over by this instance, without a reload."""
    server, name, url = db
    a, b = hg("a"), hg("b")
    shutil.copytree(REPO / "html", a.dir / "html")
    port = free_port()
    jobs = [job("tick", command="true", every="1h")]
    a.start(cluster_config(a, url, "a", jobs, api_section(port), lease="2s"))
    b.start(cluster_config(b, url, "b", jobs, lease="2s"))
    chrome.get("about:blank")
    chrome.get_log("browser")
    page = Page(chrome, port)
    try:
        rows = page.wait(lambda: (lambda r: sum("(leader)" in x[0]
                                                for x in r) == 1 and r)(
                             peers_rows(page, 2)), "one of them the leader")
        assert [[r[0].replace(" (leader)", ""), r[1]] for r in rows] \
            == [["a (this one)", "live"], ["b", "live"]], rows
        assert all(re.fullmatch(r"\d+ ms|\d+\.\d s", r[2]) for r in rows), \
            rows
        assert all(int(r[4]) >= 1 and r[5] == "" for r in rows), rows
        assert "This is instance a" in page.text("#cluster-note")
        page.shot("10-cluster-peers")
        b.signal(signal.SIGKILL)
        b.wait_exit()
        kill_strays(b)
        rows = page.wait(lambda: (lambda r: r[1][1] == "dead" and r[1][5]
                                  == "a" and r)(page.rows("#peers")),
                         "b shown dead, taken over by a")
        assert rows[0][1] == "live" and rows[0][0].startswith("a (this one)"), \
            rows
        assert rows[1][2].startswith("lapsed "), rows
        page.wait(lambda: page.rows("#peers")[0][0]
                  == "a (this one) (leader)", "a the leader once b is dead")
        page.shot("11-cluster-peer-taken-over")
        page.not_reloaded()
        page.check_clean()
    finally:
        chrome.get("about:blank")       # before the daemons stop


@pytest.fixture
def redis_server():
    redis.require(pytest)
    s = redis.RedisServer()
    s.start()
    yield s
    s.destroy()


def test_the_peers_of_a_redis_cluster(hg, redis_server, chrome):
    """Coordinated through Redis, the instance view says so and marks the
    leader; it has no renewal times nor takeover to show, and shows a dash
    and nothing rather than undefined."""
    a, b = hg("a"), hg("b")
    shutil.copytree(REPO / "html", a.dir / "html")
    port = free_port()
    jobs = [job("tick", command="true", every="1h")]
    a.start(redis_config(a, redis_server.url, "a", jobs, api_section(port)))
    b.start(redis_config(b, redis_server.url, "b", jobs))
    chrome.get("about:blank")
    chrome.get_log("browser")
    page = Page(chrome, port)
    try:
        rows = peers_rows(page, 2)
        rows = sorted(rows)
        assert [r[1] for r in rows] == ["live", "live"], rows
        assert sum("(leader)" in r[0] for r in rows) == 1, rows
        assert rows[0][0].startswith("a (this one)"), rows
        assert all(r[3] == "\u2014" and r[4] == "\u2014" and r[5] == ""
                   for r in rows), rows
        assert "Coordinated through Redis" in page.text("#cluster-note")
        page.check_clean()
    finally:
        chrome.get("about:blank")       # before the daemons stop
