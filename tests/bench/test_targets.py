"""The benchmark's target checks judge only what was run, and say which ideal they used."""

import json

from bench.throughput_report import targets
from tests.support import ROOT

QUIET_RUN = ROOT / 'bench' / 'results' / 'results-2026-11-27-postgresql-quiet.json'


def judged(results):
    return {check['target'].split(':')[0]: check for check in targets(results)}


def test_the_published_quiet_run_is_judged_as_the_performance_page_says():
    checks = judged(json.loads(QUIET_RUN.read_text()))
    assert checks['PostgreSQL W=8 5 ms']['met'] is False
    assert '65% of the ideal 1600 tasks/s (8 workers x 1000 ms / 5 ms)' in checks['PostgreSQL W=8 5 ms']['detail']
    assert checks['PostgreSQL pickup']['met'] is True


def test_a_target_against_a_peer_that_was_not_run_is_not_met():
    results = json.loads(QUIET_RUN.read_text())
    results['throughput'] = [row for row in results['throughput'] if row['impl'] == 'modelqueue']
    checks = [check for check in targets(results) if 'peer' in check['target'] or '2.2.1' in check['target']]
    assert checks and all(check['met'] is None for check in checks), checks


WORKERS_RUN = ROOT / 'bench' / 'results' / 'workers-2026-11-29-postgresql.json'


def test_the_published_worker_modes_run_is_judged_as_the_performance_page_says():
    checks = judged(json.loads(WORKERS_RUN.read_text()))
    assert checks['PostgreSQL 8 x 5 ms']['met'] is True
    assert '866 vs 807 tasks/s (1.07x); 53 vs 393 MB RSS (13%)' in checks['PostgreSQL 8 x 5 ms']['detail']
    assert checks['PostgreSQL 32 x 50 ms']['met'] is False
    assert '565 tasks/s, 88%' in checks['PostgreSQL 32 x 50 ms']['detail']
    assert checks['PostgreSQL 1,000 rows in one commit, 8 idle threads']['met'] is True


def test_worker_mode_targets_are_judged_only_when_their_runs_are_in_the_results():
    results = json.loads(WORKERS_RUN.read_text())
    results['worker_modes'] = [row for row in results['worker_modes'] if row['mode'] != '--concurrency 8']
    results['wakeups'] = []
    checks = judged(results)
    assert 'PostgreSQL 8 x 5 ms' not in checks
    assert 'PostgreSQL 32 x 50 ms' in checks
    assert not any('idle threads' in name for name in checks)
    assert not any('threads' in name for name in judged(json.loads(QUIET_RUN.read_text())))


def test_a_notification_that_woke_every_idle_thread_misses_the_wakeup_target():
    results = json.loads(WORKERS_RUN.read_text())
    results['wakeups'][0].update(woken_by_notification=8, woken_by_another_thread=0)
    assert judged(results)['PostgreSQL 1,000 rows in one commit, 8 idle threads']['met'] is False

TASKS_RUN = ROOT / 'bench' / 'results' / 'tasks-2026-11-29-sqlite-postgresql.json'


def test_the_published_tasks_run_is_judged_as_the_performance_page_says():
    from bench.tasks import targets as tasks_targets  # noqa: PLC0415

    results = json.loads(TASKS_RUN.read_text())
    checks = {check['target']: check for check in tasks_targets(results)}
    assert checks == {check['target']: check for check in results['targets']}
    assert checks['PostgreSQL W=4: >= 3x the throughput of django-tasks-db']['detail'].startswith('5.75x')
    assert checks['PostgreSQL pickup p50 <= 20 ms']['detail'].startswith('5.5 ms')
    assert all(check['met'] for check in checks.values())
    # The page shows the targets as this file stores them, read when it is built.
    page = (ROOT / 'docs' / 'performance.rst').read_text()
    assert '.. bench-targets:: tasks-2026-11-29-sqlite-postgresql.json' in page


BATCHES_RUN = ROOT / 'bench' / 'results' / 'batches-2026-12-07-postgresql-2.json'


def test_the_published_batches_run_is_judged_as_the_performance_page_says():
    from bench.batches import targets as batch_targets  # noqa: PLC0415

    results = json.loads(BATCHES_RUN.read_text())
    checks = {check['target']: check for check in batch_targets(results, 100)}
    assert checks == {check['target']: check for check in results['targets']}
    rate = checks['no-op tasks, 2 processes, --batch 100: >= 8,000 tasks/s']
    assert rate['met'] is True and rate['detail'] == '20740 tasks/s'
    assert checks['>= 40x django-tasks-db (2 processes)']['detail'].startswith('96x')
    assert checks['pickup p50 <= 5 ms with an idle worker, --batch 1']['met'] is False
    assert '.. bench-targets:: batches-2026-12-07-postgresql-2.json' in (ROOT / 'docs' / 'performance.rst').read_text()


def test_a_long_task_that_shared_no_batch_proves_nothing_about_the_bound():
    from bench.batches import targets as batch_targets  # noqa: PLC0415

    results = json.loads(BATCHES_RUN.read_text())
    results['hostage'][0].update(rows_given_back=0, max_wait_seconds=0.02)
    (hostage,) = [check for check in batch_targets(results, 100) if 'in a batch delays' in check['target']]
    assert hostage['met'] is False
