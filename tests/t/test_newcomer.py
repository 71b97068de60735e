"""What a newcomer trips on (issue 15 point 4): the finish line of a failed
run says why, -t reports what the start would trip on (the log's place, an
`at` in the past) and names a mistyped module or zone with a hint."""

import re

from conftest import (MODULES_DIR, conf_value, job, run_hourglass, rfc3339,
                      wait_until)


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
