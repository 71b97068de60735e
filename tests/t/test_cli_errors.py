"""
The command line's refusals, each with the exit code the README promises
(2 for a usage error, 1 for anything else) and a message naming what is
wrong: options, `-s` against a pid file that names no running hourglass
(and `-s` that does reach a master run from another copy of the binary),
a start whose pid file cannot be taken (told by a daemon to the
process that started it), and `hourglass next` with bad
arguments, a schedule with no fire time left, or an unwritable stdout.
No daemon is left running by any of them.
"""

import fcntl
import os
import shutil
import subprocess

import pytest

from conftest import HOURGLASS, run_hourglass


def usage_refused(r, message):
    assert r.returncode == 2, r
    assert r.stderr.startswith("hourglass: " + message + "\n"), r.stderr
    assert "Usage:" in r.stderr, r.stderr
    assert r.stdout == ""


def test_help_and_usage_errors():
    r = run_hourglass("-h")
    assert r.returncode == 0, r
    assert r.stdout.startswith("Usage: hourglass "), r.stdout
    for opt in ("-c FILE", "-p PREFIX", "-t", "-s SIGNAL", "next"):
        assert opt in r.stdout, (opt, r.stdout)
    assert r.stderr == ""

    usage_refused(run_hourglass("-x"), "unknown option -x")
    usage_refused(run_hourglass("-c"), "option -c needs an argument")
    usage_refused(run_hourglass("-t", "extra"), 'unexpected argument "extra"')


@pytest.mark.parametrize("args", [(), ("a.conf", "/prefix", "1000")])
def test_the_configuration_reader_refuses_to_be_run_by_hand(args):
    # The master runs it with its result pipe open on a descriptor of its
    # own; from a shell (without it, whatever the arguments) it refuses
    # at once, as a usage error, and reads nothing.
    r = run_hourglass("--cycle-reader", *args)
    assert r.returncode == 2, r
    assert r.stderr == ("hourglass: --cycle-reader is run by the master, "
                        "not by hand\n"), r.stderr
    assert r.stdout == ""

def test_signal_with_a_bad_configuration(daemon):
    daemon.write("workers = 0;\n")
    r = run_hourglass("-s", "reload", "-c", daemon.conf)
    assert r.returncode == 1, r
    assert r.stderr == "%s:1: workers: 0 is out of range 1-1024\n" % daemon.conf


def test_signal_pid_file_without_a_pid(daemon):
    daemon.write()
    daemon.pidfile.write_text("not a pid\n")
    r = run_hourglass("-s", "reload", "-c", daemon.conf)
    assert r.returncode == 1, r
    assert r.stderr == "hourglass: pid file %s does not hold a pid\n" \
        % daemon.pidfile


def test_signal_pid_file_naming_a_dead_process(daemon):
    """A locked pid file (as a live master holds it) whose pid has
    exited: nothing is signalled."""
    daemon.write()
    gone = subprocess.Popen(["true"])
    gone.wait()
    with open(daemon.pidfile, "w") as f:
        f.write("%d\n" % gone.pid)
        f.flush()
        fcntl.flock(f, fcntl.LOCK_EX)
        r = run_hourglass("-s", "reload", "-c", daemon.conf)
    assert r.returncode == 1, r
    assert r.stderr.startswith("hourglass: pid file %s names pid %d, which "
                               "is not running: " % (daemon.pidfile, gone.pid)
                               ), r.stderr


def test_signal_pid_file_path_unusable(daemon):
    blocker = daemon.dir / "plain-file"
    blocker.write_text("")
    daemon.pidfile = blocker / "hourglass.pid"
    daemon.write()
    r = run_hourglass("-s", "reload", "-c", daemon.conf)
    assert r.returncode == 1, r
    assert r.stderr == "hourglass: cannot open pid file %s: Not a " \
        "directory\n" % daemon.pidfile, r.stderr


def test_signal_reaches_a_master_run_from_another_copy(daemon):
    """The binary was upgraded since the master started (another file,
    the same name): -s still signals it."""
    copy = daemon.dir / "old" / "hourglass"
    copy.parent.mkdir()
    shutil.copy2(HOURGLASS, copy)
    daemon.write(jobs=[])
    daemon.proc = subprocess.Popen(
        [str(copy), "-p", str(daemon.dir), "-c", str(daemon.conf)],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL, env=daemon.env(), cwd=str(daemon.dir),
        start_new_session=True)
    daemon.pid = daemon.proc.pid
    daemon.wait_event("start_master")
    r = run_hourglass("-s", "reload", "-c", daemon.conf)
    assert r.returncode == 0, r
    daemon.wait_event("reload")


def start_refused(daemon):
    p = subprocess.run([str(HOURGLASS), "-p", str(daemon.dir), "-c",
                        str(daemon.conf)], capture_output=True, text=True,
                       timeout=30, env=daemon.env(), cwd=str(daemon.dir))
    assert p.returncode == 1, p
    return p.stderr


def test_start_pid_file_locked_by_another_process(daemon):
    daemon.write()
    with open(daemon.pidfile, "w") as f:
        f.write("locked\n")
        f.flush()
        fcntl.flock(f, fcntl.LOCK_EX)
        err = start_refused(daemon)
    assert "pid file %s is locked by another process" % daemon.pidfile \
        in err, err
    assert daemon.pidfile.read_text() == "locked\n"


