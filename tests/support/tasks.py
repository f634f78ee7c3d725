"""Rows on the test app's Task queue, and the executions its actions record."""

import collections

from modelqueue import Status
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
