"""Actions that tests hand to run() and to worker processes."""

import os
import signal
import threading
import time

import modelqueue

from .models import Execution


def record(task):
    """Count one execution of `task` by this process."""
    Execution.objects.create(task=task, pid=os.getpid())


def record_slowly(task):
    """Count one execution, then take a moment, so workers overlap."""
    record(task)
    time.sleep(float(os.environ.get('MODELQUEUE_TEST_ACTION_SECONDS', '0.2')))


def record_and_note(task):
    """Count one execution, take a moment, and change the task's note."""
    record_slowly(task)
    task.note = f'done by {os.getpid()}'


def fail_sometimes(task):
    """Finish, retry, abort or cancel by the task's data."""
    record(task)
    outcome = task.data.split(':')[0]
    if outcome == 'retry':
        raise modelqueue.Retry
    if outcome == 'abort':
        raise modelqueue.Abort
    if outcome == 'cancel':
        raise modelqueue.Cancel


def fail_or_follow_data(task):
    """Raise an error of the action's own when the task's data says 'fail'."""
    if task.data == 'fail':
        record(task)
        raise RuntimeError(f'task {task.pk} failed on purpose')
    fail_sometimes(task)


def record_and_stamp(task):
    """Count one execution and note when the action started (UTC, ISO)."""
    started = modelqueue.now()
    record(task)
    task.note = started.isoformat()
    time.sleep(float(os.environ.get('MODELQUEUE_TEST_ACTION_SECONDS', '0')))


def append_to_log(task):
    """Count one execution in a file, without touching the database."""
    with open(os.environ['MODELQUEUE_TEST_LOG'], 'a') as log:
        log.write(f'{task.pk} {os.getpid()}\n')
    time.sleep(float(os.environ.get('MODELQUEUE_TEST_ACTION_SECONDS', '0')))


def record_thread(task):
    """Count one execution, take a moment, and note the thread that ran it."""
    record_slowly(task)
    task.note = threading.current_thread().name


def crash_the_process(task):
    """Count one execution, then end this process as the kernel's OOM killer would."""
    record(task)
    os.kill(os.getpid(), signal.SIGKILL)


def record_and_wait_for_the_gate(task):
    """Count one execution, wait until the test opens the gate, and change the note.

    The execution row says the action has begun; it cannot end before the
    file MODELQUEUE_TEST_GATE exists (see tests.support.gates), so whatever
    the test does meanwhile happens mid-action, however slow the machine.
    After MODELQUEUE_TEST_GATE_SECONDS (120) the action fails instead.
    """
    record(task)
    gate = os.environ['MODELQUEUE_TEST_GATE']
    deadline = time.monotonic() + float(os.environ.get('MODELQUEUE_TEST_GATE_SECONDS', '120'))
    while not os.path.exists(gate):
        if time.monotonic() > deadline:
            raise TimeoutError(f'the gate {gate} was never opened')
        time.sleep(0.02)
    task.note = f'done by {os.getpid()}'
