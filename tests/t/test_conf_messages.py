"""
What `hourglass -t` says about a value of the wrong type or shape: each
kind of setting (integer or "auto", duration, enum, number, list of
strings, group, size) names what it expected and describes what it got
(true, a number, an integer, a string cut short, a list); bad ${...}
references, malformed api tokens, UTF-8 that is not, and a directory
given as the file. Each exits 1 with exactly the line expected. `-T`
shows paths made absolute with doubled slashes, "." and trailing
slashes dropped. Channels and tracing.otlp need the module their
deliveries run on: -t, the start and a reload refuse them without it.
"""

import signal
import subprocess

import pytest

from conftest import HOURGLASS, MODULES_DIR, conf_value, etime, run_hourglass

LONG = "a" * 100


def conf_with(tmp_path, text, jobs=b""):
    conf = tmp_path / "scheduler.conf"
    conf.write_bytes(("store = { driver = \"memory\"; };\n"
                      "modules = { path = %s; load = [ \"shell\" ]; };\n"
                      % conf_value(str(MODULES_DIR))).encode()
                     + text + b"\n" + jobs)
    return conf


def job(keys):
    return (b'jobs = ( { id = "a"; type = "shell"; command = "true"; '
            + keys + b" } );\n")


@pytest.mark.parametrize("text, jobs, message", [
    (b"workers = true;", b"",
     'workers: expected an integer or "auto", got true'),
    (b'workers = "%s";' % LONG.encode(), b"",
     'workers: expected an integer or "auto", got a string "%s..."'
     % LONG[:64]),
    (b"shutdown_timeout = 5.5;", b"",
     'shutdown_timeout: expected a duration such as "5m", got a number 5.5'),
    (b"log = { level = 3; };", b"",
     "log.level: expected one of error, warn, info, debug, got an integer 3"),
    (b"defaults = { overlap = 1.5; };", b"",
     "defaults.overlap: expected one of skip, queue, replace, allow, got a "
     "number 1.5"),
    (b'defaults = { backoff = { multiplier = "x"; }; };', b"",
     'defaults.backoff.multiplier: expected a number, got a string "x"'),
    (b'api = { allow = "x"; };', b"",
     'api.allow: expected a list of strings such as [ "a", "b" ], got a '
     'string "x"'),
    (b'timezone = ("UTC");', b"", "timezone: expected a string, got a list"),
    (b"log = 5;", b"", "log: expected a group { ... }, got an integer 5"),
    (b"", job(b"limits = { memory = true; };"),
     'job "a": limits.memory: expected a size such as "64KiB", got true'),
    (b"", job(b"limits = { memory = -5; };"),
     'job "a": limits.memory: -5 is not a size'),
    (b'pid = "${1X}";', b"",
     'pid: "${1X}" is not a valid reference: a variable name is letters, '
     'digits and _, not starting with a digit (write "$$" for a literal '
     '"$")'),
    (b'api = { tokens = ( "x" ); };', b"",
     'api.tokens[0]: expected a group { name = "..."; token = "..."; role = '
     '"..."; }, got a string "x"'),
    (b'api = { tokens = ( { name = "a b"; token = "t"; role = "read"; } ); };',
     b"", 'api.tokens[0].name: "a b" is not a valid name: use 1-128 of A-Z '
     "a-z 0-9 . _ -"),
    (b"", job(b'description = "\xff";'),
     'job "a": description: the text is not valid UTF-8'),
    (b"", job(b'description = "\xc3\x28";'),
     'job "a": description: the text is not valid UTF-8'),
    (b"", job(b'description = "\xf0\x80\x80\x80";'),
     'job "a": description: the text is not valid UTF-8'),
])
def test_refused_with_what_was_expected(tmp_path, text, jobs, message):
    conf = conf_with(tmp_path, text, jobs)
    lineno = 4 if jobs else 3
    r = run_hourglass("-t", "-p", tmp_path, "-c", conf)
    assert r.returncode == 1, r
    assert r.stderr == ("%s:%d: %s\nhourglass: configuration file %s test "
                        "failed\n" % (conf, lineno, message, conf)), r.stderr


