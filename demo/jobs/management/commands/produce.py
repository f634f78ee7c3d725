"""Keep the demo moving: add a few rows every few seconds until stopped.

New emails are mostly due at once, some scheduled a little later; about
once a minute a newsletter queues dozens at once, and the backlog on the
dashboard rises and drains. Now and then an image arrives. Production
pauses while the email backlog is large (no worker running), so a
forgotten demo does not grow without end.
"""

import datetime as dt
import itertools
import random
import signal
import threading

from django.core.management.base import BaseCommand, CommandError

from demo.jobs.management.commands.seed import NAMES, SIZE_WEIGHTS, SIZES
from demo.jobs.models import Email, Image
from demo.jobs.tasks import build_report
from modelqueue import State, Status, now

NEWSLETTER_SECONDS = 60
REPORTS = ['sales', 'signups', 'refunds', 'inventory']


class Command(BaseCommand):
    help = 'Add demo emails and images every few seconds until stopped.'

    def add_arguments(self, parser):
        parser.add_argument(
            '--every', type=float, default=3.0, help='seconds between batches'
        )
        parser.add_argument(
            '--max-backlog',
            type=int,
            default=300,
            help='pause while more emails than this are waiting',
        )

    def handle(self, *args, every, max_backlog, **options):
        if not every > 0:
            raise CommandError(f'invalid --every {every}: expected seconds above 0')
        if max_backlog < 0:
            raise CommandError(f'invalid --max-backlog {max_backlog}: expected 0 or more')
        stopping = threading.Event()
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: stopping.set())
        rng = random.Random()
        waiting = Status.filter('status', State.waiting)
        for batch in itertools.count(1):
            if stopping.wait(every):
                break
            if Email.objects.filter(**waiting).count() > max_backlog:
                continue
            current = now()
            if rng.random() < every / NEWSLETTER_SECONDS:
                subject, count = f'Newsletter {batch}', rng.randint(25, 50)
            else:
                subject, count = f'Notification {batch}', rng.randint(1, 3)
            Email.objects.bulk_create(
                Email(
                    recipient=f'{rng.choice(NAMES)}@example.com',
                    subject=subject,
                    status=Status.waiting(
                        current + dt.timedelta(seconds=rng.choice([0, 0, 0, 20, 60]))
                    ),
                )
                for _ in range(count)
            )
            if rng.random() < 0.5:  # a task of Django's Tasks framework
                build_report.using(priority=rng.choice([0, 0, 10])).enqueue(
                    rng.choice(REPORTS), rows=rng.randint(10, 500)
                )
            if rng.random() < 0.3:
                width, height = rng.choices(SIZES, weights=SIZE_WEIGHTS)[0]
                Image.objects.create(
                    name=f'upload-{batch}.jpg', width=width, height=height
                )
