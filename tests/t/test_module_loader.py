"""
The module loader's refusals, seen through `hourglass -t`: a module whose
hg_module is smaller than any version 1 module, has no name, or has no
execute callback is refused at load time with the file and the reason; a
module whose init fails without a message of its own is refused with a
message all the same, and what it logged through the host's log service
comes out attributed to it. A validate that ends the configuration
reader's process is a configuration that failed, with the exit status
and the job being validated.
"""

import pytest

from conftest import job, run_hourglass, tmod


def check(daemon, module):
    daemon.write(load=("shell",), test_modules=(module,))
    r = run_hourglass("-t", "-p", daemon.dir, "-c", daemon.conf)
    assert r.returncode == 1, r
    assert r.stderr.endswith("hourglass: configuration file %s test failed\n"
                             % daemon.conf), r.stderr
    return r.stderr


@pytest.mark.parametrize("module, reason", [
    ("tiny", "hg_module is 8 bytes, smaller than any version 1 module"),
    ("noname", "hg_module has no name"),
    ("noexec", 'module "noexec" has no execute callback'),
])
def test_malformed_hg_module_is_refused(daemon, module, reason):
    err = check(daemon, module)
    path = tmod(module)
    assert '%s: module "%s": %s: %s' % (daemon.conf, path, path, reason) \
        in err, err


def test_init_failing_without_a_message(daemon):
    err = check(daemon, "initquiet")
    assert '%s: module "initquiet": init failed: init returned an error' \
        % daemon.conf in err, err
    logged = [l for l in err.splitlines() if "giving up" in l]
    assert len(logged) == 1, err
    assert "[warn]" in logged[0] and "module=initquiet" in logged[0] and \
        logged[0].endswith("initquiet: giving up after 3 tries (test)"), logged


def test_validate_that_exits_fails_the_configuration(daemon):
    daemon.write(test_modules=["badvalidate"],
                 jobs=[job("bye", type="badvalidate", mode="exit")])
    r = run_hourglass("-t", "-p", daemon.dir, "-c", daemon.conf)
    assert r.returncode == 1, r
    assert r.stderr == ('%s: configuration reader exited with status 3 and '
                        'no result while validating job "bye"\n'
                        "hourglass: configuration file %s test failed\n"
                        % (daemon.conf, daemon.conf)), r.stderr
    daemon.start(wait_ready=False)
    assert daemon.wait_exit() == 1
    assert "configuration reader exited with status 3" \
        in daemon.master_output()
