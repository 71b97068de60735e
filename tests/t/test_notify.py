"""Notifications (DESIGN.md "Notifications", issue 16): channels named
once at the top level, a job's `notify` (or the defaults'), deliveries run
by a worker as executions of the channel's internal job, retried, counted
in hourglass_notifications_total, and rate-limited per job and channel with
one summary at the end of a window.

A webhook is conftest's `receiver`; a command channel appends its stdin
to a file.
"""

import http.client
import json
import re
import signal
import time

from conftest import (at_ahead, db_rows, etime, job, parse_time, rfc3339,
                      run_hourglass, sqlite_config, wait_until)
from test_metrics import TOKEN, api_conf, listen_port, scrape


def series(port, family):
    """{(label values...): value} of FAMILY's series."""
    out = {}
    for line in scrape(port).splitlines():
        m = re.match(r'%s\{(.*)\} (\S+)$' % family, line)
        if m:
            out[tuple(re.findall(r'="([^"]*)"', m.group(1)))] = \
                float(m.group(2))
    return out


def notifications(port):
    """{(channel, result): value} of hourglass_notifications_total."""
    return series(port, "hourglass_notifications_total")


# Quick retries for the deliveries (the channel's tries use the defaults'
# backoff) and none for the jobs unless they say so.
DEFAULTS = ('defaults = { max_retries = 0; backoff = { initial = "200ms"; '
            'max = "200ms"; jitter = 0.0; }; };')


def channels(*groups):
    return "channels = ( %s );" % ", ".join(groups)


def webhook(name, url, **keys):
    items = ['name = "%s";' % name, 'type = "webhook";', 'url = "%s";' % url]
    items += ["%s = %s;" % (k, json.dumps(v)) for k, v in keys.items()]
    return "{ %s }" % " ".join(items)


def test_webhook_body_retry_and_metric(hg, receiver):
    """A run that fails for good is POSTed as JSON: event, job, execution,
    status, exit code, times, its last output lines, a Slack `text`. The
    receiver refuses the first try: the delivery is retried (the channel's
    retries), recorded as an execution of notify:hook, and counted."""
    rx = receiver(fail_first=1)
    port = listen_port()
    d = hg()
    d.start(extra="\n".join([
        DEFAULTS, api_conf(port),
        channels(webhook("hook", rx.url("/hook"), retries=2))]),
        load=("shell", "http"),
        jobs=[job("backup", command="echo line one; echo the disk is "
                  "full >&2; exit 3", at=rfc3339(at_ahead(1.5)),
                  notify={"on": ["failure"], "via": ["hook"]})])
    [ev] = rx.wait(1, "notifications")
    assert ev["event"] == "failure"
    assert ev["job"] == "backup"
    assert ev["status"] == "dead"
    assert ev["exit_code"] == 3 and ev["signal"] is None
    assert ev["attempt"] == 1
    assert "the disk is full" in ev["output"]
    assert "line one" in ev["output"]
    assert ev["text"].startswith("hourglass: job backup failed")
    assert "exit code 3" in ev["text"]
    for key in ("execution", "run", "scheduled_for", "started_at",
                "finished_at"):
        assert ev[key], key
    assert rx.attempts == 2         # the first try was refused
    [post] = rx.accepted()
    assert post["method"] == "POST" and post["path"] == "/hook"
    assert post["headers"]["Content-Type"] == "application/json"
    wait_until(lambda: notifications(port).get(("hook", "sent")) == 1,
               what="notifications_total{hook,sent} = 1")
    # the delivery is an execution like any: two attempts, recorded
    tries = [e for e in d.events("finish") if e.get("job") ==
             "notify:hook"]
    assert [e["status"] for e in tries] == ["failed", "succeeded"]


def test_signal_and_bytes_that_are_not_text(hg, tmp_path):
    """A run killed by a signal says which, in `signal` and in `text`; an
    output that is not UTF-8 reaches the channel as text, each byte that
    is not shown as "?", and its last lines only."""
    out = tmp_path / "events.jsonl"
    data = tmp_path / "bytes"
    data.write_bytes(b"caf\xc3\xa9 \xff\xfe end\n")
    d = hg()
    d.start(extra="\n".join([
        DEFAULTS,
        channels('{ name = "page"; type = "command"; command = "cat >> %s; '
                 'echo >> %s"; }' % (out, out))]),
        jobs=[job("killed", at=rfc3339(at_ahead(1.0)),
                  # "$$$$": the shell's $$ ("$$" is a "$" in the file)
                  command="cat %s; kill -TERM $$$$" % data,
                  notify={"on": ["failure"], "via": ["page"]})])

    def events():
        if not out.exists():
            return []
        return [json.loads(l) for l in out.read_text().splitlines() if l]
    [ev] = wait_until(lambda: events() or None, timeout=15,
                      what="the event in the command's file")
    assert ev["event"] == "failure" and ev["status"] == "dead"
    assert ev["signal"] == "SIGTERM" and ev["exit_code"] is None, ev
    assert "signal TERM" in ev["text"], ev["text"]
    assert ev["output"] == "caf\u00e9 ?? end\n", ev["output"]


