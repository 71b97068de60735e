"""From cron to hourglass (issue 15 point 3): `hourglass import-crontab`
on Debian's own /etc/crontab and /etc/cron.d files and on crontabs written
here with every feature, its output checked with -t and `hourglass next`;
schedules with CRON_TZ=/TZ= prefixes and @reboot in a running daemon (once
per boot: a restart in the same boot does not run it again); and the hint
for a crontab line pasted into `schedule`."""

import getpass
import json
import re
import sqlite3
import subprocess
from pathlib import Path

import pytest

from conftest import (HOURGLASS, MODULES_DIR, conf_value, job,
                      run_hourglass, sqlite_config, wait_until)
from test_api import TOKENS, api_section, free_port

DATA = Path(__file__).resolve().parent / "data"
# Debian 12's /etc/crontab, as the package cron-daemon-common
# 3.0pl1-162 installs it (this machine has no cron installed).
DEBIAN_CRONTAB = DATA / "debian-crontab"
CRON_D = Path("/etc/cron.d")


def import_crontab(*args, stdin=None):
    """objs/hourglass import-crontab ARGS, with STDIN as its input."""
    return subprocess.run([str(HOURGLASS), "import-crontab"]
                          + [str(a) for a in args],
                          input=stdin or "", capture_output=True, text=True,
                          timeout=30)


def pasted(tmp_path, jobs_text, name="scheduler.conf"):
    """A configuration made of a few lines of ours and the imported jobs,
    pasted as printed."""
    path = tmp_path / name
    path.write_text("\n".join([
        'pid = "hourglass.pid";',
        'log = { file = "hourglass.log"; };',
        "modules = { path = %s; load = [ \"shell\" ]; };"
        % conf_value(str(MODULES_DIR)),
        'store = { driver = "memory"; };',
        jobs_text,
    ]))
    return path


def check_t(tmp_path, jobs_text):
    conf = pasted(tmp_path, jobs_text)
    r = run_hourglass("-p", tmp_path, "-c", conf, "-t")
    assert r.returncode == 0, (r.stderr, jobs_text)
    assert "test is successful" in r.stdout
    return conf


def field(out, key):
    """The values of KEY = "..."; in the printed jobs, in order."""
    return [bytes(m, "utf-8").decode("unicode_escape")
            for m in re.findall(r'^    %s = "((?:[^"\\]|\\.)*)";' % key,
                                out, re.M)]


def next_fires(expr, *args):
    r = run_hourglass("next", *args, expr)
    assert r.returncode == 0, r.stderr
    return r.stdout.split()


# --- import-crontab -------------------------------------------------------

def test_system_format_without_system_gets_a_hint():
    """Read as a user's table, /etc/crontab's commands begin with "root":
    each job says to import it with --system (cron would run "root")."""
    r = import_crontab(DEBIAN_CRONTAB)
    assert r.returncode == 0, r.stderr
    assert r.stdout.count("the command begins with a user name") == 4
    assert r.stdout.count("import it with --system") == 4
    r = import_crontab("--system", DEBIAN_CRONTAB)
    assert "the command begins with a user name" not in r.stdout


def test_debian_etc_crontab(tmp_path):
    r = import_crontab("--system", DEBIAN_CRONTAB)
    assert r.returncode == 0, r.stderr
    assert field(r.stdout, "id") == [
        "run-parts-cron.hourly", "run-parts-cron.daily",
        "run-parts-cron.weekly", "run-parts-cron.monthly"]
    assert field(r.stdout, "schedule") == [
        "17 * * * *", "25 6 * * *", "47 6 * * 7", "52 6 1 * *"]
    assert field(r.stdout, "user") == ["root"] * 4
    assert field(r.stdout, "command")[1] == (
        "test -x /usr/sbin/anacron || { cd / && run-parts --report "
        "/etc/cron.daily; }")
    # SHELL and PATH lines into every job's env
    assert r.stdout.count('env = { SHELL = "/bin/sh"; PATH = "/usr/local/'
                          'sbin:/usr/local/bin:/sbin:/bin:/usr/sbin:/usr/'
                          'bin"; };') == 4
    assert "not carried over" not in r.stdout
    check_t(tmp_path, r.stdout)
    # the schedules as hourglass reads them: Sunday as 7, the 1st
    assert next_fires("47 6 * * 7", "--tz", "UTC", "--from",
                      "2026-12-07T00:00:00Z", "-n", "2") == [
        "2026-12-13T06:47:00+00:00", "2026-12-20T06:47:00+00:00"]
    assert next_fires("52 6 1 * *", "--tz", "UTC", "--from",
                      "2026-12-07T00:00:00Z", "-n", "2") == [
        "2027-01-01T06:52:00+00:00", "2027-02-01T06:52:00+00:00"]
    # stable: the same file gives the same text
    assert import_crontab("--system", DEBIAN_CRONTAB).stdout == r.stdout


