"""A PostgreSQL primary and its streaming replica, of the test's own.

The test's shared PostgreSQL refuses replication connections (its pg_hba
has no ``replication`` line), and it may not be restarted or reconfigured,
so the replica tests make a pair of their own: a primary cluster made with
``initdb`` in a temporary folder, on a free port, and a replica made from
it with ``pg_basebackup -R`` (``standby.signal`` and ``primary_conninfo``
written by it), streaming on another port. Both run as the ``postgres``
user (PostgreSQL refuses root), from Debian's binaries in
``/usr/lib/postgresql/<version>/bin``; :class:`ReplicaPair` stops them by
their postmaster's pid (``pg_ctl stop``, then SIGKILL) and removes their
folders, even when the test fails. Where the binaries are missing the tests
skip, unless ``MODELQUEUE_REQUIRE_TOPOLOGY`` is set (CI).
"""

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import psycopg

from tests.support.pgbouncer import RUN_AS, free_port, owned_folder

TOOLS = ('initdb', 'pg_ctl', 'pg_basebackup', 'postgres')


def binaries():
    """The folder of the newest PostgreSQL server binaries installed, or None."""
    found = sorted(
        Path('/usr/lib/postgresql').glob('*/bin'),
        key=lambda path: int(path.parent.name) if path.parent.name.isdigit() else 0,
    )
    for folder in reversed(found):
        if all((folder / tool).exists() for tool in TOOLS):
            return folder
    return None


def missing():
    """Why a replica pair cannot be made here, or None."""
    if binaries() is None:
        return f'no PostgreSQL server binaries ({", ".join(TOOLS)}) in /usr/lib/postgresql/*/bin'
    if shutil.which('runuser') is None or os.geteuid() != 0:
        return 'running PostgreSQL as the postgres user needs root and runuser'
    return None


def as_postgres(*command, timeout=120):
    return subprocess.run(
        ['runuser', '-u', RUN_AS, '--', *map(str, command)],
        check=True,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


class Cluster:
    """One PostgreSQL server: its data folder, port and postmaster pid."""

    def __init__(self, bindir, folder, port):
        self.bindir = bindir
        self.folder = folder
        self.data = folder / 'data'
        self.port = port
        self.pid = None

    def start(self):
        as_postgres(
            self.bindir / 'pg_ctl', '-D', self.data, '-l', self.folder / 'server.log', '-w', '-t', '60',
            '-o', f'-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1', 'start',
        )
        self.pid = int((self.data / 'postmaster.pid').read_text().split()[0])

    def stop(self, mode='fast'):
        """Stop the server (pg_ctl, then SIGKILL of its postmaster)."""
        if self.pid is None:
            return
        try:
            as_postgres(self.bindir / 'pg_ctl', '-D', self.data, '-m', mode, '-w', '-t', '30', 'stop', timeout=60)
        except (subprocess.SubprocessError, OSError):
            pass
        if _alive(self.pid):
            os.kill(self.pid, signal.SIGKILL)
            deadline = time.monotonic() + 10
            while _alive(self.pid) and time.monotonic() < deadline:
                time.sleep(0.05)
        self.pid = None

    def log(self):
        path = self.folder / 'server.log'
        return path.read_text() if path.exists() else ''

    def connect(self, dbname='postgres'):
        return psycopg.connect(host='127.0.0.1', port=self.port, user=RUN_AS, dbname=dbname, autocommit=True)

    def execute(self, sql, params=None, dbname='postgres'):
        with self.connect(dbname) as connection:
            cursor = connection.execute(sql, params)
            return cursor.fetchall() if cursor.description else None


class ReplicaPair:
    """A primary (``initdb``) and its streaming replica (``pg_basebackup``).

    ``with ReplicaPair() as pair:`` makes and starts the primary;
    ``pair.start_replica()`` copies it and starts the replica, so whatever
    the primary holds by then (a migrated database) is on the replica at
    once. ``pair.primary`` and ``pair.replica`` are :class:`Cluster`.
    """

    def __init__(self):
        self.bindir = binaries()
        self.folder = None
        self.primary = None
        self.replica = None

    def __enter__(self):
        self.folder = owned_folder('modelqueue-replica-')
        try:
            (self.folder / 'primary').mkdir()
            (self.folder / 'replica').mkdir()
            shutil.chown(self.folder / 'primary', RUN_AS, RUN_AS)
            shutil.chown(self.folder / 'replica', RUN_AS, RUN_AS)
            self.primary = Cluster(self.bindir, self.folder / 'primary', free_port())
            as_postgres(
                self.bindir / 'initdb', '-D', self.primary.data, '-A', 'trust', '-U', RUN_AS,
                '--no-sync', '-E', 'UTF8', '--locale=C',
            )
            with open(self.primary.data / 'postgresql.conf', 'a') as config:
                config.write('\nfsync = off\nmax_connections = 40\nshared_buffers = 16MB\n')
            self.primary.start()
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def start_replica(self, apply_delay=None):
        self.replica = Cluster(self.bindir, self.folder / 'replica', free_port())
        as_postgres(
            self.bindir / 'pg_basebackup', '-h', '127.0.0.1', '-p', self.primary.port, '-U', RUN_AS,
            '-D', self.replica.data, '-R', '-X', 'stream', '--no-sync', '--checkpoint=fast',
        )
        if apply_delay is not None:
            with open(self.replica.data / 'postgresql.conf', 'a') as config:
                config.write(f"\nrecovery_min_apply_delay = '{apply_delay}'\n")
        self.replica.start()
        return self.replica

    def __exit__(self, *exc_info):
        for cluster in (self.replica, self.primary):
            if cluster is not None:
                cluster.stop('immediate')
        if self.folder is not None:
            shutil.rmtree(self.folder, ignore_errors=True)
            self.folder = None


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True
