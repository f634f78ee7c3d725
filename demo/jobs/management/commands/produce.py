"""Keep the demo moving: add a few rows every few seconds until stopped.

New emails are mostly due at once, some scheduled a little later; now and
then an image arrives. Production pauses while the email backlog is large
(no worker running), so a forgotten demo does not grow without end.
"""

import datetime as dt
import itertools
import random
import signal
import threading

from django.core.management.base import BaseCommand

from demo.jobs.models import Email, Image
from demo.jobs.management.commands.seed import NAMES, SIZES
from modelqueue import State, Status, now


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
            emails = [
                Email(
                    recipient=f'{rng.choice(NAMES)}@example.com',
                    subject=f'Notification {batch}-{index}',
                    status=Status.waiting(
                        current + dt.timedelta(seconds=rng.choice([0, 0, 0, 20, 60]))
                    ),
                )
                for index in range(rng.randint(1, 3))
            ]
            Email.objects.bulk_create(emails)
            if rng.random() < 0.3:
                width, height = rng.choice(SIZES[:4])
                Image.objects.create(
                    name=f'upload-{batch}.jpg', width=width, height=height
                )
