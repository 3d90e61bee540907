"""A throwaway PostgreSQL cluster for integration tests (the Python twin of
tests/unit/support/pg_cluster.hpp).

initdb in a temporary directory, started on a free port of 127.0.0.1 with trust authentication,
fsync on and max_connections=200; stop() stops it and removes the directory. As root (CI) the
server tools run as `nobody`, which owns the directory (initdb refuses root). The server binaries
come from /usr/lib/postgresql/<version>/bin (Debian `postgresql`, installed by tools/setup):
without them start() raises, saying so.

    with PgCluster() as pg:
        url = pg.create_database("two_gateways")   # postgresql://postgres@127.0.0.1:<port>/two_gateways
"""
import glob
import os
import pwd
import re
import shutil
import socket
import subprocess
import tempfile


def find_bindir():
    """The newest /usr/lib/postgresql/<version>/bin with initdb, else initdb's directory on PATH."""
    found = []
    for bindir in glob.glob("/usr/lib/postgresql/*/bin"):
        version = os.path.basename(os.path.dirname(bindir))
        if os.path.exists(os.path.join(bindir, "initdb")) and version.isdigit():
            found.append((int(version), bindir))
    if found:
        return max(found)[1]
    initdb = shutil.which("initdb")
    if initdb and shutil.which("pg_ctl"):
        return os.path.dirname(os.path.realpath(initdb))
    return None


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PgCluster:
    """One cluster. Use as a context manager, or call start() and stop()."""

    def __init__(self):
        self.bindir = None
        self.dir = None
        self.port = None
        self.running = False
        self._user = pwd.getpwnam("nobody") if os.geteuid() == 0 else None

    def _run(self, args, timeout=120):
        """Runs a server tool (as nobody when we are root); raises with its output on failure."""
        def drop_root():
            if self._user is not None:
                os.setgroups([])
                os.setgid(self._user.pw_gid)
                os.setuid(self._user.pw_uid)
        proc = subprocess.run(args, cwd=self.dir, capture_output=True, text=True, timeout=timeout,
                              preexec_fn=drop_root, stdin=subprocess.DEVNULL)
        if proc.returncode != 0:
            raise RuntimeError("%s failed (%d): %s%s" % (os.path.basename(args[0]), proc.returncode,
                                                         proc.stdout[-2000:], proc.stderr[-2000:]))
        return proc

    def _pg_ctl(self, *args):
        return self._run([os.path.join(self.bindir, "pg_ctl"), "-D", self.data, "-w", *args])

    @property
    def data(self):
        return os.path.join(self.dir, "data")

    def start(self):
        self.bindir = find_bindir()
        if self.bindir is None:
            raise RuntimeError("the PostgreSQL server binaries (initdb, pg_ctl) are not installed: "
                               "run tools/setup (Debian package postgresql)")
        self.dir = tempfile.mkdtemp(prefix="sdoh-pg-")
        if self._user is not None:
            os.chown(self.dir, self._user.pw_uid, self._user.pw_gid)
        # --no-sync: initdb's own files only; the server runs with fsync on.
        self._run([os.path.join(self.bindir, "initdb"), "-D", self.data, "-U", "postgres",
                   "-A", "trust", "-E", "UTF8", "--locale=C", "--no-sync"])
        # The port is picked free, then taken by the server: another process may take it
        # meanwhile, so a failed start is tried again on another port.
        error = None
        for _ in range(3):
            self.port = free_port()
            with open(os.path.join(self.data, "postgresql.auto.conf"), "w") as conf:
                conf.write("listen_addresses = '127.0.0.1'\n"
                           "port = %d\n"
                           "unix_socket_directories = '%s'\n"
                           "max_connections = 200\n"
                           "fsync = on\n"
                           "synchronous_commit = on\n" % (self.port, self.dir))
            try:
                self._pg_ctl("-l", os.path.join(self.dir, "server.log"), "-t", "60", "start")
                self.running = True
                return self
            except RuntimeError as e:
                error = e
        raise RuntimeError("PostgreSQL did not start: %s\n%s" % (error, self.server_log()))

    def restart(self):
        """pg_ctl restart -m fast: the server closes every open connection."""
        self._pg_ctl("-l", os.path.join(self.dir, "server.log"), "-m", "fast", "-t", "60",
                     "restart")

    def stop_server(self, mode="fast"):
        """Stops the server and keeps its data (start_server() starts it again)."""
        self._pg_ctl("-m", mode, "stop")
        self.running = False

    def start_server(self):
        self._pg_ctl("-l", os.path.join(self.dir, "server.log"), "-t", "60", "start")
        self.running = True

    def stop(self):
        """Stops the server and removes its directory."""
        if self.running:
            try:
                self._pg_ctl("-m", "immediate", "stop")
            finally:
                self.running = False
        if self.dir:
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = None

    def start_standby(self):
        """A streaming-replication standby of this cluster (pg_basebackup -R), started on a port
        of its own: a PgCluster whose server is read-only (pg_is_in_recovery). stop() it first."""
        standby = PgCluster()
        standby.bindir = self.bindir
        standby.dir = tempfile.mkdtemp(prefix="sdoh-pg-standby-")
        if standby._user is not None:
            os.chown(standby.dir, standby._user.pw_uid, standby._user.pw_gid)
        standby._run([os.path.join(self.bindir, "pg_basebackup"), "-D", standby.data, "-R",
                      "-X", "stream", "-c", "fast", "--no-sync", "-d",
                      "host=127.0.0.1 port=%d user=postgres" % self.port])
        standby.port = free_port()
        conf = os.path.join(standby.data, "postgresql.auto.conf")
        with open(conf) as f:  # the primary's settings and, from -R, primary_conninfo
            lines = [l for l in f if not l.startswith(("port", "unix_socket_directories"))]
        lines += ["port = %d\n" % standby.port, "unix_socket_directories = '%s'\n" % standby.dir]
        with open(conf, "w") as f:
            f.writelines(lines)
        standby._pg_ctl("-l", os.path.join(standby.dir, "server.log"), "-t", "60", "start")
        standby.running = True
        return standby

    def url(self, database="postgres"):
        return "postgresql://postgres@127.0.0.1:%d/%s" % (self.port, database)

    def psql(self, sql, database="postgres"):
        """Runs SQL with psql; its unaligned, tuples-only output."""
        proc = subprocess.run([os.path.join(self.bindir, "psql"), "-X", "-q", "-A", "-t",
                               "-v", "ON_ERROR_STOP=1", "-d", self.url(database), "-c", sql],
                              capture_output=True, text=True, timeout=60)
        if proc.returncode != 0:
            raise RuntimeError("psql failed: %s" % proc.stderr.strip())
        return proc.stdout.strip()

    def create_database(self, name):
        """A new, empty database (an existing one of that name is dropped first); its url."""
        db = re.sub(r"[^a-z0-9_]", "_", name.lower())[:63]
        self.psql('DROP DATABASE IF EXISTS "%s" WITH (FORCE)' % db)
        self.psql('CREATE DATABASE "%s"' % db)
        return self.url(db)

    def server_log(self):
        try:
            with open(os.path.join(self.dir, "server.log")) as f:
                return f.read()[-4000:]
        except OSError:
            return ""

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
