"""A real Redis server for the tests, started by the test itself.

RedisServer runs Debian's redis-server in a temporary directory with its
Unix socket there and no TCP listener (port 0), so that tests on one
machine never share a port. `persist=True` keeps every write in an
append-only file synced at each command (appendfsync always), so that a
restart keeps the claims; without it a restart forgets them.

Without redis-server, available() is False: a test then skips, or fails
when the environment variable CI is set (CI installs it).
"""

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time


def available():
    return shutil.which("redis-server") is not None


def require(pytest):
    if available():
        return
    if os.environ.get("CI"):
        pytest.fail("redis-server is not installed (apt-get install "
                    "redis-server); CI must run these tests")
    pytest.skip("redis-server is not installed (apt-get install "
                "redis-server)")


class RedisServer:
    def __init__(self, persist=False):
        self.dir = tempfile.mkdtemp(prefix="hg-redis-")
        self.sock = os.path.join(self.dir, "redis.sock")
        self.url = "unix://" + self.sock
        self.persist = persist
        self.proc = None

    def start(self):
        argv = ["redis-server", "--port", "0", "--unixsocket", self.sock,
                "--unixsocketperm", "700", "--dir", self.dir, "--save", "",
                "--logfile", os.path.join(self.dir, "redis.log")]
        if self.persist:
            argv += ["--appendonly", "yes", "--appendfsync", "always"]
        self.proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 20
        while self.command("PING") != "+PONG":
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("redis-server did not start: %s"
                                   % self.log_tail())
            time.sleep(0.05)

    def stop(self):
        """SIGTERM: with persist, the append-only file is complete."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(timeout=20)
        self.proc = None

    def destroy(self):
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def log_tail(self, n=20):
        try:
            with open(os.path.join(self.dir, "redis.log")) as f:
                return "".join(f.readlines()[-n:])
        except OSError:
            return ""

    def command(self, *args):
        """One command in the inline protocol; the first reply line, or
        None when the server does not answer."""
        try:
            with socket.socket(socket.AF_UNIX) as s:
                s.settimeout(5)
                s.connect(self.sock)
                s.sendall((" ".join(args) + "\r\n").encode())
                data = b""
                while not data.endswith(b"\r\n"):
                    chunk = s.recv(65536)
                    if not chunk:
                        break
                    data += chunk
                return data.decode().split("\r\n")[0]
        except OSError:
            return None

    def keys(self, pattern):
        """KEYS PATTERN through redis-cli (a list of names)."""
        r = subprocess.run(["redis-cli", "-s", self.sock, "--raw", "KEYS",
                            pattern], capture_output=True, text=True,
                           timeout=20, check=True)
        return [k for k in r.stdout.split("\n") if k]

    def get(self, key):
        r = subprocess.run(["redis-cli", "-s", self.sock, "--raw", "GET",
                            key], capture_output=True, text=True,
                           timeout=20, check=True)
        return r.stdout.rstrip("\n")
