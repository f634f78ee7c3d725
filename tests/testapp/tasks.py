"""@task functions the Tasks backend tests enqueue (tests/tasks)."""

from modelqueue import Abort, Cancel, Retry
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
