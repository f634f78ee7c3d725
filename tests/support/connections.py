"""The other sessions on the test database (the workers'), and cutting them.

As a database restart or a network fault would: PostgreSQL's
pg_terminate_backend, MariaDB's KILL CONNECTION. SQLite has no sessions.
"""


def listening(connection):
    """Whether a worker's LISTEN session on this test database (PostgreSQL) is idle, waiting."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'LISTEN%%'"
            " AND state = 'idle' AND datname = current_database()"
        )
        return cursor.fetchone()[0] > 0


def server_sessions(connection):
    """Ids of the other sessions on this test database (the workers').

    PostgreSQL: backend pids from pg_stat_activity; MariaDB: connection ids
    from the process list. The test's own session is left out.
    """
    with connection.cursor() as cursor:
        if connection.vendor == 'postgresql':
            cursor.execute(
                'SELECT pid FROM pg_stat_activity'
                ' WHERE datname = current_database() AND pid <> pg_backend_pid()'
            )
        elif connection.vendor == 'mysql':
            cursor.execute(
                'SELECT id FROM information_schema.processlist'
                ' WHERE db = DATABASE() AND id <> CONNECTION_ID()'
            )
        else:
            raise ValueError(f'no server sessions on {connection.vendor}')
        return [row[0] for row in cursor.fetchall()]


def cut_sessions(connection):
    """Terminate every other session on the test database; return how many."""
    cut = 0
    with connection.cursor() as cursor:
        for session in server_sessions(connection):
            try:
                if connection.vendor == 'postgresql':
                    cursor.execute('SELECT pg_terminate_backend(%s)', [session])
                else:
                    cursor.execute(f'KILL CONNECTION {int(session)}')
                cut += 1
            except Exception as error:
                if 'Unknown thread id' not in str(error):
                    raise
    return cut
