"""The command line without a running master: -t and -T (the module
loader's errors among them), -V and `hourglass next`."""

import os
import re

import pytest

from conftest import MODULES_DIR, conf_value, job, run_hourglass, tmod


def write_conf(tmp_path, load=("shell",), jobs=(), extra=""):
    """A configuration for -t; returns (path, text)."""
    path = tmp_path / "scheduler.conf"
    text = "\n".join([
        'pid = "hourglass.pid";',
        'log = { file = "hourglass.log"; };',
        "modules = { path = %s; load = %s; };"
        % (conf_value(str(MODULES_DIR)), conf_value(list(load))),
        extra,
        "jobs = (",
        ",\n".join(jobs),
        ");",
        "",
    ])
    path.write_text(text)
    return path, text


def line_of(text, needle):
    """1-based number of the first line of TEXT containing NEEDLE."""
    for n, line in enumerate(text.split("\n"), 1):
        if needle in line:
            return n
    raise AssertionError("%r not in the configuration" % needle)


def check(tmp_path, conf):
    return run_hourglass("-p", tmp_path, "-c", conf, "-t")


def problems(conf, r):
    """The problem lines of a failed -t: each must be `F:LINE: message`
    or `F: message`; the closing `test failed` line is left out."""
    assert r.returncode == 1, (r.returncode, r.stdout, r.stderr)
    lines = [l for l in r.stderr.splitlines()
             if not l.startswith("hourglass: configuration file")]
    assert lines, r.stderr
    pat = re.compile(r"^%s(:\d+)?: \S" % re.escape(str(conf)))
    for l in lines:
        assert pat.match(l), "not F:LINE: message: %r" % l
    assert "test failed" in r.stderr
    return lines


def test_t_good_configuration_is_successful(tmp_path):
    conf, _ = write_conf(tmp_path, jobs=[job("a", every="1s",
                                             command="true")])
    r = check(tmp_path, conf)
    assert r.returncode == 0, r.stderr
    assert ("hourglass: configuration file %s test is successful" % conf
            in r.stdout)


def test_T_prints_the_effective_configuration(tmp_path):
    conf, _ = write_conf(tmp_path, jobs=[job("hello", every="90s",
                                             command="echo hi")])
    r = run_hourglass("-p", tmp_path, "-c", conf, "-T")
    assert r.returncode == 0, r.stderr
    out = r.stdout
    assert "test is successful" in out
    # Defaults filled in, paths made absolute, the job as in effect.
    assert re.search(r"^workers = \d+;", out, re.M), out
    assert 'shutdown_timeout = "30s";' in out
    assert 'pid = "%s/hourglass.pid";' % tmp_path in out
    assert 'id = "hello";' in out
    assert 'every = "90s";' in out or 'every = "1m30s";' in out


def test_T_expands_environment_variables(tmp_path):
    conf, _ = write_conf(tmp_path, jobs=[job("hello", every="1s",
                                             command="echo hi",
                                             cwd="/srv/${HG_E2E_WORD}")])
    env = dict(os.environ, HG_E2E_WORD="sesame")
    r = run_hourglass("-p", tmp_path, "-c", conf, "-T", env=env)
    assert r.returncode == 0, r.stderr
    assert 'cwd = "/srv/sesame";' in r.stdout, r.stdout


def test_T_does_not_print_values_expanded_into_a_command(tmp_path):
    """${VAR} in a shell command is left for sh and passed through the
    command's environment: -T shows the reference, never the value."""
    conf, _ = write_conf(tmp_path, jobs=[job("hello", every="1s",
                                             command="curl -u ${HG_E2E_PW}")])
    env = dict(os.environ, HG_E2E_PW="s3cret")
    r = run_hourglass("-p", tmp_path, "-c", conf, "-T", env=env)
    assert r.returncode == 0, r.stderr
    assert "s3cret" not in r.stdout, r.stdout
    assert 'command = "curl -u $${HG_E2E_PW}";' in r.stdout, r.stdout
    assert 'pass_env = [ "HG_E2E_PW" ];' in r.stdout, r.stdout