def test_etc_cron_d_on_this_machine(tmp_path):
    files = sorted(p for p in CRON_D.glob("*")
                   if p.is_file() and not p.name.startswith("."))
    if not files:
        pytest.skip("no files in /etc/cron.d on this machine")
    entries = 0
    for f in files:
        for line in f.read_text(errors="replace").splitlines():
            s = line.strip()
            if s and not s.startswith("#") \
                    and not re.match(r"^[A-Za-z_][A-Za-z0-9_]*\s*=", s):
                entries += 1
    r = import_crontab(*files)
    assert r.returncode == 0, r.stderr
    ids = field(r.stdout, "id")
    assert len(ids) + r.stdout.count("not carried over:") == entries
    assert len(set(ids)) == len(ids)
    # read as the system format: the user column is a user, not the command
    for user in field(r.stdout, "user"):
        assert re.match(r"^[a-z_][a-z0-9_-]*\$?$", user), user
    check_t(tmp_path, r.stdout)


FEATURES = r"""# a user's crontab with what cron allows
SHELL=/bin/bash
MAILTO=ops@example.com
PATH = "/usr/local/bin:/usr/bin:/bin"
HOME='/tmp'
GREETING = hello world
_HIDDEN=1
RANDOM_DELAY=5
CRON_TZ=Europe/Berlin
30 2 * * * /usr/local/bin/backup --full
0 9 * * MON-FRI /usr/local/bin/backup --incremental
CRON_TZ=
@reboot cat > "$OUT"%first line%second 100\% done
@daily  mail -s "report" root%Hi,%all 50\% good.%
0 0 29-L * FRI-SUN echo "month end" # a comment
0~30 * * * * echo random minute
@every 5m echo not cron
*/5 * * * * echo '\%d' | cat
0 4 * * * -n /usr/bin/quiet
0 0 * *
"""


