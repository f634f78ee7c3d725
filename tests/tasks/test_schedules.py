"""Periodic schedules (modelqueue.tasks.schedules): their slots, the
declaration's checks, firing exactly once per slot, missed slots, a poison
declaration, and real worker processes racing for the same slots."""

import datetime as dt
import json
import signal

import pytest
from django.test import override_settings

from modelqueue.tasks import schedules
from modelqueue.tasks.compat import task_enqueued
from modelqueue.tasks.models import QueuedTask, ScheduleState
from modelqueue.tasks.schedules import Schedule, declared, fire_due, run_now, sync
from tests.support.processes import finish
from tests.support.waits import wait_until

UTC = dt.timezone.utc
ADD = 'tests.testapp.tasks.add'


def at(*args):
    return dt.datetime(*args, tzinfo=UTC)


def every(seconds, **options):
    return Schedule('every', ADD, every=dt.timedelta(seconds=seconds), args=(1, 2), **options)


# Slots.

def test_interval_slots_are_multiples_of_the_interval_since_the_epoch():
    schedule = every(300)
    assert schedule.next_slot(at(2026, 12, 7, 10, 2, 30)) == at(2026, 12, 7, 10, 5)
    assert schedule.next_slot(at(2026, 12, 7, 10, 5)) == at(2026, 12, 7, 10, 10)  # strictly after
    assert schedule.latest_slot(at(2026, 12, 7, 10, 5)) == at(2026, 12, 7, 10, 5)
    assert schedule.latest_slot(at(2026, 12, 7, 10, 9, 59)) == at(2026, 12, 7, 10, 5)


def test_cron_slots_are_read_in_the_schedule_s_time_zone():
    schedule = Schedule('nightly', ADD, cron='0 3 * * *', timezone='Europe/Paris')
    # 03:00 in Paris is 02:00 UTC in winter, 01:00 UTC in summer.
    assert schedule.next_slot(at(2026, 12, 7, 10, 0)) == at(2026, 12, 8, 2, 0)
    assert schedule.next_slot(at(2026, 7, 7, 10, 0)) == at(2026, 7, 8, 1, 0)
    assert schedule.latest_slot(at(2026, 12, 8, 2, 0, 30)) == at(2026, 12, 8, 2, 0)
    assert schedule.latest_slot(at(2026, 12, 8, 1, 59, 59)) == at(2026, 12, 7, 2, 0)


def test_a_slot_that_daylight_saving_skips_runs_once_at_the_first_minute_after_it():
    schedule = Schedule('at-half-past-two', ADD, cron='30 2 * * *', timezone='Europe/Paris')
    # 2026-03-29: Paris goes from 02:00 to 03:00 (01:00 UTC).
    first = schedule.next_slot(at(2026, 3, 28, 12, 0))
    assert first == at(2026, 3, 29, 1, 0)
    assert schedule.next_slot(first) == at(2026, 3, 30, 0, 30)


@pytest.mark.parametrize('options, message', [
    ({}, "expected one of 'cron' and 'every', found neither"),
    ({'cron': '* * * * *', 'every': dt.timedelta(minutes=1)}, "found both"),
    ({'every': dt.timedelta(milliseconds=10)},
     'every datetime.timedelta(microseconds=10000): expected a timedelta of at least 1 second'),
    ({'cron': '61 * * * *'}, "cron '61 * * * *': expected a cron expression croniter reads"),
    ({'cron': '* * * * * *'}, "cron '* * * * * *': expected five fields"),
    ({'every': dt.timedelta(minutes=1), 'timezone': 'Mars/Olympus'}, "timezone 'Mars/Olympus': expected an IANA"),
    ({'every': dt.timedelta(minutes=1), 'missed': 'all'}, "missed 'all': expected 'skip' or 'once'"),
    ({'every': dt.timedelta(minutes=1), 'args': ({1},)}, 'arguments: expected JSON values'),
])
def test_a_bad_declaration_is_refused_naming_the_schedule_and_the_value(options, message):
    with pytest.raises(ValueError, match='invalid schedule') as raised:
        Schedule('broken', ADD, **options)
    assert "'broken'" in str(raised.value)
    assert message in str(raised.value)


