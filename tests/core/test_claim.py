"""The claim: which row run() takes, and that workers never wait for each other."""

import datetime as dt
import threading
import time

import pytest
from django.db import connection, transaction
from django.db.models import IntegerField, Value

from modelqueue import State, Status, claim, now, run
from modelqueue.status import MAX_ATTEMPTS
from tests.testapp.models import Delivery, Execution, Recipient, Task

WAIT = 10  # seconds: a bound on every wait
TIMEOUT = dt.timedelta(minutes=10)
SECOND = dt.timedelta(seconds=1)

# The claim in one statement (UPDATE ... RETURNING) and the claim by
# SELECT ... FOR UPDATE SKIP LOCKED, which run() uses for a queryset that
# defers a field.
CLAIMS = {
    'one statement': lambda: Task.objects.all(),
    'select for update': lambda: Task.objects.defer('note'),
}


class RowLocker(threading.Thread):
    """Another worker in the middle of its claim: holds a row lock until told to let go.

    Or another transaction that holds a row of the `model` a queue's queryset joins.
    """

    def __init__(self, pk, model=Task):
        super().__init__(daemon=True)
        self.pk = pk
        self.model = model
        self.locked = threading.Event()
        self.release = threading.Event()

    def run(self):
        try:
            with transaction.atomic():
                list(self.model.objects.select_for_update().filter(pk=self.pk))
                self.locked.set()
                self.release.wait(WAIT)
        finally:
            connection.close()


@pytest.mark.vendors('postgresql')
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize('claim', CLAIMS.values(), ids=CLAIMS.keys())
def test_a_claim_skips_a_row_another_worker_has_locked_instead_of_waiting(claim):
    first = Task.objects.create(data='first', status=Status.waiting(0))
    second = Task.objects.create(data='second', status=Status.waiting(1))
    locker = RowLocker(first.pk)
    locker.start()
    try:
        assert locker.locked.wait(WAIT), 'the other worker never locked its row'
        # Without SKIP LOCKED the claim waits for the lock, `held` seconds,
        # then takes the first row once it is let go.
        held = 3
        threading.Timer(held, locker.release.set).start()
        started = time.monotonic()
        claimed = run(claim(), 'status', lambda task: None)
        took = time.monotonic() - started
    finally:
        locker.release.set()
        locker.join(WAIT)
    assert claimed is not None and claimed.pk == second.pk
    assert took < held
    assert Status(Task.objects.get(pk=first.pk).status).state == State.waiting


@pytest.fixture
def at():
    return now()


@pytest.mark.django_db
def test_a_queues_claim_is_compiled_once_and_kept(at):
    first = claim.claim_statement(Task.objects.all(), 'status', TIMEOUT, at)
    assert first.reusable
    assert claim.claim_statement(Task.objects.all(), 'status', TIMEOUT, at) is first
    other = claim.claim_statement(Task.objects.filter(data='other'), 'status', TIMEOUT, at)
    assert other is not first
    assert claim.claim_statement(Task.objects.all(), 'status', TIMEOUT, at + SECOND) is first


@pytest.mark.django_db
def test_a_kept_claim_takes_the_bounds_of_its_own_time(at):
    statement = claim.claim_statement(Task.objects.all(), 'status', TIMEOUT, at)
    later = at + dt.timedelta(days=1)
    params = statement.params_at(later, TIMEOUT)
    assert len(params) == len(statement.params)
    for (index,), bound in zip(statement.positions, claim.claim_bounds(later, TIMEOUT)):
        assert params[index] == bound
    assert [p for i, p in enumerate(params) if [i] not in statement.positions] == [
        p for i, p in enumerate(statement.params) if [i] not in statement.positions
    ]
    assert claim.claim_bounds(later, TIMEOUT) == (
        Status.working(later, 0),
        Status.waiting(later, MAX_ATTEMPTS),
        Status.working(later - TIMEOUT, MAX_ATTEMPTS),
    )


