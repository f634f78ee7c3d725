"""run() semantics, one rule at a time."""

import datetime as dt
import logging

import pytest
from django.db import OperationalError, connections, models
from django.db.models import CharField, Value

from modelqueue import Abort, Cancel, Retry, State, Status, now, queue, run
from tests.testapp.models import Task, Upload

pytestmark = pytest.mark.django_db

SECOND = dt.timedelta(seconds=1)


def make(data='task', status=None, **fields):
    return Task.objects.create(
        data=data, status=Status.waiting() if status is None else status, **fields
    )


def status_of(task):
    return Status(Task.objects.values_list('status', flat=True).get(pk=task.pk))


def assert_recent(value, seconds=5):
    assert isinstance(value, dt.datetime), value
    assert abs(value - now()) < dt.timedelta(seconds=seconds), value


def test_empty_queue_returns_none():
    assert run(Task.objects.all(), 'status', pytest.fail) is None


def test_success_finishes_the_row_and_returns_the_model():
    task = make()
    seen = []

    def action(model):
        seen.append((model.pk, status_of(model).state))

    result = run(Task.objects.all(), 'status', action)
    assert isinstance(result, Task) and result.pk == task.pk
    assert seen == [(task.pk, State.working)]
    state, when, attempts = status_of(task).parse()
    assert (state, attempts) == (State.finished, 1)
    assert_recent(when)
    assert result.status == status_of(task)


def test_lowest_status_runs_first_and_integer_priority_before_timestamps():
    later = make('later', Status.waiting(now() - 10 * SECOND))
    earlier = make('earlier', Status.waiting(now() - 20 * SECOND))
    urgent = make('urgent', Status.waiting(5))
    order = []
    while run(Task.objects.all(), 'status', lambda task: order.append(task.data)):
        pass
    assert order == [urgent.data, earlier.data, later.data]


def test_only_due_waiting_rows_run():
    make('future', Status.waiting(now() + dt.timedelta(hours=1)))
    for state in ('created', 'working', 'finished', 'canceled'):
        make(state, Status.combine(state, now(), 0))
    assert run(Task.objects.all(), 'status', pytest.fail) is None


def test_queryset_filters_are_respected():
    make('skip')
    wanted = make('take')
    result = run(Task.objects.filter(data='take'), 'status', lambda task: None)
    assert result.pk == wanted.pk
    assert run(Task.objects.filter(data='take'), 'status', pytest.fail) is None


def test_each_queryset_claims_only_its_own_rows():
    first, second = make('first'), make('second')
    assert run(Task.objects.filter(data='second'), 'status', lambda task: None).pk == second.pk
    assert run(Task.objects.filter(data='second'), 'status', pytest.fail) is None
    assert run(Task.objects.filter(data='first'), 'status', lambda task: None).pk == first.pk


@pytest.mark.parametrize(
    'queryset',
    [
        lambda: Task.objects.annotate(tag=Value('tagged', output_field=CharField())),
        lambda: Task.objects.only('data', 'status'),
        pytest.param(
            lambda: Task.objects.select_related(),
            # Task has no relation to name; the no-argument form, deprecated
            # in Django 6.1, is what still reaches this path.
            marks=pytest.mark.filterwarnings('ignore:Calling select_related'),
        ),
    ],
    ids=['annotated', 'deferred', 'select_related'],
)
def test_querysets_that_load_more_or_less_than_plain_rows(queryset):
    task = make('special')
    seen = []

    def action(model):
        seen.append((model.pk, model.data, getattr(model, 'tag', None)))
        model.data = 'written'

    assert run(queryset(), 'status', action).pk == task.pk
    tag = 'tagged' if 'tag' in queryset().query.annotations else None
    assert seen == [(task.pk, 'special', tag)]
    saved = Task.objects.get(pk=task.pk)
    assert (saved.data, Status(saved.status).state) == ('written', State.finished)
    assert run(queryset(), 'status', pytest.fail) is None


