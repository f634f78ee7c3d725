"""The LISTEN connection of an idle worker's waiter: woken, lost, refused, closed.

PostgreSQL only. Each test drives a real connection: the server ends it
(``pg_terminate_backend``), refuses it (a port nobody listens on), or a
second connection sends the NOTIFY while the waiter is blocked.
"""

import logging
import re
import select
import socket
import threading
import time

import psycopg
import psycopg2
import pytest
from django.db import connection

from modelqueue.wakeup import channel_name, install_trigger
from modelqueue.worker.waiters import ListeningWaiter
from tests.support.waits import wait_until
from tests.testapp.models import Task

pytestmark = pytest.mark.vendors('postgresql')

CHANNEL = channel_name(Task, 'status')
BOUND = 10  # seconds: far below the 30 s a wait is given


def connection_params():
    params = connection.get_connection_params()
    return {key: params[key] for key in ('dbname', 'user', 'host', 'port', 'password') if params.get(key)}


def listen_sessions():
    """The sessions of this test database that are idle after a LISTEN."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pid FROM pg_stat_activity WHERE query LIKE 'LISTEN%%'"
            ' AND datname = current_database() AND pid <> pg_backend_pid()'
        )
        return [pid for (pid,) in cursor.fetchall()]


def end_listen_sessions():
    with connection.cursor() as cursor:
        for pid in listen_sessions():
            cursor.execute('SELECT pg_terminate_backend(%s)', [pid])
    wait_until(lambda: not listen_sessions(), BOUND, 'the LISTEN session to end')


def notify_later(seconds):
    """Send a NOTIFY on the channel from another connection after `seconds`."""

    def send():
        time.sleep(seconds)
        with psycopg.connect(**connection_params(), autocommit=True) as sender:
            sender.execute('SELECT pg_notify(%s, %s)', [CHANNEL, 'test'])

    thread = threading.Thread(target=send)
    thread.start()
    return thread


def timed(wait, seconds):
    started = time.monotonic()
    woken = wait(seconds)
    return woken, time.monotonic() - started


def logged(caplog, level):
    return [r.getMessage() for r in caplog.records if r.name == 'modelqueue.worker' and r.levelno == level]


def unused_port():
    with socket.socket() as probe:
        probe.bind(('127.0.0.1', 0))
        return probe.getsockname()[1]


@pytest.fixture
def waiter(transactional_db, caplog):
    caplog.set_level(logging.INFO, logger='modelqueue.worker')
    install_trigger(Task, 'status')
    waiter = ListeningWaiter(Task.objects.all(), 'status')
    yield waiter
    waiter.close()


def test_the_first_wait_listens_returns_at_once_and_logs_nothing(waiter, caplog):
    assert timed(waiter.wait, 30)[0] is True, 'a new LISTEN may have missed notifications'
    assert len(listen_sessions()) == 1
    assert logged(caplog, logging.WARNING) == []
    assert logged(caplog, logging.INFO) == []


def test_a_notification_during_the_wait_wakes_it_and_is_consumed(waiter):
    waiter.wait(30)
    sender = notify_later(0.3)
    woken, seconds = timed(waiter.wait, 30)
    sender.join()
    assert woken is True and seconds < BOUND
    assert timed(waiter.wait, 0.3)[0] is False, 'the notification that woke it was read'


def test_a_lost_connection_wakes_the_waiter_warns_and_listens_again(waiter, caplog):
    waiter.wait(30)
    end_listen_sessions()
    woken, seconds = timed(waiter.wait, 30)
    assert woken is True and seconds < BOUND
    (warning,) = logged(caplog, logging.WARNING)
    assert re.fullmatch(rf'Lost the LISTEN connection on {CHANNEL} \(.*server closed the connection.*\)', warning, re.S)
    assert timed(waiter.wait, 30)[0] is True, 'listening again'
    assert logged(caplog, logging.INFO) == [f'Listening on {CHANNEL} again']
    assert len(listen_sessions()) == 1
    Task.objects.create(data='after')
    assert timed(waiter.wait, 30)[0] is True


def test_a_lost_connection_found_before_blocking_also_wakes_the_waiter(waiter, caplog):
    waiter.wait(30)
    listener = waiter._listener.fileno()
    end_listen_sessions()
    wait_until(  # the server's goodbye has arrived before the next wait
        lambda: select.select([listener], [], [], 0)[0], BOUND, "the server's goodbye"
    )
    waiter._drain()  # ... and a drain (after a task, say) has read it
    woken, seconds = timed(waiter.wait, 30)
    assert woken is True and seconds < BOUND
    assert len(logged(caplog, logging.WARNING)) == 1


def test_a_refused_connection_polls_warns_once_and_recovers(waiter, caplog, monkeypatch):
    port = unused_port()
    monkeypatch.setitem(connection.settings_dict, 'PORT', port)
    for _ in range(2):
        woken, seconds = timed(waiter.wait, 0.3)
        assert woken is False and seconds >= 0.25, 'it polls for the whole wait'
    (warning,) = logged(caplog, logging.WARNING)
    match = re.fullmatch(rf'Cannot LISTEN on {CHANNEL} \((.+)\); polling until it works', warning, re.S)
    assert match and str(port) in match.group(1)
    monkeypatch.undo()
    assert timed(waiter.wait, 30)[0] is True
    assert logged(caplog, logging.INFO) == [f'Listening on {CHANNEL} again']

    # A second outage after a good connection warns again.
    waiter.close()
    monkeypatch.setitem(connection.settings_dict, 'PORT', port)
    assert timed(waiter.wait, 0.3)[0] is False
    assert len(logged(caplog, logging.WARNING)) == 2


def test_close_ends_the_session_and_a_later_wait_listens_afresh(waiter, caplog):
    waiter.wait(30)
    waiter.close()
    wait_until(lambda: not listen_sessions(), BOUND, 'the LISTEN session to end')
    waiter.close()
    assert timed(waiter.wait, 30)[0] is True
    assert len(listen_sessions()) == 1
    assert logged(caplog, logging.WARNING) == []


def test_a_psycopg2_connection_is_drained_too(waiter, caplog):
    """Django also runs on psycopg2; the waiter then holds a psycopg2 connection."""
    listener = psycopg2.connect(**connection_params())
    listener.autocommit = True
    listener.cursor().execute(f'LISTEN "{CHANNEL}"')
    waiter._listener = listener
    notify_later(0).join()
    assert timed(waiter.wait, 30)[0] is True
    assert timed(waiter.wait, 0.3)[0] is False, 'the notification was read'
    sender = notify_later(0.3)
    woken, seconds = timed(waiter.wait, 30)
    sender.join()
    assert woken is True and seconds < BOUND
    assert timed(waiter.wait, 0.3)[0] is False
    end_listen_sessions()
    assert timed(waiter.wait, 30)[0] is True
    assert len(logged(caplog, logging.WARNING)) == 1
    assert listener.closed