def test_the_setting_is_read_and_checked():
    schedules = {
        'report': {'task': ADD, 'cron': '*/5 * * * *', 'args': [1, 2], 'backend': 'default'},
        'other': {'task': ADD, 'every': dt.timedelta(hours=1), 'backend': 'retrying'},
    }
    with override_settings(MODELQUEUE_SCHEDULES=schedules, TIME_ZONE='Europe/Paris'):
        found = declared('default')
        assert [s.name for s in found] == ['report']
        assert found[0].timezone == 'Europe/Paris'  # TIME_ZONE when the schedule names none
        assert found[0].args == (1, 2)
        assert len(declared()) == 2
    with override_settings(MODELQUEUE_SCHEDULES={'x': {'task': ADD, 'every': dt.timedelta(1), 'when': 1}}):
        with pytest.raises(ValueError, match="invalid schedule 'x' option 'when': expected one of"):
            declared()
    with override_settings(MODELQUEUE_SCHEDULES=['x']):
        with pytest.raises(ValueError, match="invalid MODELQUEUE_SCHEDULES"):
            declared()


# Firing, in this process.

@pytest.mark.django_db
def test_a_slot_is_enqueued_once_with_the_task_s_arguments():
    schedule = every(60)
    sync([schedule], 'default', at(2026, 12, 7, 10, 0, 30))
    assert ScheduleState.objects.get().next_slot == at(2026, 12, 7, 10, 1)
    sent = []
    task_enqueued.connect(lambda task_result, **kwargs: sent.append(task_result.id), weak=False, dispatch_uid='t')
    try:
        assert fire_due([schedule], 'default', at(2026, 12, 7, 10, 0, 59)) == []
        assert fire_due([schedule], 'default', at(2026, 12, 7, 10, 1, 0, 500)) == ['every']
        assert fire_due([schedule], 'default', at(2026, 12, 7, 10, 1, 1)) == []  # the same slot: taken
    finally:
        task_enqueued.disconnect(dispatch_uid='t')
    task = QueuedTask.objects.get()
    assert sent == [str(task.pk)]  # task_enqueued, as for any enqueue
    assert (task.task_path, task.args) == (ADD, [1, 2])
    state = ScheduleState.objects.get()
    assert state.last_slot == at(2026, 12, 7, 10, 1)
    assert state.next_slot == at(2026, 12, 7, 10, 2)
    assert state.last_task_id == str(task.pk)
    assert state.last_error == ''


@pytest.mark.django_db
def test_more_due_schedules_than_a_chunk_all_fire_in_one_pass():
    count = 2 * schedules.CHUNK + 7
    many = [Schedule(f's{n:03}', ADD, every=dt.timedelta(seconds=60), args=(n, 0)) for n in range(count)]
    sync(many, 'default', at(2026, 12, 7, 10, 0, 30))
    fired = fire_due(many, 'default', at(2026, 12, 7, 10, 1, 1))
    assert sorted(fired) == [s.name for s in many]
    assert sorted(args[0] for args in QueuedTask.objects.values_list('args', flat=True)) == list(range(len(many)))


@pytest.mark.django_db
def test_a_process_that_read_the_slot_before_another_took_it_enqueues_nothing():
    schedule = every(60)
    sync([schedule], 'default', at(2026, 12, 7, 10, 0, 30))
    # Both read next_slot 10:01; the first moves it on, the second's UPDATE finds no row.
    seen = ScheduleState.objects.get().next_slot
    assert schedules._fire([(schedule, seen, seen)], 'default', at(2026, 12, 7, 10, 1)) == ['every']
    assert schedules._fire([(schedule, seen, seen)], 'default', at(2026, 12, 7, 10, 1)) == []
    assert QueuedTask.objects.count() == 1  # the loser's task was deleted in its transaction


@pytest.mark.django_db
@pytest.mark.parametrize('missed, enqueued', [('skip', 0), ('once', 1)])
def test_missed_slots_are_skipped_or_run_once(missed, enqueued):
    schedule = every(3600, missed=missed)
    sync([schedule], 'default', at(2026, 12, 7, 9, 0, 30))
    # The workers were down from 9:59 to 10:30: the 10:00 slot is missed.
    fire_due([schedule], 'default', at(2026, 12, 7, 10, 30, 30))
    assert QueuedTask.objects.count() == enqueued
    assert ScheduleState.objects.get().next_slot == at(2026, 12, 7, 11, 0)
    # The next slot runs as usual.
    assert fire_due([schedule], 'default', at(2026, 12, 7, 11, 0, 1)) == ['every']
    assert QueuedTask.objects.count() == enqueued + 1


@pytest.mark.django_db
def test_a_slot_late_within_its_grace_still_runs_when_missed_slots_are_skipped():
    schedule = every(3600, grace=dt.timedelta(seconds=30))
    sync([schedule], 'default', at(2026, 12, 7, 9, 0, 30))
    assert fire_due([schedule], 'default', at(2026, 12, 7, 10, 0, 29)) == ['every']
    # Workers back after a run of missed slots: the latest, late by less than its grace, runs.
    assert fire_due([schedule], 'default', at(2026, 12, 7, 13, 0, 29)) == ['every']
    assert QueuedTask.objects.count() == 2