def test_every_feature(tmp_path):
    src = tmp_path / "crontab"
    src.write_text(FEATURES)
    me = getpass.getuser()
    r = import_crontab("--user", me, src)
    assert r.returncode == 0, r.stderr
    out = r.stdout
    assert field(out, "id") == [
        "backup", "backup-2", "cat", "mail-report-root", "echo-month-end",
        "echo-cat", "quiet"]
    assert field(out, "schedule") == [
        "CRON_TZ=Europe/Berlin 30 2 * * *",
        "CRON_TZ=Europe/Berlin 0 9 * * MON-FRI",
        "@reboot", "@daily", "0 0 29-L * FRI-SUN", "*/5 * * * *",
        "0 4 * * *"]
    assert field(out, "user") == [me] * 7
    assert field(out, "cwd") == ["/tmp"] * 7
    assert out.count('env = { SHELL = "/bin/bash"; PATH = "/usr/local/bin:'
                     '/usr/bin:/bin"; HOME = "/tmp"; GREETING = "hello '
                     'world"; };') == 7
    assert out.count('jitter = "5m";') == 7
    assert out.count('timeout = "0s"; max_retries = 0; '
                     'overlap = "allow";') == 7
    # SHELL=/bin/bash: the command runs as bash -c, as cron would
    assert 'argv = [ "/bin/bash", "-c", "/usr/local/bin/backup --full" ];' \
        in out
    # "%": standard input (a here-document ending in a newline), later
    # ones newlines, "\%" a literal "%"; "\%" in the command too
    assert ('"{\\nmail -s \\"report\\" root\\n} <<\'CRON_INPUT\'\\nHi,\\n'
            'all 50% good.\\nCRON_INPUT"') in out
    assert '"echo \'%d\' | cat"' in out
    # MAILTO as a comment saying what to add; cronie's -n noted
    assert out.count("# MAILTO=ops@example.com") == 7
    assert "cron mailed the output there (on failure only)" in out
    # what cannot be carried: a comment with file:line and why
    skipped = re.findall(r"^  # %s:(\d+): not carried over: (.*)$"
                         % re.escape(str(src)), out, re.M)
    assert [int(n) for n, _ in skipped] == [7, 16, 17, 20], skipped
    assert "env key must match" in skipped[0][1]
    assert "random \"~\" has no equivalent" in skipped[1][1]
    assert "not one of cron's @ words" in skipped[2][1]
    assert "fewer than 5 time fields" in skipped[3][1]
    conf = check_t(tmp_path, out)

    # the zone of CRON_TZ goes with the schedule: next reads it from there
    assert next_fires(field(out, "schedule")[0], "--from",
                      "2026-03-28T00:00:00Z", "-n", "2") == [
        "2026-03-28T02:30:00+01:00", "2026-03-29T03:00:00+02:00"]
    # 29-L or Friday to Sunday (both restricted: either matches)
    assert next_fires(field(out, "schedule")[4], "--tz", "UTC", "--from",
                      "2027-02-01T00:00:00Z", "-n", "3") == [
        "2027-02-05T00:00:00+00:00", "2027-02-06T00:00:00+00:00",
        "2027-02-07T00:00:00+00:00"]
    assert conf.exists()


def test_standard_input_and_usage(tmp_path):
    r = import_crontab("-", stdin="*/10 * * * * /bin/true\n")
    assert r.returncode == 0, r.stderr
    assert "1 job from standard input" in r.stdout
    assert field(r.stdout, "id") == ["true"]
    assert "user =" not in r.stdout         # a user's table, no --user
    check_t(tmp_path, r.stdout)

    # the system format read from standard input with --system
    r = import_crontab("--system", stdin="0 1 * * * root /bin/true\n")
    assert field(r.stdout, "user") == ["root"]
    assert field(r.stdout, "command") == ["/bin/true"]

    r = import_crontab("--frobnicate")
    assert r.returncode == 2
    assert "unknown option \"--frobnicate\"" in r.stderr
    r = import_crontab(tmp_path / "missing")
    assert r.returncode == 1
    assert "missing: No such file or directory" in r.stderr
    # the system format names its users: --user would read the user
    # column as the command's first word
    r = import_crontab("--user", "root", "/etc/crontab")
    assert r.returncode == 2
    assert "--user: /etc/crontab names the user on each line" in r.stderr
    assert r.stdout == ""
    r = import_crontab("--user", "no-such-user-here")
    assert r.returncode == 1
    assert "no crontab of \"no-such-user-here\"" in r.stderr


# --- schedules with a prefix, a pasted line -------------------------------

def test_schedule_errors_at_file_line(tmp_path):
    path = tmp_path / "scheduler.conf"
    lines = [
        'pid = "hourglass.pid";',
        "modules = { path = %s; load = [ \"shell\" ]; };"
        % conf_value(str(MODULES_DIR)),
        'store = { driver = "memory"; };',
        "jobs = (",
        job("pasted", schedule="0 2 * * * /usr/bin/backup --all",
            command="true") + ",",
        job("zones", schedule="CRON_TZ=Europe/Berlin 0 2 * * *",
            timezone="UTC", command="true") + ",",
        job("typo", schedule="TZ=Europe/Berln 0 2 * * *",
            command="true") + ",",
        job("same", schedule="CRON_TZ=Europe/Berlin 0 2 * * *",
            timezone="Europe/Berlin", command="true") + ",",
        job("boot", schedule="@reboot", command="true"),
        ");",
    ]
    path.write_text("\n".join(lines) + "\n")
    r = run_hourglass("-p", tmp_path, "-c", path, "-t")
    assert r.returncode == 1
    assert r.stderr.splitlines()[:3] == [
        '%s:5: job "pasted": schedule: invalid schedule "0 2 * * * '
        '/usr/bin/backup --all": expected 5 or 6 fields, got 7 (a crontab '
        'line? keep schedule = "0 2 * * *" and move "/usr/bin/backup --all" '
        'to command)' % path,
        '%s:6: job "zones": schedule: the prefix says time zone '
        '"Europe/Berlin" and timezone says "UTC" (keep one)' % path,
        '%s:7: job "typo": schedule: unknown time zone "Europe/Berln" '
        '(did you mean "Europe/Berlin"?)' % path,
    ]
    assert "test failed" in r.stderr.splitlines()[3]


