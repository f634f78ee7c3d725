"""How long a worker waits after a database error before it tries again.

The pause doubles with each failure in a row, from the first to the longest
of :data:`BACKOFF`, with a quarter of jitter either way so that many workers
that lost the database together do not come back together:

>>> 0.375 <= backoff_seconds(1) <= 0.625, 0.75 <= backoff_seconds(2) <= 1.25
(True, True)
>>> 22.5 <= backoff_seconds(10) <= 37.5  # the longest, jittered
True
"""

from __future__ import annotations

import logging
import os
import random

from django.db import Error as DatabaseError
from django.db import connections

logger = logging.getLogger('modelqueue.worker')

__all__ = ['BACKOFF', 'backoff_seconds', 'close_connections', 'database_error_pause']

#: The first and the longest pause after a database error, in seconds.
BACKOFF = (0.5, 30.0)


def backoff_seconds(failures: int) -> float:
    """The pause after the `failures`-th database error in a row."""
    first, longest = BACKOFF
    return min(longest, first * 2 ** (failures - 1)) * random.uniform(0.75, 1.25)


def database_error_pause(error: BaseException, failures: int) -> float:
    """Log a database error and close this thread's connections; return the
    pause before trying again (:func:`backoff_seconds`)."""
    pause = backoff_seconds(failures)
    logger.warning(
        'Worker %s: database error %s: %s; reconnecting in %.1fs',
        os.getpid(),
        type(error).__name__,
        str(error).strip(),
        pause,
    )
    close_connections()
    return pause


def close_connections() -> None:
    """Close this thread's database connections, even broken ones."""
    for connection in connections.all(initialized_only=True):
        try:
            connection.close()
        except DatabaseError:
            pass
