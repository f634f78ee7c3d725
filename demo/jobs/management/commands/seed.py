"""Fill the demo queues with a few hundred rows in every state.

Rows are spread over the last hour (finished and canceled, so the
throughput chart has a history), due now (a backlog), scheduled over the
next minutes (coming due while you watch) and days, with integer
priorities that jump the queue, drafts not queued yet, and a few images
left *working* by a worker that died two hours ago (the next worker gives
them back). Running it again changes nothing; ``--reset`` starts over.
"""

import datetime as dt
import random

from django.core.management.base import BaseCommand
from django.db import transaction

from demo.jobs.actions import MAX_PIXELS
from demo.jobs.models import Email, Image
from demo.jobs.tasks import build_report
from modelqueue import Status, now

EMAILS = 240
IMAGES = 120
NAMES = ['ada', 'alan', 'barbara', 'dennis', 'edsger', 'frances', 'grace', 'ken']
SUBJECTS = [
    'Welcome aboard, {name}',
    'Your invoice #{number}',
    'Password reset for {name}',
    'Weekly digest #{number}',
    'Order {number} has shipped',
]
SIZES = [(800, 600), (1920, 1080), (4032, 3024), (6000, 4000), (12000, 9000)]
SIZE_WEIGHTS = [3, 3, 3, 2, 1]  # the last is too large: canceled


def minutes(value):
    return dt.timedelta(minutes=value)


class Command(BaseCommand):
    help = 'Seed the demo queues with a few hundred rows (once; --reset to redo).'

    def add_arguments(self, parser):
        parser.add_argument(
            '--reset', action='store_true', help='delete every demo row first'
        )

    def handle(self, *args, reset=False, **options):
        with transaction.atomic():
            if reset:
                Email.objects.all().delete()
                Image.objects.all().delete()
            elif Email.objects.exists() or Image.objects.exists():
                self.stdout.write(
                    f'Already seeded: {Email.objects.count()} emails and'
                    f' {Image.objects.count()} images (seed --reset starts over).'
                )
                return
            rng = random.Random(5)
            Email.objects.bulk_create(email(rng, number) for number in range(EMAILS))
            Image.objects.bulk_create(image(rng, number) for number in range(IMAGES))
            for number, name in enumerate(['sales', 'signups', 'refunds', 'inventory'] * 2):
                build_report.using(priority=10 * (number % 2)).enqueue(name, rows=100 + number)
        self.stdout.write(f'Seeded {EMAILS} emails, {IMAGES} images and 8 report tasks.')


def email(rng, number):
    name = rng.choice(NAMES)
    domain = {7: 'invalid.example', 13: 'flaky.example'}.get(number % 40, 'example.com')
    row = Email(
        recipient=f'{name}@{domain}',
        subject=rng.choice(SUBJECTS).format(name=name.title(), number=1000 + number),
        body=f'Hello {name.title()},\n\nThis is demo email {number}.\n',
    )
    current = now()
    kind = rng.choices(
        ['finished', 'canceled', 'due', 'soon', 'later', 'created', 'urgent'],
        weights=[40, 6, 22, 18, 5, 4, 5],
    )[0]
    if kind == 'finished':
        row.sent_at = current - minutes(rng.uniform(0, 60))
        row.status = Status.finished(row.sent_at, rng.choice([1, 1, 1, 2]))
    elif kind == 'canceled':
        canceled_at = current - minutes(rng.uniform(0, 60))
        row.status = Status.canceled(canceled_at, rng.randint(1, 4))
    elif kind == 'due':
        due_since = current - minutes(rng.uniform(0, 10))
        row.status = Status.waiting(due_since, rng.choice([0, 0, 1, 2]))
    elif kind == 'soon':
        row.status = Status.waiting(current + minutes(rng.uniform(0.1, 10)))
    elif kind == 'later':
        row.status = Status.waiting(current + minutes(rng.uniform(60, 3 * 24 * 60)))
    elif kind == 'created':
        row.status = Status.created(current)
    else:  # an integer priority runs before every timestamped row
        row.status = Status.waiting(rng.randint(1, 100))
    return row


def image(rng, number):
    width, height = rng.choices(SIZES, weights=SIZE_WEIGHTS)[0]
    row = Image(name=f'photo-{number:04d}.jpg', width=width, height=height)
    current = now()
    kind = rng.choices(
        ['published', 'resized', 'due', 'soon', 'stalled'], weights=[40, 15, 25, 12, 3]
    )[0]
    if width * height > MAX_PIXELS:  # resize_image cancels these
        kind = 'canceled'
    if kind in ('published', 'resized'):
        resized_at = current - minutes(rng.uniform(1, 60))
        row.resize_status = Status.finished(resized_at, 1)
        row.thumbnail = f'320x{round(height * 320 / width)}'
        if kind == 'published':
            row.published_at = resized_at + minutes(rng.uniform(0, 1))
            row.publish_status = Status.finished(row.published_at, 1)
        else:
            row.publish_status = Status.waiting(resized_at)
    elif kind == 'due':
        row.resize_status = Status.waiting(current - minutes(rng.uniform(0, 10)))
    elif kind == 'soon':
        row.resize_status = Status.waiting(current + minutes(rng.uniform(0.1, 10)))
    elif kind == 'canceled':
        row.resize_status = Status.canceled(current - minutes(rng.uniform(0, 60)), 1)
    else:  # claimed two hours ago by a worker that never came back
        row.resize_status = Status.working(current - minutes(120))
    return row
