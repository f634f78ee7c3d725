"""Poison inputs, fuzzed: exception messages, values an action sets, task
return values and arguments (any text, with NULs and lone surrogates; any
JSON-like value, NaN and infinities; huge texts and integers) through
run(), the worker loop, the Tasks backend's worker, and real worker
processes.

Nothing crashes, nothing runs again (every queue runs with retry=0, so
each row or task runs exactly once), and what is stored of a failure
round-trips or is marked as cleaned (:func:`modelqueue.text.is_cleaned`).
Hypothesis's settings bound the module to well under a minute per
database; the profile of tests/conftest.py keeps no example database.
"""

import pytest
from django.db import connection, transaction
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from modelqueue import Abort, Cancel, OutcomeNotStored, State, Status, conf, failures, run
from modelqueue.models import FailureRecord
from modelqueue.tasks.compat import TaskResultStatus
from modelqueue.tasks.models import QueuedTask
from modelqueue.tasks.worker import TaskWorker
from modelqueue.text import is_cleaned
from modelqueue.worker import Worker
from tests.support.processes import finish, start_worker
from tests.support.tasks import executions_per_task
from tests.testapp import tasks
from tests.testapp.actions import apply_poison, build_poison, encode_poison, record
from tests.testapp.models import Execution, Task


def fuzz(examples):
    """The settings of a fuzz test of `examples` examples: no deadline (an
    example writes rows and may start a process), on the loaded profile."""
    return settings(
        max_examples=examples,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture, HealthCheck.data_too_large],
    )


# -- what to fuzz -------------------------------------------------------------

#: Any character: lone surrogates and NUL included, and a few that matter more.
characters = st.one_of(
    st.characters(blacklist_categories=()),
    st.sampled_from(['\x00', '\udce9', '\ud800', '\n', '\\', ']', '\u2026']),
)
short_texts = st.text(characters, max_size=40)
#: Huge texts: up to a million of one character (stored as JSON with every
#: character escaped, still under MariaDB's 16 MB max_allowed_packet).
huge_texts = st.builds(lambda char, size: char * size, characters, st.integers(20_000, 1_000_000))
#: Texts that end as a cleaned text's marker does, as if cleaned already.
marker_like = st.builds(lambda text, note: f'{text} [modelqueue: {note}]', short_texts, short_texts)
texts = st.one_of(short_texts, short_texts, st.text(characters, max_size=3000), huge_texts, marker_like)

not_text = st.one_of(st.integers(), st.none(), st.binary(max_size=5), st.lists(st.integers(), max_size=2))
#: (what, text, other): see tests.testapp.actions.build_poison.
poisons = st.one_of(
    st.tuples(
        st.sampled_from(['message', 'cancel', 'abort-from', 'message-from-unreadable', 'note', 'note-abort']),
        texts,
        st.none(),
    ),
    st.tuples(st.just('os-error'), short_texts, short_texts),
    st.tuples(st.just('unreadable'), st.just(''), st.none()),
    st.tuples(st.just('not-text'), st.just(''), not_text),
)

json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(),  # NaN and the infinities too
    short_texts,
    st.sampled_from([1e308, -0.0, 2**63, -(2**64)]),
    # Beyond 4,300 digits Python refuses to write an integer as text (so as
    # JSON); built by map, since Hypothesis could not print them either.
    st.sampled_from([300, 4400, 5000]).map(lambda digits: 10**digits),
    st.sampled_from([300, 4400, 5000]).map(lambda digits: -(10**digits)),
)
json_values = st.recursive(
    st.one_of(json_scalars, st.text(characters, max_size=200_000)),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(short_texts, inner, max_size=4),
    max_leaves=12,
)

# -- what must hold -----------------------------------------------------------


def has_surrogates(text):
    return any('\ud800' <= char <= '\udfff' for char in text)


def storable_everywhere(text):
    """Whether every supported database stores `text` as it is."""
    return '\x00' not in text and not has_surrogates(text)