def test_four_byte_utf8_is_text(tmp_path):
    conf = conf_with(tmp_path, b"", job(b'description = "\xf0\x9f\x98\x80";'))
    r = run_hourglass("-T", "-p", tmp_path, "-c", conf)
    assert r.returncode == 0, r
    assert 'description = "\U0001F600";' in r.stdout, r.stdout


def test_a_directory_is_not_a_configuration_file(tmp_path):
    r = run_hourglass("-t", "-c", tmp_path)
    assert r.returncode == 1, r
    assert r.stderr == ("%s: is a directory, not a configuration file\n"
                        "hourglass: configuration file %s test failed\n"
                        % (tmp_path, tmp_path)), r.stderr


def test_paths_are_made_absolute_and_tidy(tmp_path):
    conf = tmp_path / "scheduler.conf"
    conf.write_text('pid = "run//./hg.pid/";\n'
                    'store = { driver = "memory"; };\n'
                    'modules = { path = "//"; load = [ ]; };\n')
    r = run_hourglass("-T", "-p", str(tmp_path) + "/", "-c", conf)
    assert r.returncode == 0, r
    assert 'pid = "%s/run/hg.pid";' % tmp_path in r.stdout, r.stdout
    assert '    path = "/";' in r.stdout, r.stdout


@pytest.mark.parametrize("keys, message", [
    (b'type = "nosuch"; command = "true";',
     'type: unknown module type "nosuch" (loaded modules: shell)'),
    (b'type = "shell"; command = "true"; timezone = "Mars/Base"; '
     b'schedule = "0 0 * * *";', 'timezone: unknown time zone "Mars/Base"'),
    (b'type = "shell"; command = "true"; schedule = "0 0 30 2 *";',
     'schedule: invalid schedule "0 0 30 2 *": never fires: day 30 does not '
     'occur in February'),
    (b'type = "shell"; command = "true"; every = "1m"; start_at = "soon";',
     'start_at: "soon" is not a time (expected e.g. '
     '2026-12-01T09:00:00+01:00)'),
    (b'type = "shell"; command = "true"; at = "tomorrow";',
     'at: "tomorrow" is not a time (expected e.g. 2026-12-01T09:00:00+01:00)'),
])
def test_job_schedule_refused(tmp_path, keys, message):
    conf = conf_with(tmp_path, b"", b'jobs = ( { id = "a"; ' + keys + b" } );\n")
    r = run_hourglass("-t", "-p", tmp_path, "-c", conf)
    assert r.returncode == 1, r
    assert r.stderr == ('%s:4: job "a": %s\nhourglass: configuration file %s '
                        "test failed\n" % (conf, message, conf)), r.stderr


def test_global_timezone_refused(tmp_path):
    conf = conf_with(tmp_path, b'timezone = "Mars/Base";')
    r = run_hourglass("-t", "-p", tmp_path, "-c", conf)
    assert r.returncode == 1, r
    # the cycle checks the zone after the file is read, at the key's line
    assert r.stderr == ('%s:3: timezone: unknown time zone "Mars/Base"\n'
                        "hourglass: configuration file %s test failed\n"
                        % (conf, conf)), r.stderr


def test_global_timezone_refused_in_an_included_file(tmp_path):
    (tmp_path / "zone.conf").write_bytes(b'\n\ntimezone = "Mars/Base";\n')
    conf = conf_with(tmp_path, b'@include "zone.conf"')
    r = run_hourglass("-t", "-p", tmp_path, "-c", conf)
    assert r.returncode == 1, r
    assert r.stderr.startswith('%s:3: timezone: unknown time zone '
                               '"Mars/Base"\n' % (tmp_path / "zone.conf")), \
        r.stderr


@pytest.mark.parametrize("prefix, under", [(".", ""), ("sub", "/sub"),
                                           ("sub/", "/sub")])