@pytest.mark.django_db
def test_a_claim_whose_filter_equals_a_bound_is_compiled_every_time(at):
    queryset = Task.objects.exclude(status=Status.waiting(at, MAX_ATTEMPTS))
    statement = claim.claim_statement(queryset, 'status', TIMEOUT, at)
    assert not statement.reusable
    assert statement.params_at(at + SECOND, TIMEOUT) == statement.params
    assert claim.claim_statement(queryset, 'status', TIMEOUT, at) is not statement


class Unhashable:
    __hash__ = None


@pytest.mark.django_db
def test_a_claim_whose_filter_cannot_be_hashed_is_compiled_every_time(at):
    queryset = Task.objects.filter(data='a')
    queryset.query.where.children[0].rhs = Unhashable()
    statement = claim.claim_statement(queryset, 'status', TIMEOUT, at)
    assert statement.sql.startswith('UPDATE')
    assert claim.claim_statement(queryset, 'status', TIMEOUT, at) is not statement
    assert not claim._statements


@pytest.mark.django_db
def test_the_cache_is_emptied_when_full(at, monkeypatch):
    monkeypatch.setattr(claim, 'KEPT', 2)
    kept = [claim.claim_statement(Task.objects.filter(data=str(n)), 'status', TIMEOUT, at)
            for n in range(2)]
    assert len(claim._statements) == 2
    claim.claim_statement(Task.objects.filter(data='2'), 'status', TIMEOUT, at)
    assert len(claim._statements) == 1
    assert claim.claim_statement(Task.objects.filter(data='0'), 'status', TIMEOUT, at) is not kept[0]


@pytest.mark.django_db
@pytest.mark.parametrize('claim_of', CLAIMS.values(), ids=CLAIMS.keys())
def test_every_claim_takes_the_lowest_due_row_keeps_its_attempts_and_loads_it_whole(claim_of):
    Task.objects.create(data='scheduled', status=Status.waiting(now() + dt.timedelta(hours=1), 0))
    Task.objects.create(data='later', note='n', status=Status.waiting(5, 0))
    first = Task.objects.create(data='first', note='kept', status=Status.waiting(4, 7))
    seen = []
    before = now()
    claimed = run(claim_of(), 'status', lambda task: seen.append(
        (task.pk, task.data, task.note, Status(task.status))))
    (pk, data, note, status), = seen
    assert (pk, data, note) == (first.pk, 'first', 'kept')
    assert claimed.pk == first.pk
    assert status.state == State.working and status.attempts == 7
    assert before - dt.timedelta(seconds=1) <= status.parse()[1] <= now()


@pytest.mark.django_db
@pytest.mark.parametrize('claim_of', CLAIMS.values(), ids=CLAIMS.keys())
def test_among_equal_statuses_a_claim_follows_the_querysets_order_by(claim_of):
    rows = [Task.objects.create(data=str(n), status=Status.waiting(5, 0)) for n in range(4)]
    # Rewritten rows move in the table (and on PostgreSQL to the end of the
    # index's run of equal keys), so without a tie-break they come last.
    for row in rows[:2]:
        Task.objects.filter(pk=row.pk).update(status=Status.canceled(5, 0))
        Task.objects.filter(pk=row.pk).update(status=Status.waiting(5, 0))
    claimed = [run(claim_of().order_by('pk'), 'status', lambda task: None).pk for _ in rows]
    assert claimed == [row.pk for row in rows]
    Task.objects.update(status=Status.waiting(5, 0))
    claimed = [run(claim_of().order_by('-pk'), 'status', lambda task: None).pk for _ in rows]
    assert claimed == [row.pk for row in reversed(rows)]


