"""A worker's housekeeping: the heartbeat thread prunes failure records and lost workers' rows."""

import datetime as dt

import pytest
from django.contrib.contenttypes.models import ContentType

from modelqueue import now
from modelqueue.models import FailureRecord, WorkerHeartbeat
from modelqueue.worker import housekeeping
from modelqueue.worker.heartbeat import Heartbeat
from modelqueue.worker.housekeeping import LOST_KEPT, Housekeeping
from tests.support.waits import wait_until
from tests.testapp.models import Task

WAIT_SECONDS = 20


def heartbeat_row(pid, last_seen):
    return WorkerHeartbeat.objects.create(
        host='box', pid=pid, content_type=ContentType.objects.get_for_model(Task), field='status',
        started=last_seen - dt.timedelta(hours=1), last_seen=last_seen, interval=5,
    )


def old_failure_records(count):
    """`count` failure records older than MODELQUEUE_FAILURE_MAX_AGE (30 days)."""
    task = Task.objects.create(data='failed long ago')
    ended = now() - dt.timedelta(days=40)
    FailureRecord.objects.bulk_create(
        FailureRecord(
            content_type=ContentType.objects.get_for_model(Task), object_id=str(task.pk),
            field='status', attempt=1, outcome='waiting', exception='builtins.ValueError',
            message=str(number), started=ended, ended=ended, duration=dt.timedelta(0),
        )
        for number in range(count)
    )


@pytest.mark.django_db
def test_pruning_keeps_live_workers_heartbeat_rows_and_lost_ones_for_a_day():
    """Only a row last seen more than LOST_KEPT ago goes: a live worker's
    row stays, and a lost one stays a day for the admin to show it lost."""
    current = now()
    heartbeat_row(1, current)  # beating
    heartbeat_row(2, current - dt.timedelta(seconds=30))  # a few beats late: lost, shown
    heartbeat_row(3, current - LOST_KEPT + dt.timedelta(minutes=5))  # lost for almost a day
    heartbeat_row(4, current - LOST_KEPT - dt.timedelta(minutes=5))  # lost for over a day
    Housekeeping(Task, 'status').prune()
    assert sorted(WorkerHeartbeat.objects.values_list('pid', flat=True)) == [1, 2, 3]


@pytest.mark.django_db(transaction=True)
def test_the_heartbeat_thread_prunes_again_and_again(monkeypatch):
    """A heartbeat with its worker's housekeeping prunes failure records and
    lost workers' rows from its own thread, every PRUNE_SECONDS, while the
    worker does nothing else."""
    monkeypatch.setattr(housekeeping, 'PRUNE_SECONDS', 0.2)
    old_failure_records(3)
    heartbeat_row(99, now() - LOST_KEPT - dt.timedelta(hours=1))
    heartbeat = Heartbeat(
        Task.objects.all(), 'status', interval=0.05, chores=Housekeeping(Task, 'status')
    ).start()
    try:
        own = heartbeat.pk
        wait_until(
            lambda: not FailureRecord.objects.exists()
            and list(WorkerHeartbeat.objects.values_list('pk', flat=True)) == [own],
            WAIT_SECONDS,
            'the first pruning pass',
        )
        old_failure_records(2)  # written after the first pass: the next one deletes them
        wait_until(lambda: not FailureRecord.objects.exists(), WAIT_SECONDS, 'a later pruning pass')
    finally:
        heartbeat.stop()
    assert not WorkerHeartbeat.objects.exists()  # stopped: its own row deleted