def test_daemon_start_refused_is_told_to_the_starter(daemon):
    """daemon = true: the refusal happens in the background process, which
    tells the process that started it; that one says it and exits 1."""
    daemon.write(daemon.config().replace("workers = 2;",
                                         "workers = 2;\ndaemon = true;"))
    with open(daemon.pidfile, "w") as f:
        f.write("locked\n")
        f.flush()
        fcntl.flock(f, fcntl.LOCK_EX)
        err = start_refused(daemon)
    assert err == "hourglass: pid file %s is locked by another process\n" \
        % daemon.pidfile, err


def test_daemon_start_refused_with_a_long_message(daemon):
    """A refusal longer than the report's one line (a log file path of
    1,300 characters that is a directory) arrives cut, still as one line
    that the starter prints."""
    deep = daemon.dir
    for _ in range(6):
        deep = deep / ("d" * 200)
    deep.mkdir(parents=True)
    text = daemon.config().replace("workers = 2;",
                                   "workers = 2;\ndaemon = true;")
    daemon.write(text.replace('file = "%s";' % daemon.log,
                              'file = "%s";' % deep))
    full = "cannot open log file %s: Is a directory" % deep
    err = start_refused(daemon)
    assert err.endswith("\n") and err.count("\n") == 1, err
    said = err[len("hourglass: "):-1]
    assert err.startswith("hourglass: ") and full.startswith(said), err
    assert 1000 < len(said) < len(full), (len(said), len(full))
    assert not daemon.pidfile.exists()


def test_start_pid_file_directory_cannot_be_made(daemon):
    blocker = daemon.dir / "plain-file"
    blocker.write_text("")
    daemon.pidfile = blocker / "run" / "hourglass.pid"
    daemon.write()
    err = start_refused(daemon)
    assert "cannot create the directory of pid file %s: Not a directory" \
        % daemon.pidfile in err, err


@pytest.mark.skipif(os.geteuid() != 0, reason="chown needs root")
def test_start_pid_file_of_another_user(daemon):
    daemon.write()
    daemon.pidfile.write_text("")
    os.chown(daemon.pidfile, 4242, 4242)
    err = start_refused(daemon)
    assert ("pid file %s belongs to uid 4242, not to uid 0 that hourglass "
            "runs as (remove it)" % daemon.pidfile) in err, err
    assert daemon.pidfile.stat().st_uid == 4242


NEXT_USAGE = "Usage: hourglass next"


@pytest.mark.parametrize("args, message", [
    (["--tz"], "--tz needs a time zone"),
    (["*/5 * * * *", "--from"], "--from needs a time"),
])
def test_next_option_without_a_value(args, message):
    r = run_hourglass("next", *args)
    assert r.returncode == 2, r
    assert r.stderr.startswith("hourglass: %s\n%s" % (message, NEXT_USAGE)), \
        r.stderr


@pytest.mark.parametrize("expr, message", [
    ("${} * * * *", '"${}" is not a variable reference'),
    ("${1X} * * * *", '"1X" is not a variable name'),
    ("${A-B} * * * *", '"A-B" is not a variable name'),
])
def test_next_bad_variable_reference(expr, message):
    r = run_hourglass("next", expr)
    assert r.returncode == 1, r
    assert r.stderr == 'hourglass: invalid schedule "%s": %s\n' \
        % (expr, message)
    assert r.stdout == ""


@pytest.mark.parametrize("expr, env", [
    ("${HG_LONG}", {"HG_LONG": "0" * 5000}),
    ("${HG_UNSET:-%s}" % ("0" * 5000), {}),
    ("0 " * 2500, {}),
])
def test_next_schedule_too_long_once_expanded(expr, env):
    # Whatever makes it long (a variable, a default, the text itself), a
    # schedule that does not fit is refused by name, never cut short.
    r = run_hourglass("next", expr, env=dict(
        {k: v for k, v in os.environ.items() if k != "HG_UNSET"}, **env))
    assert r.returncode == 1, r
    assert r.stderr == ('hourglass: invalid schedule "%s": too long after '
                        'expanding variables\n' % expr), r.stderr
    assert r.stdout == ""

def test_next_runs_out_of_fire_times():
    r = run_hourglass("next", "--tz", "UTC", "--from",
                      "9999-11-30T00:00:00Z", "-n", "3", "0 0 1 * *")
    assert r.returncode == 1, r
    assert r.stdout == "9999-12-01T00:00:00+00:00\n", r.stdout
    assert r.stderr.startswith('hourglass: schedule "0 0 1 * *" has no '
                               'further fire time within '), r.stderr


def test_next_cannot_write():
    with open("/dev/full", "w") as full:
        r = subprocess.run([str(HOURGLASS), "next", "-n", "3", "@daily"],
                           stdout=full, stderr=subprocess.PIPE, text=True,
                           timeout=30)
    assert r.returncode == 1, r
    assert r.stderr == "hourglass: cannot write the fire times: No space " \
        "left on device\n"
