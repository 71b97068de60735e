"""What the API answers is ordered after what the daemon said: an execution
read through GET /api/v1/executions/{id} as soon as its execution_finished
event arrives (GET /api/v1/events) shows its final status, exit code and
output, although the store's writer holds final records for a while
(up to 20 ms, to write them by the hundred) and starts go first. A
hundred jobs due at once: more records wait than the writer takes in one
slice (64) while starts wait for their own."""

import json
import socket
import urllib.request

from conftest import job, sqlite_config

TOKEN = "o-" + "k" * 30
JOBS = 100
CHECKED = 2 * JOBS          # two bursts' worth


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def request(port, path):
    req = urllib.request.Request("http://127.0.0.1:%d%s" % (port, path))
    req.add_header("Authorization", "Bearer " + TOKEN)
    return urllib.request.urlopen(req, timeout=10)


def finished_events(stream):
    """(id, data) of each execution_finished event of an open
    text/event-stream, as they arrive."""
    event = None
    for raw in stream:
        line = raw.decode().rstrip("\n")
        if line.startswith("event: "):
            event = line[7:]
        elif line.startswith("data: ") and event == "execution_finished":
            data = json.loads(line[6:])
            yield data["id"], data
        elif line == "":
            event = None


def test_an_execution_read_at_its_finish_event_reads_final(daemon):
    port = free_port()
    api = ('api = { listen = "127.0.0.1:%d"; allow = [ "127.0.0.0/8" ]; '
           'tokens = ( { name = "ops"; token = "%s"; role = "admin"; } ); };'
           % (port, TOKEN))
    # every job due at the same times; job i exits with i % 4
    jobs = [job("b%02d" % i, every="1s", overlap="allow", max_retries=0,
                command="echo out-%d; exit %d" % (i, i % 4))
            for i in range(JOBS)]
    daemon.start(sqlite_config(daemon, daemon.dir / "hg.db", workers=2,
                               jobs=jobs, extra=api))
    wrong, checked = [], 0
    with request(port, "/api/v1/events") as stream:
        for exec_id, event in finished_events(stream):
            with request(port, "/api/v1/executions/" + exec_id) as resp:
                got = json.loads(resp.read())
            i = int(event["job"][1:])
            want = ("succeeded" if i % 4 == 0 else "dead", i % 4,
                    "out-%d\n" % i)
            if (got["status"], got["exit_code"], got["output"]) != want \
                    or got["finished_at"] is None:
                wrong.append((exec_id, event["status"], got["status"],
                              got["exit_code"], got["output"]))
            checked += 1
            if checked == CHECKED:
                break
    assert not wrong, ("%d of %d executions read at their finish event "
                       "were not final as the event said: %s"
                       % (len(wrong), checked, wrong[:5]))
