"""When a supervised worker process is replaced: ``--max-tasks-per-child``
and ``--max-memory-per-child``.

A long-lived Python process can grow: a leak in an action or a library, a
cache that never empties, fragmented memory. As Celery's options of the
same names do, a worker process that has run `max_tasks` tasks, or whose
resident memory has reached `max_memory` KiB after a task, claims no new
row, lets its threads finish the tasks they hold, and exits with
:data:`RECYCLE_STATUS`; its supervising parent
(:mod:`modelqueue.worker.supervisor`) starts another in its place at once,
without counting it as a crash. ``--max-tasks`` keeps its meaning: the
tasks of every process, replaced ones included, together.

>>> limits = ChildLimits(max_tasks=2)
>>> limits.took_one(), limits.took_one()
(None, 'it has run 2 tasks (--max-tasks-per-child 2)')
>>> parse_memory('200M'), parse_memory('512000'), parse_memory('1G')
(204800, 512000, 1048576)
"""

from __future__ import annotations

import os
import re
import resource

__all__ = ['RECYCLE_STATUS', 'ChildLimits', 'parse_memory', 'resident_kib']

#: The exit status of a worker process that reached a limit: "replace me".
RECYCLE_STATUS = 75

_MEMORY = re.compile(r'(\d+)\s*([KMG]?)(?:i?B)?', re.IGNORECASE)
_UNITS = {'': 1, 'K': 1, 'M': 1024, 'G': 1024 * 1024}


def parse_memory(value: str | int) -> int:
    """KiB from ``--max-memory-per-child``: KiB as Celery takes it, or a
    number with K, M or G. ValueError names what is expected."""
    match = _MEMORY.fullmatch(str(value).strip())
    if match is None or int(match[1]) < 1:
        raise ValueError(
            f'invalid --max-memory-per-child {value!r}: expected the resident memory in KiB'
            " (an integer of at least 1), or a number with K, M or G ('200M')"
        )
    return int(match[1]) * _UNITS[match[2].upper()]


def resident_kib() -> int:
    """This process's resident memory now, in KiB (Linux's /proc), or its
    peak elsewhere (``getrusage``)."""
    try:
        with open('/proc/self/statm') as statm:
            pages = int(statm.read().split()[1])
        return pages * os.sysconf('SC_PAGE_SIZE') // 1024
    except (OSError, ValueError, IndexError):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


class ChildLimits:
    """The limits of one worker process; `active` when there is one."""

    def __init__(self, max_tasks: int | None = None, max_memory: int | None = None) -> None:
        self.max_tasks = max_tasks
        self.max_memory = max_memory  # KiB
        self.tasks = 0

    @property
    def active(self) -> bool:
        return self.max_tasks is not None or self.max_memory is not None

    def took_one(self) -> str | None:
        """Count a task this process ran; return why the process is due to
        be replaced, or None."""
        self.tasks += 1
        if self.max_tasks is not None and self.tasks >= self.max_tasks:
            return f'it has run {self.tasks} tasks (--max-tasks-per-child {self.max_tasks})'
        if self.max_memory is not None:
            resident = resident_kib()
            if resident >= self.max_memory:
                return (
                    f'its resident memory is {resident} KiB after {self.tasks} tasks'
                    f' (--max-memory-per-child {self.max_memory} KiB)'
                )
        return None
