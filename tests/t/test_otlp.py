"""OTLP export (issue 16, point 3): with `tracing = { otlp = URL; }` each
attempt of each execution is a span POSTed as OTLP/HTTP JSON to
URL/v1/traces by a worker (the internal job trace:otlp), batched, bounded,
retried, and counted in hourglass_trace_spans_total{result}.

The collector is conftest's `receiver` (a python http.server on 127.0.0.1
that keeps each POST's JSON body, and can refuse them)."""

import json
import signal

from conftest import at_ahead, job, rfc3339, sched, wait_until
from test_metrics import api_conf, listen_port, request
from test_notify import refused, series


def tracing(rx, **keys):
    items = ['otlp = "%s";' % rx.url()]
    items += ['%s = %s;' % (k, '"%s"' % v if isinstance(v, str) else v)
              for k, v in keys.items()]
    return "tracing = { %s };" % " ".join(items)


def spans(rx):
    """Every span received, each with its body's resource attributes."""
    out = []
    for body in rx.received():
        for rs in body["resourceSpans"]:
            resource = attrs(rs["resource"])
            for ss in rs["scopeSpans"]:
                for span in ss["spans"]:
                    out.append(dict(span, resource=resource,
                                    scope=ss["scope"]["name"]))
    return out


def attrs(obj):
    """{key: value} of an OTLP attribute list (ints are strings)."""
    return {a["key"]: next(iter(a["value"].values()))
            for a in obj["attributes"]}


def of_job(rx, job_id):
    return sorted((s for s in spans(rx) if s["name"] == job_id),
                  key=lambda s: int(attrs(s)["hourglass.attempt"]))


def trace_spans(port):
    """{result: value} of hourglass_trace_spans_total."""
    return {k[0]: v for k, v in
            series(port, "hourglass_trace_spans_total").items()}


DEFAULTS = ('defaults = { max_retries = 0; backoff = { initial = "300ms"; '
            'max = "300ms"; jitter = 0.0; }; };')


def test_spans_trace_parents_attributes_and_errors(hg, receiver):
    """A retried run's two attempts are two spans of one trace (the
    traceparent the job saw), the retry's parent the first attempt; a
    failure's span has the ERROR status; each carries the job's
    attributes; the exports are counted."""
    rx = receiver()
    port = listen_port()
    d = hg()
    out = d.dir / "tp.out"
    d.start(extra="\n".join([DEFAULTS, api_conf(port),
                             tracing(rx, interval="100ms")]),
            load=("shell", "http"),
            jobs=[job("traced", at=rfc3339(at_ahead(1)),
                      command='echo "$TRACEPARENT" >> %s; '
                      '[ "$HOURGLASS_ATTEMPT" = 2 ] || exit 75' % out,
                      max_retries=1, backoff={"initial": "100ms"}),
                  job("broken", at=rfc3339(at_ahead(1)),
                      command="exit 3")])
    wait_until(lambda: len(of_job(rx, "traced")) == 2
               and len(of_job(rx, "broken")) == 1,
               timeout=20, what="three spans at the collector")
    assert all(r["method"] == "POST" and r["path"] == "/v1/traces"
               for r in rx.accepted())
    assert all(r["headers"]["Content-Type"] == "application/json"
               for r in rx.accepted())
    first, second = of_job(rx, "traced")
    seen = out.read_text().split()
    assert len(seen) == 2, seen
    # the span is the one whose context the job was given
    for span, context in zip((first, second), seen):
        _, trace_id, span_id, _ = context.split("-")
        assert span["traceId"] == trace_id
        assert span["spanId"] == span_id
    assert first["traceId"] == second["traceId"]
    assert "parentSpanId" not in first          # the run's root
    assert second["parentSpanId"] == first["spanId"]
    a1, a2 = attrs(first), attrs(second)
    assert a1["hourglass.job"] == "traced"
    assert (a1["hourglass.attempt"], a2["hourglass.attempt"]) == \
        ("1", "2")
    assert (a1["hourglass.status"], a2["hourglass.status"]) == \
        ("failed", "succeeded")
    assert a1["hourglass.exit_code"] == "75"
    assert int(a1["hourglass.lag_ms"]) >= 0
    assert a1["hourglass.instance"]
    assert a1["hourglass.run"] == a2["hourglass.run"]
    assert first["status"]["code"] == 2
    assert second["status"]["code"] == 1
    assert int(first["endTimeUnixNano"]) >= int(first["startTimeUnixNano"])
    assert int(second["startTimeUnixNano"]) >= \
        int(first["endTimeUnixNano"])
    [broken] = of_job(rx, "broken")
    assert broken["status"]["code"] == 2
    assert broken["status"]["message"]
    assert attrs(broken)["hourglass.exit_code"] == "3"
    assert broken["traceId"] != first["traceId"]
    assert broken["resource"]["service.name"] == "hourglass"
    assert broken["scope"] == "hourglass"
    # the exports make no spans of their own, and are no user job
    assert {s["name"] for s in spans(rx)} == {"traced", "broken"}
    wait_until(lambda: trace_spans(port).get("exported") == 3,
               what="trace_spans_total{exported} = 3")
    # the exporter is no job of the table
    status, body = request(port, "GET", "/api/v1/jobs")
    assert status == 200
    assert sorted(j["id"] for j in json.loads(body)["jobs"]) == \
        ["broken", "traced"]


