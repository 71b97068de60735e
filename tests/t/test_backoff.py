"""Retry delays: exponential growth up to backoff.max, and jitter. The
delay the master chose is in each `retry` log line (delay_ms); the store
shows that the next attempt did not start before it had passed."""


from conftest import at_ahead, db_rows, job, rfc3339, sqlite_config

FINAL = ("succeeded", "failed", "timed_out", "crashed", "killed", "skipped",
         "missed", "dead")


def retry_run(daemon, retries, backoff):
    """Runs one failing job with RETRIES retries and BACKOFF until it is
    dead; returns (delays in ms of the retry lines, attempts' rows)."""
    db = daemon.dir / "hg.db"
    daemon.start(sqlite_config(daemon, db, jobs=[job(
        "flaky", at=rfc3339(at_ahead(2)), max_retries=retries,
        command="exit 1", backoff=backoff)]))
    daemon.wait_event("dead", job="flaky", timeout=30)
    lines = daemon.events("retry", job="flaky")
    assert [e["attempt"] for e in lines] == list(range(2, retries + 2)), \
        lines
    rows = daemon.wait_for(lambda _: (lambda rs: rs if len(rs) == retries + 1
                                      and all(r["status"] in FINAL
                                              for r in rs) else None)(
        db_rows(db, order="attempt")), what="every attempt final")
    assert [r["attempt"] for r in rows] == list(range(1, retries + 2))
    delays = [e["delay_ms"] for e in lines]
    # each attempt waited at least its delay after the one before ended
    for prev, nxt, d in zip(rows, rows[1:], delays):
        assert nxt["started_at"] >= prev["finished_at"] + d - 2, \
            (prev, nxt, d)
    print("delays: %s" % delays)
    return delays, rows


def test_backoff_doubles_up_to_its_max(daemon):
    delays, _ = retry_run(daemon, 5, {"initial": "100ms", "max": "400ms",
                                      "multiplier": 2.0, "jitter": 0.0})
    assert delays == [100, 200, 400, 400, 400], delays


def test_backoff_jitter_varies_each_delay_within_its_fraction(daemon):
    # base 100 ms every time (multiplier 1, far under the max): with
    # jitter 0.5 each delay is 100 ms give or take half, and they differ
    delays, _ = retry_run(daemon, 12, {"initial": "100ms", "max": "10s",
                                       "multiplier": 1.0, "jitter": 0.5})
    assert all(50 <= d <= 150 for d in delays), delays
    assert len(set(delays)) >= 4, delays


def test_backoff_with_jitter_never_exceeds_its_max(daemon):
    # at the cap from the second retry on; 16 draws: each has an even
    # chance of landing above the cap as the code stands
    delays, _ = retry_run(daemon, 16, {"initial": "50ms", "max": "100ms",
                                       "multiplier": 2.0, "jitter": 0.5})
    assert all(d <= 100 for d in delays), delays
    assert all(d >= 25 for d in delays), delays
