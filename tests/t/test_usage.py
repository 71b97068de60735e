"""What an execution used is its own: CPU time and peak memory of a shell
job come from its process (wait4), not from everything its worker ever ran
(RUSAGE_CHILDREN's peak is the largest child the worker ever reaped)."""

from conftest import FINAL, at_ahead, job, rfc3339, sqlite_config, wait_rows

BIG = "python3 -c \"b = b'x' * (120 << 20); print(len(b))\""


def test_a_small_job_after_a_big_one_reports_its_own_memory(daemon):
    db = daemon.dir / "hg.db"
    daemon.start(sqlite_config(daemon, db, workers=1, jobs=[
        job("big", at=rfc3339(at_ahead(1.5)), command=BIG),
        job("small", at=rfc3339(at_ahead(3)), command="true")]))
    daemon.wait_event("finish", job="small", timeout=20)
    # the final records reach the file a little after the finish line
    rows = {r["job_id"]: r for r in wait_rows(
        db, lambda rs: {r["job_id"] for r in rs if r["status"] in FINAL}
        >= {"big", "small"}, what="both executions final")}
    big, small = rows["big"], rows["small"]
    assert big["status"] == "succeeded" and small["status"] == "succeeded"
    # the same worker ran both
    assert big["worker_pid"] == small["worker_pid"], (big, small)
    assert big["max_rss_kb"] >= 120 << 10, big
    assert 256 <= small["max_rss_kb"] < 16 << 10, small
    assert big["cpu_user_ms"] + big["cpu_sys_ms"] > 0, big