def check_fits(stored, cap):
    """`stored` is stored as it is by any database, within `cap` characters."""
    assert storable_everywhere(stored), stored[:200]
    assert len(stored) <= cap


def check_stored(stored, original, cap):
    """`stored` fits, and is `original` (a text any database stores, short
    enough and not ending as a marker does), or is marked as cleaned."""
    check_fits(stored, cap)
    if original is not None and storable_everywhere(original) and len(original) <= cap and not is_cleaned(original):
        assert stored == original
    else:
        assert is_cleaned(stored), (stored[:200], stored[-200:])


def expected_message(spec):
    """The message a failure record keeps of the poison `spec`, as it was
    raised (None when its text cannot be read: it is marked)."""
    what, text, other = spec
    if what in ('message', 'cancel'):
        return text
    if what == 'abort-from':
        return f'ValueError: {text}'
    if what == 'os-error':
        return str(OSError(2, text, other))
    if what == 'note-abort':
        return ''  # Abort() carries no message
    return None


def check_record(record, spec):
    check_stored(record.message, expected_message(spec), failures.MESSAGE_CHARS)
    check_fits(record.traceback, conf.get('MODELQUEUE_TRACEBACK_CHARS'))


def stored_note(note):
    """What this database stores of `note` in Task.note (200 characters), or
    None if it refuses it. MariaDB drops an excess tail of spaces, tabs, CRs
    and LFs silently, even in strict mode (its own behaviour, not ours)."""
    if has_surrogates(note):
        return None
    if connection.vendor == 'postgresql':
        return note if '\x00' not in note and len(note) <= 200 else None
    if connection.vendor == 'mysql':
        if len(note) <= 200:
            return note
        return note[:200] if set(note[200:]) <= set(' \t\r\n') else None
    return note


def same_json(stored, value):
    """`stored` is the JSON round trip of `value` (numbers compared as numbers:
    PostgreSQL may read 1e308 back as an integer)."""
    if isinstance(value, float) or isinstance(stored, float):
        return isinstance(stored, (int, float)) and isinstance(value, (int, float)) and float(stored) == float(value)
    if isinstance(value, (list, tuple)):
        return isinstance(stored, list) and len(stored) == len(value) and all(map(same_json, stored, value))
    if isinstance(value, dict):
        return (
            isinstance(stored, dict)
            and stored.keys() == value.keys()
            and all(same_json(stored[key], value[key]) for key in value)
        )
    return stored == value and type(stored) is type(value)


def clear():
    Execution.objects.all().delete()
    Task.objects.all().delete()
    FailureRecord.objects.all().delete()
    QueuedTask.objects.all().delete()
    tasks.RAN.clear()


def check_row(task, spec):
    """The row of `spec` ran once and ended as retry=0 says, recorded as such."""
    row = Task.objects.get(pk=task.pk)
    state, _, attempts = Status(row.status).parse()
    error = build_poison(spec)
    note = stored_note(spec[1]) if spec[0] in ('note', 'note-abort') else ''
    stored = note is not None
    if error is None and stored:
        assert (state, attempts) == (State.finished, 1) and row.note == note
        assert not FailureRecord.objects.filter(object_id=str(task.pk)).exists()
        return
    assert (state, attempts) == (State.canceled, 1)
    (record,) = FailureRecord.objects.filter(object_id=str(task.pk))
    assert record.outcome == FailureRecord.CANCELED and record.attempt == 1
    if stored:
        assert row.note == note
        check_record(record, spec)
    else:
        assert record.exception == 'modelqueue.exceptions.OutcomeNotStored' and row.note == ''
        check_fits(record.message, failures.MESSAGE_CHARS)


# -- run() ---------------------------------------------------------------------


