"""Rows on the test app's Task queue, and the executions its actions record."""

import collections

from django.db import connection, transaction

from modelqueue import Status
from modelqueue.counters import state_totals
from modelqueue.ranges import in_states
from tests.testapp.models import Execution, Task


def waiting_tasks(count):
    """Create `count` tasks, due now with no attempt yet; return them."""
    return Task.objects.bulk_create(
        Task(data=f'task {number}', status=Status.waiting()) for number in range(count)
    )


def executions_per_task():
    """How many times an action ran on each task: {task pk: count}."""
    return collections.Counter(Execution.objects.values_list('task_id', flat=True))


def executed(count):
    """A predicate for wait_until: true once actions have run `count` times in all."""
    return lambda: Execution.objects.count() >= count


def state_counts():
    """How many tasks are in each state: {state name: count}."""
    return collections.Counter(
        Status(value).state.name for value in Task.objects.values_list('status', flat=True)
    )


def true_counts(queryset=None, field='status'):
    """Each state's COUNT on the status index, and the rows in no state (under None)."""
    queryset = Task.objects.all() if queryset is None else queryset
    found = {state.name: queryset.filter(in_states(field, state)).count() for state in Status.states}
    found[None] = queryset.count() - sum(found.values())
    return found


def counters_beside_counts():
    """The Task queue's state counters and its true counts, read in one
    REPEATABLE READ snapshot (PostgreSQL, outside a transaction)."""
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute('SET TRANSACTION ISOLATION LEVEL REPEATABLE READ')
        return state_totals(Task.objects.all(), 'status'), true_counts()