def test_retry_does_not_count_an_attempt_and_waits_for_delay():
    task = make(status=Status.waiting(now(), 2))

    def action(model):
        raise Retry

    run(Task.objects.all(), 'status', action, delay=dt.timedelta(minutes=5))
    state, when, attempts = status_of(task).parse()
    assert (state, attempts) == (State.waiting, 2)
    assert_recent(when - dt.timedelta(minutes=5))


def test_retry_delay_overrides_run_delay():
    task = make()

    def action(model):
        raise Retry(dt.timedelta(hours=2))

    run(Task.objects.all(), 'status', action, delay=dt.timedelta(minutes=5))
    assert_recent(status_of(task).parse()[1] - dt.timedelta(hours=2))


def test_abort_counts_an_attempt_then_cancels_past_retry():
    task = make()

    def action(model):
        raise Abort

    for attempt in range(1, 3):
        run(Task.objects.all(), 'status', action, retry=2)
        assert status_of(task).parse()[0::2] == (State.waiting, attempt)
    run(Task.objects.all(), 'status', action, retry=2)
    state, when, attempts = status_of(task).parse()
    assert (state, attempts) == (State.canceled, 3)
    assert_recent(when)
    assert run(Task.objects.all(), 'status', action, retry=2) is None


def test_abort_delay_overrides_run_delay():
    task = make()

    def action(model):
        raise Abort(dt.timedelta(minutes=30))

    run(Task.objects.all(), 'status', action)
    state, when, attempts = status_of(task).parse()
    assert (state, attempts) == (State.waiting, 1)
    assert_recent(when - dt.timedelta(minutes=30))


def test_cancel_cancels_and_counts():
    task = make()

    def action(model):
        raise Cancel

    run(Task.objects.all(), 'status', action)
    assert status_of(task).parse()[0::2] == (State.canceled, 1)


def test_other_exceptions_count_and_are_reraised():
    task = make()

    def action(model):
        raise KeyError('boom')

    for attempt in (1, 2):
        with pytest.raises(KeyError, match='boom'):
            run(Task.objects.all(), 'status', action, retry=1, delay=SECOND * 0)
        expected = State.waiting if attempt <= 1 else State.canceled
        assert status_of(task).parse()[0::2] == (expected, attempt)


def test_keyboard_interrupt_gives_the_row_back():
    task = make()

    def action(model):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run(Task.objects.all(), 'status', action)
    assert status_of(task).parse()[0::2] == (State.waiting, 1)


def test_failure_delay_schedules_the_retry():
    task = make()

    def action(model):
        raise Abort

    run(Task.objects.all(), 'status', action, delay=dt.timedelta(minutes=10))
    assert_recent(status_of(task).parse()[1] - dt.timedelta(minutes=10))
    assert run(Task.objects.all(), 'status', pytest.fail) is None


def test_retry_zero_cancels_on_first_failure():
    task = make()

    def action(model):
        raise Abort

    run(Task.objects.all(), 'status', action, retry=0)
    assert status_of(task).parse()[0::2] == (State.canceled, 1)


def test_attempts_never_overflow_the_digit():
    task = make(status=Status.waiting(now(), 9))

    def action(model):
        raise Abort

    run(Task.objects.all(), 'status', action, retry=8)
    assert status_of(task).parse()[0::2] == (State.canceled, 9)
    retried = make(status=Status.waiting(now(), 9))
    run(Task.objects.filter(pk=retried.pk), 'status', lambda task: None)
    assert status_of(retried).parse()[0::2] == (State.finished, 9)


def test_timeout_reclaims_a_stalled_row_and_counts_the_attempt():
    stalled = make('stalled', Status.working(now() - dt.timedelta(minutes=11), 1))
    seen = []
    run(
        Task.objects.all(),
        'status',
        lambda task: seen.append(task.data),
        timeout=dt.timedelta(minutes=10),
    )
    assert seen == ['stalled']
    assert status_of(stalled).parse()[0::2] == (State.finished, 3)


