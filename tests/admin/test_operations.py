"""The operator operations themselves (modelqueue.admin.operations), without the admin pages."""

import pytest
from django.contrib import messages

from modelqueue import State, Status
from modelqueue.admin import operations
from tests.testapp.models import Task

pytestmark = pytest.mark.django_db


class Admin:
    """What Operation.report needs of a ModelAdmin: message_user, recorded."""

    def __init__(self):
        self.messages = []

    def message_user(self, request, message, level=messages.INFO):
        self.messages.append((level, str(message)))


def test_rows_are_read_one_by_one_up_to_the_limit_and_counted_past_it(monkeypatch):
    monkeypatch.setattr(operations, 'ROWS_LOGGED_ONE_BY_ONE', 2)
    tasks = [Task.objects.create(data=str(n), status=Status.waiting(n)) for n in range(3)]
    before, changed, rows = operations.CANCEL.apply(
        Task.objects.filter(pk__in=[t.pk for t in tasks[:2]]), 'status'
    )
    assert changed == 2
    assert sorted((row.pk, status) for row, status in rows) == [
        (t.pk, Status.waiting(n)) for n, t in enumerate(tasks[:2])
    ]
    assert before['waiting'] == 2
    Task.objects.update(status=Status.waiting(0))
    before, changed, rows = operations.CANCEL.apply(Task.objects.all(), 'status')
    assert (changed, rows) == (3, None)
    assert {Status(s).state for s in Task.objects.values_list('status', flat=True)} == {
        State.canceled
    }


def test_a_selection_with_no_row_in_the_operations_states_is_reported_as_left_alone():
    Task.objects.create(data='done', status=Status.finished())
    Task.objects.create(data='done', status=Status.finished())
    admin = Admin()
    before, changed, _ = operations.CANCEL.apply(Task.objects.all(), 'status')
    operations.CANCEL.report(admin, None, Task, 'status', before, changed)
    assert admin.messages == [
        (messages.SUCCESS, 'Canceled 0 tasks (status), previously 0.'),
        (messages.WARNING, 'Left as they were (status): 2 finished.'),
    ]


def test_each_operation_keeps_its_name_states_and_messages():
    cancel = operations.OPERATIONS['cancel']
    assert (cancel.name, cancel.states) == ('cancel', (State.created, State.waiting, State.working))
    assert str(cancel.verb) == 'canceled'
    assert 'Canceled %(count)s' in str(cancel.done)


class ElsewhereRouter:
    """Routes every query to a database that does not exist: only a query
    that takes its database from the queryset itself still runs."""

    def db_for_read(self, model, **hints):
        return 'elsewhere'

    db_for_write = db_for_read


def test_an_operation_runs_on_the_database_of_its_queryset(settings):
    task = Task.objects.create(data='t', status=Status.waiting(0))
    settings.DATABASE_ROUTERS = [ElsewhereRouter()]
    before, changed, rows = operations.CANCEL.apply(Task.objects.using('default'), 'status')
    assert (before['waiting'], changed, [row.pk for row, _ in rows]) == (1, 1, [task.pk])
    settings.DATABASE_ROUTERS = []
    assert Status(Task.objects.get(pk=task.pk).status).state == State.canceled
