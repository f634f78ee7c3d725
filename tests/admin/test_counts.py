"""Counts at scale: facets by range counts, estimates labelled, exact counts exact.

The estimates need PostgreSQL's planner; a small `queue_estimate_above`
lets a few dozen rows stand for millions. Elsewhere every count is exact.
"""

import datetime as dt
import re

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from modelqueue import Status, now
from modelqueue.admin import counts
from modelqueue.admin.counts import Estimate, is_estimate, state_counts
from tests.testapp.admin import TaskAdmin
from tests.testapp.models import Task

pytestmark = pytest.mark.django_db

CHANGELIST = 'admin:testapp_task_changelist'
# The rows of every test: the true count of each choice of the filter.
TRUE = {
    'created': 2, 'waiting': 5, 'due': 3, 'scheduled': 2, 'working': 3, 'stalled': 1,
    'finished': 40, 'canceled': 4,
}


@pytest.fixture
def rows():
    current = now()
    statuses = [
        *[Status.created(current - dt.timedelta(minutes=5))] * 2,
        Status.waiting(7),  # an integer priority: due
        *[Status.waiting(current - dt.timedelta(minutes=3), 1)] * 2,
        *[Status.waiting(current + dt.timedelta(days=2))] * 2,
        Status.working(current - dt.timedelta(hours=3), 1),  # stalled
        *[Status.working(current - dt.timedelta(minutes=1))] * 2,
        *[Status.finished(current - dt.timedelta(minutes=minute)) for minute in range(40)],
        *[Status.canceled(current - dt.timedelta(hours=hour), 3) for hour in range(4)],
    ]
    Task.objects.bulk_create(
        Task(data=f'task {index}', status=status) for index, status in enumerate(statuses)
    )
    if connection.vendor == 'postgresql':
        with connection.cursor() as cursor:
            cursor.execute(f'ANALYZE {Task._meta.db_table}')  # the planner's statistics, as autovacuum keeps them


@pytest.fixture
def estimate_above(monkeypatch):
    """Estimate any count the planner expects to be 10 rows or more."""
    monkeypatch.setattr(TaskAdmin, 'queue_estimate_above', 10)


def facets(client, query=''):
    """The filter's choices with their counts, as the page shows them."""
    page = client.get(reverse(CHANGELIST) + '?_facets=1' + query).content.decode()
    section = page.split('By status', 1)[1].split('</ul>', 1)[0]
    return dict(re.findall(r'status_queue=(\w+)[^>]*>\s*(?:–\s*)?[\w ]+? \(([^)]*)\)', section))


def test_show_counts_are_range_counts_of_every_choice(superuser_client, rows):
    with CaptureQueriesContext(connection) as queries:
        shown = facets(superuser_client)
    assert shown == {name: str(count) for name, count in TRUE.items()}
    # The state filter's (the failures filter counts rows by their failure records).
    facet_queries = [
        query['sql'] for query in queries.captured_queries
        if 'COUNT' in query['sql'] and 'modelqueue_failurerecord' not in query['sql']
    ]
    # Not Django's generic facets: COUNT(id) FILTER (WHERE id IN (subquery)) per choice.
    assert not [sql for sql in facet_queries if re.search(r'IN \(SELECT', sql)], facet_queries


def test_show_counts_follow_the_search_and_the_other_filters(superuser_client, rows):
    # Tasks 0 to 9: two created, five waiting (three due), three working (one stalled).
    # Finished: 10 to 49; canceled: 50 to 53. "1" is in 1, 10 to 19, 21, 31, 41 and 51.
    shown = facets(superuser_client, '&q=1')
    assert (shown['created'], shown['waiting'], shown['finished'], shown['canceled']) == ('1', '0', '13', '1')
    assert not any('≈' in count for count in shown.values())


@pytest.mark.vendors('postgresql')
def test_the_largest_of_finished_and_canceled_is_estimated_and_labelled(superuser_client, rows, estimate_above):
    shown = facets(superuser_client)
    assert shown.pop('finished') == '≈ 40'
    assert shown == {name: str(count) for name, count in TRUE.items() if name != 'finished'}

    data = superuser_client.get(reverse('admin:testapp_task_dashboard_data')).json()['queues'][0]
    assert data['estimated'] == ['finished']
    assert data['tally_text']['finished'] == '≈ 40' and data['tally']['finished'] == 40
    page = superuser_client.get(reverse('admin:testapp_task_dashboard')).content.decode()
    assert re.search(r'data-tally="finished">≈ 40<', page)
    assert 'data-estimated-note>' in page  # the note saying what ≈ means is shown


