"""@task functions the Tasks backend tests enqueue (tests/tasks)."""

import builtins
import datetime as dt

from modelqueue import Abort, Cancel, Retry
from modelqueue.exceptions import TimeLimitExceeded
from modelqueue.tasks import retry_policy
from modelqueue.tasks.compat import task

#: Labels of the tasks `remember` ran in this process, in order.
RAN = []


@task
def add(a, b):
    return a + b


@task
def remember(label):
    RAN.append(label)
    return label


@task(queue_name='emails')
def send_email(address):
    return f'sent to {address}'


@task
def fail(message):
    raise ValueError(message)


@task
def raise_modelqueue(kind):
    raise {'retry': Retry, 'abort': Abort, 'cancel': Cancel}[kind]()


@task
def give_a_set():
    return {1, 2}


@task(takes_context=True)
def with_context(context, value):
    return {'id': context.task_result.id, 'attempt': context.attempt, 'value': value}


@task(takes_context=True)
def context_class(context):
    """The dotted path of the class of the context the task was given."""
    return f'{type(context).__module__}.{type(context).__qualname__}'


@task
async def add_later(a, b):
    return a + b


@task(backend='retrying')
def keep_failing(message):
    """Fails at every attempt, on the backend that retries plain exceptions."""
    raise ValueError(message)


@task(backend='retrying')
def fail_then_succeed(marker_path):
    """Fails on the first attempt, succeeds on the next (a file marks the first)."""
    import pathlib  # noqa: PLC0415

    marker = pathlib.Path(marker_path)
    if not marker.exists():
        marker.write_text('failed once')
        raise RuntimeError('first attempt')
    return 'second attempt'


@task
def sleep_then_return(seconds):
    import time  # noqa: PLC0415

    time.sleep(seconds)
    return seconds


def _note_execution(label):
    """Append a line to the file MODELQUEUE_TEST_LOG names, if any: one per run."""
    import os  # noqa: PLC0415

    path = os.environ.get('MODELQUEUE_TEST_LOG')
    if path:
        with open(path, 'a') as log:
            log.write(f'{label}\n')
    RAN.append(label)


@task
def raise_poison(kind):
    """Raise the poison exception `kind` of tests.testapp.actions.POISON_ERRORS."""
    from .actions import poison_error  # noqa: PLC0415

    _note_execution(f'raise_poison {kind}')
    raise poison_error(kind)


#: Return values no database stores (NaN, infinity: not JSON), or some do
#: not (a NUL: PostgreSQL; a lone surrogate: PostgreSQL and MariaDB).
POISON_VALUES = {
    'nan': float('nan'),
    'infinity': {'total': float('inf')},
    'nul': 'before\x00after',
    'surrogate': ['caf\udce9'],
}


@task
def return_poison(kind):
    """Return the poison value `kind` of POISON_VALUES."""
    _note_execution(f'return_poison {kind}')
    return POISON_VALUES[kind]


@task
def charge_card(label):
    """A task that must never run twice: it notes each run."""
    _note_execution(f'charge_card {label}')
    return label


@task
def fail_hugely(size):
    """Raise a ValueError whose message is `size` characters long."""
    raise ValueError('E' * size)


@task
def poison_from_spec(label, data):
    """Note the run as `label`; then return the value `data` encodes (base64
    of a pickle of ('return', value)) or raise the poison it describes."""
    from .actions import build_poison, decode_poison  # noqa: PLC0415

    _note_execution(label)
    spec = decode_poison(data)
    if spec[0] == 'return':
        return spec[1]
    raise build_poison(spec)


@task
def echo(label, *args, **kwargs):
    """Note the run as `label`; return the arguments."""
    _note_execution(label)
    return [args, kwargs]


@task
def return_hugely(size):
    """Note the run; return a text `size` characters long."""
    _note_execution(f'return_hugely {size}')
    return 'x' * size


@task(backend='backoff')
def raise_builtin(name):
    """Raise the built-in exception `name` (the 'backoff' backend's policy decides)."""
    raise getattr(builtins, name)(name)


@task(backend='backoff')
@retry_policy(retry_on=[KeyError], backoff=dt.timedelta(seconds=7))
def raise_builtin_own_policy(name):
    """raise_builtin, with a policy of its own: KeyError retries, after 7 s."""
    raise getattr(builtins, name)(name)


@retry_policy(give_up_on=ValueError)
@task(backend='retrying', takes_context=True)
def fail_until_attempt(context, succeed_at, error='RuntimeError'):
    """Fail (with the built-in `error`) until the attempt `succeed_at`; return the attempts seen."""
    if context.attempt < succeed_at:
        raise getattr(builtins, error)(f'attempt {context.attempt}')
    return context.attempt


@task(backend='retrying', takes_context=True)
def sleep_until_attempt(context, succeed_at):
    """Sleep a minute (for the time limit to stop) at every attempt before
    `succeed_at`; return the attempt it got through at."""
    import time  # noqa: PLC0415

    if context.attempt < succeed_at:
        time.sleep(60)
    return context.attempt


@retry_policy(give_up_on=TimeLimitExceeded)
@task(backend='retrying', takes_context=True)
def sleep_until_attempt_giving_up_on_the_time_limit(context, succeed_at):
    """sleep_until_attempt, with a policy that gives up on the time limit."""
    import time  # noqa: PLC0415

    if context.attempt < succeed_at:
        time.sleep(60)
    return context.attempt


@task(takes_context=True)
def first_attempt_waits_at_the_gate(context):
    """On its first attempt, write MODELQUEUE_TEST_GATE + '.started' and wait
    until the gate opens (tests.support.gates); return the attempt it ran as."""
    import os  # noqa: PLC0415
    import pathlib  # noqa: PLC0415
    import time  # noqa: PLC0415

    if context.attempt == 1:
        gate = pathlib.Path(os.environ['MODELQUEUE_TEST_GATE'])
        pathlib.Path(f'{gate}.started').touch()
        deadline = time.monotonic() + 120
        while not gate.exists():
            if time.monotonic() > deadline:
                raise TimeoutError(f'the gate {gate} was never opened')
            time.sleep(0.02)
    return context.attempt
