"""Critical mutants: the tests that guard the queue's promises must catch each one.

    .venv/py3.11/bin/python mutation/critical.py     (.ci/run runs it after the Django 5.2 tests)

Each mutant below is one source edit that breaks a promise: the completion
fence, fencing by the exact status, SKIP LOCKED, waking idle threads,
counting while the counters are installed and in one snapshot, the
supervisor's crash window, the heartbeat's pruning, the reclaim's worker,
the claim's pause check and resume's wake-up, the rescue's fences. For each, a copy of the
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
        'name': 'a batch writes statuses without fencing each row',
        'file': 'modelqueue/batches.py',
        'old': "fences = ' OR '.join([f'({pk_column} = %s AND {status} = %s)'] * len(changes))",
        'new': "fences = ' OR '.join([f'({pk_column} = %s AND {status} = {status} + 0 * %s)'] * len(changes))",
        'tests': [
            'tests/worker/test_batch.py::test_statuses_are_written_only_where_each_row_still_holds_what_it_must',
            'tests/worker/test_batch.py::test_a_row_an_operator_cancels_while_its_batch_runs_keeps_the_cancel',
            'tests/worker/test_batch.py::test_an_operators_cancel_of_rows_held_in_a_batch_wins_over_the_worker',
        ],
        'databases': ['sqlite'],
    },
    {
        'name': 'rows of a batch wait behind a long task for ever',
        'file': 'modelqueue/worker/batch.py',
        'old': 'overdue = unstarted and current - self._claimed_at >= self.wait',
        'new': 'overdue = False',
        'tests': [
            'tests/worker/test_batch.py::test_rows_behind_a_long_task_go_back_after_the_batch_wait_while_it_runs',
        ],
        'databases': ['sqlite'],
    },
    {
        'name': 'the rows of a batch are not on the heartbeat (a kill leaves them to the timeout)',
        'file': 'modelqueue/worker/batch.py',
        'old': 'worker.heartbeat.reserve(claim.task for claim in claims[1:])',
        'new': 'worker.heartbeat.reserve([])',
        'tests': ['tests/worker/test_batch.py::test_every_row_of_a_batch_whose_worker_is_killed_runs_exactly_once'],
        'databases': ['sqlite'],
    },
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
    {
        'name': 'polling does not wake an idle thread (--threads never runs new rows without LISTEN)',
        'file': 'modelqueue/worker/threads.py',
        'old': 'else:  # the poll is due, or a new LISTEN may have missed some\n'
        '                self.wake(1, POLLING)',
        'new': 'else:  # the poll is due, or a new LISTEN may have missed some\n'
        '                pass',
        'tests': [
            'tests/worker/test_threads.py::test_polling_wakes_an_idle_thread',
            'tests/worker/test_threads.py::test_threads_without_listen_run_a_row_that_comes_due_while_they_sleep',
        ],
        'databases': ['sqlite'],
    },
    {
        'name': 'a notification that finds every thread busy is dropped',
        'file': 'modelqueue/worker/threads.py',
        'old': 'if cause != HANDED_ON:\n                        self._pending = cause',
        'new': 'if cause != HANDED_ON:\n                        pass',
        'tests': [
            'tests/worker/test_threads.py::'
            'test_a_notification_that_finds_no_idle_thread_is_kept_for_the_next_to_go_idle',
        ],
        'databases': ['sqlite'],
    },
    {
        'name': 'install_counters without its LOCK TABLE',
        'file': 'modelqueue/counters.py',
        'old': "cursor.execute(f'LOCK TABLE {table} IN SHARE ROW EXCLUSIVE MODE')",
        'new': 'pass',
        'tests': [
            'tests/core/test_counters.py::'
            'test_a_write_racing_the_install_waits_for_it_and_is_counted_exactly_once',
        ],
        'databases': ['postgresql'],
    },
    {
        'name': 'state counts not read in one snapshot (due = waiting - scheduled)',
        'file': 'modelqueue/admin/counts.py',
        'old': 'short_counts(queryset.db, snapshot=owns_transaction)',
        'new': 'short_counts(queryset.db)',
        'tests': [
            'tests/core/test_counters.py::'
            'test_due_is_waiting_less_scheduled_read_in_one_snapshot_while_rows_are_scheduled',
        ],
        'databases': ['postgresql'],
    },
    {
        'name': 'the supervisor never forgets a crash (a rare crash ends in giving up)',
        'file': 'modelqueue/worker/supervisor.py',
        'old': 'while crashes[0] < now - CRASH_WINDOW:\n            crashes.popleft()',
        'new': 'pass',
        'tests': ['tests/worker/test_supervisor.py::test_the_supervisor_forgets_crashes_older_than_its_window'],
        'databases': ['sqlite'],
    },
    {
        'name': "pruning deletes live workers' heartbeat rows",
        'file': 'modelqueue/worker/housekeeping.py',
        'old': 'filter(last_seen__lt=now() - LOST_KEPT)',
        'new': 'filter(last_seen__lt=now())',
        'tests': [
            'tests/worker/test_housekeeping.py::'
            'test_pruning_keeps_live_workers_heartbeat_rows_and_lost_ones_for_a_day',
        ],
        'databases': ['sqlite'],
    },
    {
        'name': 'the heartbeat never prunes',
        'file': 'modelqueue/worker/housekeeping.py',
        'old': '        self.prune()\n        refresh_counters',
        'new': '        refresh_counters',
        'tests': ['tests/worker/test_housekeeping.py::test_the_heartbeat_thread_prunes_again_and_again'],
        'databases': ['sqlite'],
    },
    {
        'name': 'a reclaim record names the earliest heartbeat that held the row',
        'file': 'modelqueue/failures.py',
        'old': ".order_by('-last_seen')",
        'new': ".order_by('last_seen')",
        'tests': ['tests/core/test_failures.py::test_a_reclaim_names_the_worker_that_held_the_row_most_recently'],
        'databases': ['sqlite'],
    },
    {
        'name': 'pruning trims only the records written since the last pass',
        'file': 'modelqueue/failures.py',
        'old': 'row = records.filter(content_type_id=content_type,',
        'new': 'row = records.filter(pk__gt=self.checked_id, content_type_id=content_type,',
        'tests': ['tests/core/test_failures.py::test_later_pruning_passes_still_trim_rows_that_earlier_passes_saw'],
        'databases': ['sqlite'],
    },
    {
        'name': 'the claim reads no pause',
        'file': 'modelqueue/claim.py',
        'old': 'ranges.due(attname, at), not_paused(queryset.model, attname, queryset.db)',
        'new': 'ranges.due(attname, at)',
        'tests': [
            'tests/core/test_pause.py::test_every_claim_takes_nothing_from_a_paused_queue_and_drains_it_after_resume',
            'tests/worker/test_pause.py::test_a_worker_started_on_a_paused_queue_claims_nothing_until_resumed',
        ],
        'databases': ['sqlite'],
    },
    {
        'name': 'resume wakes no idle worker',
        'file': 'modelqueue/pauses.py',
        'old': "cursor.execute('SELECT pg_notify(%s, %s)', [channel_name(model, field), ''])",
        'new': 'pass',
        'tests': ['tests/worker/test_pause.py::test_a_worker_started_on_a_paused_queue_claims_nothing_until_resumed'],
        'databases': ['postgresql'],
    },
    {
        'name': 'a rescue not fenced on the lost claim\'s status',
        'file': 'modelqueue/rescue.py',
        'old': 'rows.filter(pk=pk, **{attname: held})',
        'new': 'rows.filter(pk=pk)',
        'tests': [
            'tests/worker/test_rescue.py::'
            'test_a_rescue_gives_back_each_row_still_held_by_the_lost_workers_claim_and_records_it',
        ],
        'databases': ['sqlite'],
    },
    {
        'name': 'a rescue of a worker that beat again',
        'file': 'modelqueue/rescue.py',
        'old': 'heartbeats.filter(pk=heartbeat.pk, last_seen__lt=lost_cutoff(heartbeat, current))',
        'new': 'heartbeats.filter(pk=heartbeat.pk)',
        'tests': ['tests/worker/test_rescue.py::test_a_worker_that_beat_within_three_intervals_is_not_rescued'],
        'databases': ['sqlite'],
    },
    {
        'name': 'a worker rescues while its own heartbeat is stale',
        'file': 'modelqueue/worker/rescuer.py',
        'old': 'if heartbeat.pk is None or not heartbeat.fresh():',
        'new': 'if heartbeat.pk is None:',
        'tests': ['tests/worker/test_rescue.py::test_a_worker_rescues_nothing_while_its_own_heartbeat_is_stale'],
        'databases': ['sqlite'],
    },
    {
        'name': 'finished or canceled estimated below queue_estimate_above',
        'file': 'modelqueue/admin/counts.py',
        'old': 'if expected[large] >= estimate_above:',
        'new': 'if True:',
        'tests': [
            'tests/admin/test_counts.py::'
            'test_below_the_threshold_counts_are_exact_whatever_the_table_statistics_say',
        ],
        'databases': ['sqlite'],
    },    {
        'name': 'unique tasks without their index (partial, or the generated column on MariaDB)',
        'file': 'modelqueue/migrations/0004_queuedtask_unique_key.py',
        'old': 'def create_index(apps, schema_editor):\n    qn = schema_editor.quote_name',
        'new': 'def create_index(apps, schema_editor):\n    return',
        'tests': [
            'tests/tasks/test_unique.py::test_processes_racing_to_enqueue_one_key_leave_one_task',
            'tests/tasks/test_unique.py::test_the_database_refuses_a_second_active_row_with_the_key',
        ],
        'databases': ['sqlite', 'mariadb'],
    },
    {
        'name': "a retry policy's give_up_on is ignored",
        'file': 'modelqueue/retries.py',
        'old': '        return isinstance(error, delay.give_up_on)\n    return not delay.retries(error)',
        'new': '        return False\n    return False',
        'tests': ['tests/core/test_retries.py::test_a_policy_gives_up_at_once_on_give_up_on_counting_the_attempt'],
        'databases': ['sqlite'],
    },
    {
        'name': 'a schedule slot fired by every worker that read it',
        'file': 'modelqueue/tasks/schedules.py',
        'old': '.filter(name=schedule.name, next_slot=seen, enabled=True)',
        'new': '.filter(name=schedule.name, enabled=True)',
        'tests': [
            'tests/tasks/test_schedules.py::test_a_process_that_read_the_slot_before_another_took_it_enqueues_nothing',
        ],
        'databases': ['sqlite'],
    },
    {
        'name': 'under a retry policy, the time limit (a BaseException) gives up instead of counting an attempt',
        'file': 'modelqueue/retries.py',
        'old': '    if not isinstance(error, Exception):\n        return isinstance(error, delay.give_up_on)\n',
        'new': '',
        'tests': [
            'tests/core/test_retries.py::'
            'test_a_policy_whose_retry_on_leaves_a_base_exception_out_still_counts_it_as_an_attempt',
            'tests/worker/test_timelimit.py::'
            'test_under_a_retry_policy_a_task_stopped_by_the_time_limit_waits_for_another_attempt',
        ],
        'databases': ['sqlite'],
    },
    {
        'name': "a Tasks task stopped by the time limit fails at once under ON_EXCEPTION 'retry'",
        'file': 'modelqueue/tasks/worker.py',
        'old': "return self.backend.on_exception == 'retry' or policy.retries(error)",
        'new': 'return policy.retries(error)',
        'tests': [
            'tests/worker/test_timelimit.py::'
            'test_under_on_exception_retry_a_task_stopped_by_the_time_limit_retries_within_retry_unless_given_up',
        ],
        'databases': ['sqlite'],
    },
    {
        'name': 'retry all failed writes a chunk without the fence on the state',
        'file': 'modelqueue/admin/retry_failed.py',
        'old': 'written = base.filter(failed, pk__in=kept)',
        'new': 'written = base.filter(pk__in=kept)',
        'tests': [
            'tests/admin/test_retry_failed.py::'
            'test_a_row_claimed_between_a_chunk_s_read_and_its_write_is_left_to_its_worker',
        ],
        'databases': ['sqlite'],
    },
    {
        'name': "the Tasks admin's requeue ignores a unique key another task holds",
        'file': 'modelqueue/tasks/admin.py',
        'old': '        return held_keys if operation.name in ACTIVATING else None',
        'new': '        return None',
        'tests': [
            'tests/tasks/test_admin_unique.py::'
            'test_requeue_leaves_a_task_whose_key_a_ready_task_holds_and_requeues_the_rest',
        ],
        'databases': ['sqlite', 'mariadb'],
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
