"""A PgBouncer of the test's own, in front of the test's PostgreSQL.

Debian's ``pgbouncer`` (``./runtests`` installs it with apt where it is
missing) refuses to run as root, so it runs as the ``postgres`` user, with
its configuration, log, pid file and socket in a temporary folder of its
own; :class:`PgBouncer` stops it by its pid and removes the folder, even
when the test fails. Where pgbouncer is missing (or there is no
``postgres`` user to run it as) the tests that need it are skipped, unless
``MODELQUEUE_REQUIRE_TOPOLOGY`` is set, as in CI: then they fail.

The benchmark (``python -m bench topology``) starts it the same way.
"""

import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

PGBOUNCER = Path('/usr/sbin/pgbouncer')
REQUIRE = 'MODELQUEUE_REQUIRE_TOPOLOGY'
RUN_AS = 'postgres'


def topology_missing(reason):
    """Skip a test that needs a server this machine lacks, or fail it where
    MODELQUEUE_REQUIRE_TOPOLOGY is set (CI)."""
    import pytest  # noqa: PLC0415 (the benchmark uses this module without pytest)

    if os.environ.get(REQUIRE):
        pytest.fail(f'{REQUIRE} is set, but {reason}')
    pytest.skip(reason)


def missing():
    """Why PgBouncer cannot be started here, or None."""
    if not PGBOUNCER.exists():
        return f'{PGBOUNCER} is not installed (Debian package pgbouncer)'
    try:
        pwd.getpwnam(RUN_AS)
    except KeyError:
        return f'there is no {RUN_AS!r} user to run pgbouncer as'
    if os.geteuid() != 0:
        return 'starting pgbouncer as the postgres user needs root'
    return None


def free_port():
    """A TCP port of 127.0.0.1 that nothing listens on now."""
    with socket.socket() as probe:
        probe.bind(('127.0.0.1', 0))
        return probe.getsockname()[1]


def owned_folder(prefix):
    """A temporary folder that the postgres user owns."""
    folder = Path(tempfile.mkdtemp(prefix=prefix))
    entry = pwd.getpwnam(RUN_AS)
    os.chown(folder, entry.pw_uid, entry.pw_gid)
    return folder


class PgBouncer:
    """PgBouncer on a free port of 127.0.0.1, pooling `database` of the
    PostgreSQL at `host`:`port` for `user`, in `mode` (transaction by
    default), with at most `pool_size` server connections.

    ``with PgBouncer(...) as bouncer:`` starts it and stops it. ``show(what)``
    reads its admin console (``SHOW POOLS``, ``SHOW SERVERS``...) as a list
    of dicts; ``log()`` is its log so far.
    """

    def __init__(
        self,
        database,
        host='127.0.0.1',
        port=5432,
        user='postgres',
        mode='transaction',
        pool_size=10,
        max_clients=400,
    ):
        self.database = database
        self.server = (host, int(port))
        self.user = user
        self.mode = mode
        self.pool_size = pool_size
        self.max_clients = max_clients
        self.port = None
        self.folder = None
        self.process = None
        self.pid = None

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc_info):
        self.stop()

    def start(self):
        self.folder = owned_folder('modelqueue-pgbouncer-')
        self.port = free_port()
        host, port = self.server
        config = self.folder / 'pgbouncer.ini'
        (self.folder / 'users.txt').write_text(f'"{self.user}" ""\n')
        config.write_text(
            '[databases]\n'
            f'{self.database} = host={host} port={port} dbname={self.database} user={self.user}\n'
            '[pgbouncer]\n'
            'listen_addr = 127.0.0.1\n'
            f'listen_port = {self.port}\n'
            'unix_socket_dir =\n'
            'auth_type = trust\n'
            f'auth_file = {self.folder}/users.txt\n'
            f'admin_users = {self.user}\n'
            f'pool_mode = {self.mode}\n'
            f'default_pool_size = {self.pool_size}\n'
            'min_pool_size = 0\n'
            'reserve_pool_size = 0\n'
            f'max_client_conn = {self.max_clients}\n'
            f'max_db_connections = {self.pool_size}\n'
            'server_check_query =\n'
            # Each transaction to the least recently used idle server session:
            # whatever assumes a session then fails at once, not by bad luck.
            'server_round_robin = 1\n'
            f'logfile = {self.folder}/pgbouncer.log\n'
            f'pidfile = {self.folder}/pgbouncer.pid\n'
        )
        for path in self.folder.iterdir():
            shutil.chown(path, RUN_AS)
        # In the foreground, a child of this process: stopped by its pid and
        # reaped here, never left running or a zombie.
        self.process = subprocess.Popen(
            [str(PGBOUNCER), '-q', str(config)],
            user=RUN_AS,
            group=pwd.getpwnam(RUN_AS).pw_gid,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.pid = self.process.pid
        deadline = time.monotonic() + 20
        while not self._accepts():
            if self.process.poll() is not None or time.monotonic() > deadline:
                log = self.log()
                self.stop()
                raise RuntimeError(f'pgbouncer did not start on port {self.port}:\n{log}')
            time.sleep(0.05)
        return self

    def _accepts(self):
        try:
            with socket.create_connection(('127.0.0.1', self.port), timeout=1):
                return True
        except OSError:
            return False

    def stop(self):
        """Stop PgBouncer by its pid (SIGINT: at once), and remove its folder."""
        if self.process is not None:
            if self.process.poll() is None:
                self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
            self.process = self.pid = None
        if self.folder is not None:
            shutil.rmtree(self.folder, ignore_errors=True)
            self.folder = None

    def log(self):
        path = self.folder and self.folder / 'pgbouncer.log'
        return path.read_text() if path and path.exists() else ''

    def show(self, what):
        """``SHOW <what>`` on the admin console: a list of dicts."""
        import psycopg  # noqa: PLC0415

        with psycopg.connect(
            host='127.0.0.1', port=self.port, dbname='pgbouncer', user=self.user, autocommit=True,
            cursor_factory=psycopg.ClientCursor,
        ) as connection, connection.cursor() as cursor:
            cursor.execute(f'SHOW {what}')
            names = [column.name for column in cursor.description]
            return [dict(zip(names, row)) for row in cursor.fetchall()]

    def warm(self, sessions=3):
        """Open `sessions` server sessions at once (transactions held
        together), so that round robin has several to hand out."""
        import psycopg  # noqa: PLC0415

        clients = [
            psycopg.connect(host='127.0.0.1', port=self.port, dbname=self.database, user=self.user)
            for _ in range(sessions)
        ]
        try:
            for client in clients:
                client.execute('SELECT 1')  # each holds its server until it ends its transaction
            for client in clients:
                client.rollback()  # ended cleanly: a server left mid-transaction is closed
        finally:
            for client in clients:
                client.close()

    def server_connections(self):
        """Server connections of the pool now, in any state."""
        return sum(
            pool['sv_active'] + pool['sv_idle'] + pool['sv_used'] + pool['sv_tested'] + pool['sv_login']
            for pool in self.show('POOLS')
            if pool['database'] == self.database
        )