# --- @reboot in a running daemon ------------------------------------------

def _boot_state(db, job_id):
    con = sqlite3.connect(str(db), timeout=10)
    try:
        row = con.execute("SELECT last_fire FROM job_state WHERE job_id = ?",
                          ("@reboot/" + job_id,)).fetchone()
    finally:
        con.close()
    return row and row[0]


def test_reboot_runs_once_per_boot(hg):
    d = hg("hg")
    out = d.dir / "ran"
    db = d.dir / "hg.db"
    text = sqlite_config(d, jobs=[
        job("boot", schedule="@reboot",
            command="echo ran >> %s" % out),
        # the importer's "%" as a daemon runs it: standard input
        job("stdin", schedule="CRON_TZ=UTC @reboot",
            command="{\ncat > %s.in\n} <<'CRON_INPUT'\nfirst line\n"
                    "second 100%% done\nCRON_INPUT" % out),
    ])

    d.start(text)
    d.wait_event("finish", job="boot", status="succeeded")
    d.wait_event("finish", job="stdin", status="succeeded")
    assert out.read_text() == "ran\n"
    assert Path(str(out) + ".in").read_text() == \
        "first line\nsecond 100% done\n"
    assert [e["trigger"] for e in d.events("start", job="boot")] == \
        ["reboot"]
    d.stop()
    first = _boot_state(db, "boot")
    assert first is not None

    # the same boot: a restart runs nothing
    d.start()
    d.wait_event("reboot", job="boot")
    d.wait_event("reboot", job="stdin")
    d.stop()
    assert out.read_text() == "ran\n"
    assert len(d.events("start", job="boot")) == 1

    # another boot (its id differs from the one kept): it runs again
    con = sqlite3.connect(str(db), timeout=10)
    with con:
        n = con.execute("UPDATE job_state SET last_fire = last_fire + 1 "
                        "WHERE job_id = '@reboot/boot'").rowcount
    con.close()
    assert n == 1
    d.start()
    d.wait_event("finish", count=2, job="boot", status="succeeded")
    wait_until(lambda: out.read_text() == "ran\nran\n", what="a second run")
    assert _boot_state(db, "boot") == first
    d.stop()
    # and the other job, whose state says this boot, did not
    assert len(d.events("start", job="stdin")) == 1


def test_cron_tz_prefix_is_the_job_zone(hg):
    """The daemon (zone UTC) reads "CRON_TZ=Asia/Tokyo 0 9 * * *" in Tokyo:
    every next fire is at 00:00 UTC; @reboot has none."""
    d = hg("hg")
    port = free_port()
    d.start(d.config(jobs=[
        job("tokyo", schedule="CRON_TZ=Asia/Tokyo 0 9 * * *", command="true"),
        job("utc", schedule="0 9 * * *", command="true"),
        job("boot", schedule="@reboot", command="true"),
    ], extra=api_section(port)))
    url = "http://127.0.0.1:%d" % port

    def show(job_id):
        r = run_hourglass("--url", url, "--token", TOKENS["reader"],
                          "--json", "show", job_id)
        assert r.returncode == 0, r.stderr
        return json.loads(r.stdout)

    tokyo = show("tokyo")["next_fires"]
    assert len(tokyo) == 5, tokyo
    assert all(t.endswith("T00:00:00.000Z") for t in tokyo), tokyo
    utc = show("utc")["next_fires"]
    assert len(utc) == 5 and all(t.endswith("T09:00:00.000Z")
                                 for t in utc), utc
    assert show("boot")["next_fires"] == []
