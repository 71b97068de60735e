"""Trace context (issue 16, point 3, first part): each execution is a span
of W3C trace context. The trace is its run (the first attempt's id, shared
by every attempt), the span is the attempt (its id's last 64 bits). A
shell job has it as TRACEPARENT, an http job sends it as the traceparent
header (unless it sets one itself)."""

import re

from conftest import at_ahead, job, rfc3339, wait_until

TRACEPARENT = re.compile(r"^00-([0-9a-f]{32})-([0-9a-f]{16})-01$")


def context_of(exec_id, run_id):
    return "00-%s-%s-01" % (run_id.replace("-", ""),
                            exec_id.replace("-", "")[16:])


def test_a_shell_job_and_its_retry_share_the_trace(daemon):
    out = daemon.dir / "trace.out"
    command = ('echo "$HOURGLASS_ATTEMPT $HOURGLASS_EXECUTION_ID '
               '$TRACEPARENT" >> %s; [ "$HOURGLASS_ATTEMPT" = 2 ] || exit 75'
               % out)
    daemon.start(jobs=[job("traced", at=rfc3339(at_ahead(1)), command=command,
                           max_retries=1, backoff={"initial": "100ms"})])
    daemon.wait_event("finish", job="traced", status="succeeded")
    lines = [line.split() for line in out.read_text().splitlines()]
    assert [line[0] for line in lines] == ["1", "2"], lines
    first, second = lines
    run = first[1]                  # a run is its first attempt's id
    for attempt, exec_id, context in lines:
        assert TRACEPARENT.match(context), context
        assert context == context_of(exec_id, run), (context, exec_id)
    assert first[2].split("-")[1] == second[2].split("-")[1]   # one trace
    assert first[2].split("-")[2] != second[2].split("-")[2]   # two spans


def test_an_http_job_sends_traceparent_unless_it_sets_one(daemon, receiver):
    r = receiver()
    url = r.url("/ping")
    daemon.start(jobs=[
        job("ping", type="http", url=url, at=rfc3339(at_ahead(1))),
        job("own", type="http", url=url, at=rfc3339(at_ahead(1)),
            headers={"traceparent": "00-" + "ab" * 16 + "-" + "cd" * 8
                     + "-01"})],
        load=("http",))
    daemon.wait_event("finish", job="ping", status="succeeded")
    daemon.wait_event("finish", job="own", status="succeeded")
    wait_until(lambda: len(r.accepted()) == 2, what="two requests")
    seen = r.header("traceparent")
    start = daemon.events("start", job="ping")[0]
    assert context_of(start["exec"], start["exec"]) in seen, seen
    assert "00-" + "ab" * 16 + "-" + "cd" * 8 + "-01" in seen, seen
