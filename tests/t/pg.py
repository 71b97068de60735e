"""A real PostgreSQL server for the tests, started by the test itself.

PgServer runs Debian's initdb into a temporary directory and pg_ctl start
with its Unix socket in that directory and no TCP listener
(listen_addresses = ''), so that tests on one machine never share a port.
As root (CI), the server runs as `nobody` (initdb refuses root); the
files are that user's, and everything that talks to the server connects
through the socket as the database superuser `hourglass` (trust
authentication, local connections only).

Each test takes a database of its own (PgServer.database()), the server
being shared by a test module: initdb is the slow part.

From C (tests/unit/test_store_pg.c) or a shell:
    python3 tests/t/pg.py start        -> prints "URL DIR" on one line
    python3 tests/t/pg.py createdb DIR -> prints the URL of a new database
    python3 tests/t/pg.py pause DIR    -> stops the server, keeps its files
    python3 tests/t/pg.py resume DIR   -> starts it again
    python3 tests/t/pg.py stop DIR     -> stops the server and removes DIR
    python3 tests/t/pg.py sql URL SQL  -> runs SQL on the database at URL

Without PostgreSQL's binaries, available() is False: a test then skips,
or fails when the environment variable CI is set (CI installs them).
"""

import glob
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
import time
import uuid

SUPERUSER = "hourglass"


def bindir():
    """The newest /usr/lib/postgresql/N/bin with initdb, or None."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"),
                   key=lambda p: int(p.split("/")[4])
                   if p.split("/")[4].isdigit() else 0)
    return os.path.dirname(found[-1]) if found else None


def available():
    return bindir() is not None and shutil.which("psql") is not None


def require(pytest):
    """Skips the calling test without PostgreSQL (fails under CI)."""
    if available():
        return
    if os.environ.get("CI"):
        pytest.fail("PostgreSQL is not installed (apt-get install "
                    "postgresql); CI must run these tests")
    pytest.skip("PostgreSQL is not installed (apt-get install postgresql)")


class PgServer:
    def __init__(self, base=None):
        self.bin = bindir()
        # A short path: a Unix socket's name is limited to 107 bytes.
        self.dir = tempfile.mkdtemp(prefix="hgpg", dir=base or "/tmp")
        self.data = os.path.join(self.dir, "data")
        self.logfile = os.path.join(self.dir, "server.log")
        self.user = None
        if os.geteuid() == 0:
            self.user = "nobody"
            pw = pwd.getpwnam(self.user)
            os.chown(self.dir, pw.pw_uid, pw.pw_gid)
        os.chmod(self.dir, 0o755)

    @classmethod
    def attach(cls, path):
        """The server whose directory is PATH (started by another
        process)."""
        server = cls.__new__(cls)
        server.bin = bindir()
        server.dir = path
        server.data = os.path.join(path, "data")
        server.logfile = os.path.join(path, "server.log")
        server.user = "nobody" if os.geteuid() == 0 else None
        return server

    def _as_owner(self, argv):
        if self.user is None:
            return argv
        return ["runuser", "-u", self.user, "--"] + argv

    def _tool(self, name, *args, check=True, timeout=60):
        return subprocess.run(
            self._as_owner([os.path.join(self.bin, name)] + list(args)),
            capture_output=True, text=True, check=check, timeout=timeout,
            cwd=self.dir)

    def init(self):
        self._tool("initdb", "-D", self.data, "-U", SUPERUSER,
                   "--auth=trust", "--no-sync", "-E", "UTF8",
                   "--locale=C")
        return self

    def start(self):
        """pg_ctl start, waiting until it accepts connections."""
        opts = ("-c listen_addresses='' -k %s -F -c max_connections=60"
                % self.dir)
        r = self._tool("pg_ctl", "start", "-w", "-t", "60", "-D", self.data,
                       "-l", self.logfile, "-o", opts, check=False)
        if r.returncode != 0:
            raise RuntimeError("pg_ctl start failed: %s%s\n%s"
                               % (r.stdout, r.stderr, self.log_tail()))
        return self

    def stop(self, mode="fast"):
        self._tool("pg_ctl", "stop", "-w", "-t", "60", "-D", self.data,
                   "-m", mode, check=False)

    def destroy(self):
        self.stop("immediate")
        shutil.rmtree(self.dir, ignore_errors=True)

    def log_tail(self, n=20):
        try:
            with open(self.logfile) as f:
                return "".join(f.readlines()[-n:])
        except OSError:
            return ""

    def url(self, dbname="postgres"):
        return "postgresql://%s@/%s?host=%s" % (SUPERUSER, dbname, self.dir)

    def psql(self, sql, dbname="postgres", check=True):
        """Runs SQL; the rows as lists of strings (unaligned, |-separated)."""
        r = subprocess.run(
            ["psql", "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1",
             "-h", self.dir, "-U", SUPERUSER, "-d", dbname, "-c", sql],
            capture_output=True, text=True, timeout=60)
        if check and r.returncode != 0:
            raise RuntimeError("psql %r: %s" % (sql, r.stderr))
        return [line.split("|") for line in r.stdout.splitlines() if line]

    def database(self):
        """A new empty database: its name."""
        name = "t_" + uuid.uuid4().hex[:12]
        self.psql("CREATE DATABASE %s" % name)
        return name


def wait_ready(server, timeout=30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.psql("SELECT 1", check=False) == [["1"]]:
            return
        time.sleep(0.1)
    raise RuntimeError("PostgreSQL did not answer: %s" % server.log_tail())


def main(argv):
    if len(argv) == 2 and argv[1] == "start":
        if not available():
            print("PostgreSQL is not installed", file=sys.stderr)
            return 2
        server = PgServer()
        try:
            server.init().start()
            wait_ready(server)
            name = server.database()
        except Exception as e:
            print(e, file=sys.stderr)
            server.destroy()
            return 1
        print(server.url(name), server.dir)
        return 0
    if len(argv) == 3 and argv[1] in ("stop", "createdb", "pause",
                                      "resume"):
        server = PgServer.attach(argv[2])
        if argv[1] == "stop":
            server.destroy()
        elif argv[1] == "createdb":
            print(server.url(server.database()))
        elif argv[1] == "pause":
            server.stop()
        else:
            server.start()
            wait_ready(server)
        return 0
    if len(argv) == 4 and argv[1] == "sql":
        r = subprocess.run(["psql", "-X", "-q", "-At", "-v",
                            "ON_ERROR_STOP=1", "-d", argv[2], "-c", argv[3]],
                           timeout=60)
        return r.returncode
    print("usage: pg.py start | pg.py createdb|pause|resume|stop DIR"
          " | pg.py sql URL SQL",
          file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
