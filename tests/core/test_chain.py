"""run_chained(): a worker's completion and its next claim, in one statement
on PostgreSQL, with the completion as fenced as run()'s."""

import datetime as dt
import logging

import pytest
from django.db import connection

from modelqueue import Abort, State, Status, now
from modelqueue.pauses import claims_read_pauses
from modelqueue.queue import check_run_arguments, run_chained
from tests.testapp.models import Task

pytestmark = pytest.mark.django_db

TIMEOUT = dt.timedelta(minutes=10)


def make(data, status=None):
    return Task.objects.create(data=data, status=Status.waiting() if status is None else status)


def status_of(task):
    return Status(Task.objects.values_list('status', flat=True).get(pk=task.pk))


def chained(action, held=None, claim_next=lambda: True, queryset=None):
    queryset = Task.objects.order_by('pk') if queryset is None else queryset
    attname = check_run_arguments(queryset, 'status', action, 3, TIMEOUT, dt.timedelta(0))
    return run_chained(queryset, attname, action, 3, TIMEOUT, dt.timedelta(0), held, claim_next)


@pytest.mark.vendors('postgresql')
def test_a_completion_claims_the_next_row_in_the_same_statement(django_assert_num_queries):
    first, second = make('first'), make('second')
    seen = []
    claims_read_pauses(connection.alias)  # asked once per process: not a claim's query
    with django_assert_num_queries(2):  # the claim; the outcome with the next claim
        task, following = chained(lambda task: seen.append(task.data))
    assert task.pk == first.pk and status_of(first).state == State.finished
    held, claimed = following
    assert held.pk == second.pk and held.data == 'second'
    assert status_of(second) == claimed and claimed.state == State.working
    with django_assert_num_queries(1):  # the held row runs; its outcome's claim finds nothing
        task, following = chained(lambda task: seen.append(task.data), held=(held, claimed))
    assert task.pk == second.pk and following is None
    assert seen == ['first', 'second']
    assert status_of(second).parse()[0::2] == (State.finished, 1)


@pytest.mark.vendors('postgresql')
def test_a_chained_completion_keeps_an_operator_cancel_and_still_claims(caplog):
    task, other = make('task'), make('other')

    def action(model):
        Task.objects.filter(pk=model.pk).update(status=Status.canceled())
        model.note = 'changed by the action'

    with caplog.at_level(logging.WARNING, logger='modelqueue'):
        done, following = chained(action)
    assert status_of(task).state == State.canceled
    assert Task.objects.get(pk=task.pk).note == ''
    assert 'changed while its action ran' in caplog.text
    assert Status(done.status).state == State.working  # what this worker wrote, not the outcome
    assert following[0].pk == other.pk and status_of(other).state == State.working


@pytest.mark.vendors('postgresql')
def test_a_chained_completion_writes_changed_fields_and_keeps_concurrent_edits():
    task = make('original')
    make('next')

    def action(model):
        Task.objects.filter(pk=model.pk).update(data='edited by an operator')
        model.note = 'written by the action'

    done, following = chained(action)
    saved = Task.objects.get(pk=task.pk)
    assert (saved.data, saved.note) == ('edited by an operator', 'written by the action')
    assert Status(saved.status).state == State.finished == Status(done.status).state
    assert following is not None


@pytest.mark.vendors('postgresql')
def test_a_chained_claim_that_sees_a_stalled_row_gives_it_back():
    stalled = make('stalled', Status.working(now() - dt.timedelta(minutes=11), 1))
    due = make('due')
    claimed = Status.working(now(), 0)
    held = make('held', claimed)
    _, following = chained(lambda task: None, held=(held, claimed))
    assert status_of(held).state == State.finished
    assert following[0].pk == due.pk
    assert status_of(stalled).parse()[0::2] == (State.waiting, 2)


def test_claim_next_is_asked_only_after_a_success_and_only_where_one_statement_can_do_both():
    make('abort')
    make('decline')
    make('left')
    asked = []

    def claim_next():
        asked.append(True)
        return False

    def abort(task):
        raise Abort

    _, following = chained(abort, claim_next=claim_next)
    assert asked == [] and following is None  # a failure's outcome (and record) goes alone
    _, following = chained(lambda task: None, claim_next=claim_next)
    assert following is None
    assert asked == ([True] if connection.vendor == 'postgresql' else [])
    assert sorted(Status(status).state for status in Task.objects.values_list('status', flat=True)) == [
        State.waiting, State.waiting, State.finished,
    ]
