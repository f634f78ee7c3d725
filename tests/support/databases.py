"""More ``DATABASES`` aliases for the time of a test, in this process.

For the topology tests: a read-only "replica" alias on the test database, a
primary and replica pair of the test's own (tests/support/replica.py), an
alias through PgBouncer. Each alias is a copy of the test's default
database settings (its test database's NAME included) with the keys given,
given to this thread's connections, and removed again, its connection
closed, when the block ends. It is not added to ``settings.DATABASES``
(which is Django's ``connections.settings`` itself): Django's test case
lets a test use a connection that is not among them ("dynamically
created"), where it would refuse an alias the test did not declare. So the
alias works in this thread only, and a check of the settings does not see
it (``override_settings(DATABASES=...)`` shows it to those alone).

A child process gets the same aliases through the environment:
:func:`child_env` (read by tests/settings.py).
"""

import contextlib
import copy
import json

from django.db import connections
from django.db.utils import load_backend

#: A session of this alias refuses every write, as a hot standby does
#: ("cannot execute UPDATE in a read-only transaction").
READ_ONLY = {'OPTIONS': {'options': '-c default_transaction_read_only=on'}}


def settings_of(**changes):
    database = copy.deepcopy(connections['default'].settings_dict)
    database.update(copy.deepcopy(changes))
    return database


@contextlib.contextmanager
def extra_databases(**aliases):
    """Add the `aliases` (alias: changes to the default's settings) for the block."""
    added = {}
    try:
        for alias, changes in aliases.items():
            database = settings_of(**changes)
            added[alias] = load_backend(database['ENGINE']).DatabaseWrapper(database, alias)
            setattr(connections._connections, alias, added[alias])
        yield
    finally:
        for alias, wrapper in added.items():
            wrapper.close()
            delattr(connections._connections, alias)


def child_env(router=None, **aliases):
    """The environment that gives a child process `aliases` (as
    :func:`extra_databases` takes them) and the `router` (a dotted path)."""
    env = {'MODELQUEUE_TEST_DATABASES': json.dumps(aliases)}
    if router is not None:
        env['MODELQUEUE_TEST_ROUTER'] = router
    return env
