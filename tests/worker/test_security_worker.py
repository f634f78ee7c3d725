"""Hostile arguments to the worker command: a clear error, never a traceback.

Out-of-range numbers must stop the command with a CommandError that names
the value, before anything runs; the largest accepted value must not crash
the worker later.
"""

import signal

import pytest
from django.core.management import CommandError, call_command

from modelqueue import Status, now
from tests.support.processes import finish, idle, start_worker
from tests.support.waits import wait_until
from tests.testapp.models import Execution, Task

ACTION = 'tests.testapp.actions.record'


@pytest.mark.django_db
@pytest.mark.parametrize(
    ('option', 'value'),
    [
        ('--timeout', '1e20'),
        ('--delay', '1e20'),
        ('--timeout', 'inf'),
        ('--delay', '-1'),
        ('--sleep', '0'),
        ('--sleep', '1e308'),
        ('--retry', '9'),
        ('--max-tasks', '-3'),
        ('--concurrency', '0'),
        # Past the shared 64-bit counter, 2**64 ran nothing and exited 0.
        ('--max-tasks', str(2**63)),
        ('--max-tasks', str(2**64)),
        # A second worker would reclaim the task in hand and run it twice.
        ('--timeout', '0'),
        ('--concurrency', '1000000'),
    ],
)
def test_out_of_range_numbers_are_command_errors_naming_them(option, value):
    task = Task.objects.create(data='untouched', status=Status.waiting(now(), 0))
    with pytest.raises(CommandError) as info:
        call_command('modelqueue_worker', 'testapp.Task', 'status', ACTION, option, value, '--burst')
    message = str(info.value)
    assert option.strip('-') in message and (value in message or str(float(value)) in message), message
    assert Task.objects.get(pk=task.pk).status == task.status
    assert not Execution.objects.exists()


@pytest.mark.processes
@pytest.mark.django_db(transaction=True)
def test_the_longest_sleep_keeps_an_idle_worker_waiting(spawn):
    """The largest accepted --sleep keeps the idle worker waiting, and SIGTERM stops it."""
    worker = start_worker(spawn, '--sleep', '3153600000', '--no-listen')
    # In its wait (its SIGTERM handler installed), however slow its start.
    wait_until(lambda: idle(worker.pid), 60, 'the worker to wait', child=worker)
    with pytest.raises(AssertionError, match='timed out'):
        wait_until(lambda: worker.poll() is not None, 3, 'the idle worker to exit')
    worker.send_signal(signal.SIGTERM)
    status, log = finish(worker, timeout=30)
    assert status == 0, log
    assert 'Traceback' not in log, log