def test_timeout_reclaim_respects_delay_and_retry():
    delayed = make('delayed', Status.working(now() - dt.timedelta(minutes=11), 0))
    exhausted = make('exhausted', Status.working(now() - dt.timedelta(minutes=12), 2))
    for _ in range(2):
        run(
            Task.objects.all(),
            'status',
            pytest.fail,
            retry=2,
            timeout=dt.timedelta(minutes=10),
            delay=dt.timedelta(minutes=1),
        )
    assert status_of(exhausted).parse()[0::2] == (State.canceled, 3)
    state, when, attempts = status_of(delayed).parse()
    assert (state, attempts) == (State.waiting, 1)
    assert_recent(when - dt.timedelta(minutes=1))


def test_timeout_reclaims_a_stalled_row_while_claiming_a_due_one():
    stalled = make('stalled', Status.working(now() - dt.timedelta(minutes=11), 1))
    make('due', Status.waiting(now() - dt.timedelta(minutes=1)))
    seen = []
    run(
        Task.objects.all(),
        'status',
        lambda task: seen.append(task.data),
        timeout=dt.timedelta(minutes=10),
    )
    assert seen == ['due']
    assert status_of(stalled).parse()[0::2] == (State.waiting, 2)


def test_a_claim_while_several_rows_are_stalled_gives_back_exactly_one():
    stalled = [make(f'stalled {n}', Status.working(now() - dt.timedelta(minutes=11 + n), 0)) for n in range(3)]
    make('due', Status.waiting(now() - dt.timedelta(minutes=1)))
    seen = []
    run(Task.objects.all(), 'status', lambda task: seen.append(task.data), timeout=dt.timedelta(minutes=10))
    assert seen == ['due']
    states = sorted(status_of(task).state for task in stalled)
    assert states == [State.waiting, State.working, State.working]


def test_timeout_does_not_reclaim_a_row_within_its_timeout():
    busy = make('busy', Status.working(now() - dt.timedelta(minutes=9), 0))
    assert run(Task.objects.all(), 'status', pytest.fail, timeout=dt.timedelta(minutes=10)) is None
    assert status_of(busy).state == State.working


def test_fenced_completion_keeps_an_operator_cancel(caplog):
    task = make()

    def action(model):
        Task.objects.filter(pk=model.pk).update(status=Status.canceled())
        model.note = 'changed by the action'

    with caplog.at_level(logging.WARNING, logger='modelqueue'):
        run(Task.objects.all(), 'status', action)
    assert status_of(task).state == State.canceled
    assert Task.objects.get(pk=task.pk).note == ''
    assert 'changed while its action ran' in caplog.text


def test_fenced_completion_keeps_an_operator_requeue():
    task = make()
    requeued = Status.waiting(now() + dt.timedelta(minutes=1), 0)

    def action(model):
        Task.objects.filter(pk=model.pk).update(status=requeued)

    run(Task.objects.all(), 'status', action)
    assert status_of(task) == requeued


def test_completion_writes_changed_fields_and_keeps_concurrent_edits():
    task = make('original')

    def action(model):
        Task.objects.filter(pk=model.pk).update(data='edited by an operator')
        model.note = 'written by the action'

    run(Task.objects.all(), 'status', action)
    saved = Task.objects.get(pk=task.pk)
    assert saved.data == 'edited by an operator'
    assert saved.note == 'written by the action'
    assert Status(saved.status).state == State.finished


def test_several_queue_fields_are_independent():
    upload = Upload.objects.create(name='photo')
    assert run(Upload.objects.all(), 'publish_status', pytest.fail) is None
    assert run(Upload.objects.all(), 'scan_status', lambda model: None).pk == upload.pk
    upload.refresh_from_db()
    assert Status(upload.scan_status).state == State.finished
    assert Status(upload.publish_status).state == State.created


@pytest.mark.parametrize(
    'kwargs, message',
    [
        ({'retry': 9}, r"invalid retry 9: expected an integer from 0 through 8"),
        ({'retry': -1}, r'invalid retry -1'),
        ({'retry': '3'}, r"invalid retry '3'"),
        ({'retry': True}, r'invalid retry True'),
        ({'timeout': 60}, r'invalid timeout 60: expected a datetime.timedelta'),
        ({'delay': -SECOND}, r'invalid delay .*zero or more'),
        ({'field': 'missing'}, r"invalid field 'missing': testapp.Task has no such field"),
        ({'field': 'data'}, r"invalid field 'data': expected a StatusField"),
        ({'action': 'not callable'}, r"invalid action 'not callable'"),
    ],
)
def test_bad_arguments_raise_value_error_and_change_nothing(kwargs, message):
    task = make()
    before = status_of(task)
    arguments = {'field': 'status', 'action': lambda model: None, **kwargs}
    with pytest.raises(ValueError, match=message):
        run(Task.objects.all(), **arguments)
    assert status_of(task) == before



