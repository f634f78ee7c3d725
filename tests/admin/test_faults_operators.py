"""Operators racing workers through the real admin actions.

Worker processes run the queue while an operator, through the Django test
client, bulk-cancels and bulk-requeues rows (some in the middle of their
action). Every row the operator canceled stays canceled: a finishing worker
never overwrites it. Every requeued row runs again.
"""

import random
import re
import time

import pytest
from django.contrib.admin.models import LogEntry
from django.db import connection
from django.db.models import Max
from django.urls import reverse

from modelqueue import State, Status
from modelqueue.counters import install_counters, uninstall_counters
from tests.support.fleet import Fleet
from tests.support.tasks import counters_beside_counts, waiting_tasks
from tests.support.waits import wait_until
from tests.testapp.models import Execution, Task

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.processes]


def in_state(state):
    return list(Task.objects.filter(**Status.filter('status', state)).values_list('pk', flat=True))


def fenced_pks(fleet=None, results=None):
    """The rows whose worker's completion was fenced off (the row changed
    while its action ran), from the workers' logs."""
    logs = [log for _, log in results] if results is not None else [fleet.log(pid) for pid in fleet.logs]
    return {int(pk) for log in logs for pk in FENCED.findall(log)}


FENCED = re.compile(r'testapp\.Task pk=(\d+) changed while its action ran')


def latest_execution():
    return Execution.objects.aggregate(last=Max('pk'))['last'] or 0


@pytest.fixture(params=[
    pytest.param(False, id='counted'),
    pytest.param(True, id='with-state-counters', marks=pytest.mark.vendors('postgresql')),
])
def with_counters(request):
    """Whether the Task queue has state counters (uninstalled afterwards)."""
    if request.param:
        install_counters(Task, 'status')
    yield request.param
    if request.param:
        uninstall_counters(Task, 'status')


@pytest.mark.timeout(300)  # up to 90 s of racing, then 90 s for the workers to finish
def test_operator_cancel_and_requeue_win_over_workers(
    spawn, tmp_path, superuser_client, capsys, with_counters
):
    """With state counters, they also equal the true counts in a snapshot
    read after each of the operator's actions, and at the end."""
    rows, workers = 60, 3
    waiting_tasks(rows)
    snapshots = []
    client = superuser_client
    changelist = reverse('admin:testapp_task_changelist')
    fleet = Fleet(
        spawn,
        tmp_path,
        'record_slowly',
        '--sleep', '0.1', '--timeout', '60',
        env={'MODELQUEUE_TEST_ACTION_SECONDS': '0.15'},
    )
    fleet.start(workers)

    logged = [0]  # the last LogEntry read

    def act(action, pks, **extra):
        """Run the admin action; return the rows it changed, as its history says.

        Read from the LogEntry rows the action wrote in its own transaction,
        not from the rows afterwards: a worker that overwrote the operator's
        decision right after the POST must not hide the row from the checks.
        """
        response = client.post(
            changelist,
            {'action': action, '_selected_action': pks, 'index': 0, **extra},
        )
        assert response.status_code == 302, response.content[:500]
        entries = list(LogEntry.objects.filter(pk__gt=logged[0]).order_by('pk'))
        if entries:
            logged[0] = entries[-1].pk
        return [int(entry.object_id) for entry in entries]

    last = {}  # pk -> ('canceled', None) or ('requeued', latest execution before)
    deadline = time.monotonic() + 90
    # Until most rows ran and some decision landed mid-action (a worker's
    # completion fenced off): the operator requeues finished rows as it goes,
    # so the race goes on until it has happened, or the deadline fails it.
    while Status.tally(Task.objects.all(), 'status')['waiting'] > 5 or not fenced_pks(fleet):
        assert time.monotonic() < deadline, (
            'the workers stopped making progress' if fenced_pks(fleet)
            else 'no operator decision landed mid-action within 90 s'
        )
        working, waiting = in_state('working'), in_state('waiting')
        chosen = random.sample(working, min(2, len(working)))
        chosen += random.sample(waiting, min(2, len(waiting)))
        if chosen:
            for pk in act('cancel_status', chosen, post='yes'):
                last[pk] = ('canceled', None)
        working = in_state('working')
        settled = in_state('finished') + [pk for pk, (op, _) in last.items() if op == 'canceled']
        chosen = random.sample(working, min(2, len(working)))
        # A row read working, then finished before the next read, is in both
        # lists: choose it once (the action logs each row once).
        settled = [pk for pk in settled if pk not in chosen]
        chosen += random.sample(settled, min(2, len(settled)))
        if chosen:
            mark = latest_execution()
            changed = act('requeue_status', chosen)
            assert sorted(changed) == sorted(chosen)  # requeue takes rows in every state
            for pk in changed:
                last[pk] = ('requeued', mark)
        if with_counters:
            snapshots.append(counters_beside_counts())
        time.sleep(0.2)

    wait_until(
        lambda: not in_state('waiting') and not in_state('working'),
        90,
        'the workers to finish every row',
    )
    assert fleet.exited() == []
    results = fleet.stop()
    assert [code for code, _ in results] == [0] * workers, results

    final = dict(Task.objects.values_list('pk', 'status'))
    for pk, status in final.items():
        state = Status(status).state
        operation, mark = last.get(pk, (None, None))
        if operation == 'canceled':
            assert state == State.canceled, (pk, Status(status))
        else:
            assert state == State.finished, (pk, operation, Status(status))
        if operation == 'requeued':
            assert Execution.objects.filter(task_id=pk, pk__gt=mark).exists(), pk
    fenced = sum(log.count('changed while its action ran') for _, log in results)
    mid_action = fenced_pks(results=results)
    # No timeout reclaims here (--timeout 60): a completion is fenced off
    # only where the operator canceled or requeued the row while it ran.
    assert mid_action and mid_action <= set(last), (mid_action, last)
    with capsys.disabled():
        print(
            f'\n[{connection.vendor}] operator raced {workers} workers on {rows} rows:'
            f' {sum(op == "canceled" for op, _ in last.values())} stayed canceled,'
            f' {sum(op == "requeued" for op, _ in last.values())} requeued and ran again;'
            f' {len(mid_action)} rows changed mid-action, {fenced} late completions fenced off'
        )
    assert fenced >= len(mid_action)
    if with_counters:
        snapshots.append(counters_beside_counts())
        assert len(snapshots) >= 2
        assert [by_counters for by_counters, _ in snapshots] == [counted for _, counted in snapshots]