def test_command_channel_failure_then_recovered(hg, tmp_path):
    """A command channel gets the event on stdin; the first success after
    a failure raises `recovered`."""
    out = tmp_path / "events.jsonl"
    flag = tmp_path / "flag"
    d = hg()
    d.start(extra="\n".join([
        DEFAULTS,
        channels('{ name = "page"; type = "command"; command = "cat >> %s; '
                 'echo >> %s"; }' % (out, out))]),
        jobs=[job("flaky", every="1s",
                  command="test -f %s && exit 0; touch %s; exit 1"
                  % (flag, flag),
                  notify={"on": ["failure", "recovered"], "via": ["page"]})])

    def events():
        if not out.exists():
            return []
        return [json.loads(l) for l in out.read_text().splitlines() if l]
    evs = wait_until(lambda: events() if len(events()) >= 2 else None,
                     timeout=15, what="two events in the command's file")
    assert [e["event"] for e in evs[:2]] == ["failure", "recovered"]
    assert evs[1]["status"] == "succeeded"
    assert evs[1]["text"] == "hourglass: job flaky recovered: it succeeded again"
    time.sleep(1.5)                     # more successes tell nothing more
    assert len(events()) == 2


def test_rate_limit_then_summary(hg, receiver):
    """At most rate_limit notifications per job and channel in a window;
    the rest are counted and told in one summary when the window ends."""
    rx = receiver()
    port = listen_port()
    d = hg()
    d.start(extra="\n".join([
        DEFAULTS, api_conf(port),
        channels(webhook("hook", rx.url("/hook"), rate_limit=2,
                         rate_window="3s"))]),
        load=("shell", "http"),
        jobs=[job("noisy", every="200ms", command="exit 1",
                  notify={"on": ["failure"], "via": ["hook"]})])

    def summary():
        found = [e for e in rx.received() if e["event"] == "suppressed"]
        return found[0] if found else None
    summary = wait_until(summary, timeout=15, what="the summary")
    # in the order the master sent them (two workers may deliver the
    # summary after the next window's first): 2, then the summary
    sent = [e["message"].split(" ")[0] for e in d.events("notify")
            if e.get("job") == "noisy"]
    assert sent[:3] == ["failure", "failure", "suppressed"]
    assert summary["job"] == "noisy" and summary["suppressed"] >= 3
    assert re.match(r"hourglass: %d more failure notifications of job "
                    r"noisy suppressed" % summary["suppressed"],
                    summary["text"])
    counts = notifications(port)
    assert counts[("hook", "suppressed")] >= summary["suppressed"]


def test_reload_applies_channels(hg, receiver):
    """A reload that points the channel elsewhere: the next notification
    goes there."""
    a, b = receiver(), receiver()
    d = hg()

    def text(url):
        return d.config(
            extra="\n".join([DEFAULTS, channels(webhook("hook", url))]),
            load=("shell", "http"),
            jobs=[job("fails", every="1s", command="exit 2",
                      notify={"on": ["failure"], "via": ["hook"]})])
    d.start(text(a.url("/hook")))
    a.wait(1, "notifications")
    d.write(text(b.url("/hook")))
    d.signal(signal.SIGHUP)
    [ev] = b.wait(1, "notifications")[:1]
    assert ev["job"] == "fails"


def refused(tmp_path, *lines):
    """(file, its errors) of a configuration of LINES that -t refuses."""
    conf = tmp_path / "scheduler.conf"
    conf.write_text("\n".join(('store = { driver = "memory"; };',) + lines
                              + ("",)))
    r = run_hourglass("-t", "-c", conf, "-p", tmp_path)
    assert r.returncode == 1, r.stderr
    return conf, r.stderr


def test_configuration_errors_name_file_and_line(tmp_path):
    conf, err = refused(
        tmp_path,
        'channels = ( { name = "hook"; type = "webhook"; },',
        '  { name = "page"; type = "command"; command = "cat"; } );',
        'defaults = { notify = { on = [ "dead" ]; via = [ "nowhere" ]; }; };',
        'jobs = ( { id = "a"; type = "shell"; command = "true";',
        '  notify = { on = [ "failur" ]; via = [ "pag" ]; }; } );')
    assert "%s:2: channels[0]: a webhook channel needs url" % conf in err
    assert ('%s:4: defaults.notify.via: unknown channel "nowhere"' % conf
            in err)
    assert ('%s:6: job "a": notify.on: unknown event "failur" (did you mean '
            '"failure"?)' % conf in err)
    assert '%s:6: job "a": notify.via: unknown channel "pag"' % conf in err


# --- dead-man: expect = { success_within; run_within; } -------------------

def command_channel(path):
    return ('{ name = "page"; type = "command"; command = "cat >> %s; '
            'echo >> %s"; }' % (path, path))


def read_events(path):
    if not path.exists():
        return []
    return [json.loads(l) for l in path.read_text().splitlines() if l]


def wait_events(path, n, what="events in the command's file"):
    return wait_until(lambda: read_events(path)
                      if len(read_events(path)) >= n else None,
                      timeout=15, what="%d %s" % (n, what))