def test_default_retry_is_three_so_the_fourth_failure_cancels():
    task = make()
    for _ in range(3):
        run(Task.objects.all(), 'status', lambda model: (_ for _ in ()).throw(Abort()))
        assert status_of(task).state == State.waiting
    run(Task.objects.all(), 'status', lambda model: (_ for _ in ()).throw(Abort()))
    assert status_of(task).parse()[0::2] == (State.canceled, 4)


def test_timeout_reclaim_gives_back_a_row_whose_next_attempt_is_the_last_allowed():
    stalled = make('stalled', Status.working(now() - dt.timedelta(minutes=11), 1))
    run(Task.objects.all(), 'status', pytest.fail, retry=2, timeout=dt.timedelta(minutes=10),
        delay=dt.timedelta(hours=1))
    assert status_of(stalled).parse()[0::2] == (State.waiting, 2)


def test_timeout_reclaim_logs_what_it_gave_back(caplog):
    stalled = make('stalled', Status.working(now() - dt.timedelta(minutes=11), 1))
    with caplog.at_level(logging.WARNING, logger='modelqueue'):
        run(Task.objects.all(), 'status', lambda task: None, timeout=dt.timedelta(minutes=10))
    assert [record.getMessage() for record in caplog.records] == [
        f'Reclaimed testapp.Task pk={stalled.pk} from a worker that exceeded the timeout'
        ' of 0:10:00: now waiting'
    ]


def test_a_fenced_off_completion_logs_the_row_and_the_outcome_it_kept_from_writing(caplog):
    task = make()

    def action(model):
        Task.objects.filter(pk=model.pk).update(status=Status.canceled())

    with caplog.at_level(logging.WARNING, logger='modelqueue'):
        run(Task.objects.all(), 'status', action)
    assert [record.getMessage() for record in caplog.records] == [
        f'testapp.Task pk={task.pk} changed while its action ran (canceled, requeued or'
        ' reclaimed by a timeout); leaving it as it is instead of writing finished'
    ]


def test_a_completion_writes_only_its_row_when_another_holds_the_same_status():
    # Two claims in the same millisecond with the same attempts write the same status.
    task = make('mine')
    twin = make('twin', Status.waiting(now() + dt.timedelta(days=1)))

    def action(model):
        Task.objects.filter(pk=twin.pk).update(status=model.status)
        model.note = 'mine'

    run(Task.objects.filter(pk=task.pk), 'status', action)
    assert Task.objects.get(pk=twin.pk).note == ''
    assert status_of(twin).state == State.working
    assert status_of(task).state == State.finished


@pytest.mark.vendors('sqlite', 'postgresql')  # MariaDB claims in a SKIP LOCKED transaction
def test_a_claim_with_nothing_stalled_costs_one_statement_and_the_completion_one(
    django_assert_num_queries,
):
    make()
    with django_assert_num_queries(2):
        run(Task.objects.all(), 'status', lambda task: None)


@pytest.mark.vendors('sqlite', 'postgresql')  # MariaDB claims in a SKIP LOCKED transaction
def test_an_empty_queue_costs_the_claim_and_one_look_for_stalled_rows(django_assert_num_queries):
    with django_assert_num_queries(2):
        assert run(Task.objects.all(), 'status', pytest.fail) is None


@pytest.mark.parametrize('error', [Retry, Abort])
def test_retry_and_abort_carry_their_delay_and_name_it_when_it_is_wrong(error):
    assert error(dt.timedelta(minutes=5)).args == (dt.timedelta(minutes=5),)
    assert error().args == (None,)
    with pytest.raises(ValueError, match=r'^invalid delay 5: expected a datetime.timedelta'):
        error(5)


