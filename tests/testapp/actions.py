"""Actions that tests hand to run() and to worker processes."""

import datetime as dt
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


def record_after_the_gate_if_data_says(task):
    """Count one execution once the action is done: at once, or, for a task
    whose data is 'gate', once the test opens the gate (the file
    MODELQUEUE_TEST_GATE + '.started' says the action waits there). An
    execution row is then a run that completed, which a kill cannot leave
    half-counted (tests/worker/test_batch.py)."""
    if task.data == 'gate':
        gate = os.environ['MODELQUEUE_TEST_GATE']
        with open(gate + '.started', 'a') as started:
            started.write(f'{task.pk} {os.getpid()}\n')
        deadline = time.monotonic() + float(os.environ.get('MODELQUEUE_TEST_GATE_SECONDS', '120'))
        while not os.path.exists(gate):
            if time.monotonic() > deadline:
                raise TimeoutError(f'the gate {gate} was never opened')
            time.sleep(0.02)
    record(task)


# Poison: exceptions whose text no database stores as it is, or that cannot
# be turned into text at all, and values a database refuses to store.


class UnreadableError(Exception):
    """An exception whose ``__str__`` raises."""

    def __str__(self):
        raise RuntimeError('this message cannot be read')


class NotTextError(Exception):
    """An exception whose ``__str__`` returns `value`, not a string."""

    def __init__(self, value=42):
        super().__init__()
        self.value = value

    def __str__(self):
        return self.value


def poison_error(kind):
    """A fresh exception of the poison `kind` (see POISON_ERRORS)."""
    return POISON_ERRORS[kind]()


#: Exceptions an action may raise, by kind: a file name that is not UTF-8
#: (a lone surrogate), a message that cannot be read or is not text, a NUL.
POISON_ERRORS = {
    'surrogate': lambda: OSError(os.fsdecode(b'/data/caf\xe9.txt')),
    'unreadable': UnreadableError,
    'not-text': NotTextError,
    'nul': lambda: ValueError('before\x00after'),
}

#: Values an action may set on the task's note, by kind: a lone surrogate
#: (no database stores it), a NUL (PostgreSQL refuses it), 300 characters
#: (longer than the column: PostgreSQL and MariaDB refuse them).
POISON_NOTES = {
    'note-surrogate': 'caf\udce9',
    'note-nul': 'before\x00after',
    'note-too-long': 'n' * 300,
}


def record_or_poison(task):
    """Count one execution; then, if the task's data is ``poison:KIND``,
    raise the poison exception KIND or set the poison note KIND."""
    record(task)
    if not task.data.startswith('poison:'):
        return
    kind = task.data.split(':', 1)[1]
    if kind in POISON_NOTES:
        task.note = POISON_NOTES[kind]
    else:
        raise poison_error(kind)


# The fuzz test's poison, described by plain data (so a worker process can
# read it from the task's data, as base64 of a pickle: ASCII, stored by any
# database): (what, text, other).


def build_poison(spec):
    """The exception `spec` describes, or None when it describes a note."""
    what, text, other = spec
    if what == 'message':
        return ValueError(text)
    if what == 'unreadable':
        return UnreadableError()
    if what == 'not-text':
        return NotTextError(other)
    if what == 'cancel':
        return modelqueue.Cancel(text)
    if what == 'os-error':
        return OSError(2, text, other)
    if what == 'note-abort':
        return modelqueue.Abort()
    if what in ('abort-from', 'message-from-unreadable'):
        cause = ValueError(text) if what == 'abort-from' else UnreadableError()
        error = modelqueue.Abort() if what == 'abort-from' else ValueError(text)
        error.__cause__ = cause
        return error
    return None  # 'note': set the task's note to `text` ('note-abort' too, then Abort)


def encode_poison(spec):
    import base64  # noqa: PLC0415
    import pickle  # noqa: PLC0415

    return base64.b64encode(pickle.dumps(spec)).decode('ascii')


def decode_poison(data):
    import base64  # noqa: PLC0415
    import pickle  # noqa: PLC0415

    return pickle.loads(base64.b64decode(data))


def apply_poison(task, spec):
    """Set the note `spec` carries, if any; raise the exception it describes, if any."""
    if spec[0] in ('note', 'note-abort'):
        task.note = spec[1]
    error = build_poison(spec)
    if error is not None:
        raise error


def poison_from_data(task):
    """Count one execution, then apply the poison the task's data encodes."""
    record(task)
    apply_poison(task, decode_poison(task.data))


# The time limit (tests/worker/test_timelimit.py).


def record_and_sleep_unless_quick(task):
    """Count one execution, then sleep a minute unless the task's data is 'quick'."""
    record(task)
    if task.data != 'quick':
        time.sleep(60)


def record_and_hang_in_c(task):
    """Count one execution, then hang as code that never returns to Python
    does: SIGALRM blocked, so the worker's own time limit cannot interrupt it."""
    record(task)
    if task.data != 'quick':
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGALRM})
        time.sleep(60)


def _record_and_note_run(task):
    record(task)
    task.note = f'run {Execution.objects.filter(task=task).count()}'


#: A row that repeats every second: tests/core/test_repeating.py.
repeat_every_second = modelqueue.repeating(_record_and_note_run, every=dt.timedelta(seconds=1))