@pytest.mark.vendors('postgresql')
def test_every_other_count_stays_exact_whatever_the_threshold(rows):
    counts = state_counts(Task.objects.all(), 'status', now(), estimate_above=1)
    assert [name for name, count in counts.items() if is_estimate(count)] == ['finished']
    assert counts == TRUE  # the estimate of finished is exact here: fresh statistics


def test_statistics_that_promise_fewer_rows_than_counted_fall_back_to_counting(rows, monkeypatch):
    # As if the statistics were taken before most rows were written: the
    # planner expects 2,000 finished rows in a table of 30.
    monkeypatch.setattr(counts, 'can_estimate', lambda queryset: True)
    monkeypatch.setattr(counts, 'planner_rows', lambda queryset: 2000)
    monkeypatch.setattr(counts, 'estimated_rows', lambda queryset: 30)
    found = counts.state_counts(Task.objects.all(), 'status', now(), estimate_above=20)
    assert found['finished'] == 40 and not is_estimate(found['finished'])


def test_below_the_threshold_counts_are_exact_whatever_the_table_statistics_say(rows, monkeypatch):
    # The planner expects 5 rows of each state, below queue_estimate_above;
    # the table's statistics, from before most rows were deleted, say 1,000.
    monkeypatch.setattr(counts, 'can_estimate', lambda queryset: True)
    monkeypatch.setattr(counts, 'planner_rows', lambda queryset: 5)
    monkeypatch.setattr(counts, 'estimated_rows', lambda queryset: 1000)
    found = counts.state_counts(Task.objects.all(), 'status', now(), estimate_above=20)
    assert found == TRUE and not [name for name, count in found.items() if is_estimate(count)]
    total = counts.count_rows(Task.objects.all(), estimate_above=2000)
    assert total == 54 and not is_estimate(total)
    assert is_estimate(counts.count_rows(Task.objects.all(), estimate_above=1000))  # at the threshold


@pytest.mark.vendors('sqlite', 'mysql')
def test_without_a_planner_to_ask_every_count_is_exact(superuser_client, rows, estimate_above):
    assert facets(superuser_client) == {name: str(count) for name, count in TRUE.items()}
    data = superuser_client.get(reverse('admin:testapp_task_dashboard_data')).json()['queues'][0]
    assert data['estimated'] == [] and data['tally']['finished'] == 40


def full_counts(queries):
    """The COUNTs over the whole table (no WHERE) among `queries`."""
    return [
        query['sql'] for query in queries.captured_queries
        if 'COUNT(' in query['sql'] and 'WHERE' not in query['sql']
    ]


@pytest.mark.vendors('postgresql')
def test_the_changelist_estimates_its_totals_instead_of_counting_the_table(superuser_client, rows, estimate_above):
    with CaptureQueriesContext(connection) as queries:
        page = superuser_client.get(reverse(CHANGELIST)).content.decode()
    assert full_counts(queries) == []
    assert '≈ 54 tasks' in page  # the paginator's count, labelled
    with CaptureQueriesContext(connection) as queries:
        page = superuser_client.get(reverse(CHANGELIST) + '?status_queue=finished').content.decode()
    assert full_counts(queries) == []
    assert '≈ 40 tasks' in page and '≈ 54 total' in page


def test_the_changelist_counts_exactly_below_the_threshold_and_when_searching(superuser_client, rows, estimate_above):
    page = superuser_client.get(reverse(CHANGELIST) + '?q=task').content.decode()
    assert '54 tasks' in page and '≈ 54 tasks' not in page
    assert '≈' not in page or connection.vendor == 'postgresql'  # "(≈ 54 total)": the table is estimated
    page = superuser_client.get(reverse(CHANGELIST) + '?status_queue=canceled').content.decode()
    assert '4 tasks' in page and '≈ 4 ' not in page


def test_a_changelist_filtered_to_a_state_is_in_the_order_of_its_status(superuser_client, rows):
    def listed(value):
        response = superuser_client.get(reverse(CHANGELIST) + f'?status_queue={value}')
        return [Status(row.status) for row in response.context['cl'].result_list]

    finished = listed('finished')
    assert finished == sorted(finished, reverse=True)  # the most recently finished first
    due = listed('due')
    assert due == sorted(due) and due[0].priority == 7  # the next to run first
    everything = superuser_client.get(reverse(CHANGELIST)).context['cl'].result_list
    assert [row.pk for row in everything] == sorted((row.pk for row in everything), reverse=True)


def test_an_estimate_is_an_int_that_says_it_is_one():
    assert Estimate(9_012_345) == 9_012_345 and is_estimate(Estimate(1)) and not is_estimate(9)
    assert f'{Estimate(9_012_345)}' == '≈ 9.0 M' and f'{Estimate(9_012_345):,}' == '9,012,345'