def trigger(port, job_id):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        c.request("POST", "/api/v1/jobs/%s/trigger" % job_id,
                  headers={"Authorization": "Bearer " + TOKEN})
        r = c.getresponse()
        r.read()
        assert r.status == 202, r.status
    finally:
        c.close()


def overdue_gauge(port, job_id):
    m = re.search(r'^hourglass_job_overdue\{job="%s"\} (\S+)$'
                  % re.escape(job_id), scrape(port), re.M)
    return float(m.group(1)) if m else None


def test_overdue_once_per_window_then_cleared(hg, tmp_path):
    """A job that does not succeed within success_within is overdue: one
    notification per window while it lasts, the gauge 1; a success ends
    it (gauge 0)."""
    out = tmp_path / "events.jsonl"
    port = listen_port()
    d = hg()
    d.start(extra="\n".join([DEFAULTS, api_conf(port),
                             channels(command_channel(out))]),
            jobs=[job("nightly", command="true",
                      expect={"success_within": "2s"},
                      notify={"on": ["overdue"], "via": ["page"]})])
    evs = wait_events(out, 2, "overdue notifications")
    assert [e["event"] for e in evs[:2]] == ["overdue", "overdue"]
    first = evs[0]
    assert first["job"] == "nightly" and first["status"] == "overdue"
    assert first["expect"] == {"success_within": "2s", "within_ms": 2000}
    assert first["text"].startswith("hourglass: job nightly is overdue: no "
                                    "success within 2s")
    assert overdue_gauge(port, "nightly") == 1
    # once per window: the log says when each was raised
    raised = [e for e in d.events("overdue") if e.get("job") == "nightly"]
    assert len(raised) >= 2
    assert etime(raised[1]) - etime(raised[0]) >= 1.9
    # a success ends it
    trigger(port, "nightly")
    wait_until(lambda: overdue_gauge(port, "nightly") == 0,
               what="hourglass_job_overdue{nightly} back to 0")


def test_overdue_window_survives_a_restart(hg, tmp_path):
    """The window counts from the last success the store holds, not from
    the start: after a restart the overdue notification names that
    success."""
    out = tmp_path / "events.jsonl"
    d = hg()
    db = d.dir / "hg.db"
    text = sqlite_config(
        d, extra="\n".join([DEFAULTS, channels(command_channel(out))]),
        jobs=[job("once", command="true", at=rfc3339(at_ahead(1.5)),
                  misfire="skip", expect={"success_within": "3s"},
                  notify={"on": ["overdue"], "via": ["page"]})])
    d.start(text)
    d.wait_event("finish", job="once", status="succeeded")
    d.stop()
    [row] = db_rows(db, "job_id = 'once' AND status = 'succeeded'")
    time.sleep(1.5)         # the restart's second differs from the success's
    d.start(text)
    [ev] = wait_events(out, 1, "overdue notification")[:1]
    assert ev["event"] == "overdue"
    # the store's success, to the second (the store keeps ms; the answer
    # read back is whole seconds)
    assert int(parse_time(ev["last_success"])) == row["finished_at"] // 1000


def test_recovered_after_a_restart(hg, tmp_path):
    """A job that failed for good before a restart and succeeds after it
    raises `recovered`: whether it was failing comes from the store (its
    last final status), not from the memory of the master that saw it."""
    out = tmp_path / "events.jsonl"
    d = hg()

    def text(command):
        return sqlite_config(
            d, extra="\n".join([DEFAULTS, channels(command_channel(out))]),
            jobs=[job("flaky", command=command, at=rfc3339(at_ahead(1.5)),
                      misfire="skip", notify={"on": ["failure", "recovered"],
                                              "via": ["page"]})])
    d.start(text("exit 1"))
    wait_events(out, 1, "failure notification")
    d.stop()
    d.start(text("true"))
    d.wait_event("finish", job="flaky", status="succeeded")
    evs = wait_events(out, 2, "notifications")
    assert [e["event"] for e in evs] == ["failure", "recovered"]
    assert evs[1]["job"] == "flaky" and evs[1]["status"] == "succeeded"


def test_missed_run(hg, tmp_path):
    """A run that cannot start within its starting_deadline (the one
    worker is busy) is recorded missed, and `missed` is told."""
    out = tmp_path / "events.jsonl"
    at = rfc3339(at_ahead(1.5))
    d = hg()
    d.start(workers=1, extra="\n".join([DEFAULTS,
                                        channels(command_channel(out))]),
            jobs=[job("blocker", command="sleep 2", at=at,
                      priority="critical"),
                  job("report", command="true", at=at,
                      starting_deadline="1s",
                      notify={"on": ["missed"], "via": ["page"]})])
    [ev] = wait_events(out, 1, "missed notification")
    assert ev["event"] == "missed" and ev["job"] == "report"
    assert ev["status"] == "missed" and ev["started_at"] is None
    assert parse_time(ev["scheduled_for"]) == parse_time(at)
    assert ev["text"].startswith("hourglass: job report missed its run due")
