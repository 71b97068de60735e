"""The shell module end to end: the environment of a command, and exit 75
asking for a retry."""

import os

import pytest

from conftest import at_ahead, job, parse_time, rfc3339

VARS = ["HOURGLASS_JOB_ID", "HOURGLASS_EXECUTION_ID", "HOURGLASS_ATTEMPT",
        "HOURGLASS_SCHEDULED_FOR", "HOURGLASS_TRIGGER"]


def test_shell_command_sees_the_execution_environment(daemon):
    out = daemon.dir / "env.out"
    t = at_ahead(2)
    # "$VAR" (no brace) passes the configuration's ${VAR} expansion as is.
    command = "; ".join('printf "%s=%%s\\n" "$%s" >> %s' % (v, v, out)
                        for v in VARS)
    daemon.start(jobs=[job("envjob", at=rfc3339(t), command=command)])
    fin = daemon.wait_event("finish", job="envjob")[0]
    assert fin["status"] == "succeeded", fin
    start = daemon.events("start", job="envjob")[0]
    got = dict(line.split("=", 1) for line in out.read_text().splitlines())
    assert got["HOURGLASS_JOB_ID"] == "envjob"
    assert got["HOURGLASS_EXECUTION_ID"] == start["exec"]
    assert got["HOURGLASS_ATTEMPT"] == "1"
    assert got["HOURGLASS_TRIGGER"] == "schedule"
    assert parse_time(got["HOURGLASS_SCHEDULED_FOR"]) == t, got


def test_shell_exit_75_is_retried(daemon):
    out = daemon.dir / "attempts.out"
    daemon.start(jobs=[job(
        "flaky", at=rfc3339(at_ahead(2)), max_retries=3,
        backoff={"initial": "200ms", "jitter": 0.0},
        # fails with 75 the first time, succeeds the second
        command='echo "$HOURGLASS_ATTEMPT $HOURGLASS_TRIGGER" >> %s; '
                'test "$HOURGLASS_ATTEMPT" -ge 2 || exit 75' % out)])
    retry = daemon.wait_event("retry", job="flaky")[0]
    assert retry["attempt"] == 2, retry
    fins = daemon.wait_event("finish", job="flaky", count=2)
    assert fins[0]["attempt"] == 1 and fins[0]["status"] == "failed"
    assert fins[0]["exit_code"] == 75
    assert fins[1]["attempt"] == 2 and fins[1]["status"] == "succeeded"
    assert fins[1]["trigger"] == "retry"
    # the retry is logged under the id of the execution that runs it
    assert fins[1]["exec"] == retry["exec"]
    assert out.read_text().splitlines() == ["1 schedule", "2 retry"]
    assert not daemon.events("dead")


def test_retries_exhausted_make_the_execution_dead(daemon):
    daemon.start(jobs=[job(
        "doomed", at=rfc3339(at_ahead(2)), max_retries=1,
        backoff={"initial": "200ms", "jitter": 0.0}, command="exit 75")])
    dead = daemon.wait_event("dead", job="doomed")[0]
    fins = daemon.events("finish", job="doomed")
    assert [f["attempt"] for f in fins] == [1, 2], fins
    assert all(f["status"] == "failed" for f in fins)
    assert dead["attempts"] == 2
    assert dead["exec"] == fins[-1]["exec"]
    # the run id ties the attempts together: the first attempt's id
    assert dead["run"] == fins[0]["exec"]
    assert len(daemon.events("retry", job="doomed")) == 1



def _slices(text):
    """{path: se.slice in ns} from `grep -H se.slice PATH...` output."""
    got = {}
    for line in text.splitlines():
        path, _, rest = line.partition(":")
        if "se.slice" in rest:
            got[path] = int(rest.rsplit(":", 1)[1])
    return got


def test_workers_run_with_a_short_slice_and_jobs_do_not(daemon):
    # A worker asks for the shortest slice, so that it starts and ends an
    # execution without waiting behind the jobs on the CPU; the job gets
    # the default back (reset on fork). The job is `sh -c`, its parent the
    # worker; grep is the job's own child: it shows what a job inherits.
    if not os.path.exists("/proc/self/sched"):
        pytest.skip("no /proc/PID/sched (kernel without CONFIG_SCHED_DEBUG)")
    with open("/proc/self/sched") as f:
        ours = _slices("/proc/self/sched:" + f.read().replace(
            "\n", "\n/proc/self/sched:"))
    if not ours:
        pytest.skip("no se.slice in /proc/PID/sched (kernel before 6.6)")
    out = daemon.dir / "slice.out"
    daemon.start(jobs=[job(
        "slice", at=rfc3339(at_ahead(2)),
        command="grep -H se.slice /proc/$PPID/sched /proc/self/sched > %s"
                % out)])
    fin = daemon.wait_event("finish", job="slice")[0]
    assert fin["status"] == "succeeded", fin
    got = _slices(out.read_text())
    worker = [v for k, v in got.items() if k != "/proc/self/sched"]
    # the job: the default slice, as this test process has
    assert got["/proc/self/sched"] == ours["/proc/self/sched"], got
    # the worker: 0.1 ms where the kernel takes a slice (Linux 6.12)
    release = tuple(int(x) for x in os.uname().release.split(".")[:2])
    if release >= (6, 12):
        assert worker == [100000], got