@pytest.mark.django_db
@fuzz(60)
@given(spec=poisons)
@example(spec=('message', 'E' * 20_000_000, None))  # the issue's
@example(spec=('message', '\x00' * 50_000 + '\udce9' * 50_000, None))
@example(spec=('os-error', 'caf\udce9.txt', '/data/caf\udce9.txt'))
@example(spec=('note', 'x [modelqueue: cut 3 characters]', None))
def test_run_writes_every_outcome_once_and_raises_the_actions_own_exception(spec):
    clear()
    task = Task.objects.create(data='fuzz', status=Status.waiting())
    raised = []

    def action(row):
        record(row)
        try:
            apply_poison(row, spec)
        except BaseException as error:
            raised.append(error)
            raise

    try:
        run(Task.objects.all(), 'status', action, retry=0)
    except OutcomeNotStored:
        assert spec[0] in ('note', 'note-abort') and stored_note(spec[1]) is None
    except Exception as error:  # noqa: BLE001 (the action's own, whatever it is)
        assert raised and error is raised[0]
        assert not isinstance(error, (Abort, Cancel))
    assert run(Task.objects.all(), 'status', action, retry=0) is None  # nothing runs again
    assert executions_per_task() == {task.pk: 1}
    check_row(task, spec)


# -- the worker loop and a worker process -------------------------------------


@pytest.mark.django_db(transaction=True)
@fuzz(12)
@given(
    specs=st.lists(poisons, min_size=1, max_size=6), threads=st.sampled_from([1, 3]), batch=st.sampled_from([1, 4])
)
@example(specs=[('note-abort', 'caf\udce9', None), ('message', 'behind it', None)], threads=1, batch=1)
@example(specs=[('note-abort', 'caf\udce9', None), ('message', 'behind it', None)], threads=1, batch=4)
def test_the_worker_loop_runs_every_row_once_whatever_the_poison(specs, threads, batch):
    clear()
    rows = {Task.objects.create(data='fuzz', status=Status.waiting()).pk: spec for spec in specs}

    def action(row):
        record(row)
        apply_poison(row, rows[row.pk])

    worker = Worker(
        Task.objects.all(), 'status', action, retry=0, burst=True, listen=False, threads=threads, batch=batch
    )
    assert worker.run() == len(rows)
    assert executions_per_task() == dict.fromkeys(rows, 1)
    for pk, spec in rows.items():
        check_row(Task(pk=pk), spec)


@pytest.mark.processes
@fuzz(2)
@given(specs=st.lists(poisons, min_size=8, max_size=14))
def test_a_worker_process_runs_every_row_once_whatever_the_poison(spawn, specs):
    clear()
    rows = {
        Task.objects.create(data=encode_poison(spec), status=Status.waiting()).pk: spec for spec in specs
    }
    status, log = finish(start_worker(spawn, '--burst', '--retry=0', '--threads=2', action='poison_from_data'))
    assert status == 0, log
    assert 'stopped by' not in log, log
    assert executions_per_task() == dict.fromkeys(rows, 1)
    for pk, spec in rows.items():
        check_row(Task(pk=pk), spec)


# -- the Tasks backend's worker -------------------------------------------------

task_specs = st.one_of(
    st.tuples(st.just('return'), json_values, st.none()),
    poisons.filter(lambda spec: not spec[0].startswith('note')),  # a task has no note
)


#: The Tasks backend of the fuzz: one attempt (RETRY 0), so each task runs once.
ONCE = 'once'


def enqueue_spec(number, spec):
    return tasks.poison_from_spec.using(backend=ONCE).enqueue(f'spec {number}', encode_poison(spec))


def normalized(value):
    """`value` as Django's Tasks framework stores it (tuples as lists), or
    None if it is not JSON (the task then fails with TypeError)."""
    from modelqueue.tasks.compat import normalize_json  # noqa: PLC0415

    try:
        return normalize_json(value)
    except (TypeError, ValueError):
        return None