def test_t_missing_module_file(tmp_path):
    conf, _ = write_conf(tmp_path, load=["shell", "nosuchmodule"])
    lines = problems(conf, check(tmp_path, conf))
    assert any("nosuchmodule" in l and "nosuchmodule.so" in l
               for l in lines), lines


def test_t_missing_configuration_file(tmp_path):
    conf = tmp_path / "nope.conf"
    lines = problems(conf, check(tmp_path, conf))
    assert any("No such file" in l for l in lines), lines


def test_t_module_without_hg_module_symbol(tmp_path):
    conf, _ = write_conf(tmp_path, load=["shell", tmod("noexport")])
    lines = problems(conf, check(tmp_path, conf))
    assert any("noexport.so" in l and "hg_module" in l for l in lines), lines


def test_t_module_with_another_abi_version(tmp_path):
    conf, _ = write_conf(tmp_path, load=["shell", tmod("badabi")])
    lines = problems(conf, check(tmp_path, conf))
    hit = [l for l in lines if "badabi.so" in l]
    assert hit, lines
    assert re.search(r"\b999\b", hit[0]) and re.search(r"\b1\b", hit[0]), hit


def test_t_two_modules_with_the_same_name(tmp_path):
    conf, _ = write_conf(tmp_path, load=["shell", tmod("dupname")])
    lines = problems(conf, check(tmp_path, conf))
    hit = [l for l in lines if '"shell"' in l]
    assert hit, lines
    assert "shell.so" in hit[0] and "dupname.so" in hit[0], hit


def test_t_module_whose_init_fails(tmp_path):
    conf, _ = write_conf(tmp_path, load=["shell", tmod("initfail")])
    lines = problems(conf, check(tmp_path, conf))
    hit = [l for l in lines if "initfail" in l]
    assert hit, lines
    assert "init failed" in hit[0], hit
    assert "refusing to start (test)" in hit[0], hit


def badvalidate_conf(tmp_path, id, mode):
    """A configuration whose one job ID, of the badvalidate test module in
    MODE, spans four lines: (conf path, its text)."""
    return write_conf(
        tmp_path, load=["shell", tmod("badvalidate")],
        jobs=["  { id = \"%s\";\n"
              "    type = \"badvalidate\";\n"
              "    every = \"1s\";\n"
              "    mode = \"%s\"; }" % (id, mode)])


def test_t_module_validate_error_names_the_jobs_line(tmp_path):
    conf, text = badvalidate_conf(tmp_path, "picky", "c")
    first = line_of(text, 'id = "picky"')
    last = line_of(text, 'mode = "c"')
    lines = problems(conf, check(tmp_path, conf))
    hit = [l for l in lines if "picky" in l]
    assert hit, lines
    m = re.match(r"^%s:(\d+): " % re.escape(str(conf)), hit[0])
    assert m, hit
    assert first <= int(m.group(1)) <= last, (hit, first, last)
    assert "mode: must be one of a, b (test)" in hit[0]


def test_t_module_that_rejects_without_a_reason_is_named(tmp_path):
    # validate said no and wrote nothing: the error still says who refused
    # the job, at the job's line.
    conf, text = badvalidate_conf(tmp_path, "mute", "silent")
    r = check(tmp_path, conf)
    hit = [l for l in problems(conf, r) if "mute" in l]
    assert hit == ['%s:%d: job "mute": rejected by module "badvalidate"'
                   % (conf, line_of(text, 'id = "mute"'))], r.stderr

def test_t_unknown_type_suggests_the_closest(tmp_path):
    conf, text = write_conf(tmp_path, jobs=[
        job("a", every="1s", command="true"),
        job("typo", type="shel", every="1s", command="true")])
    lines = problems(conf, check(tmp_path, conf))
    hit = [l for l in lines if "shel" in l and "typo" in l]
    assert hit, lines
    assert hit[0].startswith("%s:%d: " % (conf, line_of(text, '"typo"')))
    assert re.search(r'did you mean "?shell"?', hit[0]), hit