class LockedThenDone:
    """An attempt_write that finds SQLite locked `times` times, then writes."""

    def __init__(self, times, message='database is locked'):
        self.times = times
        self.message = message
        self.calls = 0

    def __call__(self):
        self.calls += 1
        if self.calls <= self.times:
            raise OperationalError(self.message)
        return 'written'


@pytest.fixture
def on_sqlite(monkeypatch):
    """_write as it behaves on SQLite, whatever the test database."""
    monkeypatch.setattr(connections['default'], 'vendor', 'sqlite')


def test_a_locked_sqlite_write_is_retried_with_a_doubling_randomized_backoff(
    monkeypatch, caplog, on_sqlite
):
    sleeps, spreads = [], []
    monkeypatch.setattr(queue.time, 'sleep', sleeps.append)
    monkeypatch.setattr(queue.random, 'uniform', lambda low, high: spreads.append((low, high)) or 0.5)
    write = LockedThenDone(9)
    with caplog.at_level(logging.DEBUG, logger='modelqueue'):
        assert queue.write_retrying('default', write) == 'written'
    assert write.calls == 10
    delays = [0.005, 0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.5, 0.5]
    assert sleeps == pytest.approx([delay * 0.5 for delay in delays])
    assert spreads == [(0.5, 1.5)] * 9
    assert [record.getMessage() for record in caplog.records] == [
        f'SQLite database is locked; retrying in {delay:.3f}s' for delay in delays
    ]


@pytest.mark.parametrize('message', ['database is locked', 'database table is busy'])
def test_a_busy_or_locked_sqlite_write_is_retried(monkeypatch, on_sqlite, message):
    monkeypatch.setattr(queue.time, 'sleep', lambda seconds: None)
    write = LockedThenDone(1, message)
    assert queue.write_retrying('default', write) == 'written'
    assert write.calls == 2


def test_other_database_errors_are_not_retried(monkeypatch, on_sqlite):
    monkeypatch.setattr(queue.time, 'sleep', pytest.fail)
    write = LockedThenDone(1, 'no such table: x')
    with pytest.raises(OperationalError, match='no such table'):
        queue.write_retrying('default', write)
    assert write.calls == 1


def test_only_sqlite_writes_are_retried(monkeypatch):
    monkeypatch.setattr(queue.time, 'sleep', pytest.fail)
    monkeypatch.setattr(connections['default'], 'vendor', 'postgresql')
    write = LockedThenDone(1)
    with pytest.raises(OperationalError, match='locked'):
        queue.write_retrying('default', write)
    assert write.calls == 1


def test_the_select_for_update_claim_takes_the_lowest_due_row_and_keeps_its_attempts(monkeypatch):
    # PostgreSQL and MariaDB take this path for a queryset that is not
    # claimed in one statement; SQLite ignores FOR UPDATE, so it runs here too.
    features = connections['default'].features
    monkeypatch.setattr(features, 'has_select_for_update_skip_locked', True, raising=False)
    make('later', Status.waiting(5, 0))
    first = make('first', Status.waiting(4, 6))
    seen = []
    claimed = run(Task.objects.defer('note'), 'status', lambda task: seen.append(Status(task.status)))
    assert claimed.pk == first.pk
    assert seen[0].state == State.working and seen[0].attempts == 6
    assert_recent(seen[0].parse()[1])
    assert status_of(first).parse()[0::2] == (State.finished, 7)
    Task.objects.all().delete()
    assert run(Task.objects.defer('note'), 'status', pytest.fail) is None


class Stamped(models.Model):
    """A model with an auto_now field, which no test model has; never saved (no table)."""

    status = models.BigIntegerField()
    updated = models.DateTimeField(auto_now=True, null=True)

    class Meta:
        app_label = 'testapp'
        managed = False

    def __str__(self):
        return str(self.status)


def test_the_completion_writes_auto_now_fields():
    row = Stamped(pk=1, status=Status.working(), updated=None)
    before = queue.snapshot(row)
    values = queue.changed_values(row, before, 'status')
    assert set(values) == {'updated'}
    assert_recent(values['updated'])
    assert row.updated == values['updated']