def check_task(result, spec, number):
    assert tasks.RAN.count(f'spec {number}') == 1
    result.refresh()
    row = QueuedTask.objects.get(pk=result.id)
    assert Status(row.status).state in (State.finished, State.canceled)
    cap = conf.get('MODELQUEUE_TRACEBACK_CHARS')
    for error in row.errors:
        check_fits(error['traceback'], cap)
    if result.status == TaskResultStatus.SUCCESSFUL:
        assert spec[0] == 'return' and same_json(result.return_value, normalized(spec[1]))
        assert row.errors == []
        return
    assert result.status == TaskResultStatus.FAILED and len(row.errors) == 1
    (error,) = row.errors
    if spec[0] == 'return':
        # Not stored, or not JSON at all (normalize_json refused it).
        not_json = ('builtins.TypeError', 'builtins.ValueError')
        assert error['exception_class_path'] in ('modelqueue.exceptions.OutcomeNotStored', *not_json)
    what, text, _ = spec
    if what == 'message' and text.strip() and storable_everywhere(text) and len(text) < 1000:
        assert text in error['traceback'] or is_cleaned(error['traceback'])


@pytest.mark.django_db(transaction=True)
@fuzz(20)
@given(
    specs=st.lists(task_specs, min_size=1, max_size=5), threads=st.sampled_from([1, 2]), batch=st.sampled_from([1, 4])
)
@example(specs=[('return', 'x' * 1_000_000, None), ('return', float('nan'), None)], threads=1, batch=1)
@example(specs=[('return', 'x' * 1_000_000, None), ('return', float('nan'), None)], threads=1, batch=4)
@example(specs=[('return', {'\x00': ['\udce9', 1e308]}, None), ('message', 'E' * 1_000_000, None)], threads=2, batch=1)
def test_the_tasks_worker_runs_every_task_once_whatever_it_returns_or_raises(specs, threads, batch):
    clear()
    results = [enqueue_spec(number, spec) for number, spec in enumerate(specs)]
    worker = TaskWorker(ONCE, burst=True, listen=False, threads=threads, batch=batch)
    assert worker.run() == len(results)
    for number, (result, spec) in enumerate(zip(results, specs)):
        check_task(result, spec, number)
    assert TaskWorker(ONCE, burst=True, listen=False).run() == 0  # nothing runs again


#: What enqueue() may raise for arguments it refuses: the contract, on every
#: database (a DatabaseError here would be a bug).
REFUSED_AT_ENQUEUE = (TypeError, ValueError)


@pytest.mark.django_db(transaction=True)
@fuzz(25)
@given(
    args=st.lists(json_values, max_size=3),
    kwargs=st.dictionaries(st.from_regex(r'[a-z]{1,8}', fullmatch=True), json_values, max_size=2),
)
def test_any_arguments_are_refused_at_enqueue_or_run_once(args, kwargs):
    clear()
    try:
        with transaction.atomic():
            result = tasks.echo.using(backend=ONCE).enqueue('echo', *args, **kwargs)
    except REFUSED_AT_ENQUEUE:
        assert not QueuedTask.objects.exists()
        return
    assert TaskWorker(ONCE, burst=True, listen=False).run() == 1
    assert TaskWorker(ONCE, burst=True, listen=False).run() == 0
    assert tasks.RAN == ['echo']
    result.refresh()
    assert result.status in (TaskResultStatus.SUCCESSFUL, TaskResultStatus.FAILED)


@pytest.mark.processes
@fuzz(2)
@given(specs=st.lists(task_specs, min_size=6, max_size=10))
def test_a_tasks_worker_process_runs_every_task_once_whatever_it_returns_or_raises(spawn, specs, tmp_path_factory):
    clear()
    log_path = tmp_path_factory.mktemp('ran') / 'ran.log'
    results = [enqueue_spec(number, spec) for number, spec in enumerate(specs)]
    child = spawn(
        '-m', 'django', 'modelqueue_worker', '--tasks', f'--backend={ONCE}', '--burst', '--threads=2', '--verbosity=2',
        env={'DJANGO_SETTINGS_MODULE': 'tests.settings', 'MODELQUEUE_TEST_LOG': str(log_path)},
    )
    status, log = finish(child)
    assert status == 0, log
    tasks.RAN[:] = log_path.read_text().splitlines()
    for number, (result, spec) in enumerate(zip(results, specs)):
        check_task(result, spec, number)

