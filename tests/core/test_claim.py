"""The claim: which row run() takes, and that workers never wait for each other."""

import threading
import time

import pytest
from django.db import connection, transaction

from modelqueue import State, Status, run
from tests.testapp.models import Task

WAIT = 10  # seconds: a bound on every wait

# The claim in one statement (UPDATE ... RETURNING) and the claim by
# SELECT ... FOR UPDATE SKIP LOCKED, which run() uses for a queryset that
# defers a field.
CLAIMS = {
    'one statement': lambda: Task.objects.all(),
    'select for update': lambda: Task.objects.defer('note'),
}


class RowLocker(threading.Thread):
    """Another worker in the middle of its claim: holds a row lock until told to let go."""

    def __init__(self, pk):
        super().__init__(daemon=True)
        self.pk = pk
        self.locked = threading.Event()
        self.release = threading.Event()

    def run(self):
        try:
            with transaction.atomic():
                list(Task.objects.select_for_update().filter(pk=self.pk))
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