def test_relative_prefix_is_made_absolute(tmp_path, prefix, under):
    conf = tmp_path / "scheduler.conf"
    conf.write_text('pid = "run/hg.pid";\nstore = { driver = "memory"; };\n'
                    'modules = { path = "/"; load = [ ]; };\n')
    r = subprocess.run([str(HOURGLASS), "-T", "-p", prefix, "-c", str(conf)],
                       capture_output=True, text=True, timeout=30,
                       cwd=str(tmp_path))
    assert r.returncode == 0, r
    assert 'pid = "%s%s/run/hg.pid";' % (tmp_path, under) in r.stdout, \
        r.stdout


def test_dump_round_trips_escapes_and_module_sections(tmp_path):
    """-T writes what it read so that it reads back the same: control
    characters escaped, a module's own section with booleans, a number and
    lists."""
    conf = conf_with(
        tmp_path, b"",
        b'jobs = ( { id = "a"; type = "shell"; command = "true"; '
        b'description = "a\\rb\\fc\\td"; } );\n')
    conf.write_text(conf.read_text().replace(
        'load = [ "shell" ];',
        'load = [ "shell" ]; shell = { flag = true; off = false; n = 1.5; '
        'l = [ 1, 2 ]; b = [ true, false ]; };'))
    first = run_hourglass("-T", "-p", tmp_path, "-c", conf)
    assert first.returncode == 0, first
    assert '        description = "a\\rb\\fc\\td";\n' in first.stdout, \
        first.stdout
    assert ("    shell = {\n        flag = true;\n        off = false;\n"
            "        n = 1.5;\n        l = [ 1, 2 ];\n"
            "        b = [ true, false ];\n    };\n") \
        in first.stdout, first.stdout
    # the dump, without -T's closing "test is successful" line
    dump = first.stdout[:first.stdout.rindex("hourglass: configuration")]
    dumped = tmp_path / "dumped.conf"
    dumped.write_text(dump)
    second = run_hourglass("-T", "-p", tmp_path, "-c", dumped)
    assert second.returncode == 0, second
    assert second.stdout.replace(str(dumped), str(conf)) == first.stdout


def test_module_that_cannot_load_is_named_once(tmp_path):
    (tmp_path / "junk.so").write_bytes(b"not a shared object\n" * 64)
    for load, path, why in [
            ('"nope"', "%s/nope.so" % MODULES_DIR,
             "cannot open shared object file: No such file or directory"),
            ('"%s"' % (tmp_path / "junk.so"), str(tmp_path / "junk.so"),
             "invalid ELF header")]:
        conf = tmp_path / "scheduler.conf"
        conf.write_bytes(("store = { driver = \"memory\"; };\n"
                          "modules = { path = %s; load = [ %s ]; };\n"
                          % (conf_value(str(MODULES_DIR)), load)).encode())
        r = run_hourglass("-t", "-p", tmp_path, "-c", conf)
        assert r.returncode == 1, r
        name = load.strip('"')
        assert r.stderr.startswith('%s: module "%s": cannot load %s: %s\n'
                                   % (conf, name, path, why)), r.stderr


# --- settings that run on a module: channels and tracing.otlp -------------

SERVED = ('channels = ( { name = "hook"; type = "webhook";\n'
          '    url = "http://127.0.0.1:9/hook"; },\n'
          '  { name = "page"; type = "command"; command = "cat"; } );\n'
          'tracing = {\n'
          '    otlp = "http://127.0.0.1:9"; };')
# their lines in conf_with's file: the channels' types, then otlp
HOOK_LINE, PAGE_LINE, OTLP_LINE = 3, 5, 7


def served_errors(conf, load):
    """The lines -t prints for SERVED when only LOAD is loaded."""
    want = []
    if "http" not in load:
        want.append('%s:%d: channels[0]: webhook channel "hook" needs a '
                    'module of type "http", and none is loaded (add "http" '
                    'to modules.load)' % (conf, HOOK_LINE))
    if "shell" not in load:
        want.append('%s:%d: channels[1]: command channel "page" needs a '
                    'module of type "shell", and none is loaded (add '
                    '"shell" to modules.load)' % (conf, PAGE_LINE))
    if "http" not in load:
        want.append('%s:%d: tracing.otlp: the export of spans needs a '
                    'module of type "http", and none is loaded (add "http" '
                    'to modules.load)' % (conf, OTLP_LINE))
    return want


