"""Issue 10, point 4: files and environment. The pid file and the log are
never opened through a symbolic link and get modes that fit; `-s` signals
only hourglass; `daemon = true` reports a failed start; a shell job gets a
clean environment; `${VAR}` in a command can neither inject shell syntax
nor show its value in `ps`; text log lines escape control characters."""

import fcntl
import os
import pwd
import shutil
import signal
import stat
import subprocess
import tempfile
import time

import pytest

from conftest import (HOURGLASS, alive, at_ahead, conf_value, job,
                      proc_cmdline, rfc3339, run_hourglass, wait_until)


# --- pid file and log file ------------------------------------------------

@pytest.mark.parametrize("which", ["pid", "log"])
def test_file_symlink_is_refused_and_its_target_untouched(daemon, tmp_path,
                                                          which):
    """A link planted where the pid file or the log goes (as a user who
    can write to var/ would) must not make hourglass write its target."""
    victim = tmp_path / ("victim-" + which)
    victim.write_text("precious\n")
    path = daemon.pidfile if which == "pid" else daemon.log
    daemon.write(jobs=[job("t", every="1h", command="true")])
    os.symlink(victim, path)
    daemon.start(wait_ready=False)
    assert daemon.wait_exit() == 1
    out = daemon.master_output()
    assert "%s file %s is a symbolic link" % (which, path) in out, out
    assert victim.read_text() == "precious\n"


def test_pid_file_that_is_not_a_regular_file_is_refused(daemon):
    daemon.write(jobs=[job("t", every="1h", command="true")])
    os.mkfifo(daemon.pidfile)
    daemon.start(wait_ready=False)
    assert daemon.wait_exit() == 1
    out = daemon.master_output()
    assert "pid file %s is not a regular file" % daemon.pidfile in out, out


def test_log_and_pid_file_modes(daemon):
    old = os.umask(0o022)
    try:
        daemon.start(jobs=[job("t", every="1h", command="true")])
    finally:
        os.umask(old)
    log_mode = stat.S_IMODE(os.stat(daemon.log).st_mode)
    pid_mode = stat.S_IMODE(os.stat(daemon.pidfile).st_mode)
    assert log_mode & 0o007 == 0, "log is world-accessible: %o" % log_mode
    assert pid_mode == 0o644, "pid file mode %o" % pid_mode


# --- -s SIGNAL ------------------------------------------------------------

def test_ctl_does_not_signal_a_process_that_is_not_hourglass(daemon):
    """A stale pid file (locked, as a live master's would be) naming an
    unrelated process: -s must refuse, and the process must live on."""
    daemon.write(jobs=[job("t", every="1h", command="true")])
    victim = subprocess.Popen(["sleep", "300"])
    try:
        with open(daemon.pidfile, "w") as f:
            f.write("%d\n" % victim.pid)
            f.flush()
            fcntl.flock(f, fcntl.LOCK_EX)
            r = daemon.ctl("stop")
        time.sleep(0.2)
        assert victim.poll() is None, "sleep was signalled"
        assert r.returncode == 1, (r.returncode, r.stderr)
        assert "not hourglass" in r.stderr, r.stderr
        assert str(daemon.pidfile) in r.stderr, r.stderr
    finally:
        victim.kill()
        victim.wait()


def test_ctl_still_signals_the_running_master(daemon):
    daemon.start(jobs=[job("t", every="1h", command="true")])
    r = daemon.ctl("stop")
    assert r.returncode == 0, r.stderr
    assert daemon.wait_exit() == 0


# --- daemon = true ----------------------------------------------------------

def run_daemon(d, text):
    """Starts `hourglass` with daemon = true; returns (status, stderr).
    Output goes to files: a daemon that kept our pipes would hang us."""
    d.write(text)
    err = d.dir / "start.err"
    with open(err, "wb") as e:
        r = subprocess.run([str(HOURGLASS), "-p", str(d.dir), "-c",
                            str(d.conf)], stdin=subprocess.DEVNULL,
                           stdout=e, stderr=e, env=d.env(), timeout=30)
    return r.returncode, err.read_text()


def test_daemon_start_that_fails_exits_non_zero_with_the_reason(daemon):
    blocker = daemon.dir / "not-a-dir"
    blocker.write_text("")
    text = daemon.config(jobs=[job("t", every="1h", command="true")])
    text = text.replace('store = { driver = "memory"; };',
                        "store = { driver = \"sqlite\"; path = %s; };"
                        % conf_value(str(blocker / "hg.db")))
    status, err = run_daemon(daemon, "daemon = true;\n" + text)
    assert status == 1, (status, err)
    assert "store" in err, err


