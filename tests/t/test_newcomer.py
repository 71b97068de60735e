"""What a newcomer trips on (issue 15 point 4): the finish line of a failed
run says why, -t reports what the start would trip on (the log's place, an
`at` in the past) and names a mistyped module or zone with a hint."""

import re

from conftest import conf_value, job, run_hourglass, rfc3339, wait_until
from test_cli import line_of, write_conf as cli_conf


def write_script(daemon, name, body):
    path = daemon.dir / name
    path.write_bytes(body)
    return "sh %s" % path


# --- the finish line of a failed run ------------------------------------

FAILING = (b"printf 'first\\nsecond\\nthird\\n'\n"
           b"printf 'boom: \\033[31mdisk full\\033[0m \\377\\n\\n'\n"
           b"exit 3\n")


def test_a_failed_run_says_its_last_lines(daemon):
    failing = write_script(daemon, "fail.sh", FAILING)
    long_line = write_script(daemon, "long.sh",
                             b"head -c 1000 /dev/zero | tr '\\0' y; exit 1\n")
    daemon.start(jobs=[
        job("fails", every="1s", max_retries=0, command=failing),
        job("long", every="1s", max_retries=0, command=long_line),
        job("fine", every="1s", command="echo all good"),
    ])
    fails = daemon.wait_event("finish", job="fails")[0]
    assert fails["status"] == "failed", fails
    assert fails["exit_code"] == 3, fails
    # the last three lines, the final newlines dropped, a byte that is
    # not UTF-8 as '?'
    assert fails["output_tail"] == ("second\nthird\n"
                                    "boom: \x1b[31mdisk full\x1b[0m ?"), fails
    longest = daemon.wait_event("finish", job="long")[0]
    assert longest["output_tail"] == "y" * 200, longest
    fine = daemon.wait_event("finish", job="fine")[0]
    assert fine["status"] == "succeeded", fine
    assert "output_tail" not in fine, fine


def test_a_failed_runs_tail_is_one_escaped_text_line(daemon):
    failing = write_script(daemon, "fail.sh", FAILING)
    daemon.start(jobs=[job("fails", every="1s", max_retries=0,
                           command=failing)],
                 log_format="text", wait_ready=False)
    line = wait_until(lambda: [l for l in daemon.lines()
                               if " event=finish " in l],
                      what="a finish line in the text log")[0]
    assert ('output_tail="second\\nthird\\nboom: \\x1b[31mdisk full'
            '\\x1b[0m ?"') in line, line
    assert not re.search(r"[\x00-\x1f\x7f]", line), line


# --- -t: what the start would trip on -------------------------------------

def write_conf(tmp_path, log_file, jobs=(), top=""):
    """test_cli's configuration for -t with log.file on a line of its
    own; returns (path, text)."""
    path, text = cli_conf(tmp_path, jobs=jobs, extra=top)
    text = text.replace('log = { file = "hourglass.log"; };',
                        'log = {\n    file = %s;\n};'
                        % conf_value(str(log_file)))
    path.write_text(text)
    return path, text


def test_t_names_a_log_directory_that_cannot_be_made(tmp_path):
    in_the_way = tmp_path / "a-file"
    in_the_way.write_text("")
    log = in_the_way / "logs" / "hourglass.log"
    conf, text = write_conf(tmp_path, log)
    r = run_hourglass("-p", tmp_path, "-c", conf, "-t")
    assert r.returncode == 1, r
    assert r.stderr.splitlines()[0] == (
        "%s:%d: log.file: cannot create the log directory of %s: %s is not "
        "a directory" % (conf, line_of(text, "file ="), log, in_the_way)), r


def test_t_names_a_log_file_that_cannot_be_opened(tmp_path):
    log = tmp_path / "hourglass.log"
    log.mkdir()
    conf, text = write_conf(tmp_path, log)
    r = run_hourglass("-p", tmp_path, "-c", conf, "-t")
    assert r.returncode == 1, r
    assert r.stderr.splitlines()[0] == (
        "%s:%d: log.file: cannot open %s: not a regular file"
        % (conf, line_of(text, "file ="), log)), r
    link = tmp_path / "link.log"
    link.symlink_to(tmp_path / "elsewhere.log")
    conf, text = write_conf(tmp_path, link)
    r = run_hourglass("-p", tmp_path, "-c", conf, "-t")
    assert r.returncode == 1, r
    assert r.stderr.splitlines()[0].startswith(
        "%s:%d: log.file: cannot open %s: a symbolic link"
        % (conf, line_of(text, "file ="), link)), r


def test_a_missing_log_directory_is_made_by_the_start_not_by_t(hg):
    daemon = hg()
    daemon.log = daemon.dir / "logs" / "deep" / "hourglass.log"
    daemon.write(jobs=[job("a", every="1h", command="true")])
    r = run_hourglass("-p", daemon.dir, "-c", daemon.conf, "-t")
    assert r.returncode == 0, r
    assert not (daemon.dir / "logs").exists()
    daemon.start()
    assert daemon.events("start_master"), daemon.master_output()


def test_t_warns_of_an_at_in_the_past(tmp_path):
    past = rfc3339(1577836800)
    conf, text = write_conf(tmp_path, tmp_path / "hourglass.log", jobs=[
        job("once", command="true", at=past),
        job("never", command="true", at=past, misfire="skip"),
        job("later", command="true", at=rfc3339(4102444800)),
    ])
    r = run_hourglass("-p", tmp_path, "-c", conf, "-t")
    # a warning, not an error: a one-shot job stays in the file after its
    # time, and the file must go on starting and reloading
    assert r.returncode == 0, r
    assert r.stderr.splitlines() == [
        '%s:%d: warning: job "once": at: "%s" is in the past: it will not '
        'run, unless the daemon knew this job before that time and was down '
        'then (misfire then runs it once at the start)'
        % (conf, line_of(text, '"once"'), past),
        '%s:%d: warning: job "never": at: "%s" is in the past: it will not '
        'run (misfire = skip)' % (conf, line_of(text, '"never"'), past),
    ], r.stderr


def test_t_hints_a_module_name_and_a_zone(tmp_path):
    conf, text = write_conf(tmp_path, tmp_path / "hourglass.log",
                            top='timezone = "Europe/Berln";', jobs=[
        job("typo", type="shel", command="true", every="1h"),
        job("zone", command="true", every="1h",
            timezone="america/new_yrok"),
        job("far", command="true", every="1h", timezone="Mars/Olympus"),
    ])
    r = run_hourglass("-p", tmp_path, "-c", conf, "-t")
    assert r.returncode == 1, r
    lines = r.stderr.splitlines()
    assert '%s:%d: timezone: unknown time zone "Europe/Berln" (did you mean '\
        '"Europe/Berlin"?)' % (conf, line_of(text, "Europe/Berln")) in lines, \
        r.stderr
    assert '%s:%d: job "typo": type: unknown module type "shel" (did you '\
        'mean "shell"?)' % (conf, line_of(text, '"typo"')) in lines, r.stderr
    assert '%s:%d: job "zone": timezone: unknown time zone '\
        '"america/new_yrok" (did you mean "America/New_York"?)'\
        % (conf, line_of(text, '"zone"')) in lines, r.stderr
    # no hint when nothing is close
    assert '%s:%d: job "far": timezone: unknown time zone "Mars/Olympus"'\
        % (conf, line_of(text, '"far"')) in lines, r.stderr