@pytest.mark.parametrize("load", [("shell",), ("http",), ("system",),
                                  ("shell", "http")])
def test_channels_and_tracing_need_their_module(tmp_path, load):
    """A webhook channel and tracing.otlp run as executions of type http, a
    command channel of type shell: -t refuses them, at their lines, when
    no such module is loaded (each delivery would fail), and says what to
    load."""
    conf = conf_with(tmp_path, SERVED.encode())
    text = conf.read_text().replace('load = [ "shell" ]', "load = %s"
                                    % conf_value(list(load)))
    conf.write_text(text)
    assert text.split("\n")[HOOK_LINE - 1].endswith('type = "webhook";')
    assert text.split("\n")[OTLP_LINE - 1].lstrip().startswith("otlp")
    r = run_hourglass("-t", "-p", tmp_path, "-c", conf)
    want = served_errors(conf, load)
    if not want:
        assert r.returncode == 0, r
        return
    assert r.returncode == 1, r
    assert r.stderr == "".join(line + "\n" for line in want) + (
        "hourglass: configuration file %s test failed\n" % conf), r.stderr


def test_start_refuses_a_webhook_without_the_http_module(daemon):
    daemon.write(extra=SERVED, load=("shell",))
    p = subprocess.run([str(HOURGLASS), "-p", str(daemon.dir), "-c",
                        str(daemon.conf)], capture_output=True, text=True,
                       timeout=30, env=daemon.env(), cwd=str(daemon.dir))
    assert p.returncode == 1, p
    lines = daemon.conf.read_text().split("\n")
    hook = next(i for i, l in enumerate(lines, 1) if '"webhook"' in l)
    otlp = next(i for i, l in enumerate(lines, 1) if "otlp =" in l)
    assert ('%s:%d: channels[0]: webhook channel "hook" needs a module of '
            'type "http"' % (daemon.conf, hook)) in p.stderr, p.stderr
    assert ('%s:%d: tracing.otlp: the export of spans needs a module of '
            'type "http"' % (daemon.conf, otlp)) in p.stderr, p.stderr


def test_reload_refuses_a_webhook_without_the_http_module(daemon):
    """The running configuration has both modules; a reload that drops
    http while a webhook and tracing remain fails with their lines, and
    the master goes on with what it had."""
    daemon.start(extra=SERVED, load=("shell", "http"),
                 jobs=['{ id = "tick"; type = "shell"; every = "300ms"; '
                       'command = "true"; }'])
    daemon.wait_event("finish", job="tick")
    before = len(daemon.events("reload"))
    text = daemon.config(extra=SERVED, load=("shell",),
                         jobs=['{ id = "tick"; type = "shell"; '
                               'every = "300ms"; command = "exit 3"; }'])
    daemon.write(text)
    daemon.signal(signal.SIGHUP)
    evs = daemon.wait_for(lambda evs: [e for e in evs if e.get("event")
                                       == "reload"][before:] or None,
                          what="the reload event")
    assert all(e["result"] == "failed" for e in evs), evs
    lines = text.split("\n")
    hook = next(i for i, l in enumerate(lines, 1) if '"webhook"' in l)
    otlp = next(i for i, l in enumerate(lines, 1) if "otlp =" in l)
    messages = [e.get("message", "") for e in evs]
    for want in ('%s:%d: channels[0]: webhook channel "hook" needs a module '
                 'of type "http"' % (daemon.conf, hook),
                 '%s:%d: tracing.otlp: the export of spans needs a module of '
                 'type "http"' % (daemon.conf, otlp)):
        assert [m for m in messages if m.startswith(want)], (want, messages)
    # the old definition goes on (command true, not exit 3)
    fins = daemon.wait_event("finish", job="tick", count=2,
                             after=etime(evs[-1]))
    assert all(f["status"] == "succeeded" for f in fins), fins
    assert daemon.running()