def test_collector_away_then_back(hg, receiver):
    """The collector refuses every export for a while: spans with no room
    are dropped and counted, refused batches counted failed, and the jobs
    keep running on time; once it is back, spans arrive again."""
    rx = receiver(fail_first=10 ** 9)
    port = listen_port()
    d = hg()
    d.start(extra="\n".join([
        DEFAULTS, api_conf(port),
        tracing(rx, batch=1, queue=2, interval="50ms", retries=2)]),
        load=("shell", "http"),
        jobs=[job("tick", every="200ms", command="true")])
    counts = wait_until(lambda: (lambda c: c if c.get("dropped", 0) >= 2
                                 and c.get("failed", 0) >= 1 else None)(
                                     trace_spans(port)),
                        timeout=20, what="spans dropped and failed")
    assert "exported" not in counts
    assert rx.received() == []
    with rx.lock:
        rx.fail_first = rx.attempts     # the collector is back
    wait_until(lambda: of_job(rx, "tick"), timeout=20,
               what="a span of tick after the collector is back")
    wait_until(lambda: trace_spans(port).get("exported", 0) >= 1,
               what="trace_spans_total{exported} >= 1")
    # the daemon was unaffected: every fire of tick ran, one every
    # 200ms without a gap, and succeeded
    finishes = d.events("finish", job="tick")
    due = [round(sched(e) * 1000) for e in finishes]
    assert len(due) >= 5, due
    assert all(b - a == 200 for a, b in zip(due, due[1:])), due
    assert all(e["status"] == "succeeded" for e in finishes)
    assert d.running()
    # every span is counted once at most (some may still wait)
    counts = trace_spans(port)
    assert sum(counts.values()) <= len(d.events("finish", job="tick"))


def test_reload_turns_tracing_on_and_moves_it(hg, receiver):
    """`tracing` may change on a reload: turned on, spans go out; pointed
    at another collector, the next spans go there."""
    a, b = receiver(), receiver()
    d = hg()
    def text(rx):
        return d.config(extra="\n".join(
            [DEFAULTS] + ([tracing(rx, interval="50ms")] if rx else [])),
            load=("shell", "http"),
            jobs=[job("tick", every="300ms", command="true")])
    d.start(text(None))
    d.wait_event("finish", job="tick")
    d.write(text(a))
    d.signal(signal.SIGHUP)
    wait_until(lambda: of_job(a, "tick"), what="a span at the first")
    d.write(text(b))
    d.signal(signal.SIGHUP)
    wait_until(lambda: of_job(b, "tick"), what="a span at the second")


def test_configuration_errors(tmp_path):
    conf, err = refused(tmp_path, 'tracing = { otlp = "127.0.0.1:4318";',
                        '  batch = 100; queue = 10; };')
    assert ('%s:2: tracing.otlp: "127.0.0.1:4318" is not an http:// or '
            'https:// URL' % conf) in err, err
    assert ('%s:3: tracing.queue: 10 is smaller than tracing.batch (100)'
            % conf) in err, err
    conf, err = refused(tmp_path, "tracing = { };")
    assert "%s:2: tracing.otlp is required" % conf in err, err