def test_daemon_start_that_succeeds_exits_zero_once_started(daemon):
    text = daemon.config(jobs=[job("t", every="1h", command="true")])
    status, err = run_daemon(daemon, "daemon = true;\n" + text)
    assert status == 0, (status, err)
    pid = int(daemon.pidfile.read_text())
    try:
        # started means: the workers are there already
        assert any(e.get("event") == "start_master"
                   for e in daemon.events())
        r = daemon.ctl("stop")
        assert r.returncode == 0, r.stderr
        wait_until(lambda: not alive(pid), what="the daemon to exit")
    finally:
        if alive(pid):
            os.kill(pid, signal.SIGKILL)


# --- the environment of a shell job -----------------------------------------

def env_of_job(daemon, monkeypatch, **keys):
    """Runs one shell job (KEYS) once, with a secret in the daemon's
    environment; returns the command's environment as a dict."""
    monkeypatch.setenv("HG_E2E_SECRET", "s3cret")
    # a job's user may be nobody, who cannot reach the test's tmp dir
    drop = tempfile.mkdtemp(prefix="hg-e2e-env-")
    try:
        os.chmod(drop, 0o777)
        out = os.path.join(drop, "env.out")
        daemon.start(jobs=[job("envjob", every="1h", start_at=rfc3339(
            at_ahead(1)), command="env > %s" % out, **keys)])
        fin = daemon.wait_event("finish", job="envjob")[0]
        assert fin["status"] == "succeeded", fin
        with open(out) as f:
            return dict(line.rstrip("\n").split("=", 1) for line in f
                        if "=" in line)
    finally:
        shutil.rmtree(drop)


def test_shell_job_gets_a_clean_environment(daemon, monkeypatch):
    env = env_of_job(daemon, monkeypatch)
    assert "HG_E2E_SECRET" not in env, env
    assert "HG_E2E_TAG" not in env, env
    pw = pwd.getpwuid(os.geteuid())
    assert env["HOME"] == pw.pw_dir
    assert env["USER"] == env["LOGNAME"] == pw.pw_name
    assert env["SHELL"] == "/bin/sh"
    assert env["PATH"] == ("/usr/local/sbin:/usr/local/bin:/usr/sbin:"
                           "/usr/bin:/sbin:/bin" if os.geteuid() == 0
                           else "/usr/local/bin:/usr/bin:/bin")
    assert env["HOURGLASS_JOB_ID"] == "envjob"


@pytest.mark.skipif(os.geteuid() != 0, reason="user = needs root")
def test_shell_job_as_nobody_gets_nobodys_environment(daemon, monkeypatch):
    env = env_of_job(daemon, monkeypatch, user="nobody", cwd="/")
    pw = pwd.getpwnam("nobody")
    assert env["HOME"] == pw.pw_dir, env
    assert env["USER"] == env["LOGNAME"] == "nobody", env
    assert env["PATH"] == "/usr/local/bin:/usr/bin:/bin", env
    assert "HG_E2E_SECRET" not in env, env


def test_shell_job_inherit_env_opts_in(daemon, monkeypatch):
    env = env_of_job(daemon, monkeypatch, inherit_env=True,
                     env={"FOO": "bar"})
    assert env["HG_E2E_SECRET"] == "s3cret"
    assert env["FOO"] == "bar"
    assert env["HOURGLASS_JOB_ID"] == "envjob"


# --- ${VAR} in a shell command ----------------------------------------------

def test_expanded_value_cannot_inject_shell_syntax(daemon, monkeypatch):
    pwned = daemon.dir / "pwned"
    out = daemon.dir / "out"
    monkeypatch.setenv("HG_E2E_VALUE", "x; touch %s" % pwned)
    daemon.start(jobs=[job("inject", every="1h", start_at=rfc3339(
        at_ahead(1)), command="echo ${HG_E2E_VALUE} > %s" % out)])
    fin = daemon.wait_event("finish", job="inject")[0]
    assert fin["status"] == "succeeded", fin
    assert out.read_text() == "x; touch %s\n" % pwned
    assert not pwned.exists()


def test_expanded_value_does_not_show_in_ps(daemon, monkeypatch):
    monkeypatch.setenv("HG_E2E_SECRET", "s3cret-in-ps")
    daemon.start(jobs=[job("secret", every="1h", start_at=rfc3339(
        at_ahead(1)), command="test -n ${HG_E2E_SECRET} && sleep 30")])
    shells = wait_until(lambda: daemon.find_commands(["sh", "-c"]),
                        what="the job's shell")
    for pid in shells:
        cmdline = b" ".join(proc_cmdline(pid))
        assert b"s3cret" not in cmdline, cmdline
        assert b"${HG_E2E_SECRET}" in cmdline, cmdline
