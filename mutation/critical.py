"""Critical mutants: the tests that guard the queue's promises must catch each one.

    .venv/py3.11/bin/python mutation/critical.py     (.ci/run runs it after the Django 5.2 tests)

Each mutant below is one source edit that breaks a promise: the completion
fence, fencing by the exact status, SKIP LOCKED. For each, a copy of the
checkout is made in a temporary folder (the working tree is never edited),
the edit is applied there, and the tests named with it run in the copy on
the databases named with it. They must fail: a mutant they let pass is
reported by name, and the exit status is 1. First the same tests run on
an unedited copy and must pass, so a broken setup cannot pass for a caught
mutant. An edit whose original text is not found exactly once is an error
too: the list is kept in step with the source.

Standard library only; run it with the Python of ./runtests's environment.
The full mutation run (mutmut, far slower) is mutation/run.
"""

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

FENCE_TESTS = [
    'tests/core/test_fencing.py::test_a_stalled_workers_completion_never_overwrites_the_worker_that_reclaimed_it',
    'tests/core/test_fencing.py::test_a_completion_is_fenced_on_the_claimed_status_not_on_the_working_state',
    'tests/core/test_fencing.py::test_a_status_only_completion_is_fenced_on_the_claimed_status_too',
    'tests/core/test_run.py::test_fenced_completion_keeps_an_operator_cancel',
]
COMPLETION = 'lambda: _fenced_update(queryset, task.pk, attname, claimed, values),'

MUTANTS = [
    {
        'name': 'completion fenced on the working state, not the claimed status',
        'file': 'modelqueue/queue.py',
        'old': COMPLETION,
        'new': 'lambda: queryset.model._base_manager.using(queryset.db).filter('
        "ranges.in_states(attname, 'working'), pk=task.pk).update(**values),",
        'tests': FENCE_TESTS,
        'databases': ['sqlite'],
    },
    {
        'name': 'completion not fenced at all',
        'file': 'modelqueue/queue.py',
        'old': COMPLETION,
        'new': 'lambda: queryset.model._base_manager.using(queryset.db)'
        '.filter(pk=task.pk).update(**values),',
        'tests': FENCE_TESTS,
        'databases': ['sqlite'],
    },
    {
        'name': 'timeout reclaim not fenced on the stalled status',
        'file': 'modelqueue/queue.py',
        'old': 'lambda: _fenced_update(queryset, pk, attname, value, {attname: new_status}),',
        'new': 'lambda: queryset.model._base_manager.using(queryset.db)'
        '.filter(pk=pk).update(**{attname: new_status}),',
        'tests': ['tests/core/test_fencing.py::test_a_reclaim_never_overwrites_a_row_that_finished_after_it_was_read'],
        'databases': ['sqlite'],
    },
    {
        'name': 'claim statement without SKIP LOCKED',
        'file': 'modelqueue/claim.py',
        'old': 'connection.ops.for_update_sql(skip_locked=True, of=of)',
        'new': 'connection.ops.for_update_sql(of=of)',
        'tests': ['tests/core/test_claim.py::test_a_claim_skips_a_row_another_worker_has_locked_instead_of_waiting'],
        'databases': ['postgresql'],
    },
    {
        'name': 'SELECT FOR UPDATE claim without SKIP LOCKED',
        'file': 'modelqueue/queue.py',
        'old': '.select_for_update(skip_locked=True, of=lock_of)',
        'new': '.select_for_update(of=lock_of)',
        'tests': ['tests/core/test_claim.py::test_a_claim_skips_a_row_another_worker_has_locked_instead_of_waiting'],
        'databases': ['postgresql'],
    },
]

COPIED = ['modelqueue', 'tests', 'pytest.ini', 'pyproject.toml', 'setup.py', 'README.md', 'docs']


def copy_checkout(into):
    ignore = shutil.ignore_patterns('__pycache__', '*.pyc', '.*.sqlite3*', '_build')
    for name in COPIED:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, into / name, ignore=ignore)
        elif source.exists():
            shutil.copy2(source, into / name)


def pytest_in(copy, tests, database):
    """Run `tests` in `copy` on `database`; return pytest's exit status."""
    env = dict(os.environ, MODELQUEUE_DB=database, PYTHONPATH=str(copy), PYTHONDONTWRITEBYTECODE='1')
    env.pop('MODELQUEUE_DB_NAME', None)
    command = [sys.executable, '-m', 'pytest', '-q', '-x', '-p', 'no:cacheprovider', *tests]
    result = subprocess.run(command, cwd=copy, env=env, capture_output=True, text=True)
    return result.returncode, result.stdout[-3000:] + result.stderr[-3000:]


def imports_from(copy):
    env = dict(os.environ, PYTHONPATH=str(copy))
    found = subprocess.run([sys.executable, '-c', 'import modelqueue; print(modelqueue.__file__)'],
                           cwd=copy, env=env, capture_output=True, text=True).stdout.strip()
    return Path(found).resolve().is_relative_to(copy.resolve())


def main():
    started = time.monotonic()
    problems = []
    with tempfile.TemporaryDirectory(prefix='modelqueue-critical-') as temp:
        clean = Path(temp) / 'clean'
        copy_checkout(clean)
        if not imports_from(clean):
            print('critical: the copy does not import its own modelqueue', file=sys.stderr)
            return 1
        # The unedited copy first: every test must pass there.
        for database in sorted({db for mutant in MUTANTS for db in mutant['databases']}):
            tests = sorted({t for m in MUTANTS if database in m['databases'] for t in m['tests']})
            status, output = pytest_in(clean, tests, database)
            if status != 0:
                print(output, file=sys.stderr)
                problems.append(f'the tests fail on {database} without a mutant (exit {status})')
        for number, mutant in enumerate(MUTANTS, 1):
            copy = Path(temp) / f'mutant-{number}'
            copy_checkout(copy)
            path = copy / mutant['file']
            source = path.read_text()
            if source.count(mutant['old']) != 1:
                problems.append(f'mutant "{mutant["name"]}": {mutant["file"]} has'
                                f' {source.count(mutant["old"])} copies of {mutant["old"]!r}, not 1')
                continue
            path.write_text(source.replace(mutant['old'], mutant['new']))
            for database in mutant['databases']:
                status, output = pytest_in(copy, mutant['tests'], database)
                if status == 1:
                    print(f'critical: caught on {database}: {mutant["name"]}')
                elif status == 0:
                    problems.append(f'mutant SURVIVED on {database}: {mutant["name"]}'
                                    f' ({mutant["file"]}: {mutant["new"]!r}); tests: {mutant["tests"]}')
                else:
                    print(output, file=sys.stderr)
                    problems.append(f'mutant "{mutant["name"]}" on {database}: pytest exit'
                                    f' {status} (an error, not a failing test)')
            shutil.rmtree(copy)
    for problem in problems:
        print(f'critical: {problem}', file=sys.stderr)
    print(f'critical: {len(MUTANTS)} mutants, {len(problems)} problems,'
          f' {time.monotonic() - started:.0f} s')
    return 1 if problems else 0


if __name__ == '__main__':
    sys.exit(main())