@pytest.mark.django_db
def test_a_disabled_schedule_fires_nothing():
    schedule = every(60)
    sync([schedule], 'default', at(2026, 12, 7, 10, 0, 30))
    ScheduleState.objects.update(enabled=False)
    assert fire_due([schedule], 'default', at(2026, 12, 7, 10, 1, 1)) == []
    assert not QueuedTask.objects.exists()


@pytest.mark.django_db
def test_a_schedule_no_longer_declared_fires_nothing_and_keeps_its_row():
    kept, dropped = every(60), Schedule('dropped', ADD, every=dt.timedelta(seconds=60))
    sync([kept, dropped], 'default', at(2026, 12, 7, 10, 0, 30))
    assert fire_due([kept], 'default', at(2026, 12, 7, 10, 1, 1)) == ['every']
    assert QueuedTask.objects.count() == 1
    assert ScheduleState.objects.get(name='dropped').next_slot == at(2026, 12, 7, 10, 1)


@pytest.mark.django_db
def test_a_changed_declaration_moves_the_next_slot():
    sync([every(3600)], 'default', at(2026, 12, 7, 10, 0, 30))
    assert ScheduleState.objects.get().next_slot == at(2026, 12, 7, 11, 0)
    sync([every(60)], 'default', at(2026, 12, 7, 10, 0, 40))
    assert ScheduleState.objects.get().next_slot == at(2026, 12, 7, 10, 1)


@pytest.mark.django_db
def test_a_schedule_whose_task_cannot_be_enqueued_moves_on_and_keeps_the_error():
    schedule = Schedule('poison', 'os.system', every=dt.timedelta(seconds=60), args=('true',))
    sync([schedule], 'default', at(2026, 12, 7, 10, 0, 30))
    assert fire_due([schedule], 'default', at(2026, 12, 7, 10, 1, 1)) == ['poison']
    state = ScheduleState.objects.get()
    assert state.next_slot == at(2026, 12, 7, 10, 2)
    assert "invalid task path 'os.system'" in state.last_error
    assert state.last_task_id == ''
    assert not QueuedTask.objects.exists()


@pytest.mark.django_db
def test_run_now_enqueues_outside_the_slots_and_leaves_the_next_slot():
    schedule = every(60)
    sync([schedule], 'default', at(2026, 12, 7, 10, 0, 30))
    task_id = run_now(schedule, 'default')
    assert QueuedTask.objects.get().pk == int(task_id)
    state = ScheduleState.objects.get()
    assert state.next_slot == at(2026, 12, 7, 10, 1)
    assert state.last_task_id == task_id


# Real worker processes.

TASKS_WORKER = ('-m', 'django', 'modelqueue_worker', '--tasks', '--queue=emails')


@pytest.mark.processes
@pytest.mark.timeout(90)
def test_worker_processes_enqueue_each_slot_exactly_once(spawn):
    """Four worker processes (two of them with two children) fire a schedule
    every second: one task per slot, each enqueued within its second."""
    env = {
        'DJANGO_SETTINGS_MODULE': 'tests.settings',
        'MODELQUEUE_TEST_SCHEDULES': json.dumps({'tick': {'task': ADD, 'every': 1, 'args': [1, 2]}}),
    }
    options = ([], [], ['--concurrency=2'], ['--concurrency=2'])
    workers = [spawn(*TASKS_WORKER, *extra, env=env) for extra in options]
    wait_until(lambda: QueuedTask.objects.filter(task_path=ADD).count() >= 8, 60, 'eight slots enqueued')
    for worker in workers:
        worker.send_signal(signal.SIGTERM)
    logs = [finish(worker) for worker in workers]
    assert all(status == 0 for status, _log in logs), logs
    tasks = list(QueuedTask.objects.filter(task_path=ADD).order_by('enqueued_at'))
    seconds = [int(task.enqueued_at.timestamp()) for task in tasks]
    # One task per second, no second twice and none skipped between the first and the last.
    assert len(seconds) == len(set(seconds)), seconds
    assert seconds == list(range(seconds[0], seconds[0] + len(seconds))), seconds
    state = ScheduleState.objects.get(name='tick')
    assert int(state.last_slot.timestamp()) == seconds[-1]
    assert state.last_task_id == str(tasks[-1].pk)
