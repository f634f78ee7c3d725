"""The demo: demo/run sets up a fresh copy of the repository and runs it.

The copy gets its own virtual environment from demo/run (pip's cache keeps
that quick) and its own database: SQLite by default, or a PostgreSQL or
MariaDB database given by DATABASE_URL when the suite runs on those.
"""

import doctest
import http.cookiejar
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import urllib.parse
import urllib.request

import pytest
from django.core.exceptions import ImproperlyConfigured

from demo import database_url
from tests.settings import CHECKOUT_TAG, DATABASE_VENDOR, DATABASES
from tests.support import ROOT
from tests.support.waits import wait_until

SETUP_TIMEOUT = 300
START_TIMEOUT = 60
STOP_TIMEOUT = 30
COPY_IGNORE = shutil.ignore_patterns(
    '.git', '.venv*', '__pycache__', '*.egg-info', '*.sqlite3*', '.state',
    'test-artifacts', '.hypothesis', 'bench',
)
DEMO_DATABASE = f'modelqueue_demo_{CHECKOUT_TAG}'
# Images waiting to be published with a priority at or before {at}.
DUE_TO_PUBLISH = (
    'Image.objects.filter(publish_status__gte=Status.minimum(State.waiting),'
    ' publish_status__lte=Status.waiting({at}, 9)).count()'
)


def test_database_url_examples():
    results = doctest.testmod(database_url, optionflags=doctest.ELLIPSIS)
    assert results.attempted > 0
    assert results.failed == 0


@pytest.mark.parametrize(
    'url, message',
    [
        ('sqlite:///demo.db', "invalid DATABASE_URL 'sqlite:///demo.db': expected a URL"),
        ('postgres://127.0.0.1:5432/', 'expected a database name'),
        ('postgres://127.0.0.1:5432/a/b', 'expected a database name'),
        ('postgres://u:hunter2@127.0.0.1:99999/q', "'postgres://u:***@127.0.0.1:99999/q'"),
    ],
)
def test_database_url_rejects(url, message):
    with pytest.raises(ImproperlyConfigured) as error:
        database_url.parse(url)
    assert message in str(error.value)
    assert 'hunter2' not in str(error.value)


def _server_database_url():
    """DATABASE_URL for the demo on the suite's database server, or None."""
    settings = DATABASES['default']
    if DATABASE_VENDOR == 'sqlite':
        return None
    scheme = 'postgres' if DATABASE_VENDOR == 'postgresql' else 'mysql'
    user = urllib.parse.quote(settings['USER'])
    password = urllib.parse.quote(settings.get('PASSWORD', ''))
    credentials = f'{user}:{password}' if password else user
    return f'{scheme}://{credentials}@{settings["HOST"]}:{settings["PORT"]}/{DEMO_DATABASE}'


def _drop_server_database():
    settings = DATABASES['default']
    if DATABASE_VENDOR == 'postgresql':
        import psycopg  # noqa: PLC0415 (the driver of the database under test only)

        with psycopg.connect(
            host=settings['HOST'], port=settings['PORT'], user=settings['USER'],
            dbname='postgres', autocommit=True,
        ) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{DEMO_DATABASE}" WITH (FORCE)')
    elif DATABASE_VENDOR == 'mariadb':
        import MySQLdb  # noqa: PLC0415 (the driver of the database under test only)

        connection = MySQLdb.connect(
            host=settings['HOST'], port=int(settings['PORT']), user=settings['USER'],
            password=settings['PASSWORD'],
        )
        try:
            connection.cursor().execute(f'DROP DATABASE IF EXISTS `{DEMO_DATABASE}`')
        finally:
            connection.close()


class Demo:
    """A copy of the repository where demo/run has been set up."""

    def __init__(self, path, env):
        self.path = path
        self.env = env

    def run(self, *args, timeout=SETUP_TIMEOUT):
        result = subprocess.run(
            [str(self.path / 'demo' / 'run'), *args], cwd=self.path, env=self.env,
            capture_output=True, text=True, timeout=timeout,
        )
        assert result.returncode == 0, result.stdout + result.stderr
        return result.stdout

    def manage(self, *args, timeout=120):
        python = next((self.path / '.venv').glob('demo-py*/bin/python'))
        result = subprocess.run(
            [str(python), str(self.path / 'demo' / 'manage.py'), *args],
            cwd=self.path, env=self.env, capture_output=True, text=True,
            timeout=timeout,
        )
        assert result.returncode == 0, result.stdout + result.stderr
        return result.stdout

    def query(self, expression):
        """Evaluate `expression` in the demo (models and modelqueue imported)."""
        code = (
            'import datetime, json, modelqueue\n'
            'from django.contrib.auth.models import User\n'
            'from modelqueue import State, Status\n'
            'from demo.jobs.models import Email, Image\n'
            f'print(json.dumps({expression}))\n'
        )
        return json.loads(self.manage('shell', '-v', '0', '-c', code))

    def snapshot(self):
        """The tally of each queue, and the users."""
        return self.query(
            "{'emails': Status.tally(Email.objects.all(), 'status'),"
            " 'resize': Status.tally(Image.objects.all(), 'resize_status'),"
            " 'publish': Status.tally(Image.objects.all(), 'publish_status'),"
            " 'users': list(User.objects.values_list('username', flat=True))}"
        )