@pytest.mark.django_db
def test_a_claim_without_order_by_sorts_by_the_status_alone():
    """No tie-break by default: with only an index on the status, ORDER BY
    status, pk would make the database sort every row of one status."""
    compiled = claim.claim_statement(Task.objects.all(), 'status', TIMEOUT, now())
    ordering = compiled.sql.split('ORDER BY', 1)[1].split('LIMIT', 1)[0]
    assert '"id"' not in ordering and '`id`' not in ordering, ordering


@pytest.mark.django_db
@pytest.mark.parametrize('claim_of', CLAIMS.values(), ids=CLAIMS.keys())
def test_every_claim_of_an_empty_queue_returns_none(claim_of):
    Task.objects.create(data='scheduled', status=Status.waiting(now() + dt.timedelta(hours=1), 0))
    assert run(claim_of(), 'status', pytest.fail) is None


@pytest.mark.django_db
@pytest.mark.vendors('sqlite', 'postgresql')  # MariaDB has no UPDATE ... RETURNING
@pytest.mark.parametrize(
    'queryset',
    [
        lambda: Execution.objects.select_related('task'),
        lambda: Task.objects.annotate(n=Value(1, output_field=IntegerField())),
        lambda: Task.objects.extra(select={'n': '1'}),
        lambda: Task.objects.distinct(),
        lambda: Task.objects.defer('note'),
        lambda: Task.objects.only('status'),
        lambda: Task.objects.values('pk'),
        lambda: Task.objects.prefetch_related('execution_set'),
        lambda: Task.objects.union(Task.objects.all()),
    ],
)
def test_only_plain_rows_of_one_table_are_claimed_in_one_statement(queryset):
    assert claim.claims_in_one_statement(Task.objects.all())
    assert not claim.claims_in_one_statement(queryset())


# A queue of deliveries, claimed in one statement and (with select_related)
# by the other path: SELECT ... FOR UPDATE SKIP LOCKED, or compare-and-swap
# on SQLite.
DELIVERY_CLAIMS = {
    'one statement': lambda: Delivery.objects.filter(recipient__address='a@example.com'),
    'other path': lambda: Delivery.objects.select_related('recipient').filter(recipient__address='a@example.com'),
}


def delivery(**values):
    recipient = Recipient.objects.create(address='a@example.com')
    return Delivery.objects.create(recipient=recipient, **values)


@pytest.mark.django_db
@pytest.mark.parametrize('claim_of', DELIVERY_CLAIMS.values(), ids=DELIVERY_CLAIMS.keys())
def test_every_claim_loads_the_row_as_a_query_loads_it(claim_of):
    """Each column through the database's converters and the field's from_db_value."""
    row = delivery(urgent=True, amount='12.50', payload={'to': ['x']}, label='blue', note='n')
    seen = []
    run(claim_of(), 'status', seen.append)
    (claimed,) = seen
    loaded = Delivery.objects.get(pk=row.pk)
    for field in Delivery._meta.concrete_fields:
        if field.name == 'status':
            continue
        value, expected = getattr(claimed, field.attname), getattr(loaded, field.attname)
        assert (value, type(value)) == (expected, type(expected)), field.name
    assert (claimed.label.vendor, claimed.label.column) == (connection.vendor, 'label')
    assert claimed._state.db == 'default' and claimed._state.adding is False


@pytest.mark.vendors('postgresql')
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize('claim_of', DELIVERY_CLAIMS.values(), ids=DELIVERY_CLAIMS.keys())
def test_a_lock_on_a_row_the_queryset_joins_hides_no_due_row(claim_of):
    """The claim locks the queue's row only (FOR UPDATE OF), not the rows it
    joins: another transaction holding the recipient does not make the
    delivery look taken."""
    row = delivery()
    locker = RowLocker(row.recipient_id, Recipient)
    locker.start()
    try:
        assert locker.locked.wait(WAIT), 'the other transaction never locked the recipient'
        claimed = run(claim_of(), 'status', lambda task: None)
    finally:
        locker.release.set()
        locker.join(WAIT)
    assert claimed is not None and claimed.pk == row.pk
