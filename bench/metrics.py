"""The cost of a Prometheus scrape: the admin's metrics page at 10,000,000 rows.

    python -m bench metrics                          # PostgreSQL, 10,000,000 rows, with and without counters
    python -m bench metrics --sizes 20000 --repeat 3 # a smoke run

Runs in this Python (.venv/py3.11 from ./runtests imports this checkout,
Django, psycopg and prometheus_client), on the databases of ``python -m
bench scale postgresql`` (the same fill: 90% finished, 2% canceled, 6%
waiting, 1.5% created, 0.5% working; kept between runs). Times, as the
median of --repeat runs after one warm-up, the whole request of the admin's
metrics page (``admin:modelqueue_metrics``, as a logged-in superuser,
every queue of the test site: the Task queue and three empty ones), first
with the Task queue's state counters installed, then without them (range
counts on the status index); and, beside it, the exposition of the Task
queue alone, without the request. Target: at most 50 ms a scrape with
counters.

Writes bench/results/metrics-<date>-postgresql.json (scratch/ when --sizes
is not the default).
"""

import os
import time

from . import scale
from .results import default_path, header, log, write

SIZES = [10_000_000]
TARGET_MS = 50.0


def add_arguments(parser):
    parser.add_argument('--sizes', help='row counts, comma-separated (default 10,000,000)')
    parser.add_argument('--repeat', type=int, default=9, help='timed scrapes per figure (median)')
    parser.add_argument('--out', help='JSON file (default bench/results/metrics-<date>-postgresql.json)')


def main(args):
    started = time.time()
    sizes = scale.parse_sizes(args.sizes) if args.sizes else SIZES
    results = header(vars(args))
    scale.configure('postgresql', sizes)

    from django.contrib.auth.models import User  # noqa: PLC0415
    from django.db import connections  # noqa: PLC0415
    from django.test import Client  # noqa: PLC0415
    from django.test.utils import CaptureQueriesContext  # noqa: PLC0415
    from django.urls import reverse  # noqa: PLC0415

    from modelqueue.admin.metrics import Queue, exposition  # noqa: PLC0415
    from tests.testapp.models import Task  # noqa: PLC0415

    url = reverse('admin:modelqueue_metrics')
    results.update(vendor='postgresql', sizes={}, target_ms=TARGET_MS)
    for rows in sizes:
        scale.ROUTER.alias = scale.alias_of(rows)
        fill_seconds = scale.fill(scale.ROUTER.alias, rows)
        user, _created = User.objects.get_or_create(
            username='bench', defaults={'is_staff': True, 'is_superuser': True}
        )
        client = Client()
        client.force_login(user)

        def scrape(client=client):
            response = client.get(url)
            assert response.status_code == 200, response.status_code
            return response

        size = results['sizes'][str(rows)] = {'rows': Task.objects.count(), 'fill_seconds': fill_seconds}
        for counters in (True, False):
            mode = 'with counters' if counters else 'without counters'
            size[f'{mode} install_seconds'] = scale.set_counters(scale.ROUTER.alias, counters)
            with CaptureQueriesContext(connections[scale.ROUTER.alias]) as queries:
                body = scrape().content.decode()
            size[f'{mode} queries'] = len(queries)
            size[f'{mode} exposition_bytes'] = len(body)
            size[f'scrape {mode}'] = scale.timed(scrape, args.repeat)
            log(f'bench: {rows:,} rows: scrape {mode} {size[f"scrape {mode}"]["median_ms"]:.1f} ms')
            size[f'collector of the Task queue alone {mode}'] = scale.timed(
                lambda: exposition([Queue(Task.objects.all(), 'status')]), args.repeat
            )
        scale.set_counters(scale.ROUTER.alias, False)
    largest = results['sizes'][str(sizes[-1])]['scrape with counters']['median_ms']
    results['targets'] = [{
        'target': f'a scrape at {sizes[-1]:,} rows with state counters <= {TARGET_MS:g} ms',
        'met': largest <= TARGET_MS,
        'detail': f'{largest:.1f} ms (without counters'
        f' {results["sizes"][str(sizes[-1])]["scrape without counters"]["median_ms"]:.0f} ms)',
    }]
    results['machine']['load_average_at_end'] = os.getloadavg()
    results['seconds'] = time.time() - started
    for target in results['targets']:
        print(f'{"MET" if target["met"] else "MISSED"} {target["target"]}: {target["detail"]}')
    scratch = args.sizes is not None and scale.parse_sizes(args.sizes) != SIZES
    write(results, args.out or default_path('metrics', 'postgresql', scratch))
    return 0