def test_t_unknown_key_suggests_the_closest(tmp_path):
    conf, text = write_conf(tmp_path, jobs=[
        job("a", every="1s", command="true", timout="1s")])
    lines = problems(conf, check(tmp_path, conf))
    hit = [l for l in lines if "timout" in l]
    assert hit, lines
    assert hit[0].startswith("%s:%d: " % (conf, line_of(text, "timout")))
    assert "timeout" in hit[0].replace("timout", ""), hit


def test_V_prints_version_and_bundled_modules():
    r = run_hourglass("-V")
    assert r.returncode == 0
    assert re.search(r"^hourglass version \d+\.\d+", r.stdout, re.M), \
        r.stdout
    m = re.search(r"^bundled modules: (.*)$", r.stdout, re.M)
    assert m, r.stdout
    mods = m.group(1).replace(",", " ").split()
    assert "shell" in mods and "system" in mods, mods


def test_long_help_and_version():
    """--help and --version, as other tools have them: the same as -h and
    -V, exit 0; an unknown long option is named, exit 2."""
    r = run_hourglass("--help")
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("Usage: hourglass"), r.stdout
    assert "--version" in r.stdout
    r = run_hourglass("--version")
    assert r.returncode == 0, r.stderr
    assert re.search(r"^hourglass version \d+\.\d+", r.stdout, re.M)
    r = run_hourglass("--colour")
    assert r.returncode == 2
    assert "unknown option --colour" in r.stderr, r.stderr


def test_next_follows_the_dst_rules():
    r = run_hourglass("next", "--tz", "Europe/Berlin", "--from",
                      "2026-03-29T00:00:00+01:00", "-n", "2", "30 2 * * *")
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["2026-03-29T03:00:00+02:00",
                                "2026-03-30T02:30:00+02:00"]


@pytest.mark.parametrize("expr", ["61 * * * *", "0 0 30 2 *",
                                  "not a schedule"])
def test_next_rejects_an_invalid_expression(expr):
    r = run_hourglass("next", expr)
    # README: an invalid or never-firing expression exits 1 with
    # `hourglass: invalid schedule "EXPR": <why>`
    assert r.returncode == 1, (r.returncode, r.stderr)
    assert r.stdout == ""
    assert r.stderr.startswith('hourglass: invalid schedule "%s": ' % expr), \
        r.stderr
    assert r.stderr.split('": ', 1)[1].strip(), "no reason given"


@pytest.mark.parametrize("args", [["-n", "zero", "* * * * *"],
                                  ["-n", "0", "* * * * *"],
                                  ["--tz", "Mars/Olympus", "* * * * *"],
                                  ["--from", "yesterday", "* * * * *"],
                                  ["--bogus", "* * * * *"],
                                  []])
def test_next_usage_error_exits_2(args):
    # README: a usage error (unknown option, bad -n, --tz or --from) exits 2
    r = run_hourglass("next", *args)
    assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)
    assert r.stdout == ""
    assert r.stderr.strip(), "no message"


# (key, value, what the message must say after `job "x": KEY: `)
BAD_TIMES = [
    ("schedule", "61 * * * *", "61 is out of range 0-59"),
    ("schedule", "0 0 30 2 *", "never fires"),
    ("schedule", "@every 0s", "at least 1s"),
    ("at", "2026-13-01T00:00:00Z", "month 13 is out of range"),
    ("at", "tomorrow", "is not a time"),
    ("timezone", "Mars/Olympus", 'unknown time zone "Mars/Olympus"'),
]


def bad_time_job(key, value):
    keys = {key: value}
    if key == "timezone":
        keys["schedule"] = "0 2 * * *"
    return job("x", command="true", **keys)


@pytest.mark.parametrize("key,value,why", BAD_TIMES,
                         ids=["%s=%s" % (k, v) for k, v, _ in BAD_TIMES])
def test_t_reports_an_invalid_schedule_at_or_timezone(tmp_path, key, value,
                                                      why):
    conf, text = write_conf(tmp_path, jobs=[
        job("ok", every="1s", command="true"), bad_time_job(key, value)])
    lines = problems(conf, check(tmp_path, conf))
    assert len(lines) == 1, lines
    want = '%s:%d: job "x": %s: ' % (conf, line_of(text, '"x"'), key)
    assert lines[0].startswith(want), (lines, want)
    assert why in lines[0], lines