@pytest.fixture(scope='module')
def demo(tmp_path_factory):
    """Copy the checkout and run ``demo/run --setup-only`` in it, once."""
    path = tmp_path_factory.mktemp('demo') / 'modelqueue'
    shutil.copytree(ROOT, path, ignore=COPY_IGNORE)
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(('DJANGO_', 'MODELQUEUE_', 'DATABASE_URL'))
    }
    env['DEMO_PYTHON'] = sys.executable
    url = _server_database_url()
    if url:
        env['DATABASE_URL'] = url
        _drop_server_database()
    demo = Demo(path, env)
    demo.first_setup = demo.run('--setup-only')
    yield demo
    _drop_server_database()


@pytest.mark.processes
def test_setup_creates_the_superuser_and_seeds_once(demo):
    assert 'Created the superuser admin.' in demo.first_setup
    assert 'Log in as: admin / password: admin' in demo.first_setup
    assert 'Seeded 240 emails, 120 images and 8 report tasks.' in demo.first_setup
    if 'DATABASE_URL' in demo.env:  # on the suite's PostgreSQL or MariaDB
        assert f'Created the database {DEMO_DATABASE}.' in demo.first_setup
    before = demo.snapshot()
    for state in ('created', 'waiting', 'working', 'finished', 'canceled'):
        assert before['emails'][state] + before['resize'][state] + before['publish'][state] > 0
    assert before['users'] == ['admin']

    again = demo.run('--setup-only')

    assert 'Log in as: admin / password: admin' in again
    assert 'Already seeded: 240 emails and 120 images' in again
    assert demo.snapshot() == before


def _free_port():
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def _session_processes(session):
    """Pids of the live processes in `session` (Linux /proc)."""
    pids = []
    for entry in os.listdir('/proc'):
        if entry.isdigit():
            try:
                if os.getsid(int(entry)) == session:
                    pids.append(int(entry))
            except ProcessLookupError:
                pass
    return pids


class AdminClient:
    """Log in to the admin over HTTP and fetch pages, as a browser would."""

    def __init__(self, base):
        self.base = base
        self.cookies = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(
            urllib.request.HTTPCookieProcessor(self.cookies)
        )

    def get(self, path):
        with self.opener.open(self.base + path, timeout=30) as response:
            return response.status, response.geturl(), response.read().decode()

    def login(self, username, password):
        _, _, page = self.get('/admin/login/?next=/admin/')
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)
        form = urllib.parse.urlencode({
            'csrfmiddlewaretoken': token, 'username': username,
            'password': password, 'next': '/admin/',
        }).encode()
        request = urllib.request.Request(
            self.base + '/admin/login/?next=/admin/', data=form,
            headers={'Referer': self.base + '/admin/login/'},
        )
        with self.opener.open(request, timeout=30) as response:
            return response.geturl(), response.read().decode()


def _start(demo, port):
    """Start ``demo/run`` in its own session; collect its output in a list."""
    process = subprocess.Popen(
        [str(demo.path / 'demo' / 'run'), '--port', str(port)], cwd=demo.path,
        env=demo.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        start_new_session=True,
    )
    output = []
    threading.Thread(target=lambda: output.extend(process.stdout), daemon=True).start()
    return process, output


@pytest.mark.processes
def test_run_serves_the_admin_and_the_dashboards_move(demo):
    port = _free_port()
    process, output = _start(demo, port)
    try:
        wait_until(
            lambda: any('Log in as admin / admin' in line for line in output)
            or process.poll() is not None,
            START_TIMEOUT, 'demo/run to start',
        )
        assert process.poll() is None, ''.join(output)
        assert any(f'http://127.0.0.1:{port}/admin/' in line for line in output)

        client = AdminClient(f'http://127.0.0.1:{port}')
        url, page = client.login('admin', 'admin')
        assert url.endswith('/admin/'), page
        assert 'ModelQueue demo' in page
        assert '/admin/jobs/email/dashboard/' in page
        assert '/admin/jobs/image/dashboard/' in page
        status, _, page = client.get('/admin/jobs/email/')
        assert status == 200 and 'Select email to change' in page
        assert 'href="/admin/jobs/email/export/' in page  # demo/run installs it
        status, _, page = client.get('/admin/jobs/image/?resize_status_queue=canceled')
        assert status == 200 and '12000' in page
        status, _, page = client.get('/admin/jobs/image/dashboard/')
        assert status == 200 and 'Queue dashboard' in page

        def figures():
            queues = {}
            for model in ('email', 'image'):
                status, _, body = client.get(f'/admin/jobs/{model}/dashboard/data/')
                assert status == 200
                queues.update((queue['field'], queue) for queue in json.loads(body)['queues'])
            return queues

        before = figures()
        assert set(before) == {'status', 'resize_status', 'publish_status'}

        def moved():
            now = figures()
            return sum(now['status']['tally'].values()) > sum(
                before['status']['tally'].values()
            ) and all(
                now[field]['tally']['finished'] > before[field]['tally']['finished']
                for field in now
            )

        wait_until(moved, 60, 'the workers and the producer to move the dashboards')

        def reports_ran():  # the @task of demo/jobs/tasks.py, by modelqueue_worker --tasks
            status, _, body = client.get('/admin/modelqueue/queuedtask/dashboard/data/')
            assert status == 200
            return json.loads(body)['queues'][0]['tally']['finished'] > 0

        wait_until(reports_ran, 30, 'the tasks worker to run report tasks')
        status, _, page = client.get('/admin/modelqueue/queuedtask/?queue_name=reports')
        assert status == 200 and 'demo.jobs.tasks.build_report' in page
        status, _, body = client.get('/admin/queues/metrics/')  # demo/run installs prometheus_client
        assert status == 200, body
        assert 'modelqueue_rows{queue="jobs.Email.status",state="finished"}' in body
        status, _, page = client.get('/admin/modelqueue/schedulestate/')
        assert status == 200 and 'sales-report' in page and '0 3 * * * (Europe/Paris)' in page
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            returncode = process.wait(timeout=STOP_TIMEOUT)
            leftovers = _session_processes(process.pid)
        finally:
            for pid in _session_processes(process.pid):
                os.kill(pid, signal.SIGKILL)
    assert returncode == 128 + signal.SIGTERM, ''.join(output)
    assert leftovers == [], 'demo processes still running after demo/run stopped'
    assert any('demo/run: stopping' in line for line in output)


@pytest.mark.processes
def test_worker_burst_drains_what_is_due(demo):
    demo.manage('seed', '--reset')
    due, started, finished = demo.query(
        f"[{DUE_TO_PUBLISH.format(at='modelqueue.now()')}, modelqueue.now().isoformat(),"
        " Status.tally(Image.objects.all(), 'publish_status')['finished']]"
    )
    assert due > 0

    demo.manage(
        'modelqueue_worker', 'jobs.Image', 'publish_status',
        'demo.jobs.actions.publish_image', '--concurrency', '2', '--burst', timeout=120,
    )

    # Every row due when the burst began was run; what still waits was put
    # back (Retry) to run later than that.
    due_then, finished_now = demo.query(
        f"[{DUE_TO_PUBLISH.format(at=f'datetime.datetime.fromisoformat({started!r})')},"
        " Status.tally(Image.objects.all(), 'publish_status')['finished']]"
    )
    assert due_then == 0
    assert finished_now > finished


@pytest.mark.processes
@pytest.mark.vendors('postgresql')
def test_on_postgresql_the_demo_s_migrations_install_state_counters_that_match_the_tally(demo):
    demo.manage('seed', '--reset')
    demo.manage(
        'modelqueue_worker', 'jobs.Image', 'resize_status', 'demo.jobs.actions.resize_image', '--burst', timeout=120,
    )
    counted = demo.query(
        "[{state: rows for state, rows in __import__('modelqueue.counters').counters.state_totals("
        "Image.objects.all(), field).items() if state} for field in ('resize_status', 'publish_status')]"
    )
    expected = demo.query("[Status.tally(Image.objects.all(), field) for field in ('resize_status', 'publish_status')]")
    assert counted == expected
    assert sum(counted[0].values()) > 0


@pytest.mark.processes
def test_failed_emails_say_why(demo):
    flaky, invalid = demo.query(
        "[Email.objects.create(recipient=recipient, subject='why?', status=Status.waiting(0)).pk"
        " for recipient in ('ada@flaky.example', 'alan@invalid.example')]"
    )
    demo.manage(
        'modelqueue_worker', 'jobs.Email', 'status', 'demo.jobs.actions.send_email',
        '--max-tasks', '2', '--delay', '600',
    )
    reasons = demo.query(
        "{record.object_id: [record.exception, record.message, record.outcome] for record in"
        " __import__('modelqueue.models').models.FailureRecord.objects.filter(field='status')}"
    )
    assert reasons[str(flaky)] == [
        'modelqueue.exceptions.Abort', 'delay 0:00:05; TimeoutError: mx.flaky.example did not answer within 30 seconds',
        'waiting',
    ]
    assert reasons[str(invalid)] == [
        'modelqueue.exceptions.Cancel', '550 no mailbox alan@invalid.example', 'canceled'
    ]
